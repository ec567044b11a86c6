//! Linear layers over quantized weights, choosing the kernel by weight type and input rows.
//!
//! - One input row (token generation) reads the compact quantized blocks in place: a weight
//!   matrix is streamed once per token, so memory traffic decides the speed. Rows are dotted on
//!   candle's worker pool with candle's vectorized `vec_dot` (Q4_0, Q8_0, K-quants) or, for
//!   Q4_1 (SmolLM2's format, scalar in candle 0.11), with aisle's AVX2 kernel that follows
//!   ggml exactly: activations quantized per 32 values to 8 bits (Q8_1, block sum kept for the
//!   Q4_1 offset), `sum(d_w * d_a * dot(q_w, q_a) + m_w * s_a)` with `maddubs`/`madd`.
//! - Many rows (prompt processing) use candle's quantized matmul, which for Q4_K/Q6_K/Q8_0
//!   repacks weights into tiles reused across rows; Q4_1 prompts multiply by the dequantized
//!   f32 matrix with a blocked GEMM, kept in memory when the model fits the budget.

use std::sync::{Arc, OnceLock};

use candle_core::quantized::k_quants::{BlockQ4_0, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8_0};
use candle_core::quantized::{GgmlDType, GgmlType, QMatMul, QTensor};
use candle_core::{Module, Tensor};

use crate::error::{Error, Result};

/// Q4_1 inputs with at least this many rows use the dequantized matrix.
const DENSE_FROM_ROWS: usize = 16;
/// Output rows per work item of a matrix-vector product.
const ROWS_PER_ITEM: usize = 16;

/// A weight matrix `(out, in)`.
#[derive(Clone)]
pub struct Linear {
    qtensor: Arc<QTensor>,
    matmul: QMatMul,
    rows: usize,
    cols: usize,
    keep_dense: bool,
    dense: Arc<OnceLock<Tensor>>,
}

impl Linear {
    /// Wrap a weight tensor. `keep_dense` allows keeping a dequantized Q4_1 copy for prompts.
    pub fn new(t: QTensor, keep_dense: bool) -> Result<Self> {
        let (rows, cols) = t.shape().dims2()?;
        let qtensor = Arc::new(t);
        let matmul = QMatMul::from_arc(qtensor.clone())?;
        Ok(Self { qtensor, matmul, rows, cols, keep_dense, dense: Arc::new(OnceLock::new()) })
    }

    /// `x (..., in) -> (..., out)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims();
        let k = *dims.last().ok_or_else(|| Error::Internal("matmul of a scalar".into()))?;
        if k != self.cols {
            return Err(Error::Internal(format!("matmul: input has {k} columns, weights {}", self.cols)));
        }
        let m: usize = dims[..dims.len() - 1].iter().product();
        let dtype = self.qtensor.dtype();
        let cpu = x.device().is_cpu() && self.qtensor.device().is_cpu();
        if cpu
            && m == 1
            && let Some(out) = self.gemv(x)?
        {
            return Ok(out);
        }
        if cpu && dtype == GgmlDType::Q4_1 && is_x86_avx2() {
            if m >= DENSE_FROM_ROWS {
                let w = self.dense()?;
                return Ok(x.reshape((m, k))?.matmul(&w.t()?)?.reshape(out_dims(dims, self.rows))?);
            }
            let xs = x.flatten_all()?.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?;
            let out = q4_1_rows(&self.qtensor.data()?, self.rows, self.cols, &xs)?;
            return Ok(Tensor::from_vec(out, out_dims(dims, self.rows), x.device())?);
        }
        Ok(self.matmul.forward(x)?)
    }

    /// One input row against the compact blocks; `None` for types without a kernel here.
    fn gemv(&self, x: &Tensor) -> Result<Option<Tensor>> {
        let xs = x.flatten_all()?.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?;
        let data = self.qtensor.data()?;
        let (r, c) = (self.rows, self.cols);
        let out = match self.qtensor.dtype() {
            GgmlDType::Q4_1 if is_x86_avx2() => q4_1_rows(&data, r, c, &xs)?,
            GgmlDType::Q4_0 => gemv_blocks::<BlockQ4_0>(&data, r, c, &xs)?,
            GgmlDType::Q8_0 => gemv_blocks::<BlockQ8_0>(&data, r, c, &xs)?,
            GgmlDType::Q4K => gemv_blocks::<BlockQ4K>(&data, r, c, &xs)?,
            GgmlDType::Q5K => gemv_blocks::<BlockQ5K>(&data, r, c, &xs)?,
            GgmlDType::Q6K => gemv_blocks::<BlockQ6K>(&data, r, c, &xs)?,
            _ => return Ok(None),
        };
        Ok(Some(Tensor::from_vec(out, out_dims(x.dims(), self.rows), x.device())?))
    }

    fn dense(&self) -> Result<Tensor> {
        if let Some(t) = self.dense.get() {
            return Ok(t.clone());
        }
        let t = self.qtensor.dequantize(&candle_core::Device::Cpu)?;
        if self.keep_dense {
            let _ = self.dense.set(t.clone());
        }
        Ok(t)
    }
}

