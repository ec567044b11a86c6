//! Real Qdrant servers for the remote store backend: `../shared/qdrant/bin/qdrant` (v1.18.3,
//! built from upstream) started on free loopback ports in a temporary directory, or the
//! user's own server named by `QDRANT_URL`.
//!
//! [`shared`] starts one server per test binary; tests that kill or inspect a server start
//! their own with [`QdrantServer::start`]. Without a binary and without `QDRANT_URL`, tests
//! that need a server print a line starting with `SKIPPED` and pass.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The Qdrant server binary for tests: `QDRANT_BIN`, else `../shared/qdrant/bin/qdrant` next
/// to the repository.
pub fn binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("QDRANT_BIN") {
        return Some(PathBuf::from(p)).filter(|p| p.exists());
    }
    let p = super::harness::root().join("../shared/qdrant/bin/qdrant");
    p.exists().then_some(p)
}

/// Say that a test was skipped for lack of a server, and why.
pub fn skip(test: &str) {
    eprintln!(
        "SKIPPED {test}: no Qdrant server (set QDRANT_URL to a server's gRPC URL, or provide \
         ../shared/qdrant/bin/qdrant or QDRANT_BIN)"
    );
}

/// A free TCP port on loopback (free when asked; the server binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A Qdrant server the tests talk to.
pub struct QdrantServer {
    /// gRPC URL (what aisle's `store.qdrant_url` takes).
    pub grpc_url: String,
    /// REST URL.
    pub http_url: String,
    /// The storage directory, when the tests started the server (None for `QDRANT_URL`).
    pub storage: Option<PathBuf>,
    /// The process id, when the tests started the server.
    pub pid: Option<u32>,
    /// The working directory and ports, to restart the same server.
    dir: Option<PathBuf>,
    ports: (u16, u16, u16),
    env: Vec<(String, String)>,
    args: Vec<String>,
    exited: Option<std::sync::Mutex<mpsc::Receiver<()>>>,
}

impl QdrantServer {
    /// Start a server in a fresh temporary directory with extra `QDRANT__...` settings and
    /// arguments, and wait until it is ready. `None` when there is no binary.
    pub fn start(name: &str, env: &[(&str, &str)], args: &[&str]) -> Option<QdrantServer> {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Self::launch(name, (free_port(), free_port(), free_port()), env, args)
    }

    /// Start a cluster peer on fixed ports (`ports`: http, grpc, p2p) with its own arguments.
    pub fn start_peer(name: &str, ports: (u16, u16, u16), args: &[&str]) -> Option<QdrantServer> {
        Self::launch(name, ports, vec![("QDRANT__CLUSTER__ENABLED".into(), "true".into())], args)
    }

    /// A server in a fresh directory on `ports` (http, grpc, p2p), started and ready.
    fn launch(name: &str, ports: (u16, u16, u16), env: Vec<(String, String)>, args: &[&str]) -> Option<QdrantServer> {
        binary()?;
        let dir = super::harness::temp_dir(&format!("qdrant-{name}"));
        let mut server = QdrantServer {
            grpc_url: format!("http://127.0.0.1:{}", ports.1),
            http_url: format!("http://127.0.0.1:{}", ports.0),
            storage: Some(dir.join("storage")),
            pid: None,
            dir: Some(dir),
            ports,
            env,
            args: args.iter().map(|s| s.to_string()).collect(),
            exited: None,
        };
        server.spawn();
        Some(server)
    }

    /// Spawn the process (again) with the same directory, ports and settings; wait for ready.
    pub fn spawn(&mut self) {
        let dir = self.dir.clone().expect("only servers the tests started can be spawned");
        let (http, grpc, p2p) = self.ports;
        let mut cmd = Command::new(binary().unwrap());
        cmd.current_dir(&dir)
            .args(&self.args)
            .env("QDRANT__SERVICE__HTTP_PORT", http.to_string())
            .env("QDRANT__SERVICE__GRPC_PORT", grpc.to_string())
            .env("QDRANT__CLUSTER__P2P__PORT", p2p.to_string())
            .env("QDRANT__STORAGE__STORAGE_PATH", dir.join("storage"))
            .env("QDRANT__STORAGE__SNAPSHOTS_PATH", dir.join("snapshots"))
            .env("QDRANT__TELEMETRY_DISABLED", "true")
            .env("QDRANT__LOG_LEVEL", "WARN")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let (pid_tx, pid_rx) = mpsc::channel();
        let (exit_tx, exit_rx) = mpsc::channel();
        // Spawned from a thread that lives as long as the test process, so that
        // PR_SET_PDEATHSIG kills the server with us.
        std::thread::spawn(move || {
            use std::os::unix::process::CommandExt;
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let mut child = cmd.spawn().expect("spawn qdrant");
            let pid = child.id();
            pid_tx.send(pid).unwrap();
            let stderr = child.stderr.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    eprintln!("[qdrant {pid}] {line}");
                }
            });
            let _ = child.wait();
            let _ = exit_tx.send(());
            loop {
                std::thread::park();
            }
        });
        self.pid = Some(pid_rx.recv().unwrap());
        self.exited = Some(std::sync::Mutex::new(exit_rx));
        self.wait_ready(Duration::from_secs(60));
    }

    /// Wait until the REST API answers `/readyz` with 200.
    pub fn wait_ready(&self, within: Duration) {
        let started = Instant::now();
        let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
        loop {
            if let Ok(r) = client.get(format!("{}/readyz", self.http_url)).send()
                && r.status().is_success()
            {
                return;
            }
            if let Some(rx) = &self.exited
                && rx.lock().unwrap().try_recv().is_ok()
            {
                panic!("qdrant exited before it was ready");
            }
            assert!(started.elapsed() < within, "qdrant at {} not ready after {within:?}", self.http_url);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kill the server with SIGKILL and wait until it is gone.
    pub fn kill(&mut self) {
        if let Some(pid) = self.pid.take() {
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
            if let Some(rx) = &self.exited {
                let _ = rx.lock().unwrap().recv_timeout(Duration::from_secs(30));
            }
        }
    }

    /// The peer-to-peer port (cluster mode).
    pub fn p2p_port(&self) -> u16 {
        self.ports.2
    }
}

impl Drop for QdrantServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The server shared by the tests of this binary: `QDRANT_URL` if set, else one started from
/// the binary. `None` when neither exists.
pub fn shared() -> Option<&'static QdrantServer> {
    static SERVER: OnceLock<Option<QdrantServer>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            if let Ok(url) = std::env::var("QDRANT_URL") {
                return Some(QdrantServer {
                    grpc_url: url,
                    http_url: String::new(),
                    storage: None,
                    pid: None,
                    dir: None,
                    ports: (0, 0, 0),
                    env: vec![],
                    args: vec![],
                    exited: None,
                });
            }
            QdrantServer::start("shared", &[], &[])
        })
        .as_ref()
}
