//! `POST /v1/recommendations` (anonymous sessions or known customers), `GET /v1/trending`,
//! and `GET /v1/stats/recommendations`. Personalised recommendations for a customer are at
//! `GET /v1/customers/{id}/recommendations` (see `customers.rs`), with the same parameters.

use std::collections::HashMap;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::extract::{JsonBody, QueryParams};
use super::problem::ApiError;
use crate::catalog::ProductFilter;
use crate::error::{Error, FieldError};
use crate::recommend::{RecommendRequest, SourceName};

/// Routes of this resource.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/recommendations", post(recommend))
        .route("/v1/trending", get(trending))
        .route("/v1/stats/recommendations", get(stats))
}

/// Query parameters of `GET /v1/customers/{id}/recommendations`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecommendParams {
    limit: Option<usize>,
    category: Option<String>,
    brand: Option<String>,
    price_min: Option<f64>,
    price_max: Option<f64>,
    in_stock: Option<bool>,
    /// Comma-separated product ids to leave out.
    exclude: Option<String>,
    /// Comma-separated product ids of the current session, most recent first.
    session: Option<String>,
    exclude_purchased: Option<bool>,
    exclude_seen: Option<bool>,
    mmr_lambda: Option<f32>,
}

fn split(s: Option<String>) -> Vec<String> {
    s.map(|s| s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(str::to_string).collect()).unwrap_or_default()
}

impl RecommendParams {
    /// The request these parameters describe.
    pub fn into_request(self, customer_id: Option<String>) -> Result<RecommendRequest, ApiError> {
        let exclude = split(self.exclude);
        Ok(RecommendRequest {
            customer_id,
            session_items: split(self.session),
            limit: self.limit,
            filter: ProductFilter {
                exclude_ids: (!exclude.is_empty()).then_some(exclude),
                ..ProductFilter::from_query(self.category, self.brand, self.price_min, self.price_max, self.in_stock)
            },
            exclude_purchased: self.exclude_purchased,
            exclude_seen: self.exclude_seen,
            mmr_lambda: self.mmr_lambda,
            weights: HashMap::new(),
        })
    }
}

/// Run a request and answer with the recommendations.
pub async fn recommendations_response(state: &AppState, request: RecommendRequest) -> Result<Response, ApiError> {
    let recs = state.services()?.recommender.recommend(request).await?;
    Ok(Json(recs).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Session {
    items: Vec<String>,
}

/// `POST /v1/recommendations` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecommendBody {
    customer_id: Option<String>,
    session: Option<Session>,
    limit: Option<usize>,
    filters: Option<ProductFilter>,
    exclude_purchased: Option<bool>,
    exclude_seen: Option<bool>,
    mmr_lambda: Option<f32>,
    weights: Option<HashMap<SourceName, f32>>,
}

async fn recommend(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<RecommendBody>,
) -> Result<Response, ApiError> {
    let request = RecommendRequest {
        customer_id: body.customer_id,
        session_items: body.session.map(|s| s.items).unwrap_or_default(),
        limit: body.limit,
        filter: body.filters.unwrap_or_default(),
        exclude_purchased: body.exclude_purchased,
        exclude_seen: body.exclude_seen,
        mmr_lambda: body.mmr_lambda,
        weights: body.weights.unwrap_or_default(),
    };
    recommendations_response(&state, request).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrendingParams {
    limit: Option<usize>,
    category: Option<String>,
    brand: Option<String>,
    price_min: Option<f64>,
    price_max: Option<f64>,
    in_stock: Option<bool>,
}

async fn trending(
    State(state): State<AppState>,
    QueryParams(p): QueryParams<TrendingParams>,
) -> Result<Response, ApiError> {
    let max = state.config().recommend.max_limit;
    let limit = p.limit.unwrap_or(10);
    // Trending widgets show what can be bought; in_stock=false asks for the rest.
    let in_stock = Some(p.in_stock.unwrap_or(true));
    let filter = ProductFilter::from_query(p.category, p.brand, p.price_min, p.price_max, in_stock);
    let mut errors = filter.check("");
    if limit == 0 || limit > max {
        errors.push(FieldError::new("/limit", format!("must be between 1 and {max}")));
    }
    if !errors.is_empty() {
        return Err(Error::Invalid(errors).into());
    }
    let items = state.services()?.recommender.trending(&filter, limit).await?;
    Ok(Json(json!({"items": items})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatsParams {
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
}

async fn stats(State(state): State<AppState>, QueryParams(p): QueryParams<StatsParams>) -> Result<Response, ApiError> {
    let to = p.to.unwrap_or_else(|| Utc::now().date_naive());
    let from = p.from.unwrap_or(to - chrono::Days::new(30));
    if from > to {
        return Err(Error::invalid("/from", "is after `to`").into());
    }
    Ok(Json(state.services()?.recommender.stats().report(from, to).await?).into_response())
}
