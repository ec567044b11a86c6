//! Decoder-only transformers from GGUF files: the llama family (llama, qwen2, qwen3) in one
//! implementation, and gemma3 through candle-transformers.
//!
//! This file loads weights and runs `forward`, nothing else. Weights are shared (`Arc`) between
//! requests; each request owns a [`Cache`] (its KV cache), so concurrent conversations never
//! share attention state. The KV cache grows in chunks and is written in place (no copy of the
//! whole cache per token), and grouped-query attention reads the cache without repeating it.

use std::sync::Arc;

use candle_core::quantized::{QTensor, gguf_file};
use candle_core::{DType, Device, Module, Tensor};
use candle_transformers::models::quantized_gemma3;
use candle_transformers::quantized_nn::RmsNorm;

use super::attention::{DecodeRow, causal_mask, decode_attention, grouped_attention};
use super::cache::{Cache, KvPrefix, LlamaCache};
use super::linear::Linear;
use crate::error::{Error, Result};

/// Models whose weights take at most this many bytes as f32 keep dequantized copies of
/// their Q4_1 matrices for prompt processing (unless turned off: `[chat] dense_copies`).
const DENSE_BUDGET_BYTES: u64 = 1 << 30;

/// Prompt chunks of at least this many rows share their projections with the pass's other
/// such chunks (the prompt kernels from there on give each row what it gets alone).
const SHARED_CHUNK_ROWS: usize = 16;

/// Architectures aisle runs, by GGUF `general.architecture`.
pub const SUPPORTED: &[&str] = &["llama", "qwen2", "qwen3", "gemma3"];

/// Shape facts of a loaded model.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ModelShape {
    /// GGUF architecture.
    pub architecture: String,
    /// Transformer blocks.
    pub layers: usize,
    /// Hidden size.
    pub embedding: usize,
    /// Attention heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Vocabulary size.
    pub vocab: usize,
    /// Longest context the model is run with (tokens).
    pub context: usize,
    /// Parameter count.
    pub parameters: u64,
}

/// Memory a model holds.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct ModelMemory {
    /// Weights as loaded (quantized blocks, norms, biases); 0 where unknown (gemma3).
    pub weights_bytes: u64,
    /// Dequantized f32 copies kept for prompt processing (small Q4_1 models, once a prompt ran).
    pub dense_copies_bytes: u64,
}

/// A loaded model, shareable between threads.
#[derive(Clone)]
pub enum Model {
    /// llama, qwen2, qwen3.
    Llama(Arc<Llama>),
    /// gemma3 (candle-transformers' implementation; each cache holds its own clone).
    Gemma3(Arc<quantized_gemma3::ModelWeights>, ModelShape, Device),
}

fn md<'a>(ct: &'a gguf_file::Content, key: &str) -> Result<&'a gguf_file::Value> {
    ct.metadata.get(key).ok_or_else(|| Error::Model(format!("GGUF metadata has no '{key}'")))
}

fn md_u32(ct: &gguf_file::Content, key: &str) -> Result<usize> {
    md(ct, key)?.to_u32().map(|v| v as usize).map_err(|e| Error::Model(format!("GGUF '{key}': {e}")))
}

fn md_f32(ct: &gguf_file::Content, key: &str) -> Option<f32> {
    ct.metadata.get(key).and_then(|v| v.to_f32().ok())
}

impl Model {
    /// Load the transformer of a GGUF file whose metadata is `ct`. `max_context` caps the
    /// context (RoPE tables and caches are sized from it).
    pub fn load<R: std::io::Read + std::io::Seek>(
        ct: gguf_file::Content,
        reader: &mut R,
        device: &Device,
        max_context: usize,
        dense_copies: bool,
    ) -> Result<Self> {
        let arch = md(&ct, "general.architecture")?
            .to_string()
            .map_err(|e| Error::Model(format!("general.architecture: {e}")))?
            .clone();
        let parameters: u64 = ct.tensor_infos.values().map(|t| t.shape.elem_count() as u64).sum();
        match arch.as_str() {
            "llama" | "qwen2" | "qwen3" => Ok(Model::Llama(Arc::new(Llama::load(
                &arch,
                ct,
                reader,
                device,
                max_context,
                parameters,
                dense_copies,
            )?))),
            "gemma3" => {
                let shape = ModelShape {
                    architecture: arch.clone(),
                    layers: md_u32(&ct, "gemma3.block_count")?,
                    embedding: md_u32(&ct, "gemma3.embedding_length")?,
                    heads: md_u32(&ct, "gemma3.attention.head_count")?,
                    kv_heads: md_u32(&ct, "gemma3.attention.head_count_kv")?,
                    vocab: ct.tensor_infos.get("token_embd.weight").map(|t| t.shape.dims()[0]).unwrap_or(0),
                    context: md_u32(&ct, "gemma3.context_length").unwrap_or(8192).min(max_context),
                    parameters,
                };
                let weights = quantized_gemma3::ModelWeights::from_gguf(ct, reader, device)
                    .map_err(|e| Error::Model(format!("gemma3 weights: {e}")))?;
                Ok(Model::Gemma3(Arc::new(weights), shape, device.clone()))
            }
            other => Err(Error::Model(format!(
                "architecture '{other}' is not supported; aisle runs {}",
                SUPPORTED.join(", ")
            ))),
        }
    }

