//! RFC 9457 problem details: the one place where errors become HTTP responses.
//!
//! Every error response is `application/problem+json` with `type`, `title`, `status`, `detail`
//! and, for input errors, `errors: [{pointer, detail}]` naming each bad field with a JSON pointer
//! (RFC 6901) into the request body (or the query parameter / path segment, as `/name`).
//!
//! Every request has an id ([`request_id`]: the client's `x-request-id`, or a new one), echoed
//! in the `x-request-id` response header. A 500 never shows its cause (internal paths, store
//! messages) to the client: the cause goes to the log with the request id, and the response
//! carries only the id (`request_id`, added to every 500 document).

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::{Error, FieldError};

/// A problem document plus its status and an optional `Retry-After`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ProblemDetails)]
pub struct Problem {
    /// Problem type (a URN naming the kind of problem).
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What happened in this case.
    pub detail: String,
    /// Bad fields, for input errors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    pub errors: Vec<FieldError>,
    /// Seconds after which a retry may succeed.
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

tokio::task_local! {
    /// The id of the request being handled.
    static REQUEST_ID: String;
}

/// A request's id, in the request's extensions (for the trace span).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Middleware: give each request an id (the client's `x-request-id` when it is 1 to 64 letters,
/// digits, `-`, `_` or `.`; else a new random one) and answer it in `x-request-id`.
pub async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| {
            !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut response = REQUEST_ID.scope(id.clone(), next.run(req)).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

fn insufficient_storage(detail: String) -> Problem {
    let mut p = Problem::new(StatusCode::INSUFFICIENT_STORAGE, "insufficient-storage", "Insufficient storage", detail);
    p.retry_after = Some(30);
    p
}

/// A 500: the cause goes to the log with the request id, the client gets the id alone.
fn internal(cause: &dyn std::fmt::Display) -> Problem {
    let id = REQUEST_ID.try_with(String::clone).ok();
    tracing::error!(request_id = id.as_deref().unwrap_or("-"), error = %cause, "request failed");
    let detail = match &id {
        Some(id) => format!("the server could not handle this request; its log names the cause under request id {id}"),
        None => "the server could not handle this request; its log names the cause".to_string(),
    };
    Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error", detail)
}

impl Problem {
    /// A problem of `slug` kind with `status`.
    pub fn new(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("urn:aisle:problem:{slug}"),
            title: title.into(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    /// An input error with field pointers.
    pub fn invalid(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] if one.pointer.is_empty() => one.detail.clone(),
            [one] => format!("{}: {}", one.pointer, one.detail),
            many => format!("{} fields are invalid", many.len()),
        };
        let mut p = Self::new(StatusCode::BAD_REQUEST, "invalid-input", "Invalid input", detail);
        p.errors = errors;
        p
    }

    /// Malformed body (not parseable JSON, wrong encoding).
    pub fn malformed(detail: impl Into<String>) -> Self {
        let detail = detail.into();
        let mut p = Self::new(StatusCode::BAD_REQUEST, "malformed-body", "Malformed request body", detail.clone());
        p.errors = vec![FieldError::new("", detail)];
        p
    }
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid(errors) => Problem::invalid(errors),
            Error::NotFound { kind, id } => {
                Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", format!("{kind} '{id}' does not exist"))
            }
            Error::Conflict(d) => Problem::new(StatusCode::CONFLICT, "conflict", "Conflict", d),
            Error::Unavailable(d) => {
                let mut p = Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Not ready", d);
                p.retry_after = Some(2);
                p
            }
            Error::Overloaded(d) => {
                let mut p = Problem::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", "Overloaded", d);
                p.retry_after = Some(1);
                p
            }
            Error::InsufficientStorage(d) => insufficient_storage(d),
            // The filesystem filled up under the watermark's margin (another process wrote).
            ref other @ (Error::Io { .. } | Error::Store(_) | Error::Internal(_))
                if crate::store::space::is_out_of_space(&other.to_string()) =>
            {
                tracing::error!(error = %other, "out of disk space");
                insufficient_storage(
                    "the data directory is full; nothing more can be written until space is freed".into(),
                )
            }
            other => internal(&other),
        }
    }
}

/// The problem document as sent: RFC 9457 members, OpenAI's `error` object, and the request id
/// on a 500.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Problem)]
pub struct ProblemDocument {
    /// The RFC 9457 members.
    #[serde(flatten)]
    pub problem: Problem,
    /// The same, as OpenAI clients read it.
    pub error: OpenAiError,
    /// On a 500: the id under which the server's log names the cause.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub request_id: Option<String>,
}

/// OpenAI's error object (`error.message`), so that OpenAI clients stay informative.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OpenAiError {
    /// The detail.
    pub message: String,
    /// `invalid_request_error` or `server_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The first bad field, dotted.
    pub param: Option<String>,
    /// The problem type's last segment.
    pub code: Option<String>,
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = self.retry_after;
        let doc = ProblemDocument {
            error: OpenAiError {
                message: self.detail.clone(),
                kind: if self.status >= 500 { "server_error" } else { "invalid_request_error" }.to_string(),
                param: self.errors.first().map(|e| e.pointer.trim_start_matches('/').replace('/', ".")),
                code: self.kind.rsplit(':').next().map(str::to_string),
            },
            // A 500 names the request, so that its cause can be found in the log.
            request_id: if self.status == 500 { REQUEST_ID.try_with(String::clone).ok() } else { None },
            problem: self,
        };
        let body = serde_json::to_vec(&doc).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Handlers' error type: anything that becomes a [`Problem`].
#[derive(Debug)]
pub struct ApiError(pub Problem);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e.into())
    }
}

impl From<Problem> for ApiError {
    fn from(p: Problem) -> Self {
        ApiError(p)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

/// 404 for unknown routes.
pub async fn no_route(uri: axum::http::Uri) -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "no-route", "Not found", format!("no endpoint at {}", uri.path()))
}

/// 405 for known routes with the wrong method.
pub async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// 500 for a handler that panicked (the panic is a bug; the process keeps serving).
pub fn panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
    internal(&format!("a request handler panicked: {}", what.as_deref().unwrap_or("(no message)"))).into_response()
}
