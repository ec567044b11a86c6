//! The embedded backend: qdrant-edge 0.7.2 shards, one per collection, under the data directory.
//!
//! Facts about qdrant-edge 0.7.2 that shape this file:
//! - `EdgeShard::update` appends to a WAL, but `EdgeShard::load` never replays it, and nothing
//!   ever truncates it. We therefore flush the segments after every write (so an acknowledged
//!   write is on disk, not in the WAL only), and remove the WAL directory when a shard is
//!   opened (it holds nothing the segments lack) so it cannot grow without bound.
//! - `EdgeShard::flush` panics if another thread is inside `update`, so writes and flushes of a
//!   collection are serialised by our own mutex; reads run concurrently.
//! - Indexes (HNSW) are built only by an explicit `optimize`, which [`EdgeStore::maintain`] runs
//!   once enough points are unindexed.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::{Mutex, RwLock};
use qdrant_edge::external::ordered_float::OrderedFloat;
use qdrant_edge::{
    EdgeConfig, EdgeShard, FieldIndexOperations, Fusion, NamedQuery, PayloadFieldSchema, PayloadSchemaType,
    PointId as EdgePointId, PointInsertOperations, PointOperations, PointStruct, Prefetch as EdgePrefetch, QueryEnum,
    QueryRequest, RecommendQuery, ScoringQuery, ScrollRequest, SparseVector, UpdateOperation, VectorInternal,
    VectorStructInternal, Vectors, WalOptions, WithPayloadInterface, WithVector,
};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    CollectionSpec, Condition, Distance, Filter, Hit, IndexKind, Page, Payload, Point, Query, Ranking, Record, Vector,
    VectorQuery,
};
use crate::error::{Error, Result};

/// The embedded store: a directory of collections, locked against a second process.
pub struct EdgeStore {
    root: PathBuf,
    _lock: File,
    collections: RwLock<HashMap<String, Arc<Collection>>>,
    index_after_points: usize,
}

struct Collection {
    name: String,
    shard: EdgeShard,
    writes: Mutex<()>,
    unindexed: AtomicUsize,
}

fn edge_err(context: &str) -> impl FnOnce(qdrant_edge::OperationError) -> Error + '_ {
    move |e| Error::Store(format!("{context}: {e}"))
}

