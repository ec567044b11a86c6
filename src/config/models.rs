//! `[models]`, `[embed]` and `[chat]`: which models run, on what device, and how their queues
//! batch. Not the models themselves (`infer/`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// `[models]`: which models to load, from where, on what.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsConfig {
    /// Directory holding the model folders.
    pub dir: PathBuf,
    /// Embedding model: a folder name under `dir`, or a path.
    pub embedding: String,
    /// Device: `auto`, `cpu` or `cuda:N`.
    pub device: String,
    /// Compute threads; 0 means "the CPUs this process may use" (affinity and cgroup quota).
    pub threads: usize,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        Self { dir: PathBuf::from("models"), embedding: "all-MiniLM-L6-v2".into(), device: "auto".into(), threads: 0 }
    }
}

impl ModelsConfig {
    /// Resolve a model name to a path: an existing path is taken as is, else a folder under `dir`.
    pub fn resolve(&self, name: &str) -> PathBuf {
        let p = Path::new(name);
        if p.is_absolute() || p.exists() { p.to_path_buf() } else { self.dir.join(name) }
    }

    /// The chat model `[chat] model` names: `auto` is the strongest the machine holds (the
    /// largest GGUF file in a folder under `dir`; more weights write better sentences), empty is
    /// none, anything else is resolved as a path or folder name.
    pub fn chat_model(&self, name: &str) -> Option<PathBuf> {
        match name {
            "" => None,
            "auto" => {
                let mut best: Option<(u64, PathBuf)> = None;
                for folder in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
                    for file in std::fs::read_dir(folder.path()).into_iter().flatten().flatten() {
                        let path = file.path();
                        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
                        if path.extension().is_some_and(|e| e == "gguf") && best.as_ref().is_none_or(|(b, _)| size > *b)
                        {
                            best = Some((size, folder.path()));
                        }
                    }
                }
                best.map(|(_, p)| p)
            }
            name => Some(self.resolve(name)),
        }
    }
}

/// `[embed]`: the embedding batching queue.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbedConfig {
    /// Most padded tokens in one forward pass.
    pub max_batch_tokens: usize,
    /// Most texts in one forward pass.
    pub max_batch_size: usize,
    /// Most texts waiting in the queue before new requests get 503.
    pub max_queued: usize,
    /// Most texts accepted in one `/v1/embeddings` request.
    pub max_inputs: usize,
    /// Search-query embeddings kept, by normalised text (0: no cache).
    pub query_cache_entries: usize,
    /// Compute threads of the embedding model's own pool; 0: `[models] threads`.
    pub threads: usize,
}

impl Default for EmbedConfig {
    fn default() -> Self {
        Self {
            max_batch_tokens: 8192,
            max_batch_size: 32,
            max_queued: 20_000,
            max_inputs: 256,
            query_cache_entries: 4096,
            threads: 0,
        }
    }
}

/// `[chat]`: the chat model and its scheduler.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatConfig {
    /// Chat model: `auto` (the default: the largest GGUF model under `[models] dir`, so
    /// Qwen2.5-1.5B when it was fetched, else SmolLM2-135M), a folder (holding one .gguf) or
    /// file under `[models] dir`, or a path; empty disables chat.
    pub model: String,
    /// Longest context in tokens (the model's own limit applies too).
    pub max_context: usize,
    /// Requests generated at once (continuous batching: all of them in each forward pass).
    pub max_active: usize,
    /// Requests waiting before new ones get 503.
    pub max_waiting: usize,
    /// Prompt tokens per forward pass, shared by the requests reading their prompt; smaller
    /// keeps the others' inter-token latency lower while a long prompt is read.
    pub prefill_chunk: usize,
    /// MiB of prompt KV caches kept for prefix reuse (the assistant's instructions, earlier
    /// turns); 0 turns reuse off.
    pub prefix_cache_mb: usize,
    /// `max_tokens` of chat completions that do not set it.
    pub default_max_tokens: usize,
    /// Keep dequantized f32 copies of a small model's Q4_1 matrices for prompt processing
    /// (about 1.5x faster prompts on SmolLM2; four bytes per weight, 540 MB for SmolLM2).
    pub dense_copies: bool,
    /// Compute threads of the chat model's own pool; 0: `[models] threads`.
    pub threads: usize,
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            model: "auto".into(),
            max_context: 4096,
            max_active: 16,
            max_waiting: 64,
            prefill_chunk: 256,
            prefix_cache_mb: 256,
            dense_copies: true,
            default_max_tokens: 512,
            threads: 0,
        }
    }
}

impl EmbedConfig {
    pub(super) fn validate(&self, problems: &mut Vec<String>) {
        if self.max_batch_size == 0 || self.max_batch_tokens == 0 {
            problems.push("embed.max_batch_size and embed.max_batch_tokens must be at least 1".to_string());
        }
    }
}

impl ChatConfig {
    pub(super) fn validate(&self, problems: &mut Vec<String>) {
        if self.max_context < 16 || self.max_active == 0 || self.prefill_chunk == 0 || self.default_max_tokens == 0 {
            problems.push(
                "chat.max_context must be >= 16; chat.max_active, prefill_chunk, default_max_tokens >= 1".to_string(),
            );
        }
    }
}
