//! OpenAI-compatible endpoints, so that existing clients work unchanged:
//! `POST /v1/chat/completions` (with `stream: true` as server-sent events in OpenAI's chunk
//! format, ending `data: [DONE]`), `POST /v1/completions`, `POST /v1/embeddings`,
//! `GET /v1/models` and `GET /v1/models/{id}`.
//!
//! Parameters aisle cannot honour (n > 1, logprobs, tools, JSON schema) are refused with a 400
//! that says so, never silently ignored. Every response reports token usage.

use std::convert::Infallible;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::extract::{JsonBody, PathId};
use super::problem::ApiError;
use crate::error::{Error, FieldError, from_json_value};
use crate::infer::chat::{Event, FinishReason, GenerateRequest, Generator, Message, SamplingParams};

/// Routes of this resource.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .route("/v1/models/{id}", get(model))
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A string or a list of strings (OpenAI's `stop`, `input`, `prompt`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// Message content: a string, or OpenAI's list of parts (text parts only).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Deserialize)]
struct ContentPart {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
struct MessageIn {
    role: String,
    content: Option<Content>,
}

#[derive(Debug, Deserialize)]
struct ResponseFormat {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// The sampling and length parameters shared by chat and text completions.
#[derive(Debug, Default, Deserialize)]
struct Knobs {
    max_tokens: Option<i64>,
    max_completion_tokens: Option<i64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<i64>,
    min_p: Option<f64>,
    repetition_penalty: Option<f64>,
    frequency_penalty: Option<f64>,
    presence_penalty: Option<f64>,
    seed: Option<i64>,
    stop: Option<OneOrMany>,
    n: Option<i64>,
    logprobs: Option<Value>,
    top_logprobs: Option<Value>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
}

#[derive(Debug, Deserialize)]
struct ChatRequest {
    model: String,
    messages: Vec<MessageIn>,
    response_format: Option<ResponseFormat>,
    tools: Option<Vec<Value>>,
    #[serde(skip)]
    knobs: Knobs,
}

#[derive(Debug, Deserialize)]
struct CompletionRequest {
    model: String,
    prompt: OneOrMany,
    echo: Option<bool>,
    suffix: Option<String>,
    best_of: Option<i64>,
    #[serde(skip)]
    knobs: Knobs,
}

/// Read a request and its knobs from one body. (`#[serde(flatten)]` would hide the path of a
/// bad knob from the error, so the knobs are read as a document of their own.)
fn parse_with_knobs<T: serde::de::DeserializeOwned>(
    body: Value,
    set: impl FnOnce(&mut T, Knobs),
) -> Result<T, ApiError> {
    let knobs: Knobs = from_json_value(body.clone()).map_err(|e| ApiError::from(Error::Invalid(vec![e])))?;
    let mut request: T = from_json_value(body).map_err(|e| ApiError::from(Error::Invalid(vec![e])))?;
    set(&mut request, knobs);
    Ok(request)
}

fn range(errors: &mut Vec<FieldError>, name: &str, v: Option<f64>, lo: f64, hi: f64) {
    if v.is_some_and(|x| !(x.is_finite() && x >= lo && x <= hi)) {
        errors.push(FieldError::new(format!("/{name}"), format!("must be between {lo} and {hi}")));
    }
}

/// Validate the knobs and turn them into a request (without the prompt and max_tokens default).
fn knobs(k: &Knobs, default_max: usize, errors: &mut Vec<FieldError>) -> (usize, SamplingParams, Vec<String>) {
    range(errors, "temperature", k.temperature, 0.0, 2.0);
    range(errors, "top_p", k.top_p, 0.0, 1.0);
    range(errors, "min_p", k.min_p, 0.0, 1.0);
    range(errors, "repetition_penalty", k.repetition_penalty, 0.01, 10.0);
    range(errors, "frequency_penalty", k.frequency_penalty, -2.0, 2.0);
    range(errors, "presence_penalty", k.presence_penalty, -2.0, 2.0);
    if k.top_p == Some(0.0) {
        errors.push(FieldError::new("/top_p", "must be greater than 0"));
    }
    if k.top_k.is_some_and(|t| t < 0) {
        errors.push(FieldError::new("/top_k", "must be >= 0 (0 disables it)"));
    }
    let max = k.max_completion_tokens.or(k.max_tokens);
    let max_name = if k.max_completion_tokens.is_some() { "/max_completion_tokens" } else { "/max_tokens" };
    if max.is_some_and(|m| m < 1) {
        errors.push(FieldError::new(max_name, "must be at least 1"));
    }
    if k.n.is_some_and(|n| n != 1) {
        errors.push(FieldError::new("/n", "only n = 1 is supported"));
    }
    if k.logprobs.as_ref().is_some_and(|l| l != &Value::Bool(false) && !l.is_null())
        || k.top_logprobs.as_ref().is_some_and(|v| !v.is_null())
    {
        errors.push(FieldError::new("/logprobs", "log probabilities are not supported"));
    }
    let stop = k.stop.as_ref().map(|s| match s {
        OneOrMany::One(x) => vec![x.clone()],
        OneOrMany::Many(v) => v.clone(),
    });
    let stop = stop.unwrap_or_default();
    if stop.len() > 4 {
        errors.push(FieldError::new("/stop", "at most 4 stop sequences"));
    }
    for (i, s) in stop.iter().enumerate() {
        if s.is_empty() || s.chars().count() > 100 {
            errors.push(FieldError::new(format!("/stop/{i}"), "must be 1 to 100 characters"));
        }
    }
    let sampling = SamplingParams {
        temperature: k.temperature.unwrap_or(1.0) as f32,
        top_k: k.top_k.unwrap_or(0).max(0) as usize,
        top_p: k.top_p.unwrap_or(1.0) as f32,
        min_p: k.min_p.unwrap_or(0.0) as f32,
        repetition_penalty: k.repetition_penalty.unwrap_or(1.0) as f32,
        frequency_penalty: k.frequency_penalty.unwrap_or(0.0) as f32,
        presence_penalty: k.presence_penalty.unwrap_or(0.0) as f32,
        repeat_last_n: 64,
        seed: k.seed.map(|s| s as u64).unwrap_or_else(rand::random),
    };
    (max.map(|m| m.max(1) as usize).unwrap_or(default_max), sampling, stop)
}

fn generator<'a>(state: &'a AppState, model: &str) -> Result<&'a Generator, ApiError> {
    let services = state.services()?;
    let Some(g) = services.generator.as_ref() else {
        return Err(Error::Unavailable("no chat model is configured ([chat] model is empty)".into()).into());
    };
    if model != g.info().name {
        return Err(unknown_model(state, model));
    }
    Ok(g)
}

