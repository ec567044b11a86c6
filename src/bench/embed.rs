//! `aisle bench embed`: the embedding model's texts/s and tokens/s at batch 1, 8 and 32 on a
//! short and a long text and on a mixed batch, each next to the compute bound (the machine's
//! measured GEMM rate over the encoder's FLOPs per token) and to candle's own `BertModel` on
//! the same weights, run in the same process.
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
///
/// Both models run on a compute pool of `[embed] threads` threads, as the serving queue runs.
pub fn run(config: &Config, quick: bool, gflops: f64) -> Result<Vec<Row>> {
    crate::infer::threads::run_in_pool("aisle-bench-embed", config.embed.threads, || measure(config, quick, gflops))
}

fn measure(config: &Config, quick: bool, gflops: f64) -> Result<Vec<Row>> {
    let dir = config.models.resolve(&config.models.embedding);
    let device = crate::infer::select_device(&config.models.device)?;
    let model = crate::infer::EmbeddingModel::load(&dir, &device)?;
    let reference = crate::infer::EmbeddingModel::load_reference(&dir, &device)?;
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
    let reps = if quick { 5 } else { 15 };
    let pb = bar(7, "embed");
    // The median of `reps` runs (after a warm-up): a busy neighbour on a shared host slows a
    // run or two, not the median.
    let time = |m: &crate::infer::EmbeddingModel, encs: &[&tokenizers::Encoding]| -> Result<f64> {
        m.embed_encodings(encs)?; // warm up
        let mut runs = Vec::with_capacity(reps);
        for _ in 0..reps {
            let t = Instant::now();
            m.embed_encodings(encs)?;
            runs.push(t.elapsed().as_secs_f64());
        }
        runs.sort_by(f64::total_cmp);
        Ok(runs[reps / 2])
    };
    for (label, text) in [("short", short), ("long", long_text)] {
        let enc = model.tokenize(text)?;
        let tokens = enc.get_ids().len();
        for batch in [1usize, 8, 32] {
            let encs: Vec<_> = (0..batch).map(|_| &enc).collect();
            let s = time(&model, &encs)?;
            let anchor = time(&reference, &encs)?;
            let texts_per_s = batch as f64 / s;
            let tokens_per_s = texts_per_s * tokens as f64;
            let bound = gflops * 1e9 / encoder_flops(&cfg, tokens);
            let what = format!("{label} ({tokens} tokens), batch {batch}");
            rows.push(row("embed", &what, texts_per_s, "texts/s").against(
                "candle BertModel",
                batch as f64 / anchor,
                true,
            ));
            rows.push(row("embed", &what, tokens_per_s, "tokens/s").against("compute bound", bound, true));
            pb.inc(1);
        }
    }
    // A batch as the queue forms it from catalog text: lengths from 4 to 101 tokens. aisle's
    // encoder packs the rows; candle pads every text to the longest.
    let words: Vec<&str> = long_text.split_whitespace().collect();
    let mixed: Vec<String> = (0..32).map(|i| words[..3 + i * (words.len() - 3) / 31].join(" ")).collect();
    let encs = mixed.iter().map(|t| model.tokenize(t)).collect::<Result<Vec<_>>>()?;
    let encs: Vec<_> = encs.iter().collect();
    let tokens: usize = encs.iter().map(|e| e.get_ids().len()).sum();
    let (s, anchor) = (time(&model, &encs)?, time(&reference, &encs)?);
    let what = format!("mixed lengths ({tokens} tokens), batch 32");
    rows.push(row("embed", &what, 32.0 / s, "texts/s").against("candle BertModel", 32.0 / anchor, true));
    let flops: f64 = encs.iter().map(|e| encoder_flops(&cfg, e.get_ids().len()) * e.get_ids().len() as f64).sum();
    rows.push(row("embed", &what, tokens as f64 / s, "tokens/s").against(
        "compute bound",
        gflops * 1e9 * tokens as f64 / flops,
        true,
    ));
    pb.inc(1);
    pb.finish_and_clear();
    Ok(rows)
}
