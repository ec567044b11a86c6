//! The audit log: an append-only record of admin and privacy operations (who, what, when, on
//! whom, with what outcome), one JSON object per line in `DATA_DIR/audit.log`, written with
//! `O_APPEND` and synced before the response leaves. Customer subjects are recorded as a keyed
//! hash ([`crate::privacy::Keyring::audit_subject`]) that differs from their storage key, so
//! the log survives an erasure without keeping anything that links to the erased records.
//!
//! The lines are hash-chained: each carries `prev`, the SHA-256 of the line before it (64 zeros
//! for the first), so changing, inserting or removing a line breaks the chain at the next one;
//! [`verify`] (`aisle audit verify`) checks it and prints the head (the last line's hash), which
//! an operator can keep elsewhere to detect a cut-off tail too.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// One audit entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct AuditEntry {
    /// When.
    pub ts: DateTime<Utc>,
    /// Who: the API key's name (`anonymous` with authentication off, `cli` for commands).
    pub actor: String,
    /// The actor's role.
    pub role: String,
    /// What: e.g. `DELETE /v1/customers/{id}`, `keys.create`.
    pub action: String,
    /// On whom or what: a hashed customer subject (`customer:<hash>`) or a product id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The HTTP status, or 0 for operations outside HTTP.
    pub status: u16,
}

/// Which audit entries to read.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// At or after this time.
    pub since: Option<DateTime<Utc>>,
    /// At or before this time.
    pub until: Option<DateTime<Utc>>,
    /// This actor (the key's name) exactly.
    pub actor: Option<String>,
    /// Actions containing this text (any case), e.g. `customers` or `DELETE`.
    pub action: Option<String>,
}

impl AuditFilter {
    fn keeps(&self, e: &AuditEntry) -> bool {
        self.since.is_none_or(|s| e.ts >= s)
            && self.until.is_none_or(|u| e.ts <= u)
            && self.actor.as_ref().is_none_or(|a| &e.actor == a)
            && self.action.as_ref().is_none_or(|a| e.action.to_lowercase().contains(&a.to_lowercase()))
    }
}

/// The `prev` of the first line.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An entry as written: the entry's fields and the previous line's hash.
#[derive(Serialize)]
struct Chained<'a> {
    #[serde(flatten)]
    entry: &'a AuditEntry,
    prev: &'a str,
}

fn line_hash(line: &[u8]) -> String {
    hex::encode(Sha256::digest(line))
}

/// The append-only log.
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<Tail>,
}

struct Tail {
    file: std::fs::File,
    /// The hash of the last line (what the next line's `prev` is).
    head: String,
    /// The file's length after this process's last write: when it differs, another process
    /// (`aisle keys` beside a running server) appended, and `head` is read again.
    len: u64,
}

/// The hash of the file's last complete line ([`GENESIS`] for an empty file).
fn last_line_hash(file: &mut std::fs::File) -> std::io::Result<String> {
    let len = file.seek(SeekFrom::End(0))?;
    let mut back = 4096u64.min(len);
    loop {
        file.seek(SeekFrom::Start(len - back))?;
        let mut buf = Vec::with_capacity(back as usize);
        Read::by_ref(file).take(back).read_to_end(&mut buf)?;
        let body = buf.strip_suffix(b"\n").unwrap_or(&buf);
        match body.iter().rposition(|&b| b == b'\n') {
            Some(i) => return Ok(line_hash(&body[i + 1..])),
            None if back == len => return Ok(if body.is_empty() { GENESIS.to_string() } else { line_hash(body) }),
            None => back = (back * 4).min(len),
        }
    }
}

