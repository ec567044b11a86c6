//! aisle's own quantized dot products, following ggml exactly: Q4_1 weights with 8-bit
//! activations (Q8_1, block sum kept for the Q4_1 offset) and Q8_0 with Q8_0, for one or four
//! activation rows at once (each row's sum formed as alone), with AVX2 `maddubs`/`madd` or one
//! AVX-512 VNNI `vpdpbusd` (equal integer sums), chosen at run time. The blocks are read
//! through `#[repr(C)]` mirrors of ggml's, checked against candle's at model load
//! ([`check_layouts`]). Used by [`super::linear`].

use std::sync::OnceLock;

use candle_core::Tensor;
use candle_core::quantized::{GgmlDType, QTensor};

use crate::error::{Error, Result};

/// Whether the CPU has what the x86 kernels need (avx2, fma, f16c).
pub(super) fn is_x86_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Check, once per process, that candle stores Q4_1 and Q8_0 blocks as ggml does: aisle's
/// kernels read those bytes through their own `#[repr(C)]` mirrors, so a candle release that
/// reordered a block's fields (or changed its size) would silently corrupt every product.
/// Values quantized by candle are decoded through the mirrors and compared with candle's own
/// dequantization.
pub fn check_layouts() -> Result<()> {
    static CHECKED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    CHECKED
        .get_or_init(|| {
            let decode_q4_1 = |b: &BlockQ41| -> Vec<f32> {
                let (d, m) = (f16_to_f32(b.d), f16_to_f32(b.m));
                let q = |i: usize| if i < 16 { b.qs[i] & 0x0F } else { b.qs[i - 16] >> 4 };
                (0..32).map(|i| d * q(i) as f32 + m).collect()
            };
            let decode_q8_0 = |b: &BlockQ80| -> Vec<f32> {
                let d = f16_to_f32(b.d);
                b.qs.iter().map(|&q| d * q as f32).collect()
            };
            let check = |dtype: GgmlDType, decode: &dyn Fn(&[u8]) -> Result<Vec<f32>>| -> Result<()> {
                let x: Vec<f32> = (0..64).map(|i| ((i * 37 % 64) as f32 - 20.0) * 0.11).collect();
                let t = QTensor::quantize(&Tensor::from_vec(x, (2, 32), &candle_core::Device::Cpu)?, dtype)?;
                let theirs = t.dequantize(&candle_core::Device::Cpu)?.flatten_all()?.to_vec1::<f32>()?;
                let ours = decode(&t.data()?)?;
                if ours.len() != theirs.len() || ours.iter().zip(&theirs).any(|(a, b)| (a - b).abs() > 1e-5) {
                    return Err(Error::Model(format!("{dtype:?}: block layout is not ggml's")));
                }
                Ok(())
            };
            check(GgmlDType::Q4_1, &|bytes| {
                Ok(cast_blocks::<BlockQ41>(bytes, 2, 32, 32, "Q4_1")?.iter().flat_map(decode_q4_1).collect())
            })
            .and_then(|()| {
                check(GgmlDType::Q8_0, &|bytes| {
                    Ok(cast_blocks::<BlockQ80>(bytes, 2, 32, 32, "Q8_0")?.iter().flat_map(decode_q8_0).collect())
                })
            })
            .map_err(|e| {
                format!("this build's candle stores quantized blocks unlike ggml ({e}); aisle's kernels cannot run")
            })
        })
        .clone()
        .map_err(Error::Model)
}

/// View quantized bytes as `rows * cols / per_block` blocks of `B`, checking size and alignment.
pub(super) fn cast_blocks<'a, B>(
    data: &'a [u8],
    rows: usize,
    cols: usize,
    per_block: usize,
    what: &str,
) -> Result<&'a [B]> {
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

/// ggml's Q8_0 block (weights and activations alike): 32 values `d * q`.
#[derive(Clone, Copy)]
#[repr(C)]
pub(super) struct BlockQ80 {
    d: u16,
    qs: [i8; 32],
}

