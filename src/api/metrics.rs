//! `GET /metrics`: Prometheus text exposition, rendered by `metrics-exporter-prometheus` from
//! what the `metrics` facade recorded where things happen: HTTP requests by route and status
//! (the [`track`] middleware), latency histograms of the embedding queue, the chat scheduler,
//! recommendations and the store (recorded in those modules), and, at each scrape, the gauges
//! and counters the engines keep in atomics. Names follow Prometheus conventions (`_total`,
//! `_seconds`, `_bytes`) and are listed in the README; `docs/grafana-dashboard.json` charts
//! them.

use std::sync::OnceLock;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use utoipa_axum::routes;

use super::AppState;
use super::auth::{Access, Subject};
use super::openapi::Api;
use crate::privacy::apikeys::Role;

/// Routes of this resource.
pub fn routes() -> Api {
    Api::new().route(Access::Role(Role::Read), Subject::None, routes!(metrics))
}

/// Buckets of latency histograms (seconds): a millisecond to a minute.
const SECONDS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
/// Buckets of size histograms (texts in a batch).
const SIZES: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
/// Buckets of rates (tokens per second).
const RATES: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0];

/// The process's recorder, installed on first use (the `metrics` facade then records into it).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_texts".into()), SIZES))
            .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_per_second".into()), RATES))
            .expect("histogram buckets are not empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Another recorder already installed (a test harness): this handle then renders nothing
        // recorded, which /metrics shows plainly.
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed");
        }
        describe();
        handle
    })
}

/// HELP texts of the metrics recorded where things happen.
fn describe() {
    use metrics::{Unit, describe_counter, describe_histogram};
    describe_counter!("aisle_http_requests_total", "HTTP requests by method, route and status.");
    describe_histogram!(
        "aisle_http_request_duration_seconds",
        Unit::Seconds,
        "Time to the response's headers, by method and route."
    );
    describe_histogram!("aisle_embed_batch_texts", "Texts per embedding forward pass.");
    describe_histogram!("aisle_embed_queue_wait_seconds", Unit::Seconds, "Time texts waited for a forward pass.");
    describe_histogram!("aisle_embed_batch_duration_seconds", Unit::Seconds, "Time of an embedding forward pass.");
    describe_histogram!(
        "aisle_chat_time_to_first_token_seconds",
        Unit::Seconds,
        "From a chat request's submission to its first generated token."
    );
    describe_histogram!("aisle_chat_request_duration_seconds", Unit::Seconds, "From submission to the last token.");
    describe_histogram!("aisle_chat_decode_tokens_per_second", "Generation speed of a request after its first token.");
    describe_histogram!("aisle_recommend_duration_seconds", Unit::Seconds, "Time to answer a recommendation request.");
    describe_counter!("aisle_recommend_items_total", "Recommended items each source took part in, by source.");
    describe_histogram!("aisle_store_operation_duration_seconds", Unit::Seconds, "Store operations by kind.");
    describe_counter!("aisle_store_errors_total", "Store operations that failed, by kind.");
}

/// Middleware: count each request by method, route (the pattern, never the raw path: paths
/// carry customer ids) and status, and time it to its response's headers.
pub async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_string();
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched".to_string(), |m| m.as_str().to_string());
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("aisle_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("aisle_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// A value the engines keep, set at scrape time.
trait Sample {
    fn value(self) -> f64;
}

impl Sample for u64 {
    fn value(self) -> f64 {
        self as f64
    }
}

impl Sample for usize {
    fn value(self) -> f64 {
        self as f64
    }
}

impl Sample for u8 {
    fn value(self) -> f64 {
        f64::from(self)
    }
}

/// Export an engine's counter or gauge (read from its atomics at scrape time).
fn export(name: &'static str, kind: &str, help: &'static str, value: impl Sample) {
    let v = value.value();
    if kind == "counter" {
        metrics::describe_counter!(name, help);
        metrics::counter!(name).absolute(v as u64);
    } else {
        metrics::describe_gauge!(name, help);
        metrics::gauge!(name).set(v);
    }
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "operations",
    responses((status = 200, description = "The metrics.", content_type = "text/plain; version=0.0.4", body = String)))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let handle = handle();
    export(
        "aisle_uptime_seconds",
        "gauge",
        "Seconds since the server started.",
        state.inner.started.elapsed().as_secs(),
    );
    export(
        "aisle_ready",
        "gauge",
        "1 once models are loaded and the store is open.",
        u8::from(state.services().is_ok()),
    );
    if let Ok(s) = state.services() {
        let e = s.embedder.stats();
        export(
            "aisle_embed_queue_texts",
            "gauge",
            "Texts waiting or being embedded.",
            e.queued.load(Ordering::Relaxed),
        );
        export("aisle_embed_batches_total", "counter", "Embedding forward passes.", e.batches.load(Ordering::Relaxed));
        export("aisle_embed_texts_total", "counter", "Texts embedded.", e.texts.load(Ordering::Relaxed));
        export(
            "aisle_embed_tokens_total",
            "counter",
            "Tokens embedded (without padding).",
            e.tokens.load(Ordering::Relaxed),
        );
        export(
            "aisle_embed_padded_tokens_total",
            "counter",
            "Tokens computed including padding.",
            e.padded_tokens.load(Ordering::Relaxed),
        );
        export(
            "aisle_embed_skipped_total",
            "counter",
            "Texts skipped because their caller left.",
            e.skipped.load(Ordering::Relaxed),
        );
        export(
            "aisle_embed_query_cache_hits_total",
            "counter",
            "Search-query embeddings answered from the cache.",
            e.query_cache_hits.load(Ordering::Relaxed),
        );
        export(
            "aisle_embed_query_cache_misses_total",
            "counter",
            "Search-query embeddings computed.",
            e.query_cache_misses.load(Ordering::Relaxed),
        );
        export(
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
            export(name, "counter", help, v.load(Ordering::Relaxed));
        }
        if let Some(g) = &s.generator {
            let c = g.stats();
            let memory = g.memory();
            export(
                "aisle_chat_waiting",
                "gauge",
                "Chat requests waiting for a slot.",
                c.waiting.load(Ordering::Relaxed),
            );
            export("aisle_chat_active", "gauge", "Chat requests generating.", c.active.load(Ordering::Relaxed));
            export(
                "aisle_chat_finished_total",
                "counter",
                "Chat requests finished.",
                c.finished.load(Ordering::Relaxed),
            );
            export(
                "aisle_chat_cancelled_total",
                "counter",
                "Chat requests cancelled by their client.",
                c.cancelled.load(Ordering::Relaxed),
            );
            export(
                "aisle_chat_prompt_tokens_total",
                "counter",
                "Prompt tokens processed.",
                c.prompt_tokens.load(Ordering::Relaxed),
            );
            export(
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
                export(name, kind, help, v);
            }
        }
    }
    handle.run_upkeep();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render())
}
