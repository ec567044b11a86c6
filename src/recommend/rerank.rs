//! The learned re-ranker in serving: each candidate's feature row at request time (the same
//! named features as offline, see `rank::features`), the fused pool re-ordered by the served
//! model, the features that moved each shown item most, and training a new model from the
//! lists shown (`rec_id` impressions) and what shoppers did with them.
//!
//! Every response logs its items' rows with their true positions (whether or not a model
//! ordered it), so the first model can learn from lists the fused order made. A missing,
//! corrupt or incompatible model is never used (see `rank::Slot`): the fused order is served.
//!
//! Not for the model file or LightGBM (see `rank`), nor for fusion and diversity (see `fuse`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::Recommender;
use super::rank::features::{Item, N_FEATURES, SERVING_POSITION, SOURCES, Seen, Shopper, Signals, describe, row};
use super::rank::{Booster, Groups, Params, Ranker};
use super::request::{FeatureEffect, SourceRank};
use super::sources::{AnchorItem, ItemFacts};
use crate::catalog::TEXT_VECTOR;
use crate::error::{Error, Result};
use crate::events::profile::Profile;
use crate::events::{EventInput, Kind};
use crate::store::{Hit, Vector};

/// Feature rows of a request's candidates, by point.
pub(super) type Rows = HashMap<Uuid, [f32; N_FEATURES]>;

/// Lists with a click (or better) needed before a model is trained.
pub const MIN_GROUPS: usize = 20;

/// Boosting rounds kept at least: the held-out lists that stop the boosting are few and their
/// clicks favour the order shown, so early stopping alone may keep a model of one tree.
const MIN_ROUNDS: usize = 50;

/// Size of served models' trees: explaining every shown item (TreeSHAP) costs about leaves x
/// depth^2 per tree and item, and with LightGBM's defaults (31 leaves, no depth limit) it was
/// most of the re-ranker's time at serving (`aisle bench recommend`).
const MAX_DEPTH: usize = 5;
const NUM_LEAVES: usize = 15;

/// What re-ranking did to a pool.
pub(super) struct Reranked {
    /// The pool, best first (scores: the model's, when one ordered it).
    pub(super) pool: Vec<Hit>,
    /// The model that ordered it.
    pub(super) model: Option<Arc<Ranker>>,
}

/// A training run of the re-ranker.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RankerReport {
    /// Whether a new model was trained and is now served.
    pub trained: bool,
    /// Why not, when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The new model's version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// Lists (query groups) with logged features read.
    pub lists: usize,
    /// Lists with at least one click, cart or purchase (trained on).
    pub lists_with_outcomes: usize,
    /// Items in those lists that the shopper examined (the synthetic impressions: those above
    /// the last click and the one below it) and trained on.
    pub rows: usize,
    /// Items served in those lists below what was examined: not taken as negatives.
    pub unexamined: usize,
    /// Boosting rounds kept (early stopping on the latest lists).
    pub rounds: usize,
    /// NDCG@10 of the model on the held-out latest lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_out_ndcg_10: Option<f64>,
    /// NDCG@10 of the order those lists were shown in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shown_order_ndcg_10: Option<f64>,
    /// Seconds in all.
    pub secs: f64,
}

/// The label of an outcome: click < cart < purchase; a return makes the item a negative.
fn grade(kind: Kind) -> Option<f32> {
    match kind {
        Kind::Click => Some(1.0),
        Kind::Cart => Some(2.0),
        Kind::Purchase => Some(3.0),
        Kind::Return => Some(-1.0),
        _ => None,
    }
}

/// Items shown below the last clicked one that count as seen: the cascade model (a shopper
/// reads down the list and stops after the last click) makes the items above it and the one
/// just below it the impressions that were examined; the rest of the list was served, but most
/// likely never looked at, and is not taken as a negative (Metarank's synthetic impressions).
const EXAMINED_BELOW: usize = 1;

/// How many leading items of a list (in the order shown) were examined, given their labels.
fn examined(labels: &[f32]) -> usize {
    labels.iter().rposition(|l| *l > 0.0).map_or(0, |last| (last + 1 + EXAMINED_BELOW).min(labels.len()))
}

