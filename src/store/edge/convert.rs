//! Translation between aisle's store types ([`Point`], [`Vector`], [`Filter`], [`Query`] parts,
//! [`CollectionSpec`]) and qdrant-edge's, in both directions.
//!
//! Not for: calling the engine, locking, or durability; every function here is pure.
//!
//! [`Query`]: crate::store::Query

use std::collections::HashMap;

use qdrant_edge::{
    EdgeConfig, NamedQuery, PointId as EdgePointId, PointStruct, QueryEnum, RecommendQuery, ScoringQuery, SparseVector,
    UpdateOperation, VectorInternal, VectorStructInternal, Vectors,
};
use serde_json::{Value, json};
use uuid::Uuid;

use super::durability::wal_options;
use crate::error::{Error, Result};
use crate::store::{
    CollectionSpec, Condition, DenseSpec, Distance, Filter, IndexKind, Payload, Point, Record, Source, SparseSpec,
    Vector, VectorQuery,
};

/// Qdrant's name of a distance.
pub(super) fn distance_name(d: Distance) -> &'static str {
    match d {
        Distance::Cosine => "Cosine",
        Distance::Dot => "Dot",
        Distance::Euclid => "Euclid",
    }
}

/// The engine configuration of a new collection.
pub(super) fn edge_config(spec: &CollectionSpec) -> Result<EdgeConfig> {
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

/// A collection's spec from the engine's configuration and payload schema (their JSON forms).
pub(super) fn spec_from_json(name: &str, config: &Value, schema: &Value) -> Result<CollectionSpec> {
    let bad = |what: &str| Error::Store(format!("collection '{name}' has an unreadable {what}"));
    let mut dense = Vec::new();
    for (vector, params) in config["vectors"].as_object().into_iter().flatten() {
        let dim = params["size"].as_u64().ok_or_else(|| bad("vector size"))? as usize;
        let distance = match params["distance"].as_str() {
            Some("Cosine") => Distance::Cosine,
            Some("Dot") => Distance::Dot,
            Some("Euclid") => Distance::Euclid,
            _ => return Err(bad("vector distance")),
        };
        dense.push(DenseSpec { name: vector.clone(), dim, distance });
    }
    dense.sort_by(|a, b| a.name.cmp(&b.name));
    let mut sparse: Vec<SparseSpec> = config["sparse_vectors"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(vector, params)| SparseSpec { name: vector.clone(), idf: params["modifier"] == "idf" })
        .collect();
    sparse.sort_by(|a, b| a.name.cmp(&b.name));
    let mut indexes = Vec::new();
    for (field, info) in schema.as_object().into_iter().flatten() {
        let kind = match info["data_type"].as_str() {
            Some("keyword") => IndexKind::Keyword,
            Some("float") => IndexKind::Float,
            Some("integer") => IndexKind::Integer,
            Some("bool") => IndexKind::Bool,
            _ => return Err(bad("payload index")),
        };
        indexes.push((field.clone(), kind));
    }
    indexes.sort_by(|a, b| a.0.cmp(&b.0));
    let hnsw = config["hnsw_config"]["m"].as_u64() != Some(0);
    Ok(CollectionSpec { name: name.to_string(), dense, sparse, indexes, hnsw })
}

/// An operation merging `payload` into the points `ids`.
pub(super) fn set_payload_op(ids: &[Uuid], payload: Payload) -> Result<UpdateOperation> {
    let op: qdrant_edge::SetPayloadOp = serde_json::from_value(json!({
        "payload": Value::Object(payload),
        "points": ids.iter().map(|id| id.to_string()).collect::<Vec<_>>(),
    }))
    .map_err(|e| Error::Internal(format!("set-payload operation: {e}")))?;
    Ok(UpdateOperation::PayloadOperation(qdrant_edge::PayloadOps::SetPayload(op)))
}

/// A point in the engine's form.
pub(super) fn to_edge_point(p: Point) -> Result<qdrant_edge::PointStructPersisted> {
    let vectors = p.vectors.into_iter().map(|(name, v)| Ok((name, to_vector(v)?))).collect::<Result<Vec<_>>>()?;
    let vectors = Vectors::new_named(vectors.into_iter().map(|(n, v)| (n, qdrant_edge::Vector::from(v))));
    Ok(PointStruct::new(EdgePointId::Uuid(p.id), vectors, Value::Object(p.payload)).into())
}

/// A vector in the engine's form.
pub(super) fn to_vector(v: Vector) -> Result<VectorInternal> {
    Ok(match v {
        Vector::Dense(d) => VectorInternal::Dense(d),
        Vector::Sparse { indices, values } => VectorInternal::Sparse(
            SparseVector::new(indices, values).map_err(|e| Error::Internal(format!("invalid sparse vector: {e}")))?,
        ),
    })
}

/// A vector in aisle's form (`None` for multi-vectors, which aisle does not use).
fn from_vector(v: VectorInternal) -> Option<Vector> {
    match v {
        VectorInternal::Dense(d) => Some(Vector::Dense(d)),
        VectorInternal::Sparse(s) => Some(Vector::Sparse { indices: s.indices, values: s.values }),
        VectorInternal::MultiDense(_) => None,
    }
}

/// The UUID of an engine point id (aisle writes only UUIDs).
pub(super) fn uuid_of(id: EdgePointId) -> Result<Uuid> {
    match id {
        EdgePointId::Uuid(u) => Ok(u),
        EdgePointId::NumId(n) => Err(Error::Store(format!("unexpected numeric point id {n}"))),
    }
}

/// A record in aisle's form, from the parts the engine returns.
pub(super) fn to_record(
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

/// A vector query in the engine's form.
pub(super) fn to_query_enum(q: &VectorQuery) -> Result<QueryEnum> {
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

/// What ranks a prefetch, in the engine's form.
pub(super) fn to_scoring(source: &Source) -> Result<ScoringQuery> {
    Ok(match source {
        Source::Vector(v) => ScoringQuery::Vector(to_query_enum(v)?),
        Source::OrderBy { key, descending } => {
            let order: qdrant_edge::OrderBy =
                serde_json::from_value(json!({"key": key, "direction": if *descending { "desc" } else { "asc" }}))
                    .map_err(|e| Error::Internal(format!("order_by: {e}")))?;
            ScoringQuery::OrderBy(order)
        }
    })
}

/// Translate a filter through Qdrant's own JSON form (the REST API's shape).
pub(super) fn to_edge_filter(f: &Filter) -> Result<qdrant_edge::Filter> {
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

/// Qdrant's JSON form of a condition.
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
