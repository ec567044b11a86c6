//! The learned re-ranker offline, as Metarank reports it: the LambdaMART model, the fused order
//! it re-ranks, and a random order of the same candidates.
//!
//! Protocol (no test data is seen before the final scoring):
//! - on the validation stage (sources trained on the training part less its held-out tail),
//!   each user's top `CANDIDATES` fused items become one query group, labelled by the user's
//!   held-out validation items, with the features of `recommend::rank::features`;
//! - LambdaMART trains on four fifths of those users and stops early on the other fifth;
//! - on the test stage (sources retrained on the whole training part), the same features for
//!   each test user's top fused candidates are scored and ordered; every other item comes
//!   after them (the candidates are more than the metrics' cut-offs, so no metric reaches
//!   them). Metrics are the full-ranking metrics of `evaluate`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rayon::prelude::*;

use super::data::Dataset;
use super::metrics::{Metrics, top_k};
use super::models::{ItemItem, Trained};
use super::report::{Row, Stage};
use crate::recommend::cf::AlsConfig;
use crate::recommend::rank::features::{Item, N_FEATURES, Seen, Shopper, Signals, row};
use crate::recommend::rank::{Booster, Groups, Params};

/// Candidates re-ranked per user.
pub const CANDIDATES: usize = 100;

/// Depth of each source's ranking (its rank feature is missing below it).
const DEPTH: usize = 500;

/// "Recent" for the trend feature: the last 14 days of the training part.
const RECENT_SECS: i64 = 14 * 86_400;

/// The session source's window: the user's last few items.
const SESSION_ITEMS: usize = 5;

/// The hybrid's sources, trained on one stage, in the weights' order: collab, co_purchase,
/// content, trending.
struct Sources {
    models: Vec<Option<Trained>>,
}

impl Sources {
    fn train(stage: &Stage, als: &AlsConfig, item_item: ItemItem, vectors: Option<&Arc<Vec<Vec<f32>>>>) -> Self {
        let m = &stage.train.matrix;
        Self {
            models: vec![
                Some(Trained::Als(crate::recommend::cf::train_als(m, als, |_, _| {}))),
                Some(Trained::Knn(item_item.train(m))),
                vectors.map(|v| Trained::Content(v.clone())),
                Some(Trained::Pop(stage.train.popularity.clone())),
            ],
        }
    }
}

/// Item facts from a stage's training part, seen from a moment: each user's "now" is their
/// last training interaction (what serving sees at request time).
struct ItemStats {
    /// Per item, its training interaction times, sorted.
    times: Vec<Vec<i64>>,
}

impl ItemStats {
    fn new(stage: &Stage) -> Self {
        let mut times = vec![vec![]; stage.train.n_items];
        for h in stage.train.histories.values() {
            for &(i, _, t) in h {
                times[i as usize].push(t);
            }
        }
        times.iter_mut().for_each(|t| t.sort_unstable());
        Self { times }
    }

    /// Interactions up to `now`, those in the recent window before it, and the days since the
    /// first one.
    fn at(&self, item: usize, now: i64) -> (f32, f32, Option<f32>) {
        let t = &self.times[item];
        let upto = t.partition_point(|x| *x <= now);
        let from = t.partition_point(|x| *x <= now - RECENT_SECS);
        let age = t.first().filter(|f| **f <= now).map(|f| (now - f) as f32 / 86_400.0);
        (upto as f32, (upto - from) as f32, age)
    }
}

/// One user's candidates: items (fused order), their feature rows, fused scores.
struct Group {
    items: Vec<u32>,
    rows: Vec<f32>,
    fused: Vec<f32>,
}