    /// Memory the model holds: its weights as loaded, and the dequantized copies made so far.
    pub fn memory(&self) -> ModelMemory {
        match self {
            Model::Llama(m) => {
                let linears = m.layers.iter().flat_map(|l| [&l.wq, &l.wk, &l.wv, &l.wo, &l.gate, &l.up, &l.down]);
                let linears: Vec<&Linear> = linears.chain([&m.output]).collect();
                let other = m.embed.storage_size_in_bytes() as u64
                    + m.layers
                        .iter()
                        .map(|l| {
                            l.bias.as_ref().map_or(0, |(a, b, c)| {
                                [a, b, c].iter().map(|t| (t.elem_count() * t.dtype().size_in_bytes()) as u64).sum()
                            })
                        })
                        .sum::<u64>();
                ModelMemory {
                    weights_bytes: other + linears.iter().map(|l| l.weight_bytes()).sum::<u64>(),
                    dense_copies_bytes: linears.iter().map(|l| l.dense_bytes()).sum(),
                }
            }
            Model::Gemma3(..) => ModelMemory { weights_bytes: 0, dense_copies_bytes: 0 },
        }
    }

    /// Whether [`Model::forward_batch`] takes several sequences (llama family) or one (gemma3).
    pub fn batches(&self) -> bool {
        matches!(self, Model::Llama(_))
    }

    /// Shape facts.
    pub fn shape(&self) -> &ModelShape {
        match self {
            Model::Llama(m) => &m.shape,
            Model::Gemma3(_, s, _) => s,
        }
    }

    /// A new, empty per-request cache.
    pub fn new_cache(&self) -> Cache {
        match self {
            Model::Llama(m) => Cache::Llama(LlamaCache::new(m.layers.len())),
            Model::Gemma3(w, _, _) => {
                // The shared weights never run, so their cache is empty: a clone starts clean.
                Cache::Gemma3(Box::new((**w).clone()), 0)
            }
        }
    }

    /// A cache holding the first `len` positions of `prefix` (its tokens need not be run again).
    pub fn cache_from(&self, prefix: &KvPrefix, len: usize) -> Result<Cache> {
        let Model::Llama(m) = self else {
            return Err(Error::Internal("gemma3 keeps its cache inside; no prefix reuse".into()));
        };
        if len == 0 || len > prefix.len || prefix.k.len() != m.layers.len() {
            return Err(Error::Internal(format!("a prefix of {} positions cannot start {len}", prefix.len)));
        }
        let mut cache = LlamaCache::new(m.layers.len());
        let per = m.shape.kv_heads * m.head_dim;
        cache.reserve(len, per);
        for (slot, saved) in cache.k.iter_mut().zip(&prefix.k).chain(cache.v.iter_mut().zip(&prefix.v)) {
            slot.extend_from_slice(&saved[..len * per]);
        }
        cache.len = len;
        Ok(Cache::Llama(cache))
    }

    /// Run `tokens` (appended after what `cache` holds) and return the logits of the last one.
    pub fn forward(&self, tokens: &[u32], cache: &mut Cache) -> Result<Vec<f32>> {
        Ok(self.forward_batch(&mut [(tokens, cache)])?.remove(0))
    }

