//! The seam between [`Store`](super::Store) and an engine: one trait, one method per operation.
//!
//! [`Store`](super::Store) applies the collection prefix, skips empty writes and clones what it
//! must, then hands each operation to a [`Backend`] with the full collection name. Methods return
//! boxed futures so that an engine reached over the network (a Qdrant server over gRPC) can
//! implement the trait as directly as the embedded engine, which runs its blocking calls on
//! tokio's blocking pool.
//!
//! Not for: prefixing names, skipping empty input, or converting aisle's store types into an
//! engine's own; each backend converts in its own module, and [`Store`](super::Store) does the
//! rest once for all backends.

use futures::future::BoxFuture;
use uuid::Uuid;

use super::{CollectionSpec, DenseSpec, Filter, Hit, Page, Payload, Point, Query, Record, Vector};
use crate::error::Result;

/// An engine behind [`Store`](super::Store).
///
/// Every collection name is full (the configured prefix already applied). Every write is durable
/// when its future resolves: a process killed right after finds it on restart.
pub(crate) trait Backend: Send + Sync + 'static {
    /// A short description of the backend for logs and `/readyz`.
    fn describe(&self) -> String;

    /// Whether other processes may share the engine (a server), rather than this one alone.
    fn is_remote(&self) -> bool {
        false
    }

    /// Whether the engine answers now (an embedded engine always does).
    fn health(&self) -> BoxFuture<'_, Result<()>>;

    /// Create the collection `spec.name` if missing; add vectors and indexes the spec has and it
    /// lacks.
    fn ensure_collection(&self, spec: CollectionSpec) -> BoxFuture<'_, Result<()>>;

    /// Insert or replace points.
    fn upsert(&self, collection: String, points: Vec<Point>) -> BoxFuture<'_, Result<()>>;

    /// Insert the points whose ids do not exist yet, leaving existing points untouched, as one
    /// atomic check per point in the engine; then read every point of `points` back (payloads
    /// only, as stored now). Two writers inserting the same id concurrently: one wins, and both
    /// read the winner's payload.
    fn insert(&self, collection: String, points: Vec<Point>) -> BoxFuture<'_, Result<Vec<Record>>>;

    /// Merge `payload` keys into the points' payloads.
    fn set_payload(&self, collection: String, ids: Vec<Uuid>, payload: Payload) -> BoxFuture<'_, Result<()>>;

    /// Replace the named vectors of existing points, keeping their other vectors and payload.
    fn update_vectors(
        &self,
        collection: String,
        updates: Vec<(Uuid, Vec<(String, Vector)>)>,
    ) -> BoxFuture<'_, Result<()>>;

    /// Delete every point matching `filter`.
    fn delete_by_filter(&self, collection: String, filter: Filter) -> BoxFuture<'_, Result<()>>;

    /// Merge a different payload into each point, durable as one write.
    fn set_payloads(&self, collection: String, updates: Vec<(Uuid, Payload)>) -> BoxFuture<'_, Result<()>>;

    /// Delete points by id (missing ids are ignored).
    fn delete(&self, collection: String, ids: Vec<Uuid>) -> BoxFuture<'_, Result<()>>;

    /// Read points by id, in the order asked (missing ids are left out).
    fn retrieve(
        &self,
        collection: String,
        ids: Vec<Uuid>,
        with_vectors: Vec<String>,
    ) -> BoxFuture<'_, Result<Vec<Record>>>;

    /// Page through points in id order, starting at `offset`, with the named vectors.
    fn scroll(
        &self,
        collection: String,
        filter: Option<Filter>,
        offset: Option<Uuid>,
        limit: usize,
        with_vectors: Vec<String>,
    ) -> BoxFuture<'_, Result<Page>>;

    /// Every collection of this store in the engine (full names): on a server, those stamped as
    /// aisle's and made with this store's collection prefix.
    fn list_collections(&self) -> BoxFuture<'_, Result<Vec<String>>>;

    /// What a collection holds (its vectors, sparse vectors, payload indexes and whether it has
    /// graphs), read back from the engine; `name` is the full name.
    fn collection_spec(&self, collection: String) -> BoxFuture<'_, Result<CollectionSpec>>;

    /// Run a query (prefetches, fusion, filters) in one engine call; hits carry their payloads
    /// when `with_payload`.
    fn query(&self, collection: String, query: Query, with_payload: bool) -> BoxFuture<'_, Result<Vec<Hit>>>;

    /// Count points matching a filter (exactly).
    fn count(&self, collection: String, filter: Option<Filter>) -> BoxFuture<'_, Result<usize>>;

    /// Add a dense vector to an existing collection if missing.
    fn ensure_vector(&self, collection: String, vector: DenseSpec) -> BoxFuture<'_, Result<()>>;

    /// Rewrite a collection from its live points only, so that deleted and overwritten data no
    /// longer exists on disk.
    fn compact(&self, collection: String) -> BoxFuture<'_, Result<()>>;

    /// Build indexes where enough points are unindexed (or everywhere, if `force`); returns
    /// whether anything was done. A server builds its own; forced, it waits until it has.
    fn maintain(&self, force: bool) -> BoxFuture<'_, Result<bool>>;

    /// Flush everything to disk.
    fn flush(&self) -> BoxFuture<'_, Result<()>>;
}
