//! The `aisle` command: `serve`, `import`, `models`, `keys`.
//!
//! Configuration comes from `aisle.toml` < `AISLE_*` environment < the flags here. This module
//! parses the command line and calls the domain modules; it knows nothing of HTTP internals.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::catalog::import::{Format, RowError, read_rows};
use crate::config::Config;
use crate::error::FieldError;
use crate::error::{Error, Result};

/// aisle: private recommendations, product search and a shopping assistant, in one binary.
#[derive(Debug, Parser)]
#[command(name = "aisle", version, about)]
pub struct Cli {
    /// Configuration file (default: ./aisle.toml if it exists).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory (overrides [store] data_dir).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Models directory (overrides [models] dir).
    #[arg(long, global = true, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
    /// Device: auto, cpu or cuda:N (overrides [models] device).
    #[arg(long, global = true)]
    pub device: Option<String>,
    /// Compute threads; 0 = from the cgroup CPU quota (overrides [models] threads).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server.
    Serve(ServeArgs),
    /// Import data from files.
    #[command(subcommand)]
    Import(ImportCommand),
    /// List, verify or download models.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Manage API keys (kept hashed in DATA_DIR/keys.json; a running server picks changes up).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Offline evaluation: baselines and aisle's hybrid, full ranking, on MovieLens 100K.
    Eval(EvalArgs),
    /// Benchmarks with their anchors side by side: embed, chat, search, recommend, ingest, train
    /// (all by default). Prints a table; --json and --svg write the report and a chart.
    Bench(BenchArgs),
    /// Score the shopping assistant on a set of shopper requests with the configured chat model
    /// (constraint satisfaction, refusals, grounding, latency). The server must not be running.
    AssistantEval(AssistantEvalArgs),
    /// Train the collaborative model from the stored events (the server must not be running;
    /// with one running, use POST /v1/admin/train).
    Train,
}

/// `aisle eval` flags.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Dataset: `ml-100k` (RecBole's files, fetched by data/fetch.sh), or `shop`: the events
    /// in the data directory (with the server stopped).
    #[arg(long, default_value = "ml-100k")]
    pub dataset: String,
    /// Where the dataset's files are (default: data/raw/ml-100k).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Split: leave-last-N (per user, by time) or temporal-F (global time cut).
    #[arg(long, default_value = "leave-last-10")]
    pub split: String,
    /// Directory for report.md, report.json and report.svg.
    #[arg(long, default_value = "eval-report")]
    pub out: PathBuf,
    /// One setting per model instead of the validation grid (for smoke tests).
    #[arg(long)]
    pub quick: bool,
    /// Skip the content model (no embedding model needed).
    #[arg(long)]
    pub no_content: bool,
}

/// `aisle bench` flags.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Which benchmarks (embed, chat, search, recommend, ingest, train); all when none.
    pub which: Vec<String>,
    /// Fewer repetitions and only the 10k-product shop (under 5 minutes on 2 cores once the
    /// shop and llama.cpp are cached).
    #[arg(long)]
    pub quick: bool,
    /// Write the report as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write a chart of the ratios to the anchors (SVG).
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// Do not run llama.cpp (building it the first time takes ~15 minutes on 2 cores).
    #[arg(long)]
    pub no_anchor: bool,
}

/// `aisle assistant-eval` flags.
#[derive(Debug, Args)]
pub struct AssistantEvalArgs {
    /// The requests (JSON lines: id, turns, expect).
    #[arg(long, default_value = "tests/data/assistant_eval.jsonl")]
    pub cases: PathBuf,
    /// Write the report as JSON here too.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// `aisle keys ...`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it (once: only its hash is kept).
    Create {
        /// admin, app or read.
        #[arg(long)]
        role: String,
        /// A name for logs and the audit log.
        #[arg(long)]
        name: String,
    },
    /// List the keys (names, roles, hash prefixes).
    List,
    /// Delete a key by name.
    Revoke {
        /// The key's name.
        name: String,
    },
    /// Print the SHA-256 of a key, for `[auth] keys` in the configuration.
    Hash {
        /// The key.
        key: String,
    },
}

/// `aisle serve` flags.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (overrides [server] listen).
    #[arg(long)]
    pub listen: Option<String>,
}

/// `aisle import ...`
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Import products from CSV, a JSON array or NDJSON.
    Products(ImportArgs),
    /// Import events from CSV, a JSON array or NDJSON.
    Events(ImportArgs),
}