fn unknown_model(state: &AppState, model: &str) -> ApiError {
    let names = state.services().map(|s| s.model_names()).unwrap_or_default();
    let mut p = super::problem::Problem::new(
        axum::http::StatusCode::NOT_FOUND,
        "model-not-found",
        "Model not found",
        format!("model '{model}' is not served here; models: {}", names.join(", ")),
    );
    p.errors = vec![FieldError::new("/model", format!("unknown model '{model}'"))];
    ApiError(p)
}

/// Fit max_tokens into the context when the client did not ask for a number.
fn fit(g: &Generator, prompt: usize, max: usize, explicit: bool) -> usize {
    let room = g.info().shape.context.saturating_sub(prompt);
    if explicit { max } else { max.min(room).max(1) }
}

async fn chat_completions(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let req: ChatRequest = parse_with_knobs(body, |r: &mut ChatRequest, k| r.knobs = k)?;
    let mut errors = Vec::new();
    let (max, sampling, stop) = knobs(&req.knobs, state.config().chat.default_max_tokens, &mut errors);
    if req.messages.is_empty() {
        errors.push(FieldError::new("/messages", "must hold at least one message"));
    }
    let mut messages = Vec::with_capacity(req.messages.len());
    for (i, m) in req.messages.into_iter().enumerate() {
        if !matches!(m.role.as_str(), "system" | "user" | "assistant" | "developer") {
            errors.push(FieldError::new(
                format!("/messages/{i}/role"),
                format!("'{}' is not system, user or assistant", m.role),
            ));
        }
        let content = match m.content {
            None => String::new(),
            Some(Content::Text(t)) => t,
            Some(Content::Parts(parts)) => {
                let mut text = String::new();
                for (j, p) in parts.into_iter().enumerate() {
                    match (p.kind.as_str(), p.text) {
                        ("text", Some(t)) => text.push_str(&t),
                        _ => errors.push(FieldError::new(
                            format!("/messages/{i}/content/{j}"),
                            "only text parts are supported",
                        )),
                    }
                }
                text
            }
        };
        let role = if m.role == "developer" { "system".to_string() } else { m.role };
        messages.push(Message { role, content });
    }
    if req.tools.as_ref().is_some_and(|t| !t.is_empty()) {
        errors.push(FieldError::new("/tools", "tool calls are not supported"));
    }
    let json_mode = match req.response_format.as_ref().map(|f| f.kind.as_str()) {
        None | Some("text") => false,
        Some("json_object") => true,
        Some("json_schema") => {
            errors.push(FieldError::new("/response_format/type", "json_schema is not supported; use json_object"));
            false
        }
        Some(other) => {
            errors.push(FieldError::new("/response_format/type", format!("'{other}' is not text or json_object")));
            false
        }
    };
    if !errors.is_empty() {
        return Err(Error::Invalid(errors).into());
    }
    let g = generator(&state, &req.model)?.clone();
    let prompt = g.chat_prompt(&messages)?;
    let explicit = req.knobs.max_tokens.is_some() || req.knobs.max_completion_tokens.is_some();
    let max_tokens = fit(&g, prompt.len(), max, explicit);
    let request = GenerateRequest { prompt, max_tokens, sampling, stop, json: json_mode };
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = now();
    let model = g.info().name.clone();
    if req.knobs.stream.unwrap_or(false) {
        let include_usage = req.knobs.stream_options.as_ref().is_some_and(|o| o.include_usage);
        let rx = g.submit(request)?;
        return Ok(stream_chat(rx, id, created, model, include_usage).into_response());
    }
    let (text, finish) = g.generate(request).await?;
    Ok(Json(json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": fingerprint(),
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "logprobs": null,
            "finish_reason": finish.reason,
        }],
        "usage": usage(finish.prompt_tokens, finish.completion_tokens),
    }))
    .into_response())
}

