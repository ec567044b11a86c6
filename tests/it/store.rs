//! The store conformance suite: the same test functions run against the embedded engine and
//! a real Qdrant server (see `qdrant`), through aisle's public [`Store`] API. A last test runs
//! one workload on both backends and requires the same answers from each.
//!
//! Without a Qdrant server the `server::` tests print `SKIPPED` and pass.

use std::collections::BTreeSet;

use aisle::config::StoreConfig;
use aisle::store::{
    CollectionSpec, Condition, DenseSpec, Distance, Filter, IndexKind, KeywordEncoder, Payload, Point, Prefetch, Query,
    Ranking, Source, SparseSpec, Store, Vector, VectorQuery, point_id,
};
use serde_json::{Value, json};
use uuid::Uuid;

use super::qdrant;

/// A fresh embedded store in a temporary directory.
fn embedded_store() -> Store {
    let dir = super::harness::temp_dir("store");
    Store::open_embedded(&dir.join("qdrant"), "", 1_000_000).unwrap()
}

/// A store on the shared Qdrant server with collections of its own (a unique prefix).
fn server_store(test: &str) -> Option<Store> {
    let Some(server) = qdrant::shared() else {
        qdrant::skip(test);
        return None;
    };
    let config = StoreConfig {
        qdrant_url: server.grpc_url.clone(),
        qdrant_api_key: std::env::var("QDRANT_API_KEY").unwrap_or_default(),
        collection_prefix: format!("conf_{}_{}_", std::process::id(), test),
        ..StoreConfig::default()
    };
    Some(Store::open_remote(&config).unwrap())
}

/// Run each case as `embedded::<case>` and `server::<case>`.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(&super::embedded_store()).await;
                }
            )*
        }
        mod server {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    if let Some(store) = super::server_store(stringify!($case)) {
                        super::$case(&store).await;
                    }
                }
            )*
        }
    };
}

conformance!(
    writes_read_back_as_written,
    payload_and_vector_updates_merge,
    filters_count_and_delete,
    scroll_pages_in_id_order,
    queries_rank_filter_and_page,
    collections_grow_and_refuse_mismatches,
    claims_go_to_exactly_one_claimer,
);

const C: &str = "things";

fn spec() -> CollectionSpec {
    CollectionSpec {
        name: C.into(),
        dense: vec![DenseSpec { name: "text".into(), dim: 4, distance: Distance::Cosine }],
        sparse: vec![SparseSpec { name: "kw".into(), idf: true }],
        indexes: vec![
            ("kind".into(), IndexKind::Keyword),
            ("tags".into(), IndexKind::Keyword),
            ("price".into(), IndexKind::Float),
            ("stock".into(), IndexKind::Integer),
            ("active".into(), IndexKind::Bool),
        ],
        hnsw: true,
    }
}

fn id(i: usize) -> Uuid {
    point_id(C, &format!("p{i}"))
}

/// Ten points with every kind of payload value aisle stores.
fn things() -> Vec<Point> {
    let encoder = KeywordEncoder::english().unwrap();
    (0..10)
        .map(|i| {
            let angle = i as f32 * 0.3;
            let kind = ["lamp", "chair", "table"][i % 3];
            let text = format!("{kind} number {i} {}", if i == 7 { "walnut" } else { "oak" });
            let payload = json!({
                "id": format!("p{i}"),
                "kind": kind,
                "tags": if i % 2 == 0 { json!(["even", "sale"]) } else { json!(["odd"]) },
                "price": 10.5 + i as f64,
                "stock": i as i64,
                "active": i % 4 != 0,
                "note": if i == 3 { Value::Null } else { json!("x") },
                "dims": {"w": i, "h": 2.5},
            });
            Point {
                id: id(i),
                vectors: vec![
                    ("text".into(), Vector::Dense(vec![angle.cos(), angle.sin(), 0.1, 0.0])),
                    ("kw".into(), encoder.document(&text)),
                ],
                payload: payload.as_object().unwrap().clone(),
            }
        })
        .collect()
}

async fn loaded(store: &Store) {
    store.ensure_collection(&spec()).await.unwrap();
    store.upsert(C, things()).await.unwrap();
}

fn ids_of(records: impl IntoIterator<Item = Uuid>) -> Vec<Uuid> {
    records.into_iter().collect()
}

