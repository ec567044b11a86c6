//! The remote backend: a Qdrant server (one node or a cluster) over gRPC, with the official
//! `qdrant-client` crate.
//!
//! Every write waits until the server has applied it (`wait = true`) on as many replicas as
//! `write_consistency_factor` asks, with medium write ordering (writes to a shard go through
//! one elected replica, so replicas apply them in the same order). Collections are created
//! with the `[store]` cluster layout (shards, replication, write consistency, on-disk payloads
//! and vectors) and stamped with aisle's layout version in their metadata; a collection that
//! lacks the stamp, or stores vectors of another size or distance, is refused at start with
//! what to do about it.
//!
//! Failures the client can wait out (the server unreachable, restarting, overloaded or too
//! slow for `timeout_secs`) become [`Error::Unavailable`], which the API answers with 503 and
//! `Retry-After`; the gRPC channel reconnects by itself on the next request.
//!
//! Layout: this file holds [`RemoteBackend`] and the [`Backend`] implementation; `convert`
//! translates aisle's store types to and from the server's messages.
//!
//! Not for: prefixing collection names or skipping empty writes ([`Store`](super::Store) does
//! that for every backend), nor for the embedded engine.

mod convert;
mod schema;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::future::BoxFuture;
use qdrant_client::qdrant::{
    self as q, PointsSelector, WithPayloadSelector, WithVectorsSelector, points_update_operation, with_vectors_selector,
};
use qdrant_client::{Qdrant, QdrantError};
use uuid::Uuid;

use self::convert::{filter, point, point_id, record, scoring, uuid_of, vector_query, vectors};
use super::backend::Backend;
use super::{CollectionSpec, DenseSpec, Filter, Hit, Page, Payload, Point, Query, Ranking, Record, Vector};
use crate::config::StoreConfig;
use crate::error::{Error, Result};

/// Points (or payload updates) per write request: well under gRPC's message size limit with
/// 384-dimensional vectors and product payloads.
const WRITE_CHUNK: usize = 256;

/// How collections are laid out on the server (from `[store]`).
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// Shards per collection.
    pub shard_number: u32,
    /// Copies of each shard.
    pub replication_factor: u32,
    /// Replicas that must acknowledge a write.
    pub write_consistency_factor: u32,
    /// Payloads on disk.
    pub on_disk_payload: bool,
    /// Dense vectors on disk.
    pub on_disk_vectors: bool,
    /// The store's collection prefix (stamped on the collections it creates).
    pub prefix: String,
}

/// A Qdrant server as the store's engine.
pub(crate) struct RemoteBackend {
    /// The gRPC client (a pool of channels that reconnect on demand).
    client: Qdrant,
    /// The server's URL, for messages.
    url: String,
    /// How new collections are laid out.
    layout: Layout,
    /// Seconds the server may take for one operation.
    timeout_secs: u64,
}

impl RemoteBackend {
    /// A client of the server `config.qdrant_url`. Connects lazily: an unreachable server
    /// shows on the first operation, as [`Error::Unavailable`].
    pub(crate) fn open(config: &StoreConfig) -> Result<Self> {
        let mut builder = Qdrant::from_url(&config.qdrant_url)
            .timeout(Duration::from_secs(config.timeout_secs))
            .connect_timeout(Duration::from_secs(config.connect_timeout_secs))
            .skip_compatibility_check();
        if !config.qdrant_api_key.is_empty() {
            builder = builder.api_key(config.qdrant_api_key.clone());
        }
        let client = builder
            .build()
            .map_err(|e| Error::Config(format!("store.qdrant_url {:?} cannot be used: {e}", config.qdrant_url)))?;
        Ok(Self {
            client,
            url: config.qdrant_url.clone(),
            layout: Layout {
                shard_number: config.shard_number,
                replication_factor: config.replication_factor,
                write_consistency_factor: config.write_consistency_factor,
                on_disk_payload: config.on_disk_payload,
                on_disk_vectors: config.on_disk_vectors,
                prefix: config.collection_prefix.clone(),
            },
            timeout_secs: config.timeout_secs,
        })
    }

    /// Turn a client error into a store error: what can be waited out is [`Error::Unavailable`].
    fn fail<'a>(&'a self, doing: &'a str) -> impl FnOnce(QdrantError) -> Error + 'a {
        move |e| classify(&self.url, doing, e)
    }

