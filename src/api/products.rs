//! `/v1/products`: create, replace, read, delete, list and batch-write products.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;

use super::AppState;
use super::auth::{Access, Subject};
use super::extract::{JsonBody, PathId, QueryParams};
use super::openapi::Api;
use super::problem::ApiError;
use crate::catalog::import::{ImportReport, Row, import};
use crate::catalog::product::check_id;
use crate::catalog::{Product, ProductFilter, ProductInput, WriteStatus};
use crate::error::{Error, FieldError};
use crate::privacy::apikeys::Role;

/// Routes of this resource.
pub fn routes() -> Api {
    let (read_only, admin) = (Access::Role(Role::Read), Access::Role(Role::Admin));
    Api::new()
        .route(read_only, Subject::None, routes!(list))
        .route(admin, Subject::Plain, routes!(batch))
        .route(read_only, Subject::None, routes!(read))
        .route(admin, Subject::Product, routes!(replace))
        .route(admin, Subject::Product, routes!(remove))
}

fn checked_id(id: &str) -> Result<(), ApiError> {
    check_id(id).map_err(|why| ApiError::from(Error::invalid("/id", why)))
}

/// Create or replace a product (its text is embedded before the answer).
#[utoipa::path(put, path = "/v1/products/{id}", operation_id = "putProduct", tag = "products",
    params(("id" = String, Path, description = "Product id.")), request_body = ProductInput,
    responses((status = 200, description = "Replaced.", body = Product), (status = 201, description = "Created.", body = Product)))]
async fn replace(
    State(state): State<AppState>,
    PathId(id): PathId,
    JsonBody(input): JsonBody<ProductInput>,
) -> Result<(StatusCode, Json<Product>), ApiError> {
    checked_id(&id)?;
    let catalog = &state.services()?.catalog;
    let product = catalog.validate(input, Some(&id)).map_err(Error::Invalid)?;
    let summary = catalog.upsert(vec![product.clone()]).await?;
    let status = match summary.statuses.first().map(|s| s.1) {
        Some(WriteStatus::Created) => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    Ok((status, Json(product)))
}

/// A product.
#[utoipa::path(get, path = "/v1/products/{id}", operation_id = "getProduct", tag = "products",
    params(("id" = String, Path, description = "Product id.")),
    responses((status = 200, description = "The product.", body = Product)))]
async fn read(State(state): State<AppState>, PathId(id): PathId) -> Result<Json<Product>, ApiError> {
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
    Ok(Json(product))
}

/// Delete a product.
#[utoipa::path(delete, path = "/v1/products/{id}", operation_id = "deleteProduct", tag = "products",
    params(("id" = String, Path, description = "Product id.")),
    responses((status = 204, description = "Deleted.")))]
async fn remove(State(state): State<AppState>, PathId(id): PathId) -> Result<StatusCode, ApiError> {
    checked_id(&id)?;
    if state.services()?.catalog.delete(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::not_found("product", id).into())
    }
}

/// `GET /v1/products` query parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Page size (1 to 500; default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
    /// Where the page starts: the `next_cursor` of the page before.
    cursor: Option<String>,
    /// Only this category.
    category: Option<String>,
    /// Only this brand.
    brand: Option<String>,
    /// Only in-stock (or out-of-stock) products.
    in_stock: Option<bool>,
    /// Lowest price.
    price_min: Option<f64>,
    /// Highest price.
    price_max: Option<f64>,
}

/// A page of products.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductPage {
    /// The products, by id.
    pub items: Vec<Product>,
    /// The cursor of the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// Largest page of `GET /v1/products`.
const MAX_PAGE: usize = 500;

/// List products (hidden ones too), a page at a time, with filters.
#[utoipa::path(get, path = "/v1/products", operation_id = "listProducts", tag = "products", params(ListParams),
    responses((status = 200, description = "A page.", body = ProductPage)))]
async fn list(
    State(state): State<AppState>,
    QueryParams(p): QueryParams<ListParams>,
) -> Result<Json<ProductPage>, ApiError> {
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
    Ok(Json(ProductPage { items, next_cursor: next }))
}

/// `POST /v1/products:batch` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    /// The products (at most `[server] max_batch_items`); each is judged on its own.
    #[schema(value_type = Vec<ProductInput>)]
    products: Vec<Value>,
}

/// Create or replace many products. Each is judged on its own: bad ones are reported under
/// `/products/{i}`, the others written.
#[utoipa::path(post, path = "/v1/products:batch", operation_id = "writeProducts", tag = "products",
    request_body = BatchRequest,
    responses((status = 200, description = "What became of each product.", body = ImportReport)))]
async fn batch(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<BatchRequest>,
) -> Result<Json<ImportReport>, ApiError> {
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
    Ok(Json(report))
}