/// NDCG@k of labels in their given order (LightGBM's gains: 2^label - 1).
fn ndcg(labels: &[f32], k: usize) -> f64 {
    let dcg = |l: &[f32]| {
        l.iter().take(k).enumerate().map(|(r, g)| (2f64.powf(*g as f64) - 1.0) / ((r + 2) as f64).log2()).sum::<f64>()
    };
    let mut ideal = labels.to_vec();
    ideal.sort_by(|a, b| b.total_cmp(a));
    let best = dcg(&ideal);
    if best > 0.0 { dcg(labels) / best } else { 0.0 }
}

fn cosine(a: &[f32], b: &[f32]) -> Option<f32> {
    if a.len() != b.len() || a.is_empty() {
        return None;
    }
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    (na > 0.0 && nb > 0.0).then(|| dot / (na * nb))
}

impl Recommender {
    /// The feature row of every pooled candidate: its fused and per-source ranks, the
    /// shopper's taste against it, its decayed popularity, and its price, categories and brand
    /// against the anchors'.
    pub(super) fn feature_rows(
        &self,
        pool: &[Hit],
        ranks: &HashMap<Uuid, Vec<SourceRank>>,
        personal: Option<&Profile>,
        anchors: &[AnchorItem],
    ) -> Rows {
        let shopper = Shopper::from_history(anchors.iter().map(|a| Seen {
            categories: &a.facts.categories,
            brand: a.facts.brand.as_deref(),
            price: a.facts.price,
            popularity: None,
        }));
        let taste = personal.and_then(|p| p.taste.as_deref());
        let now = Utc::now().timestamp();
        pool.iter()
            .enumerate()
            .map(|(i, h)| {
                let mut sources = [None; 5];
                for s in ranks.get(&h.id).into_iter().flatten() {
                    if let Some(k) = SOURCES.iter().position(|n| *n == s.source.as_str()) {
                        // Serving knows each source's rank; its raw score stays inside the engine.
                        sources[k] = Some((s.rank.saturating_sub(1) as f32, f32::NAN));
                    }
                }
                let text = match h.vectors.get(TEXT_VECTOR) {
                    Some(Vector::Dense(v)) => Some(v.as_slice()),
                    _ => None,
                };
                let signals = Signals {
                    position: SERVING_POSITION,
                    fused: (i as f32, h.score),
                    sources,
                    collab_similarity: None,
                    taste_similarity: taste.zip(text).and_then(|(t, v)| cosine(t, v)),
                };
                let facts = ItemFacts::of(&h.payload);
                let trend = h.payload.get(crate::catalog::TREND).and_then(Value::as_f64);
                let item = Item {
                    popularity: None,
                    recent: trend.map(|t| self.events.popularity_now(t, now) as f32),
                    age_days: None,
                    price: facts.price,
                    categories: &facts.categories,
                    brand: facts.brand.as_deref(),
                };
                (h.id, row(&signals, &shopper, &item))
            })
            .collect()
    }

    /// The pool ordered by the served model, when re-ranking is `on` and a model is served;
    /// else as fused. A model that fails to score is logged and the fused order kept.
    pub(super) fn rerank(&self, pool: Vec<Hit>, rows: &Rows, on: bool) -> Reranked {
        let model = match self.ranker.as_ref().and_then(|s| s.get()) {
            Some(m) if on && !pool.is_empty() => m,
            _ => return Reranked { pool, model: None },
        };
        let flat: Vec<f32> =
            pool.iter().flat_map(|h| rows.get(&h.id).copied().unwrap_or([f32::NAN; N_FEATURES])).collect();
        let scores = match model.score(&flat) {
            Ok(s) if s.len() == pool.len() => s,
            Ok(_) | Err(_) => {
                tracing::warn!(version = model.version, "the re-ranker could not score; serving the fused order");
                return Reranked { pool, model: None };
            }
        };
        let mut scored: Vec<(f64, Hit)> = scores.into_iter().zip(pool).collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let pool = scored.into_iter().map(|(s, mut h)| {
            h.score = s as f32;
            h
        });
        Reranked { pool: pool.collect(), model: Some(model) }
    }

