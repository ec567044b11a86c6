//! `[store]`: where the vector store lives (data directory or Qdrant server), how collections
//! are named and indexed, and how collections on a Qdrant server are laid out over a cluster.
//! Not the store itself (`store/`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[store]`: where vectors live.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Data directory of the embedded store (and of aisle's own files).
    pub data_dir: PathBuf,
    /// gRPC URL of a Qdrant server (e.g. `http://qdrant:6334`, `https://...` for TLS); empty
    /// means the embedded store.
    pub qdrant_url: String,
    /// API key of the Qdrant server (sent with every request); empty for none.
    pub qdrant_api_key: String,
    /// Seconds a request to the Qdrant server may take before it fails with a 503.
    pub timeout_secs: u64,
    /// Seconds to wait for a connection to the Qdrant server.
    pub connect_timeout_secs: u64,
    /// Prefix of collection names (to share a Qdrant server between deployments).
    pub collection_prefix: String,
    /// Build the HNSW index once a collection has this many points that are not yet indexed
    /// (embedded store; a Qdrant server indexes by its own optimizer settings).
    pub index_after_points: usize,
    /// Shards per collection created on a Qdrant server.
    pub shard_number: u32,
    /// Copies of each shard on a Qdrant cluster.
    pub replication_factor: u32,
    /// Replicas that must acknowledge a write before it succeeds.
    pub write_consistency_factor: u32,
    /// Keep payloads on disk rather than in memory (Qdrant server).
    pub on_disk_payload: bool,
    /// Keep dense vectors on disk (memory-mapped) rather than in memory (Qdrant server).
    pub on_disk_vectors: bool,
    /// Writes are refused (507) while the data directory's filesystem has less free (MiB; 0
    /// disables the check).
    pub min_free_mb: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("var/aisle"),
            qdrant_url: String::new(),
            qdrant_api_key: String::new(),
            timeout_secs: 10,
            connect_timeout_secs: 3,
            collection_prefix: String::new(),
            index_after_points: 20_000,
            min_free_mb: 256,
            shard_number: 1,
            replication_factor: 1,
            write_consistency_factor: 1,
            on_disk_payload: true,
            on_disk_vectors: false,
        }
    }
}

impl StoreConfig {
    /// Check the server URL (when one is set).
    pub fn validate_url(&self, problems: &mut Vec<String>) {
        let url = &self.qdrant_url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            problems.push(format!(
                "store.qdrant_url must start with http:// or https:// (the server's gRPC port, usually 6334), not {url:?}"
            ));
        }
    }

    /// Check the cluster settings and the server URL.
    pub(super) fn validate(&self, problems: &mut Vec<String>) {
        self.validate_url(problems);
        if self.timeout_secs == 0 || self.connect_timeout_secs == 0 {
            problems.push("store.timeout_secs and store.connect_timeout_secs must be at least 1".to_string());
        }
        if self.shard_number == 0 || self.replication_factor == 0 || self.write_consistency_factor == 0 {
            problems.push(
                "store.shard_number, store.replication_factor and store.write_consistency_factor must be at least 1"
                    .to_string(),
            );
        }
        if self.write_consistency_factor > self.replication_factor {
            problems.push(format!(
                "store.write_consistency_factor ({}) cannot exceed store.replication_factor ({})",
                self.write_consistency_factor, self.replication_factor
            ));
        }
    }
}
