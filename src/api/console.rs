//! What the console needs beyond the public API: who a key is (`GET /v1/whoami`), events per
//! day by kind (`GET /v1/stats/events`), the texts a product's vectors come from
//! (`GET /v1/products/{id}/text`), the `aisle eval` and `aisle bench` reports found under
//! `DATA_DIR/reports` (`GET /v1/reports`), the configuration in effect with its secrets masked
//! (`GET /v1/admin/config`) and API keys (`GET`/`POST /v1/admin/keys`,
//! `DELETE /v1/admin/keys/{id}`). The pages themselves are in `pages`.

use std::collections::BTreeMap;
use std::path::Path;

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;

use super::AppState;
use super::auth::{Access, Subject};
use super::extract::{JsonBody, PathId, QueryParams};
use super::openapi::Api;
use super::problem::ApiError;
use crate::error::Error;
use crate::privacy::apikeys::{AuthMode, Principal, Role, create_key, revoke_key};

/// Routes of this resource.
pub fn routes() -> Api {
    let (read, admin) = (Access::Role(Role::Read), Access::Role(Role::Admin));
    Api::new()
        .route(Access::Shopper(Role::Read), Subject::None, routes!(whoami))
        .route(read, Subject::None, routes!(events_per_day))
        .route(read, Subject::None, routes!(reports))
        .route(read, Subject::None, routes!(product_text))
        .route(admin, Subject::None, routes!(config))
        .route(admin, Subject::None, routes!(list_keys))
        .route(admin, Subject::Plain, routes!(create))
        .route(admin, Subject::Key, routes!(revoke))
}

/// `GET /v1/whoami`: the key that made the request.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmI {
    /// The key's name (`anonymous` on a server without keys).
    pub name: String,
    /// Its role: `read`, `app` or `admin`.
    pub role: Role,
    /// How the server authenticates requests.
    pub auth: AuthMode,
}

/// Who is calling: the key's name and role, and how the server authenticates.
#[utoipa::path(get, path = "/v1/whoami", operation_id = "whoAmI", tag = "console",
    responses((status = 200, description = "The caller.", body = WhoAmI)))]
async fn whoami(State(state): State<AppState>, Extension(p): Extension<Principal>) -> Json<WhoAmI> {
    Json(WhoAmI { name: p.name, role: p.role, auth: state.security().keys.mode() })
}

/// `GET /v1/stats/events` query parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DaysParams {
    /// Days to report, ending today (UTC; 1 to 90, default 14).
    #[param(minimum = 1, maximum = 90)]
    days: Option<i64>,
}

/// Events stored on one day.
#[derive(Debug, Serialize, ToSchema)]
pub struct DayEvents {
    /// The day (UTC).
    pub day: NaiveDate,
    /// Events by kind (`view`, `click`, `cart`, `purchase`, `rating`, `return`, `impression`).
    pub counts: BTreeMap<String, usize>,
}

/// `GET /v1/stats/events`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventsPerDay {
    /// First day.
    pub from: NaiveDate,
    /// Last day (today).
    pub to: NaiveDate,
    /// One entry per day, oldest first.
    pub per_day: Vec<DayEvents>,
}

/// Events stored per day and kind, for the last `days` days.
#[utoipa::path(get, path = "/v1/stats/events", operation_id = "eventsPerDay", tag = "stats", params(DaysParams),
    responses((status = 200, description = "Counts per day and kind.", body = EventsPerDay)))]
async fn events_per_day(
    State(state): State<AppState>,
    QueryParams(p): QueryParams<DaysParams>,
) -> Result<Json<EventsPerDay>, ApiError> {
    let days = p.days.unwrap_or(14);
    if !(1..=90).contains(&days) {
        return Err(Error::invalid("/days", "must be between 1 and 90").into());
    }
    let to = Utc::now().date_naive();
    let from = to - Duration::days(days - 1);
    let rows = state.services()?.events.per_day(from, to).await?;
    let per_day = rows
        .into_iter()
        .map(|(day, counts)| DayEvents {
            day,
            counts: counts.into_iter().map(|(k, n)| (k.as_str().to_string(), n)).collect(),
        })
        .collect();
    Ok(Json(EventsPerDay { from, to, per_day }))
}

/// `GET /v1/products/{id}/text`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductText {
    /// The product id.
    pub id: String,
    /// The text its dense vector was computed from.
    pub embedded: String,
    /// The text its keyword (BM25) vector was computed from.
    pub keywords: String,
}

/// The texts a product's vectors are computed from (what search and similarity see).
#[utoipa::path(get, path = "/v1/products/{id}/text", operation_id = "getProductText", tag = "products",
    params(("id" = String, Path, description = "Product id.")),
    responses((status = 200, description = "The texts.", body = ProductText)))]
async fn product_text(State(state): State<AppState>, PathId(id): PathId) -> Result<Json<ProductText>, ApiError> {
    let p = state.services()?.catalog.get(&id).await?;
    Ok(Json(ProductText {
        embedded: crate::catalog::text::embedding_text(&p),
        keywords: crate::catalog::text::keyword_text(&p),
        id: p.id,
    }))
}

