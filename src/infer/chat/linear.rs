//! Linear layers over quantized weights, choosing the kernel by weight type and input rows.
//!
//! - Decoding rows (one token of each sequence in a batch, or a lone token) read the compact
//!   quantized blocks in place, each weight row once for all input rows; for Q4_1 and Q8_0
//!   every row's result is bit for bit what it would be alone ([`Linear::forward_each_row`]),
//!   so a sequence's numbers never depend on its batch. Q4_1 (SmolLM2) and Q8_0 use aisle's kernels that follow ggml
//!   exactly: activations quantized per 32 values to 8 bits, integer dot products with
//!   `maddubs`/`madd` on AVX2 or one `vpdpbusd` where the CPU has AVX-512 VNNI (equal integer
//!   sums, so both give the same floats), four input rows sharing each weight block's unpacking.
//!   K-quants (Qwen2.5's Q4_K/Q6_K) and other types use candle's `vec_dot` on the compact
//!   blocks, except four or more decoding rows of a K-quant, which take candle's quantized
//!   matmul (16-row tiles for VNNI/AVX2, several times faster per row once rows share a tile,
//!   slower for one): a K-quant token's last bits can depend on its batch size.
//! - Many rows of one sequence (prompt processing) use candle's quantized matmul for K-quants
//!   and Q8_0; Q4_1 prompts multiply by the dequantized f32 matrix with a blocked GEMM, kept in
//!   memory when the model fits the budget.
//! - aisle reads candle's Q4_1 and Q8_0 bytes through its own `#[repr(C)]` mirrors of ggml's
//!   blocks; [`super::kernels::check_layouts`] proves at model load that candle still lays them
//!   out that way.

use std::sync::{Arc, OnceLock};

use candle_core::quantized::k_quants::{BlockQ4_0, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8_0};
use candle_core::quantized::{GgmlDType, GgmlType, QMatMul, QTensor};
use candle_core::{Module, Tensor};

use super::kernels::{BlockQ41, BlockQ80, RowKernel, cast_blocks, is_x86_avx2};
use crate::error::{Error, Result};

