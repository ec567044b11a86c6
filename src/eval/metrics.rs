//! Full-ranking metrics: Recall@K, NDCG@K, HR@K, MRR@K per user, averaged over test users;
//! catalog coverage, average popularity and intra-list diversity of the top-K lists, and their
//! exposure: the Gini coefficient of how often each item is recommended, and the share of
//! recommendations outside the most popular 20% of items (as `GET /v1/stats/exposure`
//! reports for the lists a shop served).

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;
use serde::Serialize;

/// Averages over the test users.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Metrics {
    /// Users evaluated.
    pub users: usize,
    /// Recall@10.
    pub recall_10: f64,
    /// Recall@20.
    pub recall_20: f64,
    /// NDCG@10.
    pub ndcg_10: f64,
    /// NDCG@20.
    pub ndcg_20: f64,
    /// HR@10 (share of users with a hit in the top 10).
    pub hr_10: f64,
    /// MRR@20 (reciprocal rank of the first hit in the top 20, else 0).
    pub mrr_20: f64,
    /// Share of the catalog that appears in some top-20 list.
    pub coverage_20: f64,
    /// Mean training popularity (interaction count) of the recommended top-20 items.
    pub avg_pop_20: f64,
    /// Mean pairwise (1 - cosine) of item vectors within each top-10 list.
    pub ild_10: f64,
    /// Gini coefficient of the number of top-20 lists each catalog item is in (0: every item
    /// as often, 1: one item everywhere).
    #[serde(default)]
    pub gini_20: f64,
    /// Share of top-20 slots given to items outside the 20% most popular in training.
    #[serde(default)]
    pub long_tail_20: f64,
}

/// Recall@k: hits in the top k over the user's held-out items.
pub fn recall(ranked: &[u32], relevant: &HashSet<u32>, k: usize) -> f64 {
    if relevant.is_empty() {
        return 0.0;
    }
    ranked.iter().take(k).filter(|i| relevant.contains(i)).count() as f64 / relevant.len() as f64
}

/// NDCG@k with binary relevance; the ideal list puts min(|relevant|, k) hits first.
pub fn ndcg(ranked: &[u32], relevant: &HashSet<u32>, k: usize) -> f64 {
    let dcg: f64 = ranked
        .iter()
        .take(k)
        .enumerate()
        .filter(|(_, i)| relevant.contains(i))
        .map(|(r, _)| 1.0 / ((r + 2) as f64).log2())
        .sum();
    let ideal: f64 = (0..relevant.len().min(k)).map(|r| 1.0 / ((r + 2) as f64).log2()).sum();
    if ideal == 0.0 { 0.0 } else { dcg / ideal }
}

/// 1 if any of the top k is relevant.
pub fn hit(ranked: &[u32], relevant: &HashSet<u32>, k: usize) -> f64 {
    if ranked.iter().take(k).any(|i| relevant.contains(i)) { 1.0 } else { 0.0 }
}

/// 1 / rank of the first relevant item in the top k, else 0.
pub fn mrr(ranked: &[u32], relevant: &HashSet<u32>, k: usize) -> f64 {
    ranked.iter().take(k).position(|i| relevant.contains(i)).map(|p| 1.0 / (p + 1) as f64).unwrap_or(0.0)
}

