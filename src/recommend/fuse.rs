//! From sources to a page of candidates: the fused query (every source a prefetch, weighted
//! RRF in the engine), each source's own ranks of the same candidates, MMR diversity, and the
//! fill that keeps the page full.
//!
//! Not for choosing the sources or the filter (see `sources`), nor for turning candidates into
//! response items (see `explain`).

use std::collections::HashMap;

use uuid::Uuid;

use super::request::{SourceName, SourceRank};
use super::rules::{Active, Caps};
use super::{RRF_K, Recommender, mmr};
use crate::catalog::{PRODUCTS, TEXT_VECTOR, product_point};
use crate::error::{Error, Result};
use crate::store::{Condition, Filter, Hit, Prefetch, Query, Ranking, Source, Vector};

/// A chosen product with the sources that proposed it, strongest first.
pub(super) type Candidate = (Hit, Vec<SourceRank>);

impl Recommender {
    /// The fused ranking: ONE query, every source a prefetch, weighted by `weights` (over the
    /// configuration), and one prefetch per `boost` rule (the strongest source's query limited
    /// to the rule's products, weighted by the rule); a pool of candidates with their text
    /// vectors for diversity.
    pub(super) async fn fused(
        &self,
        sources: &[(SourceName, Source)],
        boosts: &[(String, f32, Filter)],
        weights: &HashMap<SourceName, f32>,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<Hit>> {
        let pool = (limit * 3).max(30);
        if sources.is_empty() {
            return Ok(vec![]);
        }
        let mut prefetch: Vec<Prefetch> = sources
            .iter()
            .map(|(_, src)| Prefetch { source: src.clone(), filter: None, limit: self.config.candidates })
            .collect();
        let mut weights: Vec<f32> = sources.iter().map(|(s, _)| self.weight(*s, weights)).collect();
        // The strongest source: the first that knows the shopper, else trending.
        let strongest = sources.iter().find(|(s, _)| *s != SourceName::Trending).unwrap_or(&sources[0]);
        for (_, weight, target) in boosts {
            prefetch.push(Prefetch {
                source: strongest.1.clone(),
                filter: Some(target.clone()),
                limit: self.config.candidates,
            });
            weights.push(*weight);
        }
        let query = Query {
            prefetch,
            ranking: Ranking::Rrf { k: RRF_K, weights: Some(weights) },
            filter: Some(filter.clone()),
            limit: pool,
            offset: 0,
            with_vectors: vec![TEXT_VECTOR.into()],
        };
        self.store.query(PRODUCTS, query).await
    }

    /// Per-source ranks of the same candidates, for the explanations.
    pub(super) async fn source_ranks(
        &self,
        sources: &[(SourceName, Source)],
        filter: &Filter,
    ) -> Result<HashMap<Uuid, Vec<SourceRank>>> {
        let per_source = futures::future::try_join_all(sources.iter().map(|(name, src)| {
            let query = Query {
                prefetch: vec![Prefetch { source: src.clone(), filter: None, limit: self.config.candidates }],
                ranking: Ranking::Rrf { k: RRF_K, weights: None },
                filter: Some(filter.clone()),
                limit: self.config.candidates,
                offset: 0,
                with_vectors: vec![],
            };
            let name = *name;
            async move { Ok::<_, Error>((name, self.store.query_ids(PRODUCTS, query).await?)) }
        }))
        .await?;
        let mut ranks: HashMap<Uuid, Vec<SourceRank>> = HashMap::new();
        for (name, hits) in &per_source {
            for (i, h) in hits.iter().enumerate() {
                ranks.entry(h.id).or_default().push(SourceRank { source: *name, rank: i + 1 });
            }
        }
        Ok(ranks)
    }

    /// Diversity: `limit` of the fused hits picked by MMR with trade-off `lambda`, each with
    /// its sources ordered by their contribution to the fused score. Items a `bury` rule
    /// matches come after every other candidate; items past a `cap` are skipped.
    pub(super) fn diversify(
        &self,
        fused: &[Hit],
        mut ranks: HashMap<Uuid, Vec<SourceRank>>,
        lambda: f32,
        weights: &HashMap<SourceName, f32>,
        limit: usize,
        rules: &Active,
    ) -> Vec<Candidate> {
        let relevance: Vec<f32> = fused.iter().map(|h| h.score).collect();
        let vectors: Vec<Vec<f32>> = fused
            .iter()
            .map(|h| match h.vectors.get(TEXT_VECTOR) {
                Some(Vector::Dense(v)) => v.clone(),
                _ => vec![],
            })
            .collect();
        // With bury or cap rules, the whole pool in MMR order (its first `limit` are what MMR
        // would pick for `limit`), since some picks may be skipped or moved back; else `limit`.
        let k = if rules.reorders() { fused.len() } else { limit };
        let order = mmr::mmr(&relevance, &vectors, k, lambda, self.config.mmr_keep_top);
        let (kept, buried): (Vec<usize>, Vec<usize>) =
            order.into_iter().partition(|i| !rules.buried(&fused[*i].payload));
        let mut caps = Caps::default();
        kept.into_iter()
            .chain(buried)
            .filter(|i| caps.take(rules, &fused[*i].payload))
            .take(limit)
            .map(|i| {
                let h = fused[i].clone();
                let mut r = ranks.remove(&h.id).unwrap_or_default();
                r.sort_by(|a, b| {
                    let ca = self.weight(a.source, weights) / (RRF_K + a.rank) as f32;
                    let cb = self.weight(b.source, weights) / (RRF_K + b.rank) as f32;
                    cb.total_cmp(&ca)
                });
                (h, r)
            })
            .collect()
    }

    /// Always full: when `chosen` is short of `limit`, add other products matching the filter
    /// (in store order, within the caps, buried ones last), proposed by the `fallback` source.
    pub(super) async fn fill(
        &self,
        chosen: &mut Vec<Candidate>,
        filter: &Filter,
        limit: usize,
        rules: &Active,
    ) -> Result<()> {
        if chosen.len() >= limit {
            return Ok(());
        }
        let mut caps = Caps::default();
        for (h, _) in chosen.iter() {
            caps.take(rules, &h.payload);
        }
        let mut fill_filter = filter.clone();
        let taken: Vec<Uuid> = chosen.iter().map(|(h, _)| h.id).collect();
        if !taken.is_empty() {
            fill_filter = fill_filter.must_not(Condition::HasId(taken));
        }
        // Without caps the first page is enough; with caps, read on (a few pages at most).
        let (page_size, pages) = if rules.has_caps() { (100, 10) } else { (limit - chosen.len(), 1) };
        let mut buried = Vec::new();
        let mut offset = None;
        for _ in 0..pages {
            let page = self.store.scroll(PRODUCTS, Some(fill_filter.clone()), offset, page_size).await?;
            for r in page.records {
                let hit = Hit { id: r.id, score: 0.0, payload: r.payload, vectors: r.vectors };
                if rules.buried(&hit.payload) {
                    buried.push(hit);
                } else if chosen.len() < limit && caps.take(rules, &hit.payload) {
                    chosen.push((hit, vec![SourceRank { source: SourceName::Fallback, rank: 1 }]));
                }
            }
            match page.next {
                Some(n) if chosen.len() < limit => offset = Some(n),
                _ => break,
            }
        }
        for hit in buried {
            if chosen.len() < limit && caps.take(rules, &hit.payload) {
                chosen.push((hit, vec![SourceRank { source: SourceName::Fallback, rank: 1 }]));
            }
        }
        Ok(())
    }

    /// Place the products of `pin` rules at their positions (those the filter lets through, in
    /// each rule's order), keeping the sources of any that were chosen anyway; the list stays
    /// `limit` long. Returns the pinned products' points with the rule that pinned each.
    pub(super) async fn pin(
        &self,
        chosen: &mut Vec<Candidate>,
        filter: &Filter,
        limit: usize,
        rules: &Active,
    ) -> Result<HashMap<Uuid, String>> {
        let mut pinned = HashMap::new();
        for (rule, position, products) in rules.pins() {
            let points: Vec<Uuid> = products.iter().map(|p| product_point(p)).collect();
            let allowed = filter.clone().must(Condition::HasId(points.clone()));
            let found = self.store.scroll(PRODUCTS, Some(allowed), None, points.len()).await?.records;
            let mut at = position;
            for point in points {
                if pinned.contains_key(&point) {
                    continue;
                }
                let Some(r) = found.iter().find(|r| r.id == point) else { continue };
                let sources = match chosen.iter().position(|(h, _)| h.id == point) {
                    Some(i) => chosen.remove(i).1,
                    None => vec![],
                };
                let hit = Hit { id: r.id, score: 0.0, payload: r.payload.clone(), vectors: r.vectors.clone() };
                chosen.insert(at.min(chosen.len()), (hit, sources));
                pinned.insert(point, rule.clone());
                at += 1;
            }
        }
        chosen.truncate(limit);
        Ok(pinned)
    }
}
