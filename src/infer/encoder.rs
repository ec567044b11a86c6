//! The embedding model's BERT encoder on the CPU: candle's `BertModel` arithmetic over the same
//! weights, without its per-operation overhead and without padding.
//!
//! Texts of a batch are packed row after row (no padding rows), so a batch of one long and
//! many short texts costs the tokens it has, not `batch × longest`. The projections are single
//! GEMM calls over all packed rows (query, key and value fused into one), bias and residual
//! are folded into the GEMM's destination, attention runs per text and head over that text's
//! own rows, and GELU and softmax use a vectorisable `exp` (relative error ~1e-7), where candle
//! evaluates `erf` one element at a time. Results match candle's to float rounding; the parity
//! tests hold both to sentence-transformers' vectors (cosine ≥ 0.9999).
//!
//! Not for: tokenization, pooling or batching (see [`super::embed`] and [`super::queue`]);
//! GPUs (there the embedder keeps candle's `BertModel`).

use candle_nn::VarBuilder;
use candle_transformers::models::bert::{Config, HiddenAct};
use rayon::prelude::*;

use crate::error::{Error, Result};

/// A dense layer `y = x·Wᵀ + b`, `W` kept transposed: `wt` is row-major `[k, n]`, so that
/// a row of `x` meets `n` contiguous weights per input.
struct Dense {
    wt: Vec<f32>,
    b: Vec<f32>,
    n: usize,
    k: usize,
}

impl Dense {
    /// From PyTorch's layout: `w` row-major `[n, k]`.
    fn new(w: Vec<f32>, b: Vec<f32>, n: usize, k: usize) -> Self {
        let mut wt = vec![0f32; n * k];
        for (r, row) in w.chunks_exact(k).enumerate() {
            for (c, v) in row.iter().enumerate() {
                wt[c * n + r] = *v;
            }
        }
        Self { wt, b, n, k }
    }
}

/// Layer normalisation's scale and shift.
struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

struct Layer {
    /// Query, key and value projections stacked: `[3h, h]`.
    qkv: Dense,
    out: Dense,
    norm1: Norm,
    up: Dense,
    down: Dense,
    norm2: Norm,
}

/// A BERT encoder held as plain f32 arrays.
pub(super) struct Encoder {
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    norm: Norm,
    layers: Vec<Layer>,
    hidden: usize,
    heads: usize,
    eps: f32,
    act: HiddenAct,
    vocab: usize,
    types: usize,
    positions: usize,
}

fn get(vb: &VarBuilder, shape: (usize, usize), name: &str) -> Result<Vec<f32>> {
    let t = vb.get(shape, name).map_err(|e| Error::Model(format!("weight {name}: {e}")))?;
    Ok(t.flatten_all()?.to_vec1::<f32>()?)
}

fn get1(vb: &VarBuilder, n: usize, name: &str) -> Result<Vec<f32>> {
    let t = vb.get(n, name).map_err(|e| Error::Model(format!("weight {name}: {e}")))?;
    Ok(t.to_vec1::<f32>()?)
}

/// A linear layer's weight (row-major `[n, k]`) and bias.
fn linear(vb: &VarBuilder, n: usize, k: usize) -> Result<(Vec<f32>, Vec<f32>)> {
    Ok((get(vb, (n, k), "weight")?, get1(vb, n, "bias")?))
}

fn dense(vb: &VarBuilder, n: usize, k: usize) -> Result<Dense> {
    let (w, b) = linear(vb, n, k)?;
    Ok(Dense::new(w, b, n, k))
}

fn norm(vb: &VarBuilder, h: usize) -> Result<Norm> {
    // Old checkpoints name them gamma/beta, as candle's layer_norm also accepts.
    let (g, b) = if vb.contains_tensor("gamma") { ("gamma", "beta") } else { ("weight", "bias") };
    Ok(Norm { gamma: get1(vb, h, g)?, beta: get1(vb, h, b)? })
}

