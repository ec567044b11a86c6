//! OpenAI-compatible endpoints, so that existing clients work unchanged:
//! `POST /v1/chat/completions` (with `stream: true` as server-sent events in OpenAI's chunk
//! format, ending `data: [DONE]`), `POST /v1/completions`, `POST /v1/embeddings`,
//! `GET /v1/models` and `GET /v1/models/{id}`.
//!
//! Parameters aisle cannot honour (n > 1, logprobs, tools, JSON Schema keywords the constrained
//! decoder cannot enforce: see `infer::chat::schema`) are refused with a 400
//! that says so, never silently ignored. Every response reports token usage.
//!
//! This file holds the routes, the completion and model handlers and what they share; request
//! bodies are in `request`, response bodies in `response`, the SSE streamer in `stream` and
//! the embeddings endpoint in `embeddings`.

mod embeddings;
mod request;
mod response;
mod stream;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use utoipa_axum::routes;

use self::request::{ChatRequest, CompletionRequest, Content, output_format, parse_with_sampling_options};
use self::response::{
    AssistantMessage, ChatChoice, ChatChunkChoice, Completion, Delta, List, ModelEntry, TextChoice, Usage,
};
pub(super) use self::stream::receiver_stream;
use self::stream::{ChunkHeader, stream_completion};
use super::AppState;
use super::auth::{Access, Subject};
use super::extract::{JsonBody, PathId};
use super::openapi::Api;
use super::problem::ApiError;
use crate::error::{Error, FieldError};
use crate::infer::chat::{GenerateRequest, Generator, Message, OutputFormat};
use crate::privacy::apikeys::Role;

/// Routes of this resource.
pub fn routes() -> Api {
    let (read, app) = (Access::Role(Role::Read), Access::Role(Role::App));
    Api::new()
        .route(app, Subject::None, routes!(chat_completions))
        .route(app, Subject::None, routes!(completions))
        .route(app, Subject::None, routes!(embeddings::embeddings))
        .route(read, Subject::None, routes!(models))
        .route(read, Subject::None, routes!(model))
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn fingerprint() -> String {
    format!("aisle-{}", env!("CARGO_PKG_VERSION"))
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

/// A chat completion (OpenAI's API), whole or as server-sent events (`stream: true`); JSON
/// output can be constrained with `response_format`.
#[utoipa::path(post, path = "/v1/chat/completions", operation_id = "createChatCompletion", tag = "openai",
    request_body = ChatRequest,
    responses((status = 200, description = "The completion, or its chunks (`stream: true`).",
        content((Completion<ChatChoice> = "application/json"), (crate::api::openapi::SseEvent = "text/event-stream"))),
        (status = 404, description = "No such model.", body = crate::api::problem::ProblemDocument, content_type = "application/problem+json")))]
async fn chat_completions(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let req: ChatRequest = parse_with_sampling_options(body)?;
    let mut errors = Vec::new();
    let (max, sampling, stop) = req.options.validate(state.config().chat.default_max_tokens, &mut errors);
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
    let format = output_format(req.response_format.as_ref(), &mut errors);
    if !errors.is_empty() {
        return Err(Error::Invalid(errors).into());
    }
    let g = generator(&state, &req.model)?.clone();
    let prompt = g.chat_prompt(&messages)?;
    let max_tokens = fit(&g, prompt.len(), max, req.options.explicit_max());
    let request = GenerateRequest { prompt, max_tokens, sampling, stop, format };
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = now();
    let model = g.info().name.clone();
    if req.options.stream() {
        let rx = g.submit(request)?;
        let header = ChunkHeader {
            id,
            object: "chat.completion.chunk",
            created,
            model,
            system_fingerprint: Some(fingerprint()),
        };
        let first = ChatChunkChoice {
            index: 0,
            delta: Delta { role: Some("assistant"), content: Some(String::new()) },
            logprobs: (),
            finish_reason: None,
        };
        return Ok(stream_completion(rx, header, Some(first), req.options.include_usage()).into_response());
    }
    let (text, finish) = g.generate(request).await?;
    let system_fingerprint = fingerprint();
    Ok(Json(Completion {
        id: &id,
        object: "chat.completion",
        created,
        model: &model,
        system_fingerprint: Some(&system_fingerprint),
        choices: vec![ChatChoice {
            index: 0,
            message: AssistantMessage { role: "assistant", content: text },
            logprobs: (),
            finish_reason: finish.reason,
        }],
        usage: Some(Usage::new(finish.prompt_tokens, finish.completion_tokens)),
    })
    .into_response())
}

