//! The vector store: product, customer and event collections in Qdrant.
//!
//! [`Store`] is the only way the rest of aisle reaches Qdrant. It speaks in its own small types
//! ([`Point`], [`Filter`], [`Query`]) so that the embedded engine (`edge`, qdrant-edge,
//! in-process) and a Qdrant server behave the same behind it. Every write returns only once it
//! is durable: a process killed right after a write was acknowledged finds it on restart.
//!
//! Point ids are UUIDv5 of the external id (Qdrant accepts only integers and UUIDs); the
//! payload keeps the external id.
//!
//! Layout: this file holds the public types, [`Store`] and [`KeywordEncoder`]; `backend` is the
//! trait an engine implements (on full collection names); `edge` is the embedded engine,
//! `remote` a Qdrant server or cluster over gRPC.
//!
//! Not for: models, HTTP, or what a collection means to the catalog, events or recommendations;
//! callers define their collections with [`CollectionSpec`] and their own payload fields.

mod backend;
mod edge;
mod keywords;
pub mod migrate;
mod remote;
pub mod space;
pub use keywords::KeywordEncoder;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};
use uuid::Uuid;

use self::backend::Backend;
use crate::config::StoreConfig;
use crate::error::Result;

/// The payload key of [`Store::claim`]'s token.
pub const CLAIM: &str = "claim";

/// A JSON object: a point's payload.
pub type Payload = Map<String, Value>;

/// The UUIDv5 point id of an external id within a collection's id space.
///
/// The namespace is derived from `space` (e.g. `"products"`), so the same external id in two
/// collections gives two different point ids.
pub fn point_id(space: &str, external_id: &str) -> Uuid {
    let namespace = Uuid::new_v5(&Uuid::NAMESPACE_URL, format!("urn:aisle:{space}").as_bytes());
    Uuid::new_v5(&namespace, external_id.as_bytes())
}

/// Similarity of a dense vector space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distance {
    /// Cosine similarity (vectors are normalised by the engine).
    Cosine,
    /// Dot product.
    Dot,
    /// Negative Euclidean distance.
    Euclid,
}

/// A named dense vector of a collection.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseSpec {
    /// Vector name.
    pub name: String,
    /// Dimension.
    pub dim: usize,
    /// Similarity.
    pub distance: Distance,
}

/// A named sparse vector of a collection.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseSpec {
    /// Vector name.
    pub name: String,
    /// Whether the engine applies inverse document frequency at query time (BM25).
    pub idf: bool,
}

/// The kind of a payload index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKind {
    /// Exact string match (also over arrays of strings).
    Keyword,
    /// Floating-point ranges.
    Float,
    /// Integers.
    Integer,
    /// Booleans.
    Bool,
}

/// What a collection holds.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionSpec {
    /// Logical name (the configured prefix is added by the store).
    pub name: String,
    /// Dense vectors.
    pub dense: Vec<DenseSpec>,
    /// Sparse vectors.
    pub sparse: Vec<SparseSpec>,
    /// Payload fields to index for filtering.
    pub indexes: Vec<(String, IndexKind)>,
    /// Build HNSW graphs for the dense vectors (false for collections only read by id).
    pub hnsw: bool,
}

impl CollectionSpec {
    /// A collection of payloads only (records, counters, claims) with these indexes. It
    /// declares one unused sparse vector, since a collection needs a vector.
    pub fn payload_only(name: &str, indexes: &[(&str, IndexKind)]) -> Self {
        CollectionSpec {
            name: name.into(),
            dense: vec![],
            sparse: vec![SparseSpec { name: "unused".into(), idf: false }],
            indexes: indexes.iter().map(|(k, i)| (k.to_string(), *i)).collect(),
            hnsw: true,
        }
    }
}

/// One vector value.
#[derive(Debug, Clone, PartialEq)]
pub enum Vector {
    /// A dense vector.
    Dense(Vec<f32>),
    /// A sparse vector: sorted unique indices and their values.
    Sparse {
        /// Dimension ids.
        indices: Vec<u32>,
        /// Values, one per index.
        values: Vec<f32>,
    },
}

/// A point to write.
#[derive(Debug, Clone)]
pub struct Point {
    /// Point id (see [`point_id`]).
    pub id: Uuid,
    /// Named vectors.
    pub vectors: Vec<(String, Vector)>,
    /// Payload.
    pub payload: Payload,
}

/// A point read back.
#[derive(Debug, Clone)]
pub struct Record {
    /// Point id.
    pub id: Uuid,
    /// Payload.
    pub payload: Payload,
    /// The vectors asked for.
    pub vectors: HashMap<String, Vector>,
}

