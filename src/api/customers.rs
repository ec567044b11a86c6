//! `/v1/customers`: consent and attributes (`PUT`), the profile (`GET`), and personalised
//! recommendations (`GET /v1/customers/{id}/recommendations`), and the privacy rights: access
//! (`GET /v1/customers/{id}/export`) and erasure (`DELETE /v1/customers/{id}`). Customers are
//! stored under a pseudonymous key only; the id in the path is never written anywhere.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::routes;

use super::AppState;
use super::auth::{Access, Subject};
use super::extract::{JsonBody, PathId, QueryParams};
use super::openapi::Api;
use super::problem::ApiError;
use super::recommend::RecommendParams;
use crate::app::erasure::{CustomerExport, ErasureReport};
use crate::error::Error;
use crate::events::{CustomerInput, CustomerView};
use crate::privacy::apikeys::Role;
use crate::recommend::Recommendations;

/// Routes of this resource.
pub fn routes() -> Api {
    let (app, admin) = (Access::Role(Role::App), Access::Role(Role::Admin));
    Api::new()
        .route(app, Subject::None, routes!(read))
        .route(app, Subject::Customer, routes!(replace))
        .route(app, Subject::None, routes!(recommend))
        .route(admin, Subject::Customer, routes!(export))
        .route(admin, Subject::Customer, routes!(erase))
}

/// What an erasure removed.
#[derive(Debug, Serialize, ToSchema)]
pub struct Erasure {
    /// The customer id asked for.
    pub customer_id: String,
    /// What was removed (nothing for an unknown or already erased customer).
    pub erased: ErasureReport,
}

/// Set a customer's consent and attributes (created if new).
#[utoipa::path(put, path = "/v1/customers/{id}", operation_id = "putCustomer", tag = "customers",
    params(("id" = String, Path, description = "The retailer's customer id (stored only as a keyed hash).")),
    request_body = CustomerInput,
    responses((status = 200, description = "Updated.", body = CustomerView),
        (status = 201, description = "Created.", body = CustomerView)))]
async fn replace(
    State(state): State<AppState>,
    PathId(id): PathId,
    JsonBody(input): JsonBody<CustomerInput>,
) -> Result<(StatusCode, Json<CustomerView>), ApiError> {
    let (profile, created) = state.services()?.profiles.put(&id, input).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(profile.view(&id))))
}

/// A customer's profile.
#[utoipa::path(get, path = "/v1/customers/{id}", operation_id = "getCustomer", tag = "customers",
    params(("id" = String, Path, description = "The retailer's customer id.")),
    responses((status = 200, description = "The profile.", body = CustomerView)))]
async fn read(State(state): State<AppState>, PathId(id): PathId) -> Result<Json<CustomerView>, ApiError> {
    let profile = state.services()?.profiles.get(&id).await?;
    if !profile.exists {
        return Err(Error::not_found("customer", id).into());
    }
    Ok(Json(profile.view(&id)))
}

/// Personalised recommendations for a customer.
#[utoipa::path(get, path = "/v1/customers/{id}/recommendations", operation_id = "recommendForCustomer",
    tag = "recommendations",
    params(("id" = String, Path, description = "The retailer's customer id."), RecommendParams),
    responses((status = 200, description = "The recommendations.", body = Recommendations)))]
async fn recommend(
    State(state): State<AppState>,
    PathId(id): PathId,
    QueryParams(p): QueryParams<RecommendParams>,
) -> Result<Json<Recommendations>, ApiError> {
    let request = p.into_request(Some(id))?;
    Ok(Json(state.services()?.recommender.recommend(request).await?))
}

/// Everything held about a customer (the right of access).
#[utoipa::path(get, path = "/v1/customers/{id}/export", operation_id = "exportCustomer", tag = "privacy",
    params(("id" = String, Path, description = "The retailer's customer id.")),
    responses((status = 200, description = "The export.", body = CustomerExport)))]
async fn export(State(state): State<AppState>, PathId(id): PathId) -> Result<Json<CustomerExport>, ApiError> {
    Ok(Json(state.services()?.privacy.export(&id).await?))
}

/// Erase a customer everywhere, on disk too. Idempotent: erasing twice, or a customer never
/// seen, answers 200 with what was removed (nothing).
#[utoipa::path(delete, path = "/v1/customers/{id}", operation_id = "eraseCustomer", tag = "privacy",
    params(("id" = String, Path, description = "The retailer's customer id.")),
    responses((status = 200, description = "What was removed.", body = Erasure)))]
async fn erase(State(state): State<AppState>, PathId(id): PathId) -> Result<Json<Erasure>, ApiError> {
    let erased = state.services()?.privacy.erase(&id).await?;
    Ok(Json(Erasure { customer_id: id, erased }))
}