/// A text completion (OpenAI's legacy API), whole or as server-sent events.
#[utoipa::path(post, path = "/v1/completions", operation_id = "createCompletion", tag = "openai",
    request_body = CompletionRequest,
    responses((status = 200, description = "The completion, or its chunks (`stream: true`).",
        content((Completion<TextChoice> = "application/json"), (crate::api::openapi::SseEvent = "text/event-stream"))),
        (status = 404, description = "No such model.", body = crate::api::problem::ProblemDocument, content_type = "application/problem+json")))]
async fn completions(State(state): State<AppState>, JsonBody(body): JsonBody<Value>) -> Result<Response, ApiError> {
    let req: CompletionRequest = parse_with_sampling_options(body)?;
    let mut errors = Vec::new();
    let (max, sampling, stop) = req.options.validate(16, &mut errors);
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
    let max_tokens = fit(&g, prompt.len(), max, req.options.explicit_max());
    let request = GenerateRequest { prompt, max_tokens, sampling, stop, format: OutputFormat::Text };
    let id = format!("cmpl-{}", uuid::Uuid::new_v4().simple());
    let (created, model) = (now(), g.info().name.clone());
    if req.options.stream() {
        let rx = g.submit(request)?;
        let header = ChunkHeader { id, object: "text_completion", created, model, system_fingerprint: None };
        let body = stream_completion::<TextChoice>(rx, header, None, req.options.include_usage());
        return Ok(body.into_response());
    }
    let (text, finish) = g.generate(request).await?;
    let system_fingerprint = fingerprint();
    Ok(Json(Completion {
        id: &id,
        object: "text_completion",
        created,
        model: &model,
        system_fingerprint: Some(&system_fingerprint),
        choices: vec![TextChoice { index: 0, text, logprobs: (), finish_reason: Some(finish.reason) }],
        usage: Some(Usage::new(finish.prompt_tokens, finish.completion_tokens)),
    })
    .into_response())
}

fn model_entries(state: &AppState) -> Result<Vec<ModelEntry>, ApiError> {
    let services = state.services()?;
    let created = now();
    let mut out = vec![ModelEntry {
        id: services.embedder.info().name.clone(),
        object: "model",
        created,
        owned_by: "aisle",
        kind: "embedding",
        context_length: None,
    }];
    if let Some(g) = &services.generator {
        out.push(ModelEntry {
            id: g.info().name.clone(),
            object: "model",
            created,
            owned_by: "aisle",
            kind: "chat",
            context_length: Some(g.info().shape.context),
        });
    }
    Ok(out)
}

/// The models served (OpenAI's API).
#[utoipa::path(get, path = "/v1/models", operation_id = "listModels", tag = "openai",
    responses((status = 200, description = "The models.", body = List<ModelEntry>)))]
async fn models(State(state): State<AppState>) -> Result<Json<List<ModelEntry>>, ApiError> {
    Ok(Json(List { object: "list", data: model_entries(&state)? }))
}

/// One model.
#[utoipa::path(get, path = "/v1/models/{id}", operation_id = "getModel", tag = "openai",
    params(("id" = String, Path, description = "Model name.")),
    responses((status = 200, description = "The model.", body = ModelEntry)))]
async fn model(State(state): State<AppState>, PathId(id): PathId) -> Result<Json<ModelEntry>, ApiError> {
    model_entries(&state)?.into_iter().find(|m| m.id == id).map(Json).ok_or_else(|| unknown_model(&state, &id))
}
