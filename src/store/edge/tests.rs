//! Tests of the embedded store on a real disk: WAL pruning keeps updates applying, compaction
//! removes the bytes of deleted and overwritten data, and an interrupted compaction is finished
//! on open.
//!
//! Not for: the public [`Store`](crate::store::Store) API or type conversion alone.

use std::path::{Path, PathBuf};

use serde_json::json;
use uuid::Uuid;

use super::EdgeStore;
use super::durability::COMPACTION_DONE;
use crate::store::{CollectionSpec, Condition, DenseSpec, Distance, Filter, IndexKind, Payload, Point, Vector};

fn spec() -> CollectionSpec {
    CollectionSpec {
        name: "t".into(),
        dense: vec![DenseSpec { name: "v".into(), dim: 8, distance: Distance::Cosine }],
        sparse: vec![],
        indexes: vec![("n".into(), IndexKind::Integer)],
        hnsw: true,
    }
}

fn point(i: u64, label: &str) -> Point {
    let mut payload = Payload::new();
    payload.insert("n".into(), json!(i));
    payload.insert("label".into(), json!(label));
    // Bulk, so that the WAL fills several segments quickly.
    payload.insert("pad".into(), json!("x".repeat(2000)));
    Point {
        id: Uuid::from_u64_pair(0, i),
        vectors: vec![("v".into(), Vector::Dense(vec![1.0, i as f32, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]))],
        payload,
    }
}

fn label(store: &EdgeStore, i: u64) -> String {
    let r = store.retrieve("t", &[Uuid::from_u64_pair(0, i)], &[]).unwrap();
    r[0].payload["label"].as_str().unwrap().to_string()
}

fn closed_segments(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("collections/t/wal"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("closed-"))
        .count()
}

/// The WAL's numbering must survive pruning: an update of a point written before a reopen
/// must still apply (a restarted numbering would make it a silent no-op).
#[test]
fn updates_apply_after_reopening_and_the_wal_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EdgeStore::open(dir.path(), 1_000_000).unwrap();
        store.ensure_collection(&spec()).unwrap();
        for batch in 0..60 {
            let points = (0..100).map(|i| point(batch * 100 + i, "first")).collect();
            store.upsert("t", points).unwrap();
        }
        assert!(closed_segments(dir.path()) >= 2, "the test needs several WAL segments");
    }
    let store = EdgeStore::open(dir.path(), 1_000_000).unwrap();
    assert!(closed_segments(dir.path()) <= 1, "older closed segments are pruned on open");
    store.upsert("t", vec![point(7, "second")]).unwrap();
    let mut payload = Payload::new();
    payload.insert("label".into(), json!("third"));
    store.set_payload("t", vec![Uuid::from_u64_pair(0, 42)], payload).unwrap();
    assert_eq!(label(&store, 7), "second");
    assert_eq!(label(&store, 42), "third");
    // While running: a reopen prunes too, and writes still apply.
    let c = store.get("t").unwrap();
    c.reopen().unwrap();
    store.upsert("t", vec![point(7, "fourth")]).unwrap();
    assert_eq!(label(&store, 7), "fourth");
    drop(c);
    drop(store);
    let store = EdgeStore::open(dir.path(), 1_000_000).unwrap();
    assert_eq!(
        (label(&store, 7), label(&store, 42), label(&store, 5999)),
        ("fourth".into(), "third".into(), "first".into())
    );
}

/// Every file under `dir` that contains `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p).unwrap().windows(needle.len()).any(|w| w == needle) {
                found.push(p);
            }
        }
    }
    found
}