fn group(stage: &Stage, ds: &Dataset, src: &Sources, weights: &[f32; 4], stats: &ItemStats, user: u32) -> Group {
    let n = stage.train.n_items;
    let empty = vec![];
    let history = stage.train.histories.get(&user).unwrap_or(&empty);
    let none = HashSet::new();
    let seen = stage.seen.get(&user).unwrap_or(&none);
    let k = crate::recommend::RRF_K as f32;
    let mut scores: Vec<Option<Vec<f32>>> = vec![];
    let mut ranks: Vec<Vec<f32>> = vec![];
    let mut fused = vec![0f32; n];
    for (m, w) in src.models.iter().zip(weights) {
        let mut rank = vec![f32::NAN; n];
        let s = m.as_ref().map(|m| {
            let mut out = vec![0f32; n];
            m.score(user, history, &mut out);
            for (r, i) in top_k(&out, seen, DEPTH).into_iter().enumerate() {
                rank[i as usize] = r as f32;
                fused[i as usize] += w / (k + r as f32 + 1.0);
            }
            out
        });
        scores.push(s);
        ranks.push(rank);
    }
    // The session source: the co_purchase model from the user's last few items only.
    {
        let mut recent = history.clone();
        recent.sort_by_key(|x| std::cmp::Reverse(x.2));
        recent.truncate(SESSION_ITEMS);
        let mut rank = vec![f32::NAN; n];
        let mut out = vec![0f32; n];
        if let Some(m) = &src.models[1] {
            m.score(user, &recent, &mut out);
            for (r, i) in top_k(&out, seen, DEPTH).into_iter().enumerate() {
                rank[i as usize] = r as f32;
            }
        }
        scores.insert(3, Some(out));
        ranks.insert(3, rank);
    }
    let items = top_k(&fused, seen, CANDIDATES);
    let pop = &stage.train.popularity;
    let shopper = Shopper::from_history(history.iter().map(|&(i, _, _)| Seen {
        categories: &ds.item_categories[i as usize],
        brand: ds.item_brand[i as usize].as_deref(),
        price: ds.item_price[i as usize],
        popularity: Some(pop[i as usize]),
    }));
    let now = history.iter().map(|x| x.2).max().unwrap_or(i64::MAX);
    let mut rows = Vec::with_capacity(items.len() * N_FEATURES);
    for (r, &i) in items.iter().enumerate() {
        let i = i as usize;
        let at = |s: usize| -> Option<(f32, f32)> {
            let rank = ranks[s][i];
            (!rank.is_nan()).then(|| (rank, scores[s].as_ref().map_or(0.0, |v| v[i])))
        };
        let signals = Signals {
            position: 0.0,
            fused: (r as f32, fused[i]),
            // Row order: collab, co_purchase, content, session (none offline), trending.
            sources: [at(0), at(1), at(2), at(3), at(4)],
            collab_similarity: scores[0].as_ref().map(|v| v[i]),
            taste_similarity: scores[2].as_ref().map(|v| v[i]),
        };
        let (_, recent, age_days) = stats.at(i, now);
        let item = Item {
            popularity: Some(pop[i]),
            recent: Some(recent),
            age_days,
            price: ds.item_price[i],
            categories: &ds.item_categories[i],
            brand: ds.item_brand[i].as_deref(),
        };
        let fr = row(&signals, &shopper, &item);
        rows.extend_from_slice(&fr);
    }
    let fused_of = items.iter().map(|i| fused[*i as usize]).collect();
    Group { items, rows, fused: fused_of }
}

fn groups(stage: &Stage, ds: &Dataset, src: &Sources, weights: &[f32; 4]) -> Vec<(u32, Group)> {
    let stats = ItemStats::new(stage);
    let mut users: Vec<u32> = stage.test.keys().copied().collect();
    users.sort();
    users.into_par_iter().map(|u| (u, group(stage, ds, src, weights, &stats, u))).collect()
}

/// NDCG@k of a list in its given order (binary labels), as LightGBM computes it per group.
fn list_ndcg(labels: &[f32], k: usize) -> f64 {
    let dcg = |l: &[f32]| l.iter().take(k).enumerate().map(|(r, g)| (*g as f64) / ((r + 2) as f64).log2()).sum::<f64>();
    let mut ideal = labels.to_vec();
    ideal.sort_by(|a, b| b.total_cmp(a));
    let best = dcg(&ideal);
    if best > 0.0 { dcg(labels) / best } else { 0.0 }
}

/// A fixed pseudo-random permutation key (splitmix64).
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What the three-way report needs from the hybrid.
pub struct Hybrid<'a> {
    /// The collab source's settings.
    pub als: AlsConfig,
    /// The co_purchase source's item-item model.
    pub item_item: ItemItem,
    /// Fusion weights: collab, co_purchase, content, trending.
    pub weights: [f32; 4],
    /// Item text vectors, when the content source is on.
    pub vectors: Option<&'a Arc<Vec<Vec<f32>>>>,
}

