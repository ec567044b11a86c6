//! Training the collaborative model from the shop's own events, and serving it.
//!
//! `aisle train` / `POST /v1/admin/train` read every event stored with a customer key, weight
//! it by kind and age, train iALS, and write item factors to `products.collab` and customer
//! factors to `customers.collab` (new named vectors; nothing is re-embedded). The item factors'
//! Gram matrix and the settings are kept in `DATA_DIR/collab.json`, so that at request time a
//! customer's factors are folded in from their current history (a least-squares solve against
//! the item factors): new customers and new events count without retraining.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use super::cf::{AlsConfig, Interactions, fold_in, item_gram, train_als};
use crate::catalog::Catalog;
pub use crate::config::TrainConfig;
use crate::error::{Error, Result};
use crate::events::profile::HistoryItem;
use crate::events::{Events, Kind, Profiles};

pub use crate::catalog::COLLAB_VECTOR;

impl TrainConfig {
    fn als(&self) -> AlsConfig {
        AlsConfig {
            factors: self.factors,
            reg: self.reg,
            alpha: self.alpha,
            iterations: self.iterations,
            cg_steps: 3,
            seed: 42,
        }
    }
}

/// What serving needs of a trained model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CollabModel {
    /// Settings it was trained with.
    pub config: TrainConfig,
    /// `Y'Y` of the item factors (k x k).
    pub gram: Vec<f32>,
    /// When.
    pub trained_at: chrono::DateTime<Utc>,
    /// Customers and products with factors.
    pub users: usize,
    /// Products with factors.
    pub items: usize,
}

/// What a training run did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TrainReport {
    /// Events read.
    pub events: usize,
    /// Customers (rows).
    pub customers: usize,
    /// Products (columns).
    pub products: usize,
    /// Non-zero cells.
    pub interactions: usize,
    /// Objective after each iteration.
    pub loss: Vec<f64>,
    /// Seconds training took.
    pub train_secs: f64,
    /// Seconds in all.
    pub total_secs: f64,
    /// The learned re-ranker's run (`aisle train` and the admin route train both).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ranker: Option<super::RankerReport>,
}

/// The trainer and the current model.
#[derive(Clone)]
pub struct Collab {
    catalog: Catalog,
    profiles: Profiles,
    events: Events,
    config: TrainConfig,
    path: PathBuf,
    model: Arc<RwLock<Option<Arc<CollabModel>>>>,
    running: Arc<tokio::sync::Mutex<()>>,
}

impl Collab {
    /// Load the current model (if one was trained) from `data_dir/collab.json`.
    pub fn open(
        catalog: Catalog,
        profiles: Profiles,
        events: Events,
        config: TrainConfig,
        data_dir: &Path,
    ) -> Result<Self> {
        let path = data_dir.join("collab.json");
        let model = match std::fs::read(&path) {
            Ok(bytes) => Some(Arc::new(
                serde_json::from_slice::<CollabModel>(&bytes)
                    .map_err(|e| Error::Store(format!("{} is unreadable: {e}", path.display())))?,
            )),
            Err(_) => None,
        };
        Ok(Self {
            catalog,
            profiles,
            events,
            config,
            path,
            model: Arc::new(RwLock::new(model)),
            running: Default::default(),
        })
    }

    /// The served model, if any.
    pub fn model(&self) -> Option<Arc<CollabModel>> {
        self.model.read().clone()
    }

