//! `/v1/products`: create, replace, read, delete, list and batch-write products.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::extract::{JsonBody, PathId, QueryParams};
use super::problem::ApiError;
use crate::catalog::import::{Row, import};
use crate::catalog::product::check_id;
use crate::catalog::{ProductFilter, ProductInput, WriteStatus};
use crate::error::{Error, FieldError};

/// Routes of this resource.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/products", get(list))
        .route("/v1/products:batch", post(batch))
        .route("/v1/products/{id}", get(read).put(replace).delete(remove))
}

fn checked_id(id: &str) -> Result<(), ApiError> {
    check_id(id).map_err(|why| ApiError::from(Error::invalid("/id", why)))
}

async fn replace(
    State(state): State<AppState>,
    PathId(id): PathId,
    JsonBody(input): JsonBody<ProductInput>,
) -> Result<Response, ApiError> {
    checked_id(&id)?;
    let catalog = &state.services()?.catalog;
    let product = catalog.validate(input, Some(&id)).map_err(Error::Invalid)?;
    let summary = catalog.upsert(vec![product.clone()]).await?;
    let status = match summary.statuses.first().map(|s| s.1) {
        Some(WriteStatus::Created) => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    Ok((status, Json(product)).into_response())
}

async fn read(State(state): State<AppState>, PathId(id): PathId) -> Result<Response, ApiError> {
    checked_id(&id)?;
    if crate::fault::armed("api.products.read") {
        // Fault injection: an internal failure whose message names a server path.
        let dir = state.config().store.data_dir.join("products");
        assert!(id != "panic", "injected panic reading {}", dir.display());
        return Err(crate::error::Error::io(
            format!("cannot read {}", dir.display()),
            std::io::Error::other("injected"),
        )
        .into());
    }
    let product = state.services()?.catalog.get(&id).await?;
    Ok(Json(product).into_response())
}

async fn remove(State(state): State<AppState>, PathId(id): PathId) -> Result<Response, ApiError> {
    checked_id(&id)?;
    if state.services()?.catalog.delete(&id).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(Error::not_found("product", id).into())
    }
}

/// `GET /v1/products` query parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    limit: Option<usize>,
    cursor: Option<String>,
    category: Option<String>,
    brand: Option<String>,
    in_stock: Option<bool>,
    price_min: Option<f64>,
    price_max: Option<f64>,
}

/// Largest page of `GET /v1/products`.
const MAX_PAGE: usize = 500;

async fn list(State(state): State<AppState>, QueryParams(p): QueryParams<ListParams>) -> Result<Response, ApiError> {
    let limit = p.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_PAGE {
        return Err(Error::invalid("/limit", format!("must be between 1 and {MAX_PAGE}")).into());
    }
    // Merchandisers list hidden products too.
    let filter = ProductFilter {
        include_hidden: true,
        ..ProductFilter::from_query(p.category, p.brand, p.price_min, p.price_max, p.in_stock)
    };
    let errors = filter.check("");
    if !errors.is_empty() {
        return Err(Error::Invalid(errors).into());
    }
    let (items, next) = state.services()?.catalog.list(&filter, p.cursor.as_deref(), limit).await?;
    Ok(Json(json!({"items": items, "next_cursor": next})).into_response())
}

/// `POST /v1/products:batch` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    products: Vec<Value>,
}

async fn batch(State(state): State<AppState>, JsonBody(body): JsonBody<BatchRequest>) -> Result<Response, ApiError> {
    let max = state.config().server.max_batch_items;
    if body.products.len() > max {
        return Err(Error::invalid(
            "/products",
            format!("at most {max} products per batch; got {}", body.products.len()),
        )
        .into());
    }
    let catalog = &state.services()?.catalog;
    let rows: Vec<Row> = body.products.into_iter().enumerate().map(|(i, v)| Ok((i, v))).collect();
    let n = rows.len().max(1);
    let mut report = import(catalog, rows, n, |_| {}).await?;
    // Rows are array indices here: point into the request body.
    for e in &mut report.errors {
        let prefix = format!("/products/{}", e.row);
        e.errors = std::mem::take(&mut e.errors).into_iter().map(|f: FieldError| f.under(&prefix)).collect();
    }
    Ok(Json(report).into_response())
}