/// One report file.
#[derive(Debug, Serialize, ToSchema)]
pub struct Report {
    /// Its path under `DATA_DIR/reports`.
    pub name: String,
    /// `bench` (`aisle bench --json`), `eval` (`aisle eval`'s report.json), `assistant-eval`
    /// (`aisle assistant-eval --json`) or `other`.
    pub kind: String,
    /// When the file was last written.
    pub modified: Option<DateTime<Utc>>,
    /// The report as written.
    #[schema(value_type = Object)]
    pub report: Value,
}

/// `GET /v1/reports`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Reports {
    /// Where the server looked.
    pub dir: String,
    /// Newest first.
    pub reports: Vec<Report>,
    /// Files that could not be read as JSON reports, with why.
    pub skipped: Vec<String>,
}

/// The `aisle eval` and `aisle bench` reports found under `DATA_DIR/reports`.
#[utoipa::path(get, path = "/v1/reports", operation_id = "listReports", tag = "console",
    responses((status = 200, description = "The reports, newest first.", body = Reports)))]
async fn reports(State(state): State<AppState>) -> Result<Json<Reports>, ApiError> {
    let dir = state.config().store.data_dir.join("reports");
    let found =
        tokio::task::spawn_blocking(move || read_reports(&dir)).await.map_err(|e| Error::Internal(e.to_string()))?;
    Ok(Json(found))
}

/// Largest report file read (bigger ones are skipped).
const MAX_REPORT_BYTES: u64 = 4 << 20;
/// Most reports returned.
const MAX_REPORTS: usize = 50;

/// `*.json` files in `dir` and one level below (`aisle eval --out DIR` writes `DIR/report.json`).
fn read_reports(dir: &Path) -> Reports {
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    let mut visit = |d: &Path, depth: usize, files: &mut Vec<(std::path::PathBuf, std::time::SystemTime)>| {
        let Ok(entries) = std::fs::read_dir(d) else { return vec![] };
        let mut subdirs = vec![];
        for e in entries.flatten() {
            let (path, Ok(meta)) = (e.path(), e.metadata()) else { continue };
            if meta.is_dir() && depth == 0 {
                subdirs.push(path);
            } else if meta.is_file() && path.extension().is_some_and(|x| x == "json") {
                if meta.len() > MAX_REPORT_BYTES {
                    skipped.push(format!("{}: larger than 4 MiB", path.display()));
                } else {
                    files.push((path, meta.modified().unwrap_or(std::time::UNIX_EPOCH)));
                }
            }
        }
        subdirs
    };
    for sub in visit(dir, 0, &mut files) {
        visit(&sub, 1, &mut files);
    }
    files.sort_by_key(|f| std::cmp::Reverse(f.1));
    let mut reports = Vec::new();
    for (path, modified) in files.into_iter().take(MAX_REPORTS) {
        let name = path.strip_prefix(dir).unwrap_or(&path).display().to_string();
        let parsed = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Value>(&b).map_err(|e| e.to_string()));
        match parsed {
            Ok(report) => reports.push(Report {
                kind: report_kind(&report).into(),
                name,
                modified: Some(modified.into()),
                report,
            }),
            Err(e) => skipped.push(format!("{name}: {e}")),
        }
    }
    Reports { dir: dir.display().to_string(), reports, skipped }
}

/// What wrote a report, from its shape.
fn report_kind(v: &Value) -> &'static str {
    let first_row = v.get("rows").and_then(Value::as_array).and_then(|r| r.first());
    match first_row {
        Some(r) if r.get("bench").is_some() => "bench",
        Some(r) if r.get("model").is_some() && v.get("dataset").is_some() => "eval",
        _ if v.get("cases").is_some() || v.get("catalog").is_some() => "assistant-eval",
        _ => "other",
    }
}

/// The configuration in effect, secrets masked.
#[utoipa::path(get, path = "/v1/admin/config", operation_id = "readConfig", tag = "admin",
    responses((status = 200, description = "The configuration in effect: file, environment and flags applied, every secret (key hashes, passwords, API keys of a Qdrant server) shown as `***`.", body = Object)))]
async fn config(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let mut v = serde_json::to_value(state.config()).map_err(|e| Error::Internal(e.to_string()))?;
    mask_secrets(&mut v);
    Ok(Json(v))
}

/// Replace the value of every key that names a secret (`secret`, `qdrant_api_key`, `sha256`,
/// ...; not `max_tokens`) with `***`, unless it is unset (null or empty), which stays visible.
fn mask_secrets(v: &mut Value) {
    const SECRET: [&str; 6] = ["secret", "password", "api_key", "sha256", "token", "pepper"];
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                let k = k.to_ascii_lowercase();
                let names_secret = SECRET.iter().any(|s| k == *s || k.ends_with(&format!("_{s}")));
                let unset = val.is_null() || val.as_str().is_some_and(str::is_empty);
                if names_secret && !unset {
                    *val = Value::String("***".into());
                } else {
                    mask_secrets(val);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_secrets),
        _ => {}
    }
}

