//! One collection of the embedded store: its shard, its write lock, and the operations that
//! touch the shard as a whole (durable writes, reopening to prune the WAL, compaction with a
//! crash-safe swap, reconciling with a [`CollectionSpec`]).
//!
//! A reopening or compaction that fails after closing the shard leaves the collection closed,
//! never half-open: reads and writes then answer [`Error::Unavailable`] (a 503 with
//! `Retry-After`) and try, at most once a second, to finish or undo the swap and open the shard
//! again ([`Collection::shard`]), so the collection recovers by itself once the cause is gone.
//!
//! Not for: point-level reads and writes in aisle's types (the store in `edge/mod.rs` converts
//! and calls [`Collection::write`]), nor for recovering an interrupted compaction on open
//! (`durability`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use qdrant_edge::{
    EdgeShard, FieldIndexOperations, PayloadFieldSchema, PayloadSchemaType, PointInsertOperations, PointOperations,
    ScrollRequest, UpdateOperation, VectorStructInternal, WithPayloadInterface, WithVector,
};
use serde_json::json;

use super::convert::distance_name;
use super::durability::{COMPACTION_DONE, dir_size, load_shard, recover_compaction_of, sync_dir, sync_file};
use super::edge_err;
use crate::error::{Error, Result};
use crate::store::{CollectionSpec, IndexKind};

/// One open collection: its shard, serialised writes, and a count of points written since its
/// indexes were last built.
pub(super) struct Collection {
    /// Full collection name.
    pub(super) name: String,
    /// The collection's directory.
    pub(super) path: PathBuf,
    /// `None` inside [`Collection::reopen`] and [`Collection::compact`], under the write lock,
    /// and after one of them failed, until [`Collection::shard`] recovers it.
    shard: RwLock<Option<EdgeShard>>,
    /// When recovery last failed.
    recovered_at: Mutex<Option<Instant>>,
    /// Fault injection for tests: this many shard loads fail.
    pub(super) failing_loads: AtomicUsize,
    /// Held by every write, flush, optimisation, reopening and compaction.
    pub(super) writes: Mutex<()>,
    /// Points written since the indexes were last built.
    pub(super) unindexed: AtomicUsize,
}

/// Read access to an open shard (only made when the shard is there).
pub(super) struct ShardRef<'a>(parking_lot::MappedRwLockReadGuard<'a, EdgeShard>);

impl std::ops::Deref for ShardRef<'_> {
    type Target = EdgeShard;
    fn deref(&self) -> &EdgeShard {
        &self.0
    }
}

/// How often a closed collection tries to open again.
const RECOVERY_INTERVAL: Duration = Duration::from_secs(1);

impl Collection {
    /// A collection over an open shard.
    pub(super) fn new(name: String, path: PathBuf, shard: EdgeShard) -> Self {
        Self {
            name,
            path,
            shard: RwLock::new(Some(shard)),
            writes: Mutex::new(()),
            unindexed: AtomicUsize::new(0),
            recovered_at: Mutex::new(None),
            failing_loads: AtomicUsize::new(0),
        }
    }

    /// Read access to the shard (waits while it is being reopened or compacted). A collection
    /// left closed by a failed reopening or compaction is opened again here (at most once per
    /// [`RECOVERY_INTERVAL`]); until that works, the answer is [`Error::Unavailable`].
    pub(super) fn shard(&self) -> Result<ShardRef<'_>> {
        if let Ok(open) = parking_lot::RwLockReadGuard::try_map(self.shard.read(), Option::as_ref) {
            return Ok(ShardRef(open));
        }
        self.recover()?;
        parking_lot::RwLockReadGuard::try_map(self.shard.read(), Option::as_ref)
            .map(ShardRef)
            .map_err(|_| self.unavailable())
    }

    fn unavailable(&self) -> Error {
        Error::Unavailable(format!(
            "collection '{}' is closed after a failed reopening or compaction; it reopens by itself, retry shortly",
            self.name
        ))
    }

    /// Open a closed collection again: finish or undo its interrupted swap, load the shard.
    /// Only the shard's lock is taken (a writer holding `writes` may be the one asking).
    fn recover(&self) -> Result<()> {
        let mut slot = self.shard.write();
        if slot.is_some() {
            return Ok(());
        }
        // Failed attempts are spaced by the interval; the first one comes at once.
        if self.recovered_at.lock().is_some_and(|t| t.elapsed() < RECOVERY_INTERVAL) {
            return Err(self.unavailable());
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let loaded = recover_compaction_of(dir, Some(&self.name)).and_then(|()| self.load());
        match loaded {
            Ok(shard) => {
                *slot = Some(shard);
                *self.recovered_at.lock() = None;
                tracing::info!(collection = %self.name, "reopened the collection after a failure");
                Ok(())
            }
            Err(e) => {
                *self.recovered_at.lock() = Some(Instant::now());
                tracing::error!(collection = %self.name, error = %e, "the collection is still closed");
                Err(self.unavailable())
            }
        }
    }

    /// Load the shard from the collection's directory (failing while a test asks it to).
    fn load(&self) -> Result<EdgeShard> {
        if self.failing_loads.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok() {
            return Err(Error::Store(format!("collection '{}': injected load failure", self.name)));
        }
        load_shard(&self.path)
    }

    /// Apply one update and make it durable before returning.
    pub(super) fn write(&self, op: UpdateOperation) -> Result<()> {
        self.write_all(vec![op])
    }

    /// Apply updates in order and make them durable (one flush) before returning.
    pub(super) fn write_all(&self, ops: Vec<UpdateOperation>) -> Result<()> {
        let _w = self.writes.lock();
        let shard = self.shard()?;
        for op in ops {
            shard.update(op).map_err(edge_err("write failed"))?;
        }
        shard.flush();
        Ok(())
    }

    /// Close the shard (flushing it), prune its WAL, and open it again. Readers and writers
    /// wait meanwhile.
    pub(super) fn reopen(&self) -> Result<()> {
        let _w = self.writes.lock();
        let mut slot = self.shard.write();
        let before = dir_size(&self.path.join("wal"));
        drop(slot.take()); // flushes and releases the WAL's directory lock
        match self.load() {
            Ok(shard) => {
                *slot = Some(shard);
                *self.recovered_at.lock() = None;
                tracing::info!(collection = %self.name, wal_bytes_before = before, wal_bytes_after = dir_size(&self.path.join("wal")), "pruned the WAL");
                Ok(())
            }
            Err(e) => {
                // Closed rather than half-open; `shard` reopens it later.
                tracing::error!(collection = %self.name, error = %e, "reopening a collection failed");
                Err(e)
            }
        }
    }

    /// Copy the live points into `<name>.compact`, mark it complete, and swap it in for the
    /// collection's directory (the old one is deleted). Readers and writers wait meanwhile.
    pub(super) fn compact(&self) -> Result<()> {
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
        *slot = Some(self.load()?);
        self.unindexed.store(0, Ordering::Relaxed);
        tracing::info!(collection = %self.name, points, secs = started.elapsed().as_secs_f32(), "compacted collection");
        Ok(())
    }

    /// Make the collection match `spec`: same dimensions, missing vectors and indexes added.
    pub(super) fn reconcile(&self, spec: &CollectionSpec) -> Result<()> {
        let config = self.shard()?.config().clone();
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
        let indexed = self.shard()?.info().payload_schema;
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
