//! Collections on a Qdrant server: the request that creates one with the cluster layout, the
//! steps that bring an existing one up to a [`CollectionSpec`] (or the reason it is refused),
//! and the vacuum that makes deleted data leave the server's disk.
//!
//! Not for: point reads and writes (`remote/mod.rs`).

use std::collections::HashMap;

use qdrant_client::Qdrant;
use qdrant_client::qdrant::{self as q, create_vector_name_request, vectors_config};

use super::Layout;
use super::convert::distance;
use crate::error::{Error, Result};
use crate::store::{CollectionSpec, DenseSpec, Distance, IndexKind, SparseSpec};

/// The metadata key that marks a collection as aisle's, and its value: the version of the
/// layout of aisle's collections. A collection without it (or with another version) was not
/// made by this aisle, and is refused rather than guessed at.
pub(super) const LAYOUT_KEY: &str = "aisle_store_layout";
/// See [`LAYOUT_KEY`].
pub(super) const LAYOUT_VERSION: i64 = 1;
/// The metadata key holding the `collection_prefix` of the aisle that made a collection, so
/// that a store with prefix `""` does not take `shop2_products` for one of its own.
pub(super) const PREFIX_KEY: &str = "aisle_collection_prefix";

/// Something to add to an existing collection.
pub(super) enum Step {
    /// A named vector it lacks.
    Vector(q::CreateVectorNameRequest),
    /// A payload index it lacks.
    Index(q::CreateFieldIndexCollection),
}

/// The request creating `spec` with the cluster layout (payload indexes come after, as steps).
pub(super) fn create_request(spec: &CollectionSpec, layout: &Layout, timeout_secs: u64) -> q::CreateCollection {
    let dense: HashMap<String, q::VectorParams> = spec
        .dense
        .iter()
        .map(|d| {
            let params = q::VectorParams {
                size: d.dim as u64,
                distance: distance(d.distance) as i32,
                on_disk: Some(layout.on_disk_vectors),
                ..Default::default()
            };
            (d.name.clone(), params)
        })
        .collect();
    let sparse: HashMap<String, q::SparseVectorParams> = spec
        .sparse
        .iter()
        .map(|s| {
            let modifier = if s.idf { q::Modifier::Idf } else { q::Modifier::None };
            (s.name.clone(), q::SparseVectorParams { index: None, modifier: Some(modifier as i32) })
        })
        .collect();
    q::CreateCollection {
        collection_name: spec.name.clone(),
        vectors_config: (!dense.is_empty()).then_some(q::VectorsConfig {
            config: Some(vectors_config::Config::ParamsMap(q::VectorParamsMap { map: dense })),
        }),
        sparse_vectors_config: (!sparse.is_empty()).then_some(q::SparseVectorConfig { map: sparse }),
        // Collections read only by id need no graph.
        hnsw_config: (!spec.hnsw).then(|| q::HnswConfigDiff { m: Some(0), ..Default::default() }),
        optimizers_config: Some(erasure_optimizers()),
        wal_config: Some(erasure_wal()),
        shard_number: Some(layout.shard_number),
        replication_factor: Some(layout.replication_factor),
        write_consistency_factor: Some(layout.write_consistency_factor),
        on_disk_payload: Some(layout.on_disk_payload),
        timeout: Some(timeout_secs),
        metadata: HashMap::from([
            (LAYOUT_KEY.to_string(), q::Value::from(serde_json::json!(LAYOUT_VERSION))),
            (PREFIX_KEY.to_string(), q::Value::from(serde_json::json!(layout.prefix))),
        ]),
        ..Default::default()
    }
}

/// Seconds between the server's flushes of a collection: a flush is what lets the server drop
/// write-ahead-log segments whose operations are all on disk in segments.
pub(super) const FLUSH_INTERVAL_SECS: u64 = 5;
/// Size of one write-ahead-log segment (MiB; the server's minimum).
pub(super) const WAL_SEGMENT_MB: u64 = 1;
/// Closed write-ahead-log segments the server keeps after truncating (its minimum).
pub(super) const WAL_RETAIN_CLOSED: u64 = 1;

