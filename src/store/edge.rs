//! The embedded backend: qdrant-edge 0.7.2 shards, one per collection, under the data directory.
//!
//! Facts about qdrant-edge 0.7.2 that shape this file:
//! - `EdgeShard::update` appends to a WAL, but `EdgeShard::load` never replays it, and nothing
//!   ever truncates it. We therefore flush the segments after every write (so an acknowledged
//!   write is on disk, not in the WAL only).
//! - Each point remembers the WAL index of its last write, and an operation whose index is not
//!   above it is skipped as already applied. The WAL's numbering must therefore never restart:
//!   deleting the WAL would make every later update of an existing point a silent no-op. To
//!   bound its size we do what the WAL's own `prefix_truncate` does: delete its older closed
//!   segments and keep the newest closed one and the open one, which carry the numbering on.
//!   This happens whenever a collection is opened, and while running, by reopening a
//!   collection whose WAL has grown past [`WAL_REOPEN_BYTES`].
//! - `EdgeShard::flush` panics if another thread is inside `update`, so writes and flushes of a
//!   collection are serialised by our own mutex; reads run concurrently.
//! - Deleted points and overwritten payloads stay in segment files (and their writes in the WAL)
//!   until segments are rewritten. [`EdgeStore::compact`] rewrites a collection from its live
//!   points into a fresh directory and swaps it in (erasure needs the bytes gone); a crash
//!   mid-way is resolved on the next open ([`recover_compaction`]).
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
    path: PathBuf,
    /// `None` only inside [`Collection::reopen`], under the write lock.
    shard: RwLock<Option<EdgeShard>>,
    writes: Mutex<()>,
    unindexed: AtomicUsize,
}

/// A collection whose WAL is larger than this is reopened (and its WAL pruned) by maintenance.
pub const WAL_REOPEN_BYTES: u64 = 64 * 1024 * 1024;

/// Read access to an open shard.
struct ShardRef<'a>(parking_lot::RwLockReadGuard<'a, Option<EdgeShard>>);

