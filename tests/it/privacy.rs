//! Privacy and security promises, each checked against a real server: erasure leaves no byte
//! of the customer on disk and survives a crash, export returns everything, retention purges,
//! PII never reaches logs or storage, API keys and roles are enforced (401/403/429), the audit
//! log records who did what, and serving opens no outbound connection (in a network namespace
//! with loopback only, under strace).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use aisle::api::auth::Access;
use aisle::api::openapi::rules;
use aisle::privacy::Keyring;
use aisle::privacy::apikeys::hash_key;
use serde_json::{Value, json};

use crate::harness::{Server, call, demo_copy, get, post, put, stored_containing as files_containing};

const NO_CHAT: (&str, &str) = ("AISLE_CHAT_MODEL", "");

fn consent(s: &Server, id: &str, attributes: Value) {
    let (status, v) = put(
        &s.url(&format!("/v1/customers/{id}")),
        &json!({"consent": {"personalization": true, "analytics": true}, "attributes": attributes}),
    );
    assert!(status == 200 || status == 201, "{v}");
}

fn send(s: &Server, events: Value) {
    let (status, v) = post(&s.url("/v1/events"), &json!({ "events": events }));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["rejected"], 0, "{v}");
}

/// Bought-together counts of a product, as the API reports them.
fn co_counts(s: &Server, product: &str) -> Vec<(String, f64)> {
    let (status, v) = get(&s.url(&format!("/v1/products/{product}/similar?mode=co_purchase&limit=20")));
    assert_eq!(status, 200, "{v}");
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["product"]["id"].as_str().unwrap().to_string(), i["score"].as_f64().unwrap()))
        .collect()
}

fn trending_ids(s: &Server) -> Vec<String> {
    let (status, v) = get(&s.url("/v1/trending?limit=100"));
    assert_eq!(status, 200, "{v}");
    v["items"].as_array().unwrap().iter().map(|i| i["product"]["id"].as_str().unwrap().to_string()).collect()
}

/// A customer to erase and a bystander who bought the same pair. Returns the strings that
/// identify the erased customer's records.
fn script_customers(s: &Server, tag: &str) -> Vec<String> {
    let victim = format!("erase-me-{tag}-q7x9z");
    let bystander = format!("stays-{tag}");
    let marker = format!("zebra-quasar-{tag}");
    consent(s, &victim, json!({"segment": marker}));
    consent(s, &bystander, json!({}));
    // A list shown to the victim, which one of their events points to: its log (items and the
    // re-ranker's feature rows) is theirs to erase.
    let (status, recs) = get(&s.url(&format!("/v1/customers/{victim}/recommendations?limit=5")));
    assert_eq!(status, 200, "{recs}");
    let rec_id = recs["rec_id"].as_str().expect("a rec_id").to_string();
    let mut evs = vec![];
    for (who, prefix) in [(&victim, format!("evt-erase-{tag}")), (&bystander, format!("evt-keep-{tag}"))] {
        evs.push(json!({"id": format!("{prefix}-1"), "customer_id": who, "product_id": "el-0200", "kind": "purchase"}));
        evs.push(json!({"id": format!("{prefix}-2"), "customer_id": who, "product_id": "el-0201", "kind": "purchase"}));
    }
    // Only the erased customer ever touched el-0203: erasure must take it out of trending.
    for i in 3..6 {
        evs.push(
            json!({"id": format!("evt-erase-{tag}-{i}"), "customer_id": victim, "product_id": "el-0203", "kind": "view"}),
        );
    }
    evs[4]["rec_id"] = json!(rec_id);
    send(s, json!(evs));
    let key = Keyring::load_or_create(Path::new(&data_dir_of(s)), "").unwrap().customer_key(&victim);
    let mut identifying = vec![victim, key, marker];
    identifying.extend((1..6).map(|i| format!("evt-erase-{tag}-{i}")));
    identifying.push(rec_id);
    identifying
}

fn data_dir_of(s: &Server) -> String {
    DATA_DIRS.lock().unwrap().iter().find(|(b, _)| b == &s.base).map(|(_, d)| d.clone()).expect("started by start()")
}

static DATA_DIRS: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

fn start(dir: &Path, env: &[(&str, &str)]) -> Server {
    let s = Server::start(dir, env);
    DATA_DIRS.lock().unwrap().push((s.base.clone(), dir.display().to_string()));
    s
}

fn assert_no_trace(dir: &Path, identifying: &[String]) {
    crate::harness::assert_not_stored(dir, &identifying.iter().map(String::as_str).collect::<Vec<_>>());
}

