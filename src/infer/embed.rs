//! BERT-family sentence embeddings from a sentence-transformers folder.
//!
//! The folder layout is sentence-transformers' own: `config.json`, `tokenizer.json`,
//! `model.safetensors`, `modules.json`, `sentence_bert_config.json` and `1_Pooling/config.json`.
//! Pooling (mean, CLS, max, mean-sqrt-len) and L2 normalisation are read from those files, never
//! assumed, so another sentence-transformers BERT model drops in. This file loads and runs the
//! model; batching lives in [`super::queue`].

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use serde::Deserialize;
use tokenizers::{Encoding, Tokenizer, TruncationParams};

use super::encoder::Encoder;
use crate::error::{Error, Result};

/// How token vectors become one sentence vector (from `1_Pooling/config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// Mean of the token vectors (attention-masked).
    Mean,
    /// The first (`[CLS]`) token's vector.
    Cls,
    /// Element-wise max over tokens.
    Max,
    /// Sum divided by the square root of the token count.
    MeanSqrtLen,
}

#[derive(Deserialize)]
struct PoolingFile {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
}

#[derive(Deserialize)]
struct ModuleEntry {
    #[serde(default)]
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct SentenceBertFile {
    max_seq_length: Option<usize>,
}

#[derive(Deserialize)]
struct ModelTypeProbe {
    model_type: Option<String>,
    max_position_embeddings: Option<usize>,
}

/// What runs the encoder.
enum Engine {
    /// aisle's CPU encoder ([`super::encoder`]): packed rows, fused projections.
    Cpu(Encoder),
    /// candle's `BertModel`: on GPUs, and as the reference the bench compares against.
    Candle(BertModel),
}

/// A loaded sentence-embedding model.
pub struct EmbeddingModel {
    name: String,
    engine: Engine,
    file_bytes: u64,
    tokenizer: Tokenizer,
    pooling: Pooling,
    normalize: bool,
    max_len: usize,
    dim: usize,
    device: Device,
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::Model(format!("cannot read {}: {e}", path.display())))
}

fn parse<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    serde_json::from_str(&read(path)?).map_err(|e| Error::Model(format!("{} is not valid: {e}", path.display())))
}

