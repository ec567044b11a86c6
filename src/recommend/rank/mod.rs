//! The learned re-ranker: LambdaMART (LightGBM's `lambdarank`) over the fused candidates.
//!
//! - `features`: the named feature list and how a row is computed, shared by `aisle eval` and
//!   serving;
//! - `lgbm`: the safe wrapper over LightGBM's C API;
//! - this file: a trained model as a versioned file in the data directory, checked when loaded
//!   (format, checksum, the feature names it was trained with), and scoring with the features
//!   that moved each item most.
//!
//! A model that is missing, corrupt or trained on other features is refused with a warning, and
//! the recommender keeps the fused order.

pub mod features;
pub mod lgbm;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
pub use features::{FEATURES, N_FEATURES};
pub use lgbm::{Booster, Groups, Params, TrainReport};

/// The model file's format version.
const FORMAT: u32 = 1;

/// Model files kept besides the newest.
const KEEP: usize = 4;

/// A model file: LightGBM's text model with what it needs to be trusted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelFile {
    /// [`FORMAT`].
    pub format: u32,
    /// Increasing version, also the file name.
    pub version: u64,
    /// When it was trained (RFC 3339).
    pub trained_at: String,
    /// The feature names, in row order, it was trained with.
    pub features: Vec<String>,
    /// Training settings.
    pub params: Params,
    /// What training reported (rounds, validation NDCG, groups and rows used).
    pub report: serde_json::Value,
    /// SHA-256 of `model`, hex.
    pub sha256: String,
    /// LightGBM's text model.
    pub model: String,
}

/// A loaded, checked ranker.
pub struct Ranker {
    booster: Booster,
    /// Its version.
    pub version: u64,
    /// When it was trained.
    pub trained_at: String,
}