/// Train the ranker on the validation stage and report three rows on the test stage: the
/// re-ranked hybrid, the fused order it re-ranks and a random order of the same candidates.
pub(super) fn run(
    ds: &Dataset,
    valid: &Stage,
    test: &Stage,
    h: &Hybrid,
    progress: &dyn Fn(&str),
) -> crate::Result<Vec<Row>> {
    let started = std::time::Instant::now();
    let vsrc = Sources::train(valid, &h.als, h.item_item, h.vectors);
    let (mut train, mut hold) = (Groups::default(), Groups::default());
    let mut positives = 0usize;
    let mut hold_fused_ndcg = vec![];
    for (u, g) in groups(valid, ds, &vsrc, &h.weights) {
        let relevant: HashSet<u32> = valid.test[&u].iter().copied().collect();
        let labels: Vec<f32> = g.items.iter().map(|i| if relevant.contains(i) { 1.0 } else { 0.0 }).collect();
        if !labels.contains(&1.0) {
            continue; // no gradient from a list without a relevant item
        }
        positives += labels.iter().filter(|l| **l > 0.0).count();
        if mix(u as u64).is_multiple_of(5) {
            hold_fused_ndcg.push(list_ndcg(&labels, 10));
            hold.push(&g.rows, &labels)
        } else {
            train.push(&g.rows, &labels)
        }
    }
    let params = Params::default();
    let (booster, report) = Booster::train(N_FEATURES, &train, &hold, &params)?;
    let train_secs = started.elapsed().as_secs_f64();
    progress(&format!(
        "ranker: {} + {} validation groups ({positives} relevant items), {} rounds, held-out NDCG@10 {:.4} \
         (fused order {:.4}), {:.1} s",
        train.len(),
        hold.len(),
        report.rounds,
        report.valid_ndcg.unwrap_or(f64::NAN),
        hold_fused_ndcg.iter().sum::<f64>() / hold_fused_ndcg.len().max(1) as f64,
        train_secs
    ));
    let tsrc = Sources::train(test, &h.als, h.item_item, h.vectors);
    let tgroups: HashMap<u32, Group> = groups(test, ds, &tsrc, &h.weights).into_iter().collect();
    let mut model_scores: HashMap<u32, Vec<f64>> = HashMap::new();
    for (u, g) in &tgroups {
        model_scores.insert(*u, booster.predict(&g.rows)?);
    }
    let vref = h.vectors.map(|v| v.as_slice());
    // Candidates first in the given order, every other item after them.
    let eval = |order: &(dyn Fn(u32, &Group, usize) -> f32 + Sync)| -> Metrics {
        test.eval_with(vref, &|u, out| {
            let g = &tgroups[&u];
            out.fill(-1.0);
            for (r, &i) in g.items.iter().enumerate() {
                out[i as usize] = 1000.0 + order(u, g, r);
            }
        })
    };
    let reranked = eval(&|u, _, r| model_scores[&u][r] as f32);
    let fused = eval(&|_, g, r| g.fused[r]);
    let random = eval(&|u, g, r| (mix(((u as u64) << 32) | g.items[r] as u64) >> 40) as f32);
    let chosen = serde_json::json!({"candidates": CANDIDATES, "params": params, "rounds": report.rounds,
        "validation_groups": train.len() + hold.len()});
    let row = |model: &str, m: Metrics, secs: f64| Row {
        model: model.into(),
        chosen: chosen.clone(),
        validation_ndcg_10: report.valid_ndcg.unwrap_or(f64::NAN),
        tried: 1,
        test: m,
        train_secs: secs,
    };
    progress(&format!(
        "test re-ranked: NDCG@10 {:.4}, Recall@20 {:.4}; fused {:.4} / {:.4}; random {:.4} / {:.4}",
        reranked.ndcg_10, reranked.recall_20, fused.ndcg_10, fused.recall_20, random.ndcg_10, random.recall_20
    ));
    Ok(vec![
        row("hybrid + LambdaMART", reranked, train_secs),
        row("hybrid, fused order", fused, 0.0),
        row("hybrid, random order", random, 0.0),
    ])
}
