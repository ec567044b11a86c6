//! `aisle bench chat`: the chat model's prompt processing (pp) and generation (tg) speed next to
//! llama.cpp's `llama-bench` on the same GGUF file and the compute bound, and the time to first
//! token of an assistant-sized prompt through the scheduler, as a request sees it.
//!
//! Not for: the measurements themselves (`llama-bench`-style pp/tg and running llama.cpp live in
//! [`super::llama`]) or serving chat (`crate::infer::chat`).

use std::path::Path;

use super::bar;
use super::report::{Row, row};
use crate::config::Config;
use crate::error::{Error, Result};

/// Measure the configured chat model (with llama.cpp as the anchor when `anchors`); `gflops` is
/// the machine's f32 GEMM rate.
///
/// `bounds` are the machine's f32 GEMM rate (GFLOP/s) and memory read bandwidth (GB/s).
pub fn run(
    config: &Config,
    root: &Path,
    quick: bool,
    anchors: bool,
    threads: usize,
    bounds: (f64, f64),
) -> Result<Vec<Row>> {
    let (gflops, bandwidth) = bounds;
    use super::llama::{generation, llama_bench, prompt_processing};
    let path = config
        .models
        .chat_model(&config.chat.model)
        .ok_or_else(|| Error::Config("no chat model configured or found (run models/fetch.sh)".into()))?;
    let gguf = crate::infer::chat::resolve_gguf(&path)?;
    let (pp, tg, reps) = if quick { (512, 128, 2) } else { (512, 128, 5) };
    let pb = bar(5, "chat");
    pb.set_message("llama-bench");
    let theirs = if anchors { llama_bench(root, &gguf, threads, pp, tg, reps) } else { None };
    pb.inc(1);
    let device = crate::infer::select_device(&config.models.device)?;
    let model = crate::infer::chat::ChatModel::load(&path, &device, config.chat.max_context)?;
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
        } else if let bytes @ 1.. = model.model.memory().weights_bytes {
            // One token reads every weight once (tied embeddings: the output head reads the
            // table too), so bandwidth over the weights' bytes bounds generation.
            rows.push(row("chat", format!("{name} {} vs memory", s.test), s.tokens_per_second, "tokens/s").against(
                "memory bound",
                bandwidth * 1e9 / bytes as f64,
                true,
            ));
        }
    }
    // Time to first token of an assistant-sized prompt (instructions, a product table and a
    // question: ~300 tokens) through the scheduler, as a request sees it: cold (prefix reuse
    // off), and a follow-up turn of the conversation with and without the first turn's prompt
    // in the prefix cache.
    pb.set_message("time to first token");
    let scheduler = |prefix_cache_bytes: usize| crate::infer::chat::scheduler::SchedulerConfig {
        max_active: 1,
        max_waiting: 4,
        prefill_chunk: config.chat.prefill_chunk,
        prefix_cache_bytes,
        threads: config.chat.threads,
    };
    let start =
        |prefix_cache_bytes: usize| crate::infer::chat::Generator::start(model.clone(), &scheduler(prefix_cache_bytes));
    let generator = start(0);
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
    use crate::infer::chat::Message;
    let first_turn = vec![
        Message::new("system", table),
        Message::new("user", "I need wireless headphones under $150 for the gym. Which one?"),
    ];
    let mut follow_up = first_turn.clone();
    follow_up.push(Message::new(
        "assistant",
        "Model 2 by Brand 2 at $89.99 fits: wireless, noise cancelling and rated 4.2/5.",
    ));
    follow_up.push(Message::new("user", "Is there one with a better rating for a little more?"));
    let prompt = generator.chat_prompt(&first_turn)?;
    let follow_prompt = generator.chat_prompt(&follow_up)?;
    let prompt_len = prompt.len();
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| Error::io("runtime", e))?;
    let ttft_of = |g: &crate::infer::chat::Generator, prompt: &[u32]| -> Result<f64> {
        let request = crate::infer::chat::GenerateRequest {
            prompt: prompt.to_vec(),
            max_tokens: 8,
            sampling: crate::infer::chat::SamplingParams { temperature: 0.0, ..Default::default() },
            stop: vec![],
            format: crate::infer::chat::OutputFormat::Text,
        };
        let (_, finish) = runtime.block_on(g.generate(request))?;
        Ok(finish.time_to_first_token.as_secs_f64() * 1000.0)
    };
    let reps = if quick { 2 } else { 5 };
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let ttft = median((0..reps).map(|_| ttft_of(&generator, &prompt)).collect::<Result<Vec<_>>>()?);
    let bound_ms = prompt_len as f64 * flops_per_token / (gflops * 1e9) * 1000.0;
    rows.push(row("chat", format!("{name} time to first token ({prompt_len}-token prompt)"), ttft, "ms").against(
        "compute bound",
        bound_ms,
        false,
    ));
    // The follow-up turn: cold (an empty prefix cache each time), then warm (the first turn ran
    // just before on the same scheduler), each on a fresh scheduler.
    let cache_bytes = config.chat.prefix_cache_mb.max(1) << 20;
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for _ in 0..reps {
        cold.push(ttft_of(&start(cache_bytes), &follow_prompt)?);
        let g = start(cache_bytes);
        ttft_of(&g, &prompt)?;
        warm.push(ttft_of(&g, &follow_prompt)?);
    }
    let (cold, warm) = (median(cold), median(warm));
    let n = follow_prompt.len();
    rows.push(row("chat", format!("{name} time to first token, follow-up turn ({n} tokens), cold"), cold, "ms"));
    rows.push(
        row("chat", format!("{name} time to first token, follow-up turn ({n} tokens), warm prefix cache"), warm, "ms")
            .against("the same turn cold", cold, false),
    );
    pb.inc(1);
    // Concurrent streams against llama-server.
    pb.set_message("concurrent streams");
    let (levels, tokens): (&[usize], usize) = if quick { (&[1, 4], 32) } else { (&[1, 4, 16], 128) };
    rows.extend(super::streams::run(&model, root, levels, tokens, threads, config.chat.prefill_chunk, anchors)?);
    pb.finish_and_clear();
    Ok(rows)
}
