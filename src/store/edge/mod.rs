//! The embedded backend: qdrant-edge 0.7.2 shards, one per collection, under the data directory.
//!
//! Facts about qdrant-edge 0.7.2 that shape this module:
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
//!
//! Layout: this file holds [`EdgeStore`] (the store-wide operations) and [`EdgeBackend`] (the
//! [`Backend`] that runs them on tokio's blocking pool); `collection` holds one collection's
//! state, writes, reopening and compaction; `durability` the WAL, fsync and crash-recovery
//! helpers; `convert` the translation between aisle's store types and qdrant-edge's.
//!
//! Not for: prefixing collection names or skipping empty writes ([`Store`](super::Store) does
//! that for every backend), nor for talking to a Qdrant server.

mod collection;
mod convert;
mod durability;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::future::BoxFuture;
use parking_lot::RwLock;
use qdrant_edge::external::ordered_float::OrderedFloat;
use qdrant_edge::{
    ConditionalInsertOperation, EdgeShard, Fusion, PointId as EdgePointId, PointInsertOperations, PointOperations,
    Prefetch as EdgePrefetch, QueryRequest, ScoringQuery, ScrollRequest, UpdateMode, UpdateOperation, Vectors,
    WithPayloadInterface, WithVector,
};
use serde_json::json;
use uuid::Uuid;

use self::collection::Collection;
use self::convert::{
    distance_name, edge_config, set_payload_op, spec_from_json, to_edge_filter, to_edge_point, to_query_enum,
    to_record, to_scoring, to_vector, uuid_of,
};
use self::durability::{WAL_REOPEN_BYTES, dir_size, load_shard, recover_compaction};
use super::backend::Backend;
use super::{CollectionSpec, DenseSpec, Filter, Hit, Page, Payload, Point, Query, Ranking, Record, Vector};
use crate::error::{Error, Result};

/// The embedded store: a directory of collections, locked against a second process.
pub struct EdgeStore {
    /// The store's directory.
    root: PathBuf,
    /// The locked `LOCK` file, held while the store is open.
    _lock: File,
    /// Open collections by full name.
    collections: RwLock<HashMap<String, Arc<Collection>>>,
    /// Unindexed points that make [`EdgeStore::maintain`] build a collection's indexes.
    index_after_points: usize,
}

/// Turn an engine error into a store error, with what was being done.
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

    /// An open collection, or an error if it does not exist.
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

    /// Insert the points that do not exist yet (one conditional write: the engine checks and
    /// writes under its own lock), then read them all back.
    pub fn insert(&self, collection: &str, points: Vec<Point>) -> Result<Vec<Record>> {
        let c = self.get(collection)?;
        let ids: Vec<Uuid> = points.iter().map(|p| p.id).collect();
        let n = points.len();
        let points = points.into_iter().map(to_edge_point).collect::<Result<Vec<_>>>()?;
        c.write(UpdateOperation::PointOperation(PointOperations::UpsertPointsConditional(
            ConditionalInsertOperation {
                points_op: PointInsertOperations::PointsList(points),
                condition: Default::default(),
                update_mode: Some(UpdateMode::InsertOnly),
            },
        )))?;
        c.unindexed.fetch_add(n, Ordering::Relaxed);
        self.retrieve(collection, &ids, &[])
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
            .shard()?
            .retrieve(&ids, Some(WithPayloadInterface::Bool(true)), Some(with_vector))
            .map_err(edge_err("retrieve failed"))?;
        records.into_iter().map(|r| to_record(r.id, r.payload, r.vector)).collect()
    }

    /// Page through points in id order.
    pub fn scroll(
        &self,
        collection: &str,
        filter: Option<Filter>,
        offset: Option<Uuid>,
        limit: usize,
        with_vectors: Vec<String>,
    ) -> Result<Page> {
        let c = self.get(collection)?;
        let request = ScrollRequest {
            offset: offset.map(EdgePointId::Uuid),
            limit: Some(limit.max(1)),
            filter: filter.as_ref().map(to_edge_filter).transpose()?,
            with_payload: Some(WithPayloadInterface::Bool(true)),
            with_vector: if with_vectors.is_empty() {
                WithVector::Bool(false)
            } else {
                WithVector::Selector(with_vectors)
            },
            order_by: None,
        };
        let (records, next) = c.shard()?.scroll(request).map_err(edge_err("scroll failed"))?;
        let records = records.into_iter().map(|r| to_record(r.id, r.payload, r.vector)).collect::<Result<Vec<_>>>()?;
        Ok(Page { records, next: next.map(uuid_of).transpose()? })
    }

    /// Run one query.
    pub fn query(&self, collection: &str, query: Query, with_payload: bool) -> Result<Vec<Hit>> {
        let c = self.get(collection)?;
        let filter = query.filter.as_ref().map(to_edge_filter).transpose()?;
        let prefetches = query
            .prefetch
            .iter()
            .map(|p| {
                // The top-level filter holds inside every source too.
                let f = super::combine_filters(p.filter.as_ref(), query.filter.as_ref());
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
            with_payload: WithPayloadInterface::Bool(with_payload),
        };
        let points = c.shard()?.query(request).map_err(edge_err("query failed"))?;
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
        c.shard()?.count(request).map_err(edge_err("count failed"))
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
            let shard = c.shard()?;
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
    pub fn ensure_vector(&self, collection: &str, d: &DenseSpec) -> Result<()> {
        let c = self.get(collection)?;
        let config = c.shard()?.config().clone();
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

    /// What a collection holds, read from its engine configuration and payload indexes.
    pub fn collection_spec(&self, collection: &str) -> Result<CollectionSpec> {
        let c = self.get(collection)?;
        let shard = c.shard()?;
        let config = serde_json::to_value(&*shard.config()).map_err(|e| Error::Internal(format!("config: {e}")))?;
        let info = serde_json::to_value(shard.info().payload_schema)
            .map_err(|e| Error::Internal(format!("payload schema: {e}")))?;
        spec_from_json(collection, &config, &info)
    }

    /// Rewrite a collection from its live points (see the module doc).
    pub fn compact(&self, collection: &str) -> Result<()> {
        self.get(collection)?.compact()
    }

    /// Flush every collection.
    pub fn flush_all(&self) -> Result<()> {
        for c in self.collections.read().values() {
            let _w = c.writes.lock();
            c.shard()?.flush();
        }
        Ok(())
    }
}

/// The embedded store as a [`Backend`]: each operation runs on tokio's blocking pool.
pub(crate) struct EdgeBackend(Arc<EdgeStore>);

impl EdgeBackend {
    /// Open the store at `root`, creating it if needed (see [`EdgeStore::open`]).
    pub(crate) fn open(root: &Path, index_after_points: usize) -> Result<Self> {
        Ok(Self(Arc::new(EdgeStore::open(root, index_after_points)?)))
    }

    /// Run a blocking engine call on tokio's blocking pool.
    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&EdgeStore) -> Result<T> + Send + 'static,
    ) -> BoxFuture<'static, Result<T>> {
        let store = self.0.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || f(&store))
                .await
                .map_err(|e| Error::Internal(format!("store task failed: {e}")))?
        })
    }
}