impl Encoder {
    /// Read the weights the way candle's `BertModel::load` finds them (top level, under
    /// `bert.`, or under the config's `model_type`).
    pub(super) fn load(vb: &VarBuilder, config: &Config) -> Result<Self> {
        let model_type = config.model_type.clone().unwrap_or_else(|| "bert".into());
        let prefix = ["", "bert.", &format!("{model_type}.")]
            .into_iter()
            .find(|p| vb.contains_tensor(&format!("{p}embeddings.word_embeddings.weight")))
            .ok_or_else(|| Error::Model("embeddings.word_embeddings.weight is missing".into()))?
            .trim_end_matches('.')
            .to_string();
        let vb = if prefix.is_empty() { vb.clone() } else { vb.pp(prefix) };
        let h = config.hidden_size;
        let heads = config.num_attention_heads;
        if heads == 0 || !h.is_multiple_of(heads) {
            return Err(Error::Model(format!("hidden_size {h} is not a multiple of num_attention_heads {heads}")));
        }
        let emb = vb.pp("embeddings");
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let l = vb.pp(format!("encoder.layer.{i}"));
            let att = l.pp("attention");
            let (q, k, v) = (
                linear(&att.pp("self.query"), h, h)?,
                linear(&att.pp("self.key"), h, h)?,
                linear(&att.pp("self.value"), h, h)?,
            );
            let qkv = Dense::new([q.0, k.0, v.0].concat(), [q.1, k.1, v.1].concat(), 3 * h, h);
            layers.push(Layer {
                qkv,
                out: dense(&att.pp("output.dense"), h, h)?,
                norm1: norm(&att.pp("output.LayerNorm"), h)?,
                up: dense(&l.pp("intermediate.dense"), config.intermediate_size, h)?,
                down: dense(&l.pp("output.dense"), h, config.intermediate_size)?,
                norm2: norm(&l.pp("output.LayerNorm"), h)?,
            });
        }
        Ok(Self {
            word: get(&emb.pp("word_embeddings"), (config.vocab_size, h), "weight")?,
            position: get(&emb.pp("position_embeddings"), (config.max_position_embeddings, h), "weight")?,
            token_type: get(&emb.pp("token_type_embeddings"), (config.type_vocab_size, h), "weight")?,
            norm: norm(&emb.pp("LayerNorm"), h)?,
            layers,
            hidden: h,
            heads,
            eps: config.layer_norm_eps as f32,
            act: config.hidden_act,
            vocab: config.vocab_size,
            types: config.type_vocab_size,
            positions: config.max_position_embeddings,
        })
    }

    /// Bytes of the weights held.
    pub(super) fn weights_bytes(&self) -> u64 {
        let norms = |n: &Norm| n.gamma.len() + n.beta.len();
        let dense = |d: &Dense| d.wt.len() + d.b.len();
        let layers: usize = self
            .layers
            .iter()
            .map(|l| dense(&l.qkv) + dense(&l.out) + dense(&l.up) + dense(&l.down) + norms(&l.norm1) + norms(&l.norm2))
            .sum();
        ((self.word.len() + self.position.len() + self.token_type.len() + norms(&self.norm) + layers) * 4) as u64
    }

    /// Hidden states of every token of every text, packed: text after text, `hidden` floats
    /// per token. `texts` holds each text's token ids and token type ids.
    pub(super) fn forward(&self, texts: &[(&[u32], &[u32])]) -> Result<Vec<f32>> {
        let h = self.hidden;
        let mut spans = Vec::with_capacity(texts.len());
        let mut x = Vec::new();
        for (ids, types) in texts {
            if ids.len() != types.len() {
                return Err(Error::Inference(format!("{} token ids but {} type ids", ids.len(), types.len())));
            }
            if ids.len() > self.positions {
                return Err(Error::Inference(format!(
                    "a text of {} tokens does not fit {} positions",
                    ids.len(),
                    self.positions
                )));
            }
            spans.push((x.len() / h, ids.len()));
            for (p, (&id, &t)) in ids.iter().zip(types.iter()).enumerate() {
                let (id, t) = (id as usize, t as usize);
                if id >= self.vocab || t >= self.types {
                    return Err(Error::Inference(format!("token {id} (type {t}) is outside the vocabulary")));
                }
                let (w, ty, pos) =
                    (&self.word[id * h..][..h], &self.token_type[t * h..][..h], &self.position[p * h..][..h]);
                x.extend(w.iter().zip(ty).zip(pos).map(|((w, t), p)| (w + t) + p));
            }
        }
        let rows = x.len() / h;
        layer_norm(&mut x, &self.norm, h, self.eps);
        let mut ctx = vec![0f32; rows * h];
        let mut qkv = vec![0f32; rows * 3 * h];
        let mut x1 = vec![0f32; rows * h];
        let mut up = vec![0f32; rows * self.layers.first().map_or(0, |l| l.up.n)];
        for l in &self.layers {
            l.qkv.apply(&x, None, &mut qkv);
            attention(&qkv, &spans, h, self.heads, &mut ctx);
            l.out.apply(&ctx, Some(&x), &mut x1);
            layer_norm(&mut x1, &l.norm1, h, self.eps);
            l.up.apply(&x1, None, &mut up);
            activate(&mut up, self.act);
            l.down.apply(&up, Some(&x1), &mut x);
            layer_norm(&mut x, &l.norm2, h, self.eps);
        }
        Ok(x)
    }
}