/// Q4_1 inputs with at least this many rows use the dequantized matrix.
const DENSE_FROM_ROWS: usize = 16;
/// K-quant decoding rows from this many take candle's repacked tiles.
const TILES_FROM_ROWS: usize = 4;
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
        let (m, k) = self.check(x)?;
        let dims = x.dims();
        let dtype = self.qtensor.dtype();
        let cpu = x.device().is_cpu() && self.qtensor.device().is_cpu();
        if cpu
            && (m == 1 || (dtype == GgmlDType::Q4_1 && m < DENSE_FROM_ROWS))
            && let Some(out) = self.rows_each(x)?
        {
            return Ok(out);
        }
        if cpu && dtype == GgmlDType::Q4_1 && is_x86_avx2() && m >= DENSE_FROM_ROWS {
            let w = self.dense()?;
            return Ok(x.reshape((m, k))?.matmul(&w.t()?)?.reshape(out_dims(dims, self.rows))?);
        }
        Ok(self.matmul.forward(x)?)
    }

    /// `x (..., in) -> (..., out)` where every input row is one token of a different sequence
    /// (batched decoding): each row is computed exactly as [`Linear::forward`] computes a single
    /// row, whatever the number of rows (except K-quants from four rows, see
    /// `k_quant_rows`), so a sequence's numbers do not depend on its batch. The weights are
    /// streamed once for all rows.
    pub fn forward_each_row(&self, x: &Tensor) -> Result<Tensor> {
        let (m, k) = self.check(x)?;
        if x.device().is_cpu()
            && self.qtensor.device().is_cpu()
            && let Some(out) = self.rows_each(x)?
        {
            return Ok(out);
        }
        if !x.device().is_cpu() {
            // On a GPU the batch is one quantized matmul (candle's CUDA kernels): rows share the
            // weights' read; their last bits may depend on the batch there.
            return Ok(self.matmul.forward(x)?);
        }
        // Types without a kernel here: one row at a time, as a lone token runs.
        let x2 = x.reshape((m, k))?;
        let rows = (0..m).map(|i| self.forward(&x2.narrow(0, i, 1)?)).collect::<Result<Vec<_>>>()?;
        Ok(Tensor::cat(&rows, 0)?.reshape(out_dims(x.dims(), self.rows))?)
    }

    /// Rows and columns of `x` as a matrix, checked against the weights.
    fn check(&self, x: &Tensor) -> Result<(usize, usize)> {
        let dims = x.dims();
        let k = *dims.last().ok_or_else(|| Error::Internal("matmul of a scalar".into()))?;
        if k != self.cols {
            return Err(Error::Internal(format!("matmul: input has {k} columns, weights {}", self.cols)));
        }
        Ok((dims[..dims.len() - 1].iter().product(), k))
    }

    /// Input rows against the compact blocks, each row quantized and dotted on its own;
    /// `None` for types without a kernel here.
    fn rows_each(&self, x: &Tensor) -> Result<Option<Tensor>> {
        if let Some(out) = self.k_quant_rows(x)? {
            return Ok(Some(out));
        }
        let xs = x.flatten_all()?.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?;
        let data = self.qtensor.data()?;
        let (r, c) = (self.rows, self.cols);
        let out = match self.qtensor.dtype() {
            GgmlDType::Q4_1 if is_x86_avx2() => kernel_rows::<BlockQ41>(&data, r, c, &xs, "Q4_1")?,
            GgmlDType::Q4_0 => gemv_blocks::<BlockQ4_0>(&data, r, c, &xs)?,
            GgmlDType::Q8_0 if is_x86_avx2() => kernel_rows::<BlockQ80>(&data, r, c, &xs, "Q8_0")?,
            GgmlDType::Q8_0 => gemv_blocks::<BlockQ8_0>(&data, r, c, &xs)?,
            GgmlDType::Q4K => gemv_blocks::<BlockQ4K>(&data, r, c, &xs)?,
            GgmlDType::Q5K => gemv_blocks::<BlockQ5K>(&data, r, c, &xs)?,
            GgmlDType::Q6K => gemv_blocks::<BlockQ6K>(&data, r, c, &xs)?,
            _ => return Ok(None),
        };
        Ok(Some(Tensor::from_vec(out, out_dims(x.dims(), self.rows), x.device())?))
    }

    /// Four or more K-quant decoding rows on x86 go through candle's quantized matmul, which
    /// repacks the weights into 16-row tiles multiplied with AVX-512 VNNI (or AVX2), each input
    /// row with its own accumulators: two to three times the rows per second of the compact
    /// blocks once there are rows to share a tile. Fewer rows (a lone token) stay on the
    /// compact blocks, faster alone. So a K-quant token's logits can differ in their last bits
    /// between a small and a large batch (Q4_1 and Q8_0 models do not: their kernels are ours).
    fn k_quant_rows(&self, x: &Tensor) -> Result<Option<Tensor>> {
        let (m, _) = self.check(x)?;
        if m < TILES_FROM_ROWS
            || !matches!(self.qtensor.dtype(), GgmlDType::Q4K | GgmlDType::Q5K | GgmlDType::Q6K)
            || !is_x86_avx2()
        {
            return Ok(None);
        }
        Ok(Some(self.matmul.forward(x)?))
    }

    /// Bytes of the weights as loaded.
    pub fn weight_bytes(&self) -> u64 {
        self.qtensor.storage_size_in_bytes() as u64
    }

    /// Bytes of the dequantized copy kept, if one is.
    pub fn dense_bytes(&self) -> u64 {
        self.dense.get().map_or(0, |t| (t.elem_count() * t.dtype().size_in_bytes()) as u64)
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

fn blocks<T: GgmlType>(data: &[u8], rows: usize, cols: usize) -> Result<&[T]> {
    cast_blocks(data, rows, cols, T::BLCK_SIZE, &format!("{:?}", T::DTYPE))
}

/// Run `f(first, outs)` for every item of [`ROWS_PER_ITEM`] output rows on candle's worker pool;
/// `outs[a]` is where input row `a`'s values for output rows `first..` go. Output is `(acts, rows)`.
/// The rows of an item are read once for all input rows (they stay in cache between them).
fn for_rows(rows: usize, acts: usize, f: impl Fn(usize, &mut [&mut [f32]]) + Sync) -> Vec<f32> {
    let mut out = vec![0f32; rows * acts];
    let ptr = out.as_mut_ptr() as usize;
    candle_core::utils::barrier_pool().execute_chunked(rows.div_ceil(ROWS_PER_ITEM), |items| {
        let mut dsts: Vec<&mut [f32]> = Vec::with_capacity(acts);
        for item in items {
            let first = item * ROWS_PER_ITEM;
            let last = (first + ROWS_PER_ITEM).min(rows);
            dsts.clear();
            // SAFETY: every item owns the disjoint ranges a*rows+first..a*rows+last of `out`,
            // which outlives the pool call.
            dsts.extend((0..acts).map(|a| unsafe {
                std::slice::from_raw_parts_mut((ptr as *mut f32).add(a * rows + first), last - first)
            }));
            f(first, &mut dsts);
        }
    });
    out
}

/// `x` is input rows of `cols` values; output `(x rows, rows)`.
fn gemv_blocks<T: GgmlType>(data: &[u8], rows: usize, cols: usize, x: &[f32]) -> Result<Vec<f32>> {
    let w = blocks::<T>(data, rows, cols)?;
    let nb = cols / T::BLCK_SIZE;
    let acts: Vec<Vec<T::VecDotType>> = x
        .chunks(cols)
        .map(|xr| {
            let mut act = vec![T::VecDotType::zeros(); cols / T::VecDotType::BLCK_SIZE];
            T::VecDotType::from_float(xr, &mut act);
            act
        })
        .collect();
    Ok(for_rows(rows, acts.len(), |first, dsts| {
        let row = |i: usize| &w[(first + i) * nb..(first + i + 1) * nb];
        for (act, dst) in acts.iter().zip(dsts.iter_mut()) {
            let mut i = 0;
            while i + 4 <= dst.len() {
                let (a, b, c, d) = T::vec_dot_4(cols, row(i), row(i + 1), row(i + 2), row(i + 3), act);
                dst[i..i + 4].copy_from_slice(&[a, b, c, d]);
                i += 4;
            }
            for (j, y) in dst.iter_mut().enumerate().skip(i) {
                *y = T::vec_dot(cols, row(j), act);
            }
        }
    }))
}

/// Input rows (`x`, rows of `cols` values) times a matrix of `K` blocks with aisle's own
/// kernel; output `(x rows, rows)`. Eight, then four input rows at a time share each weight
/// block's load and unpacking; each row's sum is formed exactly as with one row.
fn kernel_rows<K: RowKernel>(data: &[u8], rows: usize, cols: usize, x: &[f32], what: &str) -> Result<Vec<f32>> {
    let w: &[K] = cast_blocks(data, rows, cols, 32, what)?;
    let nb = cols / 32;
    let acts: Vec<Vec<K::Act>> = x.chunks(cols).map(K::quantize).collect();
    Ok(for_rows(rows, acts.len(), |first, dsts| {
        let row = |j: usize| &w[(first + j) * nb..(first + j + 1) * nb];
        let a = rows_at_once::<K, 8>(&acts, 0, dsts, &row);
        let a = rows_at_once::<K, 4>(&acts, a, dsts, &row);
        rows_at_once::<K, 1>(&acts, a, dsts, &row);
    }))
}

/// Input rows from `a` on, `N` at a time while `N` are left; returns the first row left.
#[allow(clippy::needless_range_loop)] // `j` picks a weight row and a slot in `N` outputs
fn rows_at_once<'w, K: RowKernel, const N: usize>(
    acts: &[Vec<K::Act>],
    mut a: usize,
    dsts: &mut [&mut [f32]],
    row: &dyn Fn(usize) -> &'w [K],
) -> usize {
    let len = dsts.first().map_or(0, |d| d.len());
    while a + N <= acts.len() {
        for j in 0..len {
            let ys = K::dot::<N>(row(j), std::array::from_fn(|r| acts[a + r].as_slice()));
            for (r, y) in ys.into_iter().enumerate() {
                dsts[a + r][j] = y;
            }
        }
        a += N;
    }
    a
}
