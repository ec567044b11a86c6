//! `/v1/customers`: consent and attributes (`PUT`), the profile (`GET`), and personalised
//! recommendations (`GET /v1/customers/{id}/recommendations`). Customers are stored under a
//! pseudonymous key only; the id in the path is never written anywhere.

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
        .route("/v1/customers/{id}", get(read).put(replace))
        .route("/v1/customers/{id}/recommendations", get(recommend))
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
