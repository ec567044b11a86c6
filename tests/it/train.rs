//! Collaborative filtering in the server: a model trained on the demo catalog's events (by
//! `POST /v1/admin/train`) joins the fused query as the `collab` source and changes
//! recommendations, for a customer who arrived after training too (fold-in).

use serde_json::{Value, json};

use crate::harness::{Server, demo_copy, get, post, put};

const GROUP_A: &[&str] = &["el-0516", "el-0478", "el-0479", "el-0480", "el-0619", "el-0620"]; // TV, soundbars, consoles
const GROUP_B: &[&str] = &["el-0207", "el-0346", "el-0347", "el-0188", "el-0189", "el-0190"]; // laptop, monitors, tablets

fn consent(s: &Server, id: &str) {
    let (status, v) =
        put(&s.url(&format!("/v1/customers/{id}")), &json!({"consent": {"personalization": true, "analytics": true}}));
    assert!(status == 200 || status == 201, "{v}");
}

fn collab_only(s: &Server, customer: &str) -> Value {
    let (status, v) = post(
        &s.url("/v1/recommendations"),
        &json!({"customer_id": customer, "limit": 5, "mmr_lambda": 1.0,
                "weights": {"collab": 1.0, "content": 0, "session": 0, "co_purchase": 0, "trending": 0}}),
    );
    assert_eq!(status, 200, "{v}");
    v
}

#[test]
fn a_trained_model_joins_the_fused_query_and_changes_recommendations() {
    let dir = demo_copy("train");
    let s = Server::start(&dir, &[("AISLE_CHAT_MODEL", "")]);
    let mut events = vec![];
    for (g, group) in [GROUP_A, GROUP_B].iter().enumerate() {
        for c in 0..12 {
            let id = format!("cf-{g}-{c}");
            consent(&s, &id);
            // Each customer buys four of the group's six products.
            for k in 0..4 {
                let product = group[(c + k) % group.len()];
                events.push(json!({"id": format!("cf-{g}-{c}-{k}"), "customer_id": id, "product_id": product, "kind": "purchase"}));
            }
        }
    }
    let (status, v) = post(&s.url("/v1/events"), &json!({ "events": events }));
    assert_eq!(status, 200, "{v}");
    let before = get(&s.url("/v1/customers/cf-0-0/recommendations?limit=10")).1;
    assert!(!before["sources"].as_array().unwrap().contains(&json!("collab")), "no model yet: {before}");

    let (status, report) = post(&s.url("/v1/admin/train"), &json!({}));
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["customers"], 24, "{report}");
    assert_eq!(report["products"], 12, "{report}");
    let loss: Vec<f64> = report["loss"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    assert!(loss.last().unwrap() < &loss[0], "{loss:?}");

    // A customer who arrives after training and views the TV: folded in at request time.
    consent(&s, "cf-new");
    let (status, v) = post(
        &s.url("/v1/events"),
        &json!({"id": "cf-new-1", "customer_id": "cf-new", "product_id": "el-0516", "kind": "view"}),
    );
    assert_eq!(status, 200, "{v}");
    // Trained customers and the newcomer get collab recommendations of their group.
    for (customer, group, other) in
        [("cf-0-0", GROUP_A, GROUP_B), ("cf-1-3", GROUP_B, GROUP_A), ("cf-new", GROUP_A, GROUP_B)]
    {
        let v = collab_only(&s, customer);
        assert_eq!(v["sources"], json!(["collab"]), "{v}");
        let ids: Vec<&str> =
            v["items"].as_array().unwrap().iter().map(|i| i["product"]["id"].as_str().unwrap()).collect();
        // The group's products the customer has not bought come first (at least two remain).
        let top: Vec<&str> = ids.iter().take(2).copied().collect();
        assert!(top.iter().all(|id| group.contains(id)), "{customer}: {ids:?}");
        let first_other = ids.iter().position(|id| other.contains(id)).unwrap_or(ids.len());
        let last_own = ids.iter().rposition(|id| group.contains(id)).unwrap_or(0);
        assert!(last_own < first_other, "{customer}: {ids:?}");
    }
    let after = get(&s.url("/v1/customers/cf-0-0/recommendations?limit=10")).1;
    assert!(after["sources"].as_array().unwrap().contains(&json!("collab")), "{after}");
    assert!(
        after["items"].as_array().unwrap().iter().any(|i| i["sources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["source"] == "collab")),
        "{after}"
    );
    let ids = |v: &Value| -> Vec<String> {
        v["items"].as_array().unwrap().iter().map(|i| i["product"]["id"].as_str().unwrap().to_string()).collect()
    };
    assert_ne!(ids(&before), ids(&after), "training changed nothing");
    // The model survives a restart.
    assert!(s.stop().success());
    let s = Server::start(&dir, &[("AISLE_CHAT_MODEL", "")]);
    assert_eq!(collab_only(&s, "cf-new")["sources"], json!(["collab"]));
    // The shop's own events evaluate offline too (server stopped: one process per data dir).
    assert!(s.stop().success());
    let out_dir = dir.join("eval");
    let out = crate::harness::aisle_on(&dir)
        .args(["eval", "--dataset", "shop", "--split", "leave-last-1", "--quick", "--no-content", "--data-dir"])
        .arg(&dir)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&std::fs::read(out_dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["dataset"], "shop");
    assert_eq!(report["users"], 25, "{report}");
    assert!(report["rows"].as_array().unwrap().iter().any(|r| r["model"] == "aisle hybrid"), "{report}");
}

#[test]
fn aisle_bench_reports_figures_with_anchors_machine_and_commit() {
    let dir = crate::harness::temp_dir("bench");
    let json = dir.join("bench.json");
    let svg = dir.join("bench.svg");
    let out = crate::harness::aisle()
        .current_dir(crate::harness::root())
        .env("AISLE_CACHE", &dir)
        .args(["bench", "--quick", "--no-anchor", "embed", "train", "search"])
        .arg("--json")
        .arg(&json)
        .arg("--svg")
        .arg(&svg)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}\n{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let rows = report["rows"].as_array().unwrap();
    for bench in ["machine", "embed", "train", "search"] {
        assert!(rows.iter().any(|r| r["bench"] == bench), "no {bench} rows: {report}");
    }
    for r in rows {
        assert!(r["value"].as_f64().unwrap() >= 0.0, "{r}");
        if let Some(ratio) = r["ratio"].as_f64() {
            assert!(ratio > 0.0 && r["anchor"].is_string(), "{r}");
        }
    }
    // Embedding figures come with the compute bound; search with the engine's own time.
    assert!(rows.iter().any(|r| r["bench"] == "embed" && r["anchor"] == "compute bound"), "{report}");
    assert!(rows.iter().any(|r| r["bench"] == "search" && r["ratio"].is_number()), "{report}");
    assert_eq!(rows.iter().find(|r| r["metric"].as_str().unwrap().ends_with("errors")).unwrap()["value"], 0.0);
    let m = &report["machine"];
    assert!(!m["cpu"].as_str().unwrap().is_empty() && m["threads"].as_u64().unwrap() >= 1, "{m}");
    assert!(m["commit"].as_str().unwrap() != "unknown", "{m}");
    assert!(table.contains("f32 GEMM") && table.contains("ratio"), "{table}");
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
}