async fn writes_read_back_as_written(store: &Store) {
    loaded(store).await;
    let asked = vec![id(4), Uuid::from_u128(42), id(1), id(9)];
    let got = store.retrieve(C, asked, vec![]).await.unwrap();
    assert_eq!(ids_of(got.iter().map(|r| r.id)), vec![id(4), id(1), id(9)], "in the order asked, missing left out");
    let written = things();
    for r in &got {
        let w = written.iter().find(|p| p.id == r.id).unwrap();
        assert_eq!(Value::Object(r.payload.clone()), Value::Object(w.payload.clone()), "payload as written");
        assert!(r.vectors.is_empty(), "no vectors unless asked");
    }
    let with = store.retrieve(C, vec![id(2)], vec!["text".into(), "kw".into()]).await.unwrap();
    let Vector::Dense(d) = &with[0].vectors["text"] else { panic!("dense vector expected") };
    let norm: f32 = d.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "cosine vectors are stored normalised: {norm}");
    let (Vector::Sparse { indices, values }, Vector::Sparse { indices: wi, values: wv }) =
        (&with[0].vectors["kw"], &written[2].vectors[1].1)
    else {
        panic!("sparse vectors expected")
    };
    let mut pairs: Vec<(u32, f32)> = indices.iter().copied().zip(values.iter().copied()).collect();
    let mut wpairs: Vec<(u32, f32)> = wi.iter().copied().zip(wv.iter().copied()).collect();
    pairs.sort_by_key(|p| p.0);
    wpairs.sort_by_key(|p| p.0);
    assert_eq!(pairs, wpairs, "sparse vectors as written");
    assert_eq!(store.count(C, None).await.unwrap(), 10);
    // Upsert replaces the whole point.
    let mut p = things().remove(5);
    p.payload = json!({"id": "p5", "kind": "sofa"}).as_object().unwrap().clone();
    store.upsert(C, vec![p]).await.unwrap();
    let r = store.retrieve(C, vec![id(5)], vec![]).await.unwrap();
    assert_eq!(Value::Object(r[0].payload.clone()), json!({"id": "p5", "kind": "sofa"}));
    assert_eq!(store.count(C, None).await.unwrap(), 10);
}

async fn payload_and_vector_updates_merge(store: &Store) {
    loaded(store).await;
    let mut patch = Payload::new();
    patch.insert("price".into(), json!(99.0));
    patch.insert("extra".into(), json!({"a": [1, 2]}));
    store.set_payload(C, vec![id(1), id(2)], patch).await.unwrap();
    let updates = (3..6)
        .map(|i| {
            let mut p = Payload::new();
            p.insert("stock".into(), json!(100 + i));
            (id(i), p)
        })
        .collect();
    store.set_payloads(C, updates).await.unwrap();
    store
        .update_vectors(C, vec![(id(1), vec![("text".into(), Vector::Dense(vec![0.0, 0.0, 0.0, 1.0]))])])
        .await
        .unwrap();
    let got = store.retrieve(C, vec![id(1), id(2), id(4)], vec!["text".into(), "kw".into()]).await.unwrap();
    assert_eq!(got[0].payload["price"], json!(99.0));
    assert_eq!(got[0].payload["extra"], json!({"a": [1, 2]}));
    assert_eq!(got[0].payload["kind"], json!("chair"), "other keys kept");
    assert_eq!(got[1].payload["price"], json!(99.0));
    assert_eq!(got[2].payload["stock"], json!(104));
    assert_eq!(got[0].vectors["text"], Vector::Dense(vec![0.0, 0.0, 0.0, 1.0]));
    assert!(got[0].vectors.contains_key("kw"), "the other vector is kept");
    let by_price = Filter::default().must(Condition::Range { key: "price".into(), gte: Some(99.0), lte: None });
    assert_eq!(store.count(C, Some(by_price)).await.unwrap(), 2, "indexes follow payload updates");
}

