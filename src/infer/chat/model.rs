//! Decoder-only transformers from GGUF files: the llama family (llama, qwen2, qwen3) in one
//! implementation, and gemma3 through candle-transformers.
//!
//! This file loads weights and runs `forward`, nothing else. Weights are shared (`Arc`) between
//! requests; each request owns a [`Cache`] (its KV cache), so concurrent conversations never
//! share attention state. The KV cache grows in chunks and is written in place (no copy of the
//! whole cache per token), and grouped-query attention reads the cache without repeating it.

use std::sync::Arc;

use candle_core::quantized::{QTensor, gguf_file};
use candle_core::{DType, Device, IndexOp, Module, Tensor};
use candle_transformers::models::quantized_gemma3;
use candle_transformers::quantized_nn::RmsNorm;

use super::linear::Linear;
use crate::error::{Error, Result};

/// Models whose weights take at most this many bytes as f32 keep dequantized copies of
/// their Q4_1 matrices for prompt processing.
const DENSE_BUDGET_BYTES: u64 = 1 << 30;

/// Architectures aisle runs, by GGUF `general.architecture`.
pub const SUPPORTED: &[&str] = &["llama", "qwen2", "qwen3", "gemma3"];

/// Shape facts of a loaded model.
#[derive(Debug, Clone, serde::Serialize)]
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

/// A loaded model, shareable between threads.
#[derive(Clone)]
pub enum Model {
    /// llama, qwen2, qwen3.
    Llama(Arc<Llama>),
    /// gemma3 (candle-transformers' implementation; each cache holds its own clone).
    Gemma3(Arc<quantized_gemma3::ModelWeights>, ModelShape, Device),
}

/// Per-request attention state.
pub enum Cache {
    /// KV cache of a llama-family model.
    Llama(LlamaCache),
    /// A gemma3 model clone that holds its own KV cache.
    Gemma3(Box<quantized_gemma3::ModelWeights>, usize),
}

impl Cache {
    /// Tokens already in the cache.
    pub fn len(&self) -> usize {
        match self {
            Cache::Llama(c) => c.len,
            Cache::Gemma3(_, n) => *n,
        }
    }

