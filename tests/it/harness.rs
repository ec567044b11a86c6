//! The shared test harness: real `aisle` processes over loopback HTTP, the real models from
//! `models/` and the real embedded Qdrant, in temporary data directories.
//!
//! [`shared`] starts one server per test binary, after importing the demo catalog with the
//! real `aisle import` command. Tests that need their own process (durability, startup
//! failures) use [`Server::start`]. Servers die with the test process (PR_SET_PDEATHSIG from a
//! thread that lives as long as the process).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The models directory laid out by `models/fetch.sh`.
pub fn models_dir() -> PathBuf {
    let d = root().join("models");
    assert!(
        d.join("all-MiniLM-L6-v2/model.safetensors").exists(),
        "models are missing: run models/fetch.sh (scripts/test.sh does it for you)"
    );
    d
}

/// The demo catalog made by `data/fetch.sh`.
pub fn demo_catalog() -> PathBuf {
    let p = root().join("data/demo/products.ndjson");
    assert!(p.exists(), "the demo catalog is missing: run data/fetch.sh (scripts/test.sh does it for you)");
    p
}

/// The demo catalog's products by id, as written in the file (the ground truth for filters).
pub fn demo_products() -> &'static std::collections::HashMap<String, Value> {
    static P: OnceLock<std::collections::HashMap<String, Value>> = OnceLock::new();
    P.get_or_init(|| {
        std::fs::read_to_string(demo_catalog())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .map(|v| (v["id"].as_str().unwrap().to_string(), v))
            .collect()
    })
}

/// The `aisle` binary under test.
pub fn aisle() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_aisle"));
    c.env("RUST_LOG", "info,qdrant_edge=warn").env_remove("QDRANT_URL");
    c
}

/// Whether this test process runs aisle on a Qdrant server (`AISLE_TEST_STORE=server`)
/// rather than the embedded store. The CI runs the integration tests that matter a second time
/// this way (scripts/test.sh).
pub fn on_server() -> bool {
    std::env::var("AISLE_TEST_STORE").is_ok_and(|v| v == "server")
}

/// The environment that puts aisle's store for `data_dir` on the shared Qdrant server: its
/// URL, and collections of its own (a prefix named after the data directory). Empty when the
/// tests use the embedded store.
pub fn store_env(data_dir: &Path) -> Vec<(String, String)> {
    if !on_server() {
        return vec![];
    }
    let server = super::qdrant::shared()
        .expect("AISLE_TEST_STORE=server needs a Qdrant server: set QDRANT_URL or provide ../shared/qdrant/bin/qdrant");
    let name = data_dir.file_name().unwrap().to_string_lossy();
    let prefix: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    vec![
        ("AISLE_STORE_QDRANT_URL".into(), server.grpc_url.clone()),
        ("AISLE_STORE_COLLECTION_PREFIX".into(), format!("{prefix}_")),
    ]
}

/// A fresh temporary directory that lives for the whole test process.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = tempfile::Builder::new().prefix(&format!("aisle-{name}-")).tempdir().unwrap();
    d.keep()
}

/// A running server process.
pub struct Server {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    pid: u32,
    exited: std::sync::Mutex<mpsc::Receiver<std::process::ExitStatus>>,
    logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    /// Start `aisle serve` on a free port over `data_dir` and wait until `/readyz` is 200.
    pub fn start(data_dir: &Path, env: &[(&str, &str)]) -> Server {
        Self::start_wrapped(data_dir, env, &[])
    }