    /// Run several sequences in one pass (continuous batching): each `(tokens, cache)` appends
    /// `tokens` after what its cache holds. Returns each one's logits of its last token, equal
    /// to what [`Model::forward`] returns for it alone. On error no cache has advanced (a
    /// caller may retry the sequences one by one to find the one that fails). gemma3 takes one
    /// sequence per pass ([`Model::batches`]).
    pub fn forward_batch(&self, items: &mut [(&[u32], &mut Cache)]) -> Result<Vec<Vec<f32>>> {
        let logits = match self {
            Model::Llama(m) => {
                let mut own = Vec::with_capacity(items.len());
                for (tokens, cache) in items.iter_mut() {
                    match cache {
                        Cache::Llama(c) => own.push((*tokens, c)),
                        Cache::Gemma3(..) => return Err(Error::Internal("cache of another model".into())),
                    }
                }
                m.forward_batch(&mut own)?
            }
            Model::Gemma3(..) if items.len() > 1 => {
                return Err(Error::Internal("gemma3 runs one sequence per pass".into()));
            }
            Model::Gemma3(_, _, device) => {
                let mut out = Vec::with_capacity(items.len());
                for (tokens, cache) in items.iter_mut() {
                    let Cache::Gemma3(w, n) = cache else {
                        return Err(Error::Internal("cache of another model".into()));
                    };
                    if tokens.is_empty() {
                        return Err(Error::Internal("forward needs at least one token".into()));
                    }
                    let input = Tensor::new(*tokens, device)?.unsqueeze(0)?;
                    let logits = w.forward(&input, *n)?;
                    *n += tokens.len();
                    out.push(logits.squeeze(0)?);
                }
                out
            }
        };
        logits.into_iter().map(|l| Ok(l.to_dtype(DType::F32)?.to_device(&Device::Cpu)?.to_vec1::<f32>()?)).collect()
    }
}

/// The llama-family transformer.
pub struct Llama {
    shape: ModelShape,
    head_dim: usize,
    rope_neox: bool,
    embed: QTensor,
    layers: Vec<Layer>,
    norm: RmsNorm,
    output: Linear,
    cos: Tensor,
    sin: Tensor,
    device: Device,
}

struct Layer {
    attn_norm: RmsNorm,
    wq: Linear,
    wk: Linear,
    wv: Linear,
    wo: Linear,
    bias: Option<(Tensor, Tensor, Tensor)>,
    qk_norm: Option<(RmsNorm, RmsNorm)>,
    ffn_norm: RmsNorm,
    gate: Linear,
    up: Linear,
    down: Linear,
}

