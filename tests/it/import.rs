//! `aisle import products`: CSV, JSON and NDJSON with good and bad rows; bad rows never stop
//! the rest; the report names each bad row and field.

use std::path::Path;

use serde_json::{Value, json};

use crate::harness::{Server, aisle, get, models_dir, temp_dir};

fn import(dir: &Path, file: &Path, extra: &[&str]) -> (i32, Value, String) {
    let out = aisle()
        .args(["import", "products"])
        .arg(file)
        .arg("--data-dir")
        .arg(dir)
        .arg("--models-dir")
        .arg(models_dir())
        .arg("--json")
        .args(extra)
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), report, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn good_and_bad_rows_in_every_format() {
    let dir = temp_dir("import");
    let files = temp_dir("import-files");

    let csv = files.join("p.csv");
    std::fs::write(
        &csv,
        "id,title,price,currency,categories,in_stock,attr.color\n\
         c-1,Red Kettle,19.99,USD,Kitchen|Kettles,yes,red\n\
         c-2,Bad Price,-3,USD,Kitchen,yes,\n\
         c-3,,5,USD,Kitchen,yes,\n\
         c-4,Blue Kettle,abc,USD,Kitchen,no,blue\n\
         c-5,Green Kettle,24.50,EUR,Kitchen,no,green\n",
    )
    .unwrap();
    let (code, report, stderr) = import(&dir, &csv, &[]);
    assert_eq!(code, 3, "rejected rows give exit code 3: {stderr}");
    assert_eq!((report["accepted"].as_u64(), report["rejected"].as_u64()), (Some(2), Some(3)), "{report}");
    let errors: Vec<(u64, String)> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["row"].as_u64().unwrap(), e["errors"][0]["pointer"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(errors, vec![(3, "/price".into()), (4, "/title".into()), (5, "/price".into())]);
    assert!(stderr.contains("row 3 (id c-2): /price"), "{stderr}");

    let json_file = files.join("p.json");
    std::fs::write(
        &json_file,
        json!([{"id": "j-1", "title": "Toaster", "price": 30}, {"id": "j-2", "title": "Bad", "currency": "XYZ"}, 7])
            .to_string(),
    )
    .unwrap();
    let (code, report, _) = import(&dir, &json_file, &[]);
    assert_eq!(code, 3);
    assert_eq!((report["accepted"].as_u64(), report["rejected"].as_u64()), (Some(1), Some(2)), "{report}");

    let nd = files.join("p.ndjson");
    std::fs::write(&nd, "{\"id\": \"n-1\", \"title\": \"Blender\"}\n{broken\n{\"id\": \"n-2\", \"title\": \"Mixer\", \"stock_qty\": 0}\n{\"id\": \"n-1\", \"title\": \"Dup\"}\n").unwrap();
    let (code, report, _) = import(&dir, &nd, &[]);
    assert_eq!(code, 3);
    assert_eq!((report["accepted"].as_u64(), report["rejected"].as_u64()), (Some(2), Some(2)), "{report}");
    assert_eq!(report["errors"][0]["row"], 2);
    assert_eq!(report["errors"][1]["errors"][0]["pointer"], "/id");

    // Importing the same file again: nothing is re-embedded.
    let good = files.join("good.ndjson");
    std::fs::write(&good, "{\"id\": \"n-1\", \"title\": \"Blender\"}\n").unwrap();
    let (code, report, _) = import(&dir, &good, &[]);
    assert_eq!(code, 0);
    assert_eq!(
        (
            report["counts"]["updated"].as_u64(),
            report["counts"]["embedded"].as_u64(),
            report["counts"]["reused"].as_u64()
        ),
        (Some(1), Some(0), Some(1))
    );

    // A file-level problem is an error with a message, not a panic.
    let bad = files.join("bad.csv");
    std::fs::write(&bad, "identifier,name\n1,x\n").unwrap();
    let (code, _, stderr) = import(&dir, &bad, &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("unknown CSV column 'identifier'"), "{stderr}");

    // What was accepted is served; what was rejected is not.
    let server = Server::start(&dir, &[]);
    for id in ["c-1", "c-5", "j-1", "n-1", "n-2"] {
        assert_eq!(get(&server.url(&format!("/v1/products/{id}"))).0, 200, "{id}");
    }
    for id in ["c-2", "c-3", "c-4", "j-2"] {
        assert_eq!(get(&server.url(&format!("/v1/products/{id}"))).0, 404, "{id}");
    }
    let (_, p) = get(&server.url("/v1/products/c-1"));
    assert_eq!(p["categories"], json!(["Kitchen", "Kettles"]));
    assert_eq!(p["attributes"]["color"], "red");
    let (_, p) = get(&server.url("/v1/products/c-5"));
    assert_eq!((p["currency"].as_str(), p["in_stock"].as_bool()), (Some("EUR"), Some(false)));

    // Import through the running server (the data directory is locked by it).
    let (code, _, stderr) = import(&dir, &good, &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("in use"), "{stderr}");
    let more = files.join("more.ndjson");
    std::fs::write(
        &more,
        "{\"id\": \"s-1\", \"title\": \"Via server\"}\n{\"id\": \"s-2\", \"title\": \"Bad\", \"price\": -1}\n",
    )
    .unwrap();
    let (code, report, stderr) = import(&dir, &more, &["--server", &server.base]);
    assert_eq!(code, 3, "{stderr}");
    assert_eq!((report["accepted"].as_u64(), report["rejected"].as_u64()), (Some(1), Some(1)), "{report}");
    assert_eq!(report["errors"][0]["row"], 2);
    assert_eq!(report["errors"][0]["errors"][0]["pointer"], "/price");
    assert_eq!(get(&server.url("/v1/products/s-1")).0, 200);
    server.stop();
}

#[test]
fn events_import_in_every_format_and_through_the_server() {
    let dir = temp_dir("import-events");
    let files = temp_dir("import-events-files");
    let products = files.join("p.ndjson");
    std::fs::write(
        &products,
        (0..6).map(|i| format!("{{\"id\": \"ev-{i}\", \"title\": \"Camping item {i}\"}}\n")).collect::<String>(),
    )
    .unwrap();
    assert_eq!(import(&dir, &products, &[]).0, 0);

    let csv = files.join("e.csv");
    std::fs::write(
        &csv,
        "id,session_id,product_id,kind,value,timestamp\n\
         e1,s1,ev-1,purchase,,\n\
         e2,s1,ev-2,purchase,,\n\
         e3,s1,ev-9,view,,\n\
         e4,s2,ev-1,rating,7,\n\
         e5,s2,ev-1,teleport,,\n\
         e1,s1,ev-1,purchase,,\n",
    )
    .unwrap();
    let out = aisle()
        .args(["import", "events"])
        .arg(&csv)
        .arg("--data-dir")
        .arg(&dir)
        .arg("--models-dir")
        .arg(models_dir())
        .arg("--json")
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        (report["accepted"].as_u64(), report["rejected"].as_u64(), report["counts"]["duplicates"].as_u64()),
        (Some(2), Some(3), Some(1)),
        "{report}"
    );
    let rows: Vec<(u64, &str)> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["row"].as_u64().unwrap(), e["errors"][0]["pointer"].as_str().unwrap()))
        .collect();
    assert_eq!(rows, vec![(4, "/product_id"), (5, "/value"), (6, "/kind")]);

    let server = Server::start(&dir, &[]);
    let (_, v) = get(&server.url("/v1/products/ev-1/similar?mode=co_purchase"));
    assert_eq!(v["items"][0]["product"]["id"], "ev-2", "{v}");
    let nd = files.join("more.ndjson");
    std::fs::write(&nd, "{\"session_id\": \"s3\", \"product_id\": \"ev-4\", \"kind\": \"purchase\"}\n{\"session_id\": \"s3\", \"product_id\": \"ev-4\", \"kind\": \"purchase\", \"value\": -1}\n{\"session_id\": \"s4\", \"product_id\": \"ev-4\", \"kind\": \"purchase\"}\n").unwrap();
    let out =
        aisle().args(["import", "events"]).arg(&nd).arg("--server").arg(&server.base).arg("--json").output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((report["accepted"].as_u64(), report["rejected"].as_u64()), (Some(2), Some(1)), "{report}");
    assert_eq!(
        (report["errors"][0]["row"].as_u64(), report["errors"][0]["errors"][0]["pointer"].as_str()),
        (Some(2), Some("/value"))
    );
    let (_, v) = get(&server.url("/v1/trending?limit=1"));
    assert_eq!(v["items"][0]["product"]["id"], "ev-4", "{v}");
    server.stop();
}

