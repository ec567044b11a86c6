//! The clap argument types of the `aisle` command: subcommands and their flags. Their doc
//! comments are the `--help` text.
//!
//! Not for: what the commands do (the sibling modules) or reading the configuration
//! ([`super::Cli::config`]).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::catalog::import::Format;

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
    /// The audit log (DATA_DIR/audit.log).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Offline evaluation: baselines and aisle's hybrid, full ranking, on MovieLens 100K.
    Eval(EvalArgs),
    /// Benchmarks with their anchors side by side: embed, chat, assistant, search, recommend, ingest, train
    /// (all by default). Prints a table; --json and --svg write the report and a chart.
    Bench(BenchArgs),
    /// Score the shopping assistant on a set of shopper requests with the configured chat model
    /// (constraint satisfaction, refusals, grounding, latency). The server must not be running.
    AssistantEval(AssistantEvalArgs),
    /// Train the collaborative model from the stored events (the server must not be running;
    /// with one running, use POST /v1/admin/train).
    Train,
    /// The vector store: copy it onto a Qdrant server, or back into the data directory.
    #[command(subcommand)]
    Store(StoreCommand),
}

/// `aisle store ...`
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy every collection from the embedded store (the data directory) to a Qdrant server
    /// (`--to URL`), or from a server into the data directory (`--from URL`: a backup, or a
    /// return to one box). Vectors are copied, nothing is re-embedded; an interrupted copy
    /// resumes where it stopped, and a repeated one changes nothing. Stop aisle first.
    Migrate(MigrateArgs),
}

/// `aisle store migrate` flags.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// gRPC URL of the Qdrant server to copy to (collections are created with the `[store]`
    /// cluster layout and collection prefix).
    #[arg(long, conflicts_with = "from", required_unless_present = "from")]
    pub to: Option<String>,
    /// gRPC URL of the Qdrant server to copy from.
    #[arg(long)]
    pub from: Option<String>,
    /// Collection prefix on the target (default: `[store] collection_prefix`, as on the
    /// source): e.g. to move a single box's collections onto a server several shops share.
    #[arg(long)]
    pub target_prefix: Option<String>,
    /// Points per request.
    #[arg(long, default_value_t = 256)]
    pub page: usize,
    /// Forget an earlier run's checkpoint and copy everything again.
    #[arg(long)]
    pub restart: bool,
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
    /// Skip the learned re-ranker (LambdaMART over the hybrid's candidates).
    #[arg(long)]
    pub no_rerank: bool,
}

/// `aisle bench` flags.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Which benchmarks (embed, chat, assistant, search, recommend, ingest, train); all when none.
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
    /// Shop sizes (products) for search and recommend, e.g. `--sizes 10000,1000000`; default
    /// 10k with `--quick`, else 10k, 100k and 1M.
    #[arg(long, value_delimiter = ',')]
    pub sizes: Vec<usize>,
}

/// `aisle assistant-eval` flags.
#[derive(Debug, Args)]
pub struct AssistantEvalArgs {
    /// The hand-written requests (JSON lines: id, turns, expect); default
    /// tests/data/assistant_eval.jsonl, or none with --generate.
    #[arg(long)]
    pub cases: Option<PathBuf>,
    /// Add up to this many requests written from the loaded catalog's facets (kinds of product,
    /// brands, prices, attributes).
    #[arg(long, default_value_t = 0)]
    pub generate: usize,
    /// Write every case run (hand-written and generated) as JSON lines here.
    #[arg(long)]
    pub write_cases: Option<PathBuf>,
    /// The catalog's name in the report (default: the data directory's name).
    #[arg(long)]
    pub catalog: Option<String>,
    /// Write the report as JSON here too.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write ten example answers (request, answer, cards) as Markdown here.
    #[arg(long)]
    pub examples: Option<PathBuf>,
}

/// `aisle keys ...`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it (once: only its hash is kept).
    Create {
        /// admin, app, read, or widget (for pages shoppers load: search, recommendations, events, the assistant).
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

/// `aisle audit ...`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the log's hash chain: exit 0 and print the entry count and the head (the last
    /// line's hash, to keep elsewhere), or exit 1 naming the first line where it breaks.
    Verify,
}

/// `aisle serve` flags.
#[derive(Debug, Args)]
// The doc comments are the --help text; `[server]` is a configuration section there, not a link.
#[allow(rustdoc::broken_intra_doc_links)]
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
    /// With --server: give up on a batch the server keeps refusing with 429, 503 or 507 (or
    /// cannot be reached) after this many seconds of retries (each after its `Retry-After`).
    #[arg(long, default_value_t = 300)]
    pub retry_secs: u64,
    /// With --server: continue an import that stopped, from the checkpoint it left next to the
    /// file (FILE.aisle-import); without it, an import starts from the first row.
    #[arg(long)]
    pub resume: bool,
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
