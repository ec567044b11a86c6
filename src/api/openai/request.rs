//! Request bodies of the OpenAI-compatible completion endpoints and the checks of their
//! sampling options: what a client may send to `/v1/chat/completions` and `/v1/completions`,
//! read so that a bad option is refused with the JSON pointer of the field.
//!
//! Not for the handlers themselves (see the parent module), the embeddings request (see
//! `embeddings`), or response bodies (see `response`).

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use crate::api::problem::ApiError;
use crate::error::{Error, FieldError, from_json_value};
use crate::infer::chat::schema::Shape;
use crate::infer::chat::{OutputFormat, SamplingParams};

/// A string or a list of strings (OpenAI's `stop`, `input`, `prompt`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    /// A single string.
    One(String),
    /// A list of strings.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The strings as a list.
    pub(super) fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// Message content: a string, or OpenAI's list of parts (text parts only).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(super) enum Content {
    /// Plain text.
    Text(String),
    /// A list of parts.
    Parts(Vec<ContentPart>),
}

/// One part of a message's content.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(super) struct ContentPart {
    /// The part's type (`text` is the only one supported).
    #[serde(rename = "type")]
    pub(super) kind: String,
    /// Its text.
    pub(super) text: Option<String>,
}

/// One message of a chat request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(super) struct MessageIn {
    /// `system`, `developer`, `user` or `assistant`.
    pub(super) role: String,
    /// What it says.
    pub(super) content: Option<Content>,
}

/// OpenAI's `response_format`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(super) struct ResponseFormat {
    /// `text`, `json_object` or `json_schema`.
    #[serde(rename = "type")]
    pub(super) kind: String,
    /// With `json_schema`: `{"name", "schema", "strict", "description"}` (read by
    /// [`output_format`]).
    pub(super) json_schema: Option<Value>,
}

/// The output format a `response_format` asks for; problems are reported under
/// `/response_format`.
pub(super) fn output_format(format: Option<&ResponseFormat>, errors: &mut Vec<FieldError>) -> OutputFormat {
    let Some(format) = format else { return OutputFormat::Text };
    match format.kind.as_str() {
        "text" => OutputFormat::Text,
        "json_object" => OutputFormat::JsonObject,
        "json_schema" => {
            let Some(Value::Object(spec)) = &format.json_schema else {
                errors.push(FieldError::new(
                    "/response_format/json_schema",
                    "must be an object with a name and a schema",
                ));
                return OutputFormat::Text;
            };
            for key in spec.keys() {
                if !matches!(key.as_str(), "name" | "schema" | "strict" | "description") {
                    errors.push(FieldError::new(format!("/response_format/json_schema/{key}"), "unknown field"));
                }
            }
            match spec.get("name").and_then(Value::as_str) {
                Some(n)
                    if !n.is_empty()
                        && n.len() <= 64
                        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') => {}
                _ => errors.push(FieldError::new(
                    "/response_format/json_schema/name",
                    "must be 1 to 64 letters, digits, '_' or '-'",
                )),
            }
            if spec.get("strict").is_some_and(|s| !s.is_boolean()) {
                errors.push(FieldError::new("/response_format/json_schema/strict", "must be true or false"));
            }
            let Some(schema) = spec.get("schema") else {
                errors.push(FieldError::new("/response_format/json_schema/schema", "is required"));
                return OutputFormat::Text;
            };
            match Shape::compile(schema) {
                Ok(shape) => OutputFormat::JsonSchema(Arc::new(shape)),
                Err(problems) => {
                    for p in problems {
                        errors.push(FieldError::new(
                            format!("/response_format/json_schema/schema{}", p.pointer),
                            p.message,
                        ));
                    }
                    OutputFormat::Text
                }
            }
        }
        other => {
            errors.push(FieldError::new(
                "/response_format/type",
                format!("'{other}' is not text, json_object or json_schema"),
            ));
            OutputFormat::Text
        }
    }
}

/// OpenAI's `stream_options`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(super) struct StreamOptions {
    /// Send a last chunk with the token usage.
    #[serde(default)]
    pub(super) include_usage: bool,
}

/// The sampling, length and streaming options shared by chat and text completions.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub(super) struct SamplingOptions {
    /// Most tokens to generate (default: `[chat] default_max_tokens`, fitted to the context).
    max_tokens: Option<i64>,
    /// The same (OpenAI's newer name); wins over `max_tokens`.
    max_completion_tokens: Option<i64>,
    /// 0 to 2 (default 1); 0 is greedy.
    temperature: Option<f64>,
    /// Nucleus sampling, above 0 to 1.
    top_p: Option<f64>,
    /// Keep the k likeliest tokens (0 disables it).
    top_k: Option<i64>,
    /// Drop tokens below this share of the likeliest one's probability (0 to 1).
    min_p: Option<f64>,
    /// 0.01 to 10 (1 disables it).
    repetition_penalty: Option<f64>,
    /// -2 to 2.
    frequency_penalty: Option<f64>,
    /// -2 to 2.
    presence_penalty: Option<f64>,
    /// Seed of the sampler: the same seed, prompt and options give the same text.
    seed: Option<i64>,
    /// An extension (as llama-server and vLLM have it): generate `max_tokens` whatever the model.
    ignore_eos: Option<bool>,
    /// Up to 4 stop sequences.
    stop: Option<OneOrMany>,
    /// Only 1 is supported.
    n: Option<i64>,
    /// Not supported (false or null only).
    logprobs: Option<Value>,
    /// Not supported (null only).
    top_logprobs: Option<Value>,
    /// Send server-sent events in OpenAI's chunk format, ending `data: [DONE]`.
    stream: Option<bool>,
    /// With `stream`: `include_usage` sends a last chunk with the token usage.
    stream_options: Option<StreamOptions>,
}

