//! Product CRUD, batch writes, re-embedding only on text change, listing with cursors.

use serde_json::{Value, json};

use crate::harness::{client, get, post, put, shared};

#[test]
fn put_get_replace_delete() {
    let s = shared();
    let url = s.url("/v1/products/t-crud-1");
    let (status, body) = put(
        &url,
        &json!({"title": "Test Kettle", "brand": "Acme", "price": 30.0, "categories": ["Kitchen"], "stock_qty": 4}),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["id"], "t-crud-1");
    assert_eq!(body["in_stock"], true);
    assert_eq!(body["currency"], "USD");
    let (status, body) = get(&url);
    assert_eq!(status, 200);
    assert_eq!(body["title"], "Test Kettle");
    assert_eq!(body["stock_qty"], 4);
    assert!(body.get("embed_hash").is_none() && body.get("brand_key").is_none(), "internal keys leak: {body}");

    let (status, body) =
        put(&url, &json!({"id": "t-crud-1", "title": "Test Kettle", "brand": "Acme", "price": 25.0, "stock_qty": 0}));
    assert_eq!(status, 200, "{body}");
    let (_, body) = get(&url);
    assert_eq!(body["price"], 25.0);
    assert_eq!(body["in_stock"], false);

    let r = client().delete(&url).send().unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(get(&url).0, 404);
    assert_eq!(client().delete(&url).send().unwrap().status(), 404);
}

#[test]
fn batch_reports_each_bad_item_and_writes_the_rest() {
    let s = shared();
    let (status, body) = post(
        &s.url("/v1/products:batch"),
        &json!({"products": [
            {"id": "t-batch-1", "title": "Good one", "price": 10.0},
            {"id": "t-batch-2", "title": "Bad price", "price": -5},
            {"id": "t-batch-3", "title": "Bad type", "price": "cheap"},
            {"id": "t-batch-4", "title": "Also good"},
            {"id": "t-batch-1", "title": "Duplicate id"},
            {"title": "No id"},
            "not an object"
        ]}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 2, "{body}");
    assert_eq!(body["rejected"], 5, "{body}");
    let pointers: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["errors"].as_array().unwrap().iter().map(|f| f["pointer"].as_str().unwrap()))
        .collect();
    assert_eq!(
        pointers,
        vec!["/products/1/price", "/products/2/price", "/products/4/id", "/products/5/id", "/products/6"]
    );
    assert_eq!(get(&s.url("/v1/products/t-batch-1")).0, 200);
    assert_eq!(get(&s.url("/v1/products/t-batch-4")).0, 200);
    assert_eq!(get(&s.url("/v1/products/t-batch-2")).0, 404);
    assert_eq!(get(&s.url("/v1/products/t-batch-3")).0, 404);
}

#[test]
fn only_changed_text_is_re_embedded() {
    let s = shared();
    let url = s.url("/v1/products:batch");
    let item = json!({"id": "t-reembed", "title": "Reembed Lamp", "description": "A warm desk lamp", "price": 40.0});
    let (_, first) = post(&url, &json!({"products": [item]}));
    assert_eq!((first["embedded"].as_u64(), first["created"].as_u64()), (Some(1), Some(1)), "{first}");
    // Price and stock change: the stored vector is reused.
    let (_, second) = post(
        &url,
        &json!({"products": [{"id": "t-reembed", "title": "Reembed Lamp", "description": "A warm desk lamp", "price": 35.0, "stock_qty": 0}]}),
    );
    assert_eq!(
        (second["embedded"].as_u64(), second["reused"].as_u64(), second["updated"].as_u64()),
        (Some(0), Some(1), Some(1)),
        "{second}"
    );
    // The description changes: re-embedded.
    let (_, third) = post(
        &url,
        &json!({"products": [{"id": "t-reembed", "title": "Reembed Lamp", "description": "A cold desk lamp", "price": 35.0}]}),
    );
    assert_eq!(third["embedded"], 1, "{third}");
    let (_, p) = get(&s.url("/v1/products/t-reembed"));
    assert_eq!(p["description"], "A cold desk lamp");
}

fn page_all(s: &crate::harness::Server, query: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => s.url(&format!("/v1/products?limit=100&cursor={c}{query}")),
            None => s.url(&format!("/v1/products?limit=100{query}")),
        };
        let (status, body) = get(&url);
        assert_eq!(status, 200, "{body}");
        items.extend(body["items"].as_array().unwrap().iter().cloned());
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return items,
        }
    }
}

#[test]
fn listing_pages_through_everything_once_and_filters() {
    let s = shared();
    let all = page_all(s, "");
    let ids: std::collections::HashSet<&str> = all.iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), all.len(), "a product appeared twice");
    for id in crate::harness::demo_products().keys() {
        assert!(ids.contains(id.as_str()), "{id} missing from the listing");
    }
    let tvs = page_all(s, "&category=tvs&in_stock=true");
    assert!(!tvs.is_empty());
    let truth = crate::harness::demo_products();
    for p in &tvs {
        let t = &truth[p["id"].as_str().unwrap()];
        assert_eq!(t["categories"][0], "TVs");
        assert_eq!(t["in_stock"], true);
    }
    let expected = truth.values().filter(|p| p["categories"][0] == "TVs" && p["in_stock"] == true).count();
    assert_eq!(tvs.len(), expected);
}
