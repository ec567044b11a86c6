//! A small safe wrapper over LightGBM's C API (the `lightgbm3-sys` crate builds LightGBM 4 from
//! the source it ships, statically, with no OpenMP): a LambdaMART ranker trained on query
//! groups with early stopping on held-out groups, saved as and loaded from LightGBM's text
//! model, and predictions with per-feature contributions (TreeSHAP).
//!
//! Only the calls this crate needs are wrapped; every handle is freed on drop and every error
//! carries LightGBM's own message.

use std::ffi::{CStr, CString, c_char, c_int, c_void};

use lightgbm3_sys as sys;

use crate::error::{Error, Result};

/// The last LightGBM error as ours.
fn last_error(what: &str) -> Error {
    // SAFETY: LGBM_GetLastError returns a pointer to a thread-local, NUL-terminated buffer.
    let msg = unsafe { CStr::from_ptr(sys::LGBM_GetLastError()) }.to_string_lossy().into_owned();
    Error::Model(format!("LightGBM {what}: {msg}"))
}

fn check(rc: c_int, what: &str) -> Result<()> {
    if rc == 0 { Ok(()) } else { Err(last_error(what)) }
}

fn cstring(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::Model("a LightGBM parameter holds a NUL byte".into()))
}

/// A dense row-major matrix of features with labels and query groups.
struct Dataset(sys::DatasetHandle);

impl Dataset {
    fn new(
        rows: &[f32],
        n_features: usize,
        labels: &[f32],
        groups: &[i32],
        reference: Option<&Dataset>,
    ) -> Result<Self> {
        let n_rows = labels.len();
        if n_features == 0 || rows.len() != n_rows * n_features || n_rows == 0 {
            return Err(Error::Model(format!("{} values are not {n_rows} rows of {n_features} features", rows.len())));
        }
        if groups.iter().map(|g| *g as usize).sum::<usize>() != n_rows {
            return Err(Error::Model("the query groups do not add up to the rows".into()));
        }
        let params = cstring("verbosity=-1 max_bin=255")?;
        let mut handle = std::ptr::null_mut();
        // SAFETY: `rows` holds n_rows * n_features f32 values, row-major; LightGBM copies them.
        check(
            unsafe {
                sys::LGBM_DatasetCreateFromMat(
                    rows.as_ptr() as *const c_void,
                    sys::C_API_DTYPE_FLOAT32 as c_int,
                    n_rows as i32,
                    n_features as i32,
                    1,
                    params.as_ptr(),
                    reference.map_or(std::ptr::null_mut(), |r| r.0),
                    &mut handle,
                )
            },
            "dataset",
        )?;
        let ds = Dataset(handle);
        let label = cstring("label")?;
        let group = cstring("group")?;
        // SAFETY: the lengths passed are the slices' lengths; the types match the C API's.
        check(
            unsafe {
                sys::LGBM_DatasetSetField(
                    ds.0,
                    label.as_ptr(),
                    labels.as_ptr() as *const c_void,
                    n_rows as c_int,
                    sys::C_API_DTYPE_FLOAT32 as c_int,
                )
            },
            "labels",
        )?;
        check(
            unsafe {
                sys::LGBM_DatasetSetField(
                    ds.0,
                    group.as_ptr(),
                    groups.as_ptr() as *const c_void,
                    groups.len() as c_int,
                    sys::C_API_DTYPE_INT32 as c_int,
                )
            },
            "groups",
        )?;
        Ok(ds)
    }
}

impl Drop for Dataset {
    fn drop(&mut self) {
        // SAFETY: the handle came from LGBM_DatasetCreateFromMat and is freed once.
        unsafe { sys::LGBM_DatasetFree(self.0) };
    }
}

/// Ranking examples: rows of features, a graded label per row, rows grouped by query (a list
/// shown, a user), groups contiguous.
#[derive(Debug, Default, Clone)]
pub struct Groups {
    /// Row-major features.
    pub rows: Vec<f32>,
    /// Graded relevance per row (0 = nothing happened).
    pub labels: Vec<f32>,
    /// Rows per group, in order.
    pub sizes: Vec<i32>,
}

impl Groups {
    /// Append one group.
    pub fn push(&mut self, rows: &[f32], labels: &[f32]) {
        if labels.is_empty() {
            return;
        }
        self.rows.extend_from_slice(rows);
        self.labels.extend_from_slice(labels);
        self.sizes.push(labels.len() as i32);
    }