impl Backend for EdgeBackend {
    fn describe(&self) -> String {
        format!("embedded qdrant-edge at {}", self.0.root().display())
    }

    fn health(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    fn ensure_collection(&self, spec: CollectionSpec) -> BoxFuture<'_, Result<()>> {
        self.run(move |e| e.ensure_collection(&spec))
    }

    fn upsert(&self, collection: String, points: Vec<Point>) -> BoxFuture<'_, Result<()>> {
        self.run(move |e| e.upsert(&collection, points))
    }

    fn insert(&self, collection: String, points: Vec<Point>) -> BoxFuture<'_, Result<Vec<Record>>> {
        self.run(move |e| e.insert(&collection, points))
    }

    fn set_payload(&self, collection: String, ids: Vec<Uuid>, payload: Payload) -> BoxFuture<'_, Result<()>> {
        self.run(move |e| e.set_payload(&collection, ids, payload))
    }

    fn update_vectors(
        &self,
        collection: String,
        updates: Vec<(Uuid, Vec<(String, Vector)>)>,
    ) -> BoxFuture<'_, Result<()>> {
        self.run(move |e| e.update_vectors(&collection, updates))
    }

    fn delete_by_filter(&self, collection: String, filter: Filter) -> BoxFuture<'_, Result<()>> {
        self.run(move |e| e.delete_by_filter(&collection, filter))
    }

    fn set_payloads(&self, collection: String, updates: Vec<(Uuid, Payload)>) -> BoxFuture<'_, Result<()>> {
        self.run(move |e| e.set_payloads(&collection, updates))
    }

    fn delete(&self, collection: String, ids: Vec<Uuid>) -> BoxFuture<'_, Result<()>> {
        self.run(move |e| e.delete(&collection, ids))
    }

    fn retrieve(
        &self,
        collection: String,
        ids: Vec<Uuid>,
        with_vectors: Vec<String>,
    ) -> BoxFuture<'_, Result<Vec<Record>>> {
        self.run(move |e| e.retrieve(&collection, &ids, &with_vectors))
    }

    fn scroll(
        &self,
        collection: String,
        filter: Option<Filter>,
        offset: Option<Uuid>,
        limit: usize,
        with_vectors: Vec<String>,
    ) -> BoxFuture<'_, Result<Page>> {
        self.run(move |e| e.scroll(&collection, filter, offset, limit, with_vectors))
    }

    fn list_collections(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        self.run(|e| Ok(e.collections.read().keys().cloned().collect()))
    }

    fn collection_spec(&self, collection: String) -> BoxFuture<'_, Result<CollectionSpec>> {
        self.run(move |e| e.collection_spec(&collection))
    }

    fn query(&self, collection: String, query: Query, with_payload: bool) -> BoxFuture<'_, Result<Vec<Hit>>> {
        self.run(move |e| e.query(&collection, query, with_payload))
    }

    fn count(&self, collection: String, filter: Option<Filter>) -> BoxFuture<'_, Result<usize>> {
        self.run(move |e| e.count(&collection, filter))
    }

    fn ensure_vector(&self, collection: String, vector: DenseSpec) -> BoxFuture<'_, Result<()>> {
        self.run(move |e| e.ensure_vector(&collection, &vector))
    }

    fn compact(&self, collection: String) -> BoxFuture<'_, Result<()>> {
        self.run(move |e| e.compact(&collection))
    }

    fn maintain(&self, force: bool) -> BoxFuture<'_, Result<bool>> {
        self.run(move |e| e.maintain(force))
    }

    fn flush(&self) -> BoxFuture<'_, Result<()>> {
        self.run(|e| e.flush_all())
    }
}