/// `aisle import products` flags.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file to import.
    pub file: PathBuf,
    /// File format (default: from the extension).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Send the products to a running server (e.g. http://127.0.0.1:8080) instead of opening
    /// the data directory directly.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// API key for --server (an admin key for products, app for events).
    #[arg(long, env = "AISLE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Records per batch.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Print the full report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `aisle models ...`
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Show the configured models and what is in the models directory.
    List,
    /// Check checksums and load each configured model.
    Verify,
    /// Download a model from the Hugging Face Hub (needs network; `serve` never downloads).
    Pull {
        /// Repository, e.g. sentence-transformers/all-MiniLM-L6-v2.
        repo: String,
        /// Files to fetch (default: the sentence-transformers layout).
        #[arg(long = "file")]
        files: Vec<String>,
        /// Revision (branch, tag or commit).
        #[arg(long, default_value = "main")]
        revision: String,
        /// Folder name under the models directory (default: the repository's name).
        #[arg(long)]
        name: Option<String>,
    },
}

impl Cli {
    /// The configuration: file < environment < these flags.
    pub fn config(&self) -> Result<Config> {
        let mut c = Config::load(self.config.as_deref(), std::env::vars())?;
        if let Some(d) = &self.data_dir {
            c.store.data_dir = d.clone();
        }
        if let Some(d) = &self.models_dir {
            c.models.dir = d.clone();
        }
        if let Some(d) = &self.device {
            c.models.device = d.clone();
        }
        if let Some(t) = self.threads {
            c.models.threads = t;
        }
        if let Command::Serve(ServeArgs { listen: Some(l) }) = &self.command {
            c.server.listen = l.clone();
        }
        c.validate()?;
        Ok(c)
    }
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,qdrant_edge=error,tower_http=warn"));
    let writer = RedactingStderr(crate::privacy::pii::Redactor::new(&config.privacy.redact));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    let _ = if config.server.log_format == "json" { builder.json().try_init() } else { builder.try_init() };
}

/// Log output: each formatted line is PII-redacted before it reaches stderr.
struct RedactingStderr(crate::privacy::pii::Redactor);

/// One log event, collected and redacted when dropped.
pub struct RedactedLine<'a> {
    redactor: &'a crate::privacy::pii::Redactor,
    buf: Vec<u8>,
}

impl std::io::Write for RedactedLine<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for RedactedLine<'_> {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), self.redactor.redact(&text).as_bytes());
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactingStderr {
    type Writer = RedactedLine<'a>;
    fn make_writer(&'a self) -> Self::Writer {
        RedactedLine { redactor: &self.0, buf: Vec::with_capacity(256) }
    }
}

