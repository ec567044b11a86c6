//! Merchandising rules over real recommendation lists: a pinned item is first, a hidden item
//! never appears (in any list, whatever the request asks), a brand cap holds with MMR on, a
//! boost brings a category in, a bury sends one to the end, a rule outside its window does
//! nothing, and bad rules are refused naming the field. One server of its own: rules apply to
//! every list it serves.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::harness::{Server, call, demo_copy, demo_products, get, post, put};

/// A session-based list (MMR on unless `lambda` says otherwise).
fn recs(s: &Server, session: &[&str], limit: usize, lambda: f64) -> Vec<Value> {
    let body = json!({"session": {"items": session}, "limit": limit, "mmr_lambda": lambda});
    let (status, v) = post(&s.url("/v1/recommendations"), &body);
    assert_eq!(status, 200, "{v}");
    v["items"].as_array().unwrap().clone()
}

fn ids(items: &[Value]) -> Vec<String> {
    items.iter().map(|i| i["product"]["id"].as_str().unwrap().to_string()).collect()
}

fn field(items: &[Value], f: &str) -> Vec<String> {
    items.iter().map(|i| i["product"][f].as_str().unwrap_or_default().to_string()).collect()
}

fn categories(item: &Value) -> Vec<String> {
    item["product"]["categories"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect()
}

fn rule(s: &Server, id: &str, body: Value) {
    let (status, v) = put(&s.url(&format!("/v1/rules/{id}")), &body);
    assert_eq!(status, 201, "{v}");
}

fn unrule(s: &Server, id: &str) {
    let (status, _, v) = call("DELETE", &s.url(&format!("/v1/rules/{id}")), None, None);
    assert_eq!(status, 204, "{v}");
}

#[test]
fn merchandising_rules_pin_hide_cap_boost_and_bury() {
    let dir = demo_copy("rules");
    let s = &Server::start(&dir, &[]);
    // Every product viewed once, so that trending lists the whole catalog.
    let mut all: Vec<&String> = demo_products().keys().collect();
    all.sort();
    let views: Vec<Value> = all
        .iter()
        .enumerate()
        .map(|(i, id)| json!({"session_id": format!("r-{}", i % 50), "product_id": id, "kind": "view"}))
        .collect();
    let (status, v) = post(&s.url("/v1/events"), &json!({ "events": views }));
    assert_eq!((status, v["rejected"].as_u64()), (200, Some(0)), "{v}");
    let session = ["el-0121", "el-0118"];
    let base = recs(s, &session, 12, 0.7);
    let base_ids = ids(&base);
    let products = demo_products();
    let in_stock = |id: &str| products[id]["in_stock"].as_bool().unwrap_or(false);

    // Pin: a product the list did not hold is first, then two more from position 3.
    let far: Vec<String> = {
        let mut v: Vec<&String> = products
            .keys()
            .filter(|id| in_stock(id) && !base_ids.contains(id) && !session.contains(&id.as_str()))
            .collect();
        v.sort();
        v.into_iter().take(3).cloned().collect()
    };
    rule(s, "pin-first", json!({"action": "pin", "products": [far[0]]}));
    rule(s, "pin-third", json!({"action": "pin", "products": [far[1], far[2]], "position": 3}));
    let pinned = recs(s, &session, 12, 0.7);
    assert_eq!(pinned.len(), 12);
    let got = ids(&pinned);
    assert_eq!((&got[0], &got[2], &got[3]), (&far[0], &far[1], &far[2]), "{got:?}");
    assert!(pinned[0]["explanation"].as_str().unwrap().starts_with("Pinned by rule pin-first"), "{}", pinned[0]);
    assert_eq!(pinned[0]["rules"], json!([{"rule": "pin-first", "action": "pin"}]));
    // The rest keep their order.
    let rest: Vec<&String> = got.iter().filter(|id| !far.contains(id)).collect();
    assert_eq!(rest, base_ids.iter().take(9).collect::<Vec<_>>());

    // Hide the pinned product's brand and the list's top category: hidden wins over the pin,
    // and nothing hidden comes back, from any list, whatever the request asks for.
    let hidden_brand = products[&far[0]]["brand"].as_str().unwrap().to_string();
    let hidden_cat = categories(&base[0])[0].clone();
    rule(s, "hide", json!({"action": "hide", "brands": [hidden_brand.to_uppercase()], "categories": [hidden_cat]}));
    let shown = |items: &[Value]| -> Vec<String> {
        items
            .iter()
            .filter(|i| i["product"]["brand"].as_str() == Some(&hidden_brand) || categories(i).contains(&hidden_cat))
            .map(|i| i["product"]["id"].as_str().unwrap().to_string())
            .collect()
    };
    let after = recs(s, &session, 40, 0.5);
    assert!(!ids(&after).contains(&far[0]), "a hidden product is not pinned");
    assert_eq!(shown(&after), Vec::<String>::new());
    let asked = json!({"session": {"items": session}, "limit": 10, "filters": {"categories": [hidden_cat]}});
    let (status, v) = post(&s.url("/v1/recommendations"), &asked);
    assert_eq!((status, v["items"].clone()), (200, json!([])), "asking for the hidden category finds nothing");
    let (_, trending) = get(&s.url("/v1/trending?limit=100"));
    let trending: Vec<Value> =
        trending["items"].as_array().unwrap().iter().map(|i| json!({"product": i["product"]})).collect();
    assert!(
        trending.len() > 50 && shown(&trending).is_empty(),
        "trending leaves them out too: {} {:?}",
        trending.len(),
        shown(&trending)
    );
    for id in ["pin-first", "pin-third", "hide"] {
        unrule(s, id);
    }
    assert_eq!(ids(&recs(s, &session, 12, 0.7)), base_ids, "deleted rules are gone");

    // A brand cap holds with MMR on (the list without it repeats brands).
    let count = |items: &[Value], f: &str| {
        let mut c: HashMap<String, usize> = HashMap::new();
        for v in field(items, f).into_iter().filter(|v| !v.is_empty()) {
            *c.entry(v).or_default() += 1;
        }
        c.into_values().max().unwrap_or(0)
    };
    let wide = recs(s, &session, 30, 0.5);
    assert!(count(&wide, "brand") > 1, "the uncapped list repeats a brand");
    rule(s, "one-per-brand", json!({"action": "cap", "per": "brand", "max": 1}));
    let capped = recs(s, &session, 30, 0.5);
    assert_eq!((capped.len(), count(&capped, "brand")), (30, 1), "{:?}", field(&capped, "brand"));
    unrule(s, "one-per-brand");

    // Boost a category the list did not hold; bury the list's top category.
    let base_cats: Vec<String> = base.iter().flat_map(categories).collect();
    let mut in_stock_per_cat: HashMap<String, usize> = HashMap::new();
    for p in products.values().filter(|p| p["in_stock"].as_bool().unwrap_or(false)) {
        for c in p["categories"].as_array().unwrap() {
            *in_stock_per_cat.entry(c.as_str().unwrap().to_string()).or_default() += 1;
        }
    }
    let mut others: Vec<String> =
        in_stock_per_cat.into_iter().filter(|(c, n)| *n >= 3 && !base_cats.contains(c)).map(|(c, _)| c).collect();
    others.sort();
    let boosted_cat = others[others.len() / 2].clone();
    rule(s, "spring-sale", json!({"action": "boost", "categories": [boosted_cat], "weight": 3}));
    let buried_cat = categories(&base[0])[0].clone();
    rule(s, "less-top", json!({"action": "bury", "categories": [buried_cat]}));
    let steered = recs(s, &session, 12, 0.7);
    let boosted: Vec<&Value> = steered.iter().filter(|i| categories(i).contains(&boosted_cat)).collect();
    assert!(!boosted.is_empty(), "the boosted category {boosted_cat} is in the list: {:?}", ids(&steered));
    for i in &boosted {
        assert!(i["explanation"].as_str().unwrap().contains("boosted by rule spring-sale"), "{i}");
    }
    let is_buried: Vec<bool> = steered.iter().map(|i| categories(i).contains(&buried_cat)).collect();
    let first_buried = is_buried.iter().position(|b| *b).unwrap_or(is_buried.len());
    assert!(is_buried[first_buried..].iter().all(|b| *b), "buried items come last: {is_buried:?}");
    if first_buried < steered.len() {
        assert!(steered[first_buried]["explanation"].as_str().unwrap().contains("lowered by rule less-top"));
    }
    assert!(!is_buried[0], "the list's top category was first; buried, it is not");

    // A rule whose window has not begun does nothing, and says so.
    let later = (chrono::Utc::now() + chrono::Duration::days(3)).to_rfc3339();
    rule(s, "later", json!({"action": "hide", "categories": [boosted_cat], "starts_at": later}));
    assert!(recs(s, &session, 12, 0.7).iter().any(|i| categories(i).contains(&boosted_cat)));
    let (_, list) = get(&s.url("/v1/rules"));
    let state: Vec<(String, bool)> = list["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_str().unwrap().to_string(), r["in_effect"].as_bool().unwrap()))
        .collect();
    assert_eq!(state, [("later".into(), false), ("less-top".into(), true), ("spring-sale".into(), true)]);

    // Bad rules name the field; unknown rules are 404; writes are audited.
    let (status, v) = put(&s.url("/v1/rules/bad"), &json!({"action": "cap", "per": "brand", "max": 0}));
    assert_eq!((status, v["errors"][0]["pointer"].as_str()), (400, Some("/max")), "{v}");
    let (status, v) = put(&s.url("/v1/rules/bad"), &json!({"action": "pin", "products": ["x"], "colour": 1}));
    assert_eq!(status, 400, "{v}");
    assert_eq!(get(&s.url("/v1/rules/bad")).0, 404);
    assert_eq!(call("DELETE", &s.url("/v1/rules/bad"), None, None).0, 404);
    let audit = std::fs::read_to_string(dir.join("audit.log")).unwrap();
    assert!(audit.contains("rule:spring-sale") && audit.contains("rule:one-per-brand"), "{audit}");
}
