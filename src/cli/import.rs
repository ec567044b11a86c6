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
use crate::error::FieldError;
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
    fn endpoint(self) -> &'static str {
        match self {
            Records::Products => "/v1/products:batch",
            Records::Events => "/v1/events",
        }
    }

    /// The name of the records (the batch body's key, and in messages).
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
    /// Rows read.
    rows: usize,
    /// Rows imported.
    accepted: usize,
    /// Rows rejected.
    rejected: usize,
    /// Counts particular to the kind of record (created, embedded, duplicates, ...).
    counts: std::collections::BTreeMap<&'static str, usize>,
    /// Why rows were rejected, by row.
    errors: Vec<RowError>,
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
        Some(url) => import_via_server(url, args.api_key.as_deref(), kind, rows, batch, &progress)?,
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
