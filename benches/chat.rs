//! Chat-model speed side by side with llama.cpp: prompt processing (pp512) and generation
//! (tg128) in tokens/s at a fixed thread count, on the same GGUF file, in the same run.
//!
//!   cargo bench --bench chat                      SmolLM2-135M-Instruct Q4_1
//!   AISLE_BENCH_MODEL=models/Qwen2.5-Coder-1.5B-Instruct cargo bench --bench chat
//!
//! LLAMA_CPP_NATIVE=0 compares against llama.cpp built for x86-64-v3, the ISA level aisle is
//! built for (default 1: llama.cpp's own default, -march=native).
//!
//! Environment: AISLE_BENCH_THREADS (default: the machine's), AISLE_BENCH_REPS (default 5),
//! AISLE_BENCH_NO_ANCHOR (skip llama.cpp), AISLE_BENCH_ONLY=pp|tg (one test; both for profiling).
//! llama-bench is built from the PyPI sdist by benches/llama-cpp.sh (first use: minutes).

use std::path::PathBuf;

use aisle::bench::llama::{generation, llama_bench, prompt_processing};

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // cargo test --benches asks for a list; this bench has no unit tests
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let threads: usize = std::env::var("AISLE_BENCH_THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(0);
    let (threads, _) = aisle::infer::threads::configure(threads);
    let reps: usize = std::env::var("AISLE_BENCH_REPS").ok().and_then(|t| t.parse().ok()).unwrap_or(5);
    let model_path = std::env::var("AISLE_BENCH_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("models/SmolLM2-135M-Instruct"));
    // `cargo bench` passes --bench; under `cargo test` this is a smoke run (as criterion does).
    let quick = !std::env::args().any(|a| a == "--bench") || std::env::var("AISLE_BENCH_QUICK").is_ok();
    let (pp, tg, reps) = if quick { (64, 16, 1) } else { (512, 128, reps) };
    let gguf = aisle::infer::chat::resolve_gguf(&model_path).expect("run models/fetch.sh first");
    // The anchor runs first, before aisle has started any thread that could compete with it.
    let anchor = !quick && std::env::var("AISLE_BENCH_NO_ANCHOR").is_err();
    let theirs = if anchor { llama_bench(&root, &gguf, threads, pp, tg, reps) } else { None };
    let model = aisle::infer::chat::ChatModel::load(&model_path, &candle_core::Device::Cpu, 4096)
        .expect("run models/fetch.sh first");
    eprintln!("chat bench: {} ({}), {threads} threads, {reps} repetitions", model.name, gguf.display());
    // AISLE_BENCH_ONLY=pp|tg runs one test (for profiling).
    let only = std::env::var("AISLE_BENCH_ONLY").unwrap_or_default();
    let mut ours = Vec::new();
    if only != "tg" {
        ours.push(prompt_processing(&model.model, pp, reps).unwrap());
    }
    if only != "pp" {
        ours.push(generation(&model.model, tg, reps).unwrap());
    }
    println!("\n| test | aisle (tokens/s) | llama.cpp (tokens/s) | aisle / llama.cpp |");
    println!("|---|---|---|---|");
    for s in &ours {
        let anchor = theirs.as_ref().and_then(|t| t.iter().find(|a| a.test == s.test));
        match anchor {
            Some(a) => println!(
                "| {} | {:.1} ± {:.1} | {:.1} ± {:.1} | {:.2} |",
                s.test,
                s.tokens_per_second,
                s.stddev,
                a.tokens_per_second,
                a.stddev,
                s.tokens_per_second / a.tokens_per_second
            ),
            None => println!("| {} | {:.1} ± {:.1} | n/a | n/a |", s.test, s.tokens_per_second, s.stddev),
        }
    }
}
