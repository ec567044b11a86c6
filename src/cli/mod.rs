//! The `aisle` command: `serve`, `import`, `models`, `keys`, `eval`, `bench`,
//! `assistant-eval`, `train`, `store`.
//!
//! Configuration comes from `aisle.toml` < `AISLE_*` environment < the flags here. This module
//! holds the [`Cli`] type, the layering of flags over the configuration and the dispatch
//! ([`run`]); each command's work is in its own file: [`args`] (the clap types), `log`
//! (logging), `import`, `keys`, `eval` (eval and assistant-eval), `models` and `store`
//! (migration between the embedded store and a Qdrant server). Commands that
//! need the engines open them with one helper (`open_services`), as the server would.
//!
//! Not for: anything a lower layer could use (nothing imports `cli`), HTTP internals
//! (`crate::api`), or wiring services (`crate::app`).

pub mod args;
mod eval;
mod import;
mod import_server;
mod keys;
mod log;
mod models;
mod store;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::app::Services;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::store::Store;
pub use args::{
    AssistantEvalArgs, BenchArgs, Command, EvalArgs, ImportArgs, ImportCommand, KeysCommand, ModelsCommand, ServeArgs,
};
use import::Records;

/// aisle: private recommendations, product search and a shopping assistant, in one binary.
#[derive(Debug, Parser)]
#[command(name = "aisle", version, about)]
// The doc comments are the --help text; `[store]` and the like are configuration sections there,
// not links.
#[allow(rustdoc::broken_intra_doc_links, rustdoc::private_intra_doc_links)]
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
    /// Compute threads; 0 = the CPUs this process may use, cgroup quota included (overrides [models] threads).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
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

/// Run a parsed command line; the exit code says how it went.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let config = cli.config()?;
    log::init_logging(&config);
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
            runtime.block_on(import::run(&config, args, Records::Products))
        }
        Command::Import(ImportCommand::Events(args)) => runtime.block_on(import::run(&config, args, Records::Events)),
        Command::Models(cmd) => runtime.block_on(models::run(&config, cmd)),
        Command::Keys(cmd) => keys::run(&config, cmd),
        Command::Audit(args::AuditCommand::Verify) => {
            let v = crate::privacy::audit::verify(&config.store.data_dir)?;
            println!(
                "audit log intact: {} entries ({} from before the chain), head {}",
                v.entries, v.unchained, v.head
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Eval(args) => eval::eval(&config, args),
        Command::Bench(args) => {
            drop(runtime);
            let report = crate::bench::run(&config, &args.which, args.quick, !args.no_anchor, threads.0, &args.sizes)?;
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
        Command::AssistantEval(args) => runtime.block_on(eval::assistant_eval(&config, args)),
        Command::Store(cmd) => runtime.block_on(store::run(&config, cmd)),
        Command::Train => runtime.block_on(async {
            let services = open_services(&config, false).await?;
            let mut report = services.collab.train().await?;
            report.ranker = Some(services.recommender.train_ranker().await?);
            services.store.flush().await?;
            println!("{}", serde_json::to_string_pretty(&report).map_err(|e| Error::Internal(e.to_string()))?);
            Ok(ExitCode::SUCCESS)
        }),
    }
}

/// Open the store and load the models (off the async threads), as a command does with the
/// server stopped.
async fn open_services(config: &Config, with_chat: bool) -> Result<Services> {
    let c = config.store.clone();
    let store =
        tokio::task::spawn_blocking(move || Store::open(&c)).await.map_err(|e| Error::Internal(e.to_string()))??;
    let cfg = config.clone();
    tokio::task::spawn_blocking(move || crate::app::load_services(&cfg, store, with_chat))
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
}

/// Write a report as pretty JSON.
fn write_json(path: &std::path::Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Internal(e.to_string()))?;
    std::fs::write(path, text).map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}
