//! Every malformed input gets a 4xx problem+json naming the bad field; none gets a 5xx.

use reqwest::blocking::RequestBuilder;
use serde_json::{Value, json};

use crate::harness::{client, shared};

/// Send, and check: the status, problem+json, and (if given) the first error's pointer.
fn expect(req: RequestBuilder, status: u16, pointer: Option<&str>) -> Value {
    let r = req.send().unwrap();
    assert_eq!(r.status().as_u16(), status, "body: {:?}", r.text().ok());
    let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    assert_eq!(ct, "application/problem+json");
    let body: Value = r.json().unwrap();
    assert_eq!(body["status"], status);
    assert!(body["type"].as_str().unwrap().starts_with("urn:aisle:problem:"), "{body}");
    assert!(!body["title"].as_str().unwrap().is_empty() && !body["detail"].as_str().unwrap().is_empty());
    if let Some(p) = pointer {
        let pointers: Vec<&str> =
            body["errors"].as_array().unwrap().iter().map(|e| e["pointer"].as_str().unwrap()).collect();
        assert!(pointers.contains(&p), "expected pointer {p}, got {pointers:?}: {body}");
    }
    body
}

fn json_post(path: &str, body: &str) -> RequestBuilder {
    client().post(shared().url(path)).header("content-type", "application/json").body(body.to_string())
}

fn json_put(path: &str, body: &str) -> RequestBuilder {
    client().put(shared().url(path)).header("content-type", "application/json").body(body.to_string())
}

#[test]
fn malformed_json() {
    expect(json_put("/v1/products/x1", "{\"title\": "), 400, Some(""));
    expect(json_put("/v1/products/x1", "{\"title\": \"a\"} trailing"), 400, Some(""));
    expect(json_post("/v1/search", "not json at all"), 400, Some(""));
    expect(json_post("/v1/search", ""), 400, Some(""));
    expect(json_post("/v1/products:batch", "[1,2,"), 400, Some(""));
}

