//! `aisle bench recommend`: p50/p95/p99 latency and throughput of concurrent clients asking for
//! recommendations for the shop's customers over loopback HTTP, against the server that
//! [`super::serve`] started; then at a fixed 100 requests per second (open loop), in the fused
//! order and re-ranked by the learned model, side by side.
//!
//! Not for: starting the server or measuring the anchor ([`super::serve`]), or recommending
//! (`crate::recommend`).

use std::time::Duration;

use serde_json::{Value, json};

use super::bar;
use super::load::{closed_loop, open_loop, open_loop_abba};
use super::report::{Row, row};
use super::serve::latency_rows;
use super::shop::customer_id;
use crate::error::{Error, Result};
use crate::recommend::{RankerReport, Recommender};

/// The fixed rate the fused and re-ranked orders are compared at.
const RATE: f64 = 100.0;

/// Ask the server at `base` for recommendations for its `customers` with `clients` clients for
/// `seconds` (after a one-second warm-up); `label` names the shop, `engine_ms` is the anchor.
/// Then `RATE` requests per second for `seconds`, with the re-ranker off and on (`trees`: the
/// served model's size, for the label).
pub fn run(
    base: &str,
    label: &str,
    customers: usize,
    clients: usize,
    seconds: Duration,
    engine_ms: f64,
    trees: Option<usize>,
) -> Vec<Row> {
    let pb = bar(1, "recommend");
    let url = |rerank: bool| {
        move |i: usize| {
            let c = (i.wrapping_mul(2_654_435_761) ^ (i >> 7)) % customers;
            format!("{base}/v1/customers/{}/recommendations?limit=10&rerank={rerank}", customer_id(c))
        }
    };
    let _ = closed_loop(url(true), 2, Duration::from_secs(1));
    let r = closed_loop(url(true), clients, seconds);
    let mut rows = latency_rows("recommend", &format!("{label}, {clients} clients"), &r, engine_ms);
    if let Some(trees) = trees {
        // Interleaved in blocks (fused, re-ranked, re-ranked, fused, ...), so that neither
        // order runs on a store the other has grown.
        let rounds = (seconds.as_secs() as usize / 2).max(2);
        let (fused, ranked) = open_loop_abba(|rerank, i| url(rerank == 1)(i), RATE, Duration::from_secs(1), rounds, 8);
        rows.extend(latency_rows("recommend", &format!("{label}, {RATE} req/s, fused order"), &fused, engine_ms));
        let what = format!("{label}, {RATE} req/s, re-ranked (LambdaMART, {trees} trees)");
        rows.extend(latency_rows("recommend", &what, &ranked, engine_ms));
        rows.push(row("recommend", format!("{what}: p99 against the fused order"), ranked.p99_ms, "ms").against(
            "fused order p99, same rate",
            fused.p99_ms,
            false,
        ));
    } else {
        let fused = open_loop(url(false), RATE, seconds, 8);
        rows.extend(latency_rows("recommend", &format!("{label}, {RATE} req/s, fused order"), &fused, engine_ms));
    }
    pb.finish_and_clear();
    rows
}

/// A served re-ranker for the benchmark shop, trained once (then kept in the shop's data
/// directory): `lists` lists are served for the shop's customers and one click per list sent
/// with its `rec_id` through the event API (a position-biased random pick: the model is for
/// measuring latency, not quality), then `train_ranker` runs. Returns the model's trees.
pub fn ensure_ranker(
    runtime: &tokio::runtime::Runtime,
    recommender: &Recommender,
    base: &str,
    customers: usize,
    lists: usize,
) -> Result<Option<usize>> {
    if let Some(r) = recommender.ranker() {
        return Ok(Some(r.trees()));
    }
    let pb = bar(lists as u64, "ranker");
    pb.set_message("serving lists and clicking, to train a re-ranker for the latency runs");
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
    let err = |e: &dyn std::fmt::Display| Error::Internal(format!("training the benchmark's re-ranker: {e}"));
    let mut events = Vec::new();
    for i in 0..lists {
        let c = customer_id((i * 7919) % customers);
        let v: Value = agent
            .get(&format!("{base}/v1/customers/{c}/recommendations?limit=10"))
            .call()
            .map_err(|e| err(&e))?
            .into_json()
            .map_err(|e| err(&e))?;
        let items = v["items"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            continue;
        }
        let u = ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64;
        let pick = ((u * u) * items.len() as f64) as usize;
        events.push(json!({"customer_id": c, "product_id": items[pick]["product"]["id"], "kind": "click",
            "rec_id": v["rec_id"]}));
        pb.inc(1);
    }
    for chunk in events.chunks(500) {
        agent.post(&format!("{base}/v1/events")).send_json(json!({ "events": chunk })).map_err(|e| err(&e))?;
    }
    let report: RankerReport = runtime.block_on(recommender.train_ranker())?;
    pb.finish_and_clear();
    Ok(report.trained.then(|| recommender.ranker().map(|r| r.trees())).flatten())
}