fn fingerprint() -> String {
    format!("aisle-{}", env!("CARGO_PKG_VERSION"))
}

fn usage(prompt: usize, completion: usize) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

fn finish_name(r: FinishReason) -> &'static str {
    match r {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
    }
}

fn stream_chat(
    rx: tokio::sync::mpsc::UnboundedReceiver<Event>,
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
) -> Sse<impl futures::Stream<Item = Result<SseEvent, Infallible>>> {
    let chunk = move |delta: Value, finish: Option<&str>| {
        json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": fingerprint(),
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        })
    };
    let first = chunk(json!({"role": "assistant", "content": ""}), None);
    let events = tokio_stream(rx).flat_map(move |e| {
        let out: Vec<Value> = match e {
            Event::Text(t) => vec![chunk(json!({"content": t}), None)],
            Event::Done(f) => {
                let mut v = vec![chunk(json!({}), Some(finish_name(f.reason)))];
                if include_usage {
                    let mut u = chunk(json!({}), None);
                    u["choices"] = json!([]);
                    u["usage"] = usage(f.prompt_tokens, f.completion_tokens);
                    v.push(u);
                }
                v
            }
            Event::Failed(e) => vec![json!({"error": {"message": e, "type": "server_error"}})],
        };
        futures::stream::iter(out)
    });
    let body = futures::stream::once(async move { first })
        .chain(events)
        .map(|v| Ok(SseEvent::default().data(v.to_string())))
        .chain(futures::stream::once(async { Ok(SseEvent::default().data("[DONE]")) }));
    Sse::new(body).keep_alive(KeepAlive::default())
}

/// A stream over an unbounded receiver; dropping it drops the receiver (cancelling generation).
pub(super) fn tokio_stream<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