impl std::ops::Deref for ShardRef<'_> {
    type Target = EdgeShard;
    fn deref(&self) -> &EdgeShard {
        self.0.as_ref().expect("a shard is only absent inside reopen, under the write lock")
    }
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
        recover_compaction(&collections_dir)?;
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
            if name.contains('.') {
                continue; // a compaction's side directory, handled below
            }
            if !path.join("edge_config.json").exists() {
                // A collection whose creation never finished: nothing was acknowledged into it.
                let _ = std::fs::remove_dir_all(&path);
                continue;
            }
            let shard = load_shard(&path)?;
            collections.insert(name.clone(), Arc::new(Collection::new(name, path, shard)));
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
                let c = Arc::new(Collection::new(spec.name.clone(), path, shard));
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
        c.write_all(vec![set_payload_op(&ids, payload)?])
    }

    /// Merge a payload into each point; one flush for all.
    pub fn set_payloads(&self, collection: &str, updates: Vec<(Uuid, Payload)>) -> Result<()> {
        let c = self.get(collection)?;
        let ops = updates.into_iter().map(|(id, p)| set_payload_op(&[id], p)).collect::<Result<Vec<_>>>()?;
        c.write_all(ops)
    }

    /// Replace named vectors of existing points and flush.
    pub fn update_vectors(&self, collection: &str, updates: Vec<(Uuid, Vec<(String, Vector)>)>) -> Result<()> {
        let c = self.get(collection)?;
        let mut points = Vec::with_capacity(updates.len());
        for (id, vectors) in updates {
            let vectors = vectors.into_iter().map(|(n, v)| Ok((n, to_vector(v)?))).collect::<Result<Vec<_>>>()?;
            let named = Vectors::new_named(vectors.into_iter().map(|(n, v)| (n, qdrant_edge::Vector::from(v))));
            points.push(qdrant_edge::PointVectorsPersisted { id: EdgePointId::Uuid(id), vector: named.0.into() });
        }
        c.write(UpdateOperation::VectorOperation(qdrant_edge::VectorOperations::UpdateVectors(
            qdrant_edge::UpdateVectorsOp { points, update_filter: None },
        )))
    }

    /// Delete the points matching a filter and flush.
    pub fn delete_by_filter(&self, collection: &str, filter: Filter) -> Result<()> {
        let c = self.get(collection)?;
        c.write(UpdateOperation::PointOperation(PointOperations::DeletePointsByFilter(to_edge_filter(&filter)?)))
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
            .shard()
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
        let (records, next) = c.shard().scroll(request).map_err(edge_err("scroll failed"))?;
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
                    query: Some(to_scoring(&p.source)?),
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
            with_vector: if query.with_vectors.is_empty() {
                WithVector::Bool(false)
            } else {
                WithVector::Selector(query.with_vectors.clone())
            },
            with_payload: WithPayloadInterface::Bool(true),
        };
        let points = c.shard().query(request).map_err(edge_err("query failed"))?;
        points
            .into_iter()
            .skip(query.offset)
            .map(|p| {
                let record = to_record(p.id, p.payload, p.vector)?;
                Ok(Hit { id: record.id, score: p.score, payload: record.payload, vectors: record.vectors })
            })
            .collect()
    }

    /// Count points matching a filter.
    pub fn count(&self, collection: &str, filter: Option<Filter>) -> Result<usize> {
        let c = self.get(collection)?;
        let request =
            qdrant_edge::CountRequest { filter: filter.as_ref().map(to_edge_filter).transpose()?, exact: true };
        c.shard().count(request).map_err(edge_err("count failed"))
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
            let shard = c.shard();
            any |= shard.optimize().map_err(edge_err("optimize failed"))?;
            shard.flush();
            tracing::info!(collection = %c.name, points = pending, secs = started.elapsed().as_secs_f32(), "optimized collection");
        }
        for c in self.collections.read().values().cloned().collect::<Vec<_>>() {
            if dir_size(&c.path.join("wal")) > WAL_REOPEN_BYTES {
                c.reopen()?;
                any = true;
            }
        }
        Ok(any)
    }

    /// Add a dense vector to a collection if it is missing (same dimension required if present).
    pub fn ensure_vector(&self, collection: &str, d: &super::DenseSpec) -> Result<()> {
        let c = self.get(collection)?;
        let config = c.shard().config().clone();
        match config.vectors.get(&d.name) {
            Some(existing) if existing.size != d.dim => Err(Error::Store(format!(
                "collection '{collection}' stores '{}' vectors of dimension {}, not {}",
                d.name, existing.size, d.dim
            ))),
            Some(_) => Ok(()),
            None => {
                let config: qdrant_edge::VectorNameConfig =
                    serde_json::from_value(json!({"dense": {"size": d.dim, "distance": distance_name(d.distance)}}))
                        .map_err(|e| Error::Internal(format!("vector config: {e}")))?;
                c.write(UpdateOperation::VectorNameOperation(qdrant_edge::VectorNameOperations::CreateVectorName(
                    qdrant_edge::CreateVectorName { vector_name: d.name.clone(), config },
                )))
            }
        }
    }

    /// Rewrite a collection from its live points (see the module doc).
    pub fn compact(&self, collection: &str) -> Result<()> {
        self.get(collection)?.compact()
    }

    /// Flush every collection.
    pub fn flush_all(&self) -> Result<()> {
        for c in self.collections.read().values() {
            let _w = c.writes.lock();
            c.shard().flush();
        }
        Ok(())
    }
}

impl Collection {
    fn new(name: String, path: PathBuf, shard: EdgeShard) -> Self {
        Self { name, path, shard: RwLock::new(Some(shard)), writes: Mutex::new(()), unindexed: AtomicUsize::new(0) }
    }