/// A weight block with aisle's kernel: how activations are quantized for it, and the dot
/// product of one weight row with `N` activation rows (each as with one row). x86 with avx2.
pub(super) trait RowKernel: Sized + Sync {
    /// The activation block.
    type Act: Sync;
    /// Quantize one activation row.
    fn quantize(x: &[f32]) -> Vec<Self::Act>;
    /// One weight row with `N` activation rows.
    fn dot<const N: usize>(w: &[Self], a: [&[Self::Act]; N]) -> [f32; N];
}

impl RowKernel for BlockQ41 {
    type Act = BlockQ81;
    fn quantize(x: &[f32]) -> Vec<BlockQ81> {
        quantize_q81(x)
    }
    fn dot<const N: usize>(w: &[Self], a: [&[BlockQ81]; N]) -> [f32; N] {
        dot_n(w, a)
    }
}

impl RowKernel for BlockQ80 {
    type Act = BlockQ80;
    fn quantize(x: &[f32]) -> Vec<BlockQ80> {
        quantize_q80(x)
    }
    fn dot<const N: usize>(w: &[Self], a: [&[BlockQ80]; N]) -> [f32; N] {
        q8_dot_n(w, a)
    }
}

/// ggml's `quantize_row_q8_0`: per 32 values, `d = max|x| / 127`, `q = round(x / d)`.
fn quantize_q80(x: &[f32]) -> Vec<BlockQ80> {
    x.chunks(32)
        .map(|c| {
            let (d, qs) = quantize_block(c);
            BlockQ80 { d: half::f16::from_f32(d).to_bits(), qs }
        })
        .collect()
}

/// 32 values as 8-bit integers: `d = max|x| / 127`, `q = round(x / d)`, as ggml quantizes.
fn quantize_block(c: &[f32]) -> (f32, [i8; 32]) {
    let amax = c.iter().fold(0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let id = if d > 0.0 { 1.0 / d } else { 0.0 };
    let mut qs = [0i8; 32];
    for (q, v) in qs.iter_mut().zip(c) {
        *q = (v * id).round() as i8;
    }
    (d, qs)
}

/// One Q8_0 weight row with `N` activation rows (x86 with avx2 only).
fn q8_dot_n<const N: usize>(w: &[BlockQ80], a: [&[BlockQ80]; N]) -> [f32; N] {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: reached only after is_x86_avx2(); VNNI only where the CPU has it.
        unsafe { if has_vnni() { q8_dot_n_vnni(w, a) } else { q8_dot_n_avx2(w, a) } }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        a.map(|a| q8_dot_scalar(w, a))
    }
}

/// The reference: ggml's `ggml_vec_dot_q8_0_q8_0` without SIMD.
#[allow(dead_code)]
fn q8_dot_scalar(w: &[BlockQ80], a: &[BlockQ80]) -> f32 {
    w.iter()
        .zip(a)
        .map(|(wb, ab)| {
            let s: i32 = wb.qs.iter().zip(&ab.qs).map(|(&x, &y)| x as i32 * y as i32).sum();
            s as f32 * f16_to_f32(wb.d) * f16_to_f32(ab.d)
        })
        .sum()
}

/// ggml's Q4_1 block: 32 weights `d * q + m`, q in 0..16; low nibbles are weights 0..16.
#[derive(Clone, Copy)]
#[repr(C)]
pub(super) struct BlockQ41 {
    d: u16,
    m: u16,
    qs: [u8; 16],
}

/// A quantized activation block: 32 values `d * q`, with `s = d * sum(q)`.
#[derive(Clone, Copy)]
#[repr(C, align(32))]
pub(super) struct BlockQ81 {
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
            let (d, qs) = quantize_block(c);
            let sum: i32 = qs.iter().map(|&q| q as i32).sum();
            BlockQ81 { qs, d, s: d * sum as f32 }
        })
        .collect()
}

#[cfg(test)]
fn dot(w: &[BlockQ41], a: &[BlockQ81]) -> f32 {
    dot_n(w, [a])[0]
}