    /// Number of groups.
    pub fn len(&self) -> usize {
        self.sizes.len()
    }

    /// No groups.
    pub fn is_empty(&self) -> bool {
        self.sizes.is_empty()
    }
}

/// LambdaMART settings.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Params {
    /// Most boosting rounds.
    pub rounds: usize,
    /// Stop when validation NDCG has not improved for this many rounds.
    pub early_stopping: usize,
    /// Keep at least this many rounds whatever the validation says (a few dozen held-out
    /// lists of position-biased clicks are a noisy judge).
    #[serde(default)]
    pub min_rounds: usize,
    /// Shrinkage.
    pub learning_rate: f64,
    /// Leaves per tree.
    pub num_leaves: usize,
    /// Deepest a tree may grow (0: no limit). Explaining a score (TreeSHAP) costs the square
    /// of the depth per leaf, so served models are kept shallow.
    #[serde(default)]
    pub max_depth: usize,
    /// Fewest rows per leaf.
    pub min_data_in_leaf: usize,
    /// Share of features tried per tree.
    pub feature_fraction: f64,
    /// L2 regularisation of leaf values.
    pub lambda_l2: f64,
    /// NDCG cut-off optimised and monitored.
    pub ndcg_at: usize,
    /// Seed of LightGBM's sampling.
    pub seed: u64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            rounds: 400,
            early_stopping: 40,
            min_rounds: 0,
            learning_rate: 0.05,
            num_leaves: 31,
            max_depth: 0,
            min_data_in_leaf: 40,
            feature_fraction: 0.8,
            lambda_l2: 1.0,
            ndcg_at: 10,
            seed: 42,
        }
    }
}

impl Params {
    fn to_lightgbm(&self) -> String {
        format!(
            "objective=lambdarank metric=ndcg eval_at={at} lambdarank_truncation_level={trunc} \
             learning_rate={lr} num_leaves={leaves} max_depth={depth} min_data_in_leaf={min} \
             feature_fraction={ff} feature_fraction_seed={seed} lambda_l2={l2} seed={seed} deterministic=true \
             num_threads=1 verbosity=-1 label_gain={gain}",
            at = self.ndcg_at,
            trunc = (self.ndcg_at * 2).max(20),
            lr = self.learning_rate,
            leaves = self.num_leaves,
            depth = if self.max_depth == 0 { -1 } else { self.max_depth as i64 },
            min = self.min_data_in_leaf,
            ff = self.feature_fraction,
            seed = self.seed,
            l2 = self.lambda_l2,
            // Labels are small integers (0 nothing .. 3 purchase): gain 2^label - 1.
            gain = (0..8).map(|l| ((1u32 << l) - 1).to_string()).collect::<Vec<_>>().join(","),
        )
    }
}

/// A trained LightGBM model.
pub struct Booster {
    handle: sys::BoosterHandle,
    n_features: usize,
}

// SAFETY: LightGBM's booster guards its state with its own reader-writer lock; prediction
// takes the shared side, so concurrent predictions from several threads are safe.
unsafe impl Send for Booster {}
unsafe impl Sync for Booster {}

impl Drop for Booster {
    fn drop(&mut self) {
        // SAFETY: the handle is owned and freed once.
        unsafe { sys::LGBM_BoosterFree(self.handle) };
    }
}

/// What training did.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TrainReport {
    /// Rounds kept (the best validation round).
    pub rounds: usize,
    /// Validation NDCG at `ndcg_at` of the kept model (None without validation groups).
    pub valid_ndcg: Option<f64>,
}