impl EmbeddingModel {
    /// Load a sentence-transformers folder onto `device`. Every missing or corrupt file is a
    /// [`Error::Model`] naming the file; nothing panics.
    /// On the CPU it runs aisle's encoder, elsewhere candle's `BertModel`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        Self::load_engine(dir, device, device.is_cpu())
    }

    /// Load with candle's own `BertModel` on any device: the reference that `aisle bench
    /// embed` runs side by side with the CPU encoder.
    pub fn load_reference(dir: &Path, device: &Device) -> Result<Self> {
        Self::load_engine(dir, device, false)
    }

    fn load_engine(dir: &Path, device: &Device, own: bool) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::Model(format!(
                "embedding model folder {} does not exist; run models/fetch.sh or set [models] embedding",
                dir.display()
            )));
        }
        let name = dir.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "embedding".into());

        // modules.json decides where pooling lives and whether vectors are normalised.
        let (pooling_dir, normalize) = match dir.join("modules.json") {
            p if p.exists() => {
                let modules: Vec<ModuleEntry> = parse(&p)?;
                let pooling = modules.iter().find(|m| m.kind.ends_with(".Pooling")).map(|m| dir.join(&m.path));
                let normalize = modules.iter().any(|m| m.kind.ends_with(".Normalize"));
                (pooling, normalize)
            }
            _ => (Some(dir.join("1_Pooling")), false),
        };
        let pooling = match pooling_dir.map(|d| d.join("config.json")).filter(|p| p.exists()) {
            Some(p) => {
                let f: PoolingFile = parse(&p)?;
                match (
                    f.pooling_mode_mean_tokens,
                    f.pooling_mode_cls_token,
                    f.pooling_mode_max_tokens,
                    f.pooling_mode_mean_sqrt_len_tokens,
                ) {
                    (true, false, false, false) => Pooling::Mean,
                    (false, true, false, false) => Pooling::Cls,
                    (false, false, true, false) => Pooling::Max,
                    (false, false, false, true) => Pooling::MeanSqrtLen,
                    _ => {
                        return Err(Error::Model(format!(
                            "{}: exactly one pooling mode must be set (combined modes are not supported)",
                            p.display()
                        )));
                    }
                }
            }
            None => Pooling::Mean,
        };

        let config_path = dir.join("config.json");
        let config_text = read(&config_path)?;
        let probe: ModelTypeProbe = serde_json::from_str(&config_text)
            .map_err(|e| Error::Model(format!("{} is not valid: {e}", config_path.display())))?;
        match probe.model_type.as_deref() {
            Some("bert") | None => {}
            Some(other) => {
                return Err(Error::Model(format!(
                    "{}: model_type '{other}' is not supported; the embedder runs BERT-family models (model_type 'bert')",
                    config_path.display()
                )));
            }
        }
        let config: BertConfig = serde_json::from_str(&config_text)
            .map_err(|e| Error::Model(format!("{} is not a BERT config: {e}", config_path.display())))?;
        let dim = config.hidden_size;

        let max_seq = match dir.join("sentence_bert_config.json") {
            p if p.exists() => parse::<SentenceBertFile>(&p)?.max_seq_length,
            _ => None,
        };
        let max_len = max_seq.unwrap_or(512).min(probe.max_position_embeddings.unwrap_or(512));

        let tok_path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tok_path)
            .map_err(|e| Error::Model(format!("cannot load tokenizer {}: {e}", tok_path.display())))?;
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: max_len, ..Default::default() }))
            .map_err(|e| Error::Model(format!("{}: cannot set truncation: {e}", tok_path.display())))?;
        tokenizer.with_padding(None);

        let weights = weights_path(dir)?;
        // SAFETY: the file is memory-mapped read-only; safetensors validates the header and
        // every tensor's bounds before use. Modifying the file while aisle runs is not supported.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, device) }
            .map_err(|e| Error::Model(format!("cannot load weights {}: {e}", weights.display())))?;
        let engine =
            if own {
                Engine::Cpu(Encoder::load(&vb, &config).map_err(|e| {
                    Error::Model(format!("{}: weights do not match config.json: {e}", weights.display()))
                })?)
            } else {
                Engine::Candle(BertModel::load(vb, &config).map_err(|e| {
                    Error::Model(format!("{}: weights do not match config.json: {e}", weights.display()))
                })?)
            };

        let file_bytes = std::fs::metadata(&weights).map_or(0, |m| m.len());
        Ok(Self { name, engine, file_bytes, tokenizer, pooling, normalize, max_len, dim, device: device.clone() })
    }

    /// The model's name (its folder name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Longest input in tokens; longer texts are truncated.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Pooling mode read from the folder.
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// Bytes of the weights as loaded (f32 on the CPU encoder; the safetensors file's size
    /// where candle holds them).
    pub fn weights_bytes(&self) -> u64 {
        match &self.engine {
            Engine::Cpu(encoder) => encoder.weights_bytes(),
            Engine::Candle(_) => self.file_bytes,
        }
    }

    /// Whether output vectors are L2-normalised.
    pub fn normalizes(&self) -> bool {
        self.normalize
    }

    /// The tokenizer (truncating to [`Self::max_len`]).
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Tokenize one text (with special tokens, truncated).
    pub fn tokenize(&self, text: &str) -> Result<Encoding> {
        self.tokenizer.encode(text, true).map_err(|e| Error::Inference(format!("tokenization failed: {e}")))
    }

    /// Embed a batch of tokenized texts in one forward pass (padded to the longest).
    pub fn embed_encodings(&self, encodings: &[&Encoding]) -> Result<Vec<Vec<f32>>> {
        if encodings.is_empty() {
            return Ok(Vec::new());
        }
        let model = match &self.engine {
            Engine::Cpu(encoder) => return self.embed_packed(encoder, encodings),
            Engine::Candle(model) => model,
        };
        let batch = encodings.len();
        let len = encodings.iter().map(|e| e.get_ids().len()).max().unwrap_or(1).max(1);
        let mut ids = vec![0u32; batch * len];
        let mut mask = vec![0u32; batch * len];
        let mut types = vec![0u32; batch * len];
        for (row, enc) in encodings.iter().enumerate() {
            let n = enc.get_ids().len();
            ids[row * len..row * len + n].copy_from_slice(enc.get_ids());
            types[row * len..row * len + n].copy_from_slice(enc.get_type_ids());
            for m in &mut mask[row * len..row * len + n] {
                *m = 1;
            }
        }
        let ids = Tensor::from_vec(ids, (batch, len), &self.device)?;
        let types = Tensor::from_vec(types, (batch, len), &self.device)?;
        let mask = Tensor::from_vec(mask, (batch, len), &self.device)?;
        let hidden = model.forward(&ids, &types, Some(&mask))?; // (batch, len, dim)
        let mask_f = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (batch, len, 1)
        let pooled = match self.pooling {
            Pooling::Cls => hidden.i((.., 0))?,
            Pooling::Mean => {
                let sum = hidden.broadcast_mul(&mask_f)?.sum(1)?;
                let count = mask_f.sum(1)?.clamp(1e-9f32, f32::MAX)?;
                sum.broadcast_div(&count)?
            }
            Pooling::MeanSqrtLen => {
                let sum = hidden.broadcast_mul(&mask_f)?.sum(1)?;
                let count = mask_f.sum(1)?.clamp(1e-9f32, f32::MAX)?.sqrt()?;
                sum.broadcast_div(&count)?
            }
            Pooling::Max => {
                let penalty = ((mask_f - 1.0)? * 1e9)?;
                hidden.broadcast_add(&penalty)?.max(1)?
            }
        };
        let pooled = if self.normalize {
            let norm = pooled.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12f32, f32::MAX)?;
            pooled.broadcast_div(&norm)?
        } else {
            pooled
        };
        Ok(pooled.to_dtype(DType::F32)?.to_vec2::<f32>()?)
    }

    /// The CPU encoder's path: texts packed without padding, pooled here.
    fn embed_packed(&self, encoder: &Encoder, encodings: &[&Encoding]) -> Result<Vec<Vec<f32>>> {
        let texts: Vec<(&[u32], &[u32])> = encodings.iter().map(|e| (e.get_ids(), e.get_type_ids())).collect();
        let hidden = encoder.forward(&texts)?;
        let dim = self.dim;
        let mut offset = 0;
        let mut out = Vec::with_capacity(texts.len());
        for (ids, _) in &texts {
            let rows = &hidden[offset * dim..(offset + ids.len()) * dim];
            offset += ids.len();
            out.push(pool(rows, dim, self.pooling, self.normalize));
        }
        Ok(out)
    }

    /// Tokenize and embed texts in one forward pass (no queue; for tools and tests).
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let encodings = texts.iter().map(|t| self.tokenize(t)).collect::<Result<Vec<_>>>()?;
        self.embed_encodings(&encodings.iter().collect::<Vec<_>>())
    }
}