    /// As [`Server::start`], run under `wrapper` (e.g. `strace -f -o FILE`).
    pub fn start_wrapped(data_dir: &Path, env_in: &[(&str, &str)], wrapper: &[&str]) -> Server {
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let logs_in = logs.clone();
        let wrapper: Vec<String> = wrapper.iter().map(|s| s.to_string()).collect();
        let (tx, rx) = mpsc::channel();
        let (exit_tx, exit_rx) = mpsc::channel();
        let mut env: Vec<(String, String)> = store_env(data_dir);
        env.extend(env_in.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let dd = data_dir.to_path_buf();
        // The child is spawned from a thread that lives as long as the test process, so that
        // PR_SET_PDEATHSIG (which fires when the spawning *thread* exits) kills it with us.
        std::thread::spawn(move || {
            let mut cmd = if wrapper.is_empty() {
                aisle()
            } else {
                let mut c = Command::new(&wrapper[0]);
                c.args(&wrapper[1..]).arg(env!("CARGO_BIN_EXE_aisle"));
                c.env("RUST_LOG", "info,qdrant_edge=warn").env_remove("QDRANT_URL");
                c
            };
            cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
                .arg(&dd)
                .arg("--models-dir")
                .arg(models_dir())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            // The small chat model unless a test asks for another: most tests check behaviour,
            // not prose, and the default ("auto") would load the 1.5B model.
            if !env.iter().any(|(k, _)| k == "AISLE_CHAT_MODEL") {
                cmd.env("AISLE_CHAT_MODEL", "SmolLM2-135M-Instruct");
            }
            for (k, v) in &env {
                cmd.env(k, v);
            }
            use std::os::unix::process::CommandExt;
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let mut child: Child = cmd.spawn().expect("spawn aisle serve");
            let stdout = child.stdout.take().unwrap();
            let stderr = child.stderr.take().unwrap();
            let pid = child.id();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    eprintln!("[aisle {pid}] {line}");
                    logs_in.lock().unwrap().push(line);
                }
            });
            let mut sent = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("aisle listening on ") {
                    let _ = tx.send(Ok((url.to_string(), pid)));
                    sent = true;
                }
            }
            let status = child.wait().unwrap();
            if !sent {
                let _ = tx.send(Err(status));
            }
            let _ = exit_tx.send(status);
            loop {
                std::thread::park();
            }
        });
        let (base, pid) = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(v)) => v,
            Ok(Err(status)) => panic!("aisle serve exited before listening: {status}"),
            Err(_) => panic!("aisle serve did not start listening within 60s"),
        };
        let server =
            Server { base, data_dir: data_dir.to_path_buf(), pid, exited: std::sync::Mutex::new(exit_rx), logs };
        server.wait_ready(Duration::from_secs(180));
        server
    }

    fn wait_ready(&self, timeout: Duration) {
        let started = Instant::now();
        loop {
            if let Ok(status) = self.exited.lock().unwrap().try_recv() {
                panic!("aisle serve exited during startup: {status}");
            }
            if let Ok(r) = client().get(format!("{}/readyz", self.base)).send()
                && r.status() == 200
            {
                return;
            }
            assert!(started.elapsed() < timeout, "server not ready after {timeout:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stop a server started under a wrapper: SIGTERM to the wrapper's children (the server),
    /// then wait for the wrapper to exit with it.
    pub fn stop_wrapped(self) -> std::process::ExitStatus {
        let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", self.pid)).unwrap_or_default();
        for child in children.split_whitespace().filter_map(|c| c.parse::<i32>().ok()) {
            unsafe {
                libc::kill(child, libc::SIGTERM);
            }
        }
        self.exited.lock().unwrap().recv_timeout(Duration::from_secs(60)).expect("server did not stop")
    }

    /// Everything the server wrote to stderr so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// Wait for the process to exit by itself (e.g. an injected crash).
    pub fn wait_exit(self) -> std::process::ExitStatus {
        self.exited.lock().unwrap().recv_timeout(Duration::from_secs(60)).expect("server did not exit")
    }

    /// The URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Kill with SIGKILL (no shutdown, no flush) and wait for the process to be gone.
    pub fn kill(self) {
        unsafe {
            libc::kill(self.pid as i32, libc::SIGKILL);
        }
        self.exited.lock().unwrap().recv_timeout(Duration::from_secs(30)).expect("server did not die");
    }

    /// Stop with SIGTERM (graceful) and return the exit status.
    pub fn stop(self) -> std::process::ExitStatus {
        unsafe {
            libc::kill(self.pid as i32, libc::SIGTERM);
        }
        self.exited.lock().unwrap().recv_timeout(Duration::from_secs(60)).expect("server did not stop")
    }
}

/// Import the demo catalog into `data_dir` with `aisle import products` (the real command).
pub fn import_demo(data_dir: &Path) {
    import_demo_with(data_dir, store_env(data_dir));
}

/// As [`import_demo`], with the given store environment (none: the embedded store).
fn import_demo_with(data_dir: &Path, env: Vec<(String, String)>) {
    let out = aisle()
        .args(["import", "products"])
        .arg(demo_catalog())
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--models-dir")
        .arg(models_dir())
        .envs(env)
        .output()
        .unwrap();
    assert!(out.status.success(), "demo import failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// A fresh data directory holding the demo catalog (imported once per test process, then
/// copied: an import embeds 643 products, a copy takes milliseconds).
///
/// On a Qdrant server (`AISLE_TEST_STORE=server`) the copy's collections are moved onto the
/// server with `aisle store migrate --to` (the real command) and the embedded copy removed.
pub fn demo_copy(name: &str) -> PathBuf {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    let template = TEMPLATE.get_or_init(|| {
        let dir = temp_dir("demo-template");
        import_demo_with(&dir, vec![]);
        dir
    });
    let dir = temp_dir(name);
    let status = Command::new("cp").arg("-a").arg(format!("{}/.", template.display())).arg(&dir).status().unwrap();
    assert!(status.success(), "copying the demo data failed");
    let env: std::collections::HashMap<String, String> = store_env(&dir).into_iter().collect();
    if let (Some(url), Some(prefix)) = (env.get("AISLE_STORE_QDRANT_URL"), env.get("AISLE_STORE_COLLECTION_PREFIX")) {
        let out = aisle()
            .args(["store", "migrate", "--to", url, "--target-prefix", prefix, "--data-dir"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "migrating the demo data failed: {}", String::from_utf8_lossy(&out.stderr));
        std::fs::remove_dir_all(dir.join("qdrant")).unwrap();
    }
    dir
}

/// The `aisle` binary with the store environment of `data_dir` (see [`store_env`]).
pub fn aisle_on(data_dir: &Path) -> Command {
    let mut c = aisle();
    c.envs(store_env(data_dir));
    c
}

/// Every file under `dir` whose bytes contain `needle`.
///
/// Qdrant keeps payloads LZ4-compressed in its segments (the embedded engine and the server
/// alike), and LZ4 may fold a string's first or last byte into a back-reference to the bytes
/// around it; so a needle of 8 bytes or more also matches without its first and last byte.
/// Tests that a string is gone pair this with a canary of the same shape that must be found.
pub fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    // A literal search (memchr underneath): a server's storage directory is tens of MB.
    let core = if needle.len() >= 8 && needle.is_ascii() { &needle[1..needle.len() - 1] } else { needle };
    let pattern = regex::bytes::Regex::new(&regex::escape(core)).unwrap();
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p)
                && pattern.is_match(&bytes)
            {
                found.push(p);
            }
        }
    }
    found
}

/// Every file holding `needle` where aisle keeps data for `data_dir`: the data directory, and
/// on a Qdrant server (`AISLE_TEST_STORE=server`) the server's storage directory too (when the
/// tests started the server; a `QDRANT_URL` server's disk cannot be searched).
pub fn stored_containing(data_dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = files_containing(data_dir, needle);
    if on_server()
        && let Some(storage) = super::qdrant::shared().and_then(|q| q.storage.clone())
    {
        found.extend(files_containing(&storage, needle));
    }
    found
}

/// None of `needles` is stored for `data_dir` (see [`stored_containing`]). A Qdrant server
/// removes the bytes in the background after aisle's vacuum (README: within two flush
/// intervals plus the time to rebuild the collection's segments); this waits up to a minute
/// for that, and says how long it took.
pub fn assert_not_stored(data_dir: &Path, needles: &[&str]) {
    let started = Instant::now();
    for needle in needles {
        loop {
            let found = stored_containing(data_dir, needle);
            if found.is_empty() {
                break;
            }
            assert!(
                on_server() && started.elapsed() < Duration::from_secs(60),
                "'{needle}' is still on disk in {found:#?}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    if on_server() {
        eprintln!("no trace on the Qdrant server's disk after {:?}", started.elapsed());
    }
}

/// Each of `canaries` (strings of the same shape as erased ones, that were kept) is stored
/// for `data_dir` outside any write-ahead log: proof that a search for erased strings would
/// have found them in the rebuilt segments. Waits up to a minute on a Qdrant server (the
/// rebuild runs in the background).
pub fn assert_canaries_found(data_dir: &Path, canaries: &[&str]) {
    let started = Instant::now();
    for canary in canaries {
        loop {
            let found: Vec<PathBuf> = stored_containing(data_dir, canary)
                .into_iter()
                .filter(|p| !p.components().any(|c| c.as_os_str() == "wal"))
                .collect();
            if !found.is_empty() {
                break;
            }
            assert!(
                on_server() && started.elapsed() < Duration::from_secs(60),
                "the kept '{canary}' is not found outside the write-ahead log: the search cannot see such strings"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// A request with a bearer key; returns status, headers and body.
pub fn call(
    method: &str,
    url: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut r = client().request(method.parse().unwrap(), url);
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    if let Some(b) = body {
        r = r.json(b);
    }
    let r = r.send().unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.json().unwrap_or(Value::Null))
}

/// The one server of this test binary, with the demo catalog imported.
pub fn shared() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(|| {
        let dir = temp_dir("shared");
        import_demo(&dir);
        Server::start(&dir, &[])
    })
}

/// An HTTP client.
pub fn client() -> reqwest::blocking::Client {
    static C: OnceLock<reqwest::blocking::Client> = OnceLock::new();
    C.get_or_init(|| reqwest::blocking::Client::builder().timeout(Duration::from_secs(120)).build().unwrap()).clone()
}

/// POST JSON, returning status and body.
pub fn post(url: &str, body: &Value) -> (u16, Value) {
    let r = client().post(url).json(body).send().unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

/// GET, returning status and body.
pub fn get(url: &str) -> (u16, Value) {
    let r = client().get(url).send().unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

/// PUT JSON, returning status and body.
pub fn put(url: &str, body: &Value) -> (u16, Value) {
    let r = client().put(url).json(body).send().unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

/// Search the shared server; returns the hits' products.
pub fn search(body: Value) -> Vec<Value> {
    let (status, v) = post(&shared().url("/v1/search"), &body);
    assert_eq!(status, 200, "search failed: {v}");
    v["items"].as_array().unwrap().iter().map(|h| h["product"].clone()).collect()
}