impl AuditLog {
    /// Open (creating) `DATA_DIR/audit.log` for appending, mode 0600.
    pub fn open(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir).map_err(|e| Error::io(format!("cannot create {}", data_dir.display()), e))?;
        let path = data_dir.join("audit.log");
        let mut options = std::fs::OpenOptions::new();
        options.append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&path).map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
        let mut reader =
            std::fs::File::open(&path).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        let head = last_line_hash(&mut reader).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        let len = file.metadata().map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?.len();
        Ok(Self { path, file: Mutex::new(Tail { file, head, len }) })
    }

    /// Append an entry, chained to the line before it, and sync it to disk. Processes that
    /// share the log (the server, `aisle keys`) take an exclusive file lock for the append, so
    /// each chains to the other's last line. This blocks on the disk: call it off the async
    /// runtime (`spawn_blocking`).
    pub fn append(&self, entry: &AuditEntry) -> Result<()> {
        let mut tail = self.file.lock();
        let tail = &mut *tail;
        tail.file.lock().map_err(|e| Error::io("cannot lock the audit log", e))?;
        let written = (|| -> std::io::Result<()> {
            let len = tail.file.metadata()?.len();
            if len != tail.len {
                tail.head = last_line_hash(&mut std::fs::File::open(&self.path)?)?;
            }
            let mut line = serde_json::to_vec(&Chained { entry, prev: &tail.head }).map_err(std::io::Error::other)?;
            let head = line_hash(&line);
            line.push(b'\n');
            tail.file.write_all(&line)?;
            tail.file.sync_data()?;
            tail.head = head;
            tail.len = len + line.len() as u64;
            Ok(())
        })();
        let _ = tail.file.unlock();
        written.map_err(|e| Error::io("cannot write the audit log", e))
    }

    /// The newest `limit` entries that `filter` keeps, oldest first.
    pub fn read(&self, filter: &AuditFilter, limit: usize) -> Result<Vec<AuditEntry>> {
        let f = std::fs::File::open(&self.path).map_err(|e| Error::io("cannot read the audit log", e))?;
        let mut out = std::collections::VecDeque::new();
        for line in BufReader::new(f).lines() {
            let line = line.map_err(|e| Error::io("cannot read the audit log", e))?;
            let Ok(entry) = serde_json::from_str::<AuditEntry>(&line) else { continue };
            if !filter.keeps(&entry) {
                continue;
            }
            out.push_back(entry);
            if out.len() > limit {
                out.pop_front();
            }
        }
        Ok(out.into())
    }
}

/// What [`verify`] found in an intact log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verified {
    /// Lines checked.
    pub entries: usize,
    /// Lines written before the log was chained (not covered by the chain).
    pub unchained: usize,
    /// The last line's hash: keep it elsewhere to detect a removed tail later.
    pub head: String,
}