    fn shard(&self) -> ShardRef<'_> {
        ShardRef(self.shard.read())
    }

    /// Apply one update and make it durable before returning.
    fn write(&self, op: UpdateOperation) -> Result<()> {
        self.write_all(vec![op])
    }

    /// Apply updates in order and make them durable (one flush) before returning.
    fn write_all(&self, ops: Vec<UpdateOperation>) -> Result<()> {
        let _w = self.writes.lock();
        let shard = self.shard();
        for op in ops {
            shard.update(op).map_err(edge_err("write failed"))?;
        }
        shard.flush();
        Ok(())
    }

    /// Close the shard (flushing it), prune its WAL, and open it again. Readers and writers
    /// wait meanwhile.
    fn reopen(&self) -> Result<()> {
        let _w = self.writes.lock();
        let mut slot = self.shard.write();
        let before = dir_size(&self.path.join("wal"));
        drop(slot.take()); // flushes and releases the WAL's directory lock
        match load_shard(&self.path) {
            Ok(shard) => {
                *slot = Some(shard);
                tracing::info!(collection = %self.name, wal_bytes_before = before, wal_bytes_after = dir_size(&self.path.join("wal")), "pruned the WAL");
                Ok(())
            }
            Err(e) => {
                // Leave the collection unusable rather than half-open; the error says why.
                tracing::error!(collection = %self.name, error = %e, "reopening a collection failed");
                Err(e)
            }
        }
    }

    /// Copy the live points into `<name>.compact`, mark it complete, and swap it in for the
    /// collection's directory (the old one is deleted). Readers and writers wait meanwhile.
    fn compact(&self) -> Result<()> {
        let _w = self.writes.lock();
        let mut slot = self.shard.write();
        let started = std::time::Instant::now();
        let side = self.path.with_extension("compact");
        let old = self.path.with_extension("old");
        let io = |what: &str, p: &Path| format!("{what} {}", p.display());
        if side.exists() {
            std::fs::remove_dir_all(&side).map_err(|e| Error::io(io("cannot clear", &side), e))?;
        }
        std::fs::create_dir_all(&side).map_err(|e| Error::io(io("cannot create", &side), e))?;
        let points = {
            let shard = slot.as_ref().ok_or_else(|| Error::Store(format!("collection '{}' is closed", self.name)))?;
            let config = shard.config().clone();
            let schema = shard.info().payload_schema;
            let fresh = EdgeShard::new(&side, config).map_err(edge_err("cannot create the compacted collection"))?;
            for (field, info) in schema {
                let schema = PayloadFieldSchema::try_from(info)
                    .map_err(|e| Error::Store(format!("cannot copy the index of '{field}': {e}")))?;
                fresh
                    .update(UpdateOperation::FieldIndexOperation(FieldIndexOperations::CreateIndex(
                        qdrant_edge::CreateIndex { field_name: field, field_schema: Some(schema) },
                    )))
                    .map_err(edge_err("cannot index the compacted collection"))?;
            }
            let mut offset = None;
            let mut n = 0usize;
            loop {
                let request = ScrollRequest {
                    offset,
                    limit: Some(1000),
                    filter: None,
                    with_payload: Some(WithPayloadInterface::Bool(true)),
                    with_vector: WithVector::Bool(true),
                    order_by: None,
                };
                let (records, next) = shard.scroll(request).map_err(edge_err("scroll failed"))?;
                n += records.len();
                let batch: Vec<qdrant_edge::PointStructPersisted> = records
                    .into_iter()
                    .map(|r| qdrant_edge::PointStructPersisted {
                        id: r.id,
                        vector: r.vector.unwrap_or_else(|| VectorStructInternal::Named(Default::default())).into(),
                        payload: r.payload,
                    })
                    .collect();
                if !batch.is_empty() {
                    fresh
                        .update(UpdateOperation::PointOperation(PointOperations::UpsertPoints(
                            PointInsertOperations::PointsList(batch),
                        )))
                        .map_err(edge_err("copy failed"))?;
                }
                match next {
                    Some(id) => offset = Some(id),
                    None => break,
                }
            }
            fresh.optimize().map_err(edge_err("optimize failed"))?;
            fresh.flush();
            n
        };
        sync_file(&side.join(COMPACTION_DONE), true)?;
        drop(slot.take()); // flushes and releases the WAL's directory lock
        std::fs::rename(&self.path, &old).map_err(|e| Error::io(io("cannot move", &self.path), e))?;
        std::fs::rename(&side, &self.path).map_err(|e| Error::io(io("cannot move", &side), e))?;
        let _ = std::fs::remove_file(self.path.join(COMPACTION_DONE));
        std::fs::remove_dir_all(&old).map_err(|e| Error::io(io("cannot delete", &old), e))?;
        sync_dir(self.path.parent().unwrap_or(Path::new(".")));
        *slot = Some(load_shard(&self.path)?);
        self.unindexed.store(0, Ordering::Relaxed);
        tracing::info!(collection = %self.name, points, secs = started.elapsed().as_secs_f32(), "compacted collection");
        Ok(())
    }

    /// Make the collection match `spec`: same dimensions, missing vectors and indexes added.
    fn reconcile(&self, spec: &CollectionSpec) -> Result<()> {
        let config = self.shard().config().clone();
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
        let indexed = self.shard().info().payload_schema;
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

/// Marks a compacted copy as complete.
const COMPACTION_DONE: &str = "COMPACTED";

/// Finish or undo compactions a crash interrupted: a complete `<name>.compact` replaces a
/// missing `<name>`; an incomplete one is deleted; a leftover `<name>.old` is deleted once
/// `<name>` exists (or restored if it does not).
fn recover_compaction(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    let names: Vec<String> = entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    let io = |what: &str, p: &Path| format!("{what} {}", p.display());
    for name in &names {
        let Some(base) = name.strip_suffix(".compact") else { continue };
        let side = dir.join(name);
        let target = dir.join(base);
        if side.join(COMPACTION_DONE).exists() && !target.exists() {
            std::fs::rename(&side, &target).map_err(|e| Error::io(io("cannot move", &side), e))?;
            let _ = std::fs::remove_file(target.join(COMPACTION_DONE));
            tracing::info!(collection = base, "finished an interrupted compaction");
        } else {
            std::fs::remove_dir_all(&side).map_err(|e| Error::io(io("cannot delete", &side), e))?;
        }
    }
    for name in &names {
        let Some(base) = name.strip_suffix(".old") else { continue };
        let old = dir.join(name);
        let target = dir.join(base);
        if target.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| Error::io(io("cannot delete", &old), e))?;
        } else {
            std::fs::rename(&old, &target).map_err(|e| Error::io(io("cannot move", &old), e))?;
        }
    }
    Ok(())
}

