//! `POST /v1/search` (hybrid product search) and `GET /v1/products/{id}/similar`.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::routes;

use super::AppState;
use super::auth::{Access, Subject};
use super::extract::{JsonBody, PathId, QueryParams};
use super::openapi::Api;
use super::problem::ApiError;
use crate::catalog::{SearchHit, SearchRequest, SimilarMode, SimilarRequest};
use crate::privacy::apikeys::Role;

/// Routes of this resource.
pub fn routes() -> Api {
    // Also for a shopper's page (a `widget` key).
    let read = Access::Shopper(Role::Read);
    Api::new().route(read, Subject::None, routes!(search)).route(read, Subject::None, routes!(similar))
}

/// Search results.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResults {
    /// Best first.
    pub items: Vec<SearchHit>,
    /// Milliseconds the search took in the server.
    pub took_ms: f64,
}

/// Similar products.
#[derive(Debug, Serialize, ToSchema)]
pub struct SimilarResults {
    /// Most similar first.
    pub items: Vec<SearchHit>,
    /// How similarity was judged.
    pub mode: SimilarMode,
}

/// Hybrid product search (dense and keyword, fused), with filters.
#[utoipa::path(post, path = "/v1/search", operation_id = "search", tag = "search", request_body = SearchRequest,
    responses((status = 200, description = "The hits.", body = SearchResults)))]
async fn search(
    State(state): State<AppState>,
    JsonBody(mut request): JsonBody<SearchRequest>,
) -> Result<Json<SearchResults>, ApiError> {
    let started = Instant::now();
    let services = state.services()?;
    // Shoppers type anything into a search box: PII never reaches the embedding model.
    if let std::borrow::Cow::Owned(q) = services.redactor.redact(&request.query) {
        request.query = q;
    }
    let items = services.catalog.search(&request, &state.config().search).await?;
    Ok(Json(SearchResults { items, took_ms: started.elapsed().as_secs_f64() * 1000.0 }))
}

/// Products similar to one: by content, or bought together with it (`mode=co_purchase`).
#[utoipa::path(get, path = "/v1/products/{id}/similar", operation_id = "similarProducts", tag = "search",
    params(("id" = String, Path, description = "Product id."), SimilarRequest),
    responses((status = 200, description = "The similar products.", body = SimilarResults)))]
async fn similar(
    State(state): State<AppState>,
    PathId(id): PathId,
    QueryParams(request): QueryParams<SimilarRequest>,
) -> Result<Json<SimilarResults>, ApiError> {
    let services = state.services()?;
    let items = match request.mode.unwrap_or_default() {
        SimilarMode::Content => services.catalog.similar(&id, &request, &state.config().search).await?,
        SimilarMode::CoPurchase => {
            let limit = request.limit.unwrap_or(10);
            let max = state.config().search.max_limit;
            if limit == 0 || limit > max {
                return Err(crate::error::Error::invalid("/limit", format!("must be between 1 and {max}")).into());
            }
            let mut filter = request.filter();
            if filter.in_stock.is_none() {
                filter.in_stock = Some(true);
            }
            services.recommender.bought_together(&id, &filter, limit).await?
        }
    };
    Ok(Json(SimilarResults { items, mode: request.mode.unwrap_or_default() }))
}
