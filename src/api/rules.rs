//! `/v1/rules`: merchandising rules (pin, boost, bury, hide, cap) that steer recommendation
//! lists. Anyone with a read key may list them; only admins write them, and every write is
//! in the audit log. What a rule does is in `crate::recommend::rules`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::routes;

use super::AppState;
use super::auth::{Access, Subject};
use super::extract::{JsonBody, PathId};
use super::openapi::Api;
use super::problem::ApiError;
use crate::privacy::apikeys::Role;
use crate::recommend::rules::{Rule, RuleSpec};

/// Routes of this resource.
pub fn routes() -> Api {
    let (read, admin) = (Access::Role(Role::Read), Access::Role(Role::Admin));
    Api::new()
        .route(read, Subject::None, routes!(list))
        .route(read, Subject::None, routes!(read_one))
        .route(admin, Subject::Rule, routes!(replace))
        .route(admin, Subject::Rule, routes!(remove))
}

/// A rule and whether it is in effect now.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleView {
    /// The rule.
    #[serde(flatten)]
    pub rule: Rule,
    /// In effect now (inside its time window).
    pub in_effect: bool,
}

impl From<Rule> for RuleView {
    fn from(rule: Rule) -> Self {
        let in_effect = rule.spec.in_effect(Utc::now());
        Self { rule, in_effect }
    }
}

/// `GET /v1/rules`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleList {
    /// Every rule, by id.
    pub rules: Vec<RuleView>,
}

/// Every merchandising rule.
#[utoipa::path(get, path = "/v1/rules", operation_id = "listRules", tag = "rules",
    responses((status = 200, description = "The rules, by id.", body = RuleList)))]
async fn list(State(state): State<AppState>) -> Result<Json<RuleList>, ApiError> {
    let all = state.services()?.recommender.rules().all().await?;
    Ok(Json(RuleList { rules: all.iter().cloned().map(RuleView::from).collect() }))
}

/// One merchandising rule.
#[utoipa::path(get, path = "/v1/rules/{id}", operation_id = "getRule", tag = "rules",
    params(("id" = String, Path, description = "The rule's id.")),
    responses((status = 200, description = "The rule.", body = RuleView)))]
async fn read_one(State(state): State<AppState>, PathId(id): PathId) -> Result<Json<RuleView>, ApiError> {
    Ok(Json(state.services()?.recommender.rules().get(&id).await?.into()))
}

/// Create or replace a merchandising rule. It is in effect on every replica within two
/// seconds.
#[utoipa::path(put, path = "/v1/rules/{id}", operation_id = "putRule", tag = "rules",
    params(("id" = String, Path, description = "The rule's id: 1 to 64 letters, digits, '-' or '_'; named in explanations.")),
    request_body = RuleSpec,
    responses((status = 200, description = "Replaced.", body = RuleView),
        (status = 201, description = "Created.", body = RuleView)))]
async fn replace(
    State(state): State<AppState>,
    PathId(id): PathId,
    JsonBody(spec): JsonBody<RuleSpec>,
) -> Result<(StatusCode, Json<RuleView>), ApiError> {
    let (rule, created) = state.services()?.recommender.rules().put(&id, spec).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(rule.into())))
}

/// Delete a merchandising rule.
#[utoipa::path(delete, path = "/v1/rules/{id}", operation_id = "deleteRule", tag = "rules",
    params(("id" = String, Path, description = "The rule's id.")),
    responses((status = 204, description = "Deleted.")))]
async fn remove(State(state): State<AppState>, PathId(id): PathId) -> Result<StatusCode, ApiError> {
    state.services()?.recommender.rules().delete(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
