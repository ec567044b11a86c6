//! criterion benches of the hot paths, one group each: tokenization (embedding and chat
//! tokenizers), MMR over a candidate list, one iALS iteration (MovieLens 100K, or a synthetic
//! matrix of its size), and the fused recommendation query (all sources, filters, MMR and
//! explanations) on a small generated shop in the embedded store. The embedding batch is in
//! `benches/embed.rs`, the store's search query in `benches/search.rs`.
//!
//!   cargo bench --bench hot

use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use aisle::bench::shop::{ShopSpec, customer_id, generate};
use aisle::recommend::RecommendRequest;
use aisle::recommend::cf::{AlsConfig, Interactions, train_als};
use aisle::recommend::mmr::mmr;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn texts() -> Vec<String> {
    let demo = std::fs::read_to_string(root().join("data/demo/products.ndjson")).expect("run data/fetch.sh first");
    demo.lines()
        .take(200)
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            format!("{}. {}", v["title"].as_str().unwrap_or(""), v["description"].as_str().unwrap_or(""))
        })
        .collect()
}

fn tokenization(c: &mut Criterion) {
    let texts = texts();
    let embed = aisle::infer::EmbeddingModel::load(&root().join("models/all-MiniLM-L6-v2"), &candle_core::Device::Cpu)
        .expect("run models/fetch.sh first");
    let chat = aisle::infer::chat::ChatModel::load(
        &root().join("models/SmolLM2-135M-Instruct"),
        &candle_core::Device::Cpu,
        2048,
    )
    .expect("run models/fetch.sh first");
    let mut g = c.benchmark_group("tokenize");
    g.throughput(Throughput::Elements(texts.len() as u64));
    g.bench_function("embedding_tokenizer_200_texts", |b| {
        b.iter(|| texts.iter().map(|t| embed.tokenize(t).unwrap().get_ids().len()).sum::<usize>())
    });
    g.bench_function("chat_tokenizer_200_texts", |b| {
        b.iter(|| texts.iter().map(|t| chat.tokenizer.encode(t, false, false).unwrap().len()).sum::<usize>())
    });
    g.finish();
}

fn diversity(c: &mut Criterion) {
    let n = 200;
    let vectors: Vec<Vec<f32>> = (0..n)
        .map(|i| {
            let v: Vec<f32> = (0..384).map(|k| (((i * 131 + k * 17) % 101) as f32 / 101.0) - 0.5).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.into_iter().map(|x| x / norm).collect()
        })
        .collect();
    let relevance: Vec<f32> = (0..n).map(|i| 1.0 / (60.0 + i as f32)).collect();
    c.bench_function("mmr/200_candidates_k10_dim384", |b| b.iter(|| mmr(&relevance, &vectors, 10, 0.7, 2)));
}

fn als(c: &mut Criterion) {
    let data = match aisle::eval::data::load_ml100k(&root().join("data/raw/ml-100k")) {
        Ok(d) => Interactions::new(d.n_users, d.n_items, d.interactions.iter().map(|x| (x.0, x.1, x.2))),
        Err(_) => Interactions::new(
            943,
            1682,
            (0..100_000u64).map(|k| {
                let h = k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                ((h % 943) as u32, ((h >> 20) % 1682) as u32, 1.0f32)
            }),
        ),
    };
    let cfg = AlsConfig { factors: 64, reg: 10.0, alpha: 2.0, iterations: 1, ..AlsConfig::default() };
    let mut g = c.benchmark_group("als");
    g.sample_size(10);
    g.bench_function("ials_one_iteration_64_factors_ml100k", |b| b.iter(|| train_als(&data, &cfg, |_, _| {})));
    g.finish();
}

fn fused_query(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut config = aisle::config::Config::default();
    config.store.data_dir = dir.path().to_path_buf();
    config.models.dir = root().join("models");
    config.chat.model = String::new();
    let store = aisle::store::Store::open(&config.store).unwrap();
    let c2 = config.clone();
    let services = runtime
        .block_on(async move {
            tokio::task::spawn_blocking(move || aisle::app::load_services(&c2, store, false)).await.unwrap()
        })
        .expect("run models/fetch.sh first");
    let spec = ShopSpec { products: 2_000, customers: 500, baskets: 500, categories: 20, seed: 7 };
    runtime.block_on(generate(&services, spec, |_| {})).unwrap();
    let mut i = 0usize;
    let mut g = c.benchmark_group("recommend");
    g.sample_size(20);
    g.bench_function("fused_query_2k_products", |b| {
        b.iter(|| {
            i += 1;
            let req = RecommendRequest {
                customer_id: Some(customer_id(i % spec.customers)),
                limit: Some(10),
                ..Default::default()
            };
            runtime.block_on(services.recommender.recommend(req)).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, tokenization, diversity, als, fused_query);
criterion_main!(benches);
