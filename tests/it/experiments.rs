//! Experiments: shoppers split into variants by their pseudonymous key, the same variant after
//! a restart, each variant's settings in effect, the variant recorded with every `rec_id`, and
//! per-variant counts that add up to the totals in `GET /v1/stats/experiments/{name}`, and the
//! exposure of the same lists. (The same across replicas: `replicas.rs`.)

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::harness::{Server, demo_copy, get, post};

/// Two variants: the control, and one without the trending source and without rules.
pub const EXPERIMENTS: &str = r#"[{"name": "no-trending", "metric": "ctr", "variants": [
    {"name": "control"}, {"name": "quiet", "weights": {"trending": 0}, "rules": false}]}]"#;

fn recommend(s: &Server, who: Value) -> Value {
    let mut body = json!({"limit": 6});
    body.as_object_mut().unwrap().extend(who.as_object().unwrap().clone());
    let (status, v) = post(&s.url("/v1/recommendations"), &body);
    assert_eq!(status, 200, "{v}");
    v
}

fn variant(v: &Value) -> String {
    assert_eq!(v["experiments"][0]["experiment"], "no-trending", "{v}");
    v["experiments"][0]["variant"].as_str().unwrap().to_string()
}

#[test]
fn variants_are_stable_take_effect_and_add_up() {
    let dir = demo_copy("experiments");
    let env = [("AISLE_EXPERIMENTS", EXPERIMENTS), ("AISLE_CHAT_MODEL", "")];
    let s = Server::start(&dir, &env);
    // A pin every list would show, except under a variant without rules.
    let (status, v) = crate::harness::put(&s.url("/v1/rules/hero"), &json!({"action": "pin", "products": ["el-0001"]}));
    assert_eq!(status, 201, "{v}");
    let shoppers: Vec<Value> = (0..24)
        .map(|i| {
            if i % 3 == 0 {
                json!({"session": {"id": format!("visit-{i}"), "items": ["el-0121"]}})
            } else {
                json!({"customer_id": format!("exp-{i}"), "session": {"items": ["el-0121"]}})
            }
        })
        .collect();
    let first: Vec<(String, Value)> = shoppers
        .iter()
        .map(|w| {
            let v = recommend(&s, w.clone());
            (variant(&v), v)
        })
        .collect();
    let quiet = first.iter().filter(|(n, _)| n == "quiet").count();
    assert!((4..=20).contains(&quiet), "both variants get shoppers: {quiet} of 24 in 'quiet'");
    for (name, v) in &first {
        let sources: Vec<&str> = v["sources"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
        let pinned = v["items"][0]["product"]["id"] == "el-0001";
        match name.as_str() {
            "quiet" => assert!(!sources.contains(&"trending") && !pinned, "{v}"),
            _ => assert!(sources.contains(&"trending") && pinned, "{v}"),
        }
    }
    // Without a customer or a session id: in no experiment.
    assert_eq!(recommend(&s, json!({"session": {"items": ["el-0121"]}}))["experiments"], json!([]));

    // Restarted: every shopper keeps their variant.
    s.stop();
    let s = Server::start(&dir, &env);
    let mut served: Vec<(String, Value)> = Vec::new();
    for (w, (before, _)) in shoppers.iter().zip(&first) {
        let v = recommend(&s, w.clone());
        assert_eq!(&variant(&v), before, "{w}");
        served.push((before.clone(), v));
    }

    // Clicks on the first item of every list; in the control's lists, a click and a purchase of
    // the second too.
    let mut events = Vec::new();
    for (i, (name, v)) in served.iter().enumerate() {
        let rec = v["rec_id"].as_str().unwrap();
        let item = |k: usize| v["items"][k]["product"]["id"].as_str().unwrap().to_string();
        events.push(json!({"session_id": format!("e-{i}"), "product_id": item(0), "kind": "click", "rec_id": rec}));
        if name == "control" {
            events.push(json!({"session_id": format!("e-{i}"), "product_id": item(1), "kind": "click", "rec_id": rec}));
            events.push(json!({"session_id": format!("e-{i}"), "product_id": item(1), "kind": "purchase", "value": 2, "rec_id": rec}));
        }
    }
    let (status, v) = post(&s.url("/v1/events"), &json!({ "events": events }));
    assert_eq!((status, v["accepted"].as_u64()), (200, Some(events.len() as u64)), "{v}");

    let (status, report) = get(&s.url("/v1/stats/experiments/no-trending"));
    assert_eq!(status, 200, "{report}");
    let (_, all) = get(&s.url("/v1/stats/recommendations"));
    let by_variant: BTreeMap<String, Value> = report["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["variant"].as_str().unwrap().to_string(), v["rates"].clone()))
        .collect();
    for counter in ["impressions", "clicks", "carts", "purchases"] {
        let sum: u64 = by_variant.values().map(|r| r[counter].as_u64().unwrap()).sum();
        // Every list but the one outside the experiment was in it.
        let outside = if counter == "impressions" { 6 } else { 0 };
        assert_eq!(sum, report["total"][counter].as_u64().unwrap(), "{counter}: {report}");
        assert_eq!(sum + outside, all["total"][counter].as_u64().unwrap(), "{counter}: {all}");
    }
    let quiet_lists = 2 * quiet as u64;
    assert_eq!(by_variant["quiet"]["impressions"], json!(quiet_lists * 6));
    assert_eq!(by_variant["quiet"]["clicks"], json!(quiet as u64));
    assert_eq!(by_variant["control"]["clicks"], json!(2 * (24 - quiet as u64)));
    assert_eq!(by_variant["control"]["purchases"], json!(24 - quiet as u64));
    assert!(by_variant["control"]["revenue"].as_f64().unwrap() > 0.0, "price x quantity: {report}");
    assert_eq!(by_variant["quiet"]["revenue"], json!(0.0));
    let interval = &report["variants"][0]["ctr_interval"];
    let ctr = by_variant["control"]["ctr"].as_f64().unwrap();
    assert!(interval[0].as_f64().unwrap() <= ctr && ctr <= interval[1].as_f64().unwrap(), "{report}");
    // Half the control's CTR: worse, or not yet significant with a count of what is missing.
    let verdict = report["verdict"].as_str().unwrap();
    let cmp = &report["comparisons"][0];
    assert!(cmp["difference"].as_f64().unwrap() < 0.0 && cmp["p_value"].as_f64().is_some(), "{report}");
    assert!(
        verdict.starts_with("quiet worse than control on CTR, p = ")
            || (verdict.contains("not yet significant") && cmp["more_impressions_needed"].as_u64().unwrap() > 0),
        "{verdict}"
    );
    assert_eq!(get(&s.url("/v1/stats/experiments/nope")).0, 404);

    // Exposure of the same lists: per variant as counted above, per source adding up.
    let (status, exposure) = get(&s.url("/v1/stats/exposure"));
    assert_eq!(status, 200, "{exposure}");
    assert_eq!(exposure["total"]["impressions"], all["total"]["impressions"], "{exposure}");
    assert_eq!(exposure["lists"], json!(24 * 2 + 1));
    for (name, rates) in &by_variant {
        assert_eq!(exposure["per_variant"][format!("no-trending/{name}")]["impressions"], rates["impressions"]);
    }
    let per_source: u64 =
        exposure["per_source"].as_object().unwrap().values().map(|v| v["impressions"].as_u64().unwrap()).sum();
    assert_eq!(per_source, exposure["total"]["impressions"].as_u64().unwrap());
    let deciles: f64 =
        exposure["deciles"].as_array().unwrap().iter().map(|d| d["impression_share"].as_f64().unwrap()).sum();
    assert!((deciles - 1.0).abs() < 1e-9, "{exposure}");
    let coverage = exposure["total"]["coverage"].as_f64().unwrap();
    assert!(coverage > 0.0 && coverage < 0.5, "a few lists cover a little of the catalog: {coverage}");
    let pinned = exposure["categories"]["top"].as_array().unwrap().iter().find(|g| g["name"] == "Batteries").unwrap();
    assert!(pinned["ratio"].as_f64().unwrap() > 1.0, "the pinned battery's category is over-exposed: {pinned}");
}
