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

pub mod cf;
pub mod mmr;
pub mod stats;
pub mod train;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::catalog::{
    CO_VECTOR, Catalog, NUM, PRODUCTS, Product, ProductFilter, SearchHit, TEXT_VECTOR, TREND, product_point,
};
use crate::config::RecommendConfig;
use crate::error::{Error, FieldError, Result};
use crate::events::profile::HistoryItem;
use crate::events::{Events, Kind, Profiles};
use crate::store::{Condition, Hit, Prefetch, Query, Ranking, Source, Store, Vector, VectorQuery};

pub use stats::Stats;

/// The RRF constant of the fused query (also used by the offline evaluation).
pub const RRF_K: usize = 60;

/// A candidate source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceName {
    /// Customer taste vs product text.
    Content,
    /// Recent items.
    Session,
    /// Bought together with recent items.
    CoPurchase,
    /// Popular now.
    Trending,
    /// Collaborative filtering.
    Collab,
    /// Filled in because the sources could not fill the page.
    Fallback,
}

impl SourceName {
    /// The name in APIs and statistics.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceName::Content => "content",
            SourceName::Session => "session",
            SourceName::CoPurchase => "co_purchase",
            SourceName::Trending => "trending",
            SourceName::Collab => "collab",
            SourceName::Fallback => "fallback",
        }
    }
}

/// What to recommend for.
#[derive(Debug, Clone, Default)]
pub struct RecommendRequest {
    /// The customer, if known.
    pub customer_id: Option<String>,
    /// Items of the current (anonymous or not) session, most recent first.
    pub session_items: Vec<String>,
    /// How many.
    pub limit: Option<usize>,
    /// Business filters (in stock defaults to true).
    pub filter: ProductFilter,
    /// Leave out what the customer bought (default true).
    pub exclude_purchased: Option<bool>,
    /// Leave out what the customer was shown recently (impression events; default true).
    pub exclude_seen: Option<bool>,
    /// MMR trade-off for this request.
    pub mmr_lambda: Option<f32>,
    /// Source weights for this request (missing sources keep the configured weight).
    pub weights: HashMap<SourceName, f32>,
}

/// A source that proposed an item.
#[derive(Debug, Clone, Serialize)]
pub struct SourceRank {
    /// Which source.
    pub source: SourceName,
    /// Its rank there (1 = first).
    pub rank: usize,
}

/// The history item that best explains a recommendation.
#[derive(Debug, Clone, Serialize)]
pub struct Anchor {
    /// Product id.
    pub product_id: String,
    /// Its title.
    pub title: String,
    /// What the customer did with it.
    pub kind: Kind,
}

/// One recommended product.
#[derive(Debug, Clone, Serialize)]
pub struct RecItem {
    /// The product.
    pub product: Product,
    /// Fused score.
    pub score: f32,
    /// Sources that proposed it, strongest first.
    pub sources: Vec<SourceRank>,
    /// History item it relates to.
    pub anchor: Option<Anchor>,
    /// Why, in words.
    pub explanation: String,
}

/// A recommendation response.
#[derive(Debug, Clone, Serialize)]
pub struct Recommendations {
    /// Id to send back with events (`rec_id`) for attribution.
    pub rec_id: Uuid,
    /// Whether the customer's profile was used.
    pub personalized: bool,
    /// Sources that took part.
    pub sources: Vec<SourceName>,
    /// The items.
    pub items: Vec<RecItem>,
}

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
}

