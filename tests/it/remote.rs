//! aisle on a Qdrant server that misbehaves: a server that goes away gives 503s with
//! `Retry-After` (never a 500, never a hang), `/readyz` says so, and aisle reconnects by itself;
//! collections that aisle did not make are refused at start with what to do.
//!
//! Each test starts its own Qdrant server (it kills it); without the binary they are skipped.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Server, aisle, client, post, temp_dir};
use crate::qdrant::{self, QdrantServer};

#[test]
fn a_qdrant_server_that_goes_away_gives_503s_and_aisle_recovers_by_itself() {
    let Some(mut q) = QdrantServer::start("outage", &[], &[]) else {
        return qdrant::skip("a_qdrant_server_that_goes_away_gives_503s_and_aisle_recovers_by_itself");
    };
    let dir = temp_dir("outage");
    let env = [
        ("AISLE_STORE_QDRANT_URL", q.grpc_url.as_str()),
        ("AISLE_STORE_TIMEOUT_SECS", "2"),
        ("AISLE_STORE_CONNECT_TIMEOUT_SECS", "1"),
        ("AISLE_CHAT_MODEL", ""),
    ];
    let s = Server::start(&dir, &env);
    // Titles of different lengths: no two products tie in keyword rank, so fused scores are
    // the same whatever order the engine lists ties in.
    let products: Vec<_> = (0..12)
        .map(|i| json!({"id": format!("o-{i}"), "title": format!("Desk lamp in{}", " walnut".repeat(i + 1)), "categories": ["Lamps"], "price": 30 + i}))
        .collect();
    let (status, v) = post(&s.url("/v1/products:batch"), &json!({ "products": products }));
    assert_eq!((status, v["accepted"].as_u64()), (200, Some(12)), "{v}");
    let search = || {
        let started = Instant::now();
        let r = client().post(s.url("/v1/search")).json(&json!({"query": "desk lamp", "limit": 20})).send().unwrap();
        (
            r.status().as_u16(),
            r.headers().get("retry-after").cloned(),
            r.json::<serde_json::Value>().unwrap(),
            started.elapsed(),
        )
    };
    let (status, _, before, _) = search();
    assert_eq!(status, 200, "{before}");

    q.kill();
    for _ in 0..3 {
        let (status, retry_after, body, took) = search();
        assert_eq!(status, 503, "{body}");
        assert!(retry_after.is_some(), "a 503 says when to retry");
        assert!(body["detail"].as_str().unwrap().contains("Qdrant"), "{body}");
        assert!(took < Duration::from_secs(20), "the request waited {took:?}, past the configured timeout");
    }
    let ready = client().get(s.url("/readyz")).send().unwrap();
    assert_eq!(ready.status().as_u16(), 503, "not ready without the store");
    let (status, _, body, _) = search();
    assert_ne!(status, 500, "{body}");

    // The same server comes back on the same ports: aisle answers again without a restart.
    q.spawn();
    let started = Instant::now();
    loop {
        let (status, _, after, _) = search();
        if status == 200 {
            // The same products with the same scores (points that tie may swap places).
            let scores = |v: &serde_json::Value| {
                let mut s: Vec<(String, String)> = v["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| {
                        (
                            h["product"]["id"].as_str().unwrap().to_string(),
                            format!("{:.6}", h["score"].as_f64().unwrap()),
                        )
                    })
                    .collect();
                s.sort();
                s
            };
            assert_eq!(scores(&after), scores(&before), "the same answers as before the outage");
            assert_eq!(scores(&after).len(), 12);
            break;
        }
        assert_eq!(status, 503, "{after}");
        assert!(started.elapsed() < Duration::from_secs(60), "aisle did not reconnect");
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(client().get(s.url("/readyz")).send().unwrap().status().as_u16(), 200);
    assert!(s.stop().success());
}

#[test]
fn collections_aisle_did_not_make_are_refused_with_what_to_do() {
    let Some(q) = QdrantServer::start("foreign", &[], &[]) else {
        return qdrant::skip("collections_aisle_did_not_make_are_refused_with_what_to_do");
    };
    let rest = reqwest::blocking::Client::new();
    // Another program's collection where aisle's products would be; and one of aisle's with a
    // vector size of another embedding model.
    let r = rest
        .put(format!("{}/collections/other_products", q.http_url))
        .json(&json!({"vectors": {"text": {"size": 8, "distance": "Cosine"}}}))
        .send()
        .unwrap();
    assert!(r.status().is_success());
    let r = rest
        .put(format!("{}/collections/model_products", q.http_url))
        .json(&json!({
            "vectors": {"text": {"size": 768, "distance": "Cosine"}},
            "metadata": {"aisle_store_layout": 1}
        }))
        .send()
        .unwrap();
    assert!(r.status().is_success());
    for (prefix, why) in [("other_", "no aisle store layout"), ("model_", "dimension 768")] {
        let dir = temp_dir("foreign");
        let out = aisle()
            .args(["import", "products"])
            .arg(crate::harness::demo_catalog())
            .arg("--data-dir")
            .arg(&dir)
            .arg("--models-dir")
            .arg(crate::harness::models_dir())
            .env("AISLE_STORE_QDRANT_URL", &q.grpc_url)
            .env("AISLE_STORE_COLLECTION_PREFIX", prefix)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(stderr.contains(why), "{stderr}");
        assert!(stderr.contains("Delete it") && stderr.contains("collection_prefix"), "says what to do: {stderr}");
    }
    // Nothing was written into either.
    for name in ["other_products", "model_products"] {
        let v: serde_json::Value =
            rest.get(format!("{}/collections/{name}", q.http_url)).send().unwrap().json().unwrap();
        assert_eq!(v["result"]["points_count"], 0, "{v}");
    }
}