fn out_dims(dims: &[usize], rows: usize) -> Vec<usize> {
    let mut d = dims.to_vec();
    *d.last_mut().expect("non-empty") = rows;
    d
}

fn is_x86_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// View quantized bytes as `rows * cols / per_block` blocks of `B`, checking size and alignment.
fn cast_blocks<'a, B>(data: &'a [u8], rows: usize, cols: usize, per_block: usize, what: &str) -> Result<&'a [B]> {
    let n = rows * cols / per_block;
    if !cols.is_multiple_of(per_block)
        || data.len() != n * std::mem::size_of::<B>()
        || !(data.as_ptr() as usize).is_multiple_of(std::mem::align_of::<B>())
    {
        return Err(Error::Model(format!("{what} matrix {rows}x{cols} has an unexpected layout")));
    }
    // SAFETY: candle stores CPU quantized tensors as a Vec of ggml's #[repr(C)] blocks, which `B`
    // mirrors; size and alignment were checked above, and the bytes live as long as `data`.
    Ok(unsafe { std::slice::from_raw_parts(data.as_ptr() as *const B, n) })
}

fn blocks<T: GgmlType>(data: &[u8], rows: usize, cols: usize) -> Result<&[T]> {
    cast_blocks(data, rows, cols, T::BLCK_SIZE, &format!("{:?}", T::DTYPE))
}

/// Run `f(row) -> value` for every output row on candle's worker pool, four rows per call
/// where the kernel shares one activation load.
fn for_rows(rows: usize, f: impl Fn(usize, &mut [f32]) + Sync) -> Vec<f32> {
    let mut out = vec![0f32; rows];
    let ptr = out.as_mut_ptr() as usize;
    candle_core::utils::barrier_pool().execute_chunked(rows.div_ceil(ROWS_PER_ITEM), |items| {
        for item in items {
            let first = item * ROWS_PER_ITEM;
            let last = (first + ROWS_PER_ITEM).min(rows);
            // SAFETY: every item owns the disjoint range first..last of `out`, which outlives
            // the pool call.
            let dst = unsafe { std::slice::from_raw_parts_mut((ptr as *mut f32).add(first), last - first) };
            f(first, dst);
        }
    });
    out
}

fn gemv_blocks<T: GgmlType>(data: &[u8], rows: usize, cols: usize, x: &[f32]) -> Result<Vec<f32>> {
    let w = blocks::<T>(data, rows, cols)?;
    let nb = cols / T::BLCK_SIZE;
    let mut act = vec![T::VecDotType::zeros(); cols / T::VecDotType::BLCK_SIZE];
    T::VecDotType::from_float(x, &mut act);
    Ok(for_rows(rows, |first, dst| {
        let row = |i: usize| &w[(first + i) * nb..(first + i + 1) * nb];
        let mut i = 0;
        while i + 4 <= dst.len() {
            let (a, b, c, d) = T::vec_dot_4(cols, row(i), row(i + 1), row(i + 2), row(i + 3), &act);
            dst[i..i + 4].copy_from_slice(&[a, b, c, d]);
            i += 4;
        }
        for (j, y) in dst.iter_mut().enumerate().skip(i) {
            *y = T::vec_dot(cols, row(j), &act);
        }
    }))
}

/// Q4_1 times a few input rows (`x` is rows of `cols` values); output `(x rows, rows)`.
fn q4_1_rows(data: &[u8], rows: usize, cols: usize, x: &[f32]) -> Result<Vec<f32>> {
    let w: &[BlockQ41] = cast_blocks(data, rows, cols, 32, "Q4_1")?;
    let nb = cols / 32;
    let mut out = Vec::with_capacity(x.len() / cols * rows);
    for xr in x.chunks(cols) {
        let act = quantize_q81(xr);
        out.extend(for_rows(rows, |first, dst| {
            for (j, y) in dst.iter_mut().enumerate() {
                *y = dot(&w[(first + j) * nb..(first + j + 1) * nb], &act);
            }
        }));
    }
    Ok(out)
}

/// ggml's Q4_1 block: 32 weights `d * q + m`, q in 0..16; low nibbles are weights 0..16.
#[derive(Clone, Copy)]
#[repr(C)]
struct BlockQ41 {
    d: u16,
    m: u16,
    qs: [u8; 16],
}

/// A quantized activation block: 32 values `d * q`, with `s = d * sum(q)`.
#[derive(Clone, Copy)]
#[repr(C, align(32))]
struct BlockQ81 {
    qs: [i8; 32],
    d: f32,
    s: f32,
}

