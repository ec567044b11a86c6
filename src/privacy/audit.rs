//! The audit log: an append-only record of admin and privacy operations (who, what, when, on
//! whom, with what outcome), one JSON object per line in `DATA_DIR/audit.log`, written with
//! `O_APPEND` and synced before the response leaves. Customer subjects are recorded as a keyed
//! hash ([`crate::privacy::Keyring::audit_subject`]) that differs from their storage key, so
//! the log survives an erasure without keeping anything that links to the erased records.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One audit entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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

/// The append-only log.
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<std::fs::File>,
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
        Ok(Self { path, file: Mutex::new(file) })
    }

    /// Append an entry and sync it to disk.
    pub fn append(&self, entry: &AuditEntry) -> Result<()> {
        let mut line = serde_json::to_vec(entry).map_err(|e| Error::Internal(e.to_string()))?;
        line.push(b'\n');
        let mut f = self.file.lock();
        f.write_all(&line).and_then(|_| f.sync_data()).map_err(|e| Error::io("cannot write the audit log", e))
    }

    /// The newest `limit` entries at or after `since`, oldest first.
    pub fn read(&self, since: Option<DateTime<Utc>>, limit: usize) -> Result<Vec<AuditEntry>> {
        let f = std::fs::File::open(&self.path).map_err(|e| Error::io("cannot read the audit log", e))?;
        let mut out = std::collections::VecDeque::new();
        for line in BufReader::new(f).lines() {
            let line = line.map_err(|e| Error::io("cannot read the audit log", e))?;
            let Ok(entry) = serde_json::from_str::<AuditEntry>(&line) else { continue };
            if since.is_some_and(|s| entry.ts < s) {
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
        let all = log.read(None, 100).unwrap();
        assert_eq!(all.len(), 6);
        let tail = log.read(None, 2).unwrap();
        assert_eq!(tail.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["PUT /v1/products/{id} #4", "last"]);
    }
}
