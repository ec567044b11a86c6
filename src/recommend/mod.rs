//! Recommendations: candidate sources fused in one Qdrant query, business filters inside the
//! vector search, MMR diversity, explanations, and a list that is always full.
//!
//! Sources, each a prefetch of the same query, fused with weighted RRF by the engine:
//! - `content`: the customer's taste vector against product text vectors;
//! - `session`: the recent items (or the anonymous session's items), Qdrant's recommend over
//!   their text vectors;
//! - `co_purchase`: a sparse query holding the recent items' numbers against each product's
//!   `co` vector, i.e. how often each product was bought together with them;
//! - `trending`: products ordered by their forward-decayed popularity;
//! - `collab`: once `aisle train` has run, the customer's collaborative factors (folded in
//!   from their current history, see [`train`]) against products' `collab` vectors.
//!
//! Every source runs with the same filter (stock, price, categories, brands, hidden, bought,
//! recently shown, explicit exclusions), so no filtered product can come back. The fused list is
//! re-ranked with MMR; each item carries the sources that proposed it with their ranks and an
//! anchor from the customer's history ("because you viewed X"). When the sources cannot fill
//! the page (cold start, narrow filters), trending and then any matching product fill it.
//!
//! This file holds [`Recommender`] and the steps of [`Recommender::recommend`]; the request and
//! response types are in `request`, the sources and their filter in `sources`, fusion,
//! diversity and the fill in `fuse`, explanations in `explain`.

pub mod cf;
pub mod experiments;
mod explain;
pub mod exposure;
mod fuse;
pub mod mmr;
pub mod rank;
mod request;
mod rerank;
pub mod rules;
mod sources;
pub mod stats;
pub mod train;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use crate::catalog::{CO_VECTOR, Catalog, NUM, PRODUCTS, ProductFilter, SearchHit, TREND, product_point};
use crate::config::{ExperimentConfig, RecommendConfig};
use crate::error::{Error, Result};
use crate::events::{Events, Profiles};
use crate::store::{Condition, Prefetch, Query, Ranking, Source, Store, Vector, VectorQuery};

pub use request::{Anchor, FeatureEffect, RecItem, RecommendRequest, Recommendations, SourceName, SourceRank};
pub use rerank::{MIN_GROUPS, RankerReport};
use sources::AnchorItem;
pub use stats::Stats;

/// The RRF constant of the fused query (also used by the offline evaluation).
pub const RRF_K: usize = 60;

/// The recommendation service.
#[derive(Clone)]
pub struct Recommender {
    store: Store,
    catalog: Catalog,
    profiles: Profiles,
    events: Events,
    stats: Arc<Stats>,
    config: RecommendConfig,
    collab: Option<train::Collab>,
    rules: rules::Rules,
    experiments: Arc<Vec<ExperimentConfig>>,
    ranker: Option<rank::Slot>,
}

impl Recommender {
    /// A recommender over the services.
    pub fn new(
        store: Store,
        catalog: Catalog,
        profiles: Profiles,
        events: Events,
        stats: Arc<Stats>,
        config: RecommendConfig,
        rules: rules::Rules,
    ) -> Self {
        Self {
            store,
            catalog,
            profiles,
            events,
            stats,
            config,
            collab: None,
            rules,
            experiments: Arc::default(),
            ranker: None,
        }
    }

    /// Run these experiments (`[[experiments]]`).
    pub fn with_experiments(mut self, experiments: Vec<ExperimentConfig>) -> Self {
        self.experiments = Arc::new(experiments);
        self
    }

    /// Re-rank with the model of `slot` (once one is trained) and train it there.
    pub fn with_ranker(mut self, slot: rank::Slot) -> Self {
        self.ranker = Some(slot);
        self
    }

    /// The served re-ranker, if any.
    pub fn ranker(&self) -> Option<Arc<rank::Ranker>> {
        self.ranker.as_ref().and_then(rank::Slot::get)
    }

    /// The configured experiments.
    pub fn experiments(&self) -> &[ExperimentConfig] {
        &self.experiments
    }

    /// The request's variants (by its customer's pseudonymous key, else its session's), with
    /// their settings applied where the request sets none. Returns the assignments and whether
    /// merchandising rules apply, and the shopper's key.
    fn assign(&self, req: &mut RecommendRequest) -> (Vec<experiments::Assignment>, bool, Option<String>) {
        let Some(unit) = self.shopper_key(req.customer_id.as_deref(), req.session_id.as_deref()) else {
            return (vec![], true, None);
        };
        let mut assigned = Vec::new();
        let mut rules = true;
        for e in self.experiments.iter().filter(|e| e.enabled) {
            let v = experiments::assign(e, &unit);
            for (source, w) in &v.weights {
                if let Ok(name) = serde_json::from_value::<SourceName>(Value::String(source.clone())) {
                    req.weights.entry(name).or_insert(*w);
                }
            }
            if req.mmr_lambda.is_none() {
                req.mmr_lambda = v.mmr_lambda;
            }
            if req.rerank.is_none() {
                req.rerank = v.rerank;
            }
            rules &= v.rules;
            assigned.push(experiments::Assignment { experiment: e.name.clone(), variant: v.name.clone() });
        }
        (assigned, rules, Some(unit))
    }

    /// A shopper's pseudonymous key: the customer's, else the session's.
    fn shopper_key(&self, customer_id: Option<&str>, session_id: Option<&str>) -> Option<String> {
        match (customer_id, session_id) {
            (Some(c), _) => Some(self.profiles.key_of(c)),
            (None, Some(s)) => Some(self.events.session_key(s)),
            (None, None) => None,
        }
    }

    /// The merchandising rules.
    pub fn rules(&self) -> &rules::Rules {
        &self.rules
    }

