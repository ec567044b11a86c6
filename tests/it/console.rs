//! What the console and the shop are served with: pages from the binary under a strict
//! Content-Security-Policy that load nothing from elsewhere, and the endpoints only they use
//! (events per day, reports, a product's embedded text). Driving the pages in a browser is
//! `scripts/browser-test.sh`.

use serde_json::json;

use crate::harness::{client, get, post, shared};

const PAGES: [(&str, &str); 7] = [
    ("/console", "text/html"),
    ("/shop", "text/html"),
    ("/widget.js", "text/javascript"),
    ("/assets/ui.css", "text/css"),
    ("/assets/ui.js", "text/javascript"),
    ("/assets/console.js", "text/javascript"),
    ("/assets/shop.js", "text/javascript"),
];

#[test]
fn pages_come_from_the_binary_under_a_strict_policy_and_refer_to_nothing_outside() {
    for (path, kind) in PAGES {
        let r = client().get(shared().url(path)).send().unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
        let h = r.headers().clone();
        assert!(h["content-type"].to_str().unwrap().starts_with(kind), "{path}: {:?}", h["content-type"]);
        if path != "/widget.js" {
            let csp = h["content-security-policy"].to_str().unwrap();
            assert!(csp.starts_with("default-src 'self'") && !csp.contains("unsafe"), "{path}: {csp}");
            assert_eq!(h["x-content-type-options"], "nosniff");
        }
        let body = r.text().unwrap();
        // No reference to another host: no absolute URL in an attribute, a fetch, an import or
        // a stylesheet (the widget's comment shows its snippet with a placeholder host).
        for bad in
            ["src=\"http", "href=\"http", "url(http", "fetch('http", "fetch(\"http", "from 'http", "@import", "//cdn"]
        {
            assert!(!body.contains(bad), "{path} refers outside: {bad}");
        }
        // No inline script or style for the policy to have to allow.
        if kind == "text/html" {
            assert!(!body.contains("<script>") && !body.contains("<style") && !body.contains(" style=\""), "{path}");
            assert!(!body.contains("onclick=\"") && !body.contains("onload=\""), "{path}: inline handlers");
        }
    }
}

#[test]
fn events_per_day_count_what_arrives() {
    let today =
        |v: &serde_json::Value| v["per_day"].as_array().unwrap().last().unwrap()["counts"]["cart"].as_u64().unwrap();
    let (status, before) = get(&shared().url("/v1/stats/events?days=3"));
    assert_eq!(status, 200, "{before}");
    assert_eq!(before["per_day"].as_array().unwrap().len(), 3);
    let events: Vec<_> = (0..3)
        .map(|i| json!({"id": format!("console-cart-{i}"), "kind": "cart", "product_id": "el-0003", "customer_id": "console-c1"}))
        .collect();
    let (status, v) = post(&shared().url("/v1/events"), &json!({"events": events}));
    assert_eq!(status, 200, "{v}");
    let (_, after) = get(&shared().url("/v1/stats/events?days=3"));
    assert!(today(&after) >= today(&before) + 3, "{before} -> {after}");
    for bad in ["days=0", "days=91", "days=x", "weeks=1"] {
        let (status, v) = get(&shared().url(&format!("/v1/stats/events?{bad}")));
        assert_eq!(status, 400, "{bad}: {v}");
    }
}

#[test]
fn reports_in_the_data_directory_are_listed_and_a_product_shows_its_texts() {
    let dir = shared().data_dir.join("reports");
    std::fs::create_dir_all(dir.join("ml100k")).unwrap();
    std::fs::write(
        dir.join("bench-console.json"),
        r#"{"rows":[{"bench":"embed","metric":"m","value":2.0,"ratio":1.5}]}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("ml100k/report.json"),
        r#"{"dataset":"ml-100k","split":"leave-last-10","rows":[{"model":"EASE"}]}"#,
    )
    .unwrap();
    let (status, v) = get(&shared().url("/v1/reports"));
    assert_eq!(status, 200, "{v}");
    let kinds: Vec<(String, String)> = v["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap().to_string(), r["kind"].as_str().unwrap().to_string()))
        .collect();
    assert!(kinds.contains(&("bench-console.json".into(), "bench".into())), "{kinds:?}");
    assert!(kinds.contains(&("ml100k/report.json".into(), "eval".into())), "{kinds:?}");

    let (status, t) = get(&shared().url("/v1/products/el-0001/text"));
    assert_eq!(status, 200, "{t}");
    assert!(t["embedded"].as_str().unwrap().contains("Duracell"), "{t}");
    assert!(!t["keywords"].as_str().unwrap().is_empty());
    assert_eq!(get(&shared().url("/v1/products/no-such-product/text")).0, 404);
}
