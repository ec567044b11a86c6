//! The product catalog: schema and validation, the text that gets embedded, import, and search.
//!
//! [`Catalog`] is the service the HTTP layer and the `import` command call. It writes products
//! to the `products` collection with their `text` vector (embedding model, cosine) and their
//! `keywords` sparse vector (BM25), re-embedding only when the embedded text changed.
//! It knows nothing of HTTP.

pub mod import;
pub mod product;
pub mod search;
pub mod shares;
pub mod signals;
pub mod text;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use serde::Serialize;
use serde_json::{Map, Value};

pub use product::{Product, ProductInput};
pub use search::{ProductFilter, SearchHit, SearchMode, SearchRequest, SimilarMode, SimilarRequest, SimilarScope};
pub use shares::{Tally, popularity_units};
pub use signals::{COLLAB_VECTOR, ProductSignals, SignalUpdate};

use crate::error::{Error, FieldError, Result};
use crate::infer::Embedder;
use crate::store::{
    CollectionSpec, DenseSpec, Distance, IndexKind, KeywordEncoder, Point, SparseSpec, Store, Vector, point_id,
};

/// Logical name of the products collection.
pub const PRODUCTS: &str = "products";
/// Dense vector of the product text.
pub const TEXT_VECTOR: &str = "text";
/// Sparse BM25 vector of the product text.
pub const KEYWORD_VECTOR: &str = "keywords";
/// Sparse co-occurrence vector: at index `num(q)`, how often this product and product `q` were
/// bought (or carted) together. Maintained by event ingestion, kept across catalog updates.
pub const CO_VECTOR: &str = "co";
/// Payload: the product's number, the index of its column in every `co` vector.
pub const NUM: &str = "num";
/// Payload: log of the forward-decayed popularity (see `events`), kept across catalog updates.
pub const TREND: &str = "trend";
/// Collection of claimed product numbers (so that replicas never give two products one number).
const NUMS: &str = "product_nums";

// Payload keys aisle adds next to the product fields (lower-cased filter keys, the
// embedded-text hash). They are not part of the product returned to clients.
/// Payload field: the categories as filter keys.
pub const CATEGORY_KEYS: &str = "category_keys";
/// Payload field: the brand as a filter key.
pub const BRAND_KEY: &str = "brand_key";
const EMBED_HASH: &str = "embed_hash";
/// Internal payload keys, dropped when a stored product is read back.
const INTERNAL_KEYS: &[&str] = &[CATEGORY_KEYS, BRAND_KEY, EMBED_HASH, NUM, TREND];

/// The point id of a product id.
pub fn product_point(id: &str) -> uuid::Uuid {
    point_id(PRODUCTS, id)
}

/// What happened to one product of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteStatus {
    /// It did not exist before.
    Created,
    /// It existed and was replaced.
    Updated,
}

/// Outcome of a write of several products.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WriteSummary {
    /// Per product id, created or updated.
    pub statuses: Vec<(String, WriteStatus)>,
    /// Products whose text was embedded.
    pub embedded: usize,
    /// Products whose stored vector was reused (text unchanged).
    pub reused: usize,
}

/// The catalog service.
#[derive(Clone)]
pub struct Catalog {
    store: Store,
    embedder: Embedder,
    keywords: Arc<KeywordEncoder>,
    default_currency: String,
    next_num: Arc<std::sync::atomic::AtomicU64>,
    writes: Arc<tokio::sync::Mutex<()>>,
    /// This process's name among the replicas sharing the store (its shares of the signals).
    replica: String,
}

impl Catalog {
    /// The products collection's layout for an embedding model of `dim` dimensions.
    pub fn collection_spec(dim: usize) -> CollectionSpec {
        CollectionSpec {
            name: PRODUCTS.into(),
            dense: vec![DenseSpec { name: TEXT_VECTOR.into(), dim, distance: Distance::Cosine }],
            sparse: vec![
                SparseSpec { name: KEYWORD_VECTOR.into(), idf: true },
                SparseSpec { name: CO_VECTOR.into(), idf: false },
            ],
            indexes: vec![
                ("id".into(), IndexKind::Keyword),
                (CATEGORY_KEYS.into(), IndexKind::Keyword),
                (BRAND_KEY.into(), IndexKind::Keyword),
                ("price".into(), IndexKind::Float),
                ("in_stock".into(), IndexKind::Bool),
                ("hidden".into(), IndexKind::Bool),
                (NUM.into(), IndexKind::Integer),
                (TREND.into(), IndexKind::Float),
            ],
            hnsw: true,
        }
    }