async fn completions(State(state): State<AppState>, JsonBody(body): JsonBody<Value>) -> Result<Response, ApiError> {
    let req: CompletionRequest = parse_with_knobs(body, |r: &mut CompletionRequest, k| r.knobs = k)?;
    let mut errors = Vec::new();
    let (max, sampling, stop) = knobs(&req.knobs, 16, &mut errors);
    let prompts = req.prompt.into_vec();
    if prompts.len() != 1 {
        errors.push(FieldError::new("/prompt", "exactly one prompt is supported"));
    }
    if req.echo.unwrap_or(false) {
        errors.push(FieldError::new("/echo", "echo is not supported"));
    }
    if req.suffix.is_some() {
        errors.push(FieldError::new("/suffix", "suffix is not supported"));
    }
    if req.best_of.is_some_and(|b| b != 1) {
        errors.push(FieldError::new("/best_of", "only best_of = 1 is supported"));
    }
    if !errors.is_empty() {
        return Err(Error::Invalid(errors).into());
    }
    let g = generator(&state, &req.model)?.clone();
    let prompt = g.text_prompt(&prompts[0])?;
    if prompt.is_empty() {
        return Err(Error::invalid("/prompt", "must not be empty").into());
    }
    let explicit = req.knobs.max_tokens.is_some() || req.knobs.max_completion_tokens.is_some();
    let max_tokens = fit(&g, prompt.len(), max, explicit);
    let request = GenerateRequest { prompt, max_tokens, sampling, stop, json: false };
    let id = format!("cmpl-{}", uuid::Uuid::new_v4().simple());
    let (created, model) = (now(), g.info().name.clone());
    if req.knobs.stream.unwrap_or(false) {
        let include_usage = req.knobs.stream_options.as_ref().is_some_and(|o| o.include_usage);
        let rx = g.submit(request)?;
        let chunk = move |text: &str, finish: Option<&str>| {
            json!({"id": id, "object": "text_completion", "created": created, "model": model,
                   "choices": [{"index": 0, "text": text, "logprobs": null, "finish_reason": finish}]})
        };
        let body = tokio_stream(rx)
            .flat_map(move |e| {
                let out: Vec<Value> = match e {
                    Event::Text(t) => vec![chunk(&t, None)],
                    Event::Done(f) => {
                        let mut v = vec![chunk("", Some(finish_name(f.reason)))];
                        if include_usage {
                            let mut u = chunk("", None);
                            u["choices"] = json!([]);
                            u["usage"] = usage(f.prompt_tokens, f.completion_tokens);
                            v.push(u);
                        }
                        v
                    }
                    Event::Failed(e) => vec![json!({"error": {"message": e, "type": "server_error"}})],
                };
                futures::stream::iter(out)
            })
            .map(|v| Ok::<_, Infallible>(SseEvent::default().data(v.to_string())))
            .chain(futures::stream::once(async { Ok(SseEvent::default().data("[DONE]")) }));
        return Ok(Sse::new(body).keep_alive(KeepAlive::default()).into_response());
    }
    let (text, finish) = g.generate(request).await?;
    Ok(Json(json!({
        "id": id, "object": "text_completion", "created": created, "model": model,
        "system_fingerprint": fingerprint(),
        "choices": [{"index": 0, "text": text, "logprobs": null, "finish_reason": finish.reason}],
        "usage": usage(finish.prompt_tokens, finish.completion_tokens),
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
struct EmbeddingsRequest {
    model: String,
    input: Value,
    encoding_format: Option<String>,
    dimensions: Option<i64>,
    #[allow(dead_code)]
    user: Option<String>,
}

async fn embeddings(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<EmbeddingsRequest>,
) -> Result<Response, ApiError> {
    let services = state.services()?;
    let info = services.embedder.info();
    let mut errors = Vec::new();
    let inputs: Vec<String> = match req.input {
        Value::String(s) => vec![s],
        Value::Array(items) if items.iter().all(Value::is_string) => {
            items.into_iter().map(|v| v.as_str().unwrap_or_default().to_string()).collect()
        }
        Value::Array(_) => {
            errors.push(FieldError::new("/input", "token-id inputs are not supported; send text"));
            vec![]
        }
        _ => {
            errors.push(FieldError::new("/input", "must be a string or an array of strings"));
            vec![]
        }
    };
    let max_inputs = state.config().embed.max_inputs;
    if errors.is_empty() && (inputs.is_empty() || inputs.len() > max_inputs) {
        errors.push(FieldError::new("/input", format!("must hold 1 to {max_inputs} texts")));
    }
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            errors.push(FieldError::new("/encoding_format", format!("'{other}' is not float or base64")));
            false
        }
    };
    if req.dimensions.is_some_and(|d| d != info.dim as i64) {
        errors
            .push(FieldError::new("/dimensions", format!("{} makes {}-dimensional vectors only", info.name, info.dim)));
    }
    if !errors.is_empty() {
        return Err(Error::Invalid(errors).into());
    }
    // PII is redacted before anything is embedded ([privacy] redact).
    let inputs: Vec<String> = inputs.into_iter().map(|t| services.redactor.redact(&t).into_owned()).collect();
    if req.model != info.name {
        return Err(unknown_model(&state, &req.model));
    }
    let texts: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let tokens: usize =
        texts.iter().map(|t| services.embedder.count_tokens(t)).collect::<crate::Result<Vec<_>>>()?.into_iter().sum();
    let vectors = services.embedder.embed(&texts).await?;
    let data: Vec<Value> = vectors
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    Ok(Json(json!({"object": "list", "data": data, "model": info.name, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}))
        .into_response())
}

fn model_entries(state: &AppState) -> Result<Vec<Value>, ApiError> {
    let services = state.services()?;
    let created = now();
    let mut out = vec![
        json!({"id": services.embedder.info().name, "object": "model", "created": created, "owned_by": "aisle", "kind": "embedding"}),
    ];
    if let Some(g) = &services.generator {
        out.push(
            json!({"id": g.info().name, "object": "model", "created": created, "owned_by": "aisle", "kind": "chat",
                        "context_length": g.info().shape.context}),
        );
    }
    Ok(out)
}

async fn models(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"object": "list", "data": model_entries(&state)?})))
}

async fn model(State(state): State<AppState>, PathId(id): PathId) -> Result<Json<Value>, ApiError> {
    model_entries(&state)?
        .into_iter()
        .find(|m| m["id"] == id.as_str())
        .map(Json)
        .ok_or_else(|| unknown_model(&state, &id))
}
