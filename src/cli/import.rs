//! `aisle import products|events`: read a CSV, JSON or NDJSON file and import its rows, either
//! into the data directory directly (with the server stopped) or through a running server's
//! batch endpoints (`--server`), with a progress bar and one summary for both ways.
//!
//! Not for: parsing and validating rows (`crate::catalog::import`, `crate::events::import`) or
//! the ingestion itself (`crate::app::Services`).

use std::process::ExitCode;

use super::args::ImportArgs;
use super::open_services;
use crate::catalog::import::{Format, RowError, read_rows};
use crate::config::Config;
use crate::error::{Error, Result};

/// What an import reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Records {
    /// Products (`aisle import products`).
    Products,
    /// Events (`aisle import events`).
    Events,
}

impl Records {
    /// The CSV columns of this kind of record.
    fn csv(self) -> &'static crate::catalog::import::CsvSchema {
        match self {
            Records::Products => &crate::catalog::import::PRODUCT_CSV,
            Records::Events => &crate::events::import::EVENT_CSV,
        }
    }

    /// The server's batch endpoint for `--server`.
    pub(super) fn endpoint(self) -> &'static str {
        match self {
            Records::Products => "/v1/products:batch",
            Records::Events => "/v1/events",
        }
    }

    /// The name of the records (the batch body's key, and in messages).
    pub(super) fn key(self) -> &'static str {
        match self {
            Records::Products => "products",
            Records::Events => "events",
        }
    }
}

/// The outcome of an import, whatever was imported and however.
#[derive(Default, serde::Serialize)]
pub(super) struct Summary {
    /// Rows read.
    pub(super) rows: usize,
    /// Rows imported.
    pub(super) accepted: usize,
    /// Rows rejected.
    pub(super) rejected: usize,
    /// Counts particular to the kind of record (created, embedded, duplicates, ...).
    pub(super) counts: std::collections::BTreeMap<&'static str, usize>,
    /// Why rows were rejected, by row.
    pub(super) errors: Vec<RowError>,
}

/// Import the file `args` names, print the summary (and the report as JSON with `--json`); the
/// exit code is 3 when any row was rejected.
pub async fn run(config: &Config, args: ImportArgs, kind: Records) -> Result<ExitCode> {
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
        Some(url) => {
            let options = super::import_server::Options {
                api_key: args.api_key.as_deref(),
                retry_for: std::time::Duration::from_secs(args.retry_secs),
                checkpoint: args.resume.then(|| super::import_server::checkpoint_path(&args.file)),
            };
            super::import_server::import_via_server(url, &options, kind, rows, batch, &progress)?
        }
        None => {
            let services = open_services(config, false).await?;
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
                    let r = crate::events::import::import(
                        async |inputs| services.ingest_events(inputs).await,
                        rows,
                        batch,
                        |n| progress.inc(n as u64),
                    )
                    .await?;
                    services.recommender.stats().flush().await?;
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