    /// Serve the collaborative model of `collab` (the `collab` source) once one is trained.
    pub fn with_collab(mut self, collab: train::Collab) -> Self {
        self.collab = Some(collab);
        self
    }

    /// The statistics.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    fn weight(&self, s: SourceName, over: &HashMap<SourceName, f32>) -> f32 {
        over.get(&s).copied().unwrap_or(match s {
            SourceName::Content => self.config.weight_content,
            SourceName::Session => self.config.weight_session,
            SourceName::CoPurchase => self.config.weight_co_purchase,
            SourceName::Trending => self.config.weight_trending,
            SourceName::Collab => self.config.weight_collab,
            SourceName::Fallback => 0.0,
        })
    }

    /// Recommend.
    pub async fn recommend(&self, req: RecommendRequest) -> Result<Recommendations> {
        let started = std::time::Instant::now();
        let recs = self.answer(req).await?;
        metrics::histogram!("aisle_recommend_duration_seconds").record(started.elapsed().as_secs_f64());
        for item in &recs.items {
            for s in &item.sources {
                metrics::counter!("aisle_recommend_items_total", "source" => s.source.as_str()).increment(1);
            }
        }
        Ok(recs)
    }

    async fn answer(&self, mut req: RecommendRequest) -> Result<Recommendations> {
        let limit = req.validate(self.config.default_limit, self.config.max_limit)?;
        let (variants, with_rules, shopper) = self.assign(&mut req);

        // The customer, if known and consenting.
        let profile = match &req.customer_id {
            Some(id) => Some(self.profiles.get(id).await?),
            None => None,
        };
        let personal = profile.as_ref().filter(|p| p.exists && p.consent.personalization);

        // Anchors: the session's items, then the customer's recent history.
        let model = self.collab.as_ref().and_then(|c| c.model());
        let anchor_list = sources::anchor_list(&req, personal);
        let anchors = self.load_anchors(&anchor_list, &req.session_items, model.is_some()).await?;
        let session: Vec<&AnchorItem> = anchors.iter().take(self.config.session_items).collect();

        let rules = if with_rules { self.rules.active().await? } else { rules::Active::default() };
        let filter = rules.hide(self.candidate_filter(&req, personal, &session).await?);
        let sources = self.sources(&req, personal, model.as_deref(), &anchors, &session);

        let fused = self.fused(&sources, &rules.boosts(), &req.weights, &filter, limit).await?;
        let ranks = self.source_ranks(&sources, &filter).await?;
        let rows = self.feature_rows(&fused, &ranks, personal, &anchors);
        let reranked = self.rerank(fused, &rows, req.rerank.unwrap_or(self.config.rerank));
        let lambda = req.mmr_lambda.unwrap_or(self.config.mmr_lambda);
        let mut chosen = self.diversify(&reranked.pool, ranks, lambda, &req.weights, limit, &rules);
        self.fill(&mut chosen, &filter, limit, &rules).await?;
        let pinned = self.pin(&mut chosen, &filter, limit, &rules).await?;

        let anchored = personal.is_some() || !req.session_items.is_empty();
        let sources = sources.iter().map(|(s, _)| *s).collect();
        let steer = explain::Steering {
            rules: &rules,
            pinned: &pinned,
            variants,
            rows: &rows,
            ranker: reranked.model,
            shopper,
        };
        self.respond(chosen, &anchors, anchored, personal.is_some(), sources, steer).await
    }

    /// Products ordered by popularity, filtered; filled with other matching products.
    pub async fn trending(&self, filter: &ProductFilter, limit: usize) -> Result<Vec<SearchHit>> {
        let base = Some(self.rules.active().await?.hide(filter.to_store_filter().unwrap_or_default()))
            .filter(|f| !f.is_empty());
        let query = Query {
            prefetch: vec![Prefetch {
                source: Source::OrderBy { key: TREND.into(), descending: true },
                filter: None,
                limit,
            }],
            ranking: Ranking::Rrf { k: RRF_K, weights: None },
            filter: base.clone(),
            limit,
            offset: 0,
            with_vectors: vec![],
        };
        let hits = self.store.query(PRODUCTS, query).await?;
        hits.into_iter()
            .map(|h| Ok(SearchHit { product: crate::catalog::from_payload(h.payload)?, score: h.score }))
            .collect()
    }

    /// Products most often bought together with `product_id` (filtered).
    pub async fn bought_together(
        &self,
        product_id: &str,
        filter: &ProductFilter,
        limit: usize,
    ) -> Result<Vec<SearchHit>> {
        let point = product_point(product_id);
        let record = self
            .store
            .retrieve(PRODUCTS, vec![point], vec![])
            .await?
            .pop()
            .ok_or_else(|| Error::not_found("product", product_id))?;
        let Some(num) = record.payload.get(NUM).and_then(Value::as_u64) else { return Ok(vec![]) };
        let filter = self.rules.active().await?.hide(filter.to_store_filter().unwrap_or_default());
        let filter = filter.must_not(Condition::HasId(vec![point]));
        let query = Query {
            prefetch: vec![],
            ranking: Ranking::Vector(VectorQuery::Nearest {
                using: CO_VECTOR.into(),
                vector: Vector::Sparse { indices: vec![num as u32], values: vec![1.0] },
            }),
            filter: Some(filter),
            limit,
            offset: 0,
            with_vectors: vec![],
        };
        let hits = self.store.query(PRODUCTS, query).await?;
        hits.into_iter()
            .filter(|h| h.score > 0.0)
            .map(|h| Ok(SearchHit { product: crate::catalog::from_payload(h.payload)?, score: h.score }))
            .collect()
    }

    /// The catalog underneath.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }
}
