//! Durability of the embedded store on disk: WAL options and pruning, loading a shard, fsync
//! helpers, and finishing or undoing a compaction that a crash interrupted.
//!
//! Not for: deciding when to prune or compact (the store and its collections do), nor for
//! anything that reads or writes points.

use std::fs::File;
use std::path::{Path, PathBuf};

use qdrant_edge::{EdgeShard, WalOptions};

use crate::error::{Error, Result};

/// A collection whose WAL is larger than this is reopened (and its WAL pruned) by maintenance.
pub(super) const WAL_REOPEN_BYTES: u64 = 64 * 1024 * 1024;

/// Marks a compacted copy as complete.
pub(super) const COMPACTION_DONE: &str = "COMPACTED";

/// Finish or undo compactions a crash interrupted: a complete `<name>.compact` replaces a
/// missing `<name>`; an incomplete one is deleted; a leftover `<name>.old` is deleted once
/// `<name>` exists (or restored if it does not).
pub(super) fn recover_compaction(dir: &Path) -> Result<()> {
    recover_compaction_of(dir, None)
}

/// [`recover_compaction`] for one collection's directories only (`only`: its name), or all.
pub(super) fn recover_compaction_of(dir: &Path, only: Option<&str>) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    let names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| only.is_none_or(|c| n.strip_suffix(".compact").or_else(|| n.strip_suffix(".old")) == Some(c)))
        .collect();
    let io = |what: &str, p: &Path| format!("{what} {}", p.display());
    for name in &names {
        let Some(base) = name.strip_suffix(".compact") else { continue };
        let side = dir.join(name);
        let target = dir.join(base);
        if side.join(COMPACTION_DONE).exists() && !target.exists() {
            std::fs::rename(&side, &target).map_err(|e| Error::io(io("cannot move", &side), e))?;
            let _ = std::fs::remove_file(target.join(COMPACTION_DONE));
            tracing::info!(collection = base, "finished an interrupted compaction");
        } else {
            std::fs::remove_dir_all(&side).map_err(|e| Error::io(io("cannot delete", &side), e))?;
        }
    }
    for name in &names {
        let Some(base) = name.strip_suffix(".old") else { continue };
        let old = dir.join(name);
        let target = dir.join(base);
        if target.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| Error::io(io("cannot delete", &old), e))?;
        } else {
            std::fs::rename(&old, &target).map_err(|e| Error::io(io("cannot move", &old), e))?;
        }
    }
    Ok(())
}

/// Open (or create) `path` and fsync it.
pub(super) fn sync_file(path: &Path, create: bool) -> Result<()> {
    let f = File::options()
        .create(create)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    f.sync_all().map_err(|e| Error::io(format!("cannot sync {}", path.display()), e))
}

/// Fsync a directory (so that renames in it are durable), ignoring failures.
pub(super) fn sync_dir(path: &Path) {
    if let Ok(d) = File::open(path) {
        let _ = d.sync_all();
    }
}

/// Load a shard after pruning its WAL (see the module doc).
pub(super) fn load_shard(path: &Path) -> Result<EdgeShard> {
    prune_wal(&path.join("wal"))?;
    EdgeShard::load(path, None).map_err(|e| Error::Store(format!("cannot open collection at {}: {e}", path.display())))
}

/// Delete a closed WAL's older `closed-<start>` segments, keeping the newest closed segment and
/// the open ones: the WAL then still starts where its kept segments say, so its numbering goes
/// on (exactly the WAL's own `prefix_truncate`). Entries are never replayed by qdrant-edge, and
/// every acknowledged write was flushed to the segments, so nothing is lost.
pub(crate) fn prune_wal(wal: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(wal) else { return Ok(()) };
    let mut closed: Vec<(u64, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let start = name.strip_prefix("closed-")?.parse::<u64>().ok()?;
            Some((start, e.path()))
        })
        .collect();
    closed.sort();
    closed.pop(); // the newest stays
    for (_, path) in closed {
        std::fs::remove_file(&path).map_err(|e| Error::io(format!("cannot prune {}", path.display()), e))?;
    }
    Ok(())
}

/// The total size of the files directly in `dir` (0 if it cannot be read).
pub(super) fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map(|es| es.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum()).unwrap_or(0)
}

/// The WAL options of every collection: small segments, closed ones retained for pruning.
pub(super) fn wal_options() -> WalOptions {
    WalOptions { segment_capacity: 4 * 1024 * 1024, segment_queue_len: 0, retain_closed: std::num::NonZeroUsize::MIN }
}