/// A scored point from a query.
#[derive(Debug, Clone)]
pub struct Hit {
    /// Point id.
    pub id: Uuid,
    /// Score (higher is better).
    pub score: f32,
    /// Payload.
    pub payload: Payload,
    /// The vectors the query asked for.
    pub vectors: HashMap<String, Vector>,
}

/// A page of a scroll.
#[derive(Debug, Clone)]
pub struct Page {
    /// Records in id order.
    pub records: Vec<Record>,
    /// Where the next page starts, if there is one.
    pub next: Option<Uuid>,
}

/// One filter condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// The keyword field (or one element of a keyword array) equals the value.
    Keyword {
        /// Payload key.
        key: String,
        /// Value.
        value: String,
    },
    /// The keyword field equals one of the values.
    KeywordAny {
        /// Payload key.
        key: String,
        /// Values.
        values: Vec<String>,
    },
    /// The boolean field has this value.
    Bool {
        /// Payload key.
        key: String,
        /// Value.
        value: bool,
    },
    /// The numeric field lies in the range (bounds inclusive).
    Range {
        /// Payload key.
        key: String,
        /// Lower bound.
        gte: Option<f64>,
        /// Upper bound.
        lte: Option<f64>,
    },
    /// The point id is one of these.
    HasId(Vec<Uuid>),
    /// The field is missing, null or an empty array.
    IsEmpty(String),
    /// A nested filter.
    Nested(Filter),
}

/// A boolean combination of conditions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// All must hold.
    pub must: Vec<Condition>,
    /// At least one must hold (if any are given).
    pub should: Vec<Condition>,
    /// None may hold.
    pub must_not: Vec<Condition>,
}

impl Filter {
    /// Add a condition that must hold.
    pub fn must(mut self, c: Condition) -> Self {
        self.must.push(c);
        self
    }

    /// Add a condition that must not hold.
    pub fn must_not(mut self, c: Condition) -> Self {
        self.must_not.push(c);
        self
    }

    /// Whether the filter has no conditions at all.
    pub fn is_empty(&self) -> bool {
        self.must.is_empty() && self.should.is_empty() && self.must_not.is_empty()
    }
}

/// How a vector scores points.
#[derive(Debug, Clone, PartialEq)]
pub enum VectorQuery {
    /// Nearest neighbours of a vector.
    Nearest {
        /// Which named vector to search.
        using: String,
        /// The query vector.
        vector: Vector,
    },
    /// Qdrant's recommend (best-score strategy): close to the positives, far from the negatives.
    Recommend {
        /// Which named vector to search.
        using: String,
        /// Examples to be close to.
        positive: Vec<Vec<f32>>,
        /// Examples to be far from.
        negative: Vec<Vec<f32>>,
    },
}

/// What ranks the candidates of a prefetch.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// Similarity to a vector (or to examples).
    Vector(VectorQuery),
    /// A numeric payload field (which must be indexed as a float or integer).
    OrderBy {
        /// Payload key.
        key: String,
        /// Highest first.
        descending: bool,
    },
}

/// A candidate source of a query: a search with its own filter and limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Prefetch {
    /// What ranks the candidates.
    pub source: Source,
    /// Filter applied inside the search.
    pub filter: Option<Filter>,
    /// Candidates to return.
    pub limit: usize,
}

/// How the final list is ranked.
#[derive(Debug, Clone, PartialEq)]
pub enum Ranking {
    /// Score by one vector query (no prefetches needed).
    Vector(VectorQuery),
    /// Reciprocal rank fusion of the prefetches, optionally weighted (one weight per prefetch).
    Rrf {
        /// RRF constant.
        k: usize,
        /// Weights per prefetch.
        weights: Option<Vec<f32>>,
    },
}

/// One query: prefetches fused or rescored, filtered, paginated.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// Candidate sources.
    pub prefetch: Vec<Prefetch>,
    /// Final ranking.
    pub ranking: Ranking,
    /// Filter on the final result (also applied to every prefetch).
    pub filter: Option<Filter>,
    /// Results to return.
    pub limit: usize,
    /// Results to skip.
    pub offset: usize,
    /// Named vectors to return with each hit.
    pub with_vectors: Vec<String>,
}

/// The vector store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    /// The engine, addressed by full collection names.
    backend: Arc<dyn Backend>,
    /// Added to every collection name.
    prefix: String,
    /// Writes are refused while the data directory is nearly full.
    guard: Option<Arc<space::DiskGuard>>,
}

impl Store {
    /// Open the store the configuration names: a Qdrant server when `qdrant_url` is set, else the
    /// embedded engine under `data_dir`.
    pub fn open(config: &StoreConfig) -> Result<Self> {
        let store = if config.qdrant_url.is_empty() {
            Self::open_embedded(&config.data_dir.join("qdrant"), &config.collection_prefix, config.index_after_points)?
        } else {
            Self::open_remote(config)?
        };
        // On a server the data directory still holds aisle's own files (keys, audit log, jobs).
        Ok(store.with_disk_guard(&config.data_dir, config.min_free_mb << 20))
    }

