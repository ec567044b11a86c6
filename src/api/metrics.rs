//! `GET /metrics`: Prometheus text exposition of the counters the engines keep where things
//! happen (the embedding queue, the chat scheduler). Names are stable for dashboards.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use super::AppState;

/// Routes of this resource.
pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut out = String::new();
    metric(
        &mut out,
        "aisle_uptime_seconds",
        "gauge",
        "Seconds since the server started.",
        state.inner.started.elapsed().as_secs(),
    );
    metric(
        &mut out,
        "aisle_ready",
        "gauge",
        "1 once models are loaded and the store is open.",
        u8::from(state.services().is_ok()),
    );
    if let Ok(s) = state.services() {
        let e = s.embedder.stats();
        metric(
            &mut out,
            "aisle_embed_queue_texts",
            "gauge",
            "Texts waiting or being embedded.",
            e.queued.load(Ordering::Relaxed),
        );
        metric(
            &mut out,
            "aisle_embed_batches_total",
            "counter",
            "Embedding forward passes.",
            e.batches.load(Ordering::Relaxed),
        );
        metric(&mut out, "aisle_embed_texts_total", "counter", "Texts embedded.", e.texts.load(Ordering::Relaxed));
        metric(
            &mut out,
            "aisle_embed_tokens_total",
            "counter",
            "Tokens embedded (without padding).",
            e.tokens.load(Ordering::Relaxed),
        );
        metric(
            &mut out,
            "aisle_embed_padded_tokens_total",
            "counter",
            "Tokens computed including padding.",
            e.padded_tokens.load(Ordering::Relaxed),
        );
        metric(
            &mut out,
            "aisle_embed_skipped_total",
            "counter",
            "Texts skipped because their caller left.",
            e.skipped.load(Ordering::Relaxed),
        );
        metric(
            &mut out,
            "aisle_embed_query_cache_hits_total",
            "counter",
            "Search-query embeddings answered from the cache.",
            e.query_cache_hits.load(Ordering::Relaxed),
        );
        metric(
            &mut out,
            "aisle_embed_query_cache_misses_total",
            "counter",
            "Search-query embeddings computed.",
            e.query_cache_misses.load(Ordering::Relaxed),
        );
        metric(
            &mut out,
            "aisle_embed_weights_bytes",
            "gauge",
            "Bytes of the embedding model's weights as loaded.",
            s.embedder.info().weights_bytes,
        );
        let a = s.assistant.stats();
        for (name, help, v) in [
            ("aisle_assistant_requests_total", "Assistant answers.", &a.requests),
            ("aisle_assistant_refusals_total", "Assistant refusals (out of scope or unsafe).", &a.refusals),
            ("aisle_assistant_empty_total", "Assistant requests no in-stock product matched.", &a.empty),
            (
                "aisle_assistant_violations_product_total",
                "Grounding: products named that were not cards.",
                &a.violations_product,
            ),
            (
                "aisle_assistant_violations_price_total",
                "Grounding: prices that were not the catalog's.",
                &a.violations_price,
            ),
            (
                "aisle_assistant_violations_stock_total",
                "Grounding: stock claims that were not the catalog's.",
                &a.violations_stock,
            ),
            ("aisle_assistant_repaired_total", "Grounding: claims rewritten from the catalog.", &a.repaired),
            ("aisle_assistant_removed_total", "Grounding: sentences removed.", &a.removed),
            ("aisle_assistant_fallbacks_total", "Grounding: answers rewritten from the cards.", &a.fallbacks),
            (
                "aisle_assistant_violations_after_total",
                "Grounding: violations left in final answers.",
                &a.violations_after,
            ),
        ] {
            metric(&mut out, name, "counter", help, v.load(Ordering::Relaxed));
        }
        if let Some(g) = &s.generator {
            let c = g.stats();
            let memory = g.memory();
            metric(
                &mut out,
                "aisle_chat_waiting",
                "gauge",
                "Chat requests waiting for a slot.",
                c.waiting.load(Ordering::Relaxed),
            );
            metric(
                &mut out,
                "aisle_chat_active",
                "gauge",
                "Chat requests generating.",
                c.active.load(Ordering::Relaxed),
            );
            metric(
                &mut out,
                "aisle_chat_finished_total",
                "counter",
                "Chat requests finished.",
                c.finished.load(Ordering::Relaxed),
            );
            metric(
                &mut out,
                "aisle_chat_cancelled_total",
                "counter",
                "Chat requests cancelled by their client.",
                c.cancelled.load(Ordering::Relaxed),
            );
            metric(
                &mut out,
                "aisle_chat_prompt_tokens_total",
                "counter",
                "Prompt tokens processed.",
                c.prompt_tokens.load(Ordering::Relaxed),
            );
            metric(
                &mut out,
                "aisle_chat_generated_tokens_total",
                "counter",
                "Tokens generated.",
                c.generated_tokens.load(Ordering::Relaxed),
            );
            for (name, kind, help, v) in [
                (
                    "aisle_chat_passes_total",
                    "counter",
                    "Forward passes (each runs every active request).",
                    c.passes.load(Ordering::Relaxed),
                ),
                (
                    "aisle_chat_pass_sequences_total",
                    "counter",
                    "Requests in forward passes, summed (over passes: the mean batch).",
                    c.pass_sequences.load(Ordering::Relaxed),
                ),
                (
                    "aisle_chat_batch",
                    "gauge",
                    "Requests in the last forward pass.",
                    c.batch.load(Ordering::Relaxed) as u64,
                ),
                (
                    "aisle_chat_failed_total",
                    "counter",
                    "Chat requests that ended with an error of their own.",
                    c.failed.load(Ordering::Relaxed),
                ),
                (
                    "aisle_chat_prefix_hits_total",
                    "counter",
                    "Chat requests started from a cached prompt prefix.",
                    c.prefix_hits.load(Ordering::Relaxed),
                ),
                (
                    "aisle_chat_prefix_tokens_total",
                    "counter",
                    "Prompt tokens not run again because their prefix was cached.",
                    c.prefix_tokens.load(Ordering::Relaxed),
                ),
                (
                    "aisle_chat_prefix_cache_bytes",
                    "gauge",
                    "Bytes held by the prompt prefix cache.",
                    c.prefix_bytes.load(Ordering::Relaxed) as u64,
                ),
                (
                    "aisle_chat_kv_cache_bytes",
                    "gauge",
                    "Bytes of the active chat requests' KV caches.",
                    c.kv_bytes.load(Ordering::Relaxed) as u64,
                ),
                (
                    "aisle_chat_weights_bytes",
                    "gauge",
                    "Bytes of the chat model's weights as loaded.",
                    memory.weights_bytes,
                ),
                (
                    "aisle_chat_dense_copies_bytes",
                    "gauge",
                    "Bytes of dequantized f32 weight copies kept for prompts ([chat] dense_copies).",
                    memory.dense_copies_bytes,
                ),
            ] {
                metric(&mut out, name, kind, help, v);
            }
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
