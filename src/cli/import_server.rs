//! `aisle import --server`: send rows in batches to a running server's batch endpoint, as a
//! client that behaves: a batch the server refuses for now (429 rate-limited, 503 not ready or
//! overloaded, 507 out of disk) or cannot be reached is sent again after the server's
//! `Retry-After` (or a doubling backoff), for up to `--retry-secs`; progress is reported as it
//! goes (a bar on a terminal, a line every few seconds otherwise); and with `--resume` a
//! checkpoint next to the file (`FILE.aisle-import`) records how many rows the server has
//! acknowledged, so an import that stopped continues where it stopped. Re-sending is safe either
//! way: product writes replace, and events carry ids the server deduplicates.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::import::{Records, Summary};
use crate::catalog::import::{Row, RowError};
use crate::error::{Error, FieldError, Result};

/// How to talk to the server.
pub struct Options<'a> {
    /// Bearer key.
    pub api_key: Option<&'a str>,
    /// Longest time to keep retrying one batch.
    pub retry_for: Duration,
    /// Where to keep the checkpoint (`--resume`).
    pub checkpoint: Option<PathBuf>,
}

/// The checkpoint of an import of `file`.
pub fn checkpoint_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".aisle-import");
    file.with_file_name(name)
}

/// What the checkpoint holds: rows acknowledged, for a file of this many rows.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
struct Checkpoint {
    rows: usize,
    done: usize,
}

fn read_checkpoint(path: &Path, rows: usize) -> usize {
    match std::fs::read(path).ok().and_then(|b| serde_json::from_slice::<Checkpoint>(&b).ok()) {
        Some(c) if c.rows == rows && c.done <= rows => c.done,
        Some(_) => {
            eprintln!("{} is for another file (or an edited one): starting from the first row", path.display());
            0
        }
        None => 0,
    }
}

