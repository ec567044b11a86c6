//! `POST /v1/recommendations` (anonymous sessions or known customers), `GET /v1/trending`,
//! and `GET /v1/stats/recommendations`. Personalised recommendations for a customer are at
//! `GET /v1/customers/{id}/recommendations` (see `customers.rs`), with the same parameters.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;

use super::AppState;
use super::auth::{Access, Subject};
use super::extract::{JsonBody, QueryParams};
use super::openapi::Api;
use super::problem::ApiError;
use crate::catalog::{ProductFilter, SearchHit};
use crate::error::{Error, FieldError};
use crate::privacy::apikeys::Role;
use crate::recommend::stats::StatsReport;
use crate::recommend::{RecommendRequest, Recommendations, SourceName};

/// Routes of this resource.
pub fn routes() -> Api {
    // A shopper's page (a `widget` key) may ask for recommendations and trending products.
    let (read, shop_read, shop_app) =
        (Access::Role(Role::Read), Access::Shopper(Role::Read), Access::Shopper(Role::App));
    Api::new()
        .route(shop_app, Subject::None, routes!(recommend))
        .route(shop_read, Subject::None, routes!(trending))
        .route(read, Subject::None, routes!(stats))
}

/// Query parameters of `GET /v1/customers/{id}/recommendations`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecommendParams {
    /// Items to return (default `[recommend] default_limit`; at most `[recommend] max_limit`, 100
    /// by default).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
    /// Only this category.
    category: Option<String>,
    /// Only this brand.
    brand: Option<String>,
    /// Lowest price.
    price_min: Option<f64>,
    /// Highest price.
    price_max: Option<f64>,
    /// Only in-stock (default) or out-of-stock products.
    in_stock: Option<bool>,
    /// Comma-separated product ids to leave out.
    exclude: Option<String>,
    /// Comma-separated product ids of the current session, most recent first.
    session: Option<String>,
    /// Leave out what the customer bought (default true).
    exclude_purchased: Option<bool>,
    /// Leave out what the customer has seen.
    exclude_seen: Option<bool>,
    /// Diversity: 1 ranks by relevance alone, lower values spread the list (0 to 1).
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

/// The current shopping session.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Session {
    /// Product ids seen in this session, most recent first.
    items: Vec<String>,
}

/// `POST /v1/recommendations` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RecommendBody {
    /// A known customer (personalised when they consented).
    customer_id: Option<String>,
    /// An anonymous or current session.
    session: Option<Session>,
    /// Items to return (default `[recommend] default_limit`; at most `[recommend] max_limit`, 100
    /// by default).
    #[schema(minimum = 1, maximum = 100)]
    limit: Option<usize>,
    /// Filters on the products recommended.
    filters: Option<ProductFilter>,
    /// Leave out what the customer bought (default true).
    exclude_purchased: Option<bool>,
    /// Leave out what the customer has seen.
    exclude_seen: Option<bool>,
    /// Diversity: 1 ranks by relevance alone, lower values spread the list (0 to 1).
    mmr_lambda: Option<f32>,
    /// Weights of the sources in the fusion, by source name.
    #[schema(value_type = Option<HashMap<String, f32>>)]
    weights: Option<HashMap<SourceName, f32>>,
}

/// The trending products.
#[derive(Debug, Serialize, ToSchema)]
pub struct Trending {
    /// Most trending first.
    pub items: Vec<SearchHit>,
}

/// Recommendations for a session or a customer: fused from collaborative, content, session,
/// co-purchase and trending sources, with the reasons.
#[utoipa::path(post, path = "/v1/recommendations", operation_id = "recommend", tag = "recommendations",
    request_body = RecommendBody,
    responses((status = 200, description = "The recommendations.", body = Recommendations)))]
async fn recommend(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<RecommendBody>,
) -> Result<Json<Recommendations>, ApiError> {
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
    Ok(Json(state.services()?.recommender.recommend(request).await?))
}

/// `GET /v1/trending` query parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct TrendingParams {
    /// Items to return (default 10; at most `[recommend] max_limit`, 100 by default).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
    /// Only this category.
    category: Option<String>,
    /// Only this brand.
    brand: Option<String>,
    /// Lowest price.
    price_min: Option<f64>,
    /// Highest price.
    price_max: Option<f64>,
    /// In-stock products (default) or the rest.
    in_stock: Option<bool>,
}

/// What shoppers interact with most now (time-decayed counts).
#[utoipa::path(get, path = "/v1/trending", operation_id = "trending", tag = "recommendations", params(TrendingParams),
    responses((status = 200, description = "The trending products.", body = Trending)))]
async fn trending(
    State(state): State<AppState>,
    QueryParams(p): QueryParams<TrendingParams>,
) -> Result<Json<Trending>, ApiError> {
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
    Ok(Json(Trending { items }))
}

/// `GET /v1/stats/recommendations` query parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct StatsParams {
    /// First day (default: 30 days before `to`).
    from: Option<NaiveDate>,
    /// Last day (default: today, UTC).
    to: Option<NaiveDate>,
}

/// What recommendations led to (impressions, clicks, carts, purchases), per source and day.
#[utoipa::path(get, path = "/v1/stats/recommendations", operation_id = "recommendationStats", tag = "recommendations",
    params(StatsParams), responses((status = 200, description = "The counters.", body = StatsReport)))]
async fn stats(
    State(state): State<AppState>,
    QueryParams(p): QueryParams<StatsParams>,
) -> Result<Json<StatsReport>, ApiError> {
    let to = p.to.unwrap_or_else(|| Utc::now().date_naive());
    // A `from` after `to` is an empty range: no days, zero counts.
    let from = p.from.unwrap_or(to - chrono::Days::new(30));
    Ok(Json(state.services()?.recommender.stats().report(from, to).await?))
}