impl EdgeStore {
    /// Open the store at `root`, creating it if needed, and load every collection in it.
    pub fn open(root: &Path, index_after_points: usize) -> Result<Self> {
        let collections_dir = root.join("collections");
        std::fs::create_dir_all(&collections_dir)
            .map_err(|e| Error::io(format!("cannot create {}", collections_dir.display()), e))?;
        let lock_path = root.join("LOCK");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io(format!("cannot open {}", lock_path.display()), e))?;
        if lock.try_lock().is_err() {
            return Err(Error::Conflict(format!(
                "the data directory {} is in use by another aisle process (is a server running?); stop it, \
                 or send the work to the running server (e.g. `aisle import --server URL ...`)",
                root.display()
            )));
        }
        let mut collections = HashMap::new();
        let entries = std::fs::read_dir(&collections_dir)
            .map_err(|e| Error::io(format!("cannot list {}", collections_dir.display()), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(format!("cannot list {}", collections_dir.display()), e))?;
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if !path.join("edge_config.json").exists() {
                // A collection whose creation never finished: nothing was acknowledged into it.
                let _ = std::fs::remove_dir_all(&path);
                continue;
            }
            let shard = load_shard(&path)?;
            collections.insert(name.clone(), Arc::new(Collection::new(name, shard)));
        }
        Ok(Self { root: root.to_path_buf(), _lock: lock, collections: RwLock::new(collections), index_after_points })
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn get(&self, name: &str) -> Result<Arc<Collection>> {
        self.collections
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::Store(format!("collection '{name}' does not exist")))
    }

    /// Create the collection if missing; otherwise check it matches and add what is missing.
    pub fn ensure_collection(&self, spec: &CollectionSpec) -> Result<()> {
        let mut collections = self.collections.write();
        let collection = match collections.get(&spec.name) {
            Some(c) => c.clone(),
            None => {
                let path = self.root.join("collections").join(&spec.name);
                if path.exists() {
                    std::fs::remove_dir_all(&path)
                        .map_err(|e| Error::io(format!("cannot clear {}", path.display()), e))?;
                }
                std::fs::create_dir_all(&path)
                    .map_err(|e| Error::io(format!("cannot create {}", path.display()), e))?;
                let shard = EdgeShard::new(&path, edge_config(spec)?).map_err(edge_err("cannot create collection"))?;
                let c = Arc::new(Collection::new(spec.name.clone(), shard));
                collections.insert(spec.name.clone(), c.clone());
                c
            }
        };
        drop(collections);
        collection.reconcile(spec)
    }

    /// Upsert points and flush.
    pub fn upsert(&self, collection: &str, points: Vec<Point>) -> Result<()> {
        let c = self.get(collection)?;
        let n = points.len();
        let points = points.into_iter().map(to_edge_point).collect::<Result<Vec<_>>>()?;
        c.write(UpdateOperation::PointOperation(PointOperations::UpsertPoints(PointInsertOperations::PointsList(
            points,
        ))))?;
        c.unindexed.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }

    /// Merge payload keys into points and flush.
    pub fn set_payload(&self, collection: &str, ids: Vec<Uuid>, payload: Payload) -> Result<()> {
        let c = self.get(collection)?;
        let op: qdrant_edge::SetPayloadOp = serde_json::from_value(json!({
            "payload": Value::Object(payload),
            "points": ids.iter().map(|id| id.to_string()).collect::<Vec<_>>(),
        }))
        .map_err(|e| Error::Internal(format!("set-payload operation: {e}")))?;
        c.write(UpdateOperation::PayloadOperation(qdrant_edge::PayloadOps::SetPayload(op)))
    }

    /// Delete points and flush.
    pub fn delete(&self, collection: &str, ids: Vec<Uuid>) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let c = self.get(collection)?;
        let ids = ids.into_iter().map(EdgePointId::Uuid).collect();
        c.write(UpdateOperation::PointOperation(PointOperations::DeletePoints { ids }))
    }

    /// Read points by id, in the order asked.
    pub fn retrieve(&self, collection: &str, ids: &[Uuid], with_vectors: &[String]) -> Result<Vec<Record>> {
        let c = self.get(collection)?;
        let ids: Vec<EdgePointId> = ids.iter().copied().map(EdgePointId::Uuid).collect();
        let with_vector =
            if with_vectors.is_empty() { WithVector::Bool(false) } else { WithVector::Selector(with_vectors.to_vec()) };
        let records = c
            .shard
            .retrieve(&ids, Some(WithPayloadInterface::Bool(true)), Some(with_vector))
            .map_err(edge_err("retrieve failed"))?;
        records.into_iter().map(|r| to_record(r.id, r.payload, r.vector)).collect()
    }

    /// Page through points in id order.
    pub fn scroll(&self, collection: &str, filter: Option<Filter>, offset: Option<Uuid>, limit: usize) -> Result<Page> {
        let c = self.get(collection)?;
        let request = ScrollRequest {
            offset: offset.map(EdgePointId::Uuid),
            limit: Some(limit.max(1)),
            filter: filter.as_ref().map(to_edge_filter).transpose()?,
            with_payload: Some(WithPayloadInterface::Bool(true)),
            with_vector: WithVector::Bool(false),
            order_by: None,
        };
        let (records, next) = c.shard.scroll(request).map_err(edge_err("scroll failed"))?;
        let records = records.into_iter().map(|r| to_record(r.id, r.payload, r.vector)).collect::<Result<Vec<_>>>()?;
        Ok(Page { records, next: next.map(uuid_of).transpose()? })
    }

    /// Run one query.
    pub fn query(&self, collection: &str, query: Query) -> Result<Vec<Hit>> {
        let c = self.get(collection)?;
        let filter = query.filter.as_ref().map(to_edge_filter).transpose()?;
        let prefetches = query
            .prefetch
            .iter()
            .map(|p| {
                // The top-level filter holds inside every source too.
                let f = combine(p.filter.as_ref(), query.filter.as_ref());
                Ok(EdgePrefetch {
                    prefetches: vec![],
                    query: Some(ScoringQuery::Vector(to_query_enum(&p.query)?)),
                    limit: p.limit.max(1),
                    params: None,
                    filter: f.as_ref().map(to_edge_filter).transpose()?,
                    score_threshold: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let scoring = match &query.ranking {
            Ranking::Vector(v) => ScoringQuery::Vector(to_query_enum(v)?),
            Ranking::Rrf { k, weights } => {
                if prefetches.is_empty() {
                    return Err(Error::Internal("RRF fusion needs at least one prefetch".into()));
                }
                ScoringQuery::Fusion(Fusion::Rrf {
                    k: (*k).max(1),
                    weights: weights.as_ref().map(|w| w.iter().map(|x| OrderedFloat(*x)).collect()),
                })
            }
        };
        let request = QueryRequest {
            prefetches,
            query: Some(scoring),
            filter,
            score_threshold: None,
            // qdrant-edge 0.7.2 ignores `offset` under fusion: ask for limit+offset, skip here.
            limit: query.limit + query.offset,
            offset: 0,
            params: None,
            with_vector: WithVector::Bool(false),
            with_payload: WithPayloadInterface::Bool(true),
        };
        let points = c.shard.query(request).map_err(edge_err("query failed"))?;
        points
            .into_iter()
            .skip(query.offset)
            .map(|p| {
                Ok(Hit {
                    id: uuid_of(p.id)?,
                    score: p.score,
                    payload: p.payload.map(|p| p.0.into_iter().collect()).unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Count points matching a filter.
    pub fn count(&self, collection: &str, filter: Option<Filter>) -> Result<usize> {
        let c = self.get(collection)?;
        let request =
            qdrant_edge::CountRequest { filter: filter.as_ref().map(to_edge_filter).transpose()?, exact: true };
        c.shard.count(request).map_err(edge_err("count failed"))
    }

    /// Optimise collections with enough unindexed points (or all, if `force`).
    pub fn maintain(&self, force: bool) -> Result<bool> {
        let collections: Vec<Arc<Collection>> = self.collections.read().values().cloned().collect();
        let mut any = false;
        for c in collections {
            let pending = c.unindexed.load(Ordering::Relaxed);
            if pending == 0 || (!force && pending < self.index_after_points) {
                continue;
            }
            let _w = c.writes.lock();
            c.unindexed.store(0, Ordering::Relaxed);
            let started = std::time::Instant::now();
            any |= c.shard.optimize().map_err(edge_err("optimize failed"))?;
            c.shard.flush();
            tracing::info!(collection = %c.name, points = pending, secs = started.elapsed().as_secs_f32(), "optimized collection");
        }
        Ok(any)
    }

    /// Flush every collection.
    pub fn flush_all(&self) -> Result<()> {
        for c in self.collections.read().values() {
            let _w = c.writes.lock();
            c.shard.flush();
        }
        Ok(())
    }
}

impl Collection {
    fn new(name: String, shard: EdgeShard) -> Self {
        Self { name, shard, writes: Mutex::new(()), unindexed: AtomicUsize::new(0) }
    }

    /// Apply one update and make it durable before returning.
    fn write(&self, op: UpdateOperation) -> Result<()> {
        let _w = self.writes.lock();
        self.shard.update(op).map_err(edge_err("write failed"))?;
        self.shard.flush();
        Ok(())
    }

    /// Make the collection match `spec`: same dimensions, missing vectors and indexes added.
    fn reconcile(&self, spec: &CollectionSpec) -> Result<()> {
        let config = self.shard.config().clone();
        for d in &spec.dense {
            match config.vectors.get(&d.name) {
                Some(existing) if existing.size != d.dim => {
                    return Err(Error::Store(format!(
                        "collection '{}' stores '{}' vectors of dimension {}, but {} are configured now \
                         (a different embedding model?); use a new data directory or re-import",
                        spec.name, d.name, existing.size, d.dim
                    )));
                }
                Some(_) => {}
                None => {
                    let config: qdrant_edge::VectorNameConfig = serde_json::from_value(
                        json!({"dense": {"size": d.dim, "distance": distance_name(d.distance)}}),
                    )
                    .map_err(|e| Error::Internal(format!("vector config: {e}")))?;
                    self.write(UpdateOperation::VectorNameOperation(
                        qdrant_edge::VectorNameOperations::CreateVectorName(qdrant_edge::CreateVectorName {
                            vector_name: d.name.clone(),
                            config,
                        }),
                    ))?;
                }
            }
        }
        for s in &spec.sparse {
            if !config.sparse_vectors.contains_key(&s.name) {
                let body = if s.idf { json!({"sparse": {"modifier": "idf"}}) } else { json!({"sparse": {}}) };
                let config: qdrant_edge::VectorNameConfig =
                    serde_json::from_value(body).map_err(|e| Error::Internal(format!("sparse vector config: {e}")))?;
                self.write(UpdateOperation::VectorNameOperation(qdrant_edge::VectorNameOperations::CreateVectorName(
                    qdrant_edge::CreateVectorName { vector_name: s.name.clone(), config },
                )))?;
            }
        }
        let indexed = self.shard.info().payload_schema;
        for (field, kind) in &spec.indexes {
            let key: qdrant_edge::JsonPath =
                field.parse().map_err(|_| Error::Internal(format!("bad payload index field '{field}'")))?;
            if indexed.contains_key(&key) {
                continue;
            }
            let schema = PayloadFieldSchema::FieldType(match kind {
                IndexKind::Keyword => PayloadSchemaType::Keyword,
                IndexKind::Float => PayloadSchemaType::Float,
                IndexKind::Integer => PayloadSchemaType::Integer,
                IndexKind::Bool => PayloadSchemaType::Bool,
            });
            self.write(UpdateOperation::FieldIndexOperation(FieldIndexOperations::CreateIndex(
                qdrant_edge::CreateIndex { field_name: key, field_schema: Some(schema) },
            )))?;
        }
        Ok(())
    }
}

/// Load a shard after removing its WAL (see the module doc: edge never replays it).
fn load_shard(path: &Path) -> Result<EdgeShard> {
    let wal = path.join("wal");
    if wal.exists() {
        std::fs::remove_dir_all(&wal).map_err(|e| Error::io(format!("cannot clear {}", wal.display()), e))?;
    }
    let shard = EdgeShard::load(path, None)
        .map_err(|e| Error::Store(format!("cannot open collection at {}: {e}", path.display())))?;
    Ok(shard)
}

fn wal_options() -> WalOptions {
    WalOptions { segment_capacity: 4 * 1024 * 1024, segment_queue_len: 0, retain_closed: std::num::NonZeroUsize::MIN }
}

fn distance_name(d: Distance) -> &'static str {
    match d {
        Distance::Cosine => "Cosine",
        Distance::Dot => "Dot",
        Distance::Euclid => "Euclid",
    }
}

fn edge_config(spec: &CollectionSpec) -> Result<EdgeConfig> {
    let mut vectors = serde_json::Map::new();
    for d in &spec.dense {
        vectors.insert(d.name.clone(), json!({"size": d.dim, "distance": distance_name(d.distance)}));
    }
    let mut sparse = serde_json::Map::new();
    for s in &spec.sparse {
        sparse.insert(s.name.clone(), if s.idf { json!({"modifier": "idf"}) } else { json!({}) });
    }
    let mut config: EdgeConfig = serde_json::from_value(json!({
        "on_disk_payload": true,
        "vectors": vectors,
        "sparse_vectors": sparse,
    }))
    .map_err(|e| Error::Internal(format!("collection config: {e}")))?;
    config.wal_options = Some(wal_options());
    Ok(config)
}

fn to_edge_point(p: Point) -> Result<qdrant_edge::PointStructPersisted> {
    let vectors = p.vectors.into_iter().map(|(name, v)| Ok((name, to_vector(v)?))).collect::<Result<Vec<_>>>()?;
    let vectors = Vectors::new_named(vectors.into_iter().map(|(n, v)| (n, qdrant_edge::Vector::from(v))));
    Ok(PointStruct::new(EdgePointId::Uuid(p.id), vectors, Value::Object(p.payload)).into())
}

fn to_vector(v: Vector) -> Result<VectorInternal> {
    Ok(match v {
        Vector::Dense(d) => VectorInternal::Dense(d),
        Vector::Sparse { indices, values } => VectorInternal::Sparse(
            SparseVector::new(indices, values).map_err(|e| Error::Internal(format!("invalid sparse vector: {e}")))?,
        ),
    })
}

fn from_vector(v: VectorInternal) -> Option<Vector> {
    match v {
        VectorInternal::Dense(d) => Some(Vector::Dense(d)),
        VectorInternal::Sparse(s) => Some(Vector::Sparse { indices: s.indices, values: s.values }),
        VectorInternal::MultiDense(_) => None,
    }
}

fn uuid_of(id: EdgePointId) -> Result<Uuid> {
    match id {
        EdgePointId::Uuid(u) => Ok(u),
        EdgePointId::NumId(n) => Err(Error::Store(format!("unexpected numeric point id {n}"))),
    }
}

fn to_record(
    id: EdgePointId,
    payload: Option<qdrant_edge::Payload>,
    vector: Option<VectorStructInternal>,
) -> Result<Record> {
    let mut vectors = HashMap::new();
    if let Some(VectorStructInternal::Named(named)) = vector {
        for (name, v) in named {
            if let Some(v) = from_vector(v) {
                vectors.insert(name, v);
            }
        }
    }
    Ok(Record { id: uuid_of(id)?, payload: payload.map(|p| p.0.into_iter().collect()).unwrap_or_default(), vectors })
}

fn to_query_enum(q: &VectorQuery) -> Result<QueryEnum> {
    Ok(match q {
        VectorQuery::Nearest { using, vector } => {
            QueryEnum::Nearest(NamedQuery { query: to_vector(vector.clone())?, using: Some(using.clone()) })
        }
        VectorQuery::Recommend { using, positive, negative } => QueryEnum::RecommendBestScore(NamedQuery {
            query: RecommendQuery::new(
                positive.iter().cloned().map(VectorInternal::Dense).collect(),
                negative.iter().cloned().map(VectorInternal::Dense).collect(),
            ),
            using: Some(using.clone()),
        }),
    })
}

fn combine(a: Option<&Filter>, b: Option<&Filter>) -> Option<Filter> {
    match (a, b) {
        (None, None) => None,
        (Some(f), None) | (None, Some(f)) => Some(f.clone()),
        (Some(a), Some(b)) => {
            Some(Filter::default().must(Condition::Nested(a.clone())).must(Condition::Nested(b.clone())))
        }
    }
}

/// Translate a filter through Qdrant's own JSON form (the REST API's shape).
fn to_edge_filter(f: &Filter) -> Result<qdrant_edge::Filter> {
    serde_json::from_value(filter_json(f)).map_err(|e| Error::Internal(format!("filter translation: {e}")))
}

/// Qdrant's JSON form of a filter.
pub(super) fn filter_json(f: &Filter) -> Value {
    let list = |cs: &[Condition]| Value::Array(cs.iter().map(condition_json).collect());
    let mut o = serde_json::Map::new();
    if !f.must.is_empty() {
        o.insert("must".into(), list(&f.must));
    }
    if !f.should.is_empty() {
        o.insert("should".into(), list(&f.should));
    }
    if !f.must_not.is_empty() {
        o.insert("must_not".into(), list(&f.must_not));
    }
    Value::Object(o)
}

fn condition_json(c: &Condition) -> Value {
    match c {
        Condition::Keyword { key, value } => json!({"key": key, "match": {"value": value}}),
        Condition::KeywordAny { key, values } => json!({"key": key, "match": {"any": values}}),
        Condition::Bool { key, value } => json!({"key": key, "match": {"value": value}}),
        Condition::Range { key, gte, lte } => json!({"key": key, "range": {"gte": gte, "lte": lte}}),
        Condition::HasId(ids) => json!({"has_id": ids.iter().map(|u| u.to_string()).collect::<Vec<_>>()}),
        Condition::IsEmpty(key) => json!({"is_empty": {"key": key}}),
        Condition::Nested(f) => filter_json(f),
    }
}