/// Check the chain of `DATA_DIR/audit.log`: every line's `prev` must be the hash of the line
/// before it. The error names the first line where it breaks.
pub fn verify(data_dir: &Path) -> Result<Verified> {
    let path = data_dir.join("audit.log");
    let f = std::fs::File::open(&path).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    let mut report = Verified { entries: 0, unchained: 0, head: GENESIS.to_string() };
    let mut chained = false;
    for (i, line) in BufReader::new(f).split(b'\n').enumerate() {
        let line = line.map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        let n = i + 1;
        let broken = |why: String| Error::Conflict(format!("{} line {n}: {why}", path.display()));
        let value: serde_json::Value =
            serde_json::from_slice(&line).map_err(|_| broken("not an audit entry (changed, or cut off)".into()))?;
        if serde_json::from_value::<AuditEntry>(value.clone()).is_err() {
            return Err(broken("not an audit entry".into()));
        }
        match value.get("prev").and_then(|p| p.as_str()) {
            Some(prev) if prev == report.head => chained = true,
            Some(_) => {
                return Err(broken(
                    "its prev is not the hash of the line before: a line was changed, added or removed".into(),
                ));
            }
            None if chained => return Err(broken("a line without prev after chained lines: added or changed".into())),
            None => report.unchained += 1,
        }
        report.head = line_hash(&line);
        report.entries += 1;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_append_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        for i in 0..5 {
            log.append(&AuditEntry {
                ts: Utc::now(),
                actor: "ops".into(),
                role: "admin".into(),
                action: format!("PUT /v1/products/{{id}} #{i}"),
                subject: Some(format!("p{i}")),
                status: 200,
            })
            .unwrap();
        }
        drop(log);
        let log = AuditLog::open(dir.path()).unwrap(); // reopening appends, never truncates
        log.append(&AuditEntry {
            ts: Utc::now(),
            actor: "ops".into(),
            role: "admin".into(),
            action: "last".into(),
            subject: None,
            status: 204,
        })
        .unwrap();
        let all = log.read(&AuditFilter::default(), 100).unwrap();
        assert_eq!(all.len(), 6);
        let tail = log.read(&AuditFilter::default(), 2).unwrap();
        assert_eq!(tail.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["PUT /v1/products/{id} #4", "last"]);
        let by_actor = |a: &str| AuditFilter { actor: Some(a.into()), ..Default::default() };
        assert_eq!(log.read(&by_actor("ops"), 100).unwrap().len(), 6);
        assert_eq!(log.read(&by_actor("op"), 100).unwrap().len(), 0, "actors match exactly");
        let by_action = AuditFilter { action: Some("put /V1/products".into()), ..Default::default() };
        assert_eq!(log.read(&by_action, 100).unwrap().len(), 5, "actions match by text in any case");
        let until = AuditFilter { until: Some(all[0].ts), ..Default::default() };
        assert!(log.read(&until, 100).unwrap().iter().all(|e| e.ts <= all[0].ts));
        let verified = verify(dir.path()).unwrap();
        assert_eq!((verified.entries, verified.unchained), (6, 0), "the chain holds across a reopen");
    }

    /// The server and `aisle keys` append to the same log: each chains to the other's lines.
    #[test]
    fn two_writers_keep_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let (server, cli) = (AuditLog::open(dir.path()).unwrap(), AuditLog::open(dir.path()).unwrap());
        for i in 0..6 {
            let entry = AuditEntry {
                ts: Utc::now(),
                actor: if i % 2 == 0 { "server" } else { "cli" }.into(),
                role: "admin".into(),
                action: format!("a{i}"),
                subject: None,
                status: 200,
            };
            if i % 3 == 0 { &server } else { &cli }.append(&entry).unwrap();
        }
        assert_eq!(verify(dir.path()).unwrap().entries, 6);
    }

    #[test]
    fn tampering_breaks_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        // A log written before chaining: its lines are counted, and the chain starts after them.
        std::fs::write(
            &path,
            "{\"ts\":\"2026-01-01T00:00:00Z\",\"actor\":\"old\",\"role\":\"admin\",\"action\":\"a\",\"status\":200}\n",
        )
        .unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        for i in 0..4 {
            let entry = AuditEntry {
                ts: Utc::now(),
                actor: "ops".into(),
                role: "admin".into(),
                action: format!("DELETE /v1/customers/{{id}} #{i}"),
                subject: Some(format!("customer:{i}")),
                status: 204,
            };
            log.append(&entry).unwrap();
        }
        let good = verify(dir.path()).unwrap();
        assert_eq!((good.entries, good.unchained), (5, 1));
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let tampered = [
            text.replace("customer:2", "customer:9"),         // an entry changed
            text.replacen(&format!("{}\n", lines[2]), "", 1), // a line removed
            text.replacen(&format!("{}\n", lines[3]), &format!("{}\n{}\n", lines[3], lines[3]), 1), // a line copied in
            format!(
                "{text}{{\"ts\":\"2026-01-01T00:00:00Z\",\"actor\":\"x\",\"role\":\"admin\",\"action\":\"b\",\"status\":200}}\n"
            ),
        ];
        for (i, bad) in tampered.iter().enumerate() {
            std::fs::write(&path, bad).unwrap();
            let e = verify(dir.path()).unwrap_err().to_string();
            assert!(e.contains("line"), "case {i}: {e}");
        }
        // Cut off at the end: the chain still holds, but the head differs from the one kept.
        std::fs::write(&path, format!("{}\n", lines[..4].join("\n"))).unwrap();
        assert_ne!(verify(dir.path()).unwrap().head, good.head);
    }
}
