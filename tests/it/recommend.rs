//! Recommendations on the demo catalog with scripted customers, business filters that never
//! leak, diversity, explanations, cold start, co-purchase, trending, consent and statistics.

use serde_json::{Value, json};

use crate::harness::{Server, client, demo_products, get, post, put, shared, temp_dir};

fn customer(s: &Server, id: &str, personalization: bool, analytics: bool) {
    let (status, v) = put(
        &s.url(&format!("/v1/customers/{id}")),
        &json!({"consent": {"personalization": personalization, "analytics": analytics}}),
    );
    assert!(status == 200 || status == 201, "{v}");
}

fn events(s: &Server, events: Value) -> Value {
    let (status, v) = post(&s.url("/v1/events"), &json!({ "events": events }));
    assert_eq!(status, 200, "{v}");
    v
}

fn recs(s: &Server, path_and_query: &str) -> Value {
    let (status, v) = get(&s.url(path_and_query));
    assert_eq!(status, 200, "{v}");
    v
}

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().unwrap().clone()
}

fn product(v: &Value) -> &Value {
    &v["product"]
}

/// The first category: from the demo file for demo products, else from the shared server
/// (tests add their own products to it).
fn category_of(id: &str) -> String {
    match demo_products().get(id) {
        Some(p) => p["categories"][0].as_str().unwrap().to_string(),
        None => get(&shared().url(&format!("/v1/products/{id}"))).1["categories"][0].as_str().unwrap_or("").to_string(),
    }
}

const HEADPHONES: &str = "Headphones & Earbuds";

#[test]
fn a_customer_who_views_headphones_gets_headphones_first() {
    let s = shared();
    customer(s, "rec-alice", true, true);
    events(
        s,
        json!([
            {"id": "rec-alice-1", "customer_id": "rec-alice", "product_id": "el-0121", "kind": "view"},
            {"id": "rec-alice-2", "customer_id": "rec-alice", "product_id": "el-0117", "kind": "view"},
        ]),
    );
    let v = recs(s, "/v1/customers/rec-alice/recommendations?limit=8");
    assert_eq!(v["personalized"], true);
    let got = items(&v);
    assert_eq!(got.len(), 8);
    let cats: Vec<String> = got.iter().map(|i| category_of(product(i)["id"].as_str().unwrap())).collect();
    assert!(cats[..3].iter().all(|c| c == HEADPHONES), "first three: {cats:?}");
    // What was just viewed is not recommended back.
    assert!(got.iter().all(|i| !["el-0121", "el-0117"].contains(&product(i)["id"].as_str().unwrap())));
    // The live profile holds the history.
    let (_, profile) = get(&s.url("/v1/customers/rec-alice"));
    assert_eq!(profile["history"].as_array().unwrap().len(), 2);
    assert_eq!(profile["has_taste"], true);
}

#[test]
fn a_bought_item_disappears() {
    let s = shared();
    customer(s, "rec-bob", true, true);
    events(s, json!([{"id": "rec-bob-1", "customer_id": "rec-bob", "product_id": "el-0119", "kind": "view"}]));
    // el-0123 (Skullcandy) is recommended before the purchase...
    let before: Vec<String> = items(&recs(s, "/v1/customers/rec-bob/recommendations?limit=20"))
        .iter()
        .map(|i| product(i)["id"].as_str().unwrap().to_string())
        .collect();
    assert!(before.contains(&"el-0123".to_string()), "{before:?}");
    events(s, json!([{"id": "rec-bob-2", "customer_id": "rec-bob", "product_id": "el-0123", "kind": "purchase"}]));
    // ... and never after, not even when it is the session item of another view.
    for _ in 0..2 {
        let after: Vec<String> = items(&recs(s, "/v1/customers/rec-bob/recommendations?limit=30"))
            .iter()
            .map(|i| product(i)["id"].as_str().unwrap().to_string())
            .collect();
        assert!(!after.contains(&"el-0123".to_string()), "{after:?}");
        events(s, json!([{"customer_id": "rec-bob", "product_id": "el-0120", "kind": "view"}]));
    }
    let (_, profile) = get(&s.url("/v1/customers/rec-bob"));
    assert_eq!(profile["purchased"], json!(["el-0123"]));
}

