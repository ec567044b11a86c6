//! The shopping assistant over HTTP: `POST /v1/assistant/chat` (JSON, or server-sent events
//! with `stream: true`), `GET`/`DELETE /v1/assistant/sessions/{id}`, and
//! `POST /v1/products/{id}/describe` for merchandisers.
//!
//! The stream's events, in order: `meta` (how the request was understood), `delta` (checked
//! answer text, sentence by sentence), `cards` (the product cards), `done` (the whole answer,
//! the grounding report, usage and timings); `error` if generation fails midway.

use std::convert::Infallible;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::routes;

use super::AppState;
use super::auth::{Access, Subject};
use super::extract::{JsonBody, PathId};
use super::openapi::Api;
use super::problem::ApiError;
use crate::assistant::describe::{DescribeRequest, Description};
use crate::assistant::session::SessionView;
use crate::assistant::understand::{Constraints, Intent};
use crate::assistant::{AnswerTimings, GroundingReport, ProductCard, TokenUsage};
use crate::assistant::{Assistant, AssistantRequest, Output};
use crate::error::Error;
use crate::privacy::apikeys::Role;

/// Routes of this resource.
pub fn routes() -> Api {
    let (app, admin) = (Access::Role(Role::App), Access::Role(Role::Admin));
    Api::new()
        // Also from a shopper's page (a `widget` key); stored sessions are read with `app`.
        .route(Access::Shopper(Role::App), Subject::None, routes!(chat))
        .route(app, Subject::None, routes!(session))
        .route(app, Subject::None, routes!(end_session))
        .route(admin, Subject::None, routes!(describe))
}

/// The assistant's whole answer (`stream: false`).
#[derive(Debug, Serialize, ToSchema)]
pub struct AssistantAnswer {
    /// The session id, if the conversation is stored.
    pub session_id: Option<String>,
    /// What the turn asks for.
    pub intent: Intent,
    /// Whether the answer is a refusal.
    pub refused: bool,
    /// The search query the conversation was rewritten into.
    pub query: String,
    /// The hard constraints applied.
    pub constraints: Constraints,
    /// Whether the customer's taste re-ranked the results.
    pub personalized: bool,
    /// The answer text, checked against the catalog.
    pub answer: String,
    /// The product cards.
    pub cards: Vec<ProductCard>,
    /// The grounding check.
    pub grounding: GroundingReport,
    /// Tokens.
    pub usage: TokenUsage,
    /// Timings.
    pub timings: AnswerTimings,
}

/// A `delta` event: checked answer text.
#[derive(Debug, Serialize)]
struct Delta<'a> {
    text: &'a str,
}

/// A `cards` event.
#[derive(Debug, Serialize)]
struct Cards<'a> {
    cards: &'a [ProductCard],
}

/// An `error` event.
#[derive(Debug, Serialize)]
struct StreamError<'a> {
    title: &'a str,
    detail: &'a str,
}

/// A shopping-assistant turn: answers grounded in the catalog, with product cards. With
/// `stream: true` the answer is server-sent events: `meta`, `delta`..., `cards`, `done`.
#[utoipa::path(post, path = "/v1/assistant/chat", operation_id = "assistantChat", tag = "assistant",
    request_body = AssistantRequest,
    responses((status = 200, description = "The answer (JSON), or its events (`stream: true`).",
        content((AssistantAnswer = "application/json"), (super::openapi::SseEvent = "text/event-stream")))))]
async fn chat(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<AssistantRequest>,
) -> Result<Response, ApiError> {
    let assistant = &state.services()?.assistant;
    let stream = request.stream.unwrap_or(false);
    let rx = assistant.chat(request).await?;
    if !stream {
        let (meta, cards, summary) = Assistant::collect(rx).await?;
        return Ok(Json(AssistantAnswer {
            session_id: meta.session_id,
            intent: meta.intent,
            refused: meta.refused,
            query: meta.query,
            constraints: meta.constraints,
            personalized: meta.personalized,
            answer: summary.answer,
            cards,
            grounding: summary.grounding,
            usage: summary.usage,
            timings: summary.timings,
        })
        .into_response());
    }
    let events = super::openai::receiver_stream(rx).map(|o| {
        let (name, data) = match &o {
            Output::Meta(m) => ("meta", serde_json::to_string(m)),
            Output::Text(t) => ("delta", serde_json::to_string(&Delta { text: t })),
            Output::Cards(c) => ("cards", serde_json::to_string(&Cards { cards: c })),
            Output::Done(s) => ("done", serde_json::to_string(s)),
            Output::Failed(e) => {
                ("error", serde_json::to_string(&StreamError { title: "Inference failed", detail: e }))
            }
        };
        Ok::<_, Infallible>(SseEvent::default().event(name).data(data.unwrap_or_default()))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}

/// A stored conversation.
#[utoipa::path(get, path = "/v1/assistant/sessions/{id}", operation_id = "getAssistantSession", tag = "assistant",
    params(("id" = String, Path, description = "Session id.")),
    responses((status = 200, description = "The session.", body = SessionView)))]
async fn session(State(state): State<AppState>, PathId(id): PathId) -> Result<Json<SessionView>, ApiError> {
    let s = state.services()?.assistant.sessions().get(&id).await?.ok_or_else(|| Error::not_found("session", &id))?;
    Ok(Json(s.view()))
}

/// Forget a conversation.
#[utoipa::path(delete, path = "/v1/assistant/sessions/{id}", operation_id = "deleteAssistantSession",
    tag = "assistant", params(("id" = String, Path, description = "Session id.")),
    responses((status = 204, description = "Deleted.")))]
async fn end_session(State(state): State<AppState>, PathId(id): PathId) -> Result<StatusCode, ApiError> {
    if state.services()?.assistant.sessions().delete(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::not_found("session", &id).into())
    }
}

/// Draft a product description from the product's facts alone (sentences claiming anything
/// else are removed). The body is optional.
#[utoipa::path(post, path = "/v1/products/{id}/describe", operation_id = "describeProduct", tag = "assistant",
    params(("id" = String, Path, description = "Product id.")),
    request_body(content = Option<DescribeRequest>, description = "Optional: length and tone.", content_type = "application/json"),
    responses((status = 200, description = "The draft.", body = Description)))]
async fn describe(
    State(state): State<AppState>,
    PathId(id): PathId,
    request: axum::extract::Request,
) -> Result<Json<Description>, ApiError> {
    let body = super::extract::read_body(request, &()).await?;
    // The body is optional: no body means the defaults.
    let request: DescribeRequest = if body.iter().all(u8::is_ascii_whitespace) || body.trim_ascii() == b"null" {
        DescribeRequest::default()
    } else {
        super::extract::parse_json(&body).map_err(ApiError)?
    };
    Ok(Json(state.services()?.assistant.describe(&id, &request).await?))
}