async fn filters_count_and_delete(store: &Store) {
    loaded(store).await;
    let count = |f: Filter| async move { store.count(C, Some(f)).await.unwrap() };
    let kw = |k: &str, v: &str| Condition::Keyword { key: k.into(), value: v.into() };
    assert_eq!(count(Filter::default().must(kw("kind", "lamp"))).await, 4);
    assert_eq!(count(Filter::default().must(kw("tags", "sale"))).await, 5, "a keyword matches inside arrays");
    let any = Condition::KeywordAny { key: "kind".into(), values: vec!["lamp".into(), "table".into()] };
    assert_eq!(count(Filter::default().must(any)).await, 7);
    assert_eq!(count(Filter::default().must(Condition::Bool { key: "active".into(), value: false })).await, 3);
    let range = Condition::Range { key: "price".into(), gte: Some(12.5), lte: Some(15.5) };
    assert_eq!(count(Filter::default().must(range.clone())).await, 4, "bounds are inclusive");
    let stock = Condition::Range { key: "stock".into(), gte: None, lte: Some(2.0) };
    assert_eq!(count(Filter::default().must(stock)).await, 3);
    assert_eq!(count(Filter::default().must(Condition::HasId(vec![id(1), id(2), Uuid::from_u128(7)]))).await, 2);
    assert_eq!(count(Filter::default().must(Condition::IsEmpty("note".into()))).await, 1, "null is empty");
    assert_eq!(count(Filter::default().must(Condition::IsEmpty("missing".into()))).await, 10);
    assert_eq!(count(Filter::default().must_not(kw("kind", "lamp"))).await, 6);
    let either = Filter { should: vec![kw("kind", "chair"), kw("kind", "table")], ..Filter::default() };
    assert_eq!(count(either.clone()).await, 6);
    let nested = Filter::default().must(Condition::Nested(either)).must(range);
    assert_eq!(count(nested).await, 3);
    store.delete(C, vec![id(0), Uuid::from_u128(99)]).await.unwrap();
    assert_eq!(store.count(C, None).await.unwrap(), 9, "missing ids are ignored");
    store.delete_by_filter(C, Filter::default().must(kw("kind", "chair"))).await.unwrap();
    assert_eq!(store.count(C, None).await.unwrap(), 6);
    assert!(store.retrieve(C, vec![id(1)], vec![]).await.unwrap().is_empty());
    store.delete(C, vec![]).await.unwrap();
    store.upsert(C, vec![]).await.unwrap();
    // Compaction keeps every live point and its indexes.
    store.compact(C).await.unwrap();
    assert_eq!(store.count(C, None).await.unwrap(), 6);
    assert_eq!(count(Filter::default().must(kw("kind", "lamp"))).await, 3);
}

async fn scroll_pages_in_id_order(store: &Store) {
    loaded(store).await;
    let mut seen = Vec::new();
    let mut offset = None;
    loop {
        let page = store.scroll(C, None, offset, 3).await.unwrap();
        assert!(page.records.len() <= 3);
        seen.extend(page.records.iter().map(|r| r.id));
        match page.next {
            Some(n) => offset = Some(n),
            None => break,
        }
    }
    let mut sorted: Vec<Uuid> = (0..10).map(id).collect();
    sorted.sort();
    assert_eq!(seen, sorted, "every point once, in id order");
    let lamps = Filter::default().must(Condition::Keyword { key: "kind".into(), value: "lamp".into() });
    let page = store.scroll(C, Some(lamps), None, 100).await.unwrap();
    assert_eq!(page.records.len(), 4);
    assert!(page.next.is_none());
    assert!(page.records.windows(2).all(|w| w[0].id < w[1].id));
}