struct AnchorItem {
    product_id: String,
    kind: Kind,
    title: String,
    text: Option<Vec<f32>>,
    /// Collaborative factors, when a model is served.
    collab: Option<Vec<f32>>,
    num: Option<u32>,
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
    ) -> Self {
        Self { store, catalog, profiles, events, stats, config, collab: None }
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
        let limit = req.limit.unwrap_or(self.config.default_limit);
        let mut errors = Vec::new();
        if limit == 0 || limit > self.config.max_limit {
            errors.push(FieldError::new("/limit", format!("must be between 1 and {}", self.config.max_limit)));
        }
        if req.session_items.len() > 50 {
            errors.push(FieldError::new("/session/items", "at most 50 items"));
        }
        if let Some(l) = req.mmr_lambda
            && !(0.0..=1.0).contains(&l)
        {
            errors.push(FieldError::new("/mmr_lambda", "must be between 0 and 1"));
        }
        for (s, w) in &req.weights {
            if !w.is_finite() || *w < 0.0 || *w > 100.0 {
                errors.push(FieldError::new(format!("/weights/{}", s.as_str()), "must be between 0 and 100"));
            }
        }
        errors.extend(req.filter.check("/filters"));
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }

        // The customer, if known and consenting.
        let profile = match &req.customer_id {
            Some(id) => Some(self.profiles.get(id).await?),
            None => None,
        };
        let personal = profile.as_ref().filter(|p| p.exists && p.consent.personalization);

        // Anchors: the session's items, then the customer's recent history.
        let mut anchor_list: Vec<(String, Kind)> = req.session_items.iter().map(|p| (p.clone(), Kind::View)).collect();
        if let Some(p) = personal {
            for h in p.history.iter().filter(|h: &&HistoryItem| h.kind != Kind::Impression) {
                if !anchor_list.iter().any(|(id, _)| id == &h.product_id) {
                    anchor_list.push((h.product_id.clone(), h.kind));
                }
            }
        }
        let model = self.collab.as_ref().and_then(|c| c.model());
        let anchors = self.load_anchors(&anchor_list, &req.session_items, model.is_some()).await?;
        let session: Vec<&AnchorItem> = anchors.iter().take(self.config.session_items).collect();

        // One filter for every source.
        let mut filter = req.filter.clone();
        if filter.in_stock.is_none() {
            filter.in_stock = Some(true);
        }
        let mut base = filter.to_store_filter().unwrap_or_default();
        // What the shopper is looking at right now is not recommended back to them.
        let mut excluded: Vec<Uuid> = session.iter().map(|a| product_point(&a.product_id)).collect();
        excluded.extend(req.session_items.iter().map(|p| product_point(p)));
        if let Some(p) = personal {
            if req.exclude_purchased.unwrap_or(true) {
                excluded.extend(p.purchased.iter().map(|id| product_point(id)));
            }
            if req.exclude_seen.unwrap_or(true) && self.config.exclude_seen_hours > 0.0 {
                let since = Utc::now() - chrono::Duration::seconds((self.config.exclude_seen_hours * 3600.0) as i64);
                excluded.extend(self.events.shown_since(&p.key, since).await?.iter().map(|id| product_point(id)));
            }
        }
        if !excluded.is_empty() {
            base = base.must_not(Condition::HasId(excluded));
        }

        // The sources that have something to say.
        let mut sources: Vec<(SourceName, Source)> = Vec::new();
        if let Some(taste) = personal.and_then(|p| p.taste.clone()) {
            sources.push((
                SourceName::Content,
                Source::Vector(VectorQuery::Nearest { using: TEXT_VECTOR.into(), vector: Vector::Dense(taste) }),
            ));
        }
        if let (Some(p), Some(model)) = (personal, &model)
            && self.weight(SourceName::Collab, &req.weights) > 0.0
            && let Some(x) = train::user_vector(
                model,
                &p.history,
                &anchors.iter().filter_map(|a| Some((a.product_id.as_str(), a.collab.as_deref()?))).collect(),
                |k| self.events.weight(k, 1.0),
            )
        {
            sources.push((
                SourceName::Collab,
                Source::Vector(VectorQuery::Nearest { using: train::COLLAB_VECTOR.into(), vector: Vector::Dense(x) }),
            ));
        }
        let positives: Vec<Vec<f32>> = session.iter().filter_map(|a| a.text.clone()).collect();
        if !positives.is_empty() {
            sources.push((
                SourceName::Session,
                Source::Vector(VectorQuery::Recommend {
                    using: TEXT_VECTOR.into(),
                    positive: positives,
                    negative: vec![],
                }),
            ));
        }
        let co_query: Vec<(u32, f32)> = anchors
            .iter()
            .take(20)
            .filter_map(|a| {
                let w = match a.kind {
                    Kind::Purchase | Kind::Cart => 2.0,
                    _ => 1.0,
                };
                Some((a.num?, w))
            })
            .collect();
        if !co_query.is_empty() {
            let mut co = co_query.clone();
            co.sort_by_key(|(n, _)| *n);
            co.dedup_by_key(|(n, _)| *n);
            let (indices, values) = co.into_iter().unzip();
            sources.push((
                SourceName::CoPurchase,
                Source::Vector(VectorQuery::Nearest {
                    using: CO_VECTOR.into(),
                    vector: Vector::Sparse { indices, values },
                }),
            ));
        }
        sources.push((SourceName::Trending, Source::OrderBy { key: TREND.into(), descending: true }));
        sources.retain(|(s, _)| self.weight(*s, &req.weights) > 0.0);

        // The fused ranking: ONE query, every source a prefetch.
        let pool = (limit * 3).max(30);
        let fused = if sources.is_empty() {
            vec![]
        } else {
            let weights: Vec<f32> = sources.iter().map(|(s, _)| self.weight(*s, &req.weights)).collect();
            let query = Query {
                prefetch: sources
                    .iter()
                    .map(|(_, src)| Prefetch { source: src.clone(), filter: None, limit: self.config.candidates })
                    .collect(),
                ranking: Ranking::Rrf { k: RRF_K, weights: Some(weights) },
                filter: Some(base.clone()),
                limit: pool,
                offset: 0,
                with_vectors: vec![TEXT_VECTOR.into()],
            };
            self.store.query(PRODUCTS, query).await?
        };
        // Per-source ranks of the same candidates, for the explanations.
        let per_source = futures::future::try_join_all(sources.iter().map(|(name, src)| {
            let query = Query {
                prefetch: vec![Prefetch { source: src.clone(), filter: None, limit: self.config.candidates }],
                ranking: Ranking::Rrf { k: RRF_K, weights: None },
                filter: Some(base.clone()),
                limit: self.config.candidates,
                offset: 0,
                with_vectors: vec![],
            };
            let name = *name;
            async move { Ok::<_, Error>((name, self.store.query(PRODUCTS, query).await?)) }
        }))
        .await?;
        let mut ranks: HashMap<Uuid, Vec<SourceRank>> = HashMap::new();
        for (name, hits) in &per_source {
            for (i, h) in hits.iter().enumerate() {
                ranks.entry(h.id).or_default().push(SourceRank { source: *name, rank: i + 1 });
            }
        }

        // Diversity.
        let lambda = req.mmr_lambda.unwrap_or(self.config.mmr_lambda);
        let relevance: Vec<f32> = fused.iter().map(|h| h.score).collect();
        let vectors: Vec<Vec<f32>> = fused
            .iter()
            .map(|h| match h.vectors.get(TEXT_VECTOR) {
                Some(Vector::Dense(v)) => v.clone(),
                _ => vec![],
            })
            .collect();
        let order = mmr::mmr(&relevance, &vectors, limit, lambda, self.config.mmr_keep_top);
        let mut chosen: Vec<(Hit, Vec<SourceRank>)> = order
            .into_iter()
            .map(|i| {
                let h = fused[i].clone();
                let mut r = ranks.remove(&h.id).unwrap_or_default();
                r.sort_by(|a, b| {
                    let ca = self.weight(a.source, &req.weights) / (RRF_K + a.rank) as f32;
                    let cb = self.weight(b.source, &req.weights) / (RRF_K + b.rank) as f32;
                    cb.total_cmp(&ca)
                });
                (h, r)
            })
            .collect();

        // Always full: popular products, then anything matching the filters.
        if chosen.len() < limit {
            let mut fill_filter = base.clone();
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
        }

        let rec_id = Uuid::new_v4();
        let mut items = Vec::with_capacity(chosen.len());
        let mut served = Vec::with_capacity(chosen.len());
        for (hit, srcs) in chosen {
            let product = crate::catalog::from_payload(hit.payload)?;
            let vector = match hit.vectors.get(TEXT_VECTOR) {
                Some(Vector::Dense(v)) => Some(v.as_slice()),
                _ => None,
            };
            let anchor = best_anchor(&anchors, vector, personal.is_some() || !req.session_items.is_empty());
            let explanation = explain(&srcs, anchor.as_ref());
            served.push((
                product.id.clone(),
                srcs.first().map(|s| s.source).unwrap_or(SourceName::Fallback).as_str().to_string(),
            ));
            items.push(RecItem { product, score: hit.score, sources: srcs, anchor, explanation });
        }
        self.stats.record(rec_id, &served, Utc::now());
        Ok(Recommendations {
            rec_id,
            personalized: personal.is_some(),
            sources: sources.iter().map(|(s, _)| *s).collect(),
            items,
        })
    }

    /// The anchor products with their text vectors (and collaborative factors when `collab`),
    /// in one read.
    async fn load_anchors(
        &self,
        list: &[(String, Kind)],
        requested: &[String],
        collab: bool,
    ) -> Result<Vec<AnchorItem>> {
        if list.is_empty() {
            return Ok(vec![]);
        }
        let mut vectors = vec![TEXT_VECTOR.to_string()];
        if collab {
            vectors.push(train::COLLAB_VECTOR.into());
        }
        let records =
            self.store.retrieve(PRODUCTS, list.iter().map(|(p, _)| product_point(p)).collect(), vectors).await?;
        let by_id: HashMap<String, &crate::store::Record> =
            records.iter().filter_map(|r| Some((r.payload.get("id")?.as_str()?.to_string(), r))).collect();
        let mut errors = Vec::new();
        for (i, p) in requested.iter().enumerate() {
            if !by_id.contains_key(p) {
                errors.push(FieldError::new(format!("/session/items/{i}"), format!("product '{p}' does not exist")));
            }
        }
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }
        Ok(list
            .iter()
            .filter_map(|(p, kind)| {
                let r = by_id.get(p)?;
                Some(AnchorItem {
                    product_id: p.clone(),
                    kind: *kind,
                    title: r.payload.get("title").and_then(Value::as_str).unwrap_or_default().to_string(),
                    text: match r.vectors.get(TEXT_VECTOR) {
                        Some(Vector::Dense(v)) => Some(v.clone()),
                        _ => None,
                    },
                    collab: match r.vectors.get(train::COLLAB_VECTOR) {
                        Some(Vector::Dense(v)) => Some(v.clone()),
                        _ => None,
                    },
                    num: r.payload.get(NUM).and_then(Value::as_u64).map(|n| n as u32),
                })
            })
            .collect())
    }

    /// Products ordered by popularity, filtered; filled with other matching products.
    pub async fn trending(&self, filter: &ProductFilter, limit: usize) -> Result<Vec<SearchHit>> {
        let base = filter.to_store_filter();
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
        let filter = filter.to_store_filter().unwrap_or_default().must_not(Condition::HasId(vec![point]));
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

/// The anchor most similar (by text) to a recommended product.
fn best_anchor(anchors: &[AnchorItem], item: Option<&[f32]>, allowed: bool) -> Option<Anchor> {
    if !allowed {
        return None;
    }
    let item = item?;
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    let n_item = norm(item);
    anchors
        .iter()
        .filter_map(|a| {
            let t = a.text.as_ref()?;
            let sim = t.iter().zip(item).map(|(x, y)| x * y).sum::<f32>() / (norm(t) * n_item);
            Some((sim, a))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, a)| Anchor { product_id: a.product_id.clone(), title: a.title.clone(), kind: a.kind })
}

fn verb(kind: Kind) -> &'static str {
    match kind {
        Kind::View | Kind::Impression => "viewed",
        Kind::Click => "clicked",
        Kind::Cart => "added to your cart",
        Kind::Purchase => "bought",
        Kind::Rating => "rated",
        Kind::Return => "returned",
    }
}

/// The explanation of an item in words.
fn explain(sources: &[SourceRank], anchor: Option<&Anchor>) -> String {
    let mut parts: Vec<String> = Vec::new();
    for s in sources {
        let part = match (s.source, anchor) {
            (SourceName::Session, Some(a)) | (SourceName::Content, Some(a)) if parts.is_empty() => {
                format!("because you {} {}", verb(a.kind), a.title)
            }
            (SourceName::Content, _) => "matches your taste".to_string(),
            (SourceName::Session, _) => "similar to what you are looking at".to_string(),
            (SourceName::CoPurchase, Some(a)) => format!("often bought together with {}", a.title),
            (SourceName::CoPurchase, None) => "often bought together".to_string(),
            (SourceName::Trending, _) => "popular right now".to_string(),
            (SourceName::Collab, _) => "customers like you chose it".to_string(),
            (SourceName::Fallback, _) => "in stock now".to_string(),
        };
        if !parts.contains(&part) {
            parts.push(part);
        }
    }
    if parts.is_empty() {
        parts.push("in stock now".into());
    }
    let mut s = parts.join("; ");
    if let Some(first) = s.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    s
}
