//! This process among the aisle processes sharing one store (*replicas*): its name, which
//! labels its shares of the counters (see `catalog::shares` and `recommend::stats`), and the
//! checks that keep replicas from corrupting each other's data.
//!
//! - The name lives in `DATA_DIR/replica` (created on first start). While the process runs it
//!   holds an exclusive lock on that file, so two processes never write as one replica (on the
//!   embedded store the engine's own lock already does this).
//! - The store remembers the fingerprint of the pseudonym secret that keyed its customers; a
//!   replica with another secret is refused at start, since it would file every customer under
//!   a second key.
//!
//! Not for: the counters themselves.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::privacy::Keyring;
use crate::store::{CollectionSpec, Point, Store, point_id};

/// Collection of facts about the store as a whole.
const META: &str = "meta";

/// This process's identity among the replicas. Dropping it releases the name.
pub struct Replica {
    /// The name.
    pub id: String,
    _lock: File,
}

impl Replica {
    /// Read (or create) this data directory's replica name and lock it; check that the store's
    /// customers were keyed with this keyring's secret (recording its fingerprint if the store
    /// has none yet).
    pub async fn join(data_dir: &Path, store: &Store, keys: &Keyring) -> Result<Self> {
        std::fs::create_dir_all(data_dir).map_err(|e| Error::io(format!("cannot create {}", data_dir.display()), e))?;
        let path = data_dir.join("replica");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
        file.try_lock().map_err(|_| {
            Error::Config(format!(
                "{} is in use by another aisle process: give each process its own data directory",
                path.display()
            ))
        })?;
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let id = match text.trim() {
            t if !t.is_empty() && t.len() <= 64 && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') => {
                t.to_string()
            }
            _ => {
                let id = hex::encode(rand::random::<[u8; 8]>());
                file.set_len(0)
                    .and_then(|_| file.write_all(id.as_bytes()))
                    .and_then(|_| file.sync_all())
                    .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
                id
            }
        };
        check_keyring(store, keys).await?;
        Ok(Self { id, _lock: file })
    }
}

/// Refuse a keyring whose secret differs from the one the store's customers were keyed with.
async fn check_keyring(store: &Store, keys: &Keyring) -> Result<()> {
    store.ensure_collection(&CollectionSpec::payload_only(META, &[])).await?;
    let id = point_id(META, "keyring");
    let mine = keys.fingerprint();
    let payload = json!({ "fingerprint": mine }).as_object().cloned().unwrap_or_default();
    if !store.claim(META, vec![Point { id, vectors: vec![], payload }]).await?.is_empty() {
        return Ok(());
    }
    let stored = store.retrieve(META, vec![id], vec![]).await?;
    let theirs = stored.first().and_then(|r| r.payload.get("fingerprint")).and_then(Value::as_str).unwrap_or("");
    if theirs != mine {
        return Err(Error::Config(
            "this store's customers were keyed with another pseudonym secret: give every aisle process \
             sharing the store the same privacy.secret (or copy DATA_DIR/secret from the first one)"
                .into(),
        ));
    }
    Ok(())
}