impl Llama {
    fn load<R: std::io::Read + std::io::Seek>(
        arch: &str,
        ct: gguf_file::Content,
        reader: &mut R,
        device: &Device,
        max_context: usize,
        parameters: u64,
        dense_copies: bool,
    ) -> Result<Self> {
        super::kernels::check_layouts()?;
        let key = |k: &str| format!("{arch}.{k}");
        let heads = md_u32(&ct, &key("attention.head_count"))?;
        let kv_heads = md_u32(&ct, &key("attention.head_count_kv")).unwrap_or(heads);
        let layers_n = md_u32(&ct, &key("block_count"))?;
        let embedding = md_u32(&ct, &key("embedding_length"))?;
        let eps = md_f32(&ct, &key("attention.layer_norm_rms_epsilon")).unwrap_or(1e-6) as f64;
        let freq_base = md_f32(&ct, &key("rope.freq_base")).unwrap_or(10_000.0);
        let context = md_u32(&ct, &key("context_length")).unwrap_or(4096).min(max_context);
        let head_dim = md_u32(&ct, &key("attention.key_length")).unwrap_or(embedding / heads);
        let rope_dim = md_u32(&ct, &key("rope.dimension_count")).unwrap_or(head_dim);
        if heads == 0 || kv_heads == 0 || heads % kv_heads != 0 {
            return Err(Error::Model(format!("{heads} attention heads cannot share {kv_heads} key/value heads")));
        }
        if rope_dim != head_dim {
            return Err(Error::Model(format!(
                "partial rotary embeddings ({rope_dim} of {head_dim}) are not supported"
            )));
        }
        // llama.cpp's convention: llama uses interleaved pairs, qwen2/qwen3 the NEOX halves.
        let rope_neox = arch != "llama";

        let mut tensor =
            |name: &str| ct.tensor(reader, name, device).map_err(|e| Error::Model(format!("tensor '{name}': {e}")));
        let embed = tensor("token_embd.weight")?;
        let vocab = embed.shape().dims()[0];
        let norm = RmsNorm::from_qtensor(tensor("output_norm.weight")?, eps)?;
        // Dequantized copies speed up prompt processing; keep them while the model is small.
        let keep_dense = dense_copies && parameters * 4 <= DENSE_BUDGET_BYTES;
        let output = match tensor("output.weight") {
            Ok(t) => Linear::new(t, keep_dense)?,
            Err(_) => Linear::new(tensor("token_embd.weight")?, keep_dense)?, // tied embeddings
        };
        // Llama 3.1+ ship per-frequency RoPE scaling factors.
        let rope_factors = match tensor("rope_freqs.weight") {
            Ok(t) => Some(t.dequantize(device)?.to_dtype(DType::F32)?.to_vec1::<f32>()?),
            Err(_) => None,
        };
        let theta: Vec<f32> = (0..head_dim / 2)
            .map(|i| {
                let f = 1.0 / freq_base.powf(2.0 * i as f32 / head_dim as f32);
                f / rope_factors.as_ref().and_then(|r| r.get(i)).copied().unwrap_or(1.0)
            })
            .collect();
        let theta = Tensor::new(theta.as_slice(), device)?;
        let positions = Tensor::arange(0u32, context as u32, device)?.to_dtype(DType::F32)?.reshape((context, 1))?;
        let angles = positions.matmul(&theta.reshape((1, head_dim / 2))?)?;
        let (cos, sin) = (angles.cos()?, angles.sin()?);

        let mut layers = Vec::with_capacity(layers_n);
        for i in 0..layers_n {
            let p = format!("blk.{i}");
            let bias = if arch == "qwen2" {
                let b = |t: QTensor| t.dequantize(device);
                Some((
                    b(tensor(&format!("{p}.attn_q.bias"))?)?,
                    b(tensor(&format!("{p}.attn_k.bias"))?)?,
                    b(tensor(&format!("{p}.attn_v.bias"))?)?,
                ))
            } else {
                None
            };
            let qk_norm = if arch == "qwen3" {
                Some((
                    RmsNorm::from_qtensor(tensor(&format!("{p}.attn_q_norm.weight"))?, eps)?,
                    RmsNorm::from_qtensor(tensor(&format!("{p}.attn_k_norm.weight"))?, eps)?,
                ))
            } else {
                None
            };
            layers.push(Layer {
                attn_norm: RmsNorm::from_qtensor(tensor(&format!("{p}.attn_norm.weight"))?, eps)?,
                wq: Linear::new(tensor(&format!("{p}.attn_q.weight"))?, keep_dense)?,
                wk: Linear::new(tensor(&format!("{p}.attn_k.weight"))?, keep_dense)?,
                wv: Linear::new(tensor(&format!("{p}.attn_v.weight"))?, keep_dense)?,
                wo: Linear::new(tensor(&format!("{p}.attn_output.weight"))?, keep_dense)?,
                bias,
                qk_norm,
                ffn_norm: RmsNorm::from_qtensor(tensor(&format!("{p}.ffn_norm.weight"))?, eps)?,
                gate: Linear::new(tensor(&format!("{p}.ffn_gate.weight"))?, keep_dense)?,
                up: Linear::new(tensor(&format!("{p}.ffn_up.weight"))?, keep_dense)?,
                down: Linear::new(tensor(&format!("{p}.ffn_down.weight"))?, keep_dense)?,
            });
        }
        let shape = ModelShape {
            architecture: arch.to_string(),
            layers: layers_n,
            embedding,
            heads,
            kv_heads,
            vocab,
            context,
            parameters,
        };
        Ok(Self { shape, head_dim, rope_neox, embed, layers, norm, output, cos, sin, device: device.clone() })
    }

    /// Run several sequences in one pass: each `(tokens, cache)` appends `tokens` after what its
    /// cache holds; returns each one's logits of its last token, in order.
    ///
    /// Sequences with one token (decoding) share every projection: their rows go through
    /// [`Linear::forward_each_row`], which reads each weight once for all of them and computes
    /// every row as a lone token's. Sequences with several tokens (a prompt chunk) run each
    /// projection on their own rows, as alone. Attention is per sequence, over its own cache.
    /// So a sequence's logits are the same whichever batch it is in. Caches change only when
    /// the whole pass succeeded.
    fn forward_batch(&self, items: &mut [(&[u32], &mut LlamaCache)]) -> Result<Vec<Tensor>> {
        let out = self.forward_batch_inner(items);
        if out.is_err() {
            let per = self.shape.kv_heads * self.head_dim;
            for (_, cache) in items.iter_mut() {
                cache.truncate(per);
            }
        }
        out
    }

