//! `POST /v1/search` (hybrid product search) and `GET /v1/products/{id}/similar`.

use std::time::Instant;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::AppState;
use super::extract::{JsonBody, PathId, QueryParams};
use super::problem::ApiError;
use crate::catalog::{SearchRequest, SimilarMode, SimilarRequest};

/// Routes of this resource.
pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/search", post(search)).route("/v1/products/{id}/similar", get(similar))
}

async fn search(
    State(state): State<AppState>,
    JsonBody(mut request): JsonBody<SearchRequest>,
) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    let services = state.services()?;
    // Shoppers type anything into a search box: PII never reaches the embedding model.
    if let std::borrow::Cow::Owned(q) = services.redactor.redact(&request.query) {
        request.query = q;
    }
    let hits = services.catalog.search(&request, &state.config().search).await?;
    Ok(Json(json!({"items": hits, "took_ms": started.elapsed().as_secs_f64() * 1000.0})))
}

async fn similar(
    State(state): State<AppState>,
    PathId(id): PathId,
    QueryParams(request): QueryParams<SimilarRequest>,
) -> Result<Json<Value>, ApiError> {
    let services = state.services()?;
    let hits = match request.mode.unwrap_or_default() {
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
    Ok(Json(json!({"items": hits, "mode": request.mode.unwrap_or_default()})))
}