impl Dense {
    /// `out = x·Wᵀ + b (+ residual)` for every row of `x`, in one GEMM call.
    fn apply(&self, x: &[f32], residual: Option<&[f32]>, out: &mut [f32]) {
        let (n, k) = (self.n, self.k);
        let m = x.len() / k;
        debug_assert_eq!(out.len(), m * n);
        if m == 0 {
            return;
        }
        for (r, row) in out.chunks_exact_mut(n).enumerate() {
            match residual {
                Some(res) => {
                    for ((o, b), x) in row.iter_mut().zip(&self.b).zip(&res[r * n..][..n]) {
                        *o = x + b;
                    }
                }
                None => row.copy_from_slice(&self.b),
            }
        }
        if m <= SMALL_BATCH {
            self.apply_small(x, m, out);
            return;
        }
        let threads = rayon::current_num_threads();
        let parallelism = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
        // SAFETY: the pointers cover `out` (m×n, row stride n), `x` (m×k, row stride k) and
        // `wt` (k×n, row stride n), all of the lengths checked above; nothing aliases `out`.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                out.as_mut_ptr(),
                1,
                n as isize,
                true,
                x.as_ptr(),
                1,
                k as isize,
                self.wt.as_ptr(),
                1,
                n as isize,
                1.0f32,
                1.0f32,
                false,
                false,
                false,
                parallelism,
            );
        }
    }

    /// `out += x·Wᵀ` for a few rows: GEMM libraries repack all of `W` on every call, which
    /// costs as much as the product when `x` has a handful of rows. Here each thread owns a
    /// block of output columns and streams its columns of `wt` once per block of rows.
    fn apply_small(&self, x: &[f32], m: usize, out: &mut [f32]) {
        let (n, k) = (self.n, self.k);
        let shared = SharedOut(out.as_mut_ptr());
        let shared = &shared;
        let avx2 = has_avx2_fma();
        let per_task = n.div_ceil(rayon::current_num_threads() * TASKS_PER_THREAD).div_ceil(TILE) * TILE;
        (0..n.div_ceil(per_task)).into_par_iter().for_each(|b| {
            let end = ((b + 1) * per_task).min(n);
            let mut c = b * per_task;
            while c < end {
                let width = (end - c).min(TILE);
                // Rows in equal blocks (14 = 5 + 5 + 4, not 6 + 6 + 2): a block of few rows has
                // too few accumulators to hide the FMA latency.
                let per_block = m.div_ceil(m.div_ceil(TILE_ROWS));
                let mut r = 0;
                while r < m {
                    let rows = (m - r).min(per_block);
                    // SAFETY: this task alone writes columns c..c+width of `out`, rows r..r+rows.
                    let dst = |row: usize| unsafe { shared.0.add((r + row) * n + c) };
                    let xs = |row: usize| &x[(r + row) * k..][..k];
                    if width == TILE && avx2 {
                        // SAFETY: the CPU has AVX2 and FMA (checked above); `wt[c..]` holds
                        // `k` rows of at least TILE columns; `dst` rows hold TILE floats.
                        #[cfg(target_arch = "x86_64")]
                        unsafe {
                            let w = self.wt.as_ptr().add(c);
                            match rows {
                                6 => tile_avx2::<6>(std::array::from_fn(xs), w, n, std::array::from_fn(dst)),
                                5 => tile_avx2::<5>(std::array::from_fn(xs), w, n, std::array::from_fn(dst)),
                                4 => tile_avx2::<4>(std::array::from_fn(xs), w, n, std::array::from_fn(dst)),
                                3 => tile_avx2::<3>(std::array::from_fn(xs), w, n, std::array::from_fn(dst)),
                                2 => tile_avx2::<2>(std::array::from_fn(xs), w, n, std::array::from_fn(dst)),
                                _ => tile_avx2::<1>(std::array::from_fn(xs), w, n, std::array::from_fn(dst)),
                            }
                        }
                    } else {
                        for row in 0..rows {
                            // SAFETY: as above, `width` floats of this task's columns.
                            let d = unsafe { std::slice::from_raw_parts_mut(dst(row), width) };
                            for (kk, a) in xs(row).iter().enumerate() {
                                for (o, w) in d.iter_mut().zip(&self.wt[kk * n + c..][..width]) {
                                    *o += a * w;
                                }
                            }
                        }
                    }
                    r += rows;
                }
                c += width;
            }
        });
    }
}