/// One weight row with `N` activation rows; each result is bit for bit what the row gives
/// alone, on every kernel (the integer sums are exact, the float steps the same).
fn dot_n<const N: usize>(w: &[BlockQ41], a: [&[BlockQ81]; N]) -> [f32; N] {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: callers reach Q4_1 kernels only after is_x86_avx2() found avx2, fma and f16c;
        // the VNNI kernel runs only where the CPU has avx512vnni and avx512vl.
        unsafe { if has_vnni() { dot_n_vnni(w, a) } else { dot_n_avx2(w, a) } }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        a.map(|a| dot_scalar(w, a))
    }
}

/// Whether the CPU multiplies bytes with AVX-512 VNNI (`vpdpbusd` on 256-bit registers).
fn has_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static VNNI: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *VNNI.get_or_init(|| is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vl"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
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

/// ggml's AVX2 Q4_1 x Q8_1 dot product for `N` activation rows at once: each weight block is
/// unpacked once, and every row's accumulator sees the same operations in the same order as
/// with one row. `$sum` turns 32 nibbles and 32 signed bytes into 8 sums of 4 products: two
/// instructions on AVX2 (no overflow: 15 * 127 * 2 fits in 16 bits), one with VNNI, equal sums.
macro_rules! q4_1_dot_kernel {
    ($name:ident, $features:literal, $sum:expr) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        unsafe fn $name<const N: usize>(w: &[BlockQ41], a: [&[BlockQ81]; N]) -> [f32; N] {
            use std::arch::x86_64::*;
            let mask = _mm256_set1_epi8(0x0F);
            let mut acc = [_mm256_setzero_ps(); N];
            let mut offsets = [0f32; N];
            for (i, wb) in w.iter().enumerate() {
                let dm = _mm_cvtph_ps(_mm_cvtsi32_si128((wb.d as u32 | ((wb.m as u32) << 16)) as i32));
                let dw = _mm_cvtss_f32(dm);
                let mw = _mm_cvtss_f32(_mm_shuffle_ps(dm, dm, 1));
                // SAFETY: `qs` holds 16 bytes (unaligned load).
                let packed = unsafe { _mm_loadu_si128(wb.qs.as_ptr() as *const __m128i) };
                let nibbles = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), mask);
                for r in 0..N {
                    let ab = &a[r][i];
                    offsets[r] += mw * ab.s;
                    // SAFETY: `ab.qs` is 32 bytes, 32-byte aligned.
                    let q8 = unsafe { _mm256_load_si256(ab.qs.as_ptr() as *const __m256i) };
                    let sums = $sum(nibbles, q8);
                    acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(dw * ab.d), _mm256_cvtepi32_ps(sums), acc[r]);
                }
            }
            std::array::from_fn(|r| {
                let hi = _mm256_extractf128_ps(acc[r], 1);
                let lo = _mm256_castps256_ps128(acc[r]);
                let s = _mm_add_ps(hi, lo);
                let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
                let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
                _mm_cvtss_f32(s) + offsets[r]
            })
        }
    };
}

/// ggml's AVX2 Q8_0 x Q8_0 dot product for `N` activation rows at once: |w| and its signs
/// moved onto the activations (`maddubs` multiplies unsigned by signed bytes), as ggml does.
macro_rules! q8_0_dot_kernel {
    ($name:ident, $features:literal, $sum:expr) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        unsafe fn $name<const N: usize>(w: &[BlockQ80], a: [&[BlockQ80]; N]) -> [f32; N] {
            use std::arch::x86_64::*;
            let mut acc = [_mm256_setzero_ps(); N];
            for (i, wb) in w.iter().enumerate() {
                let dw = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(wb.d as i32)));
                // SAFETY: `qs` holds 32 bytes (unaligned loads).
                let wq = unsafe { _mm256_loadu_si256(wb.qs.as_ptr() as *const __m256i) };
                let magnitude = _mm256_sign_epi8(wq, wq);
                for r in 0..N {
                    let ab = &a[r][i];
                    let da = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(ab.d as i32)));
                    let aq = unsafe { _mm256_loadu_si256(ab.qs.as_ptr() as *const __m256i) };
                    let sums = $sum(magnitude, _mm256_sign_epi8(aq, wq));
                    acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(dw * da), _mm256_cvtepi32_ps(sums), acc[r]);
                }
            }
            std::array::from_fn(|r| {
                let hi = _mm256_extractf128_ps(acc[r], 1);
                let lo = _mm256_castps256_ps128(acc[r]);
                let s = _mm_add_ps(hi, lo);
                let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
                let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
                _mm_cvtss_f32(s)
            })
        }
    };
}

