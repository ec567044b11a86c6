//! `aisle bench assistant`: what a shopper waits for. The demo catalog (`data/demo/`, fetched by
//! `data/fetch.sh`) is imported once into a cached data directory, then shopping requests run
//! through the real assistant with the configured chat model (by default the strongest the
//! machine holds): time to the first text the shopper sees, time to the model's first token
//! (reading the request with the model included), and the whole answer, as medians; the same
//! prompt's plain generation through the scheduler is the anchor for the model's share.
//!
//! Not the quality of the answers (`aisle assistant-eval`) and not the raw model speed
//! ([`super::chat`]).

use std::path::Path;

use super::bar;
use super::report::{Row, row};
use crate::assistant::{AssistantRequest, ChatMessage};
use crate::config::Config;
use crate::error::{Error, Result};

/// Requests of several kinds: a category with a price, a brand, a range, a follow-up-free
/// phrase the rules cannot fully read (so the model reads it), and one with a product word.
const REQUESTS: &[&str] = &[
    "headphones under $100",
    "I need a gaming laptop between $800 and $1500",
    "a Samsung TV",
    "something to keep an eye on my front door",
    "a tablet for drawing",
    "smart watches under $300",
];

/// The assistant's latency with the configured chat model on the demo catalog.
pub fn run(config: &Config, root: &Path, quick: bool, threads: usize) -> Result<Vec<Row>> {
    let catalog = root.join("data/demo/products.ndjson");
    if !catalog.exists() {
        return Err(Error::Config(format!("{} is missing (run data/fetch.sh)", catalog.display())));
    }
    let mut cfg = config.clone();
    cfg.store.data_dir = super::shop::cache_root().join("bench/assistant-demo");
    // The assistant's timings are the models'; the demo catalog stays in the embedded store.
    cfg.store.qdrant_url = String::new();
    cfg.auth.keys.clear();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(2))
        .enable_all()
        .build()
        .map_err(|e| Error::io("runtime", e))?;
    let store = crate::store::Store::open(&cfg.store)?;
    let c = cfg.clone();
    let services = runtime
        .block_on(async move { tokio::task::spawn_blocking(move || crate::app::load_services(&c, store, true)).await })
        .map_err(|e| Error::Internal(e.to_string()))??;
    let generator = services.assistant.generator()?.clone();
    let name = generator.info().name.clone();
    let pb = bar(REQUESTS.len() as u64, "assistant");
    pb.set_message("demo catalog (imported once, cached)");
    let rows = crate::catalog::import::read_rows(
        &catalog,
        crate::catalog::import::Format::Ndjson,
        &crate::catalog::import::PRODUCT_CSV,
    )?;
    // Idempotent: unchanged products keep their vectors, so later runs embed nothing.
    runtime.block_on(crate::catalog::import::import(&services.catalog, rows, 64, |_| {}))?;
    let (mut first_text, mut first_token, mut total, mut plain) = (vec![], vec![], vec![], vec![]);
    let requests = if quick { &REQUESTS[..3] } else { REQUESTS };
    for text in requests {
        pb.set_message(text.to_string());
        let request = AssistantRequest {
            customer_id: None,
            session_id: None,
            messages: vec![ChatMessage { role: "user".into(), content: text.to_string() }],
            filters: None,
            stream: Some(true),
        };
        let (_, _, summary) = runtime.block_on(async {
            let rx = services.assistant.chat(request).await?;
            crate::assistant::Assistant::collect(rx).await
        })?;
        let t = &summary.timings;
        first_text.extend(t.first_text_ms);
        first_token.extend(t.first_token_ms);
        total.push(t.total_ms);
        // The anchor: the model alone on a prompt of the answer's size, as many tokens out.
        let (prompt_tokens, completion) = (summary.usage.prompt_tokens, summary.usage.completion_tokens);
        if prompt_tokens > 0 {
            let prompt = generator.text_prompt(&"shop ".repeat(prompt_tokens))?;
            let request = crate::infer::chat::GenerateRequest {
                prompt: prompt[..prompt.len().min(prompt_tokens)].to_vec(),
                max_tokens: completion.max(1),
                sampling: crate::infer::chat::SamplingParams { temperature: 0.0, ..Default::default() },
                stop: vec![],
                format: crate::infer::chat::OutputFormat::Text,
            };
            let started = std::time::Instant::now();
            runtime.block_on(generator.generate(request))?;
            plain.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    let median = |xs: &mut Vec<f64>| {
        xs.sort_by(f64::total_cmp);
        if xs.is_empty() { f64::NAN } else { xs[xs.len() / 2] }
    };
    let n = requests.len();
    let mut out = vec![
        row("assistant", format!("{name} first text shown ({n} requests, p50)"), median(&mut first_text), "ms"),
        row("assistant", format!("{name} first model token (p50)"), median(&mut first_token), "ms"),
    ];
    let mut total_row = row("assistant", format!("{name} whole answer (p50)"), median(&mut total), "ms");
    if !plain.is_empty() {
        total_row = total_row.against("the model alone, same prompt and answer length", median(&mut plain), false);
    }
    out.push(total_row);
    Ok(out)
}
