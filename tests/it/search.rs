//! Hybrid search quality and filters that never leak.

use serde_json::{Value, json};

use crate::harness::{demo_products, get, search, shared};

/// The first category: from the demo file for demo products (the ground truth), else as returned
/// (other tests add products to the shared server).
fn category(p: &Value) -> String {
    let truth = demo_products().get(p["id"].as_str().unwrap()).unwrap_or(p);
    truth["categories"][0].as_str().unwrap_or("").to_string()
}

#[test]
fn headphones_query_returns_headphones_first() {
    let hits = search(json!({"query": "wireless noise cancelling headphones", "limit": 5}));
    assert_eq!(hits.len(), 5);
    assert_eq!(category(&hits[0]), "Headphones & Earbuds", "first hit: {}", hits[0]["title"]);
    let n = hits.iter().take(3).filter(|h| category(h) == "Headphones & Earbuds").count();
    assert_eq!(n, 3, "top 3: {:?}", hits.iter().map(|h| h["title"].clone()).collect::<Vec<_>>());
}

#[test]
fn semantic_and_keyword_modes_work_on_their_own() {
    let semantic = search(json!({"query": "something to listen to music privately", "mode": "semantic", "limit": 5}));
    assert!(semantic.iter().take(3).any(|h| category(h) == "Headphones & Earbuds"), "{semantic:?}");
    let keyword = search(json!({"query": "Duracell", "mode": "keyword", "limit": 5}));
    assert!(!keyword.is_empty());
    assert!(keyword.iter().all(|h| h["brand"] == "Duracell"), "{keyword:?}");
    // A query with no indexable terms returns nothing in keyword mode, not an error.
    assert!(search(json!({"query": "the of and", "mode": "keyword"})).is_empty());
}

#[test]
fn similar_returns_same_kind_products() {
    let s = shared();
    // Kinds by a word of the category name: "Gaming Laptops & Notebook Computers" are laptops too.
    for (kind, word) in [("headphones", "Headphones"), ("TVs", "TVs"), ("laptops", "Laptops")] {
        let mut ids: Vec<&str> = demo_products()
            .values()
            .filter(|p| p["categories"][0].as_str().unwrap().contains(word))
            .map(|p| p["id"].as_str().unwrap())
            .collect();
        ids.sort();
        // The first three products of the kind, in id order: the same probes on every run.
        for id in ids.into_iter().take(3) {
            let (status, body) = get(&s.url(&format!("/v1/products/{id}/similar?limit=5")));
            assert_eq!(status, 200, "{body}");
            let items: Vec<Value> = body["items"].as_array().unwrap().iter().map(|h| h["product"].clone()).collect();
            assert_eq!(items.len(), 5);
            assert!(items.iter().all(|p| p["id"] != id), "a product is not similar to itself");
            // Substitutes by default: the anchor's own category (every kind here has > 5 products).
            let anchor = category(&demo_products()[id]);
            assert!(items.iter().all(|p| category(p) == anchor), "{kind} ({id}): {items:?}");
            // scope=any ranks by text alone; the nearest product is still of the same kind.
            let (status, body) = get(&s.url(&format!("/v1/products/{id}/similar?limit=5&scope=any")));
            assert_eq!(status, 200, "{body}");
            let items: Vec<Value> = body["items"].as_array().unwrap().iter().map(|h| h["product"].clone()).collect();
            assert_eq!(items.len(), 5);
            assert!(category(&items[0]).contains(word), "{kind} ({id}), scope=any: {}", items[0]["title"]);
        }
    }
    // A category too small to fill the page is filled from other categories: lists stay full.
    let lonely = demo_products().values().find(|p| p["categories"][0] == "Projectors").unwrap()["id"].as_str().unwrap();
    let (_, body) = get(&s.url(&format!("/v1/products/{lonely}/similar?limit=10")));
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 10);
    assert_eq!(category(&items[0]["product"]), "Projectors", "the other projector comes first");
    let headphones = demo_products().values().find(|p| p["categories"][0] == "Headphones & Earbuds").unwrap();
    let url =
        format!("/v1/products/{}/similar?in_stock=true&price_max=100&limit=20", headphones["id"].as_str().unwrap());
    let (status, body) = get(&s.url(&url));
    assert_eq!(status, 200);
    for h in body["items"].as_array().unwrap() {
        // Other tests add products to the shared server: those are checked as returned.
        let truth = demo_products().get(h["product"]["id"].as_str().unwrap()).unwrap_or(&h["product"]);
        assert_eq!(truth["in_stock"], true);
        assert!(truth["price"].as_f64().unwrap() <= 100.0);
    }
}

const QUERIES: &[&str] = &[
    "wireless noise cancelling headphones",
    "4k tv",
    "gaming laptop with rtx graphics",
    "home security camera",
    "batteries",
    "smart watch for running",
    "router wifi 6",
    "cheap speaker",
    "apple",
    "digital piano",
];