/// A `/v1/chat/completions` request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(super) struct ChatRequest {
    /// The model asked for.
    pub(super) model: String,
    /// The conversation.
    #[schema(min_items = 1)]
    pub(super) messages: Vec<MessageIn>,
    /// Text or a JSON object.
    pub(super) response_format: Option<ResponseFormat>,
    /// Tools (refused unless empty).
    pub(super) tools: Option<Vec<Value>>,
    /// Sampling options (see [`parse_with_sampling_options`]).
    #[serde(flatten)]
    pub(super) options: SamplingOptions,
}

/// A `/v1/completions` request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(super) struct CompletionRequest {
    /// The model asked for.
    pub(super) model: String,
    /// The prompt (exactly one).
    pub(super) prompt: OneOrMany,
    /// Echo the prompt (refused).
    pub(super) echo: Option<bool>,
    /// A suffix (refused).
    pub(super) suffix: Option<String>,
    /// Best of several (refused unless 1).
    pub(super) best_of: Option<i64>,
    /// Sampling options (see [`parse_with_sampling_options`]).
    #[serde(flatten)]
    pub(super) options: SamplingOptions,
}

/// Read a request and its (flattened) sampling options from one body. `#[serde(flatten)]`
/// hides the path of a bad option from the error, so the options are first read as a document
/// of their own, whose errors name the field.
pub(super) fn parse_with_sampling_options<T: serde::de::DeserializeOwned>(body: Value) -> Result<T, ApiError> {
    let invalid = |e| ApiError::from(Error::Invalid(vec![e]));
    from_json_value::<SamplingOptions>(body.clone()).map_err(invalid)?;
    from_json_value(body).map_err(invalid)
}

fn range(errors: &mut Vec<FieldError>, name: &str, v: Option<f64>, lo: f64, hi: f64) {
    if v.is_some_and(|x| !(x.is_finite() && x >= lo && x <= hi)) {
        errors.push(FieldError::new(format!("/{name}"), format!("must be between {lo} and {hi}")));
    }
}

impl SamplingOptions {
    /// Validate the options and turn them into `(max_tokens, sampling, stop)` (without the
    /// prompt; `default_max` when the client gave no maximum).
    pub(super) fn validate(
        &self,
        default_max: usize,
        errors: &mut Vec<FieldError>,
    ) -> (usize, SamplingParams, Vec<String>) {
        range(errors, "temperature", self.temperature, 0.0, 2.0);
        range(errors, "top_p", self.top_p, 0.0, 1.0);
        range(errors, "min_p", self.min_p, 0.0, 1.0);
        range(errors, "repetition_penalty", self.repetition_penalty, 0.01, 10.0);
        range(errors, "frequency_penalty", self.frequency_penalty, -2.0, 2.0);
        range(errors, "presence_penalty", self.presence_penalty, -2.0, 2.0);
        if self.top_p == Some(0.0) {
            errors.push(FieldError::new("/top_p", "must be greater than 0"));
        }
        if self.top_k.is_some_and(|t| t < 0) {
            errors.push(FieldError::new("/top_k", "must be >= 0 (0 disables it)"));
        }
        let max = self.max_completion_tokens.or(self.max_tokens);
        let max_name = if self.max_completion_tokens.is_some() { "/max_completion_tokens" } else { "/max_tokens" };
        if max.is_some_and(|m| m < 1) {
            errors.push(FieldError::new(max_name, "must be at least 1"));
        }
        if self.n.is_some_and(|n| n != 1) {
            errors.push(FieldError::new("/n", "only n = 1 is supported"));
        }
        if self.logprobs.as_ref().is_some_and(|l| l != &Value::Bool(false) && !l.is_null())
            || self.top_logprobs.as_ref().is_some_and(|v| !v.is_null())
        {
            errors.push(FieldError::new("/logprobs", "log probabilities are not supported"));
        }
        let stop = self.stop.as_ref().map(|s| match s {
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
            temperature: self.temperature.unwrap_or(1.0) as f32,
            top_k: self.top_k.unwrap_or(0).max(0) as usize,
            top_p: self.top_p.unwrap_or(1.0) as f32,
            min_p: self.min_p.unwrap_or(0.0) as f32,
            repetition_penalty: self.repetition_penalty.unwrap_or(1.0) as f32,
            frequency_penalty: self.frequency_penalty.unwrap_or(0.0) as f32,
            presence_penalty: self.presence_penalty.unwrap_or(0.0) as f32,
            repeat_last_n: 64,
            seed: self.seed.map(|s| s as u64).unwrap_or_else(rand::random),
            ignore_eos: self.ignore_eos.unwrap_or(false),
        };
        (max.map(|m| m.max(1) as usize).unwrap_or(default_max), sampling, stop)
    }

    /// Whether the client set `max_tokens` or `max_completion_tokens`.
    pub(super) fn explicit_max(&self) -> bool {
        self.max_tokens.is_some() || self.max_completion_tokens.is_some()
    }

    /// Whether the client asked for server-sent events.
    pub(super) fn stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// Whether a streamed response ends with a usage chunk.
    pub(super) fn include_usage(&self) -> bool {
        self.stream_options.as_ref().is_some_and(|o| o.include_usage)
    }
}