/// An API key as listed (never the key itself: only its hash is kept).
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyInfo {
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// The first 12 hex digits of the key's SHA-256.
    pub fingerprint: String,
    /// When it was made (none for keys from the configuration).
    pub created_at: Option<DateTime<Utc>>,
    /// From `[auth] keys` in the configuration (revoke it there), not from the keys file.
    pub configured: bool,
}

/// `GET /v1/admin/keys`.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    /// The keys in effect.
    pub keys: Vec<KeyInfo>,
}

/// The API keys in effect.
#[utoipa::path(get, path = "/v1/admin/keys", operation_id = "listKeys", tag = "admin",
    responses((status = 200, description = "The keys.", body = KeyList)))]
async fn list_keys(State(state): State<AppState>) -> Json<KeyList> {
    let keys = state
        .security()
        .keys
        .list()
        .into_iter()
        .map(|(k, configured)| KeyInfo {
            fingerprint: k.sha256.chars().take(12).collect(),
            name: k.name,
            role: k.role,
            created_at: k.created_at,
            configured,
        })
        .collect();
    Json(KeyList { keys })
}

/// `POST /v1/admin/keys` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// Name (1 to 100 characters; unique).
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// Role.
    pub role: Role,
}

/// A key just made: the only time the key itself is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// The key: send it as `Authorization: Bearer <key>`. Only its hash is kept.
    pub key: String,
    /// When it was made.
    pub created_at: Option<DateTime<Utc>>,
}

/// Create an API key; the key is in this response only.
#[utoipa::path(post, path = "/v1/admin/keys", operation_id = "createKey", tag = "admin", request_body = NewKey,
    responses((status = 201, description = "The key, shown once.", body = CreatedKey),
        (status = 409, description = "A key of that name exists.", body = super::problem::ProblemDocument, content_type = "application/problem+json")))]
async fn create(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<NewKey>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let dir = state.config().store.data_dir.clone();
    let (key, stored) = tokio::task::spawn_blocking(move || create_key(&dir, &body.name, body.role))
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
    state.security().keys.reload();
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey { name: stored.name, role: stored.role, key, created_at: stored.created_at }),
    ))
}

/// Revoke an API key of the keys file (at once: the server re-reads the file). Revoking the
/// last key never opens the server: requests that need a key are refused until one is made.
#[utoipa::path(delete, path = "/v1/admin/keys/{id}", operation_id = "revokeKey", tag = "admin",
    params(("id" = String, Path, description = "The key's name.")),
    responses((status = 204, description = "Revoked."),
        (status = 409, description = "The key comes from the configuration.", body = super::problem::ProblemDocument, content_type = "application/problem+json")))]
async fn revoke(State(state): State<AppState>, PathId(name): PathId) -> Result<StatusCode, ApiError> {
    if state.security().keys.list().iter().any(|(k, configured)| *configured && k.name == name) {
        return Err(Error::Conflict(format!(
            "the key '{name}' comes from [auth] keys in the configuration; remove it there"
        ))
        .into());
    }
    let dir = state.config().store.data_dir.clone();
    tokio::task::spawn_blocking(move || revoke_key(&dir, &name))
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
    state.security().keys.reload();
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_at_any_depth() {
        let mut v = serde_json::json!({
            "auth": {"keys": [{"name": "a", "role": "admin", "sha256": "abc"}], "open": false},
            "store": {"qdrant_api_key": "k", "qdrant_url": "http://q"},
            "privacy": {"secret": "s3cret", "pseudonym_secret": null},
            "chat": {"default_max_tokens": 256, "auth_token": ""},
        });
        mask_secrets(&mut v);
        assert_eq!(v["auth"]["keys"][0]["sha256"], "***");
        assert_eq!(v["auth"]["keys"][0]["name"], "a");
        assert_eq!(v["store"]["qdrant_api_key"], "***");
        assert_eq!(v["store"]["qdrant_url"], "http://q");
        assert_eq!(v["privacy"]["secret"], "***");
        assert!(v["privacy"]["pseudonym_secret"].is_null(), "an unset secret stays visibly unset");
        assert_eq!(v["chat"]["default_max_tokens"], 256, "a setting that merely contains 'token' is shown");
        assert_eq!(v["chat"]["auth_token"], "");
    }

    #[test]
    fn reports_are_found_and_named_by_their_shape() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bench.json"), r#"{"rows":[{"bench":"embed","metric":"m","value":1}]}"#)
            .unwrap();
        std::fs::create_dir(dir.path().join("ml100k")).unwrap();
        std::fs::write(dir.path().join("ml100k/report.json"), r#"{"dataset":"ml-100k","rows":[{"model":"EASE"}]}"#)
            .unwrap();
        std::fs::write(dir.path().join("broken.json"), "{").unwrap();
        let found = read_reports(dir.path());
        let mut kinds: Vec<_> = found.reports.iter().map(|r| (r.name.as_str(), r.kind.as_str())).collect();
        kinds.sort();
        assert_eq!(kinds, [("bench.json", "bench"), ("ml100k/report.json", "eval")]);
        assert_eq!(found.skipped.len(), 1, "{:?}", found.skipped);
        assert!(read_reports(&dir.path().join("missing")).reports.is_empty());
    }
}
