//! The models compared: TopPop, ItemKNN, RP3beta, EASE, iALS and content-only, and the item-item models
//! behind the hybrid's co_purchase source. The hybrid itself (these models' rankings fused by
//! weighted reciprocal-rank fusion, as the server fuses its Qdrant prefetches) is in `report`.

use std::collections::HashMap;

use rayon::prelude::*;

use crate::recommend::cf::{AlsConfig, Factors, Interactions, train_als, train_ease, train_item_knn, train_rp3beta};

/// A user's training history: (item, weight, time), oldest first.
pub type History = Vec<(u32, f32, i64)>;

/// A trained model.
pub enum Trained {
    /// Training popularity.
    Pop(Vec<f32>),
    /// Item neighbours.
    Knn(Vec<Vec<(u32, f32)>>),
    /// EASE weights, `n x n`.
    Ease(usize, Vec<f32>),
    /// iALS factors (user factors by dense user id).
    Als(Factors),
    /// Unit item vectors of the items' texts; the user is the recency-weighted mean of theirs.
    Content(std::sync::Arc<Vec<Vec<f32>>>),
}

impl Trained {
    /// Scores of every item for a user (higher is better).
    pub fn score(&self, user: u32, history: &[(u32, f32, i64)], out: &mut [f32]) {
        out.fill(0.0);
        match self {
            Trained::Pop(p) => out.copy_from_slice(p),
            Trained::Knn(nn) => {
                for &(j, _, _) in history {
                    for &(i, s) in &nn[j as usize] {
                        out[i as usize] += s;
                    }
                }
            }
            Trained::Ease(n, b) => {
                for &(j, _, _) in history {
                    let row = &b[j as usize * n..(j as usize + 1) * n];
                    for (o, w) in out.iter_mut().zip(row) {
                        *o += w;
                    }
                }
            }
            Trained::Als(f) => {
                if (user as usize) * f.k < f.users.len() {
                    let x = f.user(user as usize);
                    for (i, o) in out.iter_mut().enumerate() {
                        *o = x.iter().zip(f.item(i)).map(|(a, b)| a * b).sum();
                    }
                }
            }
            Trained::Content(v) => {
                let dim = v.first().map(Vec::len).unwrap_or(0);
                let mut profile = vec![0f32; dim];
                let n = history.len();
                for (r, &(j, _, _)) in history.iter().enumerate() {
                    // Recent items count more: half weight 20 items back.
                    let w = 0.5f32.powf((n - 1 - r) as f32 / 20.0);
                    for (p, x) in profile.iter_mut().zip(&v[j as usize]) {
                        *p += w * x;
                    }
                }
                for (o, item) in out.iter_mut().zip(v.iter()) {
                    *o = item.iter().zip(&profile).map(|(a, b)| a * b).sum();
                }
            }
        }
    }
}

/// Training data in the shapes the models need.
pub struct TrainSet {
    /// Items.
    pub n_items: usize,
    /// Users.
    pub n_users: usize,
    /// The interaction matrix.
    pub matrix: Interactions,
    /// Per user: history oldest first.
    pub histories: HashMap<u32, History>,
    /// Interactions per item.
    pub popularity: Vec<f32>,
}

impl TrainSet {
    /// From (user, item, weight, time) tuples.
    pub fn new(n_users: usize, n_items: usize, train: &[(u32, u32, f32, i64)]) -> Self {
        let matrix = Interactions::new(n_users, n_items, train.iter().map(|x| (x.0, x.1, x.2)));
        let mut histories: HashMap<u32, History> = HashMap::new();
        let mut popularity = vec![0f32; n_items];
        let mut sorted = train.to_vec();
        sorted.sort_by_key(|x| (x.3, x.0, x.1));
        for x in sorted {
            histories.entry(x.0).or_default().push((x.1, x.2, x.3));
            popularity[x.1 as usize] += 1.0;
        }
        Self { n_items, n_users, matrix, histories, popularity }
    }
}

/// A model family with its hyper-parameter grid.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "model")]
pub enum Scorer {
    /// Most popular first.
    TopPop,
    /// Item-kNN with `k` neighbours and a shrink term.
    ItemKnn {
        /// Neighbours kept per item.
        k: usize,
        /// Added to the cosine's denominator.
        shrink: f32,
    },
    /// RP3beta: a three-step random walk, damped by popularity.
    Rp3Beta {
        /// Exponent of each step's transition probability.
        alpha: f32,
        /// Exponent of the target item's popularity in the denominator.
        beta: f32,
        /// Neighbours kept per item.
        k: usize,
    },
    /// EASE with L2 `reg`.
    Ease {
        /// L2 regularisation.
        reg: f64,
    },
    /// Implicit ALS.
    Ials(AlsConfig),
    /// Text embeddings only.
    Content,
}

impl Scorer {
    /// Train on `t` (item vectors are needed by content and the hybrid).
    pub fn train(&self, t: &TrainSet, vectors: Option<&std::sync::Arc<Vec<Vec<f32>>>>) -> Trained {
        match self {
            Scorer::TopPop => Trained::Pop(t.popularity.clone()),
            Scorer::ItemKnn { k, shrink } => Trained::Knn(train_item_knn(&t.matrix, *k, *shrink)),
            Scorer::Rp3Beta { alpha, beta, k } => Trained::Knn(train_rp3beta(&t.matrix, *alpha, *beta, *k)),
            Scorer::Ease { reg } => Trained::Ease(t.n_items, train_ease(&t.matrix, *reg)),
            Scorer::Ials(c) => Trained::Als(train_als(&t.matrix, c, |_, _| {})),
            Scorer::Content => Trained::Content(vectors.expect("content needs item vectors").clone()),
        }
    }
}

/// The item-item neighbours behind `co_purchase`: cosine item-kNN, RP3beta, or EASE's weights
/// cut to each item's strongest `k` (both are sparse item-item rows, which is what the products'
/// sparse `co` vectors hold in the server).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ItemItem {
    /// Cosine item-kNN.
    Knn {
        /// Neighbours per item.
        k: usize,
        /// Shrink.
        shrink: f32,
    },
    /// RP3beta's random-walk neighbours.
    Rp3Beta {
        /// Step exponent.
        alpha: f32,
        /// Popularity exponent.
        beta: f32,
        /// Neighbours per item.
        k: usize,
    },
    /// EASE, top `k` weights per item.
    Ease {
        /// L2 regularisation.
        reg: f64,
        /// Neighbours per item.
        k: usize,
    },
}

impl ItemItem {
    /// Train the neighbour lists.
    pub fn train(&self, m: &Interactions) -> Vec<Vec<(u32, f32)>> {
        match *self {
            ItemItem::Knn { k, shrink } => train_item_knn(m, k, shrink),
            ItemItem::Rp3Beta { alpha, beta, k } => train_rp3beta(m, alpha, beta, k),
            ItemItem::Ease { reg, k } => ease_neighbours(m.n_items, &train_ease(m, reg), k),
        }
    }
}

/// Each item's `k` largest positive EASE weights `B[j, i]` (the items it recommends).
pub fn ease_neighbours(n: usize, b: &[f32], k: usize) -> Vec<Vec<(u32, f32)>> {
    (0..n)
        .into_par_iter()
        .map(|j| {
            let row = &b[j * n..(j + 1) * n];
            let mut v: Vec<(u32, f32)> =
                row.iter().enumerate().filter(|(_, w)| **w > 0.0).map(|(i, w)| (i as u32, *w)).collect();
            v.sort_by(|a, b| b.1.total_cmp(&a.1));
            v.truncate(k);
            v
        })
        .collect()
}
