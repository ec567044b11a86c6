//! `[auth]`: API keys given in the configuration and the per-key limits.
//! Not the key ring itself (that is `privacy::apikeys`) nor the HTTP checks (`api::auth`).

use serde::{Deserialize, Serialize};

/// `[auth]`: API keys with roles, and per-key limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Keys given in the configuration (besides those made by `aisle keys create`, kept in
    /// `DATA_DIR/keys.json`).
    pub keys: Vec<ApiKeyConfig>,
    /// Serve without keys, on purpose: with no key anywhere every request is allowed. Without
    /// this, a server with no keys serves a loopback address only, and one that had keys
    /// refuses requests once none is left.
    pub open: bool,
    /// Requests per second each key may make (0 = no limit); above it: 429 + Retry-After.
    pub rate_per_sec: f64,
    /// Requests a key may make in a burst above its rate.
    pub burst: f64,
    /// Requests of one key in flight at once (0 = no limit); above it: 429 + Retry-After.
    pub max_concurrent: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self { keys: vec![], open: false, rate_per_sec: 0.0, burst: 50.0, max_concurrent: 0 }
    }
}

/// An API key given in the configuration: only its SHA-256 is stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// A name for logs and the audit log.
    pub name: String,
    /// `admin`, `app` or `read`.
    pub role: String,
    /// Hex SHA-256 of the key (`aisle keys hash` prints it).
    pub sha256: String,
}

impl AuthConfig {
    pub(super) fn validate(&self, problems: &mut Vec<String>) {
        if self.rate_per_sec < 0.0 || self.burst < 1.0 {
            problems.push("auth.rate_per_sec must not be negative and auth.burst must be at least 1".to_string());
        }
        for k in &self.keys {
            if !matches!(k.role.as_str(), "admin" | "app" | "read" | "widget") {
                problems
                    .push(format!("auth.keys '{}': role must be admin, app, read or widget, not '{}'", k.name, k.role));
            }
            if k.sha256.len() != 64 || hex::decode(&k.sha256).is_err() {
                problems.push(format!("auth.keys '{}': sha256 must be 64 hex digits", k.name));
            }
        }
    }
}
