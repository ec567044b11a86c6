//! From sources to a page of candidates: the fused query (every source a prefetch, weighted
//! RRF in the engine), each source's own ranks of the same candidates, MMR diversity, and the
//! fill that keeps the page full.
//!
//! Not for choosing the sources or the filter (see `sources`), nor for turning candidates into
//! response items (see `explain`).

use std::collections::HashMap;

use uuid::Uuid;

use super::request::{SourceName, SourceRank};
use super::{RRF_K, Recommender, mmr};
use crate::catalog::{PRODUCTS, TEXT_VECTOR};
use crate::error::{Error, Result};
use crate::store::{Condition, Filter, Hit, Prefetch, Query, Ranking, Source, Vector};

/// A chosen product with the sources that proposed it, strongest first.
pub(super) type Candidate = (Hit, Vec<SourceRank>);

impl Recommender {
    /// The fused ranking: ONE query, every source a prefetch, weighted by `weights` (over the
    /// configuration); a pool of candidates with their text vectors for diversity.
    pub(super) async fn fused(
        &self,
        sources: &[(SourceName, Source)],
        weights: &HashMap<SourceName, f32>,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<Hit>> {
        let pool = (limit * 3).max(30);
        if sources.is_empty() {
            return Ok(vec![]);
        }
        let weights: Vec<f32> = sources.iter().map(|(s, _)| self.weight(*s, weights)).collect();
        let query = Query {
            prefetch: sources
                .iter()
                .map(|(_, src)| Prefetch { source: src.clone(), filter: None, limit: self.config.candidates })
                .collect(),
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
    /// its sources ordered by their contribution to the fused score.
    pub(super) fn diversify(
        &self,
        fused: &[Hit],
        mut ranks: HashMap<Uuid, Vec<SourceRank>>,
        lambda: f32,
        weights: &HashMap<SourceName, f32>,
        limit: usize,
    ) -> Vec<Candidate> {
        let relevance: Vec<f32> = fused.iter().map(|h| h.score).collect();
        let vectors: Vec<Vec<f32>> = fused
            .iter()
            .map(|h| match h.vectors.get(TEXT_VECTOR) {
                Some(Vector::Dense(v)) => v.clone(),
                _ => vec![],
            })
            .collect();
        let order = mmr::mmr(&relevance, &vectors, limit, lambda, self.config.mmr_keep_top);
        order
            .into_iter()
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
    /// (in store order), proposed by the `fallback` source.
    pub(super) async fn fill(&self, chosen: &mut Vec<Candidate>, filter: &Filter, limit: usize) -> Result<()> {
        if chosen.len() >= limit {
            return Ok(());
        }
        let mut fill_filter = filter.clone();
        let taken: Vec<Uuid> = chosen.iter().map(|(h, _)| h.id).collect();
        if !taken.is_empty() {
            fill_filter = fill_filter.must_not(Condition::HasId(taken));
        }
        let page = self.store.scroll(PRODUCTS, Some(fill_filter), None, limit - chosen.len()).await?;
        for r in page.records {
            chosen.push((
                Hit { id: r.id, score: 0.0, payload: r.payload, vectors: r.vectors },
                vec![SourceRank { source: SourceName::Fallback, rank: 1 }],
            ));
        }
        Ok(())
    }
}