    /// Per shown item with a row: the features that moved it most under `model`.
    pub(super) fn ranked_by(model: &Ranker, shown: &[(Uuid, [f32; N_FEATURES])]) -> HashMap<Uuid, Vec<FeatureEffect>> {
        let flat: Vec<f32> = shown.iter().flat_map(|(_, r)| *r).collect();
        let Ok(explained) = model.explain(&flat) else { return HashMap::new() };
        shown
            .iter()
            .zip(explained)
            .map(|((id, _), s)| {
                let effects = s
                    .top
                    .into_iter()
                    .filter(|(f, _)| *f != "position")
                    .map(|(f, c)| FeatureEffect {
                        feature: f.to_string(),
                        meaning: describe(f).to_string(),
                        contribution: c,
                    })
                    .collect();
                (*id, effects)
            })
            .collect()
    }

    /// Train a re-ranker from the logged lists and their outcomes; serve it when it trains.
    /// One query group per list with an outcome; labels click 1, cart 2, purchase 3 (the
    /// best per item), a returned item 0; the latest fifth of the lists stops the boosting.
    pub async fn train_ranker(&self) -> Result<RankerReport> {
        let started = Instant::now();
        let Some(slot) = self.ranker.clone() else {
            return Err(Error::Internal("no re-ranker slot is configured".into()));
        };
        let Ok(_one) = slot.training.clone().try_lock_owned() else {
            return Err(Error::Conflict("a re-ranker training run is already going; one at a time".into()));
        };
        let mut outcomes: HashMap<(String, String), f32> = HashMap::new();
        self.events
            .for_each_attributed(|rec, product, kind| {
                if let Some(g) = grade(kind) {
                    let e = outcomes.entry((rec.to_string(), product.to_string())).or_insert(0.0);
                    *e = if g < 0.0 || *e < 0.0 { -1.0 } else { e.max(g) };
                }
            })
            .await?;
        let mut lists = 0usize;
        let mut groups: Vec<(i64, Vec<f32>, Vec<f32>)> = Vec::new();
        let mut unexamined = 0usize;
        self.stats
            .for_each_logged(|logged| {
                lists += 1;
                let rec = logged.rec_id.to_string();
                let mut items: Vec<(String, Vec<f32>)> = logged.features.into_iter().collect();
                // In the order shown (the position feature is the first of a row).
                items.sort_by(|a, b| a.1[0].total_cmp(&b.1[0]));
                let mut rows = Vec::new();
                let mut labels = Vec::new();
                for (product, r) in items.into_iter().filter(|(_, r)| r.len() == N_FEATURES) {
                    labels.push(outcomes.get(&(rec.clone(), product)).copied().unwrap_or(0.0).max(0.0));
                    rows.extend(r);
                }
                let seen = examined(&labels);
                if seen > 0 {
                    unexamined += labels.len() - seen;
                    labels.truncate(seen);
                    rows.truncate(seen * N_FEATURES);
                    groups.push((logged.ts, rows, labels));
                }
            })
            .await?;
        let mut report = RankerReport {
            trained: false,
            reason: None,
            version: None,
            lists,
            lists_with_outcomes: groups.len(),
            rows: groups.iter().map(|g| g.2.len()).sum(),
            unexamined,
            rounds: 0,
            held_out_ndcg_10: None,
            shown_order_ndcg_10: None,
            secs: 0.0,
        };
        if groups.len() < MIN_GROUPS {
            report.reason = Some(format!(
                "{} lists with a click, cart or purchase (rec_id sent with the event); at least {MIN_GROUPS} are needed",
                groups.len()
            ));
            report.secs = started.elapsed().as_secs_f64();
            return Ok(report);
        }
        groups.sort_by_key(|g| g.0);
        let cut = groups.len() - (groups.len() / 5).max(1);
        let (mut train, mut valid) = (Groups::default(), Groups::default());
        let mut shown = Vec::new();
        for (i, (_, rows, labels)) in groups.iter().enumerate() {
            if i < cut {
                train.push(rows, labels);
            } else {
                // Judged as served: every item at the serving position, so that the model
                // cannot win by replaying the order shown.
                let mut as_served = rows.clone();
                as_served.chunks_mut(N_FEATURES).for_each(|r| r[0] = SERVING_POSITION);
                shown.push(ndcg(labels, 10));
                valid.push(&as_served, labels);
            }
        }
        let params =
            Params { min_rounds: MIN_ROUNDS, max_depth: MAX_DEPTH, num_leaves: NUM_LEAVES, ..Params::default() };
        let trained = tokio::task::spawn_blocking(move || {
            Booster::train(N_FEATURES, &train, &valid, &params).map(|(b, r)| (b, r, params))
        })
        .await
        .map_err(|e| Error::Internal(format!("training the re-ranker failed: {e}")))??;
        let (booster, tr, params) = trained;
        report.rounds = tr.rounds;
        report.held_out_ndcg_10 = tr.valid_ndcg;
        report.shown_order_ndcg_10 = Some(shown.iter().sum::<f64>() / shown.len() as f64);
        let summary = serde_json::to_value(&report).unwrap_or_default();
        let version = Ranker::save(slot.data_dir(), &booster, &params, summary)?;
        // Serve what is on disk, checked as a restart would load it.
        let path = super::rank::dir(slot.data_dir()).join(format!("ranker-{version}.json"));
        slot.set(Ranker::load_file(&path)?);
        report.trained = true;
        report.version = Some(version);
        report.secs = started.elapsed().as_secs_f64();
        Ok(report)
    }
}