async fn queries_rank_filter_and_page(store: &Store) {
    loaded(store).await;
    let nearest = |v: Vec<f32>| VectorQuery::Nearest { using: "text".into(), vector: Vector::Dense(v) };
    let q = Query {
        prefetch: vec![],
        ranking: Ranking::Vector(nearest(vec![1.0, 0.0, 0.1, 0.0])),
        filter: None,
        limit: 3,
        offset: 0,
        with_vectors: vec![],
    };
    let hits = store.query(C, q.clone()).await.unwrap();
    assert_eq!(ids_of(hits.iter().map(|h| h.id)), vec![id(0), id(1), id(2)]);
    assert!(hits[0].score > hits[1].score && hits[1].score > hits[2].score);
    assert_eq!(hits[0].payload["id"], json!("p0"), "hits carry their payload");
    // Offset pages through the same ranking.
    let page2 = store.query(C, Query { offset: 2, ..q.clone() }).await.unwrap();
    let all = store.query(C, Query { limit: 10, ..q.clone() }).await.unwrap();
    assert_eq!(ids_of(page2.iter().map(|h| h.id)), ids_of(all[2..5].iter().map(|h| h.id)));
    // BM25 with IDF: the one product with the rare word comes first.
    let encoder = KeywordEncoder::english().unwrap();
    let sparse = VectorQuery::Nearest { using: "kw".into(), vector: encoder.query("walnut chair") };
    let hits = store.query(C, Query { ranking: Ranking::Vector(sparse.clone()), limit: 5, ..q.clone() }).await.unwrap();
    assert_eq!(hits[0].id, id(7));
    assert!(hits[1..].iter().all(|h| h.payload["kind"] == json!("chair")), "then the chairs");
    // Recommend: near the positive, away from the negative.
    let rec = VectorQuery::Recommend {
        using: "text".into(),
        positive: vec![vec![0.0, 1.0, 0.0, 0.0]],
        negative: vec![vec![1.0, 0.0, 0.0, 0.0]],
    };
    let hits = store.query(C, Query { ranking: Ranking::Vector(rec), limit: 2, ..q.clone() }).await.unwrap();
    assert_eq!(ids_of(hits.iter().map(|h| h.id)), vec![id(5), id(6)]);
    // Weighted RRF over three sources; the top-level filter holds in every prefetch.
    let not_lamps = Filter::default().must_not(Condition::Keyword { key: "kind".into(), value: "lamp".into() });
    let fused = Query {
        prefetch: vec![
            Prefetch { source: Source::Vector(nearest(vec![1.0, 0.0, 0.1, 0.0])), filter: None, limit: 10 },
            Prefetch { source: Source::Vector(sparse), filter: None, limit: 10 },
            Prefetch {
                source: Source::OrderBy { key: "price".into(), descending: true },
                filter: Some(Filter::default().must(Condition::Bool { key: "active".into(), value: true })),
                limit: 10,
            },
        ],
        ranking: Ranking::Rrf { k: 2, weights: Some(vec![1.0, 3.0, 0.5]) },
        filter: Some(not_lamps),
        limit: 10,
        offset: 0,
        with_vectors: vec!["text".into()],
    };
    let hits = store.query(C, fused.clone()).await.unwrap();
    assert_eq!(hits.len(), 6, "every non-lamp, once");
    assert!(hits.iter().all(|h| h.payload["kind"] != json!("lamp")));
    assert_eq!(hits[0].id, id(7), "the heavily weighted keyword source leads");
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    assert!(hits.iter().all(|h| h.vectors.contains_key("text")), "vectors asked for come back");
    // The order-by source alone ranks by price among active non-lamps.
    let by_price = Query {
        prefetch: vec![fused.prefetch[2].clone()],
        ranking: Ranking::Rrf { k: 60, weights: None },
        limit: 3,
        with_vectors: vec![],
        ..fused.clone()
    };
    let hits = store.query(C, by_price).await.unwrap();
    assert_eq!(ids_of(hits.iter().map(|h| h.id)), vec![id(7), id(5), id(2)]);
}

async fn collections_grow_and_refuse_mismatches(store: &Store) {
    loaded(store).await;
    // Ensuring again is harmless; a new index and a new vector are added to the live collection.
    let mut grown = spec();
    grown.indexes.push(("note".into(), IndexKind::Keyword));
    grown.dense.push(DenseSpec { name: "collab".into(), dim: 3, distance: Distance::Dot });
    store.ensure_collection(&grown).await.unwrap();
    store.ensure_collection(&grown).await.unwrap();
    assert_eq!(store.count(C, None).await.unwrap(), 10, "points are kept");
    let x = Filter::default().must(Condition::Keyword { key: "note".into(), value: "x".into() });
    assert_eq!(store.count(C, Some(x)).await.unwrap(), 9);
    store.update_vectors(C, vec![(id(3), vec![("collab".into(), Vector::Dense(vec![1.0, 2.0, 3.0]))])]).await.unwrap();
    let got = store.retrieve(C, vec![id(3)], vec!["collab".into()]).await.unwrap();
    assert_eq!(got[0].vectors["collab"], Vector::Dense(vec![1.0, 2.0, 3.0]), "dot vectors are kept as written");
    let extra = DenseSpec { name: "other".into(), dim: 2, distance: Distance::Dot };
    store.ensure_vector(C, &extra).await.unwrap();
    store.ensure_vector(C, &extra).await.unwrap();
    // Another size for an existing vector is refused with the reason.
    let wrong = DenseSpec { name: "text".into(), dim: 8, distance: Distance::Cosine };
    let e = store.ensure_vector(C, &wrong).await.unwrap_err().to_string();
    assert!(e.contains("dimension"), "{e}");
    let mut other_model = spec();
    other_model.dense[0].dim = 8;
    let e = store.ensure_collection(&other_model).await.unwrap_err().to_string();
    assert!(e.contains("dimension") && e.contains("text"), "{e}");
}