/// Mean pairwise cosine distance of unit vectors `vectors[i]` for the items of `list`.
pub fn intra_list_diversity(list: &[u32], vectors: &[Vec<f32>]) -> f64 {
    let mut sum = 0.0;
    let mut n = 0usize;
    for (a, &i) in list.iter().enumerate() {
        for &j in &list[a + 1..] {
            let (x, y) = (&vectors[i as usize], &vectors[j as usize]);
            let cos: f32 = x.iter().zip(y).map(|(a, b)| a * b).sum();
            sum += 1.0 - cos as f64;
            n += 1;
        }
    }
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// The top `k` items by score, leaving out `exclude` (ties broken by item id).
pub fn top_k(scores: &[f32], exclude: &HashSet<u32>, k: usize) -> Vec<u32> {
    let mut idx: Vec<u32> = (0..scores.len() as u32).filter(|i| !exclude.contains(i)).collect();
    let k = k.min(idx.len());
    if k == 0 {
        return vec![];
    }
    let cmp = |a: &u32, b: &u32| scores[*b as usize].total_cmp(&scores[*a as usize]).then(a.cmp(b));
    idx.select_nth_unstable_by(k - 1, cmp);
    idx.truncate(k);
    idx.sort_by(cmp);
    idx
}

/// Evaluate a scorer: `score(user, out)` fills `out` (one score per item) for a user.
pub fn evaluate(
    n_items: usize,
    train_items: &HashMap<u32, HashSet<u32>>,
    test: &HashMap<u32, Vec<u32>>,
    popularity: &[f32],
    item_vectors: Option<&[Vec<f32>]>,
    score: &(dyn Fn(u32, &mut [f32]) + Sync),
) -> Metrics {
    let mut users: Vec<u32> = test.keys().copied().collect();
    users.sort();
    let empty = HashSet::new();
    let per_user: Vec<(Vec<u32>, [f64; 7])> = users
        .par_iter()
        .map(|&u| {
            let mut scores = vec![0f32; n_items];
            score(u, &mut scores);
            let ranked = top_k(&scores, train_items.get(&u).unwrap_or(&empty), 20);
            let relevant: HashSet<u32> = test[&u].iter().copied().collect();
            let pop = ranked.iter().map(|i| popularity[*i as usize] as f64).sum::<f64>() / ranked.len().max(1) as f64;
            let m = [
                recall(&ranked, &relevant, 10),
                recall(&ranked, &relevant, 20),
                ndcg(&ranked, &relevant, 10),
                ndcg(&ranked, &relevant, 20),
                hit(&ranked, &relevant, 10),
                mrr(&ranked, &relevant, 20),
                pop,
            ];
            (ranked, m)
        })
        .collect();
    let n = per_user.len().max(1) as f64;
    let mean = |c: usize| per_user.iter().map(|(_, m)| m[c]).sum::<f64>() / n;
    let covered: HashSet<u32> = per_user.iter().flat_map(|(r, _)| r.iter().copied()).collect();
    let mut times = vec![0f64; n_items];
    for (r, _) in &per_user {
        for i in r {
            times[*i as usize] += 1.0;
        }
    }
    // The head: the 20% most popular items in training (ties by id).
    let mut by_pop: Vec<usize> = (0..n_items).collect();
    by_pop.sort_by(|a, b| popularity[*b].total_cmp(&popularity[*a]).then(a.cmp(b)));
    let head: HashSet<usize> = by_pop.into_iter().take(n_items.div_ceil(5)).collect();
    let slots: f64 = times.iter().sum();
    let tail: f64 = times.iter().enumerate().filter(|(i, _)| !head.contains(i)).map(|(_, t)| t).sum();
    let ild = match item_vectors {
        Some(v) => per_user.iter().map(|(r, _)| intra_list_diversity(&r[..r.len().min(10)], v)).sum::<f64>() / n,
        None => 0.0,
    };
    Metrics {
        users: per_user.len(),
        recall_10: mean(0),
        recall_20: mean(1),
        ndcg_10: mean(2),
        ndcg_20: mean(3),
        hr_10: mean(4),
        mrr_20: mean(5),
        coverage_20: covered.len() as f64 / n_items.max(1) as f64,
        avg_pop_20: mean(6),
        ild_10: ild,
        gini_20: crate::recommend::exposure::gini(&times),
        long_tail_20: if slots > 0.0 { tail / slots } else { 0.0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-computed: ranking [3, 1, 4, 5, 9], relevant {1, 5, 7}.
    #[test]
    fn metrics_match_hand_computed_values() {
        let ranked = [3, 1, 4, 5, 9];
        let rel: HashSet<u32> = [1, 5, 7].into();
        assert!((recall(&ranked, &rel, 5) - 2.0 / 3.0).abs() < 1e-12);
        assert!((recall(&ranked, &rel, 2) - 1.0 / 3.0).abs() < 1e-12);
        // DCG@5 = 1/log2(3) + 1/log2(5); IDCG@5 = 1 + 1/log2(3) + 1/log2(4).
        let dcg = 1.0 / 3f64.log2() + 1.0 / 5f64.log2();
        let idcg = 1.0 + 1.0 / 3f64.log2() + 0.5;
        assert!((ndcg(&ranked, &rel, 5) - dcg / idcg).abs() < 1e-12);
        // NDCG@2 = (1/log2 3) / (1 + 1/log2 3).
        assert!((ndcg(&ranked, &rel, 2) - (1.0 / 3f64.log2()) / (1.0 + 1.0 / 3f64.log2())).abs() < 1e-12);
        assert_eq!(hit(&ranked, &rel, 1), 0.0);
        assert_eq!(hit(&ranked, &rel, 2), 1.0);
        assert_eq!(mrr(&ranked, &rel, 5), 0.5);
        assert_eq!(mrr(&ranked, &rel, 1), 0.0);
    }

    #[test]
    fn evaluation_on_a_toy_split() {
        // 4 items, popularity [3, 2, 1, 0]; user 0 trained on item 0, tested on item 2;
        // user 1 trained on items 1 and 2, tested on item 3. Scorer: popularity.
        let pop = [3.0f32, 2.0, 1.0, 0.0];
        let train: HashMap<u32, HashSet<u32>> = [(0, [0].into()), (1, [1, 2].into())].into();
        let test: HashMap<u32, Vec<u32>> = [(0, vec![2]), (1, vec![3])].into();
        let m = evaluate(4, &train, &test, &pop, None, &|_, out: &mut [f32]| out.copy_from_slice(&pop));
        // User 0 ranks [1, 2, 3]: hit at rank 2. User 1 ranks [0, 3]: hit at rank 2.
        assert_eq!(m.users, 2);
        assert_eq!(m.recall_10, 1.0);
        assert_eq!(m.hr_10, 1.0);
        assert_eq!(m.mrr_20, 0.5);
        assert!((m.ndcg_10 - 1.0 / 3f64.log2()).abs() < 1e-12);
        // Coverage: items 0, 1, 2, 3 all appear.
        assert_eq!(m.coverage_20, 1.0);
        // Avg popularity: user 0 (2+1+0)/3 = 1, user 1 (3+0)/2 = 1.5; mean 1.25.
        assert!((m.avg_pop_20 - 1.25).abs() < 1e-12);
        let unit = vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![1.0, 0.0], vec![0.0, 1.0]];
        assert_eq!(intra_list_diversity(&[0, 1], &unit), 1.0);
        assert_eq!(intra_list_diversity(&[0, 2], &unit), 0.0);
        assert_eq!(top_k(&[0.5, 0.9, 0.9, 0.1], &[1].into(), 2), vec![2, 0]);
    }
}