/// Deleted and overwritten data is on disk until compaction, and gone after it; the rest
/// survives, indexes work, and later writes and reopening still behave.
#[test]
fn compaction_removes_deleted_and_overwritten_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let store = EdgeStore::open(dir.path(), 1_000_000).unwrap();
    store.ensure_collection(&spec()).unwrap();
    store.upsert("t", (0..50).map(|i| point(i, "keep")).collect()).unwrap();
    store.upsert("t", vec![point(100, "secret-zebra-quasar")]).unwrap();
    let mut payload = Payload::new();
    payload.insert("label".into(), json!("old-value-walrus"));
    store.set_payload("t", vec![Uuid::from_u64_pair(0, 3)], payload.clone()).unwrap();
    payload.insert("label".into(), json!("new-value"));
    store.set_payload("t", vec![Uuid::from_u64_pair(0, 3)], payload).unwrap();
    store.delete("t", vec![Uuid::from_u64_pair(0, 100)]).unwrap();
    assert!(!files_containing(dir.path(), b"secret-zebra-quasar").is_empty(), "deleted bytes linger before");
    store.compact("t").unwrap();
    assert_eq!(files_containing(dir.path(), b"secret-zebra-quasar"), Vec::<PathBuf>::new());
    assert_eq!(files_containing(dir.path(), b"old-value-walrus"), Vec::<PathBuf>::new());
    assert_eq!(store.count("t", None).unwrap(), 50);
    assert_eq!(label(&store, 3), "new-value");
    let filter = Filter::default().must(Condition::Range { key: "n".into(), gte: Some(10.0), lte: Some(19.0) });
    assert_eq!(store.count("t", Some(filter)).unwrap(), 10, "payload indexes are rebuilt");
    store.upsert("t", vec![point(7, "after")]).unwrap();
    assert_eq!(label(&store, 7), "after");
    drop(store);
    let store = EdgeStore::open(dir.path(), 1_000_000).unwrap();
    assert_eq!((label(&store, 7), label(&store, 3)), ("after".into(), "new-value".into()));
    assert_eq!(store.count("t", None).unwrap(), 50);
}

/// A crash between the two renames of a compaction: the complete copy is taken on open.
#[test]
fn an_interrupted_compaction_is_finished_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EdgeStore::open(dir.path(), 1_000_000).unwrap();
        store.ensure_collection(&spec()).unwrap();
        store.upsert("t", (0..5).map(|i| point(i, "keep")).collect()).unwrap();
    }
    let collections = dir.path().join("collections");
    // Make a complete copy as compaction would, then "crash" after moving the original away.
    {
        let store = EdgeStore::open(dir.path(), 1_000_000).unwrap();
        store.compact("t").unwrap();
    }
    std::fs::rename(collections.join("t"), collections.join("t.compact")).unwrap();
    std::fs::write(collections.join("t.compact").join(COMPACTION_DONE), b"").unwrap();
    std::fs::create_dir_all(collections.join("t.old")).unwrap();
    let store = EdgeStore::open(dir.path(), 1_000_000).unwrap();
    assert_eq!(store.count("t", None).unwrap(), 5);
    assert!(!collections.join("t.old").exists() && !collections.join("t.compact").exists());
    // An incomplete copy is dropped and the original kept.
    drop(store);
    std::fs::create_dir_all(collections.join("t.compact")).unwrap();
    let store = EdgeStore::open(dir.path(), 1_000_000).unwrap();
    assert_eq!(store.count("t", None).unwrap(), 5);
    assert!(!collections.join("t.compact").exists());
}

/// A compaction or reopening that fails after closing the shard leaves the collection closed:
/// reads and writes answer `Unavailable` (never a panic), and the collection reopens by itself
/// once loading works again, with every point.
#[test]
fn a_failed_compaction_or_reopen_answers_unavailable_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let store = EdgeStore::open(dir.path(), 1_000_000).unwrap();
    store.ensure_collection(&spec()).unwrap();
    store.upsert("t", (0..20).map(|i| point(i, "keep")).collect()).unwrap();
    let c = store.get("t").unwrap();
    let failing: [&dyn Fn() -> crate::error::Result<()>; 2] = [&|| store.compact("t"), &|| c.reopen()];
    for fail in failing {
        // The operation's own load fails, and so does the first recovery.
        c.failing_loads.store(2, std::sync::atomic::Ordering::Relaxed);
        assert!(fail().is_err());
        for _ in 0..2 {
            let e = store.count("t", None).unwrap_err();
            assert!(matches!(e, crate::error::Error::Unavailable(_)), "{e:?}");
            let e = store.upsert("t", vec![point(50, "during")]).unwrap_err();
            assert!(matches!(e, crate::error::Error::Unavailable(_)), "{e:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert_eq!(store.count("t", None).unwrap(), 20, "reopened with every point");
        store.upsert("t", vec![point(7, "after")]).unwrap();
        assert_eq!(label(&store, 7), "after");
    }
}
