//! Search latency on the demo catalog (643 products, embedded store): the whole hybrid search
//! (query embedding + one fused, filtered Qdrant query) and the store query alone with a
//! precomputed query vector.
//!
//! Run: `cargo bench --bench search` (after models/fetch.sh and data/fetch.sh).

use std::path::PathBuf;

use aisle::catalog::SearchRequest;
use aisle::config::{Config, SearchConfig};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

const QUERIES: &[&str] = &[
    "wireless noise cancelling headphones",
    "4k tv for gaming",
    "laptop with 16gb ram",
    "outdoor security camera",
    "smart watch",
];

fn bench(c: &mut Criterion) {
    let (threads, _) = aisle::infer::threads::configure(0);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.store.data_dir = dir.path().to_path_buf();
    config.models.dir = root.join("models");
    let store = aisle::store::Store::open(&config.store).unwrap();
    let catalog = {
        let c2 = config.clone();
        let services = rt
            .block_on(async move {
                tokio::task::spawn_blocking(move || aisle::app::load_services(&c2, store, false)).await.unwrap()
            })
            .unwrap();
        services.catalog
    };
    let rows = aisle::catalog::import::read_rows(
        &root.join("data/demo/products.ndjson"),
        aisle::catalog::import::Format::Ndjson,
        &aisle::catalog::import::PRODUCT_CSV,
    )
    .expect("run data/fetch.sh first");
    let report = rt.block_on(aisle::catalog::import::import(&catalog, rows, 64, |_| {})).unwrap();
    eprintln!("search bench: {threads} threads, {} products", report.accepted);
    let search_config = SearchConfig::default();

    let mut group = c.benchmark_group(format!("search/{threads}threads"));
    group.sample_size(30);
    let request = |q: &str, filtered: bool| -> SearchRequest {
        let mut v = json!({"query": q, "limit": 10});
        if filtered {
            v["filters"] = json!({"in_stock": true, "price_max": 1000.0});
        }
        serde_json::from_value(v).unwrap()
    };
    for (name, filtered) in [("hybrid", false), ("hybrid_filtered", true)] {
        let mut i = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                let r = request(QUERIES[i % QUERIES.len()], filtered);
                i += 1;
                rt.block_on(catalog.search(&r, &search_config)).unwrap()
            })
        });
    }
    // The store query alone: a fixed query vector, hybrid fusion and filter inside Qdrant.
    let vectors: Vec<Vec<f32>> =
        QUERIES.iter().map(|q| rt.block_on(catalog.embedder().embed(&[q])).unwrap().remove(0)).collect();
    let mut i = 0;
    group.bench_function("store_query_dense_filtered", |b| {
        b.iter(|| {
            let v = vectors[i % vectors.len()].clone();
            i += 1;
            let q = aisle::store::Query {
                prefetch: vec![],
                ranking: aisle::store::Ranking::Vector(aisle::store::VectorQuery::Nearest {
                    using: "text".into(),
                    vector: aisle::store::Vector::Dense(v),
                }),
                filter: aisle::catalog::ProductFilter { in_stock: Some(true), ..Default::default() }.to_store_filter(),
                limit: 10,
                offset: 0,
                with_vectors: vec![],
            };
            rt.block_on(catalog.store().query("products", q)).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
