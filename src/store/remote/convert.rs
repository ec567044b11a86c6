//! Translation between aisle's store types ([`Point`], [`Vector`], [`Filter`], [`Query`] parts,
//! [`CollectionSpec`]) and the Qdrant server's gRPC messages, in both directions.
//!
//! Not for: calling the server, retries or error mapping; every function here is pure.
//!
//! [`Query`]: crate::store::Query

use std::collections::HashMap;

use qdrant_client::qdrant::{
    self as q, Condition as QCondition, FieldCondition, Filter as QFilter, Match, PointId, PointStruct, VectorInput,
    condition::ConditionOneOf, r#match::MatchValue, point_id::PointIdOptions, vector_input, vector_output,
    vectors_output,
};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::store::{Condition, Distance, Filter, Payload, Point, Record, Source, Vector, VectorQuery};

/// The server's name of a distance.
pub(super) fn distance(d: Distance) -> q::Distance {
    match d {
        Distance::Cosine => q::Distance::Cosine,
        Distance::Dot => q::Distance::Dot,
        Distance::Euclid => q::Distance::Euclid,
    }
}

/// A point id in the server's form.
pub(super) fn point_id(id: Uuid) -> PointId {
    PointId { point_id_options: Some(PointIdOptions::Uuid(id.to_string())) }
}

/// The UUID of a server point id (aisle writes only UUIDs).
pub(super) fn uuid_of(id: Option<PointId>) -> Result<Uuid> {
    match id.and_then(|p| p.point_id_options) {
        Some(PointIdOptions::Uuid(s)) => {
            Uuid::parse_str(&s).map_err(|e| Error::Store(format!("the server returned a bad point id {s:?}: {e}")))
        }
        Some(PointIdOptions::Num(n)) => Err(Error::Store(format!("unexpected numeric point id {n}"))),
        None => Err(Error::Store("the server returned a point without an id".into())),
    }
}

/// A payload in the server's form.
pub(super) fn payload(p: Payload) -> HashMap<String, q::Value> {
    p.into_iter().map(|(k, v)| (k, q::Value::from(v))).collect()
}

/// A payload in aisle's form.
fn from_payload(p: HashMap<String, q::Value>) -> Payload {
    p.into_iter().map(|(k, v)| (k, serde_json::Value::from(v))).collect()
}

/// A vector in the server's form.
pub(super) fn vector(v: Vector) -> Result<q::Vector> {
    Ok(match v {
        Vector::Dense(d) => q::Vector::new_dense(d),
        Vector::Sparse { indices, values } => {
            if indices.len() != values.len() {
                return Err(Error::Internal("invalid sparse vector: indices and values differ in length".into()));
            }
            q::Vector::new_sparse(indices, values)
        }
    })
}

/// Named vectors in the server's form.
pub(super) fn vectors(named: Vec<(String, Vector)>) -> Result<q::Vectors> {
    let mut map = HashMap::with_capacity(named.len());
    for (name, v) in named {
        map.insert(name, vector(v)?);
    }
    Ok(q::Vectors::from(q::NamedVectors { vectors: map }))
}

/// A point in the server's form.
pub(super) fn point(p: Point) -> Result<PointStruct> {
    Ok(PointStruct { id: Some(point_id(p.id)), payload: payload(p.payload), vectors: Some(vectors(p.vectors)?) })
}

/// A vector in aisle's form (`None` for multi-vectors, which aisle does not use).
fn from_vector(v: q::VectorOutput) -> Option<Vector> {
    match v.into_vector() {
        vector_output::Vector::Dense(d) => Some(Vector::Dense(d.data)),
        vector_output::Vector::Sparse(s) => Some(Vector::Sparse { indices: s.indices, values: s.values }),
        vector_output::Vector::MultiDense(_) => None,
    }
}

/// A record in aisle's form, from the parts the server returns.
pub(super) fn record(
    id: Option<PointId>,
    payload: HashMap<String, q::Value>,
    vectors: Option<q::VectorsOutput>,
) -> Result<Record> {
    let mut out = HashMap::new();
    if let Some(vectors_output::VectorsOptions::Vectors(named)) = vectors.and_then(|v| v.vectors_options) {
        for (name, v) in named.vectors {
            if let Some(v) = from_vector(v) {
                out.insert(name, v);
            }
        }
    }
    Ok(Record { id: uuid_of(id)?, payload: from_payload(payload), vectors: out })
}

/// A vector to search with, in the server's form.
fn vector_input(v: &Vector) -> VectorInput {
    match v {
        Vector::Dense(d) => {
            VectorInput { variant: Some(vector_input::Variant::Dense(q::DenseVector { data: d.clone() })) }
        }
        Vector::Sparse { indices, values } => VectorInput::new_sparse(indices.clone(), values.clone()),
    }
}

/// A vector query in the server's form, with the vector it searches.
pub(super) fn vector_query(v: &VectorQuery) -> (q::Query, String) {
    match v {
        VectorQuery::Nearest { using, vector } => (q::Query::new_nearest(vector_input(vector)), using.clone()),
        VectorQuery::Recommend { using, positive, negative } => {
            let dense = |d: &Vec<f32>| VectorInput::new_dense(d.clone());
            let input = q::RecommendInput {
                positive: positive.iter().map(dense).collect(),
                negative: negative.iter().map(dense).collect(),
                strategy: Some(q::RecommendStrategy::BestScore as i32),
            };
            (q::Query::new_recommend(input), using.clone())
        }
    }
}

/// What ranks a prefetch, in the server's form, with the vector it searches (if any).
pub(super) fn scoring(source: &Source) -> (q::Query, Option<String>) {
    match source {
        Source::Vector(v) => {
            let (query, using) = vector_query(v);
            (query, Some(using))
        }
        Source::OrderBy { key, descending } => {
            let direction = if *descending { q::Direction::Desc } else { q::Direction::Asc };
            let order = q::OrderBy { key: key.clone(), direction: Some(direction as i32), start_from: None };
            (q::Query::new_order_by(order), None)
        }
    }
}

/// A filter in the server's form.
pub(super) fn filter(f: &Filter) -> QFilter {
    QFilter {
        must: f.must.iter().map(condition).collect(),
        should: f.should.iter().map(condition).collect(),
        must_not: f.must_not.iter().map(condition).collect(),
        min_should: None,
    }
}

/// A field condition with a match.
fn matches(key: &str, value: MatchValue) -> QCondition {
    QCondition::from(FieldCondition {
        key: key.to_string(),
        r#match: Some(Match { match_value: Some(value) }),
        ..Default::default()
    })
}

/// A condition in the server's form.
fn condition(c: &Condition) -> QCondition {
    match c {
        Condition::Keyword { key, value } => matches(key, MatchValue::Keyword(value.clone())),
        Condition::KeywordAny { key, values } => {
            matches(key, MatchValue::Keywords(q::RepeatedStrings { strings: values.clone() }))
        }
        Condition::Bool { key, value } => matches(key, MatchValue::Boolean(*value)),
        Condition::Range { key, gte, lte } => QCondition::from(FieldCondition {
            key: key.clone(),
            range: Some(q::Range { gte: *gte, lte: *lte, gt: None, lt: None }),
            ..Default::default()
        }),
        Condition::HasId(ids) => {
            QCondition::from(q::HasIdCondition { has_id: ids.iter().copied().map(point_id).collect() })
        }
        Condition::IsEmpty(key) => QCondition::from(q::IsEmptyCondition { key: key.clone() }),
        Condition::Nested(f) => QCondition { condition_one_of: Some(ConditionOneOf::Filter(filter(f))) },
    }
}
