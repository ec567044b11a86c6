//! The harness for the benchmarks that need a running server ([`super::search`],
//! [`super::recommend`], [`super::ingest`]): for each shop size it generates (or reuses) a
//! cached synthetic shop, starts the real server in this process on a loopback port, measures the
//! anchor (the store engine's own query time, in-process, no HTTP, no embedding) and hands the
//! address to each benchmark; with a Qdrant server configured, it does the same again with the
//! shop copied onto the server.
//!
//! Not for: generating the shop ([`super::shop`]), sending load ([`super::load`]) or serving
//! production traffic (`crate::api::serve`).

use std::path::Path;
use std::time::{Duration, Instant};

use super::load::LatencyReport;
use super::report::{Row, row};
use super::shop::{ShopSpec, cache_dir, generate_once};
use super::{bar, ingest, recommend, search};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::store::migrate::copy_all;

/// Search, recommendations and ingestion against the real server, in this process, over
/// loopback HTTP, on generated shops. With `[store] qdrant_url` set (e.g. `QDRANT_URL`), search
/// and recommendations run a second time with the same shop copied onto that Qdrant server
/// (`aisle store migrate`'s copy, collections prefixed `bench_<size>_`), side by side.
pub fn run(
    config: &Config,
    root: &Path,
    quick: bool,
    which: &[String],
    threads: usize,
    sizes: &[usize],
) -> Result<Vec<Row>> {
    let has = |w: &str| which.iter().any(|x| x == w);
    let sizes: &[usize] = match sizes {
        [] if quick => &[10_000],
        [] => &[10_000, 100_000, 1_000_000],
        given => given,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(2))
        .enable_all()
        .build()
        .map_err(|e| Error::io("runtime", e))?;
    let seconds = Duration::from_secs(if quick { 4 } else { 15 });
    let clients = 4;
    let mut rows = Vec::new();
    for &products in sizes {
        // At 1M products the customers and baskets stay at 10k: what grows is the catalog the
        // queries search (generating a million customers through the real write paths would
        // take hours on a small machine and measure profile writes, not queries).
        let customers = if quick || products > 100_000 { 10_000 } else { products };
        let baskets = if products > 100_000 { 10_000 } else { products / 2 };
        let spec = ShopSpec { products, customers, baskets, categories: 100, seed: 7 };
        let dir = cache_dir(&spec);
        let mut cfg = config.clone();
        cfg.store.data_dir = dir.clone();
        cfg.store.qdrant_url = String::new();
        cfg.chat.model = String::new();
        cfg.auth.keys.clear();
        cfg.auth.rate_per_sec = 0.0;
        let store = crate::store::Store::open(&cfg.store)?;
        let services = load(&runtime, &cfg, store.clone())?;
        let pb = bar(0, "shop");
        pb.set_message(format!("{products} products, {customers} customers (generated once, cached)"));
        runtime.block_on(generate_once(&services, &dir, spec, |line| pb.set_message(line)))?;
        pb.finish_and_clear();
        let label = match products {
            n if n % 1_000_000 == 0 => format!("{}M products", n / 1_000_000),
            n if n % 1000 == 0 => format!("{}k products", n / 1000),
            n => format!("{n} products"),
        };
        let label = label.as_str();
        let embedder = services.embedder.clone();
        let on = Measure { runtime: &runtime, quick, threads, clients, seconds, customers };
        rows.extend(on.serve(cfg.clone(), services, label, which, |base| {
            if has("ingest") && products == sizes[0] { ingest::run(&embedder, base, root, quick) } else { Ok(vec![]) }
        })?);
        if config.store.qdrant_url.is_empty() || !(has("search") || has("recommend")) {
            continue;
        }
        // The same shop on the Qdrant server.
        let mut remote = cfg.clone();
        remote.store.qdrant_url = config.store.qdrant_url.clone();
        remote.store.collection_prefix = format!("bench_{products}_");
        let server_store = crate::store::Store::open(&remote.store)?;
        let pb = bar(0, "copy");
        pb.set_message(format!("copying the {label} shop onto {}", server_store.describe()));
        let checkpoint = dir.join(format!("bench-copy-{}.json", remote.store.collection_prefix));
        let mut progress = |c: &str, n: usize, t: usize| pb.set_message(format!("{c}: {n}/{t} points onto the server"));
        let copied = runtime.block_on(copy_all(&store, &server_store, &checkpoint, 512, &mut progress))?;
        if copied.iter().any(|c| c.target_points < c.source_points) {
            // A checkpoint from a server that has since lost the copy (another server on the
            // same URL): copy again rather than measure an empty store.
            let _ = std::fs::remove_file(&checkpoint);
            runtime.block_on(copy_all(&store, &server_store, &checkpoint, 512, &mut progress))?;
        }
        // Measured once the server has built its indexes (its optimizers run in the background).
        pb.set_message("waiting for the server's indexes");
        runtime.block_on(server_store.optimize())?;
        pb.finish_and_clear();
        let services = load(&runtime, &remote, server_store)?;
        rows.extend(on.serve(remote, services, &format!("{label} on a Qdrant server"), which, |_| Ok(vec![]))?);
    }
    Ok(rows)
}

