//! Admin endpoints: `GET /v1/admin/audit` (the audit log), `POST /v1/admin/retention` (purge
//! expired events now instead of at the next scheduled run) and `POST /v1/admin/train` (train
//! the collaborative model from the stored events; one run at a time, 409 while one runs).

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;

use super::AppState;
use super::auth::{Access, Subject};
use super::extract::QueryParams;
use super::openapi::Api;
use super::problem::ApiError;
use crate::error::Error;
use crate::privacy::apikeys::Role;
use crate::privacy::audit::{AuditEntry, AuditFilter};
use crate::recommend::train::TrainReport;

/// Routes of this resource.
pub fn routes() -> Api {
    let admin = Access::Role(Role::Admin);
    Api::new().route(admin, Subject::Plain, routes!(audit)).route(admin, Subject::Plain, routes!(retention)).route(
        admin,
        Subject::Plain,
        routes!(train),
    )
}

/// `GET /v1/admin/audit` query parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AuditParams {
    /// Most entries to return (1 to 10000; default 100).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<usize>,
    /// Only entries at or after this time (RFC 3339).
    since: Option<DateTime<Utc>>,
    /// Only entries at or before this time (RFC 3339).
    until: Option<DateTime<Utc>>,
    /// Only entries of this actor (an API key's name, `anonymous` or `cli`).
    #[param(max_length = 100)]
    actor: Option<String>,
    /// Only entries whose action contains this text (any case), e.g. `customers` or `DELETE`.
    #[param(max_length = 100)]
    action: Option<String>,
}

/// The audit log's entries.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntries {
    /// Oldest first.
    pub entries: Vec<AuditEntry>,
}

/// What a retention run purged.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetentionReport {
    /// Events deleted.
    pub purged_events: usize,
    /// Events older than this many days are deleted.
    pub max_age_days: f64,
}

/// Read the audit log (catalog writes, privacy operations, denied attempts).
#[utoipa::path(get, path = "/v1/admin/audit", operation_id = "readAuditLog", tag = "admin", params(AuditParams),
    responses((status = 200, description = "The entries.", body = AuditEntries)))]
async fn audit(
    State(state): State<AppState>,
    QueryParams(p): QueryParams<AuditParams>,
) -> Result<Json<AuditEntries>, ApiError> {
    let limit = p.limit.unwrap_or(100);
    if !(1..=10_000).contains(&limit) {
        return Err(Error::invalid("/limit", "must be between 1 and 10000").into());
    }
    let filter = AuditFilter { since: p.since, until: p.until, actor: p.actor, action: p.action };
    let entries = state.security().audit.read(&filter, limit)?;
    Ok(Json(AuditEntries { entries }))
}

/// Purge the events older than the retention period now.
#[utoipa::path(post, path = "/v1/admin/retention", operation_id = "runRetention", tag = "admin",
    responses((status = 200, description = "What was purged.", body = RetentionReport)))]
async fn retention(State(state): State<AppState>) -> Result<Json<RetentionReport>, ApiError> {
    let purged = state.services()?.events.purge_expired(Utc::now()).await?;
    Ok(Json(RetentionReport { purged_events: purged, max_age_days: state.config().events.max_age_days }))
}

/// Train the collaborative model from the stored events, and the learned re-ranker from the
/// lists shown and their outcomes (one run at a time).
#[utoipa::path(post, path = "/v1/admin/train", operation_id = "train", tag = "admin",
    responses((status = 200, description = "What the run did.", body = TrainReport),
        (status = 409, description = "A run is under way.", body = super::problem::ProblemDocument, content_type = "application/problem+json")))]
async fn train(State(state): State<AppState>) -> Result<Json<TrainReport>, ApiError> {
    let services = state.services()?;
    let mut report = services.collab.train().await?;
    report.ranker = Some(services.recommender.train_ranker().await?);
    Ok(Json(report))
}