/// Optimizer settings: frequent flushes, so that old write-ahead-log segments go soon.
fn erasure_optimizers() -> q::OptimizersConfigDiff {
    q::OptimizersConfigDiff { flush_interval_sec: Some(FLUSH_INTERVAL_SECS), ..Default::default() }
}

/// Write-ahead-log settings: small segments, so that few operations stay in the log.
fn erasure_wal() -> q::WalConfigDiff {
    q::WalConfigDiff {
        wal_capacity_mb: Some(WAL_SEGMENT_MB),
        wal_segments_ahead: Some(0),
        wal_retain_closed: Some(WAL_RETAIN_CLOSED),
    }
}

/// The server's dense vectors of a collection, by name.
fn dense_vectors(info: &q::CollectionInfo) -> HashMap<String, q::VectorParams> {
    let params = info.config.as_ref().and_then(|c| c.params.as_ref());
    match params.and_then(|p| p.vectors_config.as_ref()).and_then(|v| v.config.as_ref()) {
        Some(vectors_config::Config::ParamsMap(m)) => m.map.clone(),
        Some(vectors_config::Config::Params(p)) => HashMap::from([(String::new(), *p)]),
        None => HashMap::new(),
    }
}

/// Why an existing collection cannot be used, and what to do about it.
fn refuse(collection: &str, url: &str, why: String) -> Error {
    Error::Config(format!(
        "collection '{collection}' on the Qdrant server at {url} {why}: it was made by another version of aisle, \
         another embedding model or another program. Delete it (aisle creates it afresh; import the catalog \
         again), or set store.collection_prefix to use new collections beside it"
    ))
}

/// The request adding `d` to the collection, if it lacks it; an error if it has it with
/// another size or distance.
pub(super) fn missing_dense(
    collection: &str,
    info: &q::CollectionInfo,
    d: &DenseSpec,
    url: &str,
) -> Result<Option<q::CreateVectorNameRequest>> {
    match dense_vectors(info).get(&d.name) {
        Some(p) if p.size as usize != d.dim || p.distance != distance(d.distance) as i32 => Err(refuse(
            collection,
            url,
            format!(
                "stores '{}' vectors of dimension {} ({:?}), not {} ({:?})",
                d.name,
                p.size,
                q::Distance::try_from(p.distance).unwrap_or(q::Distance::UnknownDistance),
                d.dim,
                d.distance
            ),
        )),
        Some(_) => Ok(None),
        None => Ok(Some(q::CreateVectorNameRequest {
            collection_name: collection.to_string(),
            wait: Some(true),
            vector_name: d.name.clone(),
            vector_config: Some(create_vector_name_request::VectorConfig::DenseConfig(q::DenseVectorCreationConfig {
                size: d.dim as u64,
                distance: distance(d.distance) as i32,
                ..Default::default()
            })),
            ..Default::default()
        })),
    }
}

/// The server's payload schema type of an index kind.
fn schema_type(kind: IndexKind) -> q::PayloadSchemaType {
    match kind {
        IndexKind::Keyword => q::PayloadSchemaType::Keyword,
        IndexKind::Float => q::PayloadSchemaType::Float,
        IndexKind::Integer => q::PayloadSchemaType::Integer,
        IndexKind::Bool => q::PayloadSchemaType::Bool,
    }
}

/// The field type that creates an index of a kind.
fn field_type(kind: IndexKind) -> q::FieldType {
    match kind {
        IndexKind::Keyword => q::FieldType::Keyword,
        IndexKind::Float => q::FieldType::Float,
        IndexKind::Integer => q::FieldType::Integer,
        IndexKind::Bool => q::FieldType::Bool,
    }
}