#[test]
fn filters_never_leak_in_any_mode() {
    let truth = demo_products();
    let filters = [
        json!({"in_stock": true}),
        json!({"price_min": 100.0, "price_max": 500.0}),
        json!({"categories": ["TVs", "Monitors"]}),
        json!({"brands": ["samsung", "LG"], "in_stock": true}),
        json!({"price_max": 50.0, "in_stock": false}),
        json!({"exclude_ids": ["el-0001", "el-0002", "el-0003"], "categories": ["batteries"]}),
    ];
    for mode in ["hybrid", "semantic", "keyword"] {
        for q in QUERIES {
            for f in &filters {
                let hits = search(json!({"query": q, "filters": f, "limit": 50, "mode": mode}));
                for h in &hits {
                    let id = h["id"].as_str().unwrap();
                    let Some(t) = truth.get(id) else { continue }; // products added by other tests
                    if let Some(s) = f.get("in_stock") {
                        assert_eq!(&t["in_stock"], s, "{mode} {q} {f}: {id} leaked");
                    }
                    let price = t["price"].as_f64();
                    if let Some(lo) = f.get("price_min").and_then(Value::as_f64) {
                        assert!(price.is_some_and(|p| p >= lo), "{mode} {q} {f}: {id} leaked");
                    }
                    if let Some(hi) = f.get("price_max").and_then(Value::as_f64) {
                        assert!(price.is_some_and(|p| p <= hi), "{mode} {q} {f}: {id} leaked");
                    }
                    if let Some(cats) = f.get("categories") {
                        let c = t["categories"][0].as_str().unwrap().to_lowercase();
                        assert!(
                            cats.as_array().unwrap().iter().any(|x| x.as_str().unwrap().to_lowercase() == c),
                            "{mode} {q} {f}: {id} leaked"
                        );
                    }
                    if let Some(brands) = f.get("brands") {
                        let b = t["brand"].as_str().unwrap_or("").to_lowercase();
                        assert!(
                            brands.as_array().unwrap().iter().any(|x| x.as_str().unwrap().to_lowercase() == b),
                            "{mode} {q} {f}: {id} leaked"
                        );
                    }
                    if let Some(ex) = f.get("exclude_ids") {
                        assert!(!ex.as_array().unwrap().iter().any(|x| x == id), "{mode} {q} {f}: {id} leaked");
                    }
                }
            }
        }
    }
}

#[test]
fn filters_apply_inside_the_search_so_lists_stay_full() {
    // A headphones query restricted to TVs: a post-filter over the top candidates would come back
    // nearly empty; filtering inside the vector search returns a full page of TVs.
    let tvs_in_stock =
        demo_products().values().filter(|p| p["categories"][0] == "TVs" && p["in_stock"] == true).count();
    assert!(tvs_in_stock > 20);
    let hits = search(json!({"query": "wireless noise cancelling headphones", "mode": "semantic", "limit": 20,
        "filters": {"categories": ["TVs"], "in_stock": true}}));
    assert_eq!(hits.len(), 20);
    assert!(hits.iter().all(|h| category(h) == "TVs"));
}

#[test]
fn pagination_with_offset_is_consistent() {
    let all = search(json!({"query": "laptop", "limit": 20}));
    let second = search(json!({"query": "laptop", "limit": 10, "offset": 10}));
    let ids = |v: &[Value]| v.iter().map(|p| p["id"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(ids(&all[10..]), ids(&second));
}

/// A repeated query (whitespace aside) takes its embedding from the cache and ranks the same.
#[test]
fn repeated_queries_reuse_their_embedding() {
    let metric = |name: &str| -> f64 {
        let text = crate::harness::client().get(shared().url("/metrics")).send().unwrap().text().unwrap();
        text.lines().find_map(|l| l.strip_prefix(&format!("{name} "))).unwrap().parse().unwrap()
    };
    let query = "a compact speaker for a small kitchen shelf";
    let first = search(json!({"query": query, "mode": "semantic", "limit": 5}));
    let hits = metric("aisle_embed_query_cache_hits_total");
    let again =
        search(json!({"query": "  a compact   speaker for a small kitchen shelf ", "mode": "semantic", "limit": 5}));
    assert!(metric("aisle_embed_query_cache_hits_total") >= hits + 1.0, "the repeated query was embedded again");
    let ids = |h: &[Value]| h.iter().map(|p| p["id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&first), ids(&again));
    // The embedding model's memory is reported (MiniLM: 22.7M f32 weights), and so are the
    // compute pools (each model's defaults to all the compute threads).
    let bytes = metric("aisle_embed_weights_bytes");
    assert!((80e6..100e6).contains(&bytes), "embedding weights: {bytes} bytes");
    let ready: Value = crate::harness::client().get(shared().url("/readyz")).send().unwrap().json().unwrap();
    let threads = &ready["threads"];
    assert!(threads["count"].as_u64().unwrap() >= 1, "{ready}");
    assert_eq!(threads["embedding"], threads["count"], "{ready}");
    assert_eq!(threads["chat"], threads["count"], "{ready}");
}