impl Recommender {
    /// Events sent without a `rec_id`: a click, cart or purchase of a product that a list shown
    /// to the same customer (else session) held within `attribution_minutes` before gets that
    /// list's `rec_id`, the latest such. Returns the indices of the events given one.
    pub fn attribute_unsent(&self, inputs: &mut [EventInput]) -> Vec<usize> {
        let window = (self.config.attribution_minutes * 60.0) as i64;
        if window <= 0 {
            return vec![];
        }
        let now = Utc::now();
        let mut given = Vec::new();
        for (i, e) in inputs.iter_mut().enumerate() {
            if e.rec_id.is_some() || grade(e.kind).is_none_or(|g| g <= 0.0) {
                continue;
            }
            let Some(shopper) = self.shopper_key(e.customer_id.as_deref(), e.session_id.as_deref()) else {
                continue;
            };
            if let Some(rec) = self.stats.shown_to(&shopper, &e.product_id, e.timestamp.unwrap_or(now), window) {
                e.rec_id = Some(rec.to_string());
                given.push(i);
            }
        }
        given
    }
}

/// The rows to log for the shown items: each with its true position.
pub(super) fn as_shown(rows: &Rows, shown: &[(Uuid, String)]) -> HashMap<String, Vec<f32>> {
    shown
        .iter()
        .enumerate()
        .filter_map(|(pos, (id, product))| {
            let mut r = *rows.get(id)?;
            r[0] = pos as f32;
            Some((product.clone(), r.to_vec()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grades_and_ndcg() {
        assert_eq!(grade(Kind::Purchase), Some(3.0));
        assert_eq!(grade(Kind::View), None);
        assert_eq!(ndcg(&[0.0, 1.0], 10), 1.0 / 3f64.log2());
        assert_eq!(ndcg(&[3.0, 1.0, 0.0], 10), 1.0);
        assert_eq!(ndcg(&[0.0, 0.0], 10), 0.0);
    }

    #[test]
    fn the_examined_items_end_one_below_the_last_click() {
        assert_eq!(examined(&[0.0, 0.0, 1.0, 0.0, 0.0, 0.0]), 4);
        assert_eq!(examined(&[1.0, 0.0, 0.0]), 2);
        assert_eq!(examined(&[0.0, 3.0, 0.0, 1.0]), 4);
        assert_eq!(examined(&[0.0, 0.0]), 0, "no click: nothing to learn, nothing examined");
    }

    #[test]
    fn shown_rows_carry_their_true_position() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let rows: Rows = [(a, [5.0; N_FEATURES]), (b, [6.0; N_FEATURES])].into_iter().collect();
        let logged = as_shown(&rows, &[(b, "b".into()), (Uuid::new_v4(), "pinned".into()), (a, "a".into())]);
        assert_eq!(logged["b"][0], 0.0);
        assert_eq!(logged["a"][0], 2.0);
        assert_eq!(logged["a"][1], 5.0);
        assert!(!logged.contains_key("pinned"));
    }
}
