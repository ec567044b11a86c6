//! The API contract: `GET /openapi.json` describes the router, route for route, and the auth
//! table enforces a role for every operation it lists. (The document itself is validated as
//! OpenAPI 3.1 and fuzzed with schemathesis by `scripts/contract-test.sh`.)

use std::collections::{BTreeMap, BTreeSet};

use crate::harness::{client, get, shared};

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// The documented operations: path -> methods (upper case).
fn documented() -> BTreeMap<String, BTreeSet<String>> {
    let (status, doc) = get(&shared().url("/openapi.json"));
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0", "{doc}");
    let mut out = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let methods: BTreeSet<String> =
            METHODS.iter().filter(|m| item.get(**m).is_some()).map(|m| m.to_uppercase()).collect();
        assert!(!methods.is_empty(), "{path} has no operation");
        out.insert(path.clone(), methods);
    }
    out
}

#[test]
fn the_document_and_the_router_serve_the_same_routes() {
    let documented = documented();
    assert!(documented.len() >= 25, "{documented:?}");
    // A method no route has answers 405 with the methods the router has for that path: they must
    // be exactly the documented ones (and HEAD wherever GET is). A path the router lacked would
    // answer 404.
    for (path, methods) in &documented {
        let url = shared().url(&path.replace("{id}", "contract-probe"));
        let r = client().request(reqwest::Method::TRACE, &url).send().unwrap();
        assert_eq!(r.status().as_u16(), 405, "TRACE {path}: the router does not know the path");
        let allow: BTreeSet<String> = r
            .headers()
            .get("allow")
            .unwrap_or_else(|| panic!("405 on {path} without Allow"))
            .to_str()
            .unwrap()
            .split(',')
            .map(|m| m.trim().to_string())
            .filter(|m| m != "HEAD")
            .collect();
        assert_eq!(&allow, methods, "{path}: the router's methods and the document's differ");
    }
    // Every documented operation has an auth rule, and every rule is documented.
    let rules: BTreeSet<(String, String)> =
        aisle::api::openapi::rules().iter().map(|r| (r.path.clone(), r.method.to_string())).collect();
    let ops: BTreeSet<(String, String)> =
        documented.iter().flat_map(|(p, ms)| ms.iter().map(move |m| (p.clone(), m.clone()))).collect();
    assert_eq!(rules, ops);
}

#[test]
fn the_reference_page_is_served_without_outside_resources() {
    let r = client().get(shared().url("/docs")).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = r.text().unwrap();
    assert!(html.contains("openapi.json"), "the page renders the document");
    for outside in ["http://", "https://", "//cdn", "@import"] {
        assert!(!html.contains(outside), "the page refers to {outside}");
    }
}
