//! `[store]`: where the vector store lives (data directory or Qdrant server) and how
//! collections are named and indexed. Not the store itself (`store/`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[store]`: where vectors live.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Data directory of the embedded store (and of aisle's own files).
    pub data_dir: PathBuf,
    /// URL of a Qdrant server; empty means the embedded store.
    pub qdrant_url: String,
    /// Prefix of collection names (to share a Qdrant server between deployments).
    pub collection_prefix: String,
    /// Build the HNSW index once a collection has this many points that are not yet indexed.
    pub index_after_points: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("var/aisle"),
            qdrant_url: String::new(),
            collection_prefix: String::new(),
            index_after_points: 20_000,
        }
    }
}
