//! The one error type of the domain modules.
//!
//! Domain code returns [`Error`]; only `api/` turns it into an HTTP response (problem+json).
//! Validation errors carry a JSON pointer to the offending field so that a client can act on
//! them without guessing.

use std::fmt;

/// A result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One invalid field: where it is (RFC 6901 JSON pointer) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct FieldError {
    /// JSON pointer to the field, e.g. `/price` or `/products/3/currency`; empty for the whole body.
    pub pointer: String,
    /// What is wrong and, where possible, what would be right.
    pub detail: String,
}

impl FieldError {
    /// A field error at `pointer`.
    pub fn new(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { pointer: pointer.into(), detail: detail.into() }
    }

    /// The same error nested under `prefix` (e.g. `/products/3`).
    pub fn under(mut self, prefix: &str) -> Self {
        self.pointer = format!("{prefix}{}", self.pointer);
        self
    }
}

/// Everything that can go wrong in aisle, by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input is invalid; each entry names a field.
    #[error("invalid input: {}", summarize(.0))]
    Invalid(Vec<FieldError>),
    /// A referenced thing does not exist.
    #[error("{kind} '{id}' not found")]
    NotFound {
        /// What was looked for ("product", "model", ...).
        kind: &'static str,
        /// The identifier that was not found.
        id: String,
    },
    /// The request conflicts with the current state (e.g. a job already running).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A part of the system is not ready yet (models loading, store opening).
    #[error("not ready: {0}")]
    Unavailable(String),
    /// Too much work queued; try again later.
    #[error("overloaded: {0}")]
    Overloaded(String),
    /// A model file is missing, corrupt or unsupported.
    #[error("model error: {0}")]
    Model(String),
    /// Inference failed at run time.
    #[error("inference error: {0}")]
    Inference(String),
    /// The vector store failed.
    #[error("store error: {0}")]
    Store(String),
    /// Configuration is invalid.
    #[error("configuration error: {0}")]
    Config(String),
    /// An I/O error with the path or operation it concerns.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The data directory is (nearly) full: nothing was written.
    #[error("insufficient storage: {0}")]
    InsufficientStorage(String),
    /// A bug: something that should not happen.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// An invalid-input error for one field.
    pub fn invalid(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Invalid(vec![FieldError::new(pointer, detail)])
    }

    /// A not-found error.
    pub fn not_found(kind: &'static str, id: impl Into<String>) -> Self {
        Error::NotFound { kind, id: id.into() }
    }

    /// An I/O error with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }

    /// A store error from anything displayable.
    pub fn store(e: impl fmt::Display) -> Self {
        Error::Store(e.to_string())
    }
}

fn summarize(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| if e.pointer.is_empty() { e.detail.clone() } else { format!("{}: {}", e.pointer, e.detail) })
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Inference(e.to_string())
    }
}

/// The RFC 6901 JSON pointer of a serde path (`products[3].price` -> `/products/3/price`).
pub fn pointer_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("/{index}")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                out.push('/');
                out.push_str(&key.replace('~', "~0").replace('/', "~1"));
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// Deserialize a JSON value into `T`, naming the bad field on failure.
pub fn from_json_value<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> std::result::Result<T, FieldError> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let pointer = pointer_of(e.path());
        field_error(pointer, &e.into_inner().to_string())
    })
}

/// A field error from a serde message at `pointer`; an unknown field's name is added to the
/// pointer so that it names the field itself.
pub fn field_error(mut pointer: String, message: &str) -> FieldError {
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some(name) = rest.split('`').next()
    {
        let segment = format!("/{}", name.replace('~', "~0").replace('/', "~1"));
        if !pointer.ends_with(&segment) {
            pointer.push_str(&segment);
        }
    }
    FieldError::new(pointer, clean_serde_message(message))
}

/// serde messages end with " at line L column C" for whole documents; keep them but drop the
/// Rust type names a client cannot act on.
pub fn clean_serde_message(message: &str) -> String {
    message
        .replace("expected f64", "expected a number")
        .replace("expected i64", "expected an integer")
        .replace("expected usize", "expected a non-negative integer")
        .replace("expected u64", "expected a non-negative integer")
        .replace("expected u32", "expected a non-negative integer")
        .replace("expected f32", "expected a number")
        .replace("expected a boolean", "expected true or false")
        .replace("expected a sequence", "expected an array")
        .replace("expected a map", "expected an object")
}
