//! Local chat models: GGUF files run with candle, their own tokenizer and chat template, and a
//! scheduler that owns the model and serves concurrent requests fairly.
//!
//! - [`gguf`]: a bounds-checked walk over the file before anything trusts it;
//! - [`model`]: the transformer (weights and `forward`, nothing else), [`attention`] and its
//!   [`cache`]s;
//! - [`tokenizer`]: ids equal to llama.cpp's, from `tokenizer.json` or the GGUF metadata;
//! - [`template`]: the model's Jinja chat template;
//! - [`sampling`], [`text`], [`json`]: choosing tokens, turning them into text, JSON output;
//! - [`scheduler`]: the worker thread, continuous batching, per-request KV caches, cancellation;
//! - [`reuse`]: prompt prefixes' KV caches kept for the next request that shares them.

pub mod attention;
pub mod cache;
pub mod gguf;
pub mod guard;
pub mod json;
pub mod kernels;
pub mod linear;
pub mod model;
pub mod reuse;
pub mod sampling;
pub mod scheduler;
pub mod schema;
pub mod template;
pub mod text;
pub mod tokenizer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use candle_core::Device;
use candle_core::quantized::gguf_file;

pub use cache::{Cache, KvPrefix};
pub use model::{Model, ModelShape};
pub use sampling::SamplingParams;
pub use scheduler::{ChatInfo, FinishReason, GenerateRequest, GenerationEvent, Generator, OutputFormat};
pub use template::{ChatTemplate, Message};
pub use tokenizer::ChatTokenizer;

use crate::error::{Error, Result};

/// A loaded chat model: weights, tokenizer, template. Cheap to clone (shared weights).
#[derive(Clone)]
pub struct ChatModel {
    /// The model's name (its folder, or the file's stem).
    pub name: String,
    /// The GGUF file.
    pub path: PathBuf,
    /// The transformer.
    pub model: Model,
    /// Its tokenizer.
    pub tokenizer: Arc<ChatTokenizer>,
    /// Its chat template.
    pub template: Arc<ChatTemplate>,
}

/// The GGUF file a model path names: the file itself, or the one `.gguf` file in a folder.
pub fn resolve_gguf(path: &Path) -> Result<PathBuf> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    if !path.is_dir() {
        return Err(Error::Model(format!(
            "chat model {} does not exist; run models/fetch.sh or set [chat] model",
            path.display()
        )));
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| Error::Model(format!("cannot list {}: {e}", path.display())))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
        .collect();
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(Error::Model(format!("{} holds no .gguf file", path.display()))),
        _ => Err(Error::Model(format!(
            "{} holds several .gguf files ({}); name one in [chat] model",
            path.display(),
            found
                .iter()
                .map(|p| p.file_name().unwrap_or_default().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

impl ChatModel {
    /// Load a GGUF chat model (a file, or a folder holding one). Every corrupt, truncated or
    /// unsupported file is an [`Error::Model`] that names the file and the problem.
    pub fn load(path: &Path, device: &Device, max_context: usize) -> Result<Self> {
        Self::load_with(path, device, max_context, true)
    }

    /// [`ChatModel::load`], choosing whether a small model keeps dequantized f32 copies of its
    /// Q4_1 matrices for prompt processing (faster prompts, four bytes per weight more memory).
    pub fn load_with(path: &Path, device: &Device, max_context: usize, dense_copies: bool) -> Result<Self> {
        let file_path = resolve_gguf(path)?;
        gguf::check_file(&file_path)?;
        let started = Instant::now();
        let mut file = std::fs::File::open(&file_path)
            .map_err(|e| Error::Model(format!("cannot open {}: {e}", file_path.display())))?;
        let ct =
            gguf_file::Content::read(&mut file).map_err(|e| Error::Model(format!("{}: {e}", file_path.display())))?;
        let arch =
            ct.metadata.get("general.architecture").and_then(|v| v.to_string().ok()).cloned().unwrap_or_default();
        if !model::SUPPORTED.contains(&arch.as_str()) {
            return Err(Error::Model(format!(
                "{}: architecture '{arch}' is not supported; aisle runs {}",
                file_path.display(),
                model::SUPPORTED.join(", ")
            )));
        }
        let dir = file_path.parent().map(Path::to_path_buf);
        let tokenizer = ChatTokenizer::load(&ct, dir.as_deref())
            .map_err(|e| Error::Model(format!("{}: {e}", file_path.display())))?;
        let token_text = |key: &str| {
            ct.metadata
                .get(key)
                .and_then(|v| v.to_u32().ok())
                .and_then(|id| {
                    ct.metadata.get("tokenizer.ggml.tokens")?.to_vec().ok()?.get(id as usize)?.to_string().ok().cloned()
                })
                .unwrap_or_default()
        };
        let (bos, eos) = (token_text("tokenizer.ggml.bos_token_id"), token_text("tokenizer.ggml.eos_token_id"));
        let source = ct.metadata.get("tokenizer.chat_template").and_then(|v| v.to_string().ok()).cloned();
        let template = ChatTemplate::new(source.as_deref(), &bos, &eos)
            .map_err(|e| Error::Model(format!("{}: {e}", file_path.display())))?;
        let model = Model::load(ct, &mut file, device, max_context, dense_copies).map_err(|e| match e {
            Error::Model(m) => Error::Model(format!("{}: {m}", file_path.display())),
            other => Error::Model(format!("{}: {other}", file_path.display())),
        })?;
        let name = if path.is_dir() {
            path.file_name().map(|s| s.to_string_lossy().into_owned())
        } else {
            file_path.file_stem().map(|s| s.to_string_lossy().into_owned())
        }
        .unwrap_or_else(|| "chat".into());
        tracing::info!(model = %name, arch = %arch, secs = started.elapsed().as_secs_f32(), "chat model loaded");
        Ok(Self { name, path: file_path, model, tokenizer: Arc::new(tokenizer), template: Arc::new(template) })
    }

    /// Shape facts.
    pub fn shape(&self) -> &ModelShape {
        self.model.shape()
    }
}

/// Record a finished request in the metrics: its time to first token, its whole time, and its
/// generation speed after the first token.
fn record_finish(first: std::time::Duration, total: std::time::Duration, generated: usize) {
    metrics::histogram!("aisle_chat_time_to_first_token_seconds").record(first.as_secs_f64());
    metrics::histogram!("aisle_chat_request_duration_seconds").record(total.as_secs_f64());
    let decoding = total.saturating_sub(first).as_secs_f64();
    if generated > 1 && decoding > 0.0 {
        metrics::histogram!("aisle_chat_decode_tokens_per_second").record((generated - 1) as f64 / decoding);
    }
}