    /// Refuse writes while `dir`'s filesystem has less than `min_free` bytes free (0: never).
    pub fn with_disk_guard(mut self, dir: &Path, min_free: u64) -> Self {
        self.guard = (min_free > 0).then(|| Arc::new(space::DiskGuard::new(dir, min_free)));
        self
    }

    /// A write that adds data: refused (`InsufficientStorage`) while the data directory is under
    /// its watermark, else run and timed. (Deletions are never refused.)
    async fn write<T>(&self, op: &'static str, work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        if let Some(guard) = &self.guard {
            guard.check()?;
        }
        timed(op, work).await
    }

    /// Open (or create) the embedded store at `dir`. Fails if another process has it open.
    pub fn open_embedded(dir: &Path, prefix: &str, index_after_points: usize) -> Result<Self> {
        let edge = edge::EdgeBackend::open(dir, index_after_points)?;
        Ok(Self { backend: Arc::new(edge), prefix: prefix.to_string(), guard: None })
    }

    /// A client of the Qdrant server `config.qdrant_url` (connecting on the first operation),
    /// creating collections with the `[store]` cluster layout.
    pub fn open_remote(config: &StoreConfig) -> Result<Self> {
        let remote = remote::RemoteBackend::open(config)?;
        Ok(Self { backend: Arc::new(remote), prefix: config.collection_prefix.clone(), guard: None })
    }

    /// A short description of the backend for logs and `/readyz`.
    pub fn describe(&self) -> String {
        self.backend.describe()
    }

    /// Whether other aisle processes may share this store (a Qdrant server), rather than this
    /// process alone (the embedded engine).
    pub fn is_remote(&self) -> bool {
        self.backend.is_remote()
    }

    /// Whether the engine answers now ([`Error::Unavailable`] when a server does not).
    pub async fn health(&self) -> Result<()> {
        self.backend.health().await
    }

    /// The full name of a collection (the prefix added).
    fn full(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }

    /// Create the collection if missing; add vectors and indexes the spec has and it lacks.
    pub async fn ensure_collection(&self, spec: &CollectionSpec) -> Result<()> {
        let mut spec = spec.clone();
        spec.name = self.full(&spec.name);
        self.backend.ensure_collection(spec).await
    }

    /// Insert or replace points. Durable when it returns.
    pub async fn upsert(&self, collection: &str, points: Vec<Point>) -> Result<()> {
        if points.is_empty() {
            return Ok(());
        }
        self.write("upsert", self.backend.upsert(self.full(collection), points)).await
    }

    /// Claim points: insert those whose ids are new, leave existing ones untouched, and return
    /// the ids this call created. Each point is stamped with a token of this call under
    /// [`CLAIM`]; reading the points back tells which were ours. Several processes claiming the
    /// same id at once (on one server or cluster): exactly one gets it. Durable when it returns.
    pub async fn claim(&self, collection: &str, mut points: Vec<Point>) -> Result<HashSet<Uuid>> {
        if points.is_empty() {
            return Ok(HashSet::new());
        }
        let token = Uuid::new_v4().to_string();
        for p in &mut points {
            p.payload.insert(CLAIM.into(), Value::String(token.clone()));
        }
        let stored = self.write("insert", self.backend.insert(self.full(collection), points)).await?;
        Ok(stored
            .into_iter()
            .filter(|r| r.payload.get(CLAIM).and_then(Value::as_str) == Some(token.as_str()))
            .map(|r| r.id)
            .collect())
    }

    /// Merge `payload` keys into the points' payloads. Durable when it returns.
    pub async fn set_payload(&self, collection: &str, ids: Vec<Uuid>, payload: Payload) -> Result<()> {
        self.write("set_payload", self.backend.set_payload(self.full(collection), ids, payload)).await
    }

    /// Replace the named vectors of existing points, keeping their other vectors and payload.
    /// Durable when it returns.
    pub async fn update_vectors(&self, collection: &str, updates: Vec<(Uuid, Vec<(String, Vector)>)>) -> Result<()> {
        if updates.is_empty() {
            return Ok(());
        }
        self.write("update_vectors", self.backend.update_vectors(self.full(collection), updates)).await
    }

    /// Delete every point matching `filter`. Durable when it returns.
    pub async fn delete_by_filter(&self, collection: &str, filter: Filter) -> Result<()> {
        timed("delete_by_filter", self.backend.delete_by_filter(self.full(collection), filter)).await
    }

    /// Merge a different payload into each point, durable as one write when it returns.
    pub async fn set_payloads(&self, collection: &str, updates: Vec<(Uuid, Payload)>) -> Result<()> {
        if updates.is_empty() {
            return Ok(());
        }
        self.write("set_payloads", self.backend.set_payloads(self.full(collection), updates)).await
    }

    /// Delete points by id (missing ids are ignored). Durable when it returns.
    pub async fn delete(&self, collection: &str, ids: Vec<Uuid>) -> Result<()> {
        timed("delete", self.backend.delete(self.full(collection), ids)).await
    }

    /// Read points by id, in the order asked (missing ids are left out).
    pub async fn retrieve(&self, collection: &str, ids: Vec<Uuid>, with_vectors: Vec<String>) -> Result<Vec<Record>> {
        timed("retrieve", self.backend.retrieve(self.full(collection), ids, with_vectors)).await
    }

    /// Page through points in id order, starting at `offset`.
    pub async fn scroll(
        &self,
        collection: &str,
        filter: Option<Filter>,
        offset: Option<Uuid>,
        limit: usize,
    ) -> Result<Page> {
        timed("scroll", self.backend.scroll(self.full(collection), filter, offset, limit, vec![])).await
    }

    /// Page through every point in id order with the named vectors (for copying a collection).
    pub async fn scroll_with_vectors(
        &self,
        collection: &str,
        offset: Option<Uuid>,
        limit: usize,
        with_vectors: Vec<String>,
    ) -> Result<Page> {
        timed("scroll", self.backend.scroll(self.full(collection), None, offset, limit, with_vectors)).await
    }

    /// The collections of this store (names without the prefix), sorted.
    pub async fn collections(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .backend
            .list_collections()
            .await?
            .into_iter()
            .filter_map(|n| n.strip_prefix(&self.prefix).map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    /// What a collection holds, read back from the engine (name without the prefix).
    pub async fn collection_spec(&self, collection: &str) -> Result<CollectionSpec> {
        let mut spec = self.backend.collection_spec(self.full(collection)).await?;
        spec.name = collection.to_string();
        Ok(spec)
    }

    /// Run a query (prefetches, fusion, filters) in one engine call.
    pub async fn query(&self, collection: &str, query: Query) -> Result<Vec<Hit>> {
        timed("query", self.backend.query(self.full(collection), query, true)).await
    }

    /// As [`Store::query`], without payloads (empty in the hits): for callers that need only
    /// ids, ranks and scores (much less to read and, from a server, to send).
    pub async fn query_ids(&self, collection: &str, query: Query) -> Result<Vec<Hit>> {
        timed("query", self.backend.query(self.full(collection), query, false)).await
    }

    /// Count points matching a filter (exactly).
    pub async fn count(&self, collection: &str, filter: Option<Filter>) -> Result<usize> {
        timed("count", self.backend.count(self.full(collection), filter)).await
    }

    /// Add a dense vector to an existing collection if missing (e.g. `collab` after training).
    pub async fn ensure_vector(&self, collection: &str, vector: &DenseSpec) -> Result<()> {
        self.backend.ensure_vector(self.full(collection), vector.clone()).await
    }

    /// Rewrite a collection from its live points only (fresh segments, indexes and WAL), so that
    /// deleted and overwritten data no longer exists on disk. Readers and writers of the
    /// collection wait meanwhile; it takes time proportional to the collection's size.
    pub async fn compact(&self, collection: &str) -> Result<()> {
        self.backend.compact(self.full(collection)).await
    }

    /// Build indexes where enough points are unindexed; returns whether anything was done.
    pub async fn maintain(&self) -> Result<bool> {
        self.backend.maintain(false).await
    }

    /// Build indexes now, whatever the thresholds say (after a bulk import); on a Qdrant server,
    /// wait until the server's optimizers have finished with every collection of this store.
    pub async fn optimize(&self) -> Result<bool> {
        self.backend.maintain(true).await
    }

    /// Flush everything to disk (also done on every write; this is for shutdown).
    pub async fn flush(&self) -> Result<()> {
        self.backend.flush().await
    }
}

/// Run a store operation, recording its latency (and failures) by kind.
async fn timed<T>(op: &'static str, work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    let started = std::time::Instant::now();
    let out = work.await;
    metrics::histogram!("aisle_store_operation_duration_seconds", "op" => op).record(started.elapsed().as_secs_f64());
    if out.is_err() {
        metrics::counter!("aisle_store_errors_total", "op" => op).increment(1);
    }
    out
}

/// Both filters (either, if only one is given).
pub(crate) fn combine_filters(a: Option<&Filter>, b: Option<&Filter>) -> Option<Filter> {
    match (a, b) {
        (None, None) => None,
        (Some(f), None) | (None, Some(f)) => Some(f.clone()),
        (Some(a), Some(b)) => {
            Some(Filter::default().must(Condition::Nested(a.clone())).must(Condition::Nested(b.clone())))
        }
    }
}