#[test]
fn erasure_removes_every_trace_on_disk_and_takes_back_the_counts() {
    let dir = demo_copy("erase");
    let s = start(&dir, &[NO_CHAT]);
    let identifying = script_customers(&s, "a");
    let victim = identifying[0].clone();
    assert_eq!(co_counts(&s, "el-0200"), vec![("el-0201".to_string(), 2.0)]);
    assert!(trending_ids(&s).contains(&"el-0203".to_string()));
    // Before erasure the records are on disk (so the scan below can fail).
    for needle in &identifying[1..] {
        assert!(!files_containing(&dir, needle).is_empty(), "'{needle}' should be stored before erasure");
    }
    assert!(files_containing(&dir, &victim).is_empty(), "the raw customer id is never stored");

    // Right of access: everything held.
    let (status, export) = get(&s.url(&format!("/v1/customers/{victim}/export")));
    assert_eq!(status, 200, "{export}");
    assert_eq!(export["events"].as_array().unwrap().len(), 5, "{export}");
    assert_eq!(export["profile"]["attributes"]["segment"], identifying[2]);
    assert_eq!(export["profile"]["purchased"].as_array().unwrap().len(), 2);
    assert!(export["taste"].as_array().is_some_and(|t| t.len() == 384), "the taste vector is exported");

    let (status, _, v) = call("DELETE", &s.url(&format!("/v1/customers/{victim}")), None, None);
    assert_eq!(status, 200);
    assert_eq!(v["erased"]["events"], 5, "{v}");
    assert_eq!(v["erased"]["profile"], true, "{v}");
    assert_eq!(v["erased"]["recommendations"], 1, "the list the victim's event pointed to: {v}");
    assert_no_trace(&dir, &identifying);
    // The bystander's events and profile (the same shapes as the erased ones) are found in the
    // rebuilt storage: the search above could have seen what it did not find.
    let bystander = Keyring::load_or_create(&dir, "").unwrap().customer_key("stays-a");
    crate::harness::assert_canaries_found(&dir, &["evt-keep-a-1", "evt-keep-a-2", &bystander]);
    // The bystander's purchase still counts; the erased one's does not.
    assert_eq!(co_counts(&s, "el-0200"), vec![("el-0201".to_string(), 1.0)]);
    assert!(!trending_ids(&s).contains(&"el-0203".to_string()), "only the erased customer made el-0203 trend");
    assert_eq!(get(&s.url(&format!("/v1/customers/{victim}"))).0, 404);
    let (_, export) = get(&s.url(&format!("/v1/customers/{victim}/export")));
    assert_eq!((export["profile"].clone(), export["events"].clone()), (Value::Null, json!([])));
    // Idempotent.
    let (status, _, again) = call("DELETE", &s.url(&format!("/v1/customers/{victim}")), None, None);
    assert_eq!(status, 200);
    assert_eq!(
        again["erased"],
        json!({"profile": false, "events": 0, "products_corrected": 0, "sessions": 0, "recommendations": 0})
    );
    // The bystander is untouched.
    let (_, other) = get(&s.url("/v1/customers/stays-a/export"));
    assert_eq!(other["events"].as_array().unwrap().len(), 2);
    // Still nothing after a graceful stop (final flushes) and a restart.
    assert!(s.stop().success());
    assert_no_trace(&dir, &identifying);
    let s = start(&dir, &[NO_CHAT]);
    assert_eq!(co_counts(&s, "el-0200"), vec![("el-0201".to_string(), 1.0)]);
    let audit = std::fs::read_to_string(dir.join("audit.log")).unwrap();
    assert!(audit.contains("DELETE /v1/customers/{id}"), "erasures are audited: {audit}");
}

#[test]
fn an_erasure_interrupted_by_a_crash_finishes_on_restart_without_taking_twice() {
    let dir = demo_copy("erase-crash");
    let s = start(&dir, &[NO_CHAT, ("AISLE_FAULT", "erase-after-counts")]);
    let identifying = script_customers(&s, "b");
    assert_eq!(co_counts(&s, "el-0200"), vec![("el-0201".to_string(), 2.0)]);
    // The process aborts after correcting the counts, before deleting anything.
    let url = s.url(&format!("/v1/customers/{}", identifying[0]));
    assert!(crate::harness::client().delete(&url).send().is_err(), "the server should have crashed");
    let status = s.wait_exit();
    assert!(!status.success(), "{status}");
    assert_eq!(std::fs::read_dir(dir.join("erasures")).unwrap().count(), 1, "the job is left for the restart");
    // The restart finishes the job before it serves.
    let s = start(&dir, &[NO_CHAT]);
    assert_eq!(std::fs::read_dir(dir.join("erasures")).unwrap().count(), 0);
    assert_eq!(co_counts(&s, "el-0200"), vec![("el-0201".to_string(), 1.0)], "counts corrected exactly once");
    assert!(!trending_ids(&s).contains(&"el-0203".to_string()));
    assert_no_trace(&dir, &identifying);
}