    /// Whether nothing has been processed yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
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
    ) -> Result<Self> {
        let arch = md(&ct, "general.architecture")?
            .to_string()
            .map_err(|e| Error::Model(format!("general.architecture: {e}")))?
            .clone();
        let parameters: u64 = ct.tensor_infos.values().map(|t| t.shape.elem_count() as u64).sum();
        match arch.as_str() {
            "llama" | "qwen2" | "qwen3" => {
                Ok(Model::Llama(Arc::new(Llama::load(&arch, ct, reader, device, max_context, parameters)?)))
            }
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

    /// Run `tokens` (appended after what `cache` holds) and return the logits of the last one.
    pub fn forward(&self, tokens: &[u32], cache: &mut Cache) -> Result<Vec<f32>> {
        if tokens.is_empty() {
            return Err(Error::Internal("forward needs at least one token".into()));
        }
        let logits = match (self, cache) {
            (Model::Llama(m), Cache::Llama(c)) => m.forward(tokens, c)?,
            (Model::Gemma3(_, _, device), Cache::Gemma3(w, n)) => {
                let input = Tensor::new(tokens, device)?.unsqueeze(0)?;
                let logits = w.forward(&input, *n)?;
                *n += tokens.len();
                logits.squeeze(0)?
            }
            _ => return Err(Error::Internal("cache of another model".into())),
        };
        Ok(logits.to_dtype(DType::F32)?.to_device(&Device::Cpu)?.to_vec1::<f32>()?)
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

/// KV cache of one request: per layer, `(1, kv_heads, capacity, head_dim)` tensors of which the
/// first `len` positions are valid. Grows by [`LlamaCache::CHUNK`] positions at a time.
pub struct LlamaCache {
    k: Vec<Option<Tensor>>,
    v: Vec<Option<Tensor>>,
    len: usize,
    capacity: usize,
}

impl LlamaCache {
    /// Positions added when the cache is full.
    pub const CHUNK: usize = 256;

    fn new(layers: usize) -> Self {
        Self { k: vec![None; layers], v: vec![None; layers], len: 0, capacity: 0 }
    }
}

impl Llama {
    fn load<R: std::io::Read + std::io::Seek>(
        arch: &str,
        ct: gguf_file::Content,
        reader: &mut R,
        device: &Device,
        max_context: usize,
        parameters: u64,
    ) -> Result<Self> {
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
        let keep_dense = parameters * 4 <= DENSE_BUDGET_BYTES;
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

    /// Process `tokens` after the cached ones; logits of the last token.
    fn forward(&self, tokens: &[u32], cache: &mut LlamaCache) -> Result<Tensor> {
        let (pos, n) = (cache.len, tokens.len());
        if pos + n > self.shape.context {
            return Err(Error::Invalid(vec![crate::error::FieldError::new(
                "",
                format!("{} tokens exceed the model's context of {}", pos + n, self.shape.context),
            )]));
        }
        let (heads, kv_heads, hd) = (self.shape.heads, self.shape.kv_heads, self.head_dim);
        let ids = Tensor::new(tokens, &self.device)?;
        let mut x = self.embed.embedding(&ids)?.to_dtype(DType::F32)?.unsqueeze(0)?; // (1, n, dim)
        let cos = self.cos.narrow(0, pos, n)?;
        let sin = self.sin.narrow(0, pos, n)?;
        let total = pos + n;
        let mask = if n > 1 { Some(causal_mask(n, pos, &self.device)?) } else { None };
        if total > cache.capacity {
            let capacity = total.div_ceil(LlamaCache::CHUNK) * LlamaCache::CHUNK;
            for slot in cache.k.iter_mut().chain(cache.v.iter_mut()) {
                let grown = Tensor::zeros((1, kv_heads, capacity, hd), DType::F32, &self.device)?;
                if let Some(old) = slot.take() {
                    grown.slice_set(&old.narrow(2, 0, pos)?.contiguous()?, 2, 0)?;
                }
                *slot = Some(grown);
            }
            cache.capacity = capacity;
        }
        for (i, layer) in self.layers.iter().enumerate() {
            let h = layer.attn_norm.forward(&x)?;
            let (mut q, mut k, mut v) = (layer.wq.forward(&h)?, layer.wk.forward(&h)?, layer.wv.forward(&h)?);
            if let Some((bq, bk, bv)) = &layer.bias {
                q = q.broadcast_add(bq)?;
                k = k.broadcast_add(bk)?;
                v = v.broadcast_add(bv)?;
            }
            let mut q = q.reshape((1, n, heads, hd))?.transpose(1, 2)?.contiguous()?;
            let mut k = k.reshape((1, n, kv_heads, hd))?.transpose(1, 2)?.contiguous()?;
            let v = v.reshape((1, n, kv_heads, hd))?.transpose(1, 2)?.contiguous()?;
            if let Some((qn, kn)) = &layer.qk_norm {
                q = qn.forward(&q)?;
                k = kn.forward(&k)?;
            }
            let (q, k) = if self.rope_neox {
                (candle_nn::rotary_emb::rope(&q, &cos, &sin)?, candle_nn::rotary_emb::rope(&k, &cos, &sin)?)
            } else {
                (candle_nn::rotary_emb::rope_i(&q, &cos, &sin)?, candle_nn::rotary_emb::rope_i(&k, &cos, &sin)?)
            };
            let kc = cache.k[i].as_ref().expect("cache allocated above");
            let vc = cache.v[i].as_ref().expect("cache allocated above");
            kc.slice_set(&k, 2, pos)?;
            vc.slice_set(&v, 2, pos)?;
            let keys = kc.narrow(2, 0, total)?; // (1, kv, total, hd)
            let values = vc.narrow(2, 0, total)?;
            let attn = grouped_attention(&q, &keys, &values, mask.as_ref())?; // (1, heads, n, hd)
            let attn = attn.transpose(1, 2)?.reshape((1, n, heads * hd))?;
            x = (x + layer.wo.forward(&attn)?)?;
            let h = layer.ffn_norm.forward(&x)?;
            let ff = (candle_nn::ops::silu(&layer.gate.forward(&h)?)? * layer.up.forward(&h)?)?;
            x = (x + layer.down.forward(&ff)?)?;
        }
        cache.len = total;
        let last = x.i((.., n - 1..n, ..))?;
        let last = self.norm.forward(&last)?;
        Ok(self.output.forward(&last)?.squeeze(0)?.squeeze(0)?)
    }
}

/// Scaled dot-product attention where each key/value head serves `heads / kv_heads` query
/// heads, computed without repeating K/V: the queries of a group are stacked as rows of one
/// matrix per key/value head. `q` is `(1, heads, n, hd)`, `keys`/`values` `(1, kv_heads, total,
/// hd)`, `mask` additive `(n, total)`; returns `(1, heads, n, hd)`.
fn grouped_attention(q: &Tensor, keys: &Tensor, values: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    let (_, heads, n, hd) = q.dims4()?;
    let (_, kv_heads, total, _) = keys.dims4()?;
    let group = heads / kv_heads;
    let q = q.reshape((1, kv_heads, group * n, hd))?;
    let scores = (q.matmul(&keys.t()?)? / (hd as f64).sqrt())?; // (1, kv, group*n, total)
    let scores = match mask {
        Some(m) => scores.reshape((1, kv_heads, group, n, total))?.broadcast_add(m)?.reshape((
            1,
            kv_heads,
            group * n,
            total,
        ))?,
        None => scores,
    };
    let probs = candle_nn::ops::softmax_last_dim(&scores)?;
    Ok(probs.matmul(&values.contiguous()?)?.reshape((1, heads, n, hd))?)
}

/// Additive causal mask `(n, pos + n)`: 0 where attending is allowed, -inf elsewhere.
fn causal_mask(n: usize, pos: usize, device: &Device) -> Result<Tensor> {
    let total = pos + n;
    let data: Vec<f32> =
        (0..n).flat_map(|i| (0..total).map(move |j| if j <= pos + i { 0.0 } else { f32::NEG_INFINITY })).collect();
    Ok(Tensor::from_vec(data, (n, total), device)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The grouped form computes what repeating K/V per query head computes, up to float
    /// rounding, with and without a causal mask and a cache prefix.
    #[test]
    fn grouped_attention_equals_repeated_kv() -> Result<()> {
        let dev = Device::Cpu;
        for (heads, kv, n, pos, scale) in
            [(12, 2, 10, 0, 1.0), (12, 2, 37, 0, 30.0), (9, 3, 1, 20, 10.0), (8, 8, 5, 3, 1.0)]
        {
            let hd = 16;
            let total = pos + n;
            let q = (Tensor::randn(0f32, 1.0, (1, heads, n, hd), &dev)? * scale)?;
            let k = (Tensor::randn(0f32, 1.0, (1, kv, total, hd), &dev)? * scale)?;
            let v = Tensor::randn(0f32, 1.0, (1, kv, total, hd), &dev)?;
            let mask = if n > 1 { Some(causal_mask(n, pos, &dev)?) } else { None };
            let ours = grouped_attention(&q, &k, &v, mask.as_ref())?;
            let kr = candle_transformers::utils::repeat_kv(k, heads / kv)?;
            let vr = candle_transformers::utils::repeat_kv(v, heads / kv)?;
            let s = (q.matmul(&kr.t()?)? / (hd as f64).sqrt())?;
            let s = match &mask {
                Some(m) => s.broadcast_add(m)?,
                None => s,
            };
            let theirs = candle_nn::ops::softmax_last_dim(&s)?.matmul(&vr.contiguous()?)?;
            let d = (ours - theirs)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
            assert!(d < 1e-4, "heads {heads} kv {kv} n {n} pos {pos}: {d}");
        }
        Ok(())
    }

    #[test]
    fn causal_mask_lets_each_position_see_the_past_and_itself() -> Result<()> {
        let m: Vec<Vec<f32>> = causal_mask(2, 1, &Device::Cpu)?.to_vec2()?;
        assert_eq!(m[0][..2], [0.0, 0.0]);
        assert_eq!(m[0][2], f32::NEG_INFINITY);
        assert_eq!(m[1], [0.0, 0.0, 0.0]);
        Ok(())
    }
}