fn sync_file(path: &Path, create: bool) -> Result<()> {
    let f = File::options()
        .create(create)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    f.sync_all().map_err(|e| Error::io(format!("cannot sync {}", path.display()), e))
}

fn sync_dir(path: &Path) {
    if let Ok(d) = File::open(path) {
        let _ = d.sync_all();
    }
}

/// Load a shard after pruning its WAL (see the module doc).
fn load_shard(path: &Path) -> Result<EdgeShard> {
    prune_wal(&path.join("wal"))?;
    EdgeShard::load(path, None).map_err(|e| Error::Store(format!("cannot open collection at {}: {e}", path.display())))
}

/// Delete a closed WAL's older `closed-<start>` segments, keeping the newest closed segment and
/// the open ones: the WAL then still starts where its kept segments say, so its numbering goes
/// on (exactly the WAL's own `prefix_truncate`). Entries are never replayed by qdrant-edge, and
/// every acknowledged write was flushed to the segments, so nothing is lost.
pub(crate) fn prune_wal(wal: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(wal) else { return Ok(()) };
    let mut closed: Vec<(u64, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let start = name.strip_prefix("closed-")?.parse::<u64>().ok()?;
            Some((start, e.path()))
        })
        .collect();
    closed.sort();
    closed.pop(); // the newest stays
    for (_, path) in closed {
        std::fs::remove_file(&path).map_err(|e| Error::io(format!("cannot prune {}", path.display()), e))?;
    }
    Ok(())
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map(|es| es.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum()).unwrap_or(0)
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
    let mut body = json!({
        "on_disk_payload": true,
        "vectors": vectors,
        "sparse_vectors": sparse,
    });
    if !spec.hnsw {
        body["hnsw_config"] = json!({"m": 0, "ef_construct": 100, "full_scan_threshold": 10000});
    }
    let mut config: EdgeConfig =
        serde_json::from_value(body).map_err(|e| Error::Internal(format!("collection config: {e}")))?;
    config.wal_options = Some(wal_options());
    Ok(config)
}

