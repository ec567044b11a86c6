//! `[server]`: the HTTP edge (address, body limits, shutdown, log format).
//! Not the routes or the auth keys: those are `[auth]`.

use serde::{Deserialize, Serialize};

/// `[server]`: the HTTP edge.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: String,
    /// Largest accepted request body in bytes (413 above).
    pub max_body_bytes: usize,
    /// Most products accepted in one batch request.
    pub max_batch_items: usize,
    /// Seconds that in-flight requests get to finish on shutdown.
    pub shutdown_grace_secs: u64,
    /// Log format: `text` or `json`.
    pub log_format: String,
    /// Seconds a client has to send a request's headers, and that an idle keep-alive
    /// connection is kept; then the connection is closed.
    pub header_timeout_secs: u64,
    /// Seconds a client has to send a request's body (408 after).
    pub body_timeout_secs: u64,
    /// Origins (`https://shop.example`) whose pages may call the API from a browser: the
    /// embeddable widget on a retailer's own pages. None by default (same origin only).
    pub cors_origins: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            max_body_bytes: 8 * 1024 * 1024,
            max_batch_items: 1000,
            shutdown_grace_secs: 20,
            log_format: "text".into(),
            header_timeout_secs: 10,
            body_timeout_secs: 30,
            cors_origins: vec![],
        }
    }
}

impl ServerConfig {
    pub(super) fn validate(&self, problems: &mut Vec<String>) {
        if self.max_body_bytes < 1024 {
            problems.push("server.max_body_bytes must be at least 1024".to_string());
        }
        if self.max_batch_items == 0 {
            problems.push("server.max_batch_items must be at least 1".to_string());
        }
        if self.header_timeout_secs == 0 || self.body_timeout_secs == 0 {
            problems.push("server.header_timeout_secs and server.body_timeout_secs must be at least 1".to_string());
        }
        for o in &self.cors_origins {
            let rest = o.strip_prefix("https://").or_else(|| o.strip_prefix("http://"));
            if rest.is_none_or(|r| r.is_empty() || r.contains('/') || !r.is_ascii() || r.contains(char::is_whitespace))
            {
                problems.push(format!("server.cors_origins: '{o}' is not an origin like https://shop.example"));
            }
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            problems.push(format!("server.log_format must be 'text' or 'json', not '{}'", self.log_format));
        }
    }
}