/// One text's vector from its token rows (`rows.len() / dim` tokens, none of them padding).
fn pool(rows: &[f32], dim: usize, pooling: Pooling, normalize: bool) -> Vec<f32> {
    let n = rows.len() / dim;
    let mut v = vec![0f32; dim];
    if n == 0 {
        return v;
    }
    match pooling {
        Pooling::Cls => v.copy_from_slice(&rows[..dim]),
        Pooling::Max => {
            v.copy_from_slice(&rows[..dim]);
            for row in rows.chunks_exact(dim).skip(1) {
                for (a, b) in v.iter_mut().zip(row) {
                    *a = a.max(*b);
                }
            }
        }
        Pooling::Mean | Pooling::MeanSqrtLen => {
            for row in rows.chunks_exact(dim) {
                for (a, b) in v.iter_mut().zip(row) {
                    *a += b;
                }
            }
            let div = if pooling == Pooling::Mean { n as f32 } else { (n as f32).sqrt() };
            for a in v.iter_mut() {
                *a /= div;
            }
        }
    }
    if normalize {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        for a in v.iter_mut() {
            *a /= norm;
        }
    }
    v
}

fn weights_path(dir: &Path) -> Result<PathBuf> {
    let p = dir.join("model.safetensors");
    if p.exists() {
        return Ok(p);
    }
    if dir.join("pytorch_model.bin").exists() {
        return Err(Error::Model(format!(
            "{}: only safetensors weights are supported; convert pytorch_model.bin to model.safetensors",
            dir.display()
        )));
    }
    Err(Error::Model(format!("{}: model.safetensors is missing", dir.display())))
}
