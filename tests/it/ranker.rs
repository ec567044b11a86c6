//! The learned re-ranker end to end, on the simulated shop (`sim`): lists served in the fused
//! order log their features; `POST /v1/admin/train` trains LambdaMART on those lists and the
//! simulated shoppers' clicks; the model is served at once and after a restart; a simulated
//! A/B test (fused order against the learned one) is reported significant by
//! `GET /v1/stats/experiments/{name}`. A corrupt or incompatible model file is refused and the
//! fused order is served, never an error.

use std::path::Path;

use serde_json::{Value, json};

use crate::harness::{Server, demo_copy, demo_products, get, post};
use crate::sim::{Outcome, Rng, Shop};

const AB: &str = r#"[{"name": "ranker", "metric": "ctr", "variants": [
    {"name": "fused", "rerank": false}, {"name": "learned", "rerank": true}]}]"#;

fn recommend(s: &Server, body: Value) -> Value {
    let (status, v) = post(&s.url("/v1/recommendations"), &body);
    assert_eq!(status, 200, "{v}");
    v
}

fn add(a: &mut Outcome, b: Outcome) {
    a.lists += b.lists;
    a.impressions += b.impressions;
    a.clicks += b.clicks;
    a.purchases += b.purchases;
}

/// Rewrite the model file `ranker-1.json` with `change` applied to its JSON.
fn tamper(dir: &Path, original: &str, change: impl FnOnce(&mut Value)) {
    let mut file: Value = serde_json::from_str(original).unwrap();
    change(&mut file);
    std::fs::write(dir.join("models/ranker/ranker-1.json"), file.to_string()).unwrap();
}

/// After a restart on a tampered model: lists still come, in the fused order, with a warning.
fn falls_back(dir: &Path, env: &[(&str, &str)], why: &str) {
    let s = Server::start(dir, env);
    let v = recommend(&s, json!({"customer_id": "log-0", "limit": 10}));
    assert!(v.get("ranker_version").is_none(), "{why}: {v}");
    assert!(v["items"].as_array().unwrap().iter().all(|i| i.get("ranked_by").is_none()), "{why}: {v}");
    assert_eq!(v["items"].as_array().unwrap().len(), 10, "{why}: {v}");
    let logs = s.logs();
    assert!(logs.contains("the learned re-ranker is not used"), "{why}: {logs}");
    s.stop();
}

#[test]
fn the_learned_ranker_beats_the_fused_order_in_a_simulated_ab_test_and_falls_back_safely() {
    let dir = demo_copy("ranker");
    let mut catalog: Vec<Value> = demo_products().values().cloned().collect();
    catalog.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    let shop = Shop::new(&catalog);
    let mut rng = Rng::new(19);
    let env = [("AISLE_CHAT_MODEL", "")];
    let s = Server::start(&dir, &env);

    // Logging: no model yet, so the fused order; every list logs its items' features.
    let logging = shop.shoppers("log", 40, &mut rng);
    shop.arrive(&s, &logging, 6, &mut rng);
    let v = recommend(&s, json!({"customer_id": "log-0"}));
    assert!(v.get("ranker_version").is_none(), "no model yet: {v}");
    let mut logged = Outcome::default();
    for _ in 0..6 {
        add(&mut logged, shop.round(&s, &logging, &json!({}), &mut rng));
    }
    assert!(logged.clicks > 50, "the shoppers click: {logged:?}");

    // Training on those lists and clicks: a model better than the order shown on the latest lists.
    let (status, report) = post(&s.url("/v1/admin/train"), &json!({}));
    assert_eq!(status, 200, "{report}");
    let r = &report["ranker"];
    eprintln!("logged {logged:?}; ranker: {r}");
    assert_eq!(r["trained"], true, "{report}");
    assert_eq!(r["version"], 1, "{report}");
    assert!(r["lists"].as_u64().unwrap() >= logged.lists as u64, "{report}");
    // Both reported; not compared here: the held-out clicks favour the order shown (shoppers
    // click higher positions more), so the A/B test below is the judge.
    assert!(r["held_out_ndcg_10"].as_f64().is_some() && r["shown_order_ndcg_10"].as_f64().is_some(), "{report}");

    // Served at once, each item with the features that moved it.
    let v = recommend(&s, json!({"customer_id": "log-1", "limit": 10}));
    assert_eq!(v["ranker_version"], 1, "{v}");
    let first = &v["items"][0];
    assert!(!first["ranked_by"].as_array().unwrap().is_empty(), "{v}");
    assert!(first["ranked_by"][0]["feature"].as_str().is_some_and(|f| f != "position"), "{v}");
    assert!(
        v["items"].as_array().unwrap().iter().any(|i| i["explanation"].as_str().unwrap().contains("ranked up for")),
        "{v}"
    );
    // Turned off per request: the fused order.
    let off = recommend(&s, json!({"customer_id": "log-1", "limit": 10, "rerank": false}));
    assert!(off.get("ranker_version").is_none(), "{off}");
    s.stop();

    // The A/B test, after a restart (the model is loaded from the data directory): new
    // shoppers, split by their key between the fused order and the learned one.
    let ab_env = [("AISLE_CHAT_MODEL", ""), ("AISLE_EXPERIMENTS", AB)];
    let s = Server::start(&dir, &ab_env);
    let ab = shop.shoppers("ab", 80, &mut rng);
    shop.arrive(&s, &ab, 6, &mut rng);
    for _ in 0..6 {
        shop.round(&s, &ab, &json!({}), &mut rng);
    }
    let (status, report) = get(&s.url("/v1/stats/experiments/ranker"));
    assert_eq!(status, 200, "{report}");
    let verdict = report["verdict"].as_str().unwrap();
    eprintln!("A/B: {verdict}; {}", report["variants"]);
    let cmp = &report["comparisons"][0];
    assert!(verdict.starts_with("learned better than fused on CTR, p = "), "{report}");
    assert!(cmp["p_value"].as_f64().unwrap() < 0.05, "{report}");
    s.stop();

    // A corrupt model (its checksum no longer matches), then one trained on other features:
    // refused at start with a warning, and the fused order served.
    let original = std::fs::read_to_string(dir.join("models/ranker/ranker-1.json")).unwrap();
    tamper(&dir, &original, |f| f["model"] = json!(f["model"].as_str().unwrap().replace("Tree=0", "Tree=9")));
    falls_back(&dir, &env, "corrupt");
    tamper(&dir, &original, |f| f["features"][5] = json!("a_feature_this_build_lacks"));
    falls_back(&dir, &env, "incompatible");
    std::fs::write(dir.join("models/ranker/ranker-1.json"), "{ not json").unwrap();
    falls_back(&dir, &env, "unreadable");
}