/// `aisle eval`: load, embed item texts, run the grid, write the reports.
fn eval_command(config: &Config, args: EvalArgs) -> Result<ExitCode> {
    use crate::eval::{data, report};
    let how: crate::eval::Split = args.split.parse().map_err(|e: String| Error::invalid("/split", e))?;
    let ds = match args.dataset.as_str() {
        "ml-100k" => data::load_ml100k(&args.data.clone().unwrap_or_else(|| PathBuf::from("data/raw/ml-100k")))?,
        "shop" => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::io("cannot start the async runtime", e))?;
            runtime.block_on(async {
                let c = config.store.clone();
                let store = tokio::task::spawn_blocking(move || crate::store::Store::open(&c))
                    .await
                    .map_err(|e| Error::Internal(e.to_string()))??;
                let w = config.events.clone();
                let weight = move |k: crate::events::Kind, v: f64| crate::events::kind_weight(&w, k, v);
                data::load_shop(&store, weight).await
            })?
        }
        other => return Err(Error::invalid("/dataset", format!("unknown dataset '{other}' (ml-100k, shop)"))),
    };
    eprintln!("{}: {} users, {} items, {} interactions", ds.name, ds.n_users, ds.n_items, ds.interactions.len());
    let vectors = if args.no_content {
        None
    } else {
        let started = std::time::Instant::now();
        let device = crate::infer::select_device(&config.models.device)?;
        let model = crate::infer::EmbeddingModel::load(&config.models.resolve(&config.models.embedding), &device)?;
        let texts: Vec<&str> = ds.item_text.iter().map(String::as_str).collect();
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(64) {
            out.extend(model.embed(chunk)?);
        }
        eprintln!("embedded {} item texts in {:.1}s", out.len(), started.elapsed().as_secs_f64());
        Some(std::sync::Arc::new(out))
    };
    let r = report::run(&ds, how, vectors, args.quick, &|line| eprintln!("  {line}"));
    let table = report::markdown(&r);
    print!("{table}");
    std::fs::create_dir_all(&args.out).map_err(|e| Error::io(format!("cannot create {}", args.out.display()), e))?;
    let write = |name: &str, body: &[u8]| {
        let p = args.out.join(name);
        std::fs::write(&p, body).map_err(|e| Error::io(format!("cannot write {}", p.display()), e))
    };
    write("report.md", table.as_bytes())?;
    write("report.json", &serde_json::to_vec_pretty(&r).map_err(|e| Error::Internal(e.to_string()))?)?;
    write("report.svg", report::svg(&r).as_bytes())?;
    eprintln!("wrote {}/report.{{md,json,svg}}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

/// `aisle keys ...`: edits DATA_DIR/keys.json (no store, so it works beside a running server).
fn keys_command(config: &Config, cmd: KeysCommand) -> Result<ExitCode> {
    use crate::privacy::apikeys::{
        Role, StoredKey, generate_key, hash_key, keys_file, read_keys_file, write_keys_file,
    };
    let path = keys_file(&config.store.data_dir);
    let audit = |action: &str, subject: Option<String>| -> Result<()> {
        crate::privacy::audit::AuditLog::open(&config.store.data_dir)?.append(&crate::privacy::audit::AuditEntry {
            ts: chrono::Utc::now(),
            actor: "cli".into(),
            role: "admin".into(),
            action: action.into(),
            subject,
            status: 0,
        })
    };
    match cmd {
        KeysCommand::Create { role, name } => {
            let role = Role::parse(&role)
                .ok_or_else(|| Error::invalid("/role", format!("must be admin, app or read, not '{role}'")))?;
            if name.trim().is_empty() || name.len() > 100 {
                return Err(Error::invalid("/name", "must be 1 to 100 characters"));
            }
            let mut keys = read_keys_file(&path)?;
            if keys.iter().any(|k| k.name == name) {
                return Err(Error::Conflict(format!("a key named '{name}' exists; revoke it first")));
            }
            let key = generate_key();
            keys.push(StoredKey {
                name: name.clone(),
                role,
                sha256: hash_key(&key),
                created_at: Some(chrono::Utc::now()),
            });
            write_keys_file(&path, &keys)?;
            audit("keys.create", Some(format!("key:{name}")))?;
            eprintln!(
                "created {} key '{name}' (stored hashed in {}); it is shown only now:",
                role.as_str(),
                path.display()
            );
            println!("{key}");
        }
        KeysCommand::List => {
            for k in read_keys_file(&path)? {
                println!(
                    "{}\t{}\t{}…\t{}",
                    k.name,
                    k.role.as_str(),
                    &k.sha256[..12],
                    k.created_at.map(|t| t.to_rfc3339()).unwrap_or_default()
                );
            }
            for k in &config.auth.keys {
                println!("{}\t{}\t{}…\t(configuration)", k.name, k.role, &k.sha256[..12.min(k.sha256.len())]);
            }
        }
        KeysCommand::Revoke { name } => {
            let mut keys = read_keys_file(&path)?;
            let before = keys.len();
            keys.retain(|k| k.name != name);
            if keys.len() == before {
                return Err(Error::not_found("key", name));
            }
            write_keys_file(&path, &keys)?;
            audit("keys.revoke", Some(format!("key:{name}")))?;
            eprintln!("revoked '{name}'");
        }
        KeysCommand::Hash { key } => println!("{}", hash_key(&key)),
    }
    Ok(ExitCode::SUCCESS)
}

/// Run a parsed command line; the exit code says how it went.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let config = cli.config()?;
    init_logging(&config);
    let threads = crate::infer::threads::configure(config.models.threads);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.0.clamp(2, 8))
        .enable_all()
        .build()
        .map_err(|e| Error::io("cannot start the async runtime", e))?;
    match cli.command {
        Command::Serve(_) => {
            runtime.block_on(crate::api::serve(config, threads))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Import(ImportCommand::Products(args)) => {
            runtime.block_on(import_records(&config, args, Records::Products))
        }
        Command::Import(ImportCommand::Events(args)) => {
            runtime.block_on(import_records(&config, args, Records::Events))
        }
        Command::Models(cmd) => runtime.block_on(crate::models::run(&config, cmd)),
        Command::Keys(cmd) => keys_command(&config, cmd),
        Command::Eval(args) => eval_command(&config, args),
        Command::Bench(args) => {
            drop(runtime);
            let report = crate::bench::suite::run(&config, &args.which, args.quick, !args.no_anchor, threads.0)?;
            print!("{}", report.table());
            if let Some(path) = &args.json {
                write_json(path, &report)?;
            }
            if let Some(path) = &args.svg {
                std::fs::write(path, report.svg()?)
                    .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::AssistantEval(args) => runtime.block_on(async {
            let cases = crate::assistant::eval::load(&args.cases)?;
            let services = open_services(&config, true).await?;
            let report = crate::assistant::eval::run(&services.assistant, &services.catalog, &cases).await?;
            services.store.flush().await?;
            print!("{}", report.table());
            if let Some(path) = &args.json {
                write_json(path, &report)?;
            }
            Ok(ExitCode::SUCCESS)
        }),
        Command::Train => runtime.block_on(async {
            let services = open_services(&config, false).await?;
            let report = services.collab.train().await?;
            services.store.flush().await?;
            println!("{}", serde_json::to_string_pretty(&report).map_err(|e| Error::Internal(e.to_string()))?);
            Ok(ExitCode::SUCCESS)
        }),
    }
}

/// Open the store and load the models (off the async threads), as a command does with the
/// server stopped.
async fn open_services(config: &Config, with_chat: bool) -> Result<crate::api::Services> {
    let c = config.store.clone();
    let store = tokio::task::spawn_blocking(move || crate::store::Store::open(&c))
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
    let cfg = config.clone();
    tokio::task::spawn_blocking(move || crate::api::load_services(&cfg, store, with_chat))
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
}

/// Write a report as pretty JSON.
fn write_json(path: &std::path::Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Internal(e.to_string()))?;
    std::fs::write(path, text).map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}

/// What an import reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Records {
    Products,
    Events,
}