/// `--server` against a server that rate-limits: every 429 is retried after its `Retry-After`
/// until the batch is taken; `--resume` continues after the rows a checkpoint says were taken.
#[test]
fn an_import_through_a_busy_server_retries_and_resumes() {
    let dir = temp_dir("import-retry");
    let files = temp_dir("import-retry-files");
    let server =
        Server::start(&dir, &[("AISLE_CHAT_MODEL", ""), ("AISLE_AUTH_RATE_PER_SEC", "1"), ("AISLE_AUTH_BURST", "2")]);
    let rows = |prefix: &str| -> String {
        (0..12).map(|i| format!("{{\"id\": \"{prefix}-{i}\", \"title\": \"Retry product {i}\"}}\n")).collect()
    };
    let busy = files.join("busy.ndjson");
    std::fs::write(&busy, rows("busy")).unwrap();
    let (code, report, stderr) = import(&dir, &busy, &["--server", &server.base, "--batch", "2"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["accepted"], 12, "{report}");
    assert!(stderr.contains("429") && stderr.contains("retrying in"), "no retry reported: {stderr}");
    // One listing (this test's reads share the rate limit: wait out its 429s).
    let stored = |server: &Server| -> Vec<String> {
        loop {
            let (status, page) = get(&server.url("/v1/products?limit=100"));
            if status != 429 {
                assert_eq!(status, 200, "{page}");
                return page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["id"].as_str().unwrap().to_string())
                    .collect();
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    };
    let ids = stored(&server);
    assert!((0..12).all(|i| ids.contains(&format!("busy-{i}"))), "{ids:?}");

    let resumed = files.join("resumed.ndjson");
    std::fs::write(&resumed, rows("resumed")).unwrap();
    let checkpoint = files.join("resumed.ndjson.aisle-import");
    std::fs::write(&checkpoint, r#"{"rows": 12, "done": 8}"#).unwrap();
    let (code, report, stderr) = import(&dir, &resumed, &["--server", &server.base, "--batch", "2", "--resume"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("resuming after the 8 rows"), "{stderr}");
    assert_eq!(report["accepted"], 4, "only the rows after the checkpoint are sent: {report}");
    let ids = stored(&server);
    for i in 0..12 {
        assert_eq!(ids.contains(&format!("resumed-{i}")), i >= 8, "resumed-{i}: {ids:?}");
    }
    assert!(!checkpoint.exists(), "a finished import leaves no checkpoint");
    server.stop();
}
