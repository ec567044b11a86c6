//! `aisle bench embed`: the embedding model's texts/s and tokens/s at batch 1, 8 and 32 on a
//! short and a long text, each next to the compute bound (the machine's measured GEMM rate over
//! the encoder's FLOPs per token).
//!
//! Not for: the embedding queue under HTTP load (see [`super::ingest`]) or loading models for
//! serving (`crate::app`).

use std::time::Instant;

use serde_json::Value;

use super::bar;
use super::report::{Row, row};
use crate::config::Config;
use crate::error::Result;

/// FLOPs per token of a BERT-style encoder at sequence length `len`.
fn encoder_flops(cfg: &Value, len: usize) -> f64 {
    let h = cfg["hidden_size"].as_f64().unwrap_or(384.0);
    let l = cfg["num_hidden_layers"].as_f64().unwrap_or(6.0);
    let i = cfg["intermediate_size"].as_f64().unwrap_or(4.0 * h);
    // Q, K, V, output projections and the two feed-forward matrices; attention scores and sums.
    l * (2.0 * (4.0 * h * h + 2.0 * h * i) + 4.0 * h * len as f64)
}

/// Measure the configured embedding model; `gflops` is the machine's f32 GEMM rate.
pub fn run(config: &Config, quick: bool, gflops: f64) -> Result<Vec<Row>> {
    let dir = config.models.resolve(&config.models.embedding);
    let model = crate::infer::EmbeddingModel::load(&dir, &crate::infer::select_device(&config.models.device)?)?;
    let cfg: Value = std::fs::read(dir.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    let short = "Wireless noise cancelling headphones with 30 hours of battery life";
    let long_text = "Powerful laptop for work and play with a bright 15.6 inch display, a fast processor, \
                     16 GB of memory and a 512 GB solid state drive. Thin, light, and built to last, with \
                     a backlit keyboard, a precise touchpad, Wi-Fi 6, Bluetooth, two USB-C ports that \
                     charge and carry video, and a battery that lasts a full working day. Comes with a \
                     one year warranty and free returns within thirty days of delivery for any reason.";
    let mut rows = Vec::new();
    let reps = if quick { 3 } else { 10 };
    let pb = bar(6, "embed");
    for (label, text) in [("short", short), ("long", long_text)] {
        let enc = model.tokenize(text)?;
        let tokens = enc.get_ids().len();
        for batch in [1usize, 8, 32] {
            let encs: Vec<_> = (0..batch).map(|_| &enc).collect();
            model.embed_encodings(&encs)?; // warm up
            let t = Instant::now();
            for _ in 0..reps {
                model.embed_encodings(&encs)?;
            }
            let s = t.elapsed().as_secs_f64() / reps as f64;
            let texts_per_s = batch as f64 / s;
            let tokens_per_s = texts_per_s * tokens as f64;
            let bound = gflops * 1e9 / encoder_flops(&cfg, tokens);
            rows.push(row("embed", format!("{label} ({tokens} tokens), batch {batch}"), texts_per_s, "texts/s"));
            rows.push(
                row("embed", format!("{label} ({tokens} tokens), batch {batch}"), tokens_per_s, "tokens/s").against(
                    "compute bound",
                    bound,
                    true,
                ),
            );
            pb.inc(1);
        }
    }
    pb.finish_and_clear();
    Ok(rows)
}