impl Records {
    fn csv(self) -> &'static crate::catalog::import::CsvSchema {
        match self {
            Records::Products => &crate::catalog::import::PRODUCT_CSV,
            Records::Events => &crate::events::import::EVENT_CSV,
        }
    }

    fn endpoint(self) -> &'static str {
        match self {
            Records::Products => "/v1/products:batch",
            Records::Events => "/v1/events",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Records::Products => "products",
            Records::Events => "events",
        }
    }
}

/// The outcome of an import, whatever was imported and however.
#[derive(Default, serde::Serialize)]
struct Summary {
    rows: usize,
    accepted: usize,
    rejected: usize,
    /// Counts particular to the kind of record (created, embedded, duplicates, ...).
    counts: std::collections::BTreeMap<&'static str, usize>,
    errors: Vec<RowError>,
}

async fn import_records(config: &Config, args: ImportArgs, kind: Records) -> Result<ExitCode> {
    let format = args.format.or_else(|| Format::from_path(&args.file)).ok_or_else(|| {
        Error::Config(format!("cannot tell the format of {}; pass --format csv|json|ndjson", args.file.display()))
    })?;
    let batch = args.batch.clamp(1, 10_000);
    let rows = read_rows(&args.file, format, kind.csv())?;
    let progress = indicatif::ProgressBar::new(rows.len() as u64);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {bar:40} {pos}/{len} rows  {per_sec}  eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let summary = match &args.server {
        Some(url) => import_via_server(url, args.api_key.as_deref(), kind, rows, batch, &progress)?,
        None => {
            let store = crate::store::Store::open(&config.store)?;
            let c = config.clone();
            let services = tokio::task::spawn_blocking(move || crate::api::load_services(&c, store, false))
                .await
                .map_err(|e| Error::Internal(e.to_string()))??;
            let summary = match kind {
                Records::Products => {
                    let r = crate::catalog::import::import(&services.catalog, rows, batch, |n| progress.inc(n as u64))
                        .await?;
                    let counts = [
                        ("created", r.created),
                        ("updated", r.updated),
                        ("embedded", r.embedded),
                        ("reused", r.reused),
                    ];
                    Summary {
                        rows: r.rows,
                        accepted: r.accepted,
                        rejected: r.rejected,
                        counts: counts.into_iter().collect(),
                        errors: r.errors,
                    }
                }
                Records::Events => {
                    let stats = services.recommender.stats().clone();
                    let r = crate::events::import::import(&services.events, &stats, rows, batch, |n| {
                        progress.inc(n as u64)
                    })
                    .await?;
                    stats.flush().await?;
                    Summary {
                        rows: r.rows,
                        accepted: r.accepted,
                        rejected: r.rejected,
                        counts: [("duplicates", r.duplicates)].into_iter().collect(),
                        errors: r.errors,
                    }
                }
            };
            progress.set_message("building indexes");
            services.store.optimize().await?;
            services.store.flush().await?;
            summary
        }
    };
    progress.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary).unwrap_or_default());
    }
    let counts: Vec<String> = summary.counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    eprintln!(
        "imported {} of {} {} in {:.1}s ({:.0} rows/s): {}; {} rejected",
        summary.accepted,
        summary.rows,
        kind.key(),
        secs,
        summary.rows as f64 / secs.max(1e-9),
        counts.join(", "),
        summary.rejected
    );
    for e in summary.errors.iter().take(20) {
        let reasons: Vec<String> = e
            .errors
            .iter()
            .map(|f| if f.pointer.is_empty() { f.detail.clone() } else { format!("{}: {}", f.pointer, f.detail) })
            .collect();
        eprintln!(
            "  row {}{}: {}",
            e.row,
            e.id.as_ref().map(|i| format!(" (id {i})")).unwrap_or_default(),
            reasons.join("; ")
        );
    }
    if summary.errors.len() > 20 {
        eprintln!("  ... and {} more (use --json for all)", summary.errors.len() - 20);
    }
    Ok(if summary.rejected > 0 { ExitCode::from(3) } else { ExitCode::SUCCESS })
}

