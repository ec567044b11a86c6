//! `POST /v1/events`: one event, or `{"events": [...]}`. Each event is validated on its own;
//! a bad or unknown-product event is reported with pointers under `/events/{i}` and the others
//! are applied. Events carrying a `rec_id` are attributed to the recommendation source.

use axum::Json;
use axum::extract::State;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::routes;

use super::AppState;
use super::auth::{Access, Subject};
use super::extract::JsonBody;
use super::openapi::Api;
use super::problem::ApiError;
use crate::error::{Error, FieldError, from_json_value};
use crate::events::{EventInput, EventOutcome, IngestReport, batch_too_large};
use crate::privacy::apikeys::Role;

/// Routes of this resource.
pub fn routes() -> Api {
    // Also from a shopper's page (a `widget` key).
    Api::new().route(Access::Shopper(Role::App), Subject::None, routes!(ingest))
}

/// A batch of events.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // the document's shape; the handler reads each event on its own
struct EventBatch {
    /// The events (at most `[events] max_batch`).
    events: Vec<EventInput>,
}

/// One event, or a batch.
#[derive(serde::Deserialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum EventsBody {
    /// One event.
    One(EventInput),
    /// A batch.
    Batch(EventBatch),
}

/// Record shopper events (views, clicks, carts, purchases, ratings). Each event of a batch is
/// judged on its own: bad ones are reported under `/events/{i}`, the others applied; a re-sent
/// event id is a duplicate and changes nothing.
#[utoipa::path(post, path = "/v1/events", operation_id = "recordEvents", tag = "events",
    request_body(content = inline(EventsBody), description = "One event, or `{\"events\": [...]}`."),
    responses((status = 200, description = "What became of each event.", body = IngestReport)))]
async fn ingest(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<IngestReport>, ApiError> {
    let services = state.services()?;
    let (items, single) = match body {
        Value::Object(mut o) if o.contains_key("events") => {
            if o.len() > 1 {
                let extra = o.keys().find(|k| *k != "events").cloned().unwrap_or_default();
                return Err(
                    Error::invalid(format!("/{extra}"), "unknown field; the body is {\"events\": [...]}").into()
                );
            }
            match o.remove("events") {
                Some(Value::Array(items)) => (items, false),
                _ => return Err(Error::invalid("/events", "must be an array of events").into()),
            }
        }
        Value::Object(o) => (vec![Value::Object(o)], true),
        _ => return Err(Error::invalid("", "the body is one event object or {\"events\": [...]}").into()),
    };
    let max = state.config().events.max_batch;
    if items.len() > max {
        return Err(batch_too_large(items.len(), max).into());
    }
    // Parse each event on its own: a wrong type rejects that event only.
    let mut inputs = Vec::new();
    let mut parse_errors: Vec<(usize, FieldError)> = Vec::new();
    let mut index = Vec::new();
    for (i, v) in items.into_iter().enumerate() {
        match from_json_value::<EventInput>(v) {
            Ok(e) => {
                index.push(i);
                inputs.push(e);
            }
            Err(e) => parse_errors.push((i, e)),
        }
    }
    let n = index.len() + parse_errors.len();
    let report = services.ingest_events(inputs).await?;
    let attributed = report.attributed;
    // Put the parse errors back in their places.
    let mut results: Vec<Option<EventOutcome>> = vec![None; n];
    for (i, r) in index.into_iter().zip(report.results) {
        results[i] = Some(r);
    }
    for (i, e) in parse_errors {
        results[i] = Some(EventOutcome::Rejected { errors: vec![e] });
    }
    let results: Vec<EventOutcome> = results.into_iter().flatten().collect();
    let prefix = |i: usize, errors: &[FieldError]| -> Vec<FieldError> {
        errors.iter().cloned().map(|e| if single { e } else { e.under(&format!("/events/{i}")) }).collect()
    };
    if single && let Some(EventOutcome::Rejected { errors }) = results.first() {
        return Err(Error::Invalid(prefix(0, errors)).into());
    }
    let count = |f: fn(&EventOutcome) -> bool| results.iter().filter(|r| f(r)).count();
    let accepted_n = count(|r| matches!(r, EventOutcome::Accepted { .. }));
    let duplicates = count(|r| matches!(r, EventOutcome::Duplicate { .. }));
    let rejected = count(|r| matches!(r, EventOutcome::Rejected { .. }));
    let results = results
        .into_iter()
        .enumerate()
        .map(|(i, r)| match r {
            EventOutcome::Rejected { errors } => EventOutcome::Rejected { errors: prefix(i, &errors) },
            other => other,
        })
        .collect();
    Ok(Json(IngestReport { accepted: accepted_n, duplicates, rejected, attributed, results }))
}