    fn forward_batch_inner(&self, items: &mut [(&[u32], &mut LlamaCache)]) -> Result<Vec<Tensor>> {
        for (tokens, cache) in items.iter() {
            if tokens.is_empty() {
                return Err(Error::Internal("forward needs at least one token".into()));
            }
            if cache.len + tokens.len() > self.shape.context {
                return Err(Error::Invalid(vec![crate::error::FieldError::new(
                    "",
                    format!("{} tokens exceed the model's context of {}", cache.len + tokens.len(), self.shape.context),
                )]));
            }
        }
        let (heads, kv_heads, hd) = (self.shape.heads, self.shape.kv_heads, self.head_dim);
        // Rows in pass order: the one-token sequences (one group, a row each), the prompt chunks
        // of at least `SHARED_CHUNK_ROWS` rows (one group: the prompt kernels' result for a row
        // does not depend on the other rows, `chat::a_reused_prefix_gives_the_logits_of_a_cold_
        // run`), then each shorter chunk on its own (its kernel depends on its row count).
        let size = |i: usize| items[i].0.len();
        let order: Vec<usize> = (0..items.len())
            .filter(|&i| size(i) == 1)
            .chain((0..items.len()).filter(|&i| size(i) >= SHARED_CHUNK_ROWS))
            .chain((0..items.len()).filter(|&i| size(i) > 1 && size(i) < SHARED_CHUNK_ROWS))
            .collect();
        // (first row, rows, kind): 0 one row per sequence, 1 shared prompt chunks, 2 one chunk.
        let mut groups: Vec<(usize, usize, u8)> = Vec::new();
        let mut offsets = vec![0usize; items.len()];
        let (mut ids, mut positions) = (Vec::new(), Vec::new());
        for &i in &order {
            let (tokens, cache) = &items[i];
            let n = tokens.len();
            let kind = match n {
                1 => 0,
                n if n >= SHARED_CHUNK_ROWS => 1,
                _ => 2,
            };
            offsets[i] = ids.len();
            match groups.last_mut() {
                Some((_, rows, k)) if *k == kind && kind != 2 => *rows += n,
                _ => groups.push((ids.len(), n, kind)),
            }
            ids.extend_from_slice(tokens);
            positions.extend((cache.len..cache.len + n).map(|p| p as u32));
        }
        let rows = ids.len();
        let per = kv_heads * hd;
        for (tokens, cache) in items.iter_mut() {
            cache.reserve(cache.len + tokens.len(), per);
        }
        let ids = Tensor::new(ids.as_slice(), &self.device)?;
        let positions = Tensor::new(positions.as_slice(), &self.device)?;
        let cos = self.cos.index_select(&positions, 0)?;
        let sin = self.sin.index_select(&positions, 0)?;
        let masks = items
            .iter()
            .map(|(t, c)| if t.len() > 1 { causal_mask(t.len(), c.len, &self.device).map(Some) } else { Ok(None) })
            .collect::<Result<Vec<_>>>()?;
        let project = |lin: &Linear, h: &Tensor| -> Result<Tensor> {
            let parts = groups
                .iter()
                .map(|&(first, n, kind)| {
                    let part = if groups.len() == 1 { h.clone() } else { h.narrow(1, first, n)? };
                    if kind == 0 { lin.forward_each_row(&part) } else { lin.forward(&part) }
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(if parts.len() == 1 { parts.into_iter().next().expect("one") } else { Tensor::cat(&parts, 1)? })
        };
        let mut x = self.embed.embedding(&ids)?.to_dtype(DType::F32)?.unsqueeze(0)?; // (1, rows, dim)
        for (l, layer) in self.layers.iter().enumerate() {
            let h = layer.attn_norm.forward(&x)?;
            let (mut q, mut k, mut v) = (project(&layer.wq, &h)?, project(&layer.wk, &h)?, project(&layer.wv, &h)?);
            if let Some((bq, bk, bv)) = &layer.bias {
                q = q.broadcast_add(bq)?;
                k = k.broadcast_add(bk)?;
                v = v.broadcast_add(bv)?;
            }
            let mut q = q.reshape((1, rows, heads, hd))?.transpose(1, 2)?.contiguous()?;
            let mut k = k.reshape((1, rows, kv_heads, hd))?.transpose(1, 2)?.contiguous()?;
            let v = v.reshape((1, rows, kv_heads, hd))?.transpose(1, 2)?.contiguous()?;
            if let Some((qn, kn)) = &layer.qk_norm {
                q = qn.forward(&q)?;
                k = kn.forward(&k)?;
            }
            let (q, k) = if self.rope_neox {
                (candle_nn::rotary_emb::rope(&q, &cos, &sin)?, candle_nn::rotary_emb::rope(&k, &cos, &sin)?)
            } else {
                (candle_nn::rotary_emb::rope_i(&q, &cos, &sin)?, candle_nn::rotary_emb::rope_i(&k, &cos, &sin)?)
            };
            // Each sequence's new keys and values join its cache (position-major).
            let (kf, vf) = (k.flatten_all()?.to_vec1::<f32>()?, v.flatten_all()?.to_vec1::<f32>()?); // (kv, rows, hd)
            for (i, (tokens, cache)) in items.iter_mut().enumerate() {
                for t in offsets[i]..offsets[i] + tokens.len() {
                    for g in 0..kv_heads {
                        let at = (g * rows + t) * hd;
                        cache.k[l].extend_from_slice(&kf[at..at + hd]);
                        cache.v[l].extend_from_slice(&vf[at..at + hd]);
                    }
                }
            }
            // Attention, per sequence over its own cache, written as (rows, heads, hd): one
            // kernel for all the one-token sequences at once, candle's for prompt chunks.
            let mut out = vec![0f32; rows * heads * hd];
            let qf = q.flatten_all()?.to_vec1::<f32>()?; // (heads, rows, hd)
            let singles: Vec<DecodeRow> = items
                .iter()
                .enumerate()
                .filter(|(_, (t, _))| t.len() == 1)
                .map(|(i, (_, c))| DecodeRow { row: offsets[i], keys: &c.k[l], values: &c.v[l], total: c.len + 1 })
                .collect();
            decode_attention(&qf, rows, heads, kv_heads, hd, &singles, &mut out);
            for (i, (tokens, cache)) in items.iter().enumerate() {
                let (off, n) = (offsets[i], tokens.len());
                if n == 1 {
                    continue;
                }
                let total = cache.len + n;
                let cached = |c: &[f32]| -> Result<Tensor> {
                    Ok(Tensor::from_slice(&c[..total * per], (total, kv_heads, hd), &self.device)?
                        .transpose(0, 1)?
                        .contiguous()?
                        .unsqueeze(0)?) // (1, kv, total, hd)
                };
                let qi = if items.len() == 1 { q.clone() } else { q.narrow(2, off, n)?.contiguous()? };
                let a = grouped_attention(&qi, &cached(&cache.k[l])?, &cached(&cache.v[l])?, masks[i].as_ref())?;
                let a = a.transpose(1, 2)?.contiguous()?.flatten_all()?.to_vec1::<f32>()?; // (n, heads, hd)
                out[off * heads * hd..(off + n) * heads * hd].copy_from_slice(&a);
            }
            let attn = Tensor::from_vec(out, (1, rows, heads * hd), &self.device)?;
            x = (x + project(&layer.wo, &attn)?)?;
            let h = layer.ffn_norm.forward(&x)?;
            let ff = (candle_nn::ops::silu(&project(&layer.gate, &h)?)? * project(&layer.up, &h)?)?;
            x = (x + project(&layer.down, &ff)?)?;
        }
        // The last row of every sequence, in the caller's order, through the head together.
        let last: Vec<u32> = items.iter().enumerate().map(|(i, (t, _))| (offsets[i] + t.len() - 1) as u32).collect();
        let last = x.squeeze(0)?.index_select(&Tensor::new(last.as_slice(), &self.device)?, 0)?;
        let logits = self.output.forward_each_row(&self.norm.forward(&last)?)?; // (sequences, vocab)
        for (tokens, cache) in items.iter_mut() {
            cache.len += tokens.len();
        }
        (0..items.len()).map(|i| Ok(logits.get(i)?)).collect()
    }
}
