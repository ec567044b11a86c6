//! `aisle store migrate`: the demo shop with customers, events and a trained model moves from
//! the embedded store onto a Qdrant server (surviving a crash mid-copy) and back into a fresh
//! data directory; search, recommendations, trending and bought-together answer the same
//! everywhere.

use std::path::Path;

use serde_json::{Value, json};

use crate::harness::{Server, aisle, demo_copy, get, on_server, post, put, temp_dir};
use crate::qdrant::{self, QdrantServer};

/// The answers compared across stores: each list as (score, id) pairs, ties put in id order
/// (an engine may list points that tie in any order).
fn answers(s: &Server) -> Vec<Vec<(String, String)>> {
    let search = |body: Value| post(&s.url("/v1/search"), &body).1;
    let responses = [
        search(json!({"query": "wireless headphones with noise cancelling", "limit": 10})),
        search(json!({"query": "usb c charger", "mode": "keyword", "limit": 10})),
        search(json!({"query": "a gift for someone who likes photography", "mode": "semantic", "limit": 10})),
        get(&s.url("/v1/customers/mig-0-0/recommendations?limit=10")).1,
        get(&s.url("/v1/customers/mig-1-2/recommendations?limit=10")).1,
        post(&s.url("/v1/recommendations"), &json!({"session": {"items": ["el-0001", "el-0002"]}, "limit": 10})).1,
        get(&s.url("/v1/trending?limit=10")).1,
        get(&s.url("/v1/products/el-0200/similar?mode=co_purchase&limit=10")).1,
        get(&s.url("/v1/products/el-0040/similar?limit=10")).1,
    ];
    responses
        .iter()
        .map(|v| {
            let items = v["items"].as_array().unwrap_or_else(|| panic!("no items in {v}"));
            assert!(!items.is_empty(), "an empty answer compares nothing: {v}");
            let mut list: Vec<(String, String)> = items
                .iter()
                .map(|i| {
                    let id = i["product"]["id"].as_str().or(i["id"].as_str()).unwrap().to_string();
                    (format!("{:.5}", i["score"].as_f64().unwrap_or(0.0)), id)
                })
                .collect();
            list.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            list
        })
        .collect()
}

/// Customers who buy within two groups of products, then a trained model.
fn shop_activity(s: &Server) {
    let groups = [["el-0200", "el-0201", "el-0202", "el-0203"], ["el-0040", "el-0041", "el-0042", "el-0043"]];
    let mut events = vec![];
    for (g, group) in groups.iter().enumerate() {
        for c in 0..8 {
            let id = format!("mig-{g}-{c}");
            let (status, v) = put(
                &s.url(&format!("/v1/customers/{id}")),
                &json!({"consent": {"personalization": true, "analytics": true}}),
            );
            assert!(status == 200 || status == 201, "{v}");
            for k in 0..3 {
                let kind = if k == 0 { "view" } else { "purchase" };
                let product = group[(c + k) % group.len()];
                // Distinct times: no two products tie in trend (an engine may order ties either way).
                let n = events.len() as i64;
                let at = (chrono::Utc::now() - chrono::Duration::minutes(7 * n + n * n % 13)).to_rfc3339();
                events.push(json!({"id": format!("mig-{g}-{c}-{k}"), "customer_id": id, "product_id": product, "kind": kind, "timestamp": at}));
            }
        }
    }
    let (status, v) = post(&s.url("/v1/events"), &json!({ "events": events }));
    assert_eq!(status, 200, "{v}");
    let (status, v) = post(&s.url("/v1/admin/train"), &json!({}));
    assert_eq!(status, 200, "{v}");
}

fn migrate(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = aisle()
        .args(["store", "migrate"])
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn the_shop_moves_onto_a_qdrant_server_and_back_with_the_same_answers() {
    if on_server() {
        return; // this test chooses its stores itself
    }
    let Some(q) = QdrantServer::start("migrate", &[], &[]) else {
        return qdrant::skip("the_shop_moves_onto_a_qdrant_server_and_back_with_the_same_answers");
    };
    let dir = demo_copy("migrate");
    let s = Server::start(&dir, &[("AISLE_CHAT_MODEL", "")]);
    shop_activity(&s);
    let before = answers(&s);
    assert!(s.stop().success());

    // A crash after the first page, then a run that resumes, then one that has nothing to do.
    let url = q.grpc_url.as_str();
    // (Pages of 10: the crash comes inside the first collection, customers.)
    let (ok, out) = migrate(&dir, &["--to", url, "--page", "10"], &[("AISLE_FAULT", "migrate-after-page")]);
    assert!(!ok, "the copy should have crashed: {out}");
    let (ok, out) = migrate(&dir, &["--to", url], &[]);
    assert!(ok, "{out}");
    assert!(out.contains("resuming an earlier run"), "{out}");
    assert!(out.contains("products: 643 points in the source, 643 in the target"), "{out}");
    let (ok, again) = migrate(&dir, &["--to", url], &[]);
    assert!(ok && again.contains("complete already"), "{again}");
    assert!(!again.contains(" copied,") && !again.contains(" copied)"), "a finished copy copies nothing: {again}");

    // The same data directory (secret, keys, trained model) on the server.
    let s = Server::start(&dir, &[("AISLE_CHAT_MODEL", ""), ("AISLE_STORE_QDRANT_URL", url)]);
    assert!(s.logs().contains("Qdrant server at"), "served from the server");
    assert_eq!(answers(&s), before, "the server answers as the embedded store did");
    assert!(s.stop().success());

    // Back into a fresh data directory with the same own files: a restore onto one box.
    let back = temp_dir("migrate-back");
    for file in ["secret", "collab.json"] {
        std::fs::copy(dir.join(file), back.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    let (ok, out) = migrate(&back, &["--from", url], &[]);
    assert!(ok, "{out}");
    let s = Server::start(&back, &[("AISLE_CHAT_MODEL", "")]);
    assert!(!s.logs().contains("Qdrant server at"), "served from the embedded store");
    assert_eq!(answers(&s), before, "the restored store answers as the original did");
    assert!(s.stop().success());
}
