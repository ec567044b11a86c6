//! What shoppers' behaviour adds to products, written only through the catalog that owns the
//! `products` collection: the trending score (`trend` payload), the bought-together counts
//! (sparse `co` vector) and the collaborative factors (`collab` vector, after training).
//!
//! Events, training and erasure call these typed operations instead of writing payload keys or
//! vectors of `products` themselves; `trend` and `co` are written only as the sums of the
//! replicas' shares (`shares`). Not the arithmetic of those signals (decay, counting, taking an
//! erased event's share away): that stays with `events`, `recommend::train` and `app::erasure`.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Value, json};
use uuid::Uuid;

use super::{CO_VECTOR, Catalog, NUM, PRODUCTS, TEXT_VECTOR, TREND, product_point};
use crate::error::Result;
use crate::store::{DenseSpec, Distance, Payload, Vector};

/// Name of the collaborative vector on products (and customers).
pub const COLLAB_VECTOR: &str = "collab";

/// A product's behavioural signals as stored.
#[derive(Debug, Clone)]
pub struct ProductSignals {
    /// Point id.
    pub point: Uuid,
    /// The product's number: its column in every `co` vector.
    pub num: u32,
    /// Log of the forward-decayed popularity, if anything counted yet.
    pub trend: Option<f64>,
    /// The text embedding (when asked for).
    pub text: Option<Vec<f32>>,
    /// Bought-together counts by the other product's number.
    pub co: BTreeMap<u32, f32>,
}

/// A change to one product's signals: each part is written only when given.
#[derive(Debug, Clone)]
pub struct SignalUpdate {
    /// Point id.
    pub point: Uuid,
    /// The new trending score (`Some(None)` clears it).
    pub trend: Option<Option<f64>>,
    /// The new bought-together counts.
    pub co: Option<BTreeMap<u32, f32>>,
}

/// A sparse `co` vector of counts.
fn co_vector(co: &BTreeMap<u32, f32>) -> Vector {
    let (indices, values): (Vec<u32>, Vec<f32>) = co.iter().map(|(k, v)| (*k, *v)).unzip();
    Vector::Sparse { indices, values }
}

impl Catalog {
    /// Which of `ids` are products of the catalog.
    pub async fn existing_ids(&self, ids: &[String]) -> Result<HashSet<String>> {
        Ok(self
            .store
            .retrieve(PRODUCTS, ids.iter().map(|p| product_point(p)).collect(), vec![])
            .await?
            .into_iter()
            .filter_map(|r| r.payload.get("id").and_then(Value::as_str).map(str::to_string))
            .collect())
    }

    /// The signals of the products among `ids` that exist, by product id; with their text
    /// vectors when `with_text`.
    pub async fn signals(&self, ids: &[String], with_text: bool) -> Result<HashMap<String, ProductSignals>> {
        let mut vectors = vec![CO_VECTOR.to_string()];
        if with_text {
            vectors.insert(0, TEXT_VECTOR.to_string());
        }
        let records = self.store.retrieve(PRODUCTS, ids.iter().map(|p| product_point(p)).collect(), vectors).await?;
        let mut out = HashMap::new();
        for r in records {
            let Some(id) = r.payload.get("id").and_then(Value::as_str).map(str::to_string) else { continue };
            out.insert(
                id,
                ProductSignals {
                    point: r.id,
                    num: r.payload.get(NUM).and_then(Value::as_u64).unwrap_or(0) as u32,
                    trend: r.payload.get(TREND).and_then(Value::as_f64),
                    text: match r.vectors.get(TEXT_VECTOR) {
                        Some(Vector::Dense(v)) => Some(v.clone()),
                        _ => None,
                    },
                    co: match r.vectors.get(CO_VECTOR) {
                        Some(Vector::Sparse { indices, values }) => {
                            indices.iter().copied().zip(values.iter().copied()).collect()
                        }
                        _ => BTreeMap::new(),
                    },
                },
            );
        }
        Ok(out)
    }

    /// Write changed signals: trending scores as one payload write, then bought-together
    /// vectors as one vector write (the sums of the shares, from `shares`).
    pub(super) async fn write_signals(&self, updates: Vec<SignalUpdate>) -> Result<()> {
        let mut trends = Vec::new();
        let mut vectors = Vec::new();
        for u in updates {
            if let Some(trend) = u.trend {
                let mut payload = Payload::new();
                payload.insert(TREND.into(), json!(trend));
                trends.push((u.point, payload));
            }
            if let Some(co) = &u.co {
                vectors.push((u.point, vec![(CO_VECTOR.to_string(), co_vector(co))]));
            }
        }
        self.store.set_payloads(PRODUCTS, trends).await?;
        self.store.update_vectors(PRODUCTS, vectors).await
    }

    /// Add the `collab` vector of dimension `dim` to the products collection if missing.
    pub async fn ensure_collab_vector(&self, dim: usize) -> Result<()> {
        self.store
            .ensure_vector(PRODUCTS, &DenseSpec { name: COLLAB_VECTOR.into(), dim, distance: Distance::Dot })
            .await
    }

    /// Set the collaborative factors of the products that exist among `factors` (by product
    /// id); returns how many were set.
    pub async fn set_collab_factors(&self, factors: Vec<(String, Vec<f32>)>) -> Result<usize> {
        let ids: Vec<String> = factors.iter().map(|(id, _)| id.clone()).collect();
        let existing = self.existing_ids(&ids).await?;
        let updates: Vec<(Uuid, Vec<(String, Vector)>)> = factors
            .into_iter()
            .filter(|(id, _)| existing.contains(id))
            .map(|(id, v)| (product_point(&id), vec![(COLLAB_VECTOR.to_string(), Vector::Dense(v))]))
            .collect();
        let _writes = self.writes.lock().await;
        for chunk in updates.chunks(1000) {
            self.store.update_vectors(PRODUCTS, chunk.to_vec()).await?;
        }
        Ok(updates.len())
    }

    /// Every product's id, title, categories, brand and price, in point order (for offline
    /// evaluation).
    pub async fn titles(&self) -> Result<Vec<ProductFacts>> {
        let mut out = Vec::new();
        let mut offset = None;
        loop {
            let page = self.store.scroll(PRODUCTS, None, offset, 2000).await?;
            for r in &page.records {
                let Some(id) = r.payload.get("id").and_then(Value::as_str) else { continue };
                let title = r.payload.get("title").and_then(Value::as_str).unwrap_or("").to_string();
                let cats: Vec<String> = r
                    .payload
                    .get("categories")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                    .unwrap_or_default();
                out.push(ProductFacts {
                    id: id.to_string(),
                    title,
                    categories: cats,
                    brand: r.payload.get("brand").and_then(Value::as_str).map(str::to_string),
                    price: r.payload.get("price").and_then(Value::as_f64),
                });
            }
            match page.next {
                Some(n) => offset = Some(n),
                None => break,
            }
        }
        Ok(out)
    }
}

/// What offline evaluation reads of a product.
#[derive(Debug, Clone)]
pub struct ProductFacts {
    /// Its id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Its categories.
    pub categories: Vec<String>,
    /// Its brand.
    pub brand: Option<String>,
    /// Its price.
    pub price: Option<f64>,
}
