//! `aisle bench ingest`: products/s end to end (HTTP batch writes, embedding included and the
//! store) against the server that [`super::serve`] started, next to the embedding queue's own
//! texts/s on the same texts.
//!
//! Not for: importing files (`crate::catalog::import`, `aisle import`) or starting the server
//! ([`super::serve`]).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::bar;
use super::report::{Row, row};
use crate::error::{Error, Result};

/// Write new products (demo texts made unique) to the server at `base` in batches of 64, then
/// embed the same texts with `embedder` alone as the anchor.
pub fn run(embedder: &crate::infer::Embedder, base: &str, root: &Path, quick: bool) -> Result<Vec<Row>> {
    let n = if quick { 128 } else { 512 };
    let demo = std::fs::read_to_string(root.join("data/demo/products.ndjson")).unwrap_or_default();
    let mut texts: Vec<Value> = demo.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    if texts.is_empty() {
        texts.push(json!({"title": "Wireless headphones", "description": "Noise cancelling, 30 hours of battery", "price": 99.0}));
    }
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let products: Vec<Value> = (0..n)
        .map(|i| {
            let mut p = texts[i % texts.len()].clone();
            p["id"] = json!(format!("ingest-{run_id}-{i}"));
            // A different text each time, so nothing is reused from an earlier embedding.
            p["title"] = json!(format!("{} #{i} {run_id}", p["title"].as_str().unwrap_or("Product")));
            p
        })
        .collect();
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(600)).build();
    let pb = bar((n / 64) as u64, "ingest");
    let t = Instant::now();
    for chunk in products.chunks(64) {
        let r = agent
            .post(&format!("{base}/v1/products:batch"))
            .set("content-type", "application/json")
            .send_string(&json!({"products": chunk}).to_string());
        if let Err(e) = r {
            return Err(Error::Internal(format!("ingest failed: {e}")));
        }
        pb.inc(1);
    }
    let secs = t.elapsed().as_secs_f64();
    pb.finish_and_clear();
    // The anchor: texts like these (title and description, new ones) through the embedding
    // queue alone, no HTTP, no store.
    let texts: Vec<String> = products
        .iter()
        .map(|p| format!("{} again. {}", p["title"].as_str().unwrap_or(""), p["description"].as_str().unwrap_or("")))
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let t = Instant::now();
    embedder.embed_blocking(&refs)?;
    let embed_rate = n as f64 / t.elapsed().as_secs_f64();
    Ok(vec![
        row("ingest", format!("{n} products, batches of 64, HTTP + embedding + store"), n as f64 / secs, "products/s")
            .against("embedding queue alone", embed_rate, true),
    ])
}