/// Send rows in batches to a running server, merging its answers.
fn import_via_server(
    url: &str,
    api_key: Option<&str>,
    kind: Records,
    rows: Vec<crate::catalog::import::Row>,
    batch: usize,
    progress: &indicatif::ProgressBar,
) -> Result<Summary> {
    let endpoint = format!("{}{}", url.trim_end_matches('/'), kind.endpoint());
    let mut summary = Summary { rows: rows.len(), ..Default::default() };
    let agent = ureq::AgentBuilder::new().timeout(std::time::Duration::from_secs(600)).build();
    let mut pending: Vec<(usize, serde_json::Value)> = Vec::new();
    let total = rows.len();
    let send = |pending: &mut Vec<(usize, serde_json::Value)>, summary: &mut Summary| -> Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let lines: Vec<usize> = pending.iter().map(|(l, _)| *l).collect();
        let records: Vec<serde_json::Value> = pending.drain(..).map(|(_, v)| v).collect();
        let mut request = agent.post(&endpoint);
        if let Some(k) = api_key {
            request = request.set("authorization", &format!("Bearer {k}"));
        }
        let answer: serde_json::Value = match request.send_json(serde_json::json!({ kind.key(): records })) {
            Ok(r) => r.into_json().map_err(|e| Error::io(format!("bad answer from {endpoint}"), e))?,
            Err(ureq::Error::Status(code, r)) => {
                return Err(Error::Conflict(format!(
                    "{endpoint} answered {code}: {}",
                    r.into_string().unwrap_or_default()
                )));
            }
            Err(e) => return Err(Error::Unavailable(format!("cannot reach {endpoint}: {e}"))),
        };
        let n = |k: &str| answer[k].as_u64().unwrap_or(0) as usize;
        summary.accepted += n("accepted");
        // Rejected rows, with pointers made relative to the row again.
        let rejected: Vec<(usize, Vec<FieldError>)> = match kind {
            Records::Products => {
                for k in ["created", "updated", "embedded"] {
                    *summary.counts.entry(k).or_default() += n(k);
                }
                *summary.counts.entry("reused").or_default() += n("reused");
                serde_json::from_value::<Vec<RowError>>(answer["errors"].clone())
                    .unwrap_or_default()
                    .into_iter()
                    .map(|e| (e.row, e.errors))
                    .collect()
            }
            Records::Events => {
                *summary.counts.entry("duplicates").or_default() += n("duplicates");
                answer["results"]
                    .as_array()
                    .map(|rs| {
                        rs.iter()
                            .enumerate()
                            .filter(|(_, r)| r["status"] == "rejected")
                            .map(|(i, r)| (i, serde_json::from_value(r["errors"].clone()).unwrap_or_default()))
                            .collect()
                    })
                    .unwrap_or_default()
            }
        };
        for (index, errors) in rejected {
            let prefix = format!("/{}/{index}", kind.key());
            let errors = errors
                .into_iter()
                .map(|mut f: FieldError| {
                    if let Some(rest) = f.pointer.strip_prefix(&prefix) {
                        f.pointer = rest.to_string();
                    }
                    f
                })
                .collect();
            summary.errors.push(RowError { row: lines.get(index).copied().unwrap_or(index), id: None, errors });
        }
        progress.inc(lines.len() as u64);
        Ok(())
    };
    for (n, row) in rows.into_iter().enumerate() {
        match row {
            Err(e) => summary.errors.push(e),
            Ok(v) => pending.push(v),
        }
        if pending.len() >= batch || n + 1 == total {
            send(&mut pending, &mut summary)?;
        }
    }
    summary.errors.sort_by_key(|e| e.row);
    summary.rejected = summary.errors.len();
    Ok(summary)
}
