//! Response bodies of the OpenAI-compatible endpoints, as serde structs: completions and
//! their streamed chunks, embeddings, and model entries. Field order is the wire order
//! (OpenAI's), which clients and the tests rely on.
//!
//! Not for building or sending them (see the handlers and `stream`), nor for request bodies.

use serde::Serialize;

use crate::infer::chat::FinishReason;

/// Token usage of a completion.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub(super) struct Usage {
    /// Tokens of the prompt.
    pub(super) prompt_tokens: usize,
    /// Tokens generated.
    pub(super) completion_tokens: usize,
    /// Both together.
    pub(super) total_tokens: usize,
}

impl Usage {
    /// The usage of `prompt` prompt tokens and `completion` generated ones.
    pub(super) fn new(prompt: usize, completion: usize) -> Self {
        Self { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion }
    }
}

/// A chat or text completion, whole or one streamed chunk of it: the envelope around the
/// choices.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Completion<'a, C> {
    /// `chatcmpl-…` or `cmpl-…`, the same for every chunk of a stream.
    pub(super) id: &'a str,
    /// `chat.completion`, `chat.completion.chunk` or `text_completion`.
    pub(super) object: &'static str,
    /// Unix seconds.
    pub(super) created: u64,
    /// The model's name.
    pub(super) model: &'a str,
    /// The server's fingerprint (absent from text completion chunks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) system_fingerprint: Option<&'a str>,
    /// The choices (one; none in a stream's usage chunk).
    pub(super) choices: Vec<C>,
    /// Token usage (whole responses, and the last chunk of a stream when asked for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) usage: Option<Usage>,
}

/// The choice of a whole chat completion.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct ChatChoice {
    /// Always 0 (n = 1).
    pub(super) index: u32,
    /// The answer.
    pub(super) message: AssistantMessage,
    /// Always null: log probabilities are not supported.
    #[schema(value_type = Option<Object>)]
    pub(super) logprobs: (),
    /// Why generation ended.
    pub(super) finish_reason: FinishReason,
}

/// The assistant's message in a whole chat completion.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct AssistantMessage {
    /// Always `assistant`.
    pub(super) role: &'static str,
    /// The generated text.
    pub(super) content: String,
}

/// The choice of a streamed chat completion chunk.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct ChatChunkChoice {
    /// Always 0 (n = 1).
    pub(super) index: u32,
    /// What this chunk adds.
    pub(super) delta: Delta,
    /// Always null: log probabilities are not supported.
    #[schema(value_type = Option<Object>)]
    pub(super) logprobs: (),
    /// Set on the chunk that ends the generation.
    pub(super) finish_reason: Option<FinishReason>,
}

/// What a chat chunk adds to the message; empty on the finishing chunk.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub(super) struct Delta {
    /// `assistant`, on the first chunk only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) role: Option<&'static str>,
    /// New text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) content: Option<String>,
}

/// The choice of a text completion, whole or streamed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct TextChoice {
    /// Always 0 (n = 1).
    pub(super) index: u32,
    /// The generated text (in a stream: the new text, empty on the finishing chunk).
    pub(super) text: String,
    /// Always null: log probabilities are not supported.
    #[schema(value_type = Option<Object>)]
    pub(super) logprobs: (),
    /// Why generation ended (in a stream: only on the finishing chunk).
    pub(super) finish_reason: Option<FinishReason>,
}

/// The event sent instead of a chunk when generation fails midway.
#[derive(Debug, Serialize)]
pub(super) struct StreamError {
    /// What went wrong.
    pub(super) error: StreamErrorBody,
}

/// The body of a [`StreamError`].
#[derive(Debug, Serialize)]
pub(super) struct StreamErrorBody {
    /// The failure, in words.
    pub(super) message: String,
    /// Always `server_error`.
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
}

/// OpenAI's list envelope (`/v1/models`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct List<T> {
    /// Always `list`.
    pub(super) object: &'static str,
    /// The entries.
    pub(super) data: Vec<T>,
}

/// A model served here (`/v1/models`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(super) struct ModelEntry {
    /// The model's name, as requests give it.
    pub(super) id: String,
    /// Always `model`.
    pub(super) object: &'static str,
    /// Unix seconds (of the listing).
    pub(super) created: u64,
    /// Always `aisle`.
    pub(super) owned_by: &'static str,
    /// `embedding` or `chat`.
    pub(super) kind: &'static str,
    /// Context window in tokens (chat models).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) context_length: Option<usize>,
}

