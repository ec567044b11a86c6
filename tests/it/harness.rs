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

/// A fresh temporary directory that lives for the whole test process.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = tempfile::Builder::new().prefix(&format!("aisle-{name}-")).tempdir().unwrap();
    d.keep()
}

/// A running server process.
pub struct Server {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
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
    pub fn start_wrapped(data_dir: &Path, env: &[(&str, &str)], wrapper: &[&str]) -> Server {
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let logs_in = logs.clone();
        let wrapper: Vec<String> = wrapper.iter().map(|s| s.to_string()).collect();
        let (tx, rx) = mpsc::channel();
        let (exit_tx, exit_rx) = mpsc::channel();
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
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
        let server = Server { base, pid, exited: std::sync::Mutex::new(exit_rx), logs };
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
    let out = aisle()
        .args(["import", "products"])
        .arg(demo_catalog())
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--models-dir")
        .arg(models_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "demo import failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// A fresh data directory holding the demo catalog (imported once per test process, then
/// copied: an import embeds 643 products, a copy takes milliseconds).
pub fn demo_copy(name: &str) -> PathBuf {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    let template = TEMPLATE.get_or_init(|| {
        let dir = temp_dir("demo-template");
        import_demo(&dir);
        dir
    });
    let dir = temp_dir(name);
    let status = Command::new("cp").arg("-a").arg(format!("{}/.", template.display())).arg(&dir).status().unwrap();
    assert!(status.success(), "copying the demo data failed");
    dir
}

/// Every file under `dir` whose bytes contain `needle`.
pub fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p)
                && bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
            {
                found.push(p);
            }
        }
    }
    found
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
