//! The shopping assistant over HTTP: `POST /v1/assistant/chat` (JSON, or server-sent events
//! with `stream: true`), `GET`/`DELETE /v1/assistant/sessions/{id}`, and
//! `POST /v1/products/{id}/describe` for merchandisers.
//!
//! The stream's events, in order: `meta` (how the request was understood), `delta` (checked
//! answer text, sentence by sentence), `cards` (the product cards), `done` (the whole answer,
//! the grounding report, usage and timings); `error` if generation fails midway.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde_json::{Value, json};

use super::AppState;
use super::extract::{JsonBody, PathId};
use super::problem::ApiError;
use crate::assistant::describe::DescribeRequest;
use crate::assistant::{Assistant, AssistantRequest, Output};
use crate::error::Error;

/// Routes of this resource.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/assistant/chat", post(chat))
        .route("/v1/assistant/sessions/{id}", get(session).delete(end_session))
        .route("/v1/products/{id}/describe", post(describe))
}

async fn chat(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<AssistantRequest>,
) -> Result<Response, ApiError> {
    let assistant = &state.services()?.assistant;
    let stream = request.stream.unwrap_or(false);
    let rx = assistant.chat(request).await?;
    if !stream {
        let (meta, cards, summary) = Assistant::collect(rx).await?;
        return Ok(Json(json!({
            "session_id": meta.session_id,
            "intent": meta.intent,
            "refused": meta.refused,
            "query": meta.query,
            "constraints": meta.constraints,
            "personalized": meta.personalized,
            "answer": summary.answer,
            "cards": cards,
            "grounding": summary.grounding,
            "usage": summary.usage,
            "timings": summary.timings,
        }))
        .into_response());
    }
    let events = super::openai::receiver_stream(rx).map(|o| {
        let (name, data): (&str, Value) = match o {
            Output::Meta(m) => ("meta", json!(m)),
            Output::Text(t) => ("delta", json!({"text": t})),
            Output::Cards(c) => ("cards", json!({"cards": c})),
            Output::Done(s) => ("done", json!(s)),
            Output::Failed(e) => ("error", json!({"title": "Inference failed", "detail": e})),
        };
        Ok::<_, Infallible>(SseEvent::default().event(name).data(data.to_string()))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}

async fn session(State(state): State<AppState>, PathId(id): PathId) -> Result<Json<Value>, ApiError> {
    let s = state.services()?.assistant.sessions().get(&id).await?.ok_or_else(|| Error::not_found("session", &id))?;
    Ok(Json(s.to_json()))
}

async fn end_session(State(state): State<AppState>, PathId(id): PathId) -> Result<Response, ApiError> {
    if state.services()?.assistant.sessions().delete(&id).await? {
        Ok(axum::http::StatusCode::NO_CONTENT.into_response())
    } else {
        Err(Error::not_found("session", &id).into())
    }
}

async fn describe(
    State(state): State<AppState>,
    PathId(id): PathId,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    // The body is optional: no body means the defaults.
    let request: DescribeRequest = if body.iter().all(u8::is_ascii_whitespace) {
        DescribeRequest::default()
    } else {
        super::extract::parse_json(&body).map_err(ApiError)?
    };
    let d = state.services()?.assistant.describe(&id, &request).await?;
    Ok(Json(json!(d)))
}