/// The `/v1/embeddings` response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct EmbeddingList {
    /// Always `list`.
    pub(super) object: &'static str,
    /// One embedding per input, in order.
    pub(super) data: Vec<EmbeddingEntry>,
    /// The embedding model's name.
    pub(super) model: String,
    /// Tokens read.
    pub(super) usage: EmbeddingUsage,
}

/// One embedding of an [`EmbeddingList`].
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct EmbeddingEntry {
    /// Always `embedding`.
    pub(super) object: &'static str,
    /// The input's position.
    pub(super) index: usize,
    /// The vector.
    pub(super) embedding: EmbeddingData,
}

/// A vector as numbers or as base64 of little-endian f32s.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(super) enum EmbeddingData {
    /// `encoding_format: float`. The values are written as f64, as they always were (an f32
    /// written as f32 would print fewer digits).
    Float(Vec<f64>),
    /// `encoding_format: base64`.
    Base64(String),
}

/// Token usage of an embeddings request.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct EmbeddingUsage {
    /// Tokens of the inputs.
    pub(super) prompt_tokens: usize,
    /// The same.
    pub(super) total_tokens: usize,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn to_json(v: &impl Serialize) -> String {
        serde_json::to_string(v).unwrap()
    }

    #[test]
    fn whole_responses_keep_their_json() {
        let chat = Completion {
            id: "chatcmpl-1",
            object: "chat.completion",
            created: 7,
            model: "m",
            system_fingerprint: Some("aisle-0"),
            choices: vec![ChatChoice {
                index: 0,
                message: AssistantMessage { role: "assistant", content: "Hi".into() },
                logprobs: (),
                finish_reason: FinishReason::Stop,
            }],
            usage: Some(Usage::new(3, 2)),
        };
        let usage = json!({"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5});
        assert_eq!(
            to_json(&chat),
            json!({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 7, "model": "m",
                "system_fingerprint": "aisle-0",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "logprobs": null,
                             "finish_reason": "stop"}],
                "usage": usage,
            })
            .to_string()
        );
        let text = Completion {
            id: "cmpl-1",
            object: "text_completion",
            created: 7,
            model: "m",
            system_fingerprint: Some("aisle-0"),
            choices: vec![TextChoice {
                index: 0,
                text: "Hi".into(),
                logprobs: (),
                finish_reason: Some(FinishReason::Length),
            }],
            usage: Some(Usage::new(3, 2)),
        };
        assert_eq!(
            to_json(&text),
            json!({
                "id": "cmpl-1", "object": "text_completion", "created": 7, "model": "m",
                "system_fingerprint": "aisle-0",
                "choices": [{"index": 0, "text": "Hi", "logprobs": null, "finish_reason": "length"}],
                "usage": usage,
            })
            .to_string()
        );
    }

    #[test]
    fn embeddings_and_models_keep_their_json() {
        let v = vec![0.1f32, -2.5, f32::NAN];
        let list = EmbeddingList {
            object: "list",
            data: vec![
                EmbeddingEntry {
                    object: "embedding",
                    index: 0,
                    embedding: EmbeddingData::Float(v.iter().map(|&x| f64::from(x)).collect()),
                },
                EmbeddingEntry { object: "embedding", index: 1, embedding: EmbeddingData::Base64("AAAA".into()) },
            ],
            model: "e".into(),
            usage: EmbeddingUsage { prompt_tokens: 4, total_tokens: 4 },
        };
        let data = vec![
            json!({"object": "embedding", "index": 0, "embedding": json!(v)}),
            json!({"object": "embedding", "index": 1, "embedding": "AAAA"}),
        ];
        assert_eq!(
            to_json(&list),
            json!({"object": "list", "data": data, "model": "e", "usage": {"prompt_tokens": 4, "total_tokens": 4}})
                .to_string()
        );
        let entries = vec![
            ModelEntry {
                id: "e".into(),
                object: "model",
                created: 7,
                owned_by: "aisle",
                kind: "embedding",
                context_length: None,
            },
            ModelEntry {
                id: "c".into(),
                object: "model",
                created: 7,
                owned_by: "aisle",
                kind: "chat",
                context_length: Some(2048),
            },
        ];
        assert_eq!(
            to_json(&List { object: "list", data: entries }),
            json!({"object": "list", "data": [
                {"id": "e", "object": "model", "created": 7, "owned_by": "aisle", "kind": "embedding"},
                {"id": "c", "object": "model", "created": 7, "owned_by": "aisle", "kind": "chat", "context_length": 2048},
            ]})
            .to_string()
        );
    }
}
