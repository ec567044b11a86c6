//! Embedding throughput (texts/s) at batch sizes 1, 8 and 32 on demo-catalog product texts,
//! straight through the model (no queue), at the configured thread count.
//!
//! Run: `cargo bench --bench embed` (after models/fetch.sh and data/fetch.sh).

use std::path::PathBuf;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn texts() -> Vec<String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let file = std::fs::read_to_string(root.join("data/demo/products.ndjson")).expect("run data/fetch.sh first");
    file.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let input: aisle::catalog::ProductInput = serde_json::from_value(v).unwrap();
            let p = input.validate(None, "USD", chrono::Utc::now()).unwrap();
            aisle::catalog::text::embedding_text(&p)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let (threads, _) = aisle::infer::threads::configure(0);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let load = || {
        aisle::infer::EmbeddingModel::load(&root.join("models/all-MiniLM-L6-v2"), &candle_core::Device::Cpu)
            .expect("run models/fetch.sh first")
    };
    let model = load();
    let texts = texts();
    let mut encodings: Vec<_> = texts.iter().map(|t| model.tokenize(t).unwrap()).collect();
    let mean_tokens = encodings.iter().map(|e| e.get_ids().len()).sum::<usize>() as f64 / encodings.len() as f64;
    eprintln!("embed bench: {threads} threads, {} texts, {mean_tokens:.1} tokens on average", texts.len());

    // Batches as the queue forms them: texts of similar length together (little padding).
    let mut group = c.benchmark_group(format!("embed/{threads}threads"));
    group.sample_size(10);
    encodings.sort_by_key(|e| e.get_ids().len());
    for batch in [1usize, 8, 32] {
        group.throughput(Throughput::Elements(batch as u64));
        let mut offset = 0;
        group.bench_with_input(BenchmarkId::new("batch", batch), &batch, |b, &batch| {
            b.iter(|| {
                let start = offset % (encodings.len() - batch);
                let chunk: Vec<_> = encodings[start..start + batch].iter().collect();
                offset += 97; // walk through all lengths
                model.embed_encodings(&chunk).unwrap()
            })
        });
    }
    // The whole queue: every demo product text in one request (what an import does).
    let embedder = aisle::infer::Embedder::start(load(), &aisle::config::EmbedConfig::default());
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    group.throughput(Throughput::Elements(refs.len() as u64));
    group.bench_function("queue_catalog", |b| b.iter(|| embedder.embed_blocking(&refs).unwrap()));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
