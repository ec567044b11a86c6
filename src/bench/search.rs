//! `aisle bench search`: p50/p95/p99 latency and throughput of concurrent clients searching
//! over loopback HTTP (`POST /v1/search`), against the server that [`super::serve`] started.
//!
//! Not for: starting the server or measuring the anchor ([`super::serve`]), or search itself
//! (`crate::catalog`).

use std::time::Duration;

use serde_json::json;

use super::bar;
use super::load::closed_loop_post;
use super::report::Row;
use super::serve::latency_rows;

/// Search the server at `base` with `clients` clients for `seconds` (after a one-second warm-up);
/// `label` names the shop, `engine_ms` is the anchor.
pub fn run(base: &str, label: &str, clients: usize, seconds: Duration, engine_ms: f64) -> Vec<Row> {
    let pb = bar(1, "search");
    let words = ["wireless", "compact", "premium", "outdoor", "smart", "portable"];
    let body = move |i: usize| {
        json!({"query": format!("{} {}", words[i % words.len()], words[(i / 7) % words.len()]), "limit": 10})
            .to_string()
    };
    let url = format!("{base}/v1/search");
    let _ = closed_loop_post(|_| url.clone(), body, 2, Duration::from_secs(1));
    let r = closed_loop_post(|_| url.clone(), body, clients, seconds);
    let rows = latency_rows("search", &format!("{label}, {clients} clients"), &r, engine_ms);
    pb.finish_and_clear();
    rows
}