/// Whether collection `name` belongs to the aisle store with collection prefix `prefix`: it
/// carries aisle's layout stamp (any version), its name starts with the prefix, and it was made
/// with that prefix (collections made before the prefix was stamped: by name alone).
pub(super) fn belongs_to(name: &str, info: &q::CollectionInfo, prefix: &str) -> bool {
    let Some(config) = info.config.as_ref() else { return false };
    let made_with = config.metadata.get(PREFIX_KEY).cloned().map(serde_json::Value::from);
    config.metadata.contains_key(LAYOUT_KEY)
        && name.starts_with(prefix)
        && made_with.is_none_or(|p| p.as_str() == Some(prefix))
}

/// What a collection on the server holds, in aisle's terms.
pub(super) fn spec_of(name: &str, info: &q::CollectionInfo) -> CollectionSpec {
    let config = info.config.as_ref();
    let mut dense: Vec<DenseSpec> = dense_vectors(info)
        .into_iter()
        .map(|(vector, p)| DenseSpec {
            name: vector,
            dim: p.size as usize,
            distance: match q::Distance::try_from(p.distance) {
                Ok(q::Distance::Dot) => Distance::Dot,
                Ok(q::Distance::Euclid) => Distance::Euclid,
                _ => Distance::Cosine,
            },
        })
        .collect();
    dense.sort_by(|a, b| a.name.cmp(&b.name));
    let mut sparse: Vec<SparseSpec> = config
        .and_then(|c| c.params.as_ref())
        .and_then(|p| p.sparse_vectors_config.as_ref())
        .map(|s| s.map.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|(vector, p)| SparseSpec { name: vector, idf: p.modifier == Some(q::Modifier::Idf as i32) })
        .collect();
    sparse.sort_by(|a, b| a.name.cmp(&b.name));
    let mut indexes: Vec<(String, IndexKind)> = info
        .payload_schema
        .iter()
        .filter_map(|(field, i)| {
            let kind = match q::PayloadSchemaType::try_from(i.data_type).ok()? {
                q::PayloadSchemaType::Keyword => IndexKind::Keyword,
                q::PayloadSchemaType::Float => IndexKind::Float,
                q::PayloadSchemaType::Integer => IndexKind::Integer,
                q::PayloadSchemaType::Bool => IndexKind::Bool,
                _ => return None,
            };
            Some((field.clone(), kind))
        })
        .collect();
    indexes.sort_by(|a, b| a.0.cmp(&b.0));
    let hnsw = config.and_then(|c| c.hnsw_config.as_ref()).and_then(|h| h.m) != Some(0);
    CollectionSpec { name: name.to_string(), dense, sparse, indexes, hnsw }
}

/// What an existing collection lacks of `spec`, or why it cannot be used.
pub(super) fn reconcile(spec: &CollectionSpec, info: &q::CollectionInfo, url: &str) -> Result<Vec<Step>> {
    let name = &spec.name;
    let config = info.config.as_ref();
    let stamp = config.and_then(|c| c.metadata.get(LAYOUT_KEY)).cloned().map(serde_json::Value::from);
    match stamp {
        Some(v) if v.as_i64() == Some(LAYOUT_VERSION) => {}
        Some(v) => return Err(refuse(name, url, format!("has aisle store layout {v}, not {LAYOUT_VERSION}"))),
        None => return Err(refuse(name, url, "has no aisle store layout in its metadata".to_string())),
    }
    let mut steps = Vec::new();
    for d in &spec.dense {
        if let Some(request) = missing_dense(name, info, d, url)? {
            steps.push(Step::Vector(request));
        }
    }
    let sparse = config
        .and_then(|c| c.params.as_ref())
        .and_then(|p| p.sparse_vectors_config.as_ref())
        .map(|s| s.map.clone())
        .unwrap_or_default();
    for s in &spec.sparse {
        let modifier = if s.idf { q::Modifier::Idf } else { q::Modifier::None } as i32;
        match sparse.get(&s.name) {
            Some(p) if p.modifier.unwrap_or(0) != modifier => {
                let what = if s.idf { "without" } else { "with" };
                return Err(refuse(name, url, format!("stores '{}' sparse vectors {what} the IDF modifier", s.name)));
            }
            Some(_) => {}
            None => steps.push(Step::Vector(q::CreateVectorNameRequest {
                collection_name: name.clone(),
                wait: Some(true),
                vector_name: s.name.clone(),
                vector_config: Some(create_vector_name_request::VectorConfig::SparseConfig(
                    q::SparseVectorCreationConfig { modifier: Some(modifier), datatype: None },
                )),
                ..Default::default()
            })),
        }
    }
    for (field, kind) in &spec.indexes {
        match info.payload_schema.get(field) {
            Some(existing) if existing.data_type != schema_type(*kind) as i32 => {
                let has =
                    q::PayloadSchemaType::try_from(existing.data_type).unwrap_or(q::PayloadSchemaType::UnknownType);
                return Err(refuse(name, url, format!("indexes '{field}' as {has:?}, not {kind:?}")));
            }
            Some(_) => {}
            None => steps.push(Step::Index(q::CreateFieldIndexCollection {
                collection_name: name.clone(),
                wait: Some(true),
                field_name: field.clone(),
                field_type: Some(field_type(*kind) as i32),
                ..Default::default()
            })),
        }
    }
    Ok(steps)
}