q8_0_dot_kernel!(q8_dot_n_avx2, "avx2,fma,f16c", |u, s| _mm256_madd_epi16(
    _mm256_maddubs_epi16(u, s),
    _mm256_set1_epi16(1)
));
q8_0_dot_kernel!(q8_dot_n_vnni, "avx2,fma,f16c,avx512vnni,avx512vl", |u, s| _mm256_dpbusd_epi32(
    _mm256_setzero_si256(),
    u,
    s
));

q4_1_dot_kernel!(dot_n_avx2, "avx2,fma,f16c", |u, s| _mm256_madd_epi16(
    _mm256_maddubs_epi16(u, s),
    _mm256_set1_epi16(1)
));
q4_1_dot_kernel!(dot_n_vnni, "avx2,fma,f16c,avx512vnni,avx512vl", |u, s| _mm256_dpbusd_epi32(
    _mm256_setzero_si256(),
    u,
    s
));

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn four_rows_at_once_equal_each_row_alone_bit_for_bit() {
        if !is_x86_avx2() {
            return;
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let w = random_blocks(48, &mut rng);
        let acts: Vec<Vec<BlockQ81>> = (0..4)
            .map(|_| quantize_q81(&(0..48 * 32).map(|_| rng.random_range(-4.0..4.0)).collect::<Vec<f32>>()))
            .collect();
        let eight = dot_n::<8>(&w, std::array::from_fn(|r| acts[r % 4].as_slice()));
        assert!((0..8).all(|r| eight[r].to_bits() == dot(&w, &acts[r % 4]).to_bits()), "eight rows at once");
        let four = dot_n(&w, [acts[0].as_slice(), &acts[1], &acts[2], &acts[3]]);
        for (r, act) in acts.iter().enumerate() {
            assert_eq!(four[r].to_bits(), dot(&w, act).to_bits(), "row {r}");
            // SAFETY: avx2, fma and f16c were found above.
            let plain = unsafe { dot_n_avx2(&w, [act.as_slice()]) }[0];
            assert_eq!(plain.to_bits(), dot(&w, act).to_bits(), "row {r}: VNNI and AVX2 differ");
        }
    }

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
    fn q8_0_kernels_equal_the_reference_and_each_other() {
        if !is_x86_avx2() {
            return;
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let row =
            |rng: &mut rand::rngs::StdRng| (0..64 * 32).map(|_| rng.random_range(-3.0..3.0)).collect::<Vec<f32>>();
        let w = quantize_q80(&row(&mut rng));
        let acts: Vec<Vec<BlockQ80>> = (0..4).map(|_| quantize_q80(&row(&mut rng))).collect();
        let eight = q8_dot_n::<8>(&w, std::array::from_fn(|r| acts[r % 4].as_slice()));
        assert!((0..8).all(|r| eight[r].to_bits() == q8_dot_n(&w, [acts[r % 4].as_slice()])[0].to_bits()));
        let four = q8_dot_n(&w, [&acts[0], &acts[1], &acts[2], &acts[3]]);
        for (r, act) in acts.iter().enumerate() {
            let one = q8_dot_n(&w, [act.as_slice()])[0];
            assert_eq!(four[r].to_bits(), one.to_bits(), "row {r}");
            // SAFETY: avx2, fma and f16c were found above.
            let plain = unsafe { q8_dot_n_avx2(&w, [act.as_slice()]) }[0];
            assert_eq!(plain.to_bits(), one.to_bits(), "row {r}: VNNI and AVX2 differ");
            let reference = q8_dot_scalar(&w, act);
            assert!((one - reference).abs() <= 1e-3 * reference.abs().max(1.0), "{one} vs {reference}");
        }
    }

    #[test]
    fn candles_block_layouts_are_ggmls() {
        check_layouts().unwrap();
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