/// Products of this test's own (no demo product is changed: other tests check the demo file).
fn gear(s: &Server, prefix: &str, n: usize, in_stock: impl Fn(usize) -> bool) -> Vec<String> {
    let products: Vec<Value> = (0..n)
        .map(|i| {
            json!({"id": format!("{prefix}-{i}"), "title": format!("Trail running shoe model {i} with grippy sole"),
                   "categories": [format!("{prefix} Gear")], "price": 50 + i, "in_stock": in_stock(i), "stock_qty": if in_stock(i) { 5 } else { 0 }})
        })
        .collect();
    let (status, v) = post(&s.url("/v1/products:batch"), &json!({ "products": products }));
    assert_eq!((status, v["accepted"].as_u64()), (200, Some(n as u64)), "{v}");
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

fn in_stock_now(s: &Server, id: &str) -> bool {
    let (status, p) = get(&s.url(&format!("/v1/products/{id}")));
    assert_eq!(status, 200);
    p["in_stock"].as_bool().unwrap()
}

#[test]
fn out_of_stock_items_never_appear_under_any_source() {
    let s = shared();
    let ids = gear(s, "oos", 12, |i| i % 2 == 0);
    customer(s, "rec-carol", true, true);
    // Make the out-of-stock ones popular and bought together with in-stock ones.
    let mut evs = Vec::new();
    for round in 0..3 {
        for (i, id) in ids.iter().enumerate() {
            evs.push(json!({"id": format!("oos-ev-{round}-{i}"), "customer_id": format!("rec-carol-{round}"), "product_id": id, "kind": "purchase"}));
        }
    }
    events(s, json!(evs));
    events(
        s,
        json!([
            {"id": "oos-carol-1", "customer_id": "rec-carol", "product_id": "oos-0", "kind": "cart"},
            {"id": "oos-carol-2", "customer_id": "rec-carol", "product_id": "oos-2", "kind": "view"},
        ]),
    );
    let mut seen = 0;
    let lists = [
        recs(s, "/v1/customers/rec-carol/recommendations?limit=30"),
        recs(s, "/v1/customers/rec-carol/recommendations?limit=10&category=oos%20Gear"),
        post(&s.url("/v1/recommendations"), &json!({"session": {"items": ["oos-4"]}, "limit": 20})).1,
        post(&s.url("/v1/recommendations"), &json!({"session": {"items": ["oos-4"]}, "limit": 20, "weights": {"content": 0, "session": 0, "trending": 0}})).1,
        post(&s.url("/v1/recommendations"), &json!({"session": {"items": ["oos-4"]}, "limit": 20, "weights": {"co_purchase": 0, "session": 0, "content": 0}})).1,
        recs(s, "/v1/trending?limit=50"),
        recs(s, "/v1/trending?limit=20&category=oos%20Gear"),
        recs(s, "/v1/products/oos-0/similar?mode=co_purchase&limit=20"),
    ];
    for v in &lists {
        for i in items(v) {
            let id = product(&i)["id"].as_str().unwrap();
            assert!(in_stock_now(s, id), "{id} is out of stock: {v}");
            seen += 1;
        }
    }
    assert!(seen > 60, "the lists were not filled ({seen} items)");
}

#[test]
fn a_category_filter_is_never_violated() {
    let s = shared();
    customer(s, "rec-dave", true, true);
    events(s, json!([{"id": "rec-dave-1", "customer_id": "rec-dave", "product_id": "el-0121", "kind": "purchase"}]));
    for category in ["TVs", "Monitors", "Batteries"] {
        let q = format!("/v1/customers/rec-dave/recommendations?limit=10&category={}", category.replace(' ', "%20"));
        let got = items(&recs(s, &q));
        assert!(!got.is_empty());
        for i in &got {
            assert_eq!(category_of(product(i)["id"].as_str().unwrap()), category, "{i}");
        }
        let anon = post(&s.url("/v1/recommendations"), &json!({"session": {"items": ["el-0121"]}, "limit": 10, "filters": {"categories": [category], "price_max": 2000.0}})).1;
        for i in items(&anon) {
            let p = product(&i);
            assert_eq!(category_of(p["id"].as_str().unwrap()), category);
            assert!(p["price"].as_f64().unwrap() <= 2000.0);
        }
    }
}

#[test]
fn mmr_reduces_the_share_of_the_top_category() {
    let s = shared();
    customer(s, "rec-erin", true, true);
    events(
        s,
        json!([
            {"id": "rec-erin-1", "customer_id": "rec-erin", "product_id": "el-0120", "kind": "view"},
            {"id": "rec-erin-2", "customer_id": "rec-erin", "product_id": "el-0122", "kind": "view"},
        ]),
    );
    let share = |lambda: f32| {
        let got = items(&recs(
            s,
            &format!("/v1/customers/rec-erin/recommendations?limit=10&mmr_lambda={lambda}&exclude_seen=false"),
        ));
        assert_eq!(got.len(), 10);
        got.iter().filter(|i| category_of(product(i)["id"].as_str().unwrap()) == HEADPHONES).count()
    };
    let (relevance_only, diverse) = (share(1.0), share(0.2));
    assert!(relevance_only >= 4, "{relevance_only} headphones without MMR");
    assert!(diverse < relevance_only, "MMR kept {diverse} of {relevance_only} headphones");
}

#[test]
fn every_item_is_explained() {
    let s = shared();
    customer(s, "rec-fay", true, true);
    events(s, json!([{"id": "rec-fay-1", "customer_id": "rec-fay", "product_id": "el-0300", "kind": "cart"}]));
    for v in [
        recs(s, "/v1/customers/rec-fay/recommendations?limit=12"),
        post(&s.url("/v1/recommendations"), &json!({"session": {"items": ["el-0200"]}, "limit": 12})).1,
        post(&s.url("/v1/recommendations"), &json!({"limit": 12})).1,
    ] {
        assert!(uuid::Uuid::parse_str(v["rec_id"].as_str().unwrap()).is_ok());
        for i in items(&v) {
            assert!(!i["explanation"].as_str().unwrap().is_empty(), "{i}");
            let sources = i["sources"].as_array().unwrap();
            assert!(!sources.is_empty(), "{i}");
            for src in sources {
                assert!(src["rank"].as_u64().unwrap() >= 1);
            }
        }
    }
    let v = recs(s, "/v1/customers/rec-fay/recommendations?limit=5");
    let first = &items(&v)[0];
    assert_eq!(first["anchor"]["product_id"], "el-0300", "the anchor is the carted product: {first}");
    assert!(first["explanation"].as_str().unwrap().contains("added to your cart"), "{first}");
}

#[test]
fn a_new_anonymous_session_gets_a_full_list() {
    let s = shared();
    for body in [
        json!({"limit": 15}),
        json!({"limit": 25, "session": {"items": []}}),
        json!({"customer_id": "never-seen-before", "limit": 12}),
    ] {
        let (status, v) = post(&s.url("/v1/recommendations"), &body);
        assert_eq!(status, 200, "{v}");
        let n = body["limit"].as_u64().unwrap() as usize;
        assert_eq!(items(&v).len(), n, "{body}");
        assert_eq!(v["personalized"], false);
        let ids: std::collections::HashSet<&str> =
            v["items"].as_array().unwrap().iter().map(|i| i["product"]["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), n, "no duplicates");
    }
    // A narrow filter still fills what it can.
    let (_, v) = post(&s.url("/v1/recommendations"), &json!({"limit": 10, "filters": {"categories": ["Projectors"]}}));
    let expected =
        demo_products().values().filter(|p| p["categories"][0] == "Projectors" && p["in_stock"] == true).count();
    assert_eq!(items(&v).len(), expected);
}

#[test]
fn bought_together_comes_from_co_purchases() {
    let s = shared();
    // Three customers buy a laptop with a monitor; one buys the laptop with a battery.
    let mut evs = Vec::new();
    for c in 0..3 {
        evs.push(json!({"id": format!("co-{c}-a"), "customer_id": format!("co-buyer-{c}"), "product_id": "el-0040", "kind": "purchase"}));
        evs.push(json!({"id": format!("co-{c}-b"), "customer_id": format!("co-buyer-{c}"), "product_id": "el-0500", "kind": "purchase"}));
    }
    evs.push(json!({"id": "co-9-a", "session_id": "co-session-9", "product_id": "el-0040", "kind": "cart"}));
    evs.push(json!({"id": "co-9-b", "session_id": "co-session-9", "product_id": "el-0003", "kind": "cart"}));
    for c in 0..4 {
        customer(s, &format!("co-buyer-{c}"), true, true);
    }
    events(s, json!(evs));
    let v = recs(s, "/v1/products/el-0040/similar?mode=co_purchase&limit=5");
    let got: Vec<(&str, f64)> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["product"]["id"].as_str().unwrap(), i["score"].as_f64().unwrap()))
        .collect();
    // Exact counts: three customers bought both, one session carted both.
    assert_eq!(got, vec![("el-0500", 3.0), ("el-0003", 1.0)], "{v}");
    // A new customer who carts the laptop is offered the monitor by co_purchase.
    customer(s, "co-new", true, true);
    events(s, json!([{"id": "co-new-1", "customer_id": "co-new", "product_id": "el-0040", "kind": "cart"}]));
    let v = recs(s, "/v1/customers/co-new/recommendations?limit=10");
    let monitor = items(&v).into_iter().find(|i| product(i)["id"] == "el-0500").expect("the monitor is recommended");
    assert!(monitor["sources"].as_array().unwrap().iter().any(|x| x["source"] == "co_purchase"), "{monitor}");
}

#[test]
fn trending_follows_recent_popularity() {
    let s = shared();
    let ids = gear(s, "trend", 5, |_| true);
    let mut evs = Vec::new();
    for k in 0..6 {
        evs.push(json!({"session_id": format!("trend-s{k}"), "product_id": ids[3], "kind": "purchase"}));
    }
    evs.push(json!({"session_id": "trend-x", "product_id": ids[1], "kind": "view"}));
    // An old purchase has decayed below a recent view.
    let old = (chrono::Utc::now() - chrono::Duration::days(60)).to_rfc3339();
    evs.push(json!({"session_id": "trend-y", "product_id": ids[4], "kind": "purchase", "timestamp": old}));
    events(s, json!(evs));
    let got: Vec<String> = items(&recs(s, "/v1/trending?limit=5&category=trend%20Gear"))
        .iter()
        .map(|i| product(i)["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(&got[..3], &[ids[3].clone(), ids[1].clone(), ids[4].clone()], "{got:?}");
}

#[test]
fn without_consent_nothing_personal_is_kept() {
    let s = shared();
    customer(s, "rec-nope", false, false);
    events(s, json!([{"id": "rec-nope-1", "customer_id": "rec-nope", "product_id": "el-0121", "kind": "view"}]));
    let (_, profile) = get(&s.url("/v1/customers/rec-nope"));
    assert_eq!(profile["history"], json!([]));
    assert_eq!(profile["has_taste"], false);
    assert_eq!(recs(s, "/v1/customers/rec-nope/recommendations")["personalized"], false);
    // Withdrawing personalization clears what was kept.
    customer(s, "rec-later", true, true);
    events(s, json!([{"id": "rec-later-1", "customer_id": "rec-later", "product_id": "el-0121", "kind": "view"}]));
    assert_eq!(get(&s.url("/v1/customers/rec-later")).1["history"].as_array().unwrap().len(), 1);
    customer(s, "rec-later", false, true);
    let (_, profile) = get(&s.url("/v1/customers/rec-later"));
    assert_eq!((profile["history"].clone(), profile["has_taste"].clone()), (json!([]), json!(false)));
    assert_eq!(get(&s.url("/v1/customers/never-put")).0, 404);
}

#[test]
fn events_are_idempotent_and_validated_one_by_one() {
    let s = shared();
    customer(s, "rec-gus", true, true);
    let e = json!({"id": "gus-1", "customer_id": "rec-gus", "product_id": "el-0010", "kind": "view"});
    assert_eq!(events(s, json!([e.clone()]))["accepted"], 1);
    let again = events(s, json!([e.clone(), e.clone()]));
    assert_eq!((again["accepted"].as_u64(), again["duplicates"].as_u64()), (Some(0), Some(2)));
    assert_eq!(get(&s.url("/v1/customers/rec-gus")).1["history"].as_array().unwrap().len(), 1);
    let future = (chrono::Utc::now() + chrono::Duration::days(2)).to_rfc3339();
    let mixed = events(
        s,
        json!([
            {"customer_id": "rec-gus", "product_id": "el-0011", "kind": "teleport"},
            {"customer_id": "rec-gus", "product_id": "el-0011", "kind": "rating"},
            {"customer_id": "rec-gus", "product_id": "el-0011", "kind": "rating", "value": 9},
            {"customer_id": "rec-gus", "product_id": "el-0011", "kind": "view", "timestamp": future},
            {"customer_id": "rec-gus", "product_id": "no-such", "kind": "view"},
            {"customer_id": "rec-gus", "product_id": "el-0011", "kind": "view", "rec_id": "nope"},
            {"customer_id": "rec-gus", "product_id": "el-0011", "kind": "view", "colour": "red"},
            {"customer_id": "rec-gus", "product_id": "el-0011", "kind": "rating", "value": 5},
        ]),
    );
    assert_eq!((mixed["accepted"].as_u64(), mixed["rejected"].as_u64()), (Some(1), Some(7)), "{mixed}");
    let pointers: Vec<&str> = mixed["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "rejected")
        .map(|r| r["errors"][0]["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(
        pointers,
        vec![
            "/events/0/kind",
            "/events/1/value",
            "/events/2/value",
            "/events/3/timestamp",
            "/events/4/product_id",
            "/events/5/rec_id",
            "/events/6/colour"
        ]
    );
    // A single bad event is a 400 naming the field.
    let r = client()
        .post(s.url("/v1/events"))
        .json(&json!({"product_id": "el-0011", "kind": "view", "value": -3}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().unwrap()["errors"][0]["pointer"], "/value");
    let (status, _) = post(&s.url("/v1/events"), &json!({"events": "not a list"}));
    assert_eq!(status, 400);
}

#[test]
fn statistics_add_up_from_the_events_sent() {
    let dir = temp_dir("stats");
    let server = Server::start(&dir, &[]);
    let products: Vec<Value> = (0..15).map(|i| json!({"id": format!("s-{i}"), "title": format!("Desk lamp number {i}"), "categories": ["Lamps"], "price": 20 + i})).collect();
    assert_eq!(post(&server.url("/v1/products:batch"), &json!({ "products": products })).1["accepted"], 15);
    customer(&server, "stat-hal", true, true);
    events(&server, json!([{"id": "st-0", "customer_id": "stat-hal", "product_id": "s-3", "kind": "view"}]));
    let r1 = recs(&server, "/v1/customers/stat-hal/recommendations?limit=5");
    let r2 = post(&server.url("/v1/recommendations"), &json!({"limit": 4})).1;
    let (rec1, rec2) = (r1["rec_id"].as_str().unwrap(), r2["rec_id"].as_str().unwrap());
    let id = |v: &Value, i: usize| items(v)[i]["product"]["id"].as_str().unwrap().to_string();
    let source = |v: &Value, i: usize| items(v)[i]["sources"][0]["source"].as_str().unwrap().to_string();
    events(
        &server,
        json!([
            {"id": "st-1", "customer_id": "stat-hal", "product_id": id(&r1, 0), "kind": "click", "rec_id": rec1},
            {"id": "st-2", "customer_id": "stat-hal", "product_id": id(&r1, 1), "kind": "click", "rec_id": rec1},
            {"id": "st-3", "customer_id": "stat-hal", "product_id": id(&r1, 0), "kind": "click", "rec_id": rec1},
            {"id": "st-4", "customer_id": "stat-hal", "product_id": id(&r1, 0), "kind": "cart", "rec_id": rec1},
            {"id": "st-5", "customer_id": "stat-hal", "product_id": id(&r1, 0), "kind": "purchase", "rec_id": rec1},
            {"id": "st-6", "session_id": "anon", "product_id": id(&r2, 2), "kind": "click", "rec_id": rec2},
            {"id": "st-7", "session_id": "anon", "product_id": "s-14", "kind": "click"},
            {"id": "st-8", "session_id": "anon", "product_id": id(&r2, 0), "kind": "view", "rec_id": rec2},
        ]),
    );
    // A click sent without its rec_id, on an item of the list just shown to the same customer,
    // is attributed to that list; one on a product the list did not hold, or by someone else,
    // is not.
    let shown: Vec<String> = (0..5).map(|i| id(&r1, i)).collect();
    let elsewhere = (0..15).map(|i| format!("s-{i}")).find(|p| !shown.contains(p)).unwrap();
    let v = events(
        &server,
        json!([
            {"id": "st-9", "customer_id": "stat-hal", "product_id": id(&r1, 2), "kind": "click"},
            {"id": "st-10", "customer_id": "stat-hal", "product_id": elsewhere, "kind": "click"},
            {"id": "st-11", "session_id": "anon-2", "product_id": id(&r1, 3), "kind": "click"},
        ]),
    );
    assert_eq!((v["accepted"].as_u64(), v["attributed"].as_u64()), (Some(3), Some(1)), "{v}");
    let check = |server: &Server| {
        let report = recs(server, "/v1/stats/recommendations");
        let total = &report["total"];
        assert_eq!(total["impressions"], 9, "{report}");
        assert_eq!(total["clicks"], 4, "one click per item, one attributed without its rec_id: {report}");
        assert_eq!((total["carts"].as_u64(), total["purchases"].as_u64()), (Some(1), Some(1)));
        assert!((total["ctr"].as_f64().unwrap() - 4.0 / 9.0).abs() < 1e-9);
        // Per source they add up to the total, and the clicked items' sources got the clicks.
        let per = report["per_source"].as_object().unwrap();
        for field in ["impressions", "clicks", "carts", "purchases"] {
            assert_eq!(
                per.values().map(|c| c[field].as_u64().unwrap()).sum::<u64>(),
                total[field].as_u64().unwrap(),
                "{field}"
            );
        }
        assert!(per[&source(&r1, 0)]["purchases"].as_u64().unwrap() >= 1);
        assert!(per[&source(&r2, 2)]["clicks"].as_u64().unwrap() >= 1);
        assert_eq!(
            report["per_day"].as_array().unwrap().iter().map(|d| d["impressions"].as_u64().unwrap()).sum::<u64>(),
            9
        );
    };
    check(&server);
    // Written on shutdown, read back on start.
    assert!(server.stop().success());
    let server = Server::start(&dir, &[]);
    check(&server);
    server.stop();
}

#[test]
fn consent_updates_and_events_at_once_lose_nothing() {
    // A shop sends a shopper's views while the same shopper's record is updated (attributes,
    // consent): each is a read-modify-write of one stored profile, and neither may undo the
    // other's change. The fault point holds every such write open a quarter of a second, so
    // that the requests below overlap whatever the machine's speed.
    let dir = crate::harness::demo_copy("profile-race");
    let s = &Server::start(&dir, &[("AISLE_FAULT", "profiles.rmw")]);
    customer(s, "rec-race", true, true);
    let products: Vec<String> = (1..=8).map(|i| format!("el-{:04}", 200 + i)).collect();
    let views_done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        // Updates back to back for as long as the views take: every moment some update has
        // read the profile and not yet written it.
        let updates = scope.spawn(|| {
            let mut n = 0;
            while !views_done.load(std::sync::atomic::Ordering::SeqCst) && n < 400 {
                let body = json!({"attributes": {"tier": format!("t{n}")}, "consent": {"personalization": true}});
                let (status, v) = put(&s.url("/v1/customers/rec-race"), &body);
                assert_eq!(status, 200, "{v}");
                n += 1;
            }
            n
        });
        let views: Vec<_> = products
            .iter()
            .enumerate()
            .map(|(i, p)| {
                scope.spawn(move || {
                    let e = json!([{"id": format!("race-{i}"), "customer_id": "rec-race", "product_id": p, "kind": "view"}]);
                    assert_eq!(events(s, e)["accepted"], 1);
                })
            })
            .collect();
        views.into_iter().for_each(|v| v.join().unwrap());
        views_done.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(updates.join().unwrap() > 1, "updates ran while the views were applied");
    });
    let (_, profile) = get(&s.url("/v1/customers/rec-race"));
    let mut seen: Vec<String> =
        profile["history"].as_array().unwrap().iter().map(|h| h["product_id"].as_str().unwrap().to_string()).collect();
    seen.sort();
    assert_eq!(seen, products, "every view is in the history");
    assert_eq!(profile["has_taste"], true);
    // Withdrawn while views are on their way: none of them is kept.
    std::thread::scope(|scope| {
        scope.spawn(|| customer(s, "rec-race", false, false));
        for (i, p) in products.iter().enumerate() {
            scope.spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(50));
                let e = json!([{"id": format!("race-late-{i}"), "customer_id": "rec-race", "product_id": p, "kind": "view"}]);
                events(s, e);
            });
        }
    });
    let (_, profile) = get(&s.url("/v1/customers/rec-race"));
    assert_eq!((profile["history"].clone(), profile["has_taste"].clone()), (json!([]), json!(false)), "{profile}");
}
