//! Authentication, authorization, limits and the audit trail, in one middleware over every
//! route.
//!
//! Each endpoint's rule (`Public` for the probes, the pages and the API document; a least role:
//! `read` < `app` < `admin`; or `Shopper`, a least role and also `widget` keys, on the routes a
//! shopper's page calls) is given where the route is registered (`openapi::Api::route`), so the
//! router, this table and the OpenAPI document come from one list. A matched route missing from
//! the table would need `admin` (closed by default). With API keys configured, a request
//! without a valid key gets 401 (with `WWW-Authenticate`), a key whose role is too low 403. Per-key rate and concurrency limits
//! answer 429 with `Retry-After`. Audited routes (catalog writes, privacy operations, the audit
//! log itself) are appended to the audit log with the outcome, denied attempts included.

use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::problem::Problem;
use crate::privacy::apikeys::{Check, Principal, Role};
use crate::privacy::audit::AuditEntry;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (liveness and readiness probes).
    Public,
    /// Keys with at least this role.
    Role(Role),
    /// Keys with at least this role, and `widget` keys (what a shopper's page may call).
    Shopper(Role),
}

impl Access {
    /// Whether a key of `role` may call a route of this access.
    pub fn allows(self, role: Role) -> bool {
        match self {
            Access::Public => true,
            Access::Role(needed) => role >= needed,
            Access::Shopper(needed) => role >= needed || role == Role::Widget,
        }
    }

    /// The roles named in the document: the least role, and `widget` where it may call too.
    pub fn roles(self) -> Vec<&'static str> {
        match self {
            Access::Public => vec![],
            Access::Role(r) => vec![r.as_str()],
            Access::Shopper(r) => vec![r.as_str(), Role::Widget.as_str()],
        }
    }
}

/// What an audited route acts on: the `{id}` of its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// Not audited.
    None,
    /// Audited, no subject.
    Plain,
    /// Audited; the subject is a customer (recorded as a keyed hash).
    Customer,
    /// Audited; the subject is a product id.
    Product,
    /// Audited; the subject is an API key's name.
    Key,
    /// Audited; the subject is a merchandising rule's id.
    Rule,
}

/// One endpoint's rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// HTTP method.
    pub method: &'static str,
    /// The route as registered.
    pub path: String,
    /// Who may call it.
    pub access: Access,
    /// Whether and how it is audited.
    pub audit: Subject,
}

/// The rule of a matched route.
pub fn rule_for(method: &Method, path: &str) -> Option<&'static Rule> {
    super::openapi::rules().iter().find(|r| r.path == path && r.method == method.as_str())
}

fn presented_key(req: &Request) -> Option<String> {
    let h = req.headers();
    if let Some(v) = h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        if v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ") {
            return Some(v[7..].trim().to_string());
        }
    }
    h.get("x-api-key").and_then(|v| v.to_str().ok()).map(|v| v.trim().to_string())
}

fn too_many(retry: Duration, why: &str) -> Response {
    let secs = retry.as_secs_f64().ceil().max(1.0) as u64;
    let mut r = Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate-limited", "Too many requests", why.to_string())
        .into_response();
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    r
}

/// The `{id}` segment of `path` under the route `pattern`, percent-decoded.
fn path_id(pattern: &str, path: &str) -> Option<String> {
    let at = pattern.split('/').position(|s| s == "{id}")?;
    let raw = path.split('/').nth(at)?;
    Some(percent_encoding::percent_decode_str(raw).decode_utf8_lossy().into_owned())
}

/// The middleware.
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let matched = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string());
    let method = req.method().clone();
    let rule = matched.as_deref().and_then(|p| rule_for(&method, p));
    // A matched route missing from the table is closed: admin only.
    let access = match (rule, &matched) {
        (Some(r), _) => r.access,
        // A known path with another method: any valid key may learn that it is a 405.
        (None, Some(p)) if super::openapi::rules().iter().any(|r| &r.path == p) => Access::Role(Role::Read),
        (None, Some(_)) => Access::Role(Role::Admin),
        (None, None) => Access::Role(Role::Read), // no such route: 404/405 for any valid key
    };
    let security = state.security();
    let principal = match security.keys.check(presented_key(&req).as_deref()) {
        Check::Open => Principal { name: "anonymous".into(), role: Role::Admin },
        Check::Valid(p) => p,
        Check::Invalid if access == Access::Public => Principal { name: "anonymous".into(), role: Role::Read },
        Check::Invalid => {
            let mut r = Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Unauthorized",
                "a valid API key is required: send 'Authorization: Bearer <key>'".to_string(),
            )
            .into_response();
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"aisle\""));
            return r;
        }
    };
    let audit = rule.map(|r| r.audit).unwrap_or(Subject::None);
    let subject = match (audit, rule) {
        (Subject::Customer, Some(r)) => {
            path_id(&r.path, req.uri().path()).map(|id| format!("customer:{}", security.keyring.audit_subject(&id)))
        }
        (Subject::Product, Some(r)) => path_id(&r.path, req.uri().path()).map(|id| format!("product:{id}")),
        (Subject::Key, Some(r)) => path_id(&r.path, req.uri().path()).map(|id| format!("key:{id}")),
        (Subject::Rule, Some(r)) => path_id(&r.path, req.uri().path()).map(|id| format!("rule:{id}")),
        _ => None,
    };
    // The entry is synced to disk on the blocking pool (not on an async worker) before the
    // response leaves.
    let record = |status: StatusCode| {
        let entry = (audit != Subject::None).then(|| AuditEntry {
            ts: chrono::Utc::now(),
            actor: principal.name.clone(),
            role: principal.role.as_str().to_string(),
            action: format!("{} {}", method, matched.as_deref().unwrap_or("?")),
            subject: subject.clone(),
            status: status.as_u16(),
        });
        let state = state.clone();
        async move {
            let Some(entry) = entry else { return };
            match tokio::task::spawn_blocking(move || state.security().audit.append(&entry)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "cannot write the audit log"),
                Err(e) => tracing::error!(error = %e, "the audit log writer failed"),
            }
        }
    };
    if !access.allows(principal.role) {
        record(StatusCode::FORBIDDEN).await;
        return Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Forbidden",
            format!(
                "the key '{}' has the role '{}'; this needs '{}'",
                principal.name,
                principal.role.as_str(),
                access.roles().join("' or '")
            ),
        )
        .into_response();
    }
    let _permit = if access == Access::Public {
        None
    } else {
        if let Err(wait) = security.limits.take(&principal.name) {
            return too_many(wait, "this key is over its request rate; retry after the time given");
        }
        match security.limits.enter(&principal.name) {
            Ok(p) => p,
            Err(()) => {
                return too_many(Duration::from_secs(1), "this key has too many requests in flight; retry shortly");
            }
        }
    };
    // Handlers that answer about the caller (`GET /v1/whoami`) read it from here.
    let mut req = req;
    req.extensions_mut().insert(principal.clone());
    let response = next.run(req).await;
    record(response.status()).await;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_taken_from_the_path() {
        assert_eq!(path_id("/v1/customers/{id}/export", "/v1/customers/a%40b.com/export").as_deref(), Some("a@b.com"));
        assert_eq!(path_id("/v1/admin/audit", "/v1/admin/audit"), None);
    }

    #[test]
    fn every_rule_is_unique() {
        let rules = super::super::openapi::rules();
        assert!(rules.len() > 30, "{} rules", rules.len());
        for (i, a) in rules.iter().enumerate() {
            assert!(!rules[i + 1..].iter().any(|b| a.method == b.method && a.path == b.path), "{a:?} twice");
        }
    }
}