    /// Open the catalog over `store`, creating its collections if needed; `replica` names this
    /// process among those sharing the store.
    pub async fn open(store: Store, embedder: Embedder, replica: &str) -> Result<Self> {
        store.ensure_collection(&Self::collection_spec(embedder.info().dim)).await?;
        store.ensure_collection(&shares::collection_spec()).await?;
        store.ensure_collection(&CollectionSpec::payload_only(NUMS, &[(NUM, IndexKind::Integer)])).await?;
        let max = top_num(&store, PRODUCTS).await?.max(top_num(&store, NUMS).await?);
        let catalog = Self {
            store,
            embedder,
            keywords: Arc::new(KeywordEncoder::english()?),
            default_currency: "USD".into(),
            next_num: Arc::new(std::sync::atomic::AtomicU64::new(max + 1)),
            writes: Arc::new(tokio::sync::Mutex::new(())),
            replica: replica.to_string(),
        };
        catalog.seed_shares().await?;
        Ok(catalog)
    }

    /// Numbers for new products, one each, claimed in the store: a number another replica
    /// claimed first is skipped.
    async fn allocate_nums(&self, products: &[&str]) -> Result<Vec<u64>> {
        use std::sync::atomic::Ordering::SeqCst;
        let mut out = vec![0; products.len()];
        let mut pending: Vec<usize> = (0..products.len()).collect();
        while !pending.is_empty() {
            let start = self.next_num.fetch_add(pending.len() as u64, SeqCst);
            let points = pending
                .iter()
                .enumerate()
                .map(|(k, &i)| {
                    let n = start + k as u64;
                    let payload = serde_json::json!({ NUM: n, "product": products[i] });
                    Point {
                        id: num_point(n),
                        vectors: vec![],
                        payload: payload.as_object().cloned().unwrap_or_default(),
                    }
                })
                .collect();
            let won = self.store.claim(NUMS, points).await?;
            let mut lost = Vec::new();
            for (k, &i) in pending.iter().enumerate() {
                let n = start + k as u64;
                if won.contains(&num_point(n)) { out[i] = n } else { lost.push(i) }
            }
            if !lost.is_empty() {
                let top = top_num(&self.store, NUMS).await?;
                self.next_num.fetch_max(top + 1, SeqCst);
            }
            pending = lost;
        }
        Ok(out)
    }

    /// The lock every read-modify-write of product points holds (catalog updates, and event
    /// ingestion updating popularity and co-occurrence), so that neither loses the other's
    /// changes within this process.
    pub fn product_writes(&self) -> &Arc<tokio::sync::Mutex<()>> {
        &self.writes
    }

    /// The store underneath.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The embedder underneath.
    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    /// Validate one input; `path_id` is the id from the URL, if any.
    pub fn validate(
        &self,
        input: ProductInput,
        path_id: Option<&str>,
    ) -> std::result::Result<Product, Vec<FieldError>> {
        input.validate(path_id, &self.default_currency, Utc::now())
    }

    /// Write validated products (a batch is one embedding job and one durable store write).
    /// Ids must be unique within the call.
    pub async fn upsert(&self, products: Vec<Product>) -> Result<WriteSummary> {
        self.write(products, None).await
    }

    /// Write products with vectors computed elsewhere (bulk loads, migrations, benchmarks).
    /// They are marked so that the next update with a real text re-embeds them.
    pub async fn upsert_embedded(&self, products: Vec<(Product, Vec<f32>)>) -> Result<WriteSummary> {
        let (products, vectors) = products.into_iter().unzip();
        self.write(products, Some(vectors)).await
    }

