//! Maximal marginal relevance: pick items one by one, each maximising
//! `lambda * relevance - (1 - lambda) * (highest similarity to an item already picked)`, so that
//! one category (or near-duplicates) cannot fill a page.

/// Indices of `k` items chosen from `relevance` (any scale; min-max normalised here) and their
/// `vectors` (compared by cosine). The first `keep_top` picks follow relevance alone; the rest
/// are diversified against everything picked. `lambda = 1` keeps the relevance order.
pub fn mmr(relevance: &[f32], vectors: &[Vec<f32>], k: usize, lambda: f32, keep_top: usize) -> Vec<usize> {
    let n = relevance.len().min(vectors.len());
    if n == 0 || k == 0 {
        return vec![];
    }
    let (lo, hi) = relevance[..n].iter().fold((f32::MAX, f32::MIN), |(a, b), r| (a.min(*r), b.max(*r)));
    let rel: Vec<f32> = relevance[..n].iter().map(|r| if hi > lo { (r - lo) / (hi - lo) } else { 1.0 }).collect();
    let norms: Vec<f32> = vectors[..n].iter().map(|v| v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12)).collect();
    let cosine = |a: usize, b: usize| -> f32 {
        vectors[a].iter().zip(&vectors[b]).map(|(x, y)| x * y).sum::<f32>() / (norms[a] * norms[b])
    };
    let mut chosen: Vec<usize> = Vec::with_capacity(k.min(n));
    let mut max_sim = vec![f32::MIN; n];
    let mut taken = vec![false; n];
    while chosen.len() < k.min(n) {
        let mut best = None;
        let mut best_score = f32::MIN;
        for i in 0..n {
            if taken[i] {
                continue;
            }
            let score =
                if chosen.len() < keep_top.max(1) { rel[i] } else { lambda * rel[i] - (1.0 - lambda) * max_sim[i] };
            if score > best_score {
                best_score = score;
                best = Some(i);
            }
        }
        let Some(b) = best else { break };
        taken[b] = true;
        chosen.push(b);
        for i in 0..n {
            if !taken[i] {
                max_sim[i] = max_sim[i].max(cosine(i, b));
            }
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_one_keeps_the_relevance_order() {
        let rel = [0.9, 0.5, 0.7];
        let v = vec![vec![1.0, 0.0], vec![1.0, 0.0], vec![1.0, 0.0]];
        assert_eq!(mmr(&rel, &v, 3, 1.0, 0), vec![0, 2, 1]);
    }

    #[test]
    fn diversity_lifts_a_different_item_above_near_duplicates() {
        // Three near-identical items, slightly more relevant than one different item.
        let rel = [1.0, 0.95, 0.9, 0.8];
        let v = vec![vec![1.0, 0.0], vec![0.99, 0.01], vec![0.98, 0.02], vec![0.0, 1.0]];
        let picked = mmr(&rel, &v, 2, 0.5, 1);
        assert_eq!(picked, vec![0, 3]);
        assert_eq!(mmr(&rel, &v, 2, 1.0, 1), vec![0, 1]);
        assert!(mmr(&rel, &v, 10, 0.5, 1).len() == 4);
        assert!(mmr(&[], &[], 3, 0.5, 1).is_empty());
    }

    #[test]
    fn the_top_picks_keep_the_relevance_order() {
        let rel = [1.0, 0.95, 0.9, 0.8];
        let v = vec![vec![1.0, 0.0], vec![0.99, 0.01], vec![0.98, 0.02], vec![0.0, 1.0]];
        assert_eq!(mmr(&rel, &v, 4, 0.5, 2), vec![0, 1, 3, 2]);
    }
}