    /// Medium write ordering: one elected replica orders the writes to a shard.
    fn ordering() -> Option<q::WriteOrdering> {
        Some(q::WriteOrdering { r#type: q::WriteOrderingType::Medium as i32 })
    }

    /// Write points in chunks of [`WRITE_CHUNK`], each waited for, in `mode`.
    async fn upsert_chunks(&self, collection: &str, points: Vec<q::PointStruct>, mode: q::UpdateMode) -> Result<()> {
        for points in chunks(points) {
            let request = q::UpsertPoints {
                collection_name: collection.to_string(),
                wait: Some(true),
                points,
                ordering: Self::ordering(),
                timeout: Some(self.timeout_secs),
                update_mode: Some(mode as i32),
                ..Default::default()
            };
            self.client.upsert_points(request).await.map_err(self.fail("writing points"))?;
        }
        Ok(())
    }

    /// Read points by id in the order asked, each once; from as many replicas as `consistency`
    /// asks (the server's default, one, when `None`).
    async fn get(
        &self,
        collection: String,
        ids: Vec<Uuid>,
        with_vectors_named: Vec<String>,
        consistency: Option<q::ReadConsistencyType>,
    ) -> Result<Vec<Record>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let request = q::GetPoints {
            collection_name: collection,
            ids: ids.iter().copied().map(point_id).collect(),
            with_payload: Some(WithPayloadSelector::from(true)),
            with_vectors: Some(with_vectors(with_vectors_named)),
            timeout: Some(self.timeout_secs),
            read_consistency: consistency
                .map(|c| q::ReadConsistency { value: Some(q::read_consistency::Value::Type(c as i32)) }),
            ..Default::default()
        };
        let response = self.client.get_points(request).await.map_err(self.fail("reading points"))?;
        let mut found: HashMap<Uuid, Record> = HashMap::with_capacity(response.result.len());
        for p in response.result {
            let r = record(p.id, p.payload, p.vectors)?;
            found.insert(r.id, r);
        }
        let mut seen = HashSet::with_capacity(ids.len());
        Ok(ids.into_iter().filter(|id| seen.insert(*id)).filter_map(|id| found.remove(&id)).collect())
    }

    /// The collection's description on the server.
    async fn info(&self, collection: &str) -> Result<q::CollectionInfo> {
        self.client
            .collection_info(collection)
            .await
            .map_err(self.fail("reading a collection's description"))?
            .result
            .ok_or_else(|| Error::Store(format!("the server described collection '{collection}' as nothing")))
    }

    /// Run a batch of payload or point operations as one request, waiting for them.
    async fn batch(&self, collection: &str, operations: Vec<q::PointsUpdateOperation>, doing: &str) -> Result<()> {
        let request = q::UpdateBatchPoints {
            collection_name: collection.to_string(),
            wait: Some(true),
            operations,
            ordering: Self::ordering(),
            timeout: Some(self.timeout_secs),
        };
        self.client.update_points_batch(request).await.map_err(self.fail(doing))?;
        Ok(())
    }
}

/// Classify a client error by what the caller can do about it.
fn classify(url: &str, doing: &str, e: QdrantError) -> Error {
    use tonic::Code;
    match e {
        QdrantError::ResponseError { status } => {
            let message = status.message();
            match status.code() {
                Code::Unavailable
                | Code::DeadlineExceeded
                | Code::Cancelled
                | Code::Aborted
                | Code::ResourceExhausted => Error::Unavailable(format!(
                    "the Qdrant server at {url} did not answer while {doing} ({:?}: {message}); retry shortly",
                    status.code()
                )),
                // The client reports a refused connection as an internal error.
                Code::Internal if message.starts_with("Failed to connect") => Error::Unavailable(format!(
                    "the Qdrant server at {url} cannot be reached while {doing}: {message}; retry shortly"
                )),
                // The server's own failures (in a cluster: a peer gone, a replica not active,
                // consensus not reached) pass when the server or cluster recovers.
                Code::Internal | Code::Unknown => Error::Unavailable(format!(
                    "the Qdrant server at {url} failed while {doing}: {message}; retry shortly"
                )),
                code => Error::Store(format!("{doing} failed on the Qdrant server at {url} ({code:?}): {message}")),
            }
        }
        QdrantError::ResourceExhaustedError { retry_after_seconds, .. } => Error::Unavailable(format!(
            "the Qdrant server at {url} is overloaded while {doing}; retry after {retry_after_seconds} s"
        )),
        other => Error::Store(format!("{doing} failed on the Qdrant server at {url}: {other}")),
    }
}

/// Select these vectors (none: no vectors).
fn with_vectors(names: Vec<String>) -> WithVectorsSelector {
    if names.is_empty() {
        WithVectorsSelector::from(false)
    } else {
        WithVectorsSelector {
            selector_options: Some(with_vectors_selector::SelectorOptions::Include(q::VectorsSelector { names })),
        }
    }
}

/// `items` in runs of at most [`WRITE_CHUNK`], in order.
fn chunks<T>(mut items: Vec<T>) -> impl Iterator<Item = Vec<T>> {
    std::iter::from_fn(move || {
        if items.is_empty() {
            return None;
        }
        let rest = items.split_off(items.len().min(WRITE_CHUNK));
        Some(std::mem::replace(&mut items, rest))
    })
}

/// Select these points.
fn ids_selector(ids: &[Uuid]) -> PointsSelector {
    PointsSelector::from(ids.iter().copied().map(point_id).collect::<Vec<_>>())
}

impl Backend for RemoteBackend {
    fn is_remote(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        format!("Qdrant server at {}", self.url)
    }