fn set_payload_op(ids: &[Uuid], payload: Payload) -> Result<UpdateOperation> {
    let op: qdrant_edge::SetPayloadOp = serde_json::from_value(json!({
        "payload": Value::Object(payload),
        "points": ids.iter().map(|id| id.to_string()).collect::<Vec<_>>(),
    }))
    .map_err(|e| Error::Internal(format!("set-payload operation: {e}")))?;
    Ok(UpdateOperation::PayloadOperation(qdrant_edge::PayloadOps::SetPayload(op)))
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

fn to_scoring(source: &super::Source) -> Result<ScoringQuery> {
    Ok(match source {
        super::Source::Vector(v) => ScoringQuery::Vector(to_query_enum(v)?),
        super::Source::OrderBy { key, descending } => {
            let order: qdrant_edge::OrderBy =
                serde_json::from_value(json!({"key": key, "direction": if *descending { "desc" } else { "asc" }}))
                    .map_err(|e| Error::Internal(format!("order_by: {e}")))?;
            ScoringQuery::OrderBy(order)
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{CollectionSpec, DenseSpec, Distance, IndexKind};

    fn spec() -> CollectionSpec {
        CollectionSpec {
            name: "t".into(),
            dense: vec![DenseSpec { name: "v".into(), dim: 8, distance: Distance::Cosine }],
            sparse: vec![],
            indexes: vec![("n".into(), IndexKind::Integer)],
            hnsw: true,
        }
    }

    fn point(i: u64, label: &str) -> Point {
        let mut payload = Payload::new();
        payload.insert("n".into(), json!(i));
        payload.insert("label".into(), json!(label));
        // Bulk, so that the WAL fills several segments quickly.
        payload.insert("pad".into(), json!("x".repeat(2000)));
        Point {
            id: Uuid::from_u64_pair(0, i),
            vectors: vec![("v".into(), Vector::Dense(vec![1.0, i as f32, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]))],
            payload,
        }
    }

    fn label(store: &EdgeStore, i: u64) -> String {
        let r = store.retrieve("t", &[Uuid::from_u64_pair(0, i)], &[]).unwrap();
        r[0].payload["label"].as_str().unwrap().to_string()
    }

    fn closed_segments(dir: &Path) -> usize {
        std::fs::read_dir(dir.join("collections/t/wal"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("closed-"))
            .count()
    }

    /// The WAL's numbering must survive pruning: an update of a point written before a reopen
    /// must still apply (a restarted numbering would make it a silent no-op).
    #[test]
    fn updates_apply_after_reopening_and_the_wal_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = EdgeStore::open(dir.path(), 1_000_000).unwrap();
            store.ensure_collection(&spec()).unwrap();
            for batch in 0..60 {
                let points = (0..100).map(|i| point(batch * 100 + i, "first")).collect();
                store.upsert("t", points).unwrap();
            }
            assert!(closed_segments(dir.path()) >= 2, "the test needs several WAL segments");
        }
        let store = EdgeStore::open(dir.path(), 1_000_000).unwrap();
        assert!(closed_segments(dir.path()) <= 1, "older closed segments are pruned on open");
        store.upsert("t", vec![point(7, "second")]).unwrap();
        let mut payload = Payload::new();
        payload.insert("label".into(), json!("third"));
        store.set_payload("t", vec![Uuid::from_u64_pair(0, 42)], payload).unwrap();
        assert_eq!(label(&store, 7), "second");
        assert_eq!(label(&store, 42), "third");
        // While running: a reopen prunes too, and writes still apply.
        let c = store.get("t").unwrap();
        c.reopen().unwrap();
        store.upsert("t", vec![point(7, "fourth")]).unwrap();
        assert_eq!(label(&store, 7), "fourth");
        drop(c);
        drop(store);
        let store = EdgeStore::open(dir.path(), 1_000_000).unwrap();
        assert_eq!(
            (label(&store, 7), label(&store, 42), label(&store, 5999)),
            ("fourth".into(), "third".into(), "first".into())
        );
    }

    /// Every file under `dir` that contains `needle`.
    fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if std::fs::read(&p).unwrap().windows(needle.len()).any(|w| w == needle) {
                    found.push(p);
                }
            }
        }
        found
    }

    /// Deleted and overwritten data is on disk until compaction, and gone after it; the rest
    /// survives, indexes work, and later writes and reopening still behave.
    #[test]
    fn compaction_removes_deleted_and_overwritten_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = EdgeStore::open(dir.path(), 1_000_000).unwrap();
        store.ensure_collection(&spec()).unwrap();
        store.upsert("t", (0..50).map(|i| point(i, "keep")).collect()).unwrap();
        store.upsert("t", vec![point(100, "secret-zebra-quasar")]).unwrap();
        let mut payload = Payload::new();
        payload.insert("label".into(), json!("old-value-walrus"));
        store.set_payload("t", vec![Uuid::from_u64_pair(0, 3)], payload.clone()).unwrap();
        payload.insert("label".into(), json!("new-value"));
        store.set_payload("t", vec![Uuid::from_u64_pair(0, 3)], payload).unwrap();
        store.delete("t", vec![Uuid::from_u64_pair(0, 100)]).unwrap();
        assert!(!files_containing(dir.path(), b"secret-zebra-quasar").is_empty(), "deleted bytes linger before");
        store.compact("t").unwrap();
        assert_eq!(files_containing(dir.path(), b"secret-zebra-quasar"), Vec::<PathBuf>::new());
        assert_eq!(files_containing(dir.path(), b"old-value-walrus"), Vec::<PathBuf>::new());
        assert_eq!(store.count("t", None).unwrap(), 50);
        assert_eq!(label(&store, 3), "new-value");
        let filter = Filter::default().must(Condition::Range { key: "n".into(), gte: Some(10.0), lte: Some(19.0) });
        assert_eq!(store.count("t", Some(filter)).unwrap(), 10, "payload indexes are rebuilt");
        store.upsert("t", vec![point(7, "after")]).unwrap();
        assert_eq!(label(&store, 7), "after");
        drop(store);
        let store = EdgeStore::open(dir.path(), 1_000_000).unwrap();
        assert_eq!((label(&store, 7), label(&store, 3)), ("after".into(), "new-value".into()));
        assert_eq!(store.count("t", None).unwrap(), 50);
    }

    /// A crash between the two renames of a compaction: the complete copy is taken on open.
    #[test]
    fn an_interrupted_compaction_is_finished_on_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = EdgeStore::open(dir.path(), 1_000_000).unwrap();
            store.ensure_collection(&spec()).unwrap();
            store.upsert("t", (0..5).map(|i| point(i, "keep")).collect()).unwrap();
        }
        let collections = dir.path().join("collections");
        // Make a complete copy as compaction would, then "crash" after moving the original away.
        {
            let store = EdgeStore::open(dir.path(), 1_000_000).unwrap();
            store.compact("t").unwrap();
        }
        std::fs::rename(collections.join("t"), collections.join("t.compact")).unwrap();
        std::fs::write(collections.join("t.compact").join(COMPACTION_DONE), b"").unwrap();
        std::fs::create_dir_all(collections.join("t.old")).unwrap();
        let store = EdgeStore::open(dir.path(), 1_000_000).unwrap();
        assert_eq!(store.count("t", None).unwrap(), 5);
        assert!(!collections.join("t.old").exists() && !collections.join("t.compact").exists());
        // An incomplete copy is dropped and the original kept.
        drop(store);
        std::fs::create_dir_all(collections.join("t.compact")).unwrap();
        let store = EdgeStore::open(dir.path(), 1_000_000).unwrap();
        assert_eq!(store.count("t", None).unwrap(), 5);
        assert!(!collections.join("t.compact").exists());
    }
}