impl Booster {
    /// Train LambdaMART on `train`, stopping early on `valid` (when it has groups), and keep
    /// the best round.
    pub fn train(n_features: usize, train: &Groups, valid: &Groups, params: &Params) -> Result<(Self, TrainReport)> {
        let train_ds = Dataset::new(&train.rows, n_features, &train.labels, &train.sizes, None)?;
        let valid_ds = if valid.is_empty() {
            None
        } else {
            Some(Dataset::new(&valid.rows, n_features, &valid.labels, &valid.sizes, Some(&train_ds))?)
        };
        let p = cstring(&params.to_lightgbm())?;
        let mut handle = std::ptr::null_mut();
        // SAFETY: the dataset handle is live; LightGBM keeps its own reference to the data.
        check(unsafe { sys::LGBM_BoosterCreate(train_ds.0, p.as_ptr(), &mut handle) }, "booster")?;
        let mut booster = Booster { handle, n_features };
        if let Some(v) = &valid_ds {
            check(unsafe { sys::LGBM_BoosterAddValidData(booster.handle, v.0) }, "validation data")?;
        }
        let mut best = (0usize, f64::NEG_INFINITY);
        let mut done = 0usize;
        for round in 1..=params.rounds {
            let mut finished: c_int = 0;
            check(unsafe { sys::LGBM_BoosterUpdateOneIter(booster.handle, &mut finished) }, "training")?;
            done = round;
            if finished != 0 {
                break;
            }
            if valid_ds.is_some() {
                let ndcg = booster.eval(1)?;
                if round < params.min_rounds {
                    continue;
                }
                if ndcg > best.1 + 1e-9 {
                    best = (round, ndcg);
                } else if round - best.0 >= params.early_stopping {
                    break;
                }
            }
        }
        let rounds = if valid_ds.is_some() { best.0.max(1) } else { done };
        // Keep only the best rounds: reload from the text of the first `rounds` trees.
        let text = booster.save(Some(rounds))?;
        booster = Booster::load(&text)?;
        let valid_ndcg = valid_ds.is_some().then_some(best.1);
        Ok((booster, TrainReport { rounds, valid_ndcg }))
    }

    /// The first metric on data set `idx` (0 training, 1 the first validation set).
    fn eval(&self, idx: c_int) -> Result<f64> {
        let mut n: c_int = 0;
        check(unsafe { sys::LGBM_BoosterGetEvalCounts(self.handle, &mut n) }, "metrics")?;
        let mut out = vec![0f64; n.max(1) as usize];
        let mut len: c_int = 0;
        // SAFETY: `out` has room for every metric LightGBM reports.
        check(unsafe { sys::LGBM_BoosterGetEval(self.handle, idx, &mut len, out.as_mut_ptr()) }, "metrics")?;
        Ok(out[0])
    }

    /// LightGBM's text model (the first `rounds` trees, or all).
    pub fn save(&self, rounds: Option<usize>) -> Result<String> {
        let n = rounds.map_or(-1, |r| r as c_int);
        let mut len: i64 = 0;
        // SAFETY: first call with no buffer asks for the size, second fills a buffer of it.
        check(
            unsafe { sys::LGBM_BoosterSaveModelToString(self.handle, 0, n, 0, 0, &mut len, std::ptr::null_mut()) },
            "saving",
        )?;
        let mut buf = vec![0u8; len.max(1) as usize];
        check(
            unsafe {
                sys::LGBM_BoosterSaveModelToString(
                    self.handle,
                    0,
                    n,
                    0,
                    buf.len() as i64,
                    &mut len,
                    buf.as_mut_ptr() as *mut c_char,
                )
            },
            "saving",
        )?;
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        buf.truncate(end);
        String::from_utf8(buf).map_err(|_| Error::Model("LightGBM wrote a model that is not UTF-8".into()))
    }

    /// Load a text model.
    pub fn load(text: &str) -> Result<Self> {
        let c = cstring(text)?;
        let mut iterations: c_int = 0;
        let mut handle = std::ptr::null_mut();
        check(unsafe { sys::LGBM_BoosterLoadModelFromString(c.as_ptr(), &mut iterations, &mut handle) }, "loading")?;
        let mut booster = Booster { handle, n_features: 0 };
        let mut n: c_int = 0;
        check(unsafe { sys::LGBM_BoosterGetNumFeature(booster.handle, &mut n) }, "loading")?;
        booster.n_features = n.max(0) as usize;
        Ok(booster)
    }

    /// Features the model reads.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Trees in the model (0 if LightGBM cannot say).
    pub fn trees(&self) -> usize {
        let mut n: c_int = 0;
        // SAFETY: the handle is a live booster; `n` is written once.
        let ok = unsafe { sys::LGBM_BoosterNumberOfTotalModel(self.handle, &mut n) } == 0;
        if ok { n.max(0) as usize } else { 0 }
    }

