//! `aisle bench`: every performance figure aisle claims, measured on this machine, each next to
//! an anchor run in the same invocation where one exists:
//!
//! - `embed`: texts/s and tokens/s at batch 1, 8, 32 on short and long texts; anchor: the
//!   compute bound (this machine's measured f32 GEMM rate / the model's FLOPs per token);
//! - `chat`: pp512 and tg128 tokens/s at a fixed thread count, and time to first token for an
//!   assistant-sized prompt through the scheduler; anchors: llama.cpp's `llama-bench` on the same
//!   GGUF file (built by `benches/llama-cpp.sh`), and the compute bound for prompt processing;
//! - `search`, `recommend`: p50/p95/p99 latency and throughput of N concurrent clients over
//!   loopback HTTP against the real server (in this process) on a generated shop of 10k (and,
//!   without `--quick`, 100k) products; anchor: the store engine's own query time in-process;
//! - `ingest`: products/s end to end (HTTP batch writes, embedding included); anchor: the
//!   embedding queue's texts/s on the same texts;
//! - `train`: iALS seconds per iteration and peak RSS on MovieLens 100K (or a synthetic matrix).

use std::path::Path;
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::{Value, json};

use super::load::{LatencyReport, closed_loop, closed_loop_post};
use super::shop::{ShopSpec, cache_dir, customer_id, generate_once};
use crate::config::Config;
use crate::error::{Error, Result};

/// The sub-benchmarks.
pub const ALL: &[&str] = &["embed", "chat", "search", "recommend", "ingest", "train"];

/// One figure.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Sub-benchmark.
    pub bench: String,
    /// What was measured.
    pub metric: String,
    /// The figure.
    pub value: f64,
    /// Its unit.
    pub unit: String,
    /// The anchor it is compared with.
    pub anchor: Option<String>,
    /// The anchor's figure (same unit).
    pub anchor_value: Option<f64>,
    /// value / anchor (for latencies: anchor / value, so that above 1 is always better).
    pub ratio: Option<f64>,
}

/// The machine the figures come from.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPU model.
    pub cpu: String,
    /// Threads used.
    pub threads: usize,
    /// Logical CPUs the machine has.
    pub cpus: usize,
    /// SIMD the CPU has (of those that matter here) and what this binary was built for.
    pub simd: Vec<String>,
    /// Compiled-in target features.
    pub built_for: Vec<String>,
    /// Device.
    pub device: String,
    /// Git commit of the working tree.
    pub commit: String,
    /// When.
    pub date: String,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Where.
    pub machine: Machine,
    /// `--quick`.
    pub quick: bool,
    /// Seconds the run took.
    pub seconds: f64,
    /// The figures.
    pub rows: Vec<Row>,
    /// What could not run, and why.
    pub skipped: Vec<String>,
}

fn row(bench: &str, metric: impl Into<String>, value: f64, unit: &str) -> Row {
    Row {
        bench: bench.into(),
        metric: metric.into(),
        value,
        unit: unit.into(),
        anchor: None,
        anchor_value: None,
        ratio: None,
    }
}

impl Row {
    fn against(mut self, anchor: impl Into<String>, value: f64, higher_is_better: bool) -> Self {
        self.anchor = Some(anchor.into());
        self.anchor_value = Some(value);
        if value > 0.0 && self.value > 0.0 {
            self.ratio = Some(if higher_is_better { self.value / value } else { value / self.value });
        }
        self
    }
}