    /// Train from the stored events; refuses a second run while one is going (409).
    pub async fn train(&self) -> Result<TrainReport> {
        let Ok(_one) = self.running.try_lock() else {
            return Err(Error::Conflict("a training run is already going; one at a time".into()));
        };
        let started = Instant::now();
        let now = Utc::now().timestamp();
        // Every event with a customer key: (customer, product, weight).
        let half_life = self.config.half_life_days * 86_400.0;
        let mut users: HashMap<String, u32> = HashMap::new();
        let mut items: HashMap<String, u32> = HashMap::new();
        let mut triples = Vec::new();
        let mut n_events = 0usize;
        let events = &self.events;
        events
            .for_each_customer_event(|e| {
                n_events += 1;
                let value = e.value.unwrap_or(1.0);
                let ts = e.ts.unwrap_or(now);
                let w = events.weight(e.kind, value) * 0.5f64.powf((now - ts).max(0) as f64 / half_life);
                let nu = users.len() as u32;
                let u = *users.entry(e.customer.to_string()).or_insert(nu);
                let ni = items.len() as u32;
                let i = *items.entry(e.product_id.to_string()).or_insert(ni);
                triples.push((u, i, w as f32));
            })
            .await?;
        let data = Interactions::new(users.len(), items.len(), triples);
        let als = self.config.als();
        let t0 = Instant::now();
        let mut loss = Vec::new();
        let factors = tokio::task::spawn_blocking(move || {
            let f = train_als(&data, &als, |_, l| loss.push(l));
            (f, loss, data.nnz())
        })
        .await
        .map_err(|e| Error::Internal(format!("training failed: {e}")))?;
        let (factors, loss, nnz) = factors;
        let train_secs = t0.elapsed().as_secs_f64();
        let k = factors.k;

        // Write the vectors: products that still exist, customers that have a profile.
        self.ensure_vectors(k).await?;
        let product_factors: Vec<(String, Vec<f32>)> =
            items.iter().map(|(id, i)| (id.clone(), factors.item(*i as usize).to_vec())).collect();
        let products_set = self.catalog.set_collab_factors(product_factors).await?;
        let customer_factors: Vec<(String, Vec<f32>)> =
            users.iter().map(|(key, u)| (key.clone(), factors.user(*u as usize).to_vec())).collect();
        let customers_set = self.profiles.set_collab_factors(customer_factors).await?;
        let model = CollabModel {
            config: self.config.clone(),
            gram: item_gram(&factors),
            trained_at: Utc::now(),
            users: customers_set,
            items: products_set,
        };
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&model).map_err(|e| Error::Internal(e.to_string()))?)
            .and_then(|_| std::fs::rename(&tmp, &self.path))
            .map_err(|e| Error::io(format!("cannot write {}", self.path.display()), e))?;
        *self.model.write() = Some(Arc::new(model));
        Ok(TrainReport {
            ranker: None,
            events: n_events,
            customers: users.len(),
            products: items.len(),
            interactions: nnz,
            loss,
            train_secs,
            total_secs: started.elapsed().as_secs_f64(),
        })
    }

    async fn ensure_vectors(&self, k: usize) -> Result<()> {
        self.catalog.ensure_collab_vector(k).await?;
        self.profiles.ensure_collab_vector(k).await
    }
}

/// A customer's factors folded in from their history against item factors (`factors`, by
/// product id, of the history's products), each event weighted by `weight` and by age as in
/// training. `None` when no history item has factors.
pub fn user_vector(
    model: &CollabModel,
    history: &[HistoryItem],
    factors: &HashMap<&str, &[f32]>,
    weight: impl Fn(Kind) -> f64,
) -> Option<Vec<f32>> {
    let now = Utc::now().timestamp();
    let half_life = model.config.half_life_days * 86_400.0;
    let mut weights: HashMap<&str, f64> = HashMap::new();
    for h in history {
        let w = weight(h.kind) * 0.5f64.powf((now - h.ts).max(0) as f64 / half_life);
        *weights.entry(h.product_id.as_str()).or_default() += w;
    }
    let k = model.config.factors;
    let mut items = Vec::new();
    let mut row = Vec::new();
    let mut ids: Vec<&str> = weights.keys().copied().collect();
    ids.sort_unstable();
    for id in ids {
        let w = weights[id];
        let Some(v) = factors.get(id).filter(|v| v.len() == k && w > 0.0) else { continue };
        row.push(((items.len() / k) as u32, w as f32));
        items.extend_from_slice(v);
    }
    if row.is_empty() {
        return None;
    }
    Some(fold_in(&items, k, &model.gram, &row, &model.config.als()))
}
