//! Recommendation latency (p50/p95/p99) at a fixed request rate and throughput under
//! concurrent load, over loopback HTTP against the real server (in this process) with the
//! embedded store and a generated shop of 10k products and 100k customers.
//!
//!   cargo bench --bench recommend
//!
//! The shop is generated once into $AISLE_CACHE/bench (default ~/.cache/aisle/bench) and
//! reused. Environment: AISLE_BENCH_RATE (default 100 requests/s), AISLE_BENCH_SECONDS
//! (default 30), AISLE_BENCH_CONCURRENCY (closed loop, default 4). Under `cargo test` it runs a
//! small shop for a few seconds as a smoke test.

use std::path::PathBuf;
use std::time::Duration;

use aisle::bench::load::{LatencyReport, closed_loop, open_loop};
use aisle::bench::shop::{ShopSpec, cache_dir, customer_id, generate_once};

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn row(name: &str, r: &LatencyReport) {
    println!(
        "| {name} | {} | {} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} |",
        r.requests, r.errors, r.throughput, r.p50_ms, r.p95_ms, r.p99_ms, r.max_ms
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let full = std::env::args().any(|a| a == "--bench");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let (threads, _) = aisle::infer::threads::configure(0);
    let spec = if full {
        ShopSpec { products: 10_000, customers: 100_000, baskets: 5_000, categories: 100, seed: 7 }
    } else {
        ShopSpec { products: 300, customers: 500, baskets: 100, categories: 10, seed: 7 }
    };
    let scratch;
    let dir = if full {
        cache_dir(&spec)
    } else {
        scratch = tempfile::tempdir().unwrap();
        scratch.path().to_path_buf()
    };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads.max(2)).enable_all().build().unwrap();
    let mut config = aisle::config::Config::default();
    config.store.data_dir = dir.clone();
    config.models.dir = root.join("models");
    config.chat.model = String::new();
    let store = aisle::store::Store::open(&config.store).expect("open the store");
    let c = config.clone();
    let services = runtime
        .block_on(async move {
            tokio::task::spawn_blocking(move || aisle::app::load_services(&c, store, false)).await.unwrap()
        })
        .expect("run models/fetch.sh first");
    eprintln!("shop {spec:?} in {} (generated once)", dir.display());
    runtime.block_on(generate_once(&services, &dir, spec, |line| eprintln!("  {line}"))).expect("generate the shop");
    let state = aisle::api::AppState::new(config, (threads, aisle::infer::threads::ThreadSource::Config), "cpu".into())
        .unwrap();
    state.set_services(services);
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    runtime.spawn(async move { axum::serve(listener, aisle::api::router(state)).await });

    let customers = spec.customers;
    // A fixed pseudo-random walk over the customers: every request asks for someone else.
    let url = |i: usize| {
        let c = (i.wrapping_mul(2_654_435_761) ^ (i >> 7)) % customers;
        format!("{base}/v1/customers/{}/recommendations?limit=10", customer_id(c))
    };
    let (rate, seconds, concurrency) = if full {
        (env("AISLE_BENCH_RATE", 100.0), env("AISLE_BENCH_SECONDS", 30u64), env("AISLE_BENCH_CONCURRENCY", 4usize))
    } else {
        (20.0, 2, 2)
    };
    let _warm = closed_loop(url, 2, Duration::from_secs(if full { 5 } else { 1 }));
    let open = open_loop(url, rate, Duration::from_secs(seconds), 16);
    let closed = closed_loop(url, concurrency, Duration::from_secs(seconds / 2 + 1));
    println!(
        "\nrecommendations: {} products, {} customers, {threads} threads, embedded store, loopback HTTP",
        spec.products, spec.customers
    );
    println!("| load | requests | errors | throughput (req/s) | p50 ms | p95 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|---|---|");
    row(&format!("open loop, {rate} req/s"), &open);
    row(&format!("closed loop, {concurrency} clients"), &closed);
    assert_eq!(open.errors + closed.errors, 0, "requests failed");
}