    fn predict_kind(&self, rows: &[f32], kind: u32, per_row: usize) -> Result<Vec<f64>> {
        if self.n_features == 0 || !rows.len().is_multiple_of(self.n_features) {
            return Err(Error::Model(format!("{} values are not rows of {} features", rows.len(), self.n_features)));
        }
        let n_rows = rows.len() / self.n_features;
        if n_rows == 0 {
            return Ok(vec![]);
        }
        let mut out = vec![0f64; n_rows * per_row];
        let mut len: i64 = 0;
        let p = cstring("num_threads=1")?;
        // SAFETY: `rows` is n_rows x n_features f32, row-major; `out` has n_rows * per_row room,
        // which is what LightGBM writes for this prediction kind.
        check(
            unsafe {
                sys::LGBM_BoosterPredictForMat(
                    self.handle,
                    rows.as_ptr() as *const c_void,
                    sys::C_API_DTYPE_FLOAT32 as c_int,
                    n_rows as i32,
                    self.n_features as i32,
                    1,
                    kind as c_int,
                    0,
                    -1,
                    p.as_ptr(),
                    &mut len,
                    out.as_mut_ptr(),
                )
            },
            "prediction",
        )?;
        out.truncate(len.max(0) as usize);
        Ok(out)
    }

    /// One score per row (higher ranks first).
    pub fn predict(&self, rows: &[f32]) -> Result<Vec<f64>> {
        self.predict_kind(rows, sys::C_API_PREDICT_NORMAL, 1)
    }

    /// Per row, each feature's contribution to the score (TreeSHAP), then the bias:
    /// `n_features + 1` values a row.
    pub fn contributions(&self, rows: &[f32]) -> Result<Vec<f64>> {
        self.predict_kind(rows, sys::C_API_PREDICT_CONTRIB, self.n_features + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Groups where the relevant row is the one with the largest first feature; the second
    /// feature is noise.
    fn synthetic(groups: usize, seed: u64) -> Groups {
        let mut g = Groups::default();
        let mut x = seed;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 10_000) as f32 / 10_000.0
        };
        for _ in 0..groups {
            let mut rows = vec![];
            let mut feats = vec![];
            for _ in 0..10 {
                let f = [rnd(), rnd()];
                feats.push(f[0]);
                rows.extend_from_slice(&f);
            }
            let best = feats.iter().cloned().fold(f32::MIN, f32::max);
            let labels: Vec<f32> = feats.iter().map(|f| if *f == best { 1.0 } else { 0.0 }).collect();
            g.push(&rows, &labels);
        }
        g
    }

    #[test]
    fn lambdamart_learns_an_order_and_round_trips_through_its_text() {
        let train = synthetic(300, 7);
        let valid = synthetic(100, 11);
        let params = Params { rounds: 60, min_data_in_leaf: 5, ..Params::default() };
        let (b, report) = Booster::train(2, &train, &valid, &params).unwrap();
        assert!(report.valid_ndcg.unwrap() > 0.95, "{report:?}");
        let scores = b.predict(&[0.9, 0.1, 0.1, 0.9]).unwrap();
        assert_eq!(scores.len(), 2);
        assert!(scores[0] > scores[1], "{scores:?}");
        let again = Booster::load(&b.save(None).unwrap()).unwrap();
        assert_eq!(again.n_features(), 2);
        assert_eq!(again.predict(&[0.9, 0.1, 0.1, 0.9]).unwrap(), scores);
        // Contributions add up to the score, and the first feature moves it most.
        let c = b.contributions(&[0.9, 0.1]).unwrap();
        assert_eq!(c.len(), 3);
        assert!((c.iter().sum::<f64>() - scores[0]).abs() < 1e-9);
        assert!(c[0].abs() > c[1].abs(), "{c:?}");
    }

    #[test]
    fn bad_input_is_an_error_not_a_crash() {
        assert!(Booster::load("not a model").is_err());
        let g = Groups { rows: vec![1.0; 3], labels: vec![1.0, 0.0], sizes: vec![2] };
        assert!(Booster::train(2, &g, &Groups::default(), &Params::default()).is_err());
        let (b, _) =
            Booster::train(2, &synthetic(50, 3), &Groups::default(), &Params { rounds: 5, ..Params::default() })
                .unwrap();
        assert!(b.predict(&[1.0, 2.0, 3.0]).is_err());
        assert!(b.predict(&[]).unwrap().is_empty());
    }
}
