//! Attention of the llama-family transformer: one kernel for all the one-token (decoding)
//! sequences of a pass, over each sequence's own position-major cache, and candle's tensors for
//! prompt chunks (grouped-query attention without repeating K/V, causal masks).

use candle_core::{Device, Tensor};

use crate::error::Result;

/// A one-token sequence in a pass: its row, and its cache (position-major keys and values,
/// `total` positions including the new one).
pub(super) struct DecodeRow<'a> {
    pub(super) row: usize,
    pub(super) keys: &'a [f32],
    pub(super) values: &'a [f32],
    pub(super) total: usize,
}

/// Attention of one query row per sequence over its own cache, for all of them at once on
/// candle's worker pool, one (sequence, key/value head) per work item: no tensor per sequence
/// and layer. `q` is `(heads, rows, hd)`; results go to `out` as `(rows, heads, hd)`. A
/// sequence's result does not depend on the others in the pass.
pub(super) fn decode_attention(
    q: &[f32],
    rows: usize,
    heads: usize,
    kv_heads: usize,
    hd: usize,
    seqs: &[DecodeRow],
    out: &mut [f32],
) {
    if seqs.is_empty() {
        return;
    }
    let group = heads / kv_heads;
    let scale = (hd as f32).sqrt();
    let ptr = out.as_mut_ptr() as usize;
    candle_core::utils::barrier_pool().execute_chunked(seqs.len() * kv_heads, |items| {
        let mut scores = Vec::new();
        for item in items {
            let (s, g) = (&seqs[item / kv_heads], item % kv_heads);
            for h in g * group..(g + 1) * group {
                let qh = &q[(h * rows + s.row) * hd..(h * rows + s.row + 1) * hd];
                scores.clear();
                scores.extend((0..s.total).map(|t| dot(qh, &s.keys[(t * kv_heads + g) * hd..][..hd]) / scale));
                let max = scores.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
                let mut sum = 0f32;
                for x in scores.iter_mut() {
                    *x = (*x - max).exp();
                    sum += *x;
                }
                // SAFETY: each (sequence, head) writes its own hd values of `out`, which
                // outlives the pool call; sequences have distinct rows.
                let dst =
                    unsafe { std::slice::from_raw_parts_mut((ptr as *mut f32).add((s.row * heads + h) * hd), hd) };
                dst.fill(0.0);
                for (t, p) in scores.iter().enumerate() {
                    let v = &s.values[(t * kv_heads + g) * hd..][..hd];
                    for (o, x) in dst.iter_mut().zip(v) {
                        *o += p * x;
                    }
                }
                for o in dst.iter_mut() {
                    *o /= sum;
                }
            }
        }
    });
}

/// Dot product in eight lanes (vectorized; the order is fixed, so results are reproducible).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Scaled dot-product attention where each key/value head serves `heads / kv_heads` query
/// heads, computed without repeating K/V: the queries of a group are stacked as rows of one
/// matrix per key/value head. `q` is `(1, heads, n, hd)`, `keys`/`values` `(1, kv_heads, total,
/// hd)`, `mask` additive `(n, total)`; returns `(1, heads, n, hd)`.
pub(super) fn grouped_attention(q: &Tensor, keys: &Tensor, values: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
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
pub(super) fn causal_mask(n: usize, pos: usize, device: &Device) -> Result<Tensor> {
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

    /// The one-token kernel over position-major caches computes what the grouped form does.
    #[test]
    fn decode_attention_equals_grouped_attention() -> Result<()> {
        let dev = Device::Cpu;
        for (heads, kv, hd, total, rows, row) in [(12, 2, 16, 37, 1, 0), (9, 3, 64, 5, 3, 2), (8, 8, 8, 1, 2, 1)] {
            let q = (Tensor::randn(0f32, 1.0, (1, heads, rows, hd), &dev)? * 3.0)?;
            let k = (Tensor::randn(0f32, 1.0, (1, kv, total, hd), &dev)? * 3.0)?;
            let v = Tensor::randn(0f32, 1.0, (1, kv, total, hd), &dev)?;
            let theirs = grouped_attention(&q.narrow(2, row, 1)?.contiguous()?, &k, &v, None)?;
            let theirs = theirs.flatten_all()?.to_vec1::<f32>()?; // (heads, hd)
            let position_major = |t: &Tensor| -> Result<Vec<f32>> {
                Ok(t.squeeze(0)?.transpose(0, 1)?.contiguous()?.flatten_all()?.to_vec1::<f32>()?)
            };
            let (keys, values) = (position_major(&k)?, position_major(&v)?);
            let mut out = vec![0f32; rows * heads * hd];
            let seq = DecodeRow { row, keys: &keys, values: &values, total };
            decode_attention(&q.flatten_all()?.to_vec1::<f32>()?, rows, heads, kv, hd, &[seq], &mut out);
            let ours = &out[row * heads * hd..(row + 1) * heads * hd];
            let d = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(d < 1e-4, "heads {heads} kv {kv} total {total}: {d}");
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