/// One workload on both backends: every read answers the same ids in the same order, with
/// the same scores (to float rounding).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_and_server_answer_alike() {
    let Some(server) = server_store("embedded_and_server_answer_alike") else { return };
    let embedded = embedded_store();
    let words = ["oak", "walnut", "lamp", "chair", "table", "linen", "brass", "rug", "desk", "shelf", "velvet"];
    let mut seed = 7u64;
    let mut next = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) as u32
    };
    let spec = CollectionSpec {
        name: "parity".into(),
        dense: vec![DenseSpec { name: "text".into(), dim: 16, distance: Distance::Cosine }],
        sparse: vec![SparseSpec { name: "kw".into(), idf: true }],
        indexes: vec![("kind".into(), IndexKind::Keyword), ("price".into(), IndexKind::Float)],
        hnsw: true,
    };
    let mut points = Vec::new();
    for i in 0..300 {
        let v: Vec<f32> = (0..16).map(|_| (next() % 1000) as f32 / 1000.0 - 0.5).collect();
        // Sparse weights drawn at random (not BM25's few distinct values), so that keyword
        // rankings have no ties whose order an engine may choose.
        let mut terms: Vec<u32> = (0..3 + next() % 6).map(|_| next() % 40).collect();
        terms.sort();
        terms.dedup();
        let weights: Vec<f32> = terms.iter().map(|_| 0.5 + (next() % 1_000_000) as f32 / 1e6).collect();
        // Distinct prices: an order-by ranking has no ties.
        let payload = json!({"id": i, "kind": words[next() as usize % 4], "price": ((i * 37) % 300) as f64 + 0.25});
        points.push(Point {
            id: point_id("parity", &i.to_string()),
            vectors: vec![
                ("text".into(), Vector::Dense(v)),
                ("kw".into(), Vector::Sparse { indices: terms, values: weights }),
            ],
            payload: payload.as_object().unwrap().clone(),
        });
    }
    let gone: Vec<Uuid> = points.iter().step_by(7).map(|p| p.id).collect();
    for store in [&embedded, &server] {
        store.ensure_collection(&spec).await.unwrap();
        store.upsert("parity", points.clone()).await.unwrap();
        store.delete("parity", gone.clone()).await.unwrap();
    }
    let mut queries = Vec::new();
    for q in 0..12 {
        let v: Vec<f32> = (0..16).map(|_| (next() % 1000) as f32 / 1000.0 - 0.5).collect();
        let filter = (q % 2 == 0).then(|| {
            Filter::default().must(Condition::Range { key: "price".into(), gte: Some(10.0), lte: Some(80.0) })
        });
        let dense = VectorQuery::Nearest { using: "text".into(), vector: Vector::Dense(v) };
        let (t1, t2) = (next() % 20, 20 + next() % 20);
        let sparse = VectorQuery::Nearest {
            using: "kw".into(),
            vector: Vector::Sparse { indices: vec![t1, t2], values: vec![1.0, 0.7] },
        };
        queries.push(Query {
            prefetch: vec![],
            ranking: Ranking::Vector(dense.clone()),
            filter: filter.clone(),
            limit: 10,
            offset: q % 3,
            with_vectors: vec![],
        });
        queries.push(Query {
            prefetch: vec![],
            ranking: Ranking::Vector(sparse.clone()),
            filter: filter.clone(),
            limit: 10,
            offset: 0,
            with_vectors: vec![],
        });
        queries.push(Query {
            prefetch: vec![
                Prefetch { source: Source::Vector(dense), filter: None, limit: 40 },
                Prefetch { source: Source::Vector(sparse), filter: None, limit: 40 },
                Prefetch {
                    source: Source::OrderBy { key: "price".into(), descending: q % 3 == 0 },
                    filter: Some(
                        Filter::default().must(Condition::Keyword { key: "kind".into(), value: "lamp".into() }),
                    ),
                    limit: 20,
                },
            ],
            ranking: Ranking::Rrf { k: 60, weights: Some(vec![1.0, 1.5, 0.3]) },
            filter,
            limit: 15,
            offset: q % 2,
            with_vectors: vec![],
        });
    }
    for (n, query) in queries.into_iter().enumerate() {
        let a = embedded.query("parity", query.clone()).await.unwrap();
        let b = server.query("parity", query.clone()).await.unwrap();
        assert_same_ranking(&a, &b, &format!("query {n} ({query:?})"));
    }
    let kinds: BTreeSet<&str> = ["lamp", "chair", "table", "oak"].into();
    for kind in kinds {
        let f = Filter::default().must(Condition::Keyword { key: "kind".into(), value: kind.into() });
        assert_eq!(
            embedded.count("parity", Some(f.clone())).await.unwrap(),
            server.count("parity", Some(f)).await.unwrap()
        );
    }
    let a = embedded.scroll("parity", None, None, 1000).await.unwrap();
    let b = server.scroll("parity", None, None, 1000).await.unwrap();
    assert_eq!(ids_of(a.records.iter().map(|r| r.id)), ids_of(b.records.iter().map(|r| r.id)));
    assert_eq!(a.records.len(), 300 - gone.len());
}

