//! `aisle bench recommend`: p50/p95/p99 latency and throughput of concurrent clients asking for
//! recommendations for the shop's customers over loopback HTTP, against the server that
//! [`super::serve`] started.
//!
//! Not for: starting the server or measuring the anchor ([`super::serve`]), or recommending
//! (`crate::recommend`).

use std::time::Duration;

use super::bar;
use super::load::closed_loop;
use super::report::Row;
use super::serve::latency_rows;
use super::shop::customer_id;

/// Ask the server at `base` for recommendations for its `customers` with `clients` clients for
/// `seconds` (after a one-second warm-up); `label` names the shop, `engine_ms` is the anchor.
pub fn run(base: &str, label: &str, customers: usize, clients: usize, seconds: Duration, engine_ms: f64) -> Vec<Row> {
    let pb = bar(1, "recommend");
    let url = |i: usize| {
        let c = (i.wrapping_mul(2_654_435_761) ^ (i >> 7)) % customers;
        format!("{base}/v1/customers/{}/recommendations?limit=10", customer_id(c))
    };
    let _ = closed_loop(url, 2, Duration::from_secs(1));
    let r = closed_loop(url, clients, seconds);
    let rows = latency_rows("recommend", &format!("{label}, {clients} clients"), &r, engine_ms);
    pb.finish_and_clear();
    rows
}