    fn health(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            self.client.health_check().await.map_err(self.fail("answering a health check"))?;
            Ok(())
        })
    }

    fn ensure_collection(&self, spec: CollectionSpec) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let exists =
                self.client.collection_exists(&spec.name).await.map_err(self.fail("checking a collection exists"))?;
            if !exists {
                let request = schema::create_request(&spec, &self.layout, self.timeout_secs);
                if let Err(e) = self.client.create_collection(request).await {
                    // Another replica may have created it meanwhile: that is fine.
                    let raced = matches!(&e, QdrantError::ResponseError { status } if status.message().contains("already exists"));
                    if !raced {
                        return Err(classify(&self.url, "creating a collection", e));
                    }
                }
                tracing::info!(collection = %spec.name, layout = ?self.layout, "created collection on the Qdrant server");
            }
            let info = self.info(&spec.name).await?;
            for step in schema::reconcile(&spec, &info, &self.url)? {
                match step {
                    schema::Step::Vector(request) => {
                        self.client.create_vector_name(request).await.map_err(self.fail("adding a vector"))?;
                    }
                    schema::Step::Index(request) => {
                        self.client.create_field_index(request).await.map_err(self.fail("creating a payload index"))?;
                    }
                }
            }
            Ok(())
        })
    }

    fn upsert(&self, collection: String, points: Vec<Point>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let points = points.into_iter().map(point).collect::<Result<Vec<_>>>()?;
            self.upsert_chunks(&collection, points, q::UpdateMode::Upsert).await
        })
    }

    fn insert(&self, collection: String, points: Vec<Point>) -> BoxFuture<'_, Result<Vec<Record>>> {
        Box::pin(async move {
            let ids: Vec<Uuid> = points.iter().map(|p| p.id).collect();
            let points = points.into_iter().map(point).collect::<Result<Vec<_>>>()?;
            self.upsert_chunks(&collection, points, q::UpdateMode::InsertOnly).await?;
            // Read back from a majority of replicas: the winner of a concurrent insert is what
            // every reader sees.
            self.get(collection, ids, vec![], Some(q::ReadConsistencyType::Majority)).await
        })
    }

    fn set_payload(&self, collection: String, ids: Vec<Uuid>, payload: Payload) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            if ids.is_empty() {
                return Ok(());
            }
            let request = q::SetPayloadPoints {
                collection_name: collection,
                wait: Some(true),
                payload: convert::payload(payload),
                points_selector: Some(ids_selector(&ids)),
                ordering: Self::ordering(),
                timeout: Some(self.timeout_secs),
                ..Default::default()
            };
            self.client.set_payload(request).await.map_err(self.fail("writing payloads"))?;
            Ok(())
        })
    }

    fn update_vectors(
        &self,
        collection: String,
        updates: Vec<(Uuid, Vec<(String, Vector)>)>,
    ) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let points = updates
                .into_iter()
                .map(|(id, named)| Ok(q::PointVectors { id: Some(point_id(id)), vectors: Some(vectors(named)?) }))
                .collect::<Result<Vec<_>>>()?;
            for points in chunks(points) {
                let request = q::UpdatePointVectors {
                    collection_name: collection.clone(),
                    wait: Some(true),
                    points,
                    ordering: Self::ordering(),
                    timeout: Some(self.timeout_secs),
                    ..Default::default()
                };
                self.client.update_vectors(request).await.map_err(self.fail("writing vectors"))?;
            }
            Ok(())
        })
    }

    fn delete_by_filter(&self, collection: String, f: Filter) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let request = q::DeletePoints {
                collection_name: collection,
                wait: Some(true),
                points: Some(PointsSelector::from(filter(&f))),
                ordering: Self::ordering(),
                timeout: Some(self.timeout_secs),
                ..Default::default()
            };
            self.client.delete_points(request).await.map_err(self.fail("deleting points"))?;
            Ok(())
        })
    }

    fn set_payloads(&self, collection: String, updates: Vec<(Uuid, Payload)>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let operations: Vec<q::PointsUpdateOperation> = updates
                .into_iter()
                .map(|(id, p)| q::PointsUpdateOperation {
                    operation: Some(points_update_operation::Operation::SetPayload(
                        points_update_operation::SetPayload {
                            payload: convert::payload(p),
                            points_selector: Some(ids_selector(&[id])),
                            shard_key_selector: None,
                            key: None,
                        },
                    )),
                })
                .collect();
            for operations in chunks(operations) {
                self.batch(&collection, operations, "writing payloads").await?;
            }
            Ok(())
        })
    }

    fn delete(&self, collection: String, ids: Vec<Uuid>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            if ids.is_empty() {
                return Ok(());
            }
            let request = q::DeletePoints {
                collection_name: collection,
                wait: Some(true),
                points: Some(ids_selector(&ids)),
                ordering: Self::ordering(),
                timeout: Some(self.timeout_secs),
                ..Default::default()
            };
            self.client.delete_points(request).await.map_err(self.fail("deleting points"))?;
            Ok(())
        })
    }

    fn retrieve(
        &self,
        collection: String,
        ids: Vec<Uuid>,
        with_vectors_named: Vec<String>,
    ) -> BoxFuture<'_, Result<Vec<Record>>> {
        Box::pin(self.get(collection, ids, with_vectors_named, None))
    }

    fn scroll(
        &self,
        collection: String,
        f: Option<Filter>,
        offset: Option<Uuid>,
        limit: usize,
        with_vectors_named: Vec<String>,
    ) -> BoxFuture<'_, Result<Page>> {
        Box::pin(async move {
            let request = q::ScrollPoints {
                collection_name: collection,
                filter: f.as_ref().map(filter),
                offset: offset.map(point_id),
                limit: Some(limit.clamp(1, u32::MAX as usize) as u32),
                with_payload: Some(WithPayloadSelector::from(true)),
                with_vectors: Some(with_vectors(with_vectors_named)),
                timeout: Some(self.timeout_secs),
                ..Default::default()
            };
            let response = self.client.scroll(request).await.map_err(self.fail("paging through points"))?;
            let records =
                response.result.into_iter().map(|p| record(p.id, p.payload, p.vectors)).collect::<Result<Vec<_>>>()?;
            let next = response.next_page_offset.map(|id| uuid_of(Some(id))).transpose()?;
            Ok(Page { records, next })
        })
    }

    fn list_collections(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(async move {
            let all = self.client.list_collections().await.map_err(self.fail("listing collections"))?;
            let mut ours = Vec::new();
            for c in all.collections {
                // Only this store's (not another program's, nor another prefix's).
                if c.name.starts_with(&self.layout.prefix)
                    && schema::belongs_to(&c.name, &self.info(&c.name).await?, &self.layout.prefix)
                {
                    ours.push(c.name);
                }
            }
            Ok(ours)
        })
    }

    fn collection_spec(&self, collection: String) -> BoxFuture<'_, Result<CollectionSpec>> {
        Box::pin(async move { Ok(schema::spec_of(&collection, &self.info(&collection).await?)) })
    }

    fn query(&self, collection: String, query: Query, with_payload: bool) -> BoxFuture<'_, Result<Vec<Hit>>> {
        Box::pin(async move {
            let prefetch = query
                .prefetch
                .iter()
                .map(|p| {
                    // The top-level filter holds inside every source too.
                    let f = super::combine_filters(p.filter.as_ref(), query.filter.as_ref());
                    let (q, using) = scoring(&p.source);
                    q::PrefetchQuery {
                        query: Some(q),
                        using,
                        filter: f.as_ref().map(filter),
                        limit: Some(p.limit.max(1) as u64),
                        ..Default::default()
                    }
                })
                .collect::<Vec<_>>();
            let (top, using) = match &query.ranking {
                Ranking::Vector(v) => {
                    let (q, using) = vector_query(v);
                    (q, Some(using))
                }
                Ranking::Rrf { k, weights } => {
                    if prefetch.is_empty() {
                        return Err(Error::Internal("RRF fusion needs at least one prefetch".into()));
                    }
                    let rrf = q::Rrf { k: Some((*k).max(1) as u32), weights: weights.clone().unwrap_or_default() };
                    (q::Query { variant: Some(q::query::Variant::Rrf(rrf)) }, None)
                }
            };
            let request = q::QueryPoints {
                collection_name: collection,
                prefetch,
                query: Some(top),
                using,
                filter: query.filter.as_ref().map(filter),
                limit: Some(query.limit as u64),
                offset: Some(query.offset as u64),
                with_vectors: Some(with_vectors(query.with_vectors.clone())),
                with_payload: Some(WithPayloadSelector::from(with_payload)),
                timeout: Some(self.timeout_secs),
                ..Default::default()
            };
            let response = self.client.query(request).await.map_err(self.fail("querying"))?;
            response
                .result
                .into_iter()
                .map(|p| {
                    let score = p.score;
                    let r = record(p.id, p.payload, p.vectors)?;
                    Ok(Hit { id: r.id, score, payload: r.payload, vectors: r.vectors })
                })
                .collect()
        })
    }

    fn count(&self, collection: String, f: Option<Filter>) -> BoxFuture<'_, Result<usize>> {
        Box::pin(async move {
            let request = q::CountPoints {
                collection_name: collection,
                filter: f.as_ref().map(filter),
                exact: Some(true),
                timeout: Some(self.timeout_secs),
                ..Default::default()
            };
            let response = self.client.count(request).await.map_err(self.fail("counting points"))?;
            Ok(response.result.map(|r| r.count as usize).unwrap_or(0))
        })
    }

    fn ensure_vector(&self, collection: String, vector: DenseSpec) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let info = self.info(&collection).await?;
            if let Some(request) = schema::missing_dense(&collection, &info, &vector, &self.url)? {
                self.client.create_vector_name(request).await.map_err(self.fail("adding a vector"))?;
            }
            Ok(())
        })
    }

    fn compact(&self, collection: String) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            schema::vacuum(&self.client, &collection, self.timeout_secs)
                .await
                .map_err(self.fail("vacuuming a collection"))
        })
    }

    fn maintain(&self, force: bool) -> BoxFuture<'_, Result<bool>> {
        // The server's own optimizers build indexes and merge segments. Forced (after a bulk
        // import or copy), wait until they are done: every collection green.
        Box::pin(async move {
            if !force {
                return Ok(false);
            }
            let started = std::time::Instant::now();
            // This store's collections only (see `list_collections`).
            for name in self.list_collections().await? {
                loop {
                    let info = self.info(&name).await?;
                    if info.status == q::CollectionStatus::Green as i32 {
                        break;
                    }
                    if started.elapsed() > Duration::from_secs(30 * 60) {
                        return Err(Error::Unavailable(format!(
                            "the Qdrant server at {} is still optimizing '{name}' after 30 minutes",
                            self.url
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
            Ok(true)
        })
    }

    fn flush(&self) -> BoxFuture<'_, Result<()>> {
        // Every acknowledged write is in the server's write-ahead log already.
        Box::pin(async { Ok(()) })
    }
}
