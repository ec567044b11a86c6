//! Admin endpoints: `GET /v1/admin/audit` (the audit log), `POST /v1/admin/retention` (purge
//! expired events now instead of at the next scheduled run) and `POST /v1/admin/train` (train
//! the collaborative model from the stored events; one run at a time, 409 while one runs).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::extract::QueryParams;
use super::problem::ApiError;
use crate::error::Error;

/// Routes of this resource.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/audit", get(audit))
        .route("/v1/admin/retention", post(retention))
        .route("/v1/admin/train", post(train))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditParams {
    limit: Option<usize>,
    since: Option<DateTime<Utc>>,
}

async fn audit(State(state): State<AppState>, QueryParams(p): QueryParams<AuditParams>) -> Result<Response, ApiError> {
    let limit = p.limit.unwrap_or(100);
    if !(1..=10_000).contains(&limit) {
        return Err(Error::invalid("/limit", "must be between 1 and 10000").into());
    }
    let entries = state.security().audit.read(p.since, limit)?;
    Ok(Json(json!({"entries": entries})).into_response())
}

async fn retention(State(state): State<AppState>) -> Result<Response, ApiError> {
    let purged = state.services()?.events.purge_expired(Utc::now()).await?;
    Ok(Json(json!({"purged_events": purged, "max_age_days": state.config().events.max_age_days})).into_response())
}

async fn train(State(state): State<AppState>) -> Result<Response, ApiError> {
    let report = state.services()?.collab.train().await?;
    Ok(Json(report).into_response())
}