#[test]
fn wrong_types_and_unknown_fields_name_the_field() {
    expect(json_put("/v1/products/x1", r#"{"title": "a", "price": "cheap"}"#), 400, Some("/price"));
    expect(json_put("/v1/products/x1", r#"{"title": 42}"#), 400, Some("/title"));
    expect(json_put("/v1/products/x1", r#"{"title": "a", "categories": "not-a-list"}"#), 400, Some("/categories"));
    expect(json_put("/v1/products/x1", r#"{"title": "a", "tags": ["ok", 7]}"#), 400, Some("/tags/1"));
    expect(json_put("/v1/products/x1", r#"{"title": "a", "prize": 3}"#), 400, Some("/prize"));
    expect(json_put("/v1/products/x1", r#"["an", "array"]"#), 400, Some(""));
    expect(json_post("/v1/search", r#"{"query": "tv", "limit": -1}"#), 400, Some("/limit"));
    expect(
        json_post("/v1/search", r#"{"query": "tv", "filters": {"price_min": "low"}}"#),
        400,
        Some("/filters/price_min"),
    );
    expect(json_post("/v1/search", r#"{"query": "tv", "mode": "psychic"}"#), 400, Some("/mode"));
    expect(json_post("/v1/search", r#"{"qeury": "tv"}"#), 400, Some("/qeury"));
    expect(json_post("/v1/products:batch", r#"{"products": {"id": "a"}}"#), 400, Some("/products"));
}

#[test]
fn invalid_values_name_the_field() {
    expect(json_put("/v1/products/x1", r#"{"title": "a", "price": -1}"#), 400, Some("/price"));
    expect(json_put("/v1/products/x1", r#"{"title": "a", "currency": "DOLLARS"}"#), 400, Some("/currency"));
    expect(json_put("/v1/products/x1", r#"{"title": ""}"#), 400, Some("/title"));
    expect(json_put("/v1/products/x1", r#"{"id": "x2", "title": "a"}"#), 400, Some("/id"));
    expect(json_put("/v1/products/x1", r#"{"title": "a", "url": "javascript:alert(1)"}"#), 400, Some("/url"));
    expect(json_post("/v1/search", r#"{"query": "   "}"#), 400, Some("/query"));
    expect(json_post("/v1/search", r#"{"query": "tv", "limit": 100000}"#), 400, Some("/limit"));
    expect(
        json_post("/v1/search", r#"{"query": "tv", "filters": {"price_min": 10, "price_max": 5}}"#),
        400,
        Some("/filters/price_min"),
    );
    let long = "x".repeat(200);
    expect(client().get(shared().url(&format!("/v1/products/{long}{long}"))), 400, Some("/id"));
}

#[test]
fn over_long_query_is_refused() {
    let q = "headphones ".repeat(500);
    expect(json_post("/v1/search", &json!({"query": q}).to_string()), 400, Some("/query"));
}

#[test]
fn unknown_ids_are_404() {
    expect(client().get(shared().url("/v1/products/no-such-product")), 404, None);
    expect(client().delete(shared().url("/v1/products/no-such-product")), 404, None);
    expect(client().get(shared().url("/v1/products/no-such-product/similar")), 404, None);
}

#[test]
fn huge_bodies_are_413() {
    let big = format!(r#"{{"title": "{}"}}"#, "a".repeat(9 * 1024 * 1024));
    // The server answers before reading the whole upload and closes that connection; a client
    // of its own keeps the closed connection out of the pool the other tests share.
    let own = reqwest::blocking::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let req = own.put(shared().url("/v1/products/x1")).header("content-type", "application/json").body(big);
    expect(req, 413, None);
}

#[test]
fn invalid_utf8_is_refused() {
    let mut body = br#"{"title": "caf"#.to_vec();
    body.extend_from_slice(&[0xff, 0xfe]);
    body.extend_from_slice(br#""}"#);
    let req = client().put(shared().url("/v1/products/x1")).header("content-type", "application/json").body(body);
    expect(req, 400, Some(""));
    expect(client().get(shared().url("/v1/products/%FF%FE")), 400, Some("/id"));
}

#[test]
fn wrong_content_type_is_415() {
    let req = client().post(shared().url("/v1/search")).header("content-type", "text/plain").body(r#"{"query": "tv"}"#);
    expect(req, 415, None);
    expect(client().post(shared().url("/v1/search")).body(r#"{"query": "tv"}"#), 415, None);
}

#[test]
fn bad_query_parameters_name_the_parameter() {
    let s = shared();
    expect(client().get(s.url("/v1/products?limit=-1")), 400, Some("/limit"));
    expect(client().get(s.url("/v1/products?limit=0")), 400, Some("/limit"));
    expect(client().get(s.url("/v1/products?cursor=nonsense")), 400, Some("/cursor"));
    expect(client().get(s.url("/v1/products?in_stock=perhaps")), 400, Some("/in_stock"));
    expect(client().get(s.url("/v1/products?colour=red")), 400, Some("/colour"));
    expect(client().get(s.url("/v1/products/el-0001/similar?limit=abc")), 400, Some("/limit"));
    expect(client().get(s.url("/v1/products/el-0001/similar?price_min=9&price_max=1")), 400, Some("/price_min"));
}

#[test]
fn unknown_routes_and_methods() {
    expect(client().get(shared().url("/v1/nothing-here")), 404, None);
    expect(client().patch(shared().url("/v1/products/x1")), 405, None);
    expect(client().get(shared().url("/v1/search")), 405, None);
}

#[test]
fn batch_over_the_item_limit_is_refused() {
    let products: Vec<Value> = (0..1001).map(|i| json!({"id": format!("b{i}"), "title": "t"})).collect();
    expect(json_post("/v1/products:batch", &json!({"products": products}).to_string()), 400, Some("/products"));
}

/// A 500 shows the client its request id, never its cause (a server path, a store message, a
/// panic message): the cause is in the log under the same id. Every response names its id.
#[test]
fn a_500_names_its_request_id_and_nothing_internal() {
    let dir = crate::harness::temp_dir("internal-error");
    let s = crate::harness::Server::start(&dir, &[("AISLE_FAULT", "api.products.read")]);
    for (id, cause) in [("broken", "cannot read"), ("panic", "injected panic")] {
        let r = client()
            .get(s.url(&format!("/v1/products/{id}")))
            .header("x-request-id", format!("trace-{id}"))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 500);
        assert_eq!(r.headers()["x-request-id"], format!("trace-{id}").as_str());
        let text = r.text().unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["request_id"], format!("trace-{id}"), "{v}");
        assert_eq!(v["type"], "urn:aisle:problem:internal", "{v}");
        for secret in [dir.to_str().unwrap(), "products", "injected", cause] {
            assert!(!text.contains(secret), "the response shows '{secret}': {text}");
        }
        // The server's stderr is read by another thread: give the line a moment to arrive.
        let started = std::time::Instant::now();
        let logged = || s.logs().lines().any(|l| l.contains(&format!("trace-{id}")) && l.contains(cause));
        while !logged() {
            let logs = s.logs();
            assert!(started.elapsed().as_secs() < 10, "the log has no line with the request id and the cause:\n{logs}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    // Ids the client did not send, or sent unusable, are made up.
    for sent in [None, Some("bad id with spaces")] {
        let mut req = client().get(s.url("/healthz"));
        if let Some(v) = sent {
            req = req.header("x-request-id", v);
        }
        let r = req.send().unwrap();
        let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
        assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    }
    s.stop();
}