#[test]
fn retention_purges_expired_events_from_disk() {
    let dir = demo_copy("retention");
    let s = start(&dir, &[NO_CHAT]);
    consent(&s, "old-timer", json!({}));
    let old = (chrono::Utc::now() - chrono::Duration::days(300)).to_rfc3339();
    send(
        &s,
        json!([
            {"id": "evt-ancient-r1", "customer_id": "old-timer", "product_id": "el-0010", "kind": "view", "timestamp": old},
            {"id": "evt-recent-r2", "customer_id": "old-timer", "product_id": "el-0011", "kind": "view"}
        ]),
    );
    assert!(s.stop().success());
    assert!(!files_containing(&dir, "evt-ancient-r1").is_empty());
    // Retention shortened to 200 days: the first scheduled run (at start) purges the old event.
    let s = start(&dir, &[NO_CHAT, ("AISLE_EVENTS_MAX_AGE_DAYS", "200")]);
    let started = Instant::now();
    loop {
        let (_, v) = get(&s.url("/v1/customers/old-timer/export"));
        let ids: Vec<&str> = v["events"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
        // The export changes when the delete lands; the run ends after the rewrite on disk.
        if ids == ["evt-recent-r2"] && s.logs().contains("retention: purged expired events") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "retention did not finish: {ids:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_no_trace(&dir, &["evt-ancient-r1".to_string()]);
    crate::harness::assert_canaries_found(&dir, &["evt-recent-r2"]);
}

#[test]
fn pii_never_reaches_logs_or_storage() {
    let dir = demo_copy("pii");
    let s = start(&dir, &[("RUST_LOG", "info,aisle=debug,qdrant_edge=warn")]);
    let email = "jane.roe@example.com";
    let card = "4111 1111 1111 1111";
    let (status, v) = post(
        &s.url("/v1/chat/completions"),
        &json!({"model": "SmolLM2-135M-Instruct", "max_tokens": 4, "messages": [
            {"role": "user", "content": format!("I am {email}, card {card}. Find me quiet-blue headphones.")}]}),
    );
    assert_eq!(status, 200, "{v}");
    // Customer attributes and search queries are redacted before they are stored or embedded.
    consent(&s, "pii-customer", json!({"note": "call +1 (415) 555-2671 or write to jane.roe@example.com"}));
    let (_, profile) = get(&s.url("/v1/customers/pii-customer"));
    assert_eq!(profile["attributes"]["note"], "call [phone] or write to [email]");
    let (status, _) = post(&s.url("/v1/search"), &json!({"query": format!("headphones for {email}")}));
    assert_eq!(status, 200);
    std::thread::sleep(Duration::from_millis(300));
    let logs = s.logs();
    assert!(logs.contains("rendered chat prompt") && logs.contains("quiet-blue headphones"), "the prompt is logged");
    assert!(logs.contains("[email]") && logs.contains("[card]"), "redacted in place");
    for secret in [email, card, "4111111111111111", "555-2671"] {
        assert!(!logs.contains(secret), "'{secret}' reached the logs");
    }
    assert!(s.stop().success());
    for secret in [email, card, "555-2671"] {
        assert!(files_containing(&dir, secret).is_empty(), "'{secret}' was stored");
    }
}

const ADMIN: &str = "aisle_test_admin_key_0000000000000000000000000";
const APP: &str = "aisle_test_app_key_00000000000000000000000000000";
const READ: &str = "aisle_test_read_key_0000000000000000000000000000";
const BURST: &str = "aisle_test_burst_key_000000000000000000000000000";
const WIDGET: &str = "aisle_test_widget_key_00000000000000000000000000";

/// A concrete path for a route pattern.
fn concrete(path: &str) -> String {
    path.replace("/v1/models/{id}", "/v1/models/all-MiniLM-L6-v2")
        .replace("/v1/products/{id}", "/v1/products/el-0117")
        .replace("{id}", "auth-customer")
}

#[test]
fn api_keys_roles_limits_and_the_audit_log() {
    let dir = demo_copy("auth");
    let keys = json!([
        {"name": "ops", "role": "admin", "sha256": hash_key(ADMIN)},
        {"name": "web", "role": "app", "sha256": hash_key(APP)},
        {"name": "dash", "role": "read", "sha256": hash_key(READ)},
        {"name": "burst", "role": "read", "sha256": hash_key(BURST)},
        {"name": "shop-page", "role": "widget", "sha256": hash_key(WIDGET)},
    ])
    .to_string();
    let s = start(
        &dir,
        &[
            NO_CHAT,
            ("AISLE_AUTH_KEYS", &keys),
            ("AISLE_AUTH_RATE_PER_SEC", "1"),
            ("AISLE_AUTH_BURST", "30"),
            ("AISLE_SERVER_CORS_ORIGINS", "https://shop.example"),
        ],
    );
    // No endpoint but the probes works without a key, or with a wrong one.
    for rule in rules() {
        let url = s.url(&concrete(&rule.path));
        let (status, headers, body) = call(rule.method, &url, None, Some(&json!({})));
        if rule.access == Access::Public {
            assert_eq!(status, 200, "{} {}", rule.method, rule.path);
            continue;
        }
        assert_eq!(status, 401, "{} {} without a key: {body}", rule.method, rule.path);
        assert!(headers.get("www-authenticate").is_some());
        assert_eq!(body["status"], 401);
        let (status, _, _) = call(rule.method, &url, Some("aisle_not_a_key"), Some(&json!({})));
        assert_eq!(status, 401, "{} {} with a wrong key", rule.method, rule.path);
    }
    assert_eq!(call("GET", &s.url("/v1/nothing-here"), None, None).0, 401, "unknown routes reveal nothing");
    assert_eq!(call("PATCH", &s.url("/v1/products/el-0117"), Some(READ), None).0, 405, "a wrong method is a 405");
    assert_eq!(call("GET", &s.url("/v1/nothing-here"), Some(READ), None).0, 404);
    // Roles: read cannot write; app cannot erase, export, import or change the catalog.
    let product = json!({"title": "Auth test product", "price": 1.0});
    let event = json!({"customer_id": "auth-customer", "product_id": "el-0117", "kind": "view"});
    let denied = [
        (READ, "POST", "/v1/events", Some(&event)),
        (READ, "PUT", "/v1/customers/auth-customer", Some(&json!({}))),
        (READ, "PUT", "/v1/products/auth-p", Some(&product)),
        (APP, "PUT", "/v1/products/auth-p", Some(&product)),
        (APP, "DELETE", "/v1/products/el-0117", None),
        (APP, "POST", "/v1/products:batch", Some(&json!({"products": [product]}))),
        (APP, "DELETE", "/v1/customers/auth-customer", None),
        (APP, "GET", "/v1/customers/auth-customer/export", None),
        (APP, "GET", "/v1/admin/audit", None),
        (APP, "PUT", "/v1/rules/auth-rule", Some(&json!({"action": "hide", "brands": ["Sony"]}))),
    ];
    for (key, method, path, body) in denied {
        let (status, _, v) = call(method, &s.url(path), Some(key), body);
        assert_eq!(status, 403, "{method} {path}: {v}");
        assert!(v["detail"].as_str().unwrap().contains("needs"), "{v}");
    }
    let allowed = [
        (READ, "GET", "/v1/products/el-0117", None),
        (READ, "POST", "/v1/search", Some(json!({"query": "headphones"}))),
        (APP, "PUT", "/v1/customers/auth-customer", Some(json!({"consent": {"analytics": true}}))),
        (APP, "POST", "/v1/events", Some(event.clone())),
        (APP, "GET", "/v1/customers/auth-customer/recommendations", None),
        (ADMIN, "PUT", "/v1/products/auth-p", Some(product.clone())),
        (ADMIN, "GET", "/v1/customers/auth-customer/export", None),
        (ADMIN, "DELETE", "/v1/customers/auth-customer", None),
    ];
    for (key, method, path, body) in allowed {
        let (status, _, v) = call(method, &s.url(path), Some(key), body.as_ref());
        assert!((200..300).contains(&status), "{method} {path}: {status} {v}");
    }
    // The import command against a server needs an admin key.
    let file = dir.join("one.ndjson");
    std::fs::write(&file, "{\"id\": \"auth-import\", \"title\": \"Imported\", \"price\": 2.0}\n").unwrap();
    for (key, ok) in [(APP, false), (ADMIN, true)] {
        let out = crate::harness::aisle()
            .args(["import", "products"])
            .arg(&file)
            .args(["--server", &s.base, "--api-key", key])
            .output()
            .unwrap();
        assert_eq!(out.status.success(), ok, "{}", String::from_utf8_lossy(&out.stderr));
    }
    // A key made with `aisle keys create` while the server runs works within seconds.
    let out = crate::harness::aisle()
        .args(["keys", "create", "--role", "read", "--name", "late", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let late = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(!std::fs::read_to_string(dir.join("keys.json")).unwrap().contains(&late), "stored hashed");
    let started = Instant::now();
    while call("GET", &s.url("/v1/products/el-0117"), Some(&late), None).0 != 200 {
        assert!(started.elapsed() < Duration::from_secs(10), "the new key was not picked up");
        std::thread::sleep(Duration::from_millis(200));
    }
    // A widget key (visible in a shop's pages) does what a shopper's page does, nothing else.
    let shopper_event = json!({"customer_id": "widget-shopper", "product_id": "el-0117", "kind": "view"});
    let widget_allowed = [
        ("POST", "/v1/search", Some(json!({"query": "headphones"}))),
        ("GET", "/v1/products/el-0117/similar", None),
        ("GET", "/v1/trending", None),
        ("POST", "/v1/recommendations", Some(json!({"session": {"items": ["el-0117"]}}))),
        ("POST", "/v1/events", Some(shopper_event)),
        ("GET", "/v1/whoami", None),
    ];
    for (method, path, body) in widget_allowed {
        let (status, _, v) = call(method, &s.url(path), Some(WIDGET), body.as_ref());
        assert!((200..300).contains(&status), "widget {method} {path}: {status} {v}");
    }
    let widget_denied = [
        ("GET", "/v1/products"),
        ("GET", "/v1/products/el-0117"),
        ("GET", "/v1/customers/auth-customer"),
        ("PUT", "/v1/customers/auth-customer"),
        ("GET", "/v1/customers/auth-customer/recommendations"),
        ("GET", "/v1/stats/recommendations"),
        ("GET", "/metrics"),
        ("POST", "/v1/embeddings"),
        ("POST", "/v1/chat/completions"),
        ("GET", "/v1/assistant/sessions/some-session"),
        ("GET", "/v1/reports"),
    ];
    for (method, path) in widget_denied {
        let (status, _, v) = call(method, &s.url(path), Some(WIDGET), Some(&json!({})));
        assert_eq!(status, 403, "widget {method} {path}: {v}");
    }
    // Who a key is; keys made and revoked over the API (admin only), at once.
    for (key, name, role) in [(ADMIN, "ops", "admin"), (APP, "web", "app"), (READ, "dash", "read")] {
        let (status, _, v) = call("GET", &s.url("/v1/whoami"), Some(key), None);
        assert_eq!((status, v), (200, json!({"name": name, "role": role, "auth": "keys"})));
    }
    let made = json!({"name": "console-made", "role": "app"});
    assert_eq!(call("POST", &s.url("/v1/admin/keys"), Some(APP), Some(&made)).0, 403);
    let (status, _, created) = call("POST", &s.url("/v1/admin/keys"), Some(ADMIN), Some(&made));
    assert_eq!(status, 201, "{created}");
    let new_key = created["key"].as_str().unwrap().to_string();
    assert_eq!(call("GET", &s.url("/v1/whoami"), Some(&new_key), None).2["role"], "app", "usable at once");
    assert_eq!(call("POST", &s.url("/v1/admin/keys"), Some(ADMIN), Some(&made)).0, 409, "names are unique");
    let bad = json!({"name": "", "role": "owner"});
    let (status, _, v) = call("POST", &s.url("/v1/admin/keys"), Some(ADMIN), Some(&bad));
    assert_eq!(status, 400, "{v}");
    let (_, _, listed) = call("GET", &s.url("/v1/admin/keys"), Some(ADMIN), None);
    assert!(
        !listed.to_string().contains(&new_key) && !listed.to_string().contains(&hash_key(&new_key)),
        "never the key or its whole hash"
    );
    let names: Vec<(&str, bool)> = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["name"].as_str().unwrap(), k["configured"].as_bool().unwrap()))
        .collect();
    assert!(names.contains(&("console-made", false)) && names.contains(&("ops", true)), "{names:?}");
    assert_eq!(
        call("DELETE", &s.url("/v1/admin/keys/ops"), Some(ADMIN), None).0,
        409,
        "configured keys are revoked in the configuration"
    );
    assert_eq!(call("DELETE", &s.url("/v1/admin/keys/console-made"), Some(ADMIN), None).0, 204);
    assert_eq!(call("GET", &s.url("/v1/whoami"), Some(&new_key), None).0, 401, "revoked at once");
    assert_eq!(call("DELETE", &s.url("/v1/admin/keys/console-made"), Some(ADMIN), None).0, 404);
    let (status, _, config) = call("GET", &s.url("/v1/admin/config"), Some(ADMIN), None);
    assert_eq!(status, 200);
    assert!(!config.to_string().contains(&hash_key(ADMIN)), "key hashes are masked: {config}");
    assert_eq!(config["auth"]["keys"][0]["sha256"], "***");
    assert_eq!(call("GET", &s.url("/v1/admin/config"), Some(APP), None).0, 403);
    // The widget's origin may call the API from a browser; another origin may not.
    for (origin, allowed) in [("https://shop.example", true), ("https://elsewhere.example", false)] {
        let r = crate::harness::client()
            .request(reqwest::Method::OPTIONS, s.url("/v1/recommendations"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type")
            .send()
            .unwrap();
        let allow = r.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap().to_string());
        assert_eq!(allow.as_deref() == Some(origin), allowed, "{origin}: {allow:?}");
    }
    // Rate limit: a burst of 30, then 1 per second; 429 with Retry-After above it.
    let mut limited = 0;
    for _ in 0..45 {
        let (status, headers, _) = call("GET", &s.url("/healthz"), Some(BURST), None);
        assert_eq!(status, 200, "probes are not limited");
        let (status, headers2, _) = call("GET", &s.url("/v1/products/el-0117"), Some(BURST), None);
        let _ = headers;
        if status == 429 {
            limited += 1;
            let retry: u64 = headers2["retry-after"].to_str().unwrap().parse().unwrap();
            assert!(retry >= 1);
        }
    }
    assert!(limited >= 10, "only {limited} requests of 45 were limited");
    assert_eq!(call("GET", &s.url("/v1/products/el-0117"), Some(READ), None).0, 200, "limits are per key");
    // The audit log: admin and privacy operations and denied attempts, customers hashed.
    let (status, _, audit) = call("GET", &s.url("/v1/admin/audit?limit=1000"), Some(ADMIN), None);
    assert_eq!(status, 200, "{audit}");
    let entries = audit["entries"].as_array().unwrap();
    let has = |actor: &str, action: &str, status: u64| {
        entries.iter().any(|e| e["actor"] == actor && e["action"] == action && e["status"] == status)
    };
    assert!(has("web", "DELETE /v1/customers/{id}", 403), "{audit}");
    assert!(has("ops", "DELETE /v1/customers/{id}", 200), "{audit}");
    assert!(has("ops", "PUT /v1/products/{id}", 201), "{audit}");
    assert!(has("web", "PUT /v1/customers/{id}", 201), "consent changes are audited: {audit}");
    let text = audit.to_string();
    assert!(!text.contains("auth-customer"), "customer ids are hashed in the audit log");
    assert!(text.contains("product:auth-p"));
    assert!(has("ops", "DELETE /v1/admin/keys/{id}", 204) && text.contains("key:console-made"), "{audit}");
    assert!(has("web", "POST /v1/admin/keys", 403), "{audit}");
    let (_, _, filtered) = call("GET", &s.url("/v1/admin/audit?limit=1000&actor=web&action=keys"), Some(ADMIN), None);
    let filtered = filtered["entries"].as_array().unwrap();
    assert!(
        !filtered.is_empty()
            && filtered.iter().all(|e| e["actor"] == "web" && e["action"].as_str().unwrap().contains("keys"))
    );
    assert!(files_containing(&dir, "auth-customer").is_empty());
}

/// Serving opens no outbound connection: the server runs in a network namespace that has
/// only a loopback interface, under strace, while every endpoint is exercised; every connect
/// or send it makes must go to loopback or a local socket. (The checks run in a child test
/// process that is moved into the namespace: see `egress_inner`.)
#[test]
fn serving_opens_no_outbound_connection() {
    assert!(
        Command::new("strace").arg("-V").output().is_ok_and(|o| o.status.success()),
        "strace is needed for this test (scripts/test.sh installs it)"
    );
    let dir = demo_copy("egress");
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("unshare")
        .args(["--net", "--", "sh", "-c", "ip link set lo up && exec \"$0\" \"$@\""])
        .arg(exe)
        .args(["privacy::egress_inner", "--exact", "--ignored", "--nocapture", "--test-threads", "1"])
        .env("AISLE_EGRESS_DATA", &dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "inner test failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "the inner test did not run:\n{stdout}");
}

#[test]
#[ignore = "run by serving_opens_no_outbound_connection inside a network namespace"]
fn egress_inner() {
    let dir = std::path::PathBuf::from(std::env::var("AISLE_EGRESS_DATA").expect("run by the outer test"));
    let interfaces = std::fs::read_to_string("/proc/net/dev").unwrap();
    let names: Vec<&str> = interfaces.lines().skip(2).filter_map(|l| l.split(':').next()).map(str::trim).collect();
    assert_eq!(names, ["lo"], "not in a loopback-only namespace: {interfaces}");
    let trace = dir.join("strace.txt");
    let trace_arg = trace.display().to_string();
    let s = Server::start_wrapped(
        &dir,
        &[("AISLE_EXPERIMENTS", crate::experiments::EXPERIMENTS)],
        &["strace", "-f", "-qq", "--seccomp-bpf", "-e", "trace=connect,sendto,sendmsg,bind", "-o", &trace_arg],
    );
    let product = json!({"title": "Egress test product", "price": 3.0, "categories": ["Test"]});
    let chat =
        json!({"model": "SmolLM2-135M-Instruct", "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]});
    let calls: Vec<(&str, &str, &str, Option<Value>)> = vec![
        ("GET", "/healthz", "/healthz", None),
        ("GET", "/readyz", "/readyz", None),
        ("GET", "/metrics", "/metrics", None),
        ("GET", "/v1/models", "/v1/models", None),
        ("GET", "/v1/models/{id}", "/v1/models/all-MiniLM-L6-v2", None),
        ("GET", "/v1/products", "/v1/products?limit=5", None),
        ("PUT", "/v1/products/{id}", "/v1/products/egress-p", Some(product.clone())),
        ("GET", "/v1/products/{id}", "/v1/products/egress-p", None),
        ("GET", "/v1/products/{id}/similar", "/v1/products/el-0117/similar", None),
        (
            "POST",
            "/v1/products:batch",
            "/v1/products:batch",
            Some(json!({"products": [{"id": "egress-q", "title": "Q", "price": 1.0}]})),
        ),
        ("POST", "/v1/search", "/v1/search", Some(json!({"query": "headphones"}))),
        (
            "PUT",
            "/v1/customers/{id}",
            "/v1/customers/egress-c",
            Some(json!({"consent": {"personalization": true, "analytics": true}})),
        ),
        ("GET", "/v1/customers/{id}", "/v1/customers/egress-c", None),
        (
            "POST",
            "/v1/events",
            "/v1/events",
            Some(json!({"customer_id": "egress-c", "product_id": "el-0117", "kind": "view"})),
        ),
        ("GET", "/v1/customers/{id}/recommendations", "/v1/customers/egress-c/recommendations", None),
        ("POST", "/v1/recommendations", "/v1/recommendations", Some(json!({"session": {"items": ["el-0117"]}}))),
        ("GET", "/v1/trending", "/v1/trending", None),
        ("GET", "/v1/stats/recommendations", "/v1/stats/recommendations", None),
        ("GET", "/v1/stats/experiments/{name}", "/v1/stats/experiments/no-trending", None),
        ("GET", "/v1/stats/exposure", "/v1/stats/exposure", None),
        ("PUT", "/v1/rules/{id}", "/v1/rules/egress", Some(json!({"action": "cap", "per": "brand", "max": 2}))),
        ("GET", "/v1/rules", "/v1/rules", None),
        ("GET", "/v1/rules/{id}", "/v1/rules/egress", None),
        ("DELETE", "/v1/rules/{id}", "/v1/rules/egress", None),
        ("POST", "/v1/chat/completions", "/v1/chat/completions", Some(chat.clone())),
        (
            "POST",
            "/v1/completions",
            "/v1/completions",
            Some(json!({"model": "SmolLM2-135M-Instruct", "prompt": "Hello", "max_tokens": 2})),
        ),
        ("POST", "/v1/embeddings", "/v1/embeddings", Some(json!({"model": "all-MiniLM-L6-v2", "input": "hi"}))),
        (
            "POST",
            "/v1/assistant/chat",
            "/v1/assistant/chat",
            Some(json!({"session_id": "egress-s", "messages": [{"role": "user", "content": "headphones under $100"}]})),
        ),
        ("GET", "/v1/assistant/sessions/{id}", "/v1/assistant/sessions/egress-s", None),
        ("DELETE", "/v1/assistant/sessions/{id}", "/v1/assistant/sessions/egress-s", None),
        ("GET", "/openapi.json", "/openapi.json", None),
        ("GET", "/docs", "/docs", None),
        ("POST", "/v1/products/{id}/describe", "/v1/products/el-0118/describe", Some(json!({"max_words": 30}))),
        ("GET", "/v1/customers/{id}/export", "/v1/customers/egress-c/export", None),
        ("DELETE", "/v1/customers/{id}", "/v1/customers/egress-c", None),
        ("DELETE", "/v1/products/{id}", "/v1/products/egress-p", None),
        ("GET", "/v1/admin/audit", "/v1/admin/audit", None),
        ("POST", "/v1/admin/retention", "/v1/admin/retention", None),
        ("POST", "/v1/admin/train", "/v1/admin/train", None),
        ("GET", "/console", "/console", None),
        ("GET", "/shop", "/shop", None),
        ("GET", "/widget.js", "/widget.js", None),
        ("GET", "/assets/ui.css", "/assets/ui.css", None),
        ("GET", "/assets/ui.js", "/assets/ui.js", None),
        ("GET", "/assets/console.js", "/assets/console.js", None),
        ("GET", "/assets/shop.js", "/assets/shop.js", None),
        ("GET", "/v1/whoami", "/v1/whoami", None),
        ("GET", "/v1/stats/events", "/v1/stats/events?days=7", None),
        ("GET", "/v1/reports", "/v1/reports", None),
        ("GET", "/v1/products/{id}/text", "/v1/products/el-0118/text", None),
        ("GET", "/v1/admin/config", "/v1/admin/config", None),
        ("GET", "/v1/admin/keys", "/v1/admin/keys", None),
        // Last: the first key closes the server to requests without one; the rest use it.
        ("POST", "/v1/admin/keys", "/v1/admin/keys", Some(json!({"name": "egress", "role": "admin"}))),
        ("DELETE", "/v1/admin/keys/{id}", "/v1/admin/keys/egress", None),
    ];
    for rule in rules() {
        assert!(
            calls.iter().any(|(m, p, _, _)| *m == rule.method && *p == rule.path),
            "{} {} is not exercised here",
            rule.method,
            rule.path
        );
    }
    let mut key: Option<String> = None;
    for (method, _, path, body) in &calls {
        let (status, _, v) = call(method, &s.url(path), key.as_deref(), body.as_ref());
        assert!((200..300).contains(&status), "{method} {path}: {status} {v}");
        if let Some(k) = v.get("key").and_then(Value::as_str) {
            key = Some(k.to_string());
        }
    }
    assert!(s.stop_wrapped().success());
    let trace = std::fs::read_to_string(&trace).unwrap();
    let outbound: Vec<&str> = trace
        .lines()
        .filter(|l| l.contains("sa_family=AF_INET") && !l.contains("bind("))
        .filter(|l| !(l.contains("inet_addr(\"127.") || l.contains("\"::1\"") || l.contains("::ffff:127.")))
        .collect();
    assert!(outbound.is_empty(), "outbound connections: {outbound:#?}");
    // The trace did watch the server: its listening socket's bind is in it.
    assert!(
        trace.lines().any(|l| l.contains("bind(") && l.contains("inet_addr(\"127.0.0.1\")")),
        "strace saw nothing of the server:\n{trace}"
    );
    println!("egress: {} traced socket calls, none outbound", trace.lines().count());
}

/// Auth fails closed: a server that had keys does not open when the last key is revoked or
/// `keys.json` is deleted (nor after a restart), and a server with no keys refuses to start on
/// a non-loopback address unless `[auth] open = true` says to serve everyone.
#[test]
fn auth_fails_closed() {
    let dir = crate::harness::temp_dir("fail-closed");
    let keys = |args: &[&str]| {
        let out = crate::harness::aisle().arg("keys").args(args).arg("--data-dir").arg(&dir).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let key = keys(&["create", "--role", "admin", "--name", "ops"]);
    let s = Server::start(&dir, &[]);
    let url = s.url("/v1/products/no-such-product");
    let mode = |s: &Server| crate::harness::get(&s.url("/readyz")).1["auth"].clone();
    assert_eq!(mode(&s), "keys");
    assert_eq!(call("GET", &url, None, None).0, 401);
    assert_eq!(call("GET", &url, Some(&key), None).0, 404, "a valid key passes");
    keys(&["revoke", "ops"]);
    let started = Instant::now();
    while call("GET", &url, Some(&key), None).0 != 401 {
        assert!(started.elapsed() < Duration::from_secs(10), "the revoked key still works");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(call("GET", &url, None, None).0, 401, "no key left: closed, not open");
    assert_eq!(mode(&s), "closed");
    std::fs::remove_file(dir.join("keys.json")).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(call("GET", &url, None, None).0, 401, "keys.json deleted: still closed");
    assert!(!s.logs().contains("panicked"), "{}", s.logs());
    s.stop();
    let s = Server::start(&dir, &[]);
    let url = s.url("/v1/products/no-such-product");
    assert_eq!((call("GET", &url, None, None).0, mode(&s)), (401, json!("closed")), "closed after a restart too");
    s.stop();

    // No keys ever, on every interface: refused, unless open on purpose.
    let fresh = crate::harness::temp_dir("open-refused");
    let serve = |open: bool| {
        let mut cmd = crate::harness::aisle();
        cmd.args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
            .arg(&fresh)
            .arg("--models-dir")
            .arg(crate::harness::models_dir())
            .envs(crate::harness::store_env(&fresh))
            .env("AISLE_AUTH_OPEN", open.to_string())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        cmd.spawn().unwrap()
    };
    let out = serve(false).wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("[auth] open = true"), "{stderr}");
    let mut open = serve(true);
    let first = std::io::BufRead::lines(std::io::BufReader::new(open.stdout.take().unwrap())).next();
    let _ = open.kill();
    let _ = open.wait();
    assert!(first.and_then(|l| l.ok()).is_some_and(|l| l.starts_with("aisle listening on")), "open on purpose starts");

    // The audit log (the key's creation and revocation) is hash-chained: `aisle audit verify`
    // passes, and fails once an entry is changed.
    let verify = || crate::harness::aisle().args(["audit", "verify", "--data-dir"]).arg(&dir).output().unwrap();
    let out = verify();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("audit log intact"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let log = std::fs::read_to_string(dir.join("audit.log")).unwrap();
    std::fs::write(dir.join("audit.log"), log.replacen("keys.create", "keys.list", 1)).unwrap();
    let out = verify();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("line 2"), "{out:?}");
}
