//! Acknowledged writes survive SIGKILL; a second process cannot open the same data directory;
//! SIGTERM shuts down cleanly.

use serde_json::json;

use crate::harness::{Server, aisle, get, models_dir, post, put, temp_dir};

#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = temp_dir("durability");
    let server = Server::start(&dir, &[]);
    let (status, _) = put(
        &server.url("/v1/products/d-1"),
        &json!({"title": "Durable Drill", "price": 89.0, "categories": ["Tools"]}),
    );
    assert_eq!(status, 201);
    let products: Vec<_> = (0..50)
        .map(|i| json!({"id": format!("d-batch-{i}"), "title": format!("Batch item {i}"), "price": i}))
        .collect();
    let (status, body) = post(&server.url("/v1/products:batch"), &json!({"products": products}));
    assert_eq!((status, body["accepted"].as_u64()), (200, Some(50)));
    let r = crate::harness::client().delete(server.url("/v1/products/d-batch-7")).send().unwrap();
    assert_eq!(r.status(), 204);
    // Killed right after the acknowledgements: no graceful shutdown, no final flush.
    server.kill();

    let server = Server::start(&dir, &[]);
    let (status, p) = get(&server.url("/v1/products/d-1"));
    assert_eq!(status, 200);
    assert_eq!(p["title"], "Durable Drill");
    for i in 0..50 {
        let expected = if i == 7 { 404 } else { 200 };
        assert_eq!(get(&server.url(&format!("/v1/products/d-batch-{i}"))).0, expected, "d-batch-{i}");
    }
    let (status, body) = post(&server.url("/v1/search"), &json!({"query": "drill", "limit": 1}));
    assert_eq!(status, 200);
    assert_eq!(body["items"][0]["product"]["id"], "d-1", "vectors survived too: {body}");

    // Points written before the restart must still take updates (the store keeps its write
    // numbering across restarts; a restarted numbering turns such updates into silent no-ops).
    let (status, _) = put(
        &server.url("/v1/products/d-1"),
        &json!({"title": "Durable Drill Pro", "price": 99.0, "categories": ["Tools"]}),
    );
    assert_eq!(status, 200);
    assert_eq!(get(&server.url("/v1/products/d-1")).1["title"], "Durable Drill Pro");
    let (status, body) = post(
        &server.url("/v1/events"),
        &json!({"events": [
        {"session_id": "s", "product_id": "d-batch-3", "kind": "purchase"},
        {"session_id": "s", "product_id": "d-batch-4", "kind": "purchase"}]}),
    );
    assert_eq!((status, body["accepted"].as_u64()), (200, Some(2)), "{body}");
    let (_, body) = get(&server.url("/v1/products/d-batch-3/similar?mode=co_purchase"));
    assert_eq!(body["items"][0]["product"]["id"], "d-batch-4", "co-purchases of old products are recorded: {body}");
    let (_, body) = get(&server.url("/v1/trending?limit=2"));
    let trending: Vec<&str> =
        body["items"].as_array().unwrap().iter().map(|i| i["product"]["id"].as_str().unwrap()).collect();
    assert!(trending.contains(&"d-batch-3") && trending.contains(&"d-batch-4"), "{body}");
    server.kill();

    let server = Server::start(&dir, &[]);
    assert_eq!(get(&server.url("/v1/products/d-1")).1["title"], "Durable Drill Pro");
    assert_eq!(
        get(&server.url("/v1/products/d-batch-3/similar?mode=co_purchase")).1["items"][0]["product"]["id"],
        "d-batch-4"
    );
    let status = server.stop();
    assert!(status.success(), "graceful stop: {status}");
}

#[test]
fn a_second_process_cannot_open_a_data_directory_in_use() {
    let dir = temp_dir("locked");
    let server = Server::start(&dir, &[]);
    let out = aisle()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .arg("--models-dir")
        .arg(models_dir())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("in use by another aisle process"), "{stderr}");
    assert_eq!(get(&server.url("/healthz")).0, 200, "the first server is unharmed");
    server.stop();
}