fn write_checkpoint(path: &Path, rows: usize, done: usize) -> Result<()> {
    let tmp = path.with_extension("aisle-import.tmp");
    let body = serde_json::to_vec(&Checkpoint { rows, done }).map_err(|e| Error::Internal(e.to_string()))?;
    std::fs::write(&tmp, body).map_err(|e| Error::io(format!("cannot write {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}

/// Why a batch was not taken this time, and when to try again.
enum Refusal {
    Retry { why: String, after: Option<Duration> },
    Fatal(Error),
}

/// POST one batch; the server's answer, or why not.
fn post(agent: &ureq::Agent, endpoint: &str, key: Option<&str>, body: &Value) -> std::result::Result<Value, Refusal> {
    let mut request = agent.post(endpoint);
    if let Some(k) = key {
        request = request.set("authorization", &format!("Bearer {k}"));
    }
    match request.send_json(body) {
        Ok(r) => r.into_json().map_err(|e| Refusal::Fatal(Error::io(format!("bad answer from {endpoint}"), e))),
        Err(ureq::Error::Status(code @ (429 | 503 | 507), r)) => {
            let after = r.header("retry-after").and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_secs);
            let detail = r.into_json::<Value>().ok().and_then(|v| v["detail"].as_str().map(str::to_string));
            Err(Refusal::Retry { why: format!("{code}: {}", detail.unwrap_or_default()), after })
        }
        Err(ureq::Error::Status(code, r)) => Err(Refusal::Fatal(Error::Conflict(format!(
            "{endpoint} answered {code}: {}",
            r.into_string().unwrap_or_default()
        )))),
        Err(e) => Err(Refusal::Retry { why: format!("cannot reach the server: {e}"), after: None }),
    }
}

/// Send one batch until the server takes it or `retry_for` has passed.
fn send_with_retries(
    agent: &ureq::Agent,
    endpoint: &str,
    options: &Options,
    body: &Value,
    progress: &indicatif::ProgressBar,
) -> Result<Value> {
    let started = Instant::now();
    let mut backoff = Duration::from_millis(500);
    loop {
        match post(agent, endpoint, options.api_key, body) {
            Ok(answer) => {
                progress.set_message("");
                return Ok(answer);
            }
            Err(Refusal::Fatal(e)) => return Err(e),
            Err(Refusal::Retry { why, after }) => {
                let wait = after.unwrap_or(backoff).min(Duration::from_secs(60));
                if started.elapsed() + wait > options.retry_for {
                    return Err(Error::Unavailable(format!(
                        "{endpoint} still refuses after {:.0} s of retries ({why}); run the same command with \
                         --resume to continue from the last acknowledged batch",
                        started.elapsed().as_secs_f64()
                    )));
                }
                let line = format!("{why}; retrying in {:.1} s", wait.as_secs_f64());
                if progress.is_hidden() {
                    eprintln!("{line}");
                } else {
                    progress.set_message(line);
                }
                std::thread::sleep(wait);
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Merge the server's answer to a batch into the summary; rejected rows get their own line
/// numbers and pointers relative to the row.
fn merge(summary: &mut Summary, kind: Records, answer: &Value, lines: &[usize]) {
    let n = |k: &str| answer[k].as_u64().unwrap_or(0) as usize;
    summary.accepted += n("accepted");
    let rejected: Vec<(usize, Vec<FieldError>)> = match kind {
        Records::Products => {
            for k in ["created", "updated", "embedded", "reused"] {
                *summary.counts.entry(k).or_default() += n(k);
            }
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
}

/// Send rows in batches to a running server, merging its answers.
pub fn import_via_server(
    url: &str,
    options: &Options,
    kind: Records,
    rows: Vec<Row>,
    batch: usize,
    progress: &indicatif::ProgressBar,
) -> Result<Summary> {
    let endpoint = format!("{}{}", url.trim_end_matches('/'), kind.endpoint());
    let total = rows.len();
    let mut summary = Summary { rows: total, ..Default::default() };
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(600)).build();
    let skip = options.checkpoint.as_deref().map_or(0, |p| read_checkpoint(p, total));
    if skip > 0 {
        eprintln!("resuming after the {skip} rows the server already acknowledged");
        progress.inc(skip as u64);
    }
    if !std::io::stderr().is_terminal() {
        progress.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut last_line = Instant::now();
    let mut pending: Vec<(usize, Value)> = Vec::new();
    for (n, row) in rows.into_iter().enumerate() {
        if n < skip {
            continue;
        }
        match row {
            Err(e) => summary.errors.push(e),
            Ok(v) => pending.push(v),
        }
        if pending.len() < batch && n + 1 < total {
            continue;
        }
        if !pending.is_empty() {
            let lines: Vec<usize> = pending.iter().map(|(l, _)| *l).collect();
            let records: Vec<Value> = pending.drain(..).map(|(_, v)| v).collect();
            let body = serde_json::json!({ kind.key(): records });
            let answer = send_with_retries(&agent, &endpoint, options, &body, progress)?;
            merge(&mut summary, kind, &answer, &lines);
        }
        progress.set_position((n + 1) as u64);
        if let Some(p) = &options.checkpoint {
            write_checkpoint(p, total, n + 1)?;
        }
        if progress.is_hidden() && (last_line.elapsed() > Duration::from_secs(5) || n + 1 == total) {
            eprintln!("sent {} of {total} rows", n + 1);
            last_line = Instant::now();
        }
    }
    if let Some(p) = &options.checkpoint {
        // Done: nothing to resume.
        let _ = std::fs::remove_file(p);
    }
    summary.errors.sort_by_key(|e| e.row);
    summary.rejected = summary.errors.len();
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_resumes_only_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("catalog.ndjson");
        let p = checkpoint_path(&file);
        assert_eq!(p.file_name().unwrap(), "catalog.ndjson.aisle-import");
        assert_eq!(read_checkpoint(&p, 40), 0, "no checkpoint: from the start");
        write_checkpoint(&p, 40, 25).unwrap();
        assert_eq!(read_checkpoint(&p, 40), 25);
        assert_eq!(read_checkpoint(&p, 41), 0, "another file: from the start");
    }
}
