//! Chat-model speed measured the way llama.cpp's `llama-bench` does, and `llama-bench` itself
//! as the anchor: `pp N` processes N random tokens in one batch on an empty cache, `tg N`
//! generates N tokens one at a time from an empty cache; each is repeated and averaged after a
//! warm-up. [`llama_bench`] runs llama.cpp's own tool (built by `benches/llama-cpp.sh`) on the
//! same GGUF file. Used by [`super::chat`] and `benches/chat.rs`.
//!
//! Not for: running chat models (`crate::infer::chat`) or the time to first token through the
//! scheduler ([`super::chat`]).

use std::time::Instant;

use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::error::Result;
use crate::infer::chat::Model;

/// One measurement.
#[derive(Debug, Clone, Serialize)]
pub struct Speed {
    /// `pp512`, `tg128`, ...
    pub test: String,
    /// Mean tokens per second.
    pub tokens_per_second: f64,
    /// Standard deviation of tokens per second across repetitions.
    pub stddev: f64,
}

/// Mean and sample standard deviation of tokens/s samples.
fn summarize(test: String, samples: &[f64]) -> Speed {
    let n = samples.len() as f64;
    let mean = samples.iter().sum::<f64>() / n;
    let var = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    Speed { test, tokens_per_second: mean, stddev: var.sqrt() }
}

/// `n` random token ids below `vocab`, the same for a seed.
fn random_tokens(vocab: usize, n: usize, seed: u64) -> Vec<u32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(0..vocab as u32)).collect()
}

/// Prompt processing: `n` tokens in one forward pass, `reps` times after one warm-up.
pub fn prompt_processing(model: &Model, n: usize, reps: usize) -> Result<Speed> {
    let tokens = random_tokens(model.shape().vocab, n, 1);
    let mut samples = Vec::with_capacity(reps);
    for rep in 0..=reps {
        let mut cache = model.new_cache();
        let started = Instant::now();
        model.forward(&tokens, &mut cache)?;
        if rep > 0 {
            samples.push(n as f64 / started.elapsed().as_secs_f64());
        }
    }
    Ok(summarize(format!("pp{n}"), &samples))
}

/// Text generation: `n` tokens one at a time from an empty cache, `reps` times after a warm-up.
pub fn generation(model: &Model, n: usize, reps: usize) -> Result<Speed> {
    let tokens = random_tokens(model.shape().vocab, n, 2);
    let mut samples = Vec::with_capacity(reps);
    for rep in 0..=reps {
        let mut cache = model.new_cache();
        let count = if rep == 0 { 1 } else { n };
        let started = Instant::now();
        for t in &tokens[..count] {
            model.forward(&[*t], &mut cache)?;
        }
        if rep > 0 {
            samples.push(n as f64 / started.elapsed().as_secs_f64());
        }
    }
    Ok(summarize(format!("tg{n}"), &samples))
}

/// Run llama.cpp's `llama-bench` (built by `benches/llama-cpp.sh` under `root`) on the same file
/// and thread count; None (with a message) if it is unavailable.
pub fn llama_bench(
    root: &std::path::Path,
    gguf: &std::path::Path,
    threads: usize,
    pp: usize,
    tg: usize,
    reps: usize,
) -> Option<Vec<Speed>> {
    let out = std::process::Command::new(root.join("benches/llama-cpp.sh")).output().ok()?;
    if !out.status.success() {
        eprintln!("llama.cpp could not be built: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let bin = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("llama-bench");
    let out = std::process::Command::new(&bin)
        .arg("-m")
        .arg(gguf)
        .args([
            "-p",
            &pp.to_string(),
            "-n",
            &tg.to_string(),
            "-t",
            &threads.to_string(),
            "-r",
            &reps.to_string(),
            "-o",
            "json",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("llama-bench failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).ok()?;
    let build = rows.first().and_then(|r| r["build_commit"].as_str()).unwrap_or("?").to_string();
    let cpu = rows.first().and_then(|r| r["cpu_info"].as_str()).unwrap_or("?").to_string();
    eprintln!("llama.cpp {build} on {cpu}");
    Some(
        rows.iter()
            .map(|r| {
                let (p, g) = (r["n_prompt"].as_u64().unwrap_or(0), r["n_gen"].as_u64().unwrap_or(0));
                Speed {
                    test: if g == 0 { format!("pp{p}") } else { format!("tg{g}") },
                    tokens_per_second: r["avg_ts"].as_f64().unwrap_or(0.0),
                    stddev: r["stddev_ts"].as_f64().unwrap_or(0.0),
                }
            })
            .collect(),
    )
}