/// Facts about this machine.
pub fn machine(threads: usize, root: &Path) -> Machine {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = info
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let flags: Vec<&str> = info
        .lines()
        .find(|l| l.starts_with("flags"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.split_whitespace().collect())
        .unwrap_or_default();
    let simd =
        ["sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_tile"]
            .iter()
            .filter(|f| flags.contains(f))
            .map(|f| f.to_string())
            .collect();
    let mut built_for = Vec::new();
    if cfg!(target_feature = "avx2") {
        built_for.push("avx2".to_string());
    }
    if cfg!(target_feature = "fma") {
        built_for.push("fma".to_string());
    }
    if cfg!(target_feature = "f16c") {
        built_for.push("f16c".to_string());
    }
    if cfg!(target_feature = "avx512f") {
        built_for.push("avx512f".to_string());
    }
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let dirty = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .current_dir(root)
        .output()
        .ok()
        .is_some_and(|o| !o.stdout.is_empty());
    Machine {
        cpu,
        threads,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        simd,
        built_for,
        device: "cpu".into(),
        commit: if dirty { format!("{commit}+changes") } else { commit },
        date: chrono::Utc::now().to_rfc3339(),
    }
}

/// The machine's f32 matrix-multiply rate (GFLOP/s, best of several 512x512 and 1024x1024
/// products) with candle, the library every model here runs on.
pub fn gemm_gflops(quick: bool) -> Result<f64> {
    let mut best = 0.0f64;
    for n in [512usize, 1024] {
        let a = Tensor::randn(0f32, 1.0, (n, n), &Device::Cpu)?;
        let b = Tensor::randn(0f32, 1.0, (n, n), &Device::Cpu)?;
        let _ = a.matmul(&b)?; // warm up
        for _ in 0..if quick { 3 } else { 8 } {
            let t = Instant::now();
            let c = a.matmul(&b)?;
            let _ = c.dims();
            let s = t.elapsed().as_secs_f64();
            best = best.max(2.0 * (n as f64).powi(3) / s / 1e9);
        }
    }
    Ok(best)
}

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

/// Run the benchmarks named in `which` (all when empty).
pub fn run(config: &Config, which: &[String], quick: bool, anchors: bool, threads: usize) -> Result<Report> {
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
    let has = |w: &str| which.iter().any(|x| x == w);
    // Training first: its peak memory is then its own, not the models'.
    if has("train") {
        rows.extend(train(&root, quick)?);
    }
    // The chat anchor runs next, before this process loads models or starts a server.
    if has("chat") {
        match chat(config, &root, quick, anchors, threads, gflops) {
            Ok(r) => rows.extend(r),
            Err(e) => skipped.push(format!("chat: {e}")),
        }
    }
    if has("embed") {
        rows.extend(embed(config, quick, gflops)?);
    }
    if has("search") || has("recommend") || has("ingest") {
        rows.extend(serve_benches(config, &root, quick, &which, threads)?);
    }
    Ok(Report { machine: machine(threads, &root), quick, seconds: started.elapsed().as_secs_f64(), rows, skipped })
}

/// FLOPs per token of a BERT-style encoder at sequence length `len`.
fn encoder_flops(cfg: &Value, len: usize) -> f64 {
    let h = cfg["hidden_size"].as_f64().unwrap_or(384.0);
    let l = cfg["num_hidden_layers"].as_f64().unwrap_or(6.0);
    let i = cfg["intermediate_size"].as_f64().unwrap_or(4.0 * h);
    // Q, K, V, output projections and the two feed-forward matrices; attention scores and sums.
    l * (2.0 * (4.0 * h * h + 2.0 * h * i) + 4.0 * h * len as f64)
}

fn embed(config: &Config, quick: bool, gflops: f64) -> Result<Vec<Row>> {
    let dir = config.models.resolve(&config.models.embedding);
    let model = crate::infer::EmbeddingModel::load(&dir, &Device::Cpu)?;
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

fn chat(config: &Config, root: &Path, quick: bool, anchors: bool, threads: usize, gflops: f64) -> Result<Vec<Row>> {
    use crate::infer::chat::bench::{generation, llama_bench, prompt_processing};
    if config.chat.model.is_empty() {
        return Err(Error::Config("no chat model configured".into()));
    }
    let path = config.models.resolve(&config.chat.model);
    let gguf = crate::infer::chat::resolve_gguf(&path)?;
    let (pp, tg, reps) = if quick { (512, 128, 2) } else { (512, 128, 5) };
    let pb = bar(4, "chat");
    pb.set_message("llama-bench");
    let theirs = if anchors { llama_bench(root, &gguf, threads, pp, tg, reps) } else { None };
    pb.inc(1);
    let model = crate::infer::chat::ChatModel::load(&path, &Device::Cpu, config.chat.max_context)?;
    let shape = model.shape().clone();
    pb.set_message("prompt processing");
    let ours_pp = prompt_processing(&model.model, pp, reps)?;
    pb.inc(1);
    pb.set_message("generation");
    let ours_tg = generation(&model.model, tg, reps)?;
    pb.inc(1);
    let name = model.name.clone();
    let mut rows = Vec::new();
    let flops_per_token = 2.0 * (shape.parameters as f64 - (shape.vocab * shape.embedding) as f64)
        + 2.0 * (shape.layers * shape.embedding) as f64 * pp as f64;
    for s in [&ours_pp, &ours_tg] {
        let mut r = row("chat", format!("{name} {}", s.test), s.tokens_per_second, "tokens/s");
        if let Some(a) = theirs.as_ref().and_then(|t| t.iter().find(|a| a.test == s.test)) {
            r = r.against("llama.cpp llama-bench", a.tokens_per_second, true);
        }
        rows.push(r);
        if s.test.starts_with("pp") {
            rows.push(row("chat", format!("{name} {} vs compute", s.test), s.tokens_per_second, "tokens/s").against(
                "compute bound",
                gflops * 1e9 / flops_per_token,
                true,
            ));
        }
    }
    // Time to first token of an assistant-sized prompt (instructions, a product table and a
    // question: ~300 tokens) through the scheduler, as a request sees it.
    pb.set_message("time to first token");
    let generator = crate::infer::chat::Generator::start(
        model,
        &crate::infer::chat::scheduler::SchedulerConfig {
            max_active: 1,
            max_waiting: 4,
            prefill_chunk: config.chat.prefill_chunk,
        },
    );
    let mut table = String::from(
        "You are the shopping assistant of an electronics shop. Recommend only products from the table below.\n",
    );
    for i in 0..8 {
        table.push_str(&format!(
            "{}. Wireless Noise Cancelling Headphones model {i} | ${}.99 | Brand {i} | Headphones & Earbuds | rated 4.{i}/5\n",
            i + 1,
            49 + 20 * i
        ));
    }
    let messages = vec![
        crate::infer::chat::Message::new("system", table),
        crate::infer::chat::Message::new("user", "I need wireless headphones under $150 for the gym. Which one?"),
    ];
    let prompt = generator.chat_prompt(&messages)?;
    let prompt_len = prompt.len();
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| Error::io("runtime", e))?;
    let mut ttft = Vec::new();
    for _ in 0..if quick { 2 } else { 5 } {
        let request = crate::infer::chat::GenerateRequest {
            prompt: prompt.clone(),
            max_tokens: 8,
            sampling: crate::infer::chat::SamplingParams { temperature: 0.0, ..Default::default() },
            stop: vec![],
            json: false,
        };
        let (_, finish) = runtime.block_on(generator.generate(request))?;
        ttft.push(finish.time_to_first_token.as_secs_f64() * 1000.0);
    }
    ttft.sort_by(f64::total_cmp);
    let median = ttft[ttft.len() / 2];
    let bound_ms = prompt_len as f64 * flops_per_token / (gflops * 1e9) * 1000.0;
    rows.push(row("chat", format!("{name} time to first token ({prompt_len}-token prompt)"), median, "ms").against(
        "compute bound",
        bound_ms,
        false,
    ));
    pb.finish_and_clear();
    Ok(rows)
}

/// Peak resident memory of this process (VmHWM), MiB.
pub fn rss_peak_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn train(root: &Path, quick: bool) -> Result<Vec<Row>> {
    use crate::recommend::cf::{AlsConfig, Interactions, train_als};
    let ml = root.join("data/raw/ml-100k");
    let (data, source) = match crate::eval::data::load_ml100k(&ml) {
        Ok(d) => {
            (Interactions::new(d.n_users, d.n_items, d.interactions.iter().map(|x| (x.0, x.1, x.2))), "MovieLens 100K")
        }
        Err(_) => {
            // A synthetic matrix of the same size when the dataset was not fetched.
            let (u, i) = (943u64, 1682u64);
            let t = (0..100_000u64).map(|k| {
                let h = k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                ((h % u) as u32, ((h >> 20) % i) as u32, 1.0f32)
            });
            (Interactions::new(u as usize, i as usize, t), "synthetic 943x1682, 100k")
        }
    };
    let iterations = if quick { 5 } else { 15 };
    let pb = bar(iterations as u64, "train");
    let c = AlsConfig { factors: 64, reg: 10.0, alpha: 2.0, iterations, ..AlsConfig::default() };
    let t = Instant::now();
    let _f = train_als(&data, &c, |_, _| pb.inc(1));
    let s = t.elapsed().as_secs_f64();
    pb.finish_and_clear();
    Ok(vec![
        row("train", format!("iALS 64 factors, {source}: seconds per iteration"), s / iterations as f64, "s"),
        row("train", format!("iALS 64 factors, {source}: {iterations} iterations"), s, "s"),
        row("train", "peak RSS of the process so far", rss_peak_mib(), "MiB"),
    ])
}

/// Search, recommendations and ingestion against the real server, in this process, over
/// loopback HTTP, on generated shops.
fn serve_benches(config: &Config, root: &Path, quick: bool, which: &[String], threads: usize) -> Result<Vec<Row>> {
    let has = |w: &str| which.iter().any(|x| x == w);
    let sizes: &[usize] = if quick { &[10_000] } else { &[10_000, 100_000] };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(2))
        .enable_all()
        .build()
        .map_err(|e| Error::io("runtime", e))?;
    let seconds = Duration::from_secs(if quick { 4 } else { 15 });
    let clients = 4;
    let mut rows = Vec::new();
    for &products in sizes {
        let customers = if quick { 10_000 } else { products };
        let spec = ShopSpec { products, customers, baskets: products / 2, categories: 100, seed: 7 };
        let dir = cache_dir(&spec);
        let mut cfg = config.clone();
        cfg.store.data_dir = dir.clone();
        cfg.chat.model = String::new();
        cfg.auth.keys.clear();
        cfg.auth.rate_per_sec = 0.0;
        let store = crate::store::Store::open(&cfg.store)?;
        let c = cfg.clone();
        let services = runtime
            .block_on(
                async move { tokio::task::spawn_blocking(move || crate::api::load_services(&c, store, false)).await },
            )
            .map_err(|e| Error::Internal(e.to_string()))??;
        let pb = bar(0, "shop");
        pb.set_message(format!("{products} products, {customers} customers (generated once, cached)"));
        runtime.block_on(generate_once(&services, &dir, spec, |line| pb.set_message(line)))?;
        pb.finish_and_clear();
        // The anchor: the engine's own query time, in-process, no HTTP, no embedding.
        let store = services.store.clone();
        let embedder = services.embedder.clone();
        let state =
            crate::api::AppState::new(cfg, (threads, crate::infer::threads::ThreadSource::Config), "cpu".into())?;
        state.set_services(services);
        let listener =
            runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).map_err(|e| Error::io("bind", e))?;
        let base = format!("http://{}", listener.local_addr().map_err(|e| Error::io("address", e))?);
        let server = runtime.spawn(async move { axum::serve(listener, crate::api::router(state)).await });
        let label = if products >= 100_000 { "100k" } else { "10k" };
        let engine_ms = engine_query_ms(&runtime, &store, quick)?;
        if has("search") {
            let pb = bar(1, "search");
            let words = ["wireless", "compact", "premium", "outdoor", "smart", "portable"];
            let body = move |i: usize| {
                json!({"query": format!("{} {}", words[i % words.len()], words[(i / 7) % words.len()]), "limit": 10})
                    .to_string()
            };
            let url = format!("{base}/v1/search");
            let _ = closed_loop_post(|_| url.clone(), body, 2, Duration::from_secs(1));
            let r = closed_loop_post(|_| url.clone(), body, clients, seconds);
            rows.extend(latency_rows("search", &format!("{label} products, {clients} clients"), &r, engine_ms));
            pb.finish_and_clear();
        }
        if has("recommend") {
            let pb = bar(1, "recommend");
            let url = |i: usize| {
                let c = (i.wrapping_mul(2_654_435_761) ^ (i >> 7)) % customers;
                format!("{base}/v1/customers/{}/recommendations?limit=10", customer_id(c))
            };
            let _ = closed_loop(url, 2, Duration::from_secs(1));
            let r = closed_loop(url, clients, seconds);
            rows.extend(latency_rows("recommend", &format!("{label} products, {clients} clients"), &r, engine_ms));
            pb.finish_and_clear();
        }
        if has("ingest") && products == sizes[0] {
            rows.extend(ingest(&embedder, &base, root, quick)?);
        }
        server.abort();
        runtime.block_on(async { tokio::time::sleep(Duration::from_millis(50)).await });
    }
    Ok(rows)
}

