//! `/v1/customers`: consent and attributes (`PUT`), the profile (`GET`), and personalised
//! recommendations (`GET /v1/customers/{id}/recommendations`), and the privacy rights: access
//! (`GET /v1/customers/{id}/export`) and erasure (`DELETE /v1/customers/{id}`). Customers are
//! stored under a pseudonymous key only; the id in the path is never written anywhere.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::AppState;
use super::extract::{JsonBody, PathId, QueryParams};
use super::problem::ApiError;
use super::recommend::{RecommendParams, recommendations_response};
use crate::error::Error;
use crate::events::CustomerInput;

/// Routes of this resource.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/customers/{id}", get(read).put(replace).delete(erase))
        .route("/v1/customers/{id}/recommendations", get(recommend))
        .route("/v1/customers/{id}/export", get(export))
}

async fn replace(
    State(state): State<AppState>,
    PathId(id): PathId,
    JsonBody(input): JsonBody<CustomerInput>,
) -> Result<Response, ApiError> {
    let (profile, created) = state.services()?.profiles.put(&id, input).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(profile.to_json(&id))).into_response())
}

async fn read(State(state): State<AppState>, PathId(id): PathId) -> Result<Response, ApiError> {
    let profile = state.services()?.profiles.get(&id).await?;
    if !profile.exists {
        return Err(Error::not_found("customer", id).into());
    }
    Ok(Json(profile.to_json(&id)).into_response())
}

async fn recommend(
    State(state): State<AppState>,
    PathId(id): PathId,
    QueryParams(p): QueryParams<RecommendParams>,
) -> Result<Response, ApiError> {
    let request = p.into_request(Some(id))?;
    recommendations_response(&state, request).await
}

async fn export(State(state): State<AppState>, PathId(id): PathId) -> Result<Response, ApiError> {
    Ok(Json(state.services()?.privacy.export(&id).await?).into_response())
}

/// Erasure is idempotent: erasing twice, or a customer never seen, answers 200 with what was
/// removed (nothing).
async fn erase(State(state): State<AppState>, PathId(id): PathId) -> Result<Response, ApiError> {
    let report = state.services()?.privacy.erase(&id).await?;
    Ok(Json(serde_json::json!({"customer_id": id, "erased": report})).into_response())
}
