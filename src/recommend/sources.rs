//! The candidate sources of one recommendation: the anchors they start from (the session's
//! items, then the customer's recent history), the one filter every source runs under, and one
//! prefetch per source that has something to say.
//!
//! Not for running the fused query, diversity or the fill (see `fuse`), nor for explanations
//! (see `explain`).

use std::collections::HashMap;

use chrono::Utc;
use serde_json::Value;
use uuid::Uuid;

use super::Recommender;
use super::request::{RecommendRequest, SourceName};
use super::train::{self, CollabModel};
use crate::catalog::{
    BRAND_KEY, CATEGORY_KEYS, CO_VECTOR, COLLAB_VECTOR, NUM, PRODUCTS, TEXT_VECTOR, TREND, product_point,
};
use crate::error::{Error, FieldError, Result};
use crate::events::Kind;
use crate::events::profile::{HistoryItem, Profile};
use crate::store::{Condition, Filter, Record, Source, Vector, VectorQuery};

/// A product from the session or the customer's history that sources start from and
/// explanations point to.
pub(super) struct AnchorItem {
    /// Product id.
    pub(super) product_id: String,
    /// What the customer did with it (a view for session items).
    pub(super) kind: Kind,
    /// Its title.
    pub(super) title: String,
    /// Its text vector.
    pub(super) text: Option<Vec<f32>>,
    /// Collaborative factors, when a model is served.
    pub(super) collab: Option<Vec<f32>>,
    /// Its number, the dimension of the `co` vectors.
    pub(super) num: Option<u32>,
    /// Its categories, brand and price (filter keys), for the re-ranker's affinities.
    pub(super) facts: ItemFacts,
}

/// A product's categories and brand (as lower-cased filter keys) and price, from its payload.
#[derive(Debug, Clone, Default)]
pub(super) struct ItemFacts {
    pub(super) categories: Vec<String>,
    pub(super) brand: Option<String>,
    pub(super) price: Option<f64>,
}

impl ItemFacts {
    /// The facts of a stored product's payload.
    pub(super) fn of(payload: &crate::store::Payload) -> Self {
        Self {
            categories: payload
                .get(CATEGORY_KEYS)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default(),
            brand: payload.get(BRAND_KEY).and_then(Value::as_str).map(str::to_string),
            price: payload.get("price").and_then(Value::as_f64),
        }
    }
}

/// The anchors to load: the session's items (as views), then the customer's history without
/// impressions, each product once.
pub(super) fn anchor_list(req: &RecommendRequest, personal: Option<&Profile>) -> Vec<(String, Kind)> {
    let mut anchor_list: Vec<(String, Kind)> = req.session_items.iter().map(|p| (p.clone(), Kind::View)).collect();
    if let Some(p) = personal {
        for h in p.history.iter().filter(|h: &&HistoryItem| h.kind != Kind::Impression) {
            if !anchor_list.iter().any(|(id, _)| id == &h.product_id) {
                anchor_list.push((h.product_id.clone(), h.kind));
            }
        }
    }
    anchor_list
}

impl Recommender {
    /// The anchor products with their text vectors (and collaborative factors when `collab`),
    /// in one read. Each of the `requested` session items must exist.
    pub(super) async fn load_anchors(
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
            vectors.push(COLLAB_VECTOR.into());
        }
        let records =
            self.store.retrieve(PRODUCTS, list.iter().map(|(p, _)| product_point(p)).collect(), vectors).await?;
        let by_id: HashMap<String, &Record> =
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
                    collab: match r.vectors.get(COLLAB_VECTOR) {
                        Some(Vector::Dense(v)) => Some(v.clone()),
                        _ => None,
                    },
                    num: r.payload.get(NUM).and_then(Value::as_u64).map(|n| n as u32),
                    facts: ItemFacts::of(&r.payload),
                })
            })
            .collect())
    }

    /// The one filter for every source: the request's business filters (in stock unless said
    /// otherwise), without what the shopper is looking at right now, what the customer bought
    /// and what they were shown recently (as the request and configuration ask).
    pub(super) async fn candidate_filter(
        &self,
        req: &RecommendRequest,
        personal: Option<&Profile>,
        session: &[&AnchorItem],
    ) -> Result<Filter> {
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
        Ok(base)
    }

    /// The sources that have something to say and a positive weight, each as the query of
    /// its prefetch, in prefetch order.
    pub(super) fn sources(
        &self,
        req: &RecommendRequest,
        personal: Option<&Profile>,
        model: Option<&CollabModel>,
        anchors: &[AnchorItem],
        session: &[&AnchorItem],
    ) -> Vec<(SourceName, Source)> {
        let mut sources: Vec<(SourceName, Source)> = Vec::new();
        if let Some(taste) = personal.and_then(|p| p.taste.clone()) {
            sources.push((
                SourceName::Content,
                Source::Vector(VectorQuery::Nearest { using: TEXT_VECTOR.into(), vector: Vector::Dense(taste) }),
            ));
        }
        if let (Some(p), Some(model)) = (personal, model)
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
                Source::Vector(VectorQuery::Nearest { using: COLLAB_VECTOR.into(), vector: Vector::Dense(x) }),
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
        if let Some(co) = co_purchase_query(anchors) {
            sources.push((SourceName::CoPurchase, co));
        }
        sources.push((SourceName::Trending, Source::OrderBy { key: TREND.into(), descending: true }));
        sources.retain(|(s, _)| self.weight(*s, &req.weights) > 0.0);
        sources
    }
}

/// The sparse query of the `co_purchase` source: the numbers of the 20 most recent anchors
/// (purchases and carts count double) against products' `co` vectors; `None` without any.
fn co_purchase_query(anchors: &[AnchorItem]) -> Option<Source> {
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
    if co_query.is_empty() {
        return None;
    }
    let mut co = co_query;
    co.sort_by_key(|(n, _)| *n);
    co.dedup_by_key(|(n, _)| *n);
    let (indices, values) = co.into_iter().unzip();
    Some(Source::Vector(VectorQuery::Nearest { using: CO_VECTOR.into(), vector: Vector::Sparse { indices, values } }))
}
