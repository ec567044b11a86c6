//! `POST /v1/embeddings`: OpenAI's embeddings endpoint over aisle's embedding model, with
//! float or base64 output and PII redacted before anything is embedded.
//!
//! Not for chat or text completions, nor for the embedding model itself (see `crate::infer`).

use axum::Json;
use axum::extract::State;
use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use super::request::OneOrMany;
use super::response::{EmbeddingData, EmbeddingEntry, EmbeddingList, EmbeddingUsage};
use super::unknown_model;
use crate::api::AppState;
use crate::api::extract::JsonBody;
use crate::api::problem::ApiError;
use crate::error::{Error, FieldError};

/// How vectors are sent.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // the document's enum; the handler reads the string
enum EncodingFormat {
    /// Arrays of numbers.
    Float,
    /// Little-endian f32 bytes, base64.
    Base64,
}

/// A `/v1/embeddings` request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(super) struct EmbeddingsRequest {
    /// The embedding model's name (see `GET /v1/models`).
    model: String,
    /// A text, or a list of texts (at most `[embed] max_inputs`).
    #[schema(value_type = OneOrMany)]
    input: Value,
    /// `float` (default) or `base64`.
    #[schema(value_type = Option<EncodingFormat>)]
    encoding_format: Option<String>,
    /// Not supported unless it is the model's own dimension.
    dimensions: Option<i64>,
    /// Ignored.
    #[allow(dead_code)]
    user: Option<String>,
}

/// Embed texts with the embedding model (OpenAI's embeddings API); PII is redacted first.
#[utoipa::path(post, path = "/v1/embeddings", operation_id = "createEmbeddings", tag = "openai",
    request_body = EmbeddingsRequest,
    responses((status = 200, description = "The vectors.", body = EmbeddingList),
        (status = 404, description = "No such model.", body = crate::api::problem::ProblemDocument, content_type = "application/problem+json")))]
pub(super) async fn embeddings(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<EmbeddingsRequest>,
) -> Result<Json<EmbeddingList>, ApiError> {
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
    let data: Vec<EmbeddingEntry> = vectors
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                EmbeddingData::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                EmbeddingData::Float(v.iter().map(|&x| f64::from(x)).collect())
            };
            EmbeddingEntry { object: "embedding", index: i, embedding }
        })
        .collect();
    Ok(Json(EmbeddingList {
        object: "list",
        data,
        model: info.name.clone(),
        usage: EmbeddingUsage { prompt_tokens: tokens, total_tokens: tokens },
    }))
}