    async fn write(&self, products: Vec<Product>, given: Option<Vec<Vec<f32>>>) -> Result<WriteSummary> {
        if products.is_empty() {
            return Ok(WriteSummary::default());
        }
        let model = self.embedder.info().name.clone();
        let ids: Vec<uuid::Uuid> = products.iter().map(|p| product_point(&p.id)).collect();
        // Held to the end: the read of what to keep and the write must not interleave with
        // event ingestion updating the same points.
        let _writes = self.writes.lock().await;
        let existing = self.store.retrieve(PRODUCTS, ids.clone(), vec![TEXT_VECTOR.into(), CO_VECTOR.into()]).await?;
        let existing: HashMap<uuid::Uuid, Kept> = existing
            .into_iter()
            .map(|r| {
                let kept = Kept {
                    hash: r.payload.get(EMBED_HASH).and_then(Value::as_str).map(str::to_string),
                    text: match r.vectors.get(TEXT_VECTOR) {
                        Some(Vector::Dense(v)) => Some(v.clone()),
                        _ => None,
                    },
                    co: r.vectors.get(CO_VECTOR).filter(|v| !v.is_empty_sparse()).cloned(),
                    num: r.payload.get(NUM).and_then(Value::as_u64),
                    trend: r.payload.get(TREND).cloned(),
                };
                (r.id, kept)
            })
            .collect();

        let (hashes, mut vectors, embedded) = match given {
            Some(vectors) => {
                if vectors.len() != products.len() || vectors.iter().any(|v| v.len() != self.embedder.info().dim) {
                    return Err(Error::Internal(format!(
                        "precomputed vectors must be one per product of {} dimensions",
                        self.embedder.info().dim
                    )));
                }
                (
                    vec![format!("precomputed:{model}"); products.len()],
                    vectors.into_iter().map(Some).collect::<Vec<_>>(),
                    0,
                )
            }
            None => {
                let texts: Vec<String> = products.iter().map(text::embedding_text).collect();
                let hashes: Vec<String> = texts.iter().map(|t| text::embedding_hash(&model, t)).collect();
                let mut vectors: Vec<Option<Vec<f32>>> = Vec::with_capacity(products.len());
                let mut to_embed = Vec::new();
                for (i, id) in ids.iter().enumerate() {
                    match existing.get(id) {
                        Some(Kept { hash: Some(h), text: Some(v), .. }) if *h == hashes[i] => {
                            vectors.push(Some(v.clone()))
                        }
                        _ => {
                            vectors.push(None);
                            to_embed.push(i);
                        }
                    }
                }
                let fresh =
                    self.embedder.embed(&to_embed.iter().map(|&i| texts[i].as_str()).collect::<Vec<_>>()).await?;
                for (i, v) in to_embed.iter().zip(fresh) {
                    vectors[*i] = Some(v);
                }
                (hashes, vectors, to_embed.len())
            }
        };

        let fresh: Vec<usize> =
            (0..products.len()).filter(|i| existing.get(&ids[*i]).and_then(|k| k.num).is_none()).collect();
        let mut nums: HashMap<usize, u64> = fresh
            .iter()
            .copied()
            .zip(self.allocate_nums(&fresh.iter().map(|&i| products[i].id.as_str()).collect::<Vec<_>>()).await?)
            .collect();
        let mut summary = WriteSummary { embedded, reused: products.len() - embedded, ..Default::default() };
        let mut points = Vec::with_capacity(products.len());
        let mut updated = Vec::new();
        for (i, p) in products.into_iter().enumerate() {
            let status = if existing.contains_key(&ids[i]) { WriteStatus::Updated } else { WriteStatus::Created };
            let keywords = self.keywords.document(&text::keyword_text(&p));
            let mut payload = to_payload(&p)?;
            payload.insert(EMBED_HASH.into(), Value::String(hashes[i].clone()));
            let kept = existing.get(&ids[i]);
            let num = match kept.and_then(|k| k.num) {
                Some(n) => n,
                None => nums.remove(&i).ok_or_else(|| Error::Internal("no number for a new product".into()))?,
            };
            payload.insert(NUM.into(), Value::from(num));
            if let Some(trend) = kept.and_then(|k| k.trend.clone()) {
                payload.insert(TREND.into(), trend);
            }
            let text_vector = vectors[i].take().ok_or_else(|| Error::Internal("missing embedding".into()))?;
            let mut point_vectors = vec![(TEXT_VECTOR.to_string(), Vector::Dense(text_vector))];
            if !keywords.is_empty_sparse() {
                point_vectors.push((KEYWORD_VECTOR.to_string(), keywords));
            }
            if let Some(co) = kept.and_then(|k| k.co.clone()) {
                point_vectors.push((CO_VECTOR.to_string(), co));
            }
            if status == WriteStatus::Updated {
                updated.push(p.id.clone());
            }
            summary.statuses.push((p.id.clone(), status));
            points.push(Point { id: ids[i], vectors: point_vectors, payload });
        }
        self.store.upsert(PRODUCTS, points).await?;
        // Another replica may have changed the signals kept above since they were read.
        self.materialise(&updated).await?;
        Ok(summary)
    }

    /// Read one product.
    pub async fn get(&self, id: &str) -> Result<Product> {
        let records = self.store.retrieve(PRODUCTS, vec![product_point(id)], vec![]).await?;
        let record = records.into_iter().next().ok_or_else(|| Error::not_found("product", id))?;
        from_payload(record.payload)
    }

