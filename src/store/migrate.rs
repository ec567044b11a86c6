//! Copying every collection of one store into another (the embedded store onto a Qdrant
//! server, or back): points with their payloads and every vector, so nothing is re-embedded.
//!
//! A copy is resumable and idempotent. Pages are copied in id order and the position after
//! each page is saved to a checkpoint file (written whole, then renamed); a second run starts
//! after the last saved page, and pages copied twice are upserts of the same points. A
//! collection that is already complete is skipped unless the checkpoint is removed.
//!
//! Not for: aisle's own files in the data directory (the pseudonym secret, API keys, the
//! trained model), which a deployment copies as files; nor for choosing collections (every
//! collection of the source store's prefix is copied).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Point, Store};
use crate::error::{Error, Result};

/// Where the copy of one collection stands.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Position {
    /// The next point to copy (none: from the start, or done).
    next: Option<Uuid>,
    /// Points copied so far.
    copied: usize,
    /// Whether every page has been copied.
    done: bool,
}

/// The checkpoint file: the target it is for, and each collection's position.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Checkpoint {
    /// The target store's description (a checkpoint for another target is not used).
    target: String,
    /// Positions by collection name.
    collections: BTreeMap<String, Position>,
}

/// What happened to one collection.
#[derive(Debug, Clone, Serialize)]
pub struct CollectionCopy {
    /// Collection name (without the prefix).
    pub name: String,
    /// Points in the source.
    pub source_points: usize,
    /// Points in the target afterwards.
    pub target_points: usize,
    /// Points copied by this run.
    pub copied_now: usize,
    /// Whether this run continued an earlier, interrupted one.
    pub resumed: bool,
    /// Whether the collection was complete already (nothing copied).
    pub already_done: bool,
}

/// Progress of the copy: collection, points copied, points in the source.
pub type OnProgress<'a> = &'a mut dyn FnMut(&str, usize, usize);

fn load(path: &Path, target: &str) -> Result<Checkpoint> {
    let fresh = || Checkpoint { target: target.to_string(), ..Checkpoint::default() };
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(fresh()) };
    let c: Checkpoint = serde_json::from_str(&text).map_err(|e| {
        Error::Config(format!("the checkpoint {} is unreadable ({e}); remove it to start over", path.display()))
    })?;
    Ok(if c.target == target { c } else { fresh() })
}

fn save(path: &Path, c: &Checkpoint) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_vec_pretty(c).map_err(|e| Error::Internal(e.to_string()))?;
    std::fs::write(&tmp, text).map_err(|e| Error::io(format!("cannot write {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}

/// Copy every collection of `from` into `to`, `page` points at a time, saving the position
/// in `checkpoint` after each page.
pub async fn copy_all(
    from: &Store,
    to: &Store,
    checkpoint: &Path,
    page: usize,
    progress: OnProgress<'_>,
) -> Result<Vec<CollectionCopy>> {
    let mut state = load(checkpoint, &to.describe())?;
    let mut report = Vec::new();
    for name in from.collections().await? {
        let spec = from.collection_spec(&name).await?;
        to.ensure_collection(&spec).await?;
        let vectors: Vec<String> =
            spec.dense.iter().map(|d| d.name.clone()).chain(spec.sparse.iter().map(|s| s.name.clone())).collect();
        let source_points = from.count(&name, None).await?;
        let mut position = state.collections.get(&name).cloned().unwrap_or_default();
        let (resumed, already_done) = (position.copied > 0 && !position.done, position.done);
        let mut copied_now = 0;
        while !position.done {
            let batch = from.scroll_with_vectors(&name, position.next, page.max(1), vectors.clone()).await?;
            let n = batch.records.len();
            let points = batch
                .records
                .into_iter()
                .map(|r| Point { id: r.id, vectors: r.vectors.into_iter().collect(), payload: r.payload })
                .collect();
            to.upsert(&name, points).await?;
            position.copied += n;
            copied_now += n;
            position.next = batch.next;
            position.done = batch.next.is_none();
            state.collections.insert(name.clone(), position.clone());
            save(checkpoint, &state)?;
            progress(&name, position.copied, source_points);
            crate::fault::point("migrate-after-page");
        }
        let target_points = to.count(&name, None).await?;
        report.push(CollectionCopy { name, source_points, target_points, copied_now, resumed, already_done });
    }
    Ok(report)
}