/// An item's re-ranking score and the features that moved it most.
#[derive(Debug, Clone)]
pub struct Scored {
    /// The model's score.
    pub score: f64,
    /// Up to three (feature, contribution) pairs, largest |contribution| first.
    pub top: Vec<(&'static str, f64)>,
}

fn hex_sha256(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// The directory of ranker models under a data directory.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("models").join("ranker")
}

fn file_version(p: &Path) -> Option<u64> {
    p.file_name()?.to_str()?.strip_prefix("ranker-")?.strip_suffix(".json")?.parse().ok()
}

/// The versions present, oldest first.
pub fn versions(data_dir: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(dir(data_dir))
        .map(|rd| rd.filter_map(|e| e.ok()).filter_map(|e| file_version(&e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

impl Ranker {
    /// Wrap a trained booster.
    pub fn new(booster: Booster, version: u64, trained_at: String) -> Result<Self> {
        if booster.n_features() != N_FEATURES {
            return Err(Error::Model(format!("the model reads {} features, not {N_FEATURES}", booster.n_features())));
        }
        Ok(Self { booster, version, trained_at })
    }

    /// Save a trained booster as the next version (atomically: a temporary file renamed), and
    /// remove all but the newest few versions. Returns the version.
    pub fn save(data_dir: &Path, booster: &Booster, params: &Params, report: serde_json::Value) -> Result<u64> {
        let d = dir(data_dir);
        std::fs::create_dir_all(&d).map_err(|e| Error::io(format!("creating {}", d.display()), e))?;
        let version = versions(data_dir).last().copied().unwrap_or(0) + 1;
        let model = booster.save(None)?;
        let file = ModelFile {
            format: FORMAT,
            version,
            trained_at: chrono::Utc::now().to_rfc3339(),
            features: FEATURES.iter().map(|s| s.to_string()).collect(),
            params: params.clone(),
            report,
            sha256: hex_sha256(&model),
            model,
        };
        let path = d.join(format!("ranker-{version}.json"));
        let tmp = d.join(format!(".ranker-{version}.json.tmp"));
        let body = serde_json::to_vec(&file).map_err(|e| Error::Internal(format!("encoding the model: {e}")))?;
        std::fs::write(&tmp, body).map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(format!("renaming to {}", path.display()), e))?;
        let all = versions(data_dir);
        for old in all.iter().take(all.len().saturating_sub(KEEP + 1)) {
            let _ = std::fs::remove_file(d.join(format!("ranker-{old}.json")));
        }
        Ok(version)
    }

    /// Load and check one model file: its format, checksum and feature names; LightGBM then
    /// parses the model.
    pub fn load_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let file: ModelFile = serde_json::from_str(&text)
            .map_err(|e| Error::Model(format!("{} is not a ranker model file: {e}", path.display())))?;
        if file.format != FORMAT {
            return Err(Error::Model(format!("{}: format {} is not {FORMAT}", path.display(), file.format)));
        }
        if hex_sha256(&file.model) != file.sha256 {
            return Err(Error::Model(format!("{}: the checksum does not match (corrupt)", path.display())));
        }
        if file.features.iter().map(String::as_str).ne(FEATURES.iter().copied()) {
            return Err(Error::Model(format!(
                "{}: trained on other features ({}), this build computes {}; retrain with `aisle train`",
                path.display(),
                file.features.join(","),
                FEATURES.join(",")
            )));
        }
        Ranker::new(Booster::load(&file.model)?, file.version, file.trained_at)
    }

    /// The newest model of a data directory: Ok(None) when there is none; an error when the
    /// newest is unusable (callers warn and keep the fused order).
    pub fn load_latest(data_dir: &Path) -> Result<Option<Self>> {
        match versions(data_dir).last() {
            None => Ok(None),
            Some(v) => Ranker::load_file(&dir(data_dir).join(format!("ranker-{v}.json"))).map(Some),
        }
    }

    /// Trees in the model.
    pub fn trees(&self) -> usize {
        self.booster.trees()
    }

    /// Scores of rows (`N_FEATURES` values each).
    pub fn score(&self, rows: &[f32]) -> Result<Vec<f64>> {
        self.booster.predict(rows)
    }

    /// Scores with each row's three strongest feature contributions.
    pub fn explain(&self, rows: &[f32]) -> Result<Vec<Scored>> {
        let c = self.booster.contributions(rows)?;
        Ok(c.chunks(N_FEATURES + 1)
            .map(|row| {
                let score = row.iter().sum();
                let mut top: Vec<(&'static str, f64)> =
                    FEATURES.iter().copied().zip(row.iter().copied()).filter(|(_, v)| *v != 0.0).collect();
                top.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
                top.truncate(3);
                Scored { score, top }
            })
            .collect())
    }
}

/// The served ranker of a data directory: loaded at start, replaced when training saves a new
/// version. Cloning shares it.
#[derive(Clone)]
pub struct Slot {
    data_dir: PathBuf,
    model: std::sync::Arc<parking_lot::RwLock<Option<std::sync::Arc<Ranker>>>>,
    /// Held by a training run: one at a time.
    pub training: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Slot {
    /// The newest model of `data_dir`, if usable: a missing one is no model; a corrupt or
    /// incompatible one is refused with a warning (the fused order is served).
    pub fn open(data_dir: &Path) -> Self {
        let model = match Ranker::load_latest(data_dir) {
            Ok(Some(r)) => {
                tracing::info!(version = r.version, trained_at = %r.trained_at, "serving the learned re-ranker");
                Some(std::sync::Arc::new(r))
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "the learned re-ranker is not used; serving the fused order");
                None
            }
        };
        Self {
            data_dir: data_dir.to_path_buf(),
            model: std::sync::Arc::new(parking_lot::RwLock::new(model)),
            training: Default::default(),
        }
    }

    /// The served model, if any.
    pub fn get(&self) -> Option<std::sync::Arc<Ranker>> {
        self.model.read().clone()
    }

    /// Serve `ranker` from now on.
    pub fn set(&self, ranker: Ranker) {
        *self.model.write() = Some(std::sync::Arc::new(ranker));
    }

    /// The data directory its models are saved in.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}