    /// Read several products, in the order asked; missing ones are left out.
    pub async fn get_many(&self, ids: &[String]) -> Result<Vec<Product>> {
        let points = ids.iter().map(|id| product_point(id)).collect();
        let records = self.store.retrieve(PRODUCTS, points, vec![]).await?;
        records.into_iter().map(|r| from_payload(r.payload)).collect()
    }

    /// Delete one product; `false` if it did not exist.
    pub async fn delete(&self, id: &str) -> Result<bool> {
        let point = product_point(id);
        let _writes = self.writes.lock().await;
        if self.store.retrieve(PRODUCTS, vec![point], vec![]).await?.is_empty() {
            return Ok(false);
        }
        self.store.delete(PRODUCTS, vec![point]).await?;
        self.delete_shares(id).await?;
        Ok(true)
    }

    /// Number of products matching a filter.
    pub async fn count(&self, filter: &ProductFilter) -> Result<usize> {
        self.store.count(PRODUCTS, filter.to_store_filter()).await
    }

    /// A page of products in a stable order; `cursor` comes from the previous page.
    pub async fn list(
        &self,
        filter: &ProductFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Product>, Option<String>)> {
        let offset = match cursor {
            None => None,
            Some(c) => Some(
                uuid::Uuid::parse_str(c)
                    .map_err(|_| Error::invalid("/cursor", "is not a cursor returned by a previous page"))?,
            ),
        };
        let page = self.store.scroll(PRODUCTS, filter.to_store_filter(), offset, limit).await?;
        let items = page.records.into_iter().map(|r| from_payload(r.payload)).collect::<Result<Vec<_>>>()?;
        Ok((items, page.next.map(|u| u.to_string())))
    }

    /// Every product, hidden ones included, page by page (for what needs the whole catalog:
    /// the assistant's vocabulary, requests generated from its facets).
    pub async fn all(&self) -> Result<Vec<Product>> {
        let filter = ProductFilter { include_hidden: true, ..Default::default() };
        let mut products = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let (page, next) = self.list(&filter, cursor.as_deref(), 1000).await?;
            products.extend(page);
            match next {
                Some(n) => cursor = Some(n),
                None => return Ok(products),
            }
        }
    }
}

/// The point id of a claimed product number.
fn num_point(n: u64) -> uuid::Uuid {
    point_id(NUMS, &n.to_string())
}

/// The highest `num` in a collection (0 when empty).
async fn top_num(store: &Store, collection: &str) -> Result<u64> {
    use crate::store::{Prefetch, Query, Ranking, Source};
    let top = store
        .query(
            collection,
            Query {
                prefetch: vec![Prefetch {
                    source: Source::OrderBy { key: NUM.into(), descending: true },
                    filter: None,
                    limit: 1,
                }],
                ranking: Ranking::Rrf { k: 1, weights: None },
                filter: None,
                limit: 1,
                offset: 0,
                with_vectors: vec![],
            },
        )
        .await?;
    Ok(top.first().and_then(|h| h.payload.get(NUM)).and_then(Value::as_u64).unwrap_or(0))
}

/// What a product update keeps of the stored point.
struct Kept {
    hash: Option<String>,
    text: Option<Vec<f32>>,
    co: Option<Vector>,
    num: Option<u64>,
    trend: Option<Value>,
}

/// The stored payload of a product: its fields plus lower-cased filter keys.
fn to_payload(p: &Product) -> Result<Map<String, Value>> {
    let Value::Object(mut map) =
        serde_json::to_value(p).map_err(|e| Error::Internal(format!("product to payload: {e}")))?
    else {
        return Err(Error::Internal("product did not serialize to an object".into()));
    };
    map.insert(CATEGORY_KEYS.into(), Value::Array(p.categories.iter().map(|c| Value::String(filter_key(c))).collect()));
    if let Some(b) = &p.brand {
        map.insert(BRAND_KEY.into(), Value::String(filter_key(b)));
    }
    Ok(map)
}

/// A product from its stored payload.
pub(crate) fn from_payload(mut payload: Map<String, Value>) -> Result<Product> {
    for key in INTERNAL_KEYS {
        payload.remove(*key);
    }
    serde_json::from_value(Value::Object(payload))
        .map_err(|e| Error::Store(format!("stored product is unreadable: {e}")))
}

/// The form in which categories and brands are matched: trimmed and lower-cased.
pub fn filter_key(s: &str) -> String {
    s.trim().to_lowercase()
}