/// Whether the CPU has what [`tile_avx2`] needs.
fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Column blocks per compute thread in [`Dense::apply_small`]: more than one, so that a thread
/// that wakes late leaves its share to the others instead of holding up the product.
const TASKS_PER_THREAD: usize = 4;
/// Products with at most this many rows take [`Dense::apply_small`].
const SMALL_BATCH: usize = 16;
/// Output columns per register tile (two AVX2 registers) and rows per tile: 12 accumulators.
const TILE: usize = 16;
const TILE_ROWS: usize = 6;

/// `R` rows × [`TILE`] columns of `out += x·wt`, the accumulators in registers.
///
/// # Safety
/// The CPU must have AVX2 and FMA; `wt` must point at `x[0].len()` rows of stride `n` with
/// [`TILE`] readable floats each; each `dst` must point at [`TILE`] writable floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2<const R: usize>(x: [&[f32]; R], wt: *const f32, n: usize, dst: [*mut f32; R]) {
    use std::arch::x86_64::*;
    let k = x[0].len();
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    #[allow(clippy::needless_range_loop)] // `kk` indexes the weights' rows and every x row
    for kk in 0..k {
        // SAFETY: per the function's contract.
        let (w0, w1) = unsafe { (_mm256_loadu_ps(wt.add(kk * n)), _mm256_loadu_ps(wt.add(kk * n + 8))) };
        for r in 0..R {
            let a = _mm256_set1_ps(x[r][kk]);
            acc[r][0] = _mm256_fmadd_ps(a, w0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(a, w1, acc[r][1]);
        }
    }
    for r in 0..R {
        // SAFETY: per the function's contract.
        unsafe {
            _mm256_storeu_ps(dst[r], _mm256_add_ps(_mm256_loadu_ps(dst[r]), acc[r][0]));
            _mm256_storeu_ps(dst[r].add(8), _mm256_add_ps(_mm256_loadu_ps(dst[r].add(8)), acc[r][1]));
        }
    }
}

/// Rows per parallel task for the element-wise passes.
const ROWS_PER_TASK: usize = 16;
/// Element-wise passes over fewer floats than this stay on the calling thread: handing a
/// few microseconds of work to another thread costs more than it saves.
const PARALLEL_FROM: usize = 1 << 16;

fn layer_norm(x: &mut [f32], norm: &Norm, h: usize, eps: f32) {
    let rows = |rows: &mut [f32]| {
        for row in rows.chunks_exact_mut(h) {
            let mean = sum8(row) / h as f32;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / h as f32;
            let inv = 1.0 / (var + eps).sqrt();
            for ((v, g), b) in row.iter_mut().zip(&norm.gamma).zip(&norm.beta) {
                *v = (*v - mean) * inv * g + b;
            }
        }
    };
    if x.len() < PARALLEL_FROM {
        rows(x);
    } else {
        x.par_chunks_mut(h * ROWS_PER_TASK).for_each(rows);
    }
}

fn activate(x: &mut [f32], act: HiddenAct) {
    let apply = |c: &mut [f32]| match act {
        HiddenAct::Gelu => {
            for v in c.iter_mut() {
                *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
            }
        }
        HiddenAct::GeluApproximate => {
            for v in c.iter_mut() {
                let y = 0.797_884_6 * (*v + 0.044715 * *v * *v * *v);
                *v = 0.5 * *v * (1.0 + tanh(y));
            }
        }
        HiddenAct::Relu => {
            for v in c.iter_mut() {
                *v = v.max(0.0);
            }
        }
    };
    if x.len() < PARALLEL_FROM {
        apply(x);
    } else {
        x.par_chunks_mut(4096).for_each(apply);
    }
}