/// Load the services over `store` (models, no chat).
fn load(runtime: &tokio::runtime::Runtime, cfg: &Config, store: crate::store::Store) -> Result<crate::app::Services> {
    let c = cfg.clone();
    runtime
        .block_on(async move { tokio::task::spawn_blocking(move || crate::app::load_services(&c, store, false)).await })
        .map_err(|e| Error::Internal(e.to_string()))?
}

/// How the load runs of one shop are made.
struct Measure<'a> {
    runtime: &'a tokio::runtime::Runtime,
    quick: bool,
    threads: usize,
    clients: usize,
    seconds: Duration,
    customers: usize,
}

impl Measure<'_> {
    /// Serve `services` on a loopback port, measure the anchor (the engine's own query time,
    /// in-process, no HTTP, no embedding), then search and recommendations (and `more`).
    fn serve(
        &self,
        cfg: Config,
        services: crate::app::Services,
        label: &str,
        which: &[String],
        more: impl FnOnce(&str) -> Result<Vec<Row>>,
    ) -> Result<Vec<Row>> {
        let has = |w: &str| which.iter().any(|x| x == w);
        let store = services.store.clone();
        let recommender = services.recommender.clone();
        let state =
            crate::api::AppState::new(cfg, (self.threads, crate::infer::threads::ThreadSource::Config), "cpu".into())?;
        state.set_services(services);
        let listener =
            self.runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).map_err(|e| Error::io("bind", e))?;
        let base = format!("http://{}", listener.local_addr().map_err(|e| Error::io("address", e))?);
        let server = self.runtime.spawn(async move { axum::serve(listener, crate::api::router(state)).await });
        let engine_ms = engine_query_ms(self.runtime, &store, self.quick)?;
        let mut rows = Vec::new();
        if has("search") {
            rows.extend(search::run(&base, label, self.clients, self.seconds, engine_ms));
        }
        if has("recommend") {
            let trees = recommend::ensure_ranker(self.runtime, &recommender, &base, self.customers, 400)?;
            rows.extend(recommend::run(&base, label, self.customers, self.clients, self.seconds, engine_ms, trees));
        }
        rows.extend(more(&base)?);
        server.abort();
        self.runtime.block_on(async { tokio::time::sleep(Duration::from_millis(50)).await });
        Ok(rows)
    }
}

/// The rows of one load run: p50 (against the engine's own query time), p95, p99, throughput
/// and errors.
pub fn latency_rows(bench: &str, what: &str, r: &LatencyReport, engine_ms: f64) -> Vec<Row> {
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
