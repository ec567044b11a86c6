//! Streaming completions as server-sent events in OpenAI's chunk format: one `data:` event per
//! chunk, a usage chunk when asked for, an error object if generation fails midway, and
//! `data: [DONE]` at the end. One streamer serves chat and text completions; each says how
//! its choices carry text through [`StreamChoice`].
//!
//! Not for whole (non-streamed) responses, nor for the assistant's own event stream (which
//! only borrows [`receiver_stream`]).

use std::convert::Infallible;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::mpsc::UnboundedReceiver;

use super::response::{ChatChunkChoice, Completion, Delta, StreamError, StreamErrorBody, TextChoice, Usage};
use crate::infer::chat::{FinishReason, GenerationEvent};

/// A stream over an unbounded receiver; dropping it drops the receiver (cancelling generation).
pub(in crate::api) fn receiver_stream<T: Send + 'static>(
    mut rx: UnboundedReceiver<T>,
) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// How a kind of completion puts generated text into the choice of a chunk.
pub(super) trait StreamChoice: Serialize + Send + 'static {
    /// The choice carrying newly generated text.
    fn text(text: String) -> Self;
    /// The choice of the chunk that ends the generation.
    fn finish(reason: FinishReason) -> Self;
}

impl StreamChoice for ChatChunkChoice {
    fn text(text: String) -> Self {
        ChatChunkChoice {
            index: 0,
            delta: Delta { role: None, content: Some(text) },
            logprobs: (),
            finish_reason: None,
        }
    }

    fn finish(reason: FinishReason) -> Self {
        ChatChunkChoice { index: 0, delta: Delta::default(), logprobs: (), finish_reason: Some(reason) }
    }
}

impl StreamChoice for TextChoice {
    fn text(text: String) -> Self {
        TextChoice { index: 0, text, logprobs: (), finish_reason: None }
    }

    fn finish(reason: FinishReason) -> Self {
        TextChoice { index: 0, text: String::new(), logprobs: (), finish_reason: Some(reason) }
    }
}

/// What every chunk of one stream repeats.
pub(super) struct ChunkHeader {
    /// The completion's id.
    pub(super) id: String,
    /// `chat.completion.chunk` or `text_completion`.
    pub(super) object: &'static str,
    /// Unix seconds.
    pub(super) created: u64,
    /// The model's name.
    pub(super) model: String,
    /// The server's fingerprint, if the chunks carry one.
    pub(super) system_fingerprint: Option<String>,
}

impl ChunkHeader {
    /// The chunk with `choices` (and `usage`), as the data of one event.
    fn chunk<C: Serialize>(&self, choices: Vec<C>, usage: Option<Usage>) -> String {
        to_data(&Completion {
            id: &self.id,
            object: self.object,
            created: self.created,
            model: &self.model,
            system_fingerprint: self.system_fingerprint.as_deref(),
            choices,
            usage,
        })
    }
}

/// JSON of an event's data. The bodies here are plain structs with string keys, which always
/// serialize.
fn to_data(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// The events of one generation as SSE: `first` (if any), a chunk per piece of text, the
/// finishing chunk, the usage chunk when `include_usage`, then `[DONE]`.
pub(super) fn stream_completion<C: StreamChoice>(
    rx: UnboundedReceiver<GenerationEvent>,
    header: ChunkHeader,
    first: Option<C>,
    include_usage: bool,
) -> Sse<impl futures::Stream<Item = Result<SseEvent, Infallible>>> {
    let first = first.map(|c| header.chunk(vec![c], None));
    let events = receiver_stream(rx).flat_map(move |e| {
        let out: Vec<String> = match e {
            GenerationEvent::Text(t) => vec![header.chunk(vec![C::text(t)], None)],
            GenerationEvent::Done(f) => {
                let mut v = vec![header.chunk(vec![C::finish(f.reason)], None)];
                if include_usage {
                    v.push(header.chunk(Vec::<C>::new(), Some(Usage::new(f.prompt_tokens, f.completion_tokens))));
                }
                v
            }
            GenerationEvent::Failed(e) => {
                vec![to_data(&StreamError { error: StreamErrorBody { message: e, kind: "server_error" } })]
            }
        };
        futures::stream::iter(out)
    });
    let body = futures::stream::iter(first)
        .chain(events)
        .map(|data| Ok(SseEvent::default().data(data)))
        .chain(futures::stream::once(async { Ok(SseEvent::default().data("[DONE]")) }));
    Sse::new(body).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn header(object: &'static str, system_fingerprint: Option<&str>) -> ChunkHeader {
        ChunkHeader {
            id: "x-1".into(),
            object,
            created: 7,
            model: "m".into(),
            system_fingerprint: system_fingerprint.map(str::to_string),
        }
    }

    #[test]
    fn chat_chunks_are_openai_chunks() {
        let h = header("chat.completion.chunk", Some("aisle-0"));
        let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
            json!({
                "id": "x-1", "object": "chat.completion.chunk", "created": 7, "model": "m",
                "system_fingerprint": "aisle-0",
                "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
            })
            .to_string()
        };
        let first = ChatChunkChoice {
            index: 0,
            delta: Delta { role: Some("assistant"), content: Some(String::new()) },
            logprobs: (),
            finish_reason: None,
        };
        assert_eq!(h.chunk(vec![first], None), chunk(json!({"role": "assistant", "content": ""}), json!(null)));
        assert_eq!(
            h.chunk(vec![ChatChunkChoice::text("Hi".into())], None),
            chunk(json!({"content": "Hi"}), json!(null))
        );
        assert_eq!(
            h.chunk(vec![ChatChunkChoice::finish(FinishReason::Length)], None),
            chunk(json!({}), json!("length"))
        );
        assert_eq!(
            h.chunk(Vec::<ChatChunkChoice>::new(), Some(Usage::new(3, 2))),
            json!({
                "id": "x-1", "object": "chat.completion.chunk", "created": 7, "model": "m",
                "system_fingerprint": "aisle-0", "choices": [],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
            })
            .to_string()
        );
    }

    #[test]
    fn text_chunks_are_openai_chunks() {
        let h = header("text_completion", None);
        let chunk = |text: &str, finish: serde_json::Value| {
            json!({"id": "x-1", "object": "text_completion", "created": 7, "model": "m",
                   "choices": [{"index": 0, "text": text, "logprobs": null, "finish_reason": finish}]})
            .to_string()
        };
        assert_eq!(h.chunk(vec![TextChoice::text("Hi".into())], None), chunk("Hi", json!(null)));
        assert_eq!(h.chunk(vec![TextChoice::finish(FinishReason::Stop)], None), chunk("", json!("stop")));
        assert_eq!(
            h.chunk(Vec::<TextChoice>::new(), Some(Usage::new(1, 1))),
            json!({"id": "x-1", "object": "text_completion", "created": 7, "model": "m", "choices": [],
                   "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
            .to_string()
        );
        let failed = StreamError { error: StreamErrorBody { message: "boom".into(), kind: "server_error" } };
        assert_eq!(to_data(&failed), json!({"error": {"message": "boom", "type": "server_error"}}).to_string());
    }
}