/// Self-attention of each text over its own rows: `qkv` holds `[q | k | v]` per row, `ctx`
/// receives each head's output in its slice of the row. Each (text, head) pair is a task of
/// two small GEMMs (`Q·Kᵀ`, then the softmaxed scores times `V`) reading `qkv` in place.
fn attention(qkv: &[f32], spans: &[(usize, usize)], h: usize, heads: usize, ctx: &mut [f32]) {
    let d = h / heads;
    let scale = 1.0 / (d as f32).sqrt();
    let stride = 3 * h as isize;
    let out = SharedOut(ctx.as_mut_ptr());
    let out = &out;
    let tasks: Vec<(usize, usize)> = (0..spans.len()).flat_map(|s| (0..heads).map(move |hd| (s, hd))).collect();
    tasks.par_iter().for_each(|&(s, hd)| {
        let (start, len) = spans[s];
        if len == 0 {
            return;
        }
        let base = start * 3 * h + hd * d;
        let mut p = vec![0f32; len * len];
        // SAFETY: the reads stay inside this text's rows of `qkv` (rows start..start+len, the
        // head's d columns of each part); the write of P·V goes to rows start..start+len,
        // columns hd*d..(hd+1)*d of `ctx`, which no other task writes, and `ctx` outlives the
        // scope of `for_each`.
        unsafe {
            let q = qkv.as_ptr().add(base);
            let k = q.add(h);
            let v = q.add(2 * h);
            gemm::gemm(
                len,
                len,
                d,
                p.as_mut_ptr(),
                1,
                len as isize,
                false,
                q,
                1,
                stride,
                k,
                stride,
                1,
                0.0,
                scale,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
            for row in p.chunks_exact_mut(len) {
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                for x in row.iter_mut() {
                    *x = exp(*x - max);
                }
                let inv = 1.0 / sum8(row);
                for x in row.iter_mut() {
                    *x *= inv;
                }
            }
            let dst = out.0.add(start * h + hd * d);
            gemm::gemm(
                len,
                d,
                len,
                dst,
                1,
                h as isize,
                false,
                p.as_ptr(),
                1,
                len as isize,
                v,
                1,
                stride,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    });
}

/// An output buffer's pointer, shared by parallel tasks that each write their own block
/// (see [`attention`] and [`Dense::apply_small`]).
struct SharedOut(*mut f32);
// SAFETY: the tasks that share it write disjoint blocks.
unsafe impl Sync for SharedOut {}

/// Sum in eight lanes (vectorised).
fn sum8(a: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let c = a.chunks_exact(8);
    let tail: f32 = c.remainder().iter().sum();
    for x in c {
        for i in 0..8 {
            acc[i] += x[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `e^x` from Cephes' `expf` (relative error ~1e-7) in plain arithmetic the compiler
/// vectorises; inputs below -87.3 give ~1e-38 instead of a denormal.
#[inline(always)]
fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.3, 88.3);
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let z = r * r;
    let p =
        ((((1.987_569_1e-4 * r + 1.398_2e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 0.166_666_65) * r + 0.5;
    let y = p * z + r + 1.0;
    y * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// `erf(x)` (Abramowitz and Stegun 7.1.26, absolute error below 1.5e-7).
#[inline(always)]
fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = ((((1.061_405_4 * t - 1.453_152_1) * t + 1.421_413_8) * t - 0.284_496_74) * t + 0.254_829_6) * t;
    let y = 1.0 - poly * exp(-a * a);
    y.copysign(x)
}

#[inline(always)]
fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * x) + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_without_tokens_are_empty_not_a_panic() {
        let d = Dense::new(vec![1.0; 6], vec![0.5; 2], 2, 3);
        d.apply(&[], None, &mut []);
        let mut out = vec![0f32; 2];
        d.apply(&[1.0, 2.0, 3.0], None, &mut out);
        assert_eq!(out, vec![6.5, 6.5]);
    }

    #[test]
    fn exp_and_erf_match_the_standard_library() {
        for i in -2000..=2000 {
            let x = i as f32 / 50.0;
            let (got, want) = (exp(x), x.exp());
            assert!(((got - want) / want).abs() < 3e-7, "exp({x}) = {got}, want {want}");
            let want = libm_erf(x as f64) as f32;
            assert!((erf(x) - want).abs() < 3e-7, "erf({x}) = {}, want {want}", erf(x));
        }
        assert!(exp(-1000.0) < 1e-37 && exp(-1000.0) >= 0.0);
    }

    /// erf by its Taylor series (|x| < 3) and the continued fraction of erfc beyond, in f64.
    fn libm_erf(x: f64) -> f64 {
        if x.abs() < 3.0 {
            let (mut term, mut sum, mut n) = (x, x, 0.0);
            while term.abs() > 1e-17 {
                n += 1.0;
                term *= -x * x / n;
                sum += term / (2.0 * n + 1.0);
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            let a = x.abs();
            let mut f = 0.0;
            for k in (1..60).rev() {
                f = k as f64 / 2.0 / (a + f);
            }
            let erfc = (-a * a).exp() / std::f64::consts::PI.sqrt() / (a + f);
            (1.0 - erfc).copysign(x)
        }
    }
}