/// Two rankings agree: the same scores position by position (to float rounding), and the
/// same ids, where points that tie may come in either order (a tie at the cut may even keep
/// different members).
fn assert_same_ranking(a: &[aisle::store::Hit], b: &[aisle::store::Hit], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    let close = |x: f32, y: f32| (x - y).abs() <= 1e-4 * x.abs().max(1.0);
    for (x, y) in a.iter().zip(b) {
        assert!(close(x.score, y.score), "{what}: scores {} vs {}", x.score, y.score);
    }
    let mut start = 0;
    while start < a.len() {
        let mut end = start + 1;
        while end < a.len() && close(a[end].score, a[start].score) {
            end += 1;
        }
        let ids = |h: &[aisle::store::Hit]| h.iter().map(|h| h.id).collect::<BTreeSet<_>>();
        if end < a.len() {
            assert_eq!(ids(&a[start..end]), ids(&b[start..end]), "{what}: different points at ranks {start}..{end}");
        }
        start = end;
    }
}

/// Claims: new ids are created and reported as ours, existing ones are left untouched, and of
/// many claimers racing for the same ids each id goes to exactly one.
async fn claims_go_to_exactly_one_claimer(store: &Store) {
    loaded(store).await;
    let point = |i: usize, who: &str| Point {
        id: id(i),
        vectors: vec![],
        payload: json!({"id": format!("p{i}"), "kind": who}).as_object().unwrap().clone(),
    };
    // p1 exists: not ours, and untouched; p20 and p21 are new.
    let won = store.claim(C, vec![point(1, "claimed"), point(20, "first"), point(21, "first")]).await.unwrap();
    assert_eq!(won, [id(20), id(21)].into_iter().collect());
    let p1 = store.retrieve(C, vec![id(1)], vec!["text".into()]).await.unwrap().remove(0);
    assert_eq!(p1.payload["kind"], "chair", "an existing point is not overwritten");
    assert!(p1.vectors.contains_key("text"), "nor its vectors dropped");
    assert!(store.claim(C, vec![point(20, "second")]).await.unwrap().is_empty(), "claimed once only");
    assert_eq!(store.retrieve(C, vec![id(20)], vec![]).await.unwrap()[0].payload["kind"], "first");

    // Eight claimers race for the same forty ids, each in its own task.
    let ids: Vec<usize> = (100..140).collect();
    let racers: Vec<_> = (0..8)
        .map(|r| {
            let store = store.clone();
            let points: Vec<Point> = ids.iter().map(|&i| point(i, &format!("racer-{r}"))).collect();
            tokio::spawn(async move { store.claim(C, points).await.unwrap() })
        })
        .collect();
    let mut owners = std::collections::HashMap::new();
    for (r, racer) in racers.into_iter().enumerate() {
        for won in racer.await.unwrap() {
            assert!(owners.insert(won, r).is_none(), "{won} was claimed twice");
        }
    }
    assert_eq!(owners.len(), ids.len(), "every id was claimed by someone");
    let stored = store.retrieve(C, ids.iter().map(|&i| id(i)).collect(), vec![]).await.unwrap();
    for r in stored {
        assert_eq!(r.payload["kind"], format!("racer-{}", owners[&r.id]), "the stored point is the winner's");
    }
}