/// Make deleted and overwritten data leave the server's disk (see the module doc of
/// `remote`): rebuild every segment from its live points, and push the operations that wrote
/// the data out of the write-ahead log. Returns once both are requested; the server finishes
/// within [`FLUSH_INTERVAL_SECS`] twice plus the time to rebuild the collection's segments.
pub(super) async fn vacuum(
    client: &Qdrant,
    collection: &str,
    timeout_secs: u64,
) -> Result<(), qdrant_client::QdrantError> {
    let info = client.collection_info(collection).await?.result.unwrap_or_default();
    let params = info.config.and_then(|c| c.params).unwrap_or_default();
    // Changing how payloads are stored makes the server's config-mismatch optimizer rebuild
    // every segment from its live points (deleted points and old payload versions are left
    // behind). Payloads are in the same on-disk store either way; the flag only says whether
    // the server also caches them in memory, so each vacuum flips it.
    let request = q::UpdateCollection {
        collection_name: collection.to_string(),
        params: Some(q::CollectionParamsDiff { on_disk_payload: Some(!params.on_disk_payload), ..Default::default() }),
        timeout: Some(timeout_secs),
        ..Default::default()
    };
    client.update_collection(request).await?;
    // The write-ahead log keeps the erasing operations' own data (a delete by filter names the
    // customer) until its segment is closed and flushed away. Write filler until every shard's
    // log has rotated past them: updates of points that do not exist change nothing but are
    // logged, and several ids reach every shard.
    let per_shard = (WAL_RETAIN_CLOSED + 2) * WAL_SEGMENT_MB * 1024 * 1024;
    let chunk = 256 * 1024;
    let shards = u64::from(params.shard_number.max(1));
    // Ids land on shards by hash: write twice what an even spread would need.
    let writes = (per_shard * shards * 2).div_ceil(chunk);
    let filler = "0".repeat(chunk as usize);
    for i in 0..writes {
        let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, format!("urn:aisle:wal-filler:{i}").as_bytes());
        let request = q::UpsertPoints {
            collection_name: collection.to_string(),
            wait: Some(true),
            points: vec![q::PointStruct {
                id: Some(super::convert::point_id(id)),
                payload: HashMap::from([("aisle_wal_filler".to_string(), q::Value::from(filler.clone()))]),
                vectors: Some(q::Vectors::from(q::NamedVectors { vectors: HashMap::new() })),
            }],
            update_mode: Some(q::UpdateMode::UpdateOnly as i32),
            timeout: Some(timeout_secs),
            ..Default::default()
        };
        client.upsert_points(request).await?;
    }
    Ok(())
}
