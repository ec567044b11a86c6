//! Benchmarks that run against the real engines, and `aisle bench`: every performance figure
//! aisle claims, measured on this machine, each next to an anchor run in the same invocation
//! where one exists:
//!
//! - [`embed`]: texts/s and tokens/s at batch 1, 8, 32 on short and long texts; anchor: the
//!   compute bound (this machine's measured f32 GEMM rate / the model's FLOPs per token);
//! - [`chat`]: pp512 and tg128 tokens/s at a fixed thread count, and time to first token for an
//!   assistant-sized prompt through the scheduler; anchors: llama.cpp's `llama-bench` on the same
//!   GGUF file (built by `benches/llama-cpp.sh`, run by [`llama`]), and the compute bound for
//!   prompt processing;
//! - [`assistant`]: time to the first text, to the model's first token and to the end of an
//!   assistant answer on the demo catalog with the configured chat model; anchor: the model
//!   alone on a prompt and answer of the same length;
//! - [`search`], [`recommend`]: p50/p95/p99 latency and throughput of N concurrent clients over
//!   loopback HTTP against the real server (in this process, set up by [`serve`]) on a generated
//!   shop of 10k (and, without `--quick`, 100k and 1M) products; anchor: the store engine's own query
//!   time in-process; with `[store] qdrant_url` set, again with the shop on that Qdrant server;
//! - [`ingest`]: products/s end to end (HTTP batch writes, embedding included); anchor: the
//!   embedding queue's texts/s on the same texts;
//! - [`train`]: iALS seconds per iteration and peak RSS on MovieLens 100K (or a synthetic matrix).
//!
//! The building blocks are shared with `benches/`: synthetic shops written through the real
//! write paths ([`shop`]), load over loopback HTTP ([`load`]), and the `llama-bench`-style chat
//! measurements ([`llama`]). The figures go into a [`Report`] ([`report`]: table, JSON, SVG).
//!
//! Not for: correctness tests (`tests/`), offline ranking quality (`crate::eval`), or parsing
//! the command line (`crate::cli` calls [`run`] and writes the files).

pub mod assistant;
pub mod chat;
pub mod embed;
pub mod ingest;
pub mod llama;
pub mod load;
pub mod machine;
pub mod recommend;
pub mod report;
pub mod search;
pub mod serve;
pub mod shop;
pub mod streams;
pub mod train;

use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use crate::config::Config;
use crate::error::{Error, Result};
pub use machine::{Machine, gemm_gflops, machine, memory_gbps};
use report::row;
pub use report::{Report, Row};

/// The sub-benchmarks.
pub const ALL: &[&str] = &["embed", "chat", "assistant", "search", "recommend", "ingest", "train"];

/// Run the benchmarks named in `which` (all when empty); search and recommend on shops of
/// `sizes` products (the default sizes when empty).
pub fn run(
    config: &Config,
    which: &[String],
    quick: bool,
    anchors: bool,
    threads: usize,
    sizes: &[usize],
) -> Result<Report> {
    let root = std::env::current_dir().map_err(|e| Error::io("current directory", e))?;
    let started = Instant::now();
    let which: Vec<String> =
        if which.is_empty() { ALL.iter().map(|s| s.to_string()).collect() } else { which.to_vec() };
    for w in &which {
        if !ALL.contains(&w.as_str()) {
            return Err(Error::invalid("/bench", format!("'{w}' is not one of {}", ALL.join(", "))));
        }
    }
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    let gflops = gemm_gflops(quick)?;
    rows.push(row("machine", "f32 GEMM (candle)", gflops, "GFLOP/s"));
    let bandwidth = memory_gbps(quick);
    rows.push(row("machine", "memory read bandwidth", bandwidth, "GB/s"));
    let has = |w: &str| which.iter().any(|x| x == w);
    // Training first: its peak memory is then its own, not the models'.
    if has("train") {
        rows.extend(train::run(&root, quick)?);
    }
    // The chat anchor runs next, before this process loads models or starts a server.
    if has("chat") {
        match chat::run(config, &root, quick, anchors, threads, (gflops, bandwidth)) {
            Ok(r) => rows.extend(r),
            Err(e) => skipped.push(format!("chat: {e}")),
        }
    }
    if has("assistant") {
        match assistant::run(config, &root, quick, threads) {
            Ok(r) => rows.extend(r),
            Err(e) => skipped.push(format!("assistant: {e}")),
        }
    }
    if has("embed") {
        rows.extend(embed::run(config, quick, gflops)?);
    }
    if has("search") || has("recommend") || has("ingest") {
        rows.extend(serve::run(config, &root, quick, &which, threads, sizes)?);
    }
    Ok(Report { machine: machine(threads, &root), quick, seconds: started.elapsed().as_secs_f64(), rows, skipped })
}

/// A progress bar for one sub-benchmark (on stderr, cleared when it finishes).
fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{spinner} {prefix:>10} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_prefix(what.to_string());
    pb
}