fn f16_to_f32(bits: u16) -> f32 {
    half::f16::from_bits(bits).to_f32()
}

fn quantize_q81(x: &[f32]) -> Vec<BlockQ81> {
    x.chunks(32)
        .map(|c| {
            let amax = c.iter().fold(0f32, |a, v| a.max(v.abs()));
            let d = amax / 127.0;
            let id = if d > 0.0 { 1.0 / d } else { 0.0 };
            let mut qs = [0i8; 32];
            let mut sum = 0i32;
            for (q, v) in qs.iter_mut().zip(c) {
                *q = (v * id).round() as i8;
                sum += *q as i32;
            }
            BlockQ81 { qs, d, s: d * sum as f32 }
        })
        .collect()
}

fn dot(w: &[BlockQ41], a: &[BlockQ81]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: callers reach Q4_1 kernels only after is_x86_avx2() found avx2, fma and f16c.
        unsafe { dot_avx2(w, a) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        dot_scalar(w, a)
    }
}

/// The reference: ggml's `ggml_vec_dot_q4_1_q8_1` without SIMD.
#[allow(dead_code)]
fn dot_scalar(w: &[BlockQ41], a: &[BlockQ81]) -> f32 {
    let mut sum = 0f32;
    for (wb, ab) in w.iter().zip(a) {
        let mut si = 0i32;
        for j in 0..16 {
            si += (wb.qs[j] & 0x0F) as i32 * ab.qs[j] as i32 + (wb.qs[j] >> 4) as i32 * ab.qs[j + 16] as i32;
        }
        sum += si as f32 * f16_to_f32(wb.d) * ab.d + f16_to_f32(wb.m) * ab.s;
    }
    sum
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_avx2(w: &[BlockQ41], a: &[BlockQ81]) -> f32 {
    use std::arch::x86_64::*;
    let mask = _mm256_set1_epi8(0x0F);
    let ones = _mm256_set1_epi16(1);
    let mut acc = _mm256_setzero_ps();
    let mut offsets = 0f32;
    for (wb, ab) in w.iter().zip(a) {
        let dm = _mm_cvtph_ps(_mm_cvtsi32_si128((wb.d as u32 | ((wb.m as u32) << 16)) as i32));
        let dw = _mm_cvtss_f32(dm);
        let mw = _mm_cvtss_f32(_mm_shuffle_ps(dm, dm, 1));
        offsets += mw * ab.s;
        // SAFETY: `qs` holds 16 bytes (unaligned load); `ab.qs` is 32 bytes, 32-byte aligned.
        let packed = unsafe { _mm_loadu_si128(wb.qs.as_ptr() as *const __m128i) };
        let nibbles = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), mask);
        let q8 = unsafe { _mm256_load_si256(ab.qs.as_ptr() as *const __m256i) };
        let pairs = _mm256_maddubs_epi16(nibbles, q8);
        let sums = _mm256_madd_epi16(pairs, ones);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dw * ab.d), _mm256_cvtepi32_ps(sums), acc);
    }
    let hi = _mm256_extractf128_ps(acc, 1);
    let lo = _mm256_castps256_ps128(acc);
    let s = _mm_add_ps(hi, lo);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s) + offsets
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random_blocks(n: usize, rng: &mut rand::rngs::StdRng) -> Vec<BlockQ41> {
        (0..n)
            .map(|_| BlockQ41 {
                d: half::f16::from_f32(rng.random_range(0.001..0.05)).to_bits(),
                m: half::f16::from_f32(rng.random_range(-0.3..0.0)).to_bits(),
                qs: std::array::from_fn(|_| rng.random()),
            })
            .collect()
    }

    #[test]
    fn avx2_dot_equals_the_scalar_reference() {
        if !is_x86_avx2() {
            return;
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for nb in [1, 2, 18, 48] {
            let w = random_blocks(nb, &mut rng);
            let x: Vec<f32> = (0..nb * 32).map(|_| rng.random_range(-4.0..4.0)).collect();
            let a = quantize_q81(&x);
            let (fast, slow) = (dot(&w, &a), dot_scalar(&w, &a));
            assert!((fast - slow).abs() <= 1e-3 * slow.abs().max(1.0), "{nb} blocks: {fast} vs {slow}");
        }
    }

    #[test]
    fn quantized_activation_blocks_round_trip() {
        let x: Vec<f32> = (0..64).map(|i| (i as f32 - 30.0) * 0.37).collect();
        let q = quantize_q81(&x);
        for (b, chunk) in q.iter().zip(x.chunks(32)) {
            for (qi, xi) in b.qs.iter().zip(chunk) {
                assert!((*qi as f32 * b.d - xi).abs() <= b.d / 2.0 + 1e-6);
            }
            assert!((b.s - b.d * b.qs.iter().map(|&v| v as i32).sum::<i32>() as f32).abs() < 1e-4);
        }
    }
}
