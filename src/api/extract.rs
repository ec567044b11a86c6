//! Request extractors whose failures are problem+json naming the bad field.
//!
//! axum's own extractors answer with plain text; these wrap the same parsing and turn every
//! failure (wrong content type, body too large, malformed JSON, invalid UTF-8, wrong types,
//! unknown fields, bad path or query parameters) into a [`Problem`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use super::problem::{ApiError, Problem};
use crate::error::{FieldError, field_error, pointer_of};

/// Milliseconds a client has to send a request body (`[server] body_timeout_secs`).
static BODY_TIMEOUT_MS: AtomicU64 = AtomicU64::new(30_000);

/// Set the body timeout (at startup).
pub fn set_body_timeout(timeout: Duration) {
    BODY_TIMEOUT_MS.store(timeout.as_millis().max(1) as u64, Ordering::Relaxed);
}

/// The whole body, within the body timeout (408 after) and the body limit (413 above).
pub async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, Problem> {
    let limit = Duration::from_millis(BODY_TIMEOUT_MS.load(Ordering::Relaxed));
    match tokio::time::timeout(limit, Bytes::from_request(req, state)).await {
        Err(_) => Err(Problem::new(
            StatusCode::REQUEST_TIMEOUT,
            "body-timeout",
            "Request body too slow",
            format!("the request body did not arrive within {} s", limit.as_secs()),
        )),
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(rejection)) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "Request body too large",
            rejection.body_text(),
        )),
        Ok(Err(rejection)) => Err(Problem::malformed(rejection.body_text())),
    }
}

/// A JSON body deserialized into `T`.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if !(mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))) {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                format!("expected Content-Type: application/json, got '{content_type}'"),
            )
            .into());
        }
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(JsonBody).map_err(ApiError)
    }
}

/// Parse a whole JSON document into `T`; syntax errors are "malformed", type errors name the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(Problem::malformed("the request body is empty; expected a JSON document"));
    }
    if let Err(e) = std::str::from_utf8(bytes) {
        return Err(Problem::malformed(format!("the request body is not valid UTF-8 (at byte {})", e.valid_up_to())));
    }
    // Syntax first: a broken document is "malformed" even where a type error comes earlier.
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
        return Err(Problem::malformed(format!("malformed JSON: {e}")));
    }
    // Every body is an object (serde would also read a struct from an array of its fields).
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(Problem::invalid(vec![FieldError::new("", "the request body must be a JSON object")]));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = match serde_path_to_error::deserialize(&mut de) {
        Ok(v) => v,
        Err(e) => {
            let pointer = pointer_of(e.path());
            let inner = e.into_inner();
            return Err(match inner.classify() {
                serde_json::error::Category::Data => Problem::invalid(vec![field_error(pointer, &inner.to_string())]),
                _ => Problem::malformed(format!("malformed JSON: {inner}")),
            });
        }
    };
    de.end().map_err(|e| Problem::malformed(format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// Query parameters deserialized into `T`.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(QueryParams).map_err(|e| {
            let pointer = pointer_of(e.path());
            let message = e.into_inner().to_string();
            let mut error = field_error(pointer, &message);
            if error.pointer.is_empty() {
                // serde_urlencoded names the field in the message ("price_min: invalid float").
                if let Some((name, _)) = message.split_once(':')
                    && !name.contains(' ')
                {
                    error.pointer = format!("/{name}");
                }
            }
            ApiError(Problem::invalid(vec![error]))
        })
    }
}

/// The `{id}` path segment, percent-decoded and valid UTF-8.
pub struct PathId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<String>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(id)) => Ok(PathId(id)),
            Err(rejection) => Err(ApiError(Problem::invalid(vec![FieldError::new("/id", rejection.body_text())]))),
        }
    }
}
