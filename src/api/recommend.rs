//! `POST /v1/recommendations` (anonymous sessions or known customers), `GET /v1/trending`,
//! `GET /v1/stats/recommendations`, `/v1/stats/experiments/{name}` and `/v1/stats/exposure`.
//! Personalised recommendations for a customer are at `GET /v1/customers/{id}/recommendations`
//! (see `customers.rs`), with the same parameters.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;

use super::AppState;
use super::auth::{Access, Subject};
use super::extract::{JsonBody, PathId, QueryParams};
use super::openapi::Api;
use super::problem::ApiError;
use crate::catalog::{ProductFilter, SearchHit};
use crate::error::{Error, FieldError};
use crate::privacy::apikeys::Role;
use crate::recommend::experiments::{self, ExperimentReport};
use crate::recommend::exposure::ExposureReport;
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
        .route(read, Subject::None, routes!(experiment_stats))
        .route(read, Subject::None, routes!(exposure))
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
    /// Order the candidates with the learned re-ranker when one is trained (default: the
    /// experiment variant's setting, else `[recommend] rerank`).
    rerank: Option<bool>,
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
            session_id: None,
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
            rerank: self.rerank,
        })
    }
}

/// The current shopping session.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Session {
    /// The session's id (as sent with its events): assigns an anonymous shopper to the
    /// variants of experiments. Optional.
    #[schema(min_length = 1, max_length = 200)]
    id: Option<String>,
    /// Product ids seen in this session, most recent first.
    #[serde(default)]
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
    /// Order the candidates with the learned re-ranker when one is trained (default: the
    /// experiment variant's setting, else `[recommend] rerank`).
    rerank: Option<bool>,
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
    let (session_id, session_items) = body.session.map(|s| (s.id, s.items)).unwrap_or_default();
    if session_id.as_ref().is_some_and(|s| s.is_empty() || s.chars().count() > 200) {
        return Err(Error::Invalid(vec![FieldError::new("/session/id", "must be 1 to 200 characters")]).into());
    }
    let request = RecommendRequest {
        customer_id: body.customer_id,
        session_items,
        session_id,
        limit: body.limit,
        filter: body.filters.unwrap_or_default(),
        exclude_purchased: body.exclude_purchased,
        exclude_seen: body.exclude_seen,
        mmr_lambda: body.mmr_lambda,
        weights: body.weights.unwrap_or_default(),
        rerank: body.rerank,
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

impl StatsParams {
    /// The days asked for. A `from` after `to` is an empty range: no days, zero counts.
    fn range(&self) -> (NaiveDate, NaiveDate) {
        let to = self.to.unwrap_or_else(|| Utc::now().date_naive());
        (self.from.unwrap_or(to - chrono::Days::new(30)), to)
    }
}

/// What recommendations led to (impressions, clicks, carts, purchases), per source and day.
#[utoipa::path(get, path = "/v1/stats/recommendations", operation_id = "recommendationStats", tag = "recommendations",
    params(StatsParams), responses((status = 200, description = "The counters.", body = StatsReport)))]
async fn stats(
    State(state): State<AppState>,
    QueryParams(p): QueryParams<StatsParams>,
) -> Result<Json<StatsReport>, ApiError> {
    let (from, to) = p.range();
    Ok(Json(state.services()?.recommender.stats().report(from, to).await?))
}

/// An experiment's report: per variant, impressions, CTR, add-to-cart, conversion and revenue
/// per impression with 95% intervals, each variant against the control, and a verdict.
#[utoipa::path(get, path = "/v1/stats/experiments/{name}", operation_id = "experimentStats", tag = "recommendations",
    params(("name" = String, Path, description = "The experiment's name (`[[experiments]]`)."), StatsParams),
    responses((status = 200, description = "The report.", body = ExperimentReport)))]
async fn experiment_stats(
    State(state): State<AppState>,
    PathId(name): PathId,
    QueryParams(p): QueryParams<StatsParams>,
) -> Result<Json<ExperimentReport>, ApiError> {
    let recommender = &state.services()?.recommender;
    let Some(experiment) = recommender.experiments().iter().find(|e| e.name == name) else {
        return Err(Error::not_found("experiment", name).into());
    };
    let (from, to) = p.range();
    let counters = recommender.stats().variant_counters(&experiment.name, from, to).await?;
    Ok(Json(experiments::report(experiment, &counters, from, to)))
}

/// Exposure of the lists served: impressions per popularity decile (long tail), catalog
/// coverage, concentration (Gini), category and brand exposure against their share of the
/// catalog and of purchases; per source and per experiment variant. It reads every response
/// served in the period: meant for reports, not dashboards refreshed every second.
#[utoipa::path(get, path = "/v1/stats/exposure", operation_id = "exposureStats", tag = "recommendations",
    params(StatsParams), responses((status = 200, description = "The report.", body = ExposureReport)))]
async fn exposure(
    State(state): State<AppState>,
    QueryParams(p): QueryParams<StatsParams>,
) -> Result<Json<ExposureReport>, ApiError> {
    let (from, to) = p.range();
    Ok(Json(state.services()?.recommender.exposure(from, to).await?))
}