fn latency_rows(bench: &str, what: &str, r: &LatencyReport, engine_ms: f64) -> Vec<Row> {
    vec![
        row(bench, format!("{what}: p50"), r.p50_ms, "ms").against("engine query, in-process", engine_ms, false),
        row(bench, format!("{what}: p95"), r.p95_ms, "ms"),
        row(bench, format!("{what}: p99"), r.p99_ms, "ms"),
        row(bench, format!("{what}: throughput"), r.throughput, "req/s"),
        row(bench, format!("{what}: errors"), r.errors as f64, "requests"),
    ]
}

/// Median time of a filtered dense query straight on the store (the engine alone).
fn engine_query_ms(runtime: &tokio::runtime::Runtime, store: &crate::store::Store, quick: bool) -> Result<f64> {
    use crate::store::{Query, Ranking, Vector, VectorQuery};
    let mut times = Vec::new();
    for i in 0..if quick { 50 } else { 200 } {
        let v: Vec<f32> = (0..384).map(|k| (((i * 31 + k * 17) % 97) as f32 / 97.0) - 0.5).collect();
        let q = Query {
            prefetch: vec![],
            ranking: Ranking::Vector(VectorQuery::Nearest {
                using: crate::catalog::TEXT_VECTOR.into(),
                vector: Vector::Dense(v),
            }),
            filter: crate::catalog::ProductFilter { in_stock: Some(true), ..Default::default() }.to_store_filter(),
            limit: 10,
            offset: 0,
            with_vectors: vec![],
        };
        let t = Instant::now();
        runtime.block_on(store.query(crate::catalog::PRODUCTS, q))?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

fn ingest(embedder: &crate::infer::Embedder, base: &str, root: &Path, quick: bool) -> Result<Vec<Row>> {
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

impl Report {
    /// A plain-text table.
    pub fn table(&self) -> String {
        let m = &self.machine;
        let mut s = format!(
            "aisle bench{} on {} ({} of {} CPUs used; SIMD {}; built for {}; device {}), commit {}, {}\n\n",
            if self.quick { " --quick" } else { "" },
            m.cpu,
            m.threads,
            m.cpus,
            m.simd.join(" "),
            if m.built_for.is_empty() { "baseline x86-64".into() } else { m.built_for.join(" ") },
            m.device,
            m.commit,
            m.date
        );
        s.push_str(&format!(
            "{:<9} {:<62} {:>12} {:<9} {:<26} {:>10} {:>7}\n",
            "bench", "metric", "value", "unit", "anchor", "anchor", "ratio"
        ));
        for r in &self.rows {
            s.push_str(&format!(
                "{:<9} {:<62} {:>12} {:<9} {:<26} {:>10} {:>7}\n",
                r.bench,
                r.metric,
                fmt(r.value),
                r.unit,
                r.anchor.as_deref().unwrap_or("-"),
                r.anchor_value.map(fmt).unwrap_or_else(|| "-".into()),
                r.ratio.map(|x| format!("{x:.2}")).unwrap_or_else(|| "-".into())
            ));
        }
        for k in &self.skipped {
            s.push_str(&format!("skipped: {k}\n"));
        }
        s.push_str(&format!("\n{:.0} s in all. Ratios: above 1 is better than the anchor.\n", self.seconds));
        s
    }

    /// An SVG chart of the ratios to the anchors.
    pub fn svg(&self) -> Result<String> {
        use plotters::prelude::*;
        let rows: Vec<&Row> = self.rows.iter().filter(|r| r.ratio.is_some()).collect();
        let mut out = String::new();
        {
            let height = 80 + 26 * rows.len().max(1) as u32;
            let area = SVGBackend::with_string(&mut out, (960, height)).into_drawing_area();
            area.fill(&WHITE).map_err(|e| Error::Internal(e.to_string()))?;
            let max = rows.iter().filter_map(|r| r.ratio).fold(1.2f64, f64::max) * 1.1;
            let mut chart = ChartBuilder::on(&area)
                .caption(
                    format!("aisle bench: ratio to the anchor (above 1 is better), {}", self.machine.cpu),
                    ("sans-serif", 15),
                )
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(430)
                .build_cartesian_2d(0f64..max, 0usize..rows.len().max(1))
                .map_err(|e| Error::Internal(e.to_string()))?;
            let labels: Vec<String> = rows
                .iter()
                .map(|r| format!("{}: {} ({})", r.bench, r.metric, r.anchor.as_deref().unwrap_or("")))
                .collect();
            chart
                .configure_mesh()
                .disable_y_mesh()
                .y_labels(rows.len().max(1))
                .y_label_formatter(&|i| labels.get(*i).cloned().unwrap_or_default())
                .y_label_style(("sans-serif", 11))
                .draw()
                .map_err(|e| Error::Internal(e.to_string()))?;
            chart
                .draw_series(rows.iter().enumerate().map(|(i, r)| {
                    let v = r.ratio.unwrap_or(0.0);
                    let color = if v >= 1.0 { RGBColor(46, 125, 50) } else { RGBColor(198, 40, 40) };
                    Rectangle::new([(0.0, i), (v, i + 1)], color.mix(0.7).filled())
                }))
                .map_err(|e| Error::Internal(e.to_string()))?;
            chart
                .draw_series(std::iter::once(PathElement::new(vec![(1.0, 0), (1.0, rows.len().max(1))], BLACK)))
                .map_err(|e| Error::Internal(e.to_string()))?;
            area.present().map_err(|e| Error::Internal(e.to_string()))?;
        }
        Ok(out)
    }
}

fn fmt(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.4}")
    }
}
