//! `aisle bench chat`: the chat model's prompt processing (pp) and generation (tg) speed next to
//! llama.cpp's `llama-bench` on the same GGUF file and the compute bound, and the time to first
//! token of an assistant-sized prompt through the scheduler, as a request sees it.
//!
//! Not for: the measurements themselves (`llama-bench`-style pp/tg and running llama.cpp live in
//! [`super::llama`]) or serving chat (`crate::infer::chat`).

use std::path::Path;

use candle_core::Device;

use super::bar;
use super::report::{Row, row};
use crate::config::Config;
use crate::error::{Error, Result};

/// Measure the configured chat model (with llama.cpp as the anchor when `anchors`); `gflops` is
/// the machine's f32 GEMM rate.
pub fn run(config: &Config, root: &Path, quick: bool, anchors: bool, threads: usize, gflops: f64) -> Result<Vec<Row>> {
    use super::llama::{generation, llama_bench, prompt_processing};
    let path = config
        .models
        .chat_model(&config.chat.model)
        .ok_or_else(|| Error::Config("no chat model configured or found (run models/fetch.sh)".into()))?;
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
            format: crate::infer::chat::OutputFormat::Text,
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
