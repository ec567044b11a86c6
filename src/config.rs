//! Configuration: one [`Config`], read from `aisle.toml` < `AISLE_*` environment < command-line flags.
//!
//! Every key of the file has an environment twin named `AISLE_<SECTION>_<KEY>` in upper case,
//! e.g. `[server] listen` is `AISLE_SERVER_LISTEN`. `QDRANT_URL` is accepted as an alias of
//! `AISLE_STORE_QDRANT_URL`. Unknown keys in the file are an error, not silently ignored.
//! This module knows nothing of the rest of aisle: it only parses and validates.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The whole configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HTTP server.
    pub server: ServerConfig,
    /// Vector store.
    pub store: StoreConfig,
    /// Models and devices.
    pub models: ModelsConfig,
    /// Embedding queue.
    pub embed: EmbedConfig,
    /// Product search.
    pub search: SearchConfig,
    /// Chat model and its scheduler.
    pub chat: ChatConfig,
    /// Events and live customer profiles.
    pub events: EventsConfig,
    /// Recommendations.
    pub recommend: RecommendConfig,
    /// Privacy.
    pub privacy: PrivacyConfig,
    /// API keys and limits.
    pub auth: AuthConfig,
    /// Collaborative-filtering training.
    pub train: crate::recommend::train::TrainConfig,
    /// The shopping assistant.
    pub assistant: crate::assistant::AssistantConfig,
}

/// `[server]`: the HTTP edge.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: String,
    /// Largest accepted request body in bytes (413 above).
    pub max_body_bytes: usize,
    /// Most products accepted in one batch request.
    pub max_batch_items: usize,
    /// Seconds that in-flight requests get to finish on shutdown.
    pub shutdown_grace_secs: u64,
    /// Log format: `text` or `json`.
    pub log_format: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            max_body_bytes: 8 * 1024 * 1024,
            max_batch_items: 1000,
            shutdown_grace_secs: 20,
            log_format: "text".into(),
        }
    }
}

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

/// `[models]`: which models to load, from where, on what.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsConfig {
    /// Directory holding the model folders.
    pub dir: PathBuf,
    /// Embedding model: a folder name under `dir`, or a path.
    pub embedding: String,
    /// Device: `auto`, `cpu` or `cuda:N`.
    pub device: String,
    /// Compute threads; 0 means "from the cgroup CPU quota".
    pub threads: usize,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        Self { dir: PathBuf::from("models"), embedding: "all-MiniLM-L6-v2".into(), device: "auto".into(), threads: 0 }
    }
}

impl ModelsConfig {
    /// Resolve a model name to a path: an existing path is taken as is, else a folder under `dir`.
    pub fn resolve(&self, name: &str) -> PathBuf {
        let p = Path::new(name);
        if p.is_absolute() || p.exists() { p.to_path_buf() } else { self.dir.join(name) }
    }
}

/// `[embed]`: the embedding batching queue.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbedConfig {
    /// Most padded tokens in one forward pass.
    pub max_batch_tokens: usize,
    /// Most texts in one forward pass.
    pub max_batch_size: usize,
    /// Most texts waiting in the queue before new requests get 503.
    pub max_queued: usize,
    /// Most texts accepted in one `/v1/embeddings` request.
    pub max_inputs: usize,
}

impl Default for EmbedConfig {
    fn default() -> Self {
        Self { max_batch_tokens: 8192, max_batch_size: 32, max_queued: 20_000, max_inputs: 256 }
    }
}

/// `[search]`: hybrid product search.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchConfig {
    /// RRF weight of the dense (semantic) source.
    pub dense_weight: f32,
    /// RRF weight of the BM25 keyword source.
    pub keyword_weight: f32,
    /// Candidates each source contributes before fusion.
    pub candidates: usize,
    /// Largest `limit` a search may ask for.
    pub max_limit: usize,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self { dense_weight: 1.0, keyword_weight: 1.0, candidates: 100, max_limit: 100 }
    }
}

/// `[chat]`: the chat model and its scheduler.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatConfig {
    /// Chat model: a folder (holding one .gguf) or file under `[models] dir`, or a path; empty
    /// disables chat.
    pub model: String,
    /// Longest context in tokens (the model's own limit applies too).
    pub max_context: usize,
    /// Requests generated at once (round-robin).
    pub max_active: usize,
    /// Requests waiting before new ones get 503.
    pub max_waiting: usize,
    /// Prompt tokens per forward pass.
    pub prefill_chunk: usize,
    /// `max_tokens` of chat completions that do not set it.
    pub default_max_tokens: usize,
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            model: "SmolLM2-135M-Instruct".into(),
            max_context: 4096,
            max_active: 4,
            max_waiting: 64,
            prefill_chunk: 512,
            default_max_tokens: 512,
        }
    }
}

/// `[events]`: how events shape profiles, popularity and co-occurrence.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// Weight of a view in taste and popularity.
    pub weight_view: f64,
    /// Weight of a click.
    pub weight_click: f64,
    /// Weight of an add-to-cart.
    pub weight_cart: f64,
    /// Weight of a purchase.
    pub weight_purchase: f64,
    /// Weight of a return (negative: pushes taste away).
    pub weight_return: f64,
    /// Weight per rating point away from 3 (a 5 adds 2x this, a 1 subtracts 2x this).
    pub weight_rating: f64,
    /// Days after which an event counts half in a customer's taste.
    pub taste_half_life_days: f64,
    /// Days after which an event counts half in trending.
    pub trending_half_life_days: f64,
    /// Days within which two cart/purchase events of one customer count as bought together.
    pub co_purchase_window_days: f64,
    /// Most events accepted in one request.
    pub max_batch: usize,
    /// Events older than this many days are refused on ingestion (and purged by retention).
    pub max_age_days: f64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            weight_view: 1.0,
            weight_click: 2.0,
            weight_cart: 4.0,
            weight_purchase: 8.0,
            weight_return: -6.0,
            weight_rating: 1.5,
            taste_half_life_days: 30.0,
            trending_half_life_days: 7.0,
            co_purchase_window_days: 30.0,
            max_batch: 1000,
            max_age_days: 365.0,
        }
    }
}

/// `[recommend]`: candidate sources, fusion and diversity.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecommendConfig {
    /// RRF weight of the `content` source (customer taste vs product text).
    pub weight_content: f32,
    /// RRF weight of the `session` source (recent items).
    pub weight_session: f32,
    /// RRF weight of the `co_purchase` source (bought together).
    pub weight_co_purchase: f32,
    /// RRF weight of the `trending` source (time-decayed popularity).
    pub weight_trending: f32,
    /// RRF weight of the `collab` source (collaborative filtering, once trained).
    pub weight_collab: f32,
    /// Candidates each source contributes.
    pub candidates: usize,
    /// MMR trade-off: 1 = relevance only, 0 = diversity only.
    pub mmr_lambda: f32,
    /// The first items keep the fused relevance order; MMR diversifies from there on.
    pub mmr_keep_top: usize,
    /// Recent items that make the `session` source.
    pub session_items: usize,
    /// Hours within which impression events hide a product from recommendations.
    pub exclude_seen_hours: f64,
    /// Default number of recommendations.
    pub default_limit: usize,
    /// Largest `limit`.
    pub max_limit: usize,
}

impl Default for RecommendConfig {
    fn default() -> Self {
        Self {
            weight_content: 1.0,
            weight_session: 1.0,
            weight_co_purchase: 1.0,
            weight_trending: 0.5,
            weight_collab: 1.0,
            candidates: 100,
            mmr_lambda: 0.7,
            mmr_keep_top: 3,
            session_items: 5,
            exclude_seen_hours: 24.0,
            default_limit: 10,
            max_limit: 100,
        }
    }
}

/// `[privacy]`: keys, consent, redaction and retention.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Secret for pseudonymous customer keys; empty: generated into the data directory.
    pub secret: String,
    /// Treat customers without a consent record as consenting to personalization and
    /// analytics (default false: consent is opt-in, given with PUT /v1/customers/{id}).
    pub implicit_consent: bool,
    /// PII kinds redacted before anything is logged, stored or embedded
    /// (`email`, `phone`, `card`, `iban`, `address`); empty turns redaction off.
    pub redact: Vec<crate::privacy::pii::PiiKind>,
    /// Seconds between retention runs (events older than `events.max_age_days` are purged).
    pub retention_interval_secs: u64,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self {
            secret: String::new(),
            implicit_consent: false,
            redact: crate::privacy::pii::PiiKind::ALL.to_vec(),
            retention_interval_secs: 3600,
        }
    }
}

/// `[auth]`: API keys with roles, and per-key limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Keys given in the configuration (besides those made by `aisle keys create`, kept in
    /// `DATA_DIR/keys.json`). With no key anywhere, authentication is off.
    pub keys: Vec<ApiKeyConfig>,
    /// Requests per second each key may make (0 = no limit); above it: 429 + Retry-After.
    pub rate_per_sec: f64,
    /// Requests a key may make in a burst above its rate.
    pub burst: f64,
    /// Requests of one key in flight at once (0 = no limit); above it: 429 + Retry-After.
    pub max_concurrent: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self { keys: vec![], rate_per_sec: 0.0, burst: 50.0, max_concurrent: 0 }
    }
}

/// An API key given in the configuration: only its SHA-256 is stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// A name for logs and the audit log.
    pub name: String,
    /// `admin`, `app` or `read`.
    pub role: String,
    /// Hex SHA-256 of the key (`aisle keys hash` prints it).
    pub sha256: String,
}

impl Config {
    /// Load the configuration: defaults, then the file (if any), then `AISLE_*` variables from `env`.
    ///
    /// `file` is the explicit `--config` path (must exist); without it `./aisle.toml` is read if present.
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Self> {
        let mut table = match toml::Value::try_from(Config::default()) {
            Ok(toml::Value::Table(t)) => t,
            _ => return Err(Error::Internal("default config does not serialize to a table".into())),
        };
        let path = match file {
            Some(p) => Some(p.to_path_buf()),
            None => Some(PathBuf::from("aisle.toml")).filter(|p| p.exists()),
        };
        if let Some(path) = path {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
            let file_table: toml::Table =
                text.parse().map_err(|e| Error::Config(format!("{} is not valid TOML: {e}", path.display())))?;
            merge(&mut table, file_table, &path.display().to_string())?;
        }
        let env: Vec<(String, String)> = env.into_iter().collect();
        apply_env(&mut table, &env)?;
        let config: Config =
            toml::Value::Table(table).try_into().map_err(|e| Error::Config(format!("invalid configuration: {e}")))?;
        config.validate()?;
        Ok(config)
    }

    /// Check values that parse but make no sense.
    pub fn validate(&self) -> Result<()> {
        let mut problems = Vec::new();
        if self.server.max_body_bytes < 1024 {
            problems.push("server.max_body_bytes must be at least 1024".to_string());
        }
        if self.server.max_batch_items == 0 {
            problems.push("server.max_batch_items must be at least 1".to_string());
        }
        if !matches!(self.server.log_format.as_str(), "text" | "json") {
            problems.push(format!("server.log_format must be 'text' or 'json', not '{}'", self.server.log_format));
        }
        if self.embed.max_batch_size == 0 || self.embed.max_batch_tokens == 0 {
            problems.push("embed.max_batch_size and embed.max_batch_tokens must be at least 1".to_string());
        }
        if self.search.candidates == 0 || self.search.max_limit == 0 {
            problems.push("search.candidates and search.max_limit must be at least 1".to_string());
        }
        if self.chat.max_context < 16
            || self.chat.max_active == 0
            || self.chat.prefill_chunk == 0
            || self.chat.default_max_tokens == 0
        {
            problems.push(
                "chat.max_context must be >= 16; chat.max_active, prefill_chunk, default_max_tokens >= 1".to_string(),
            );
        }
        if self.events.taste_half_life_days <= 0.0
            || self.events.trending_half_life_days <= 0.0
            || self.events.max_age_days <= 0.0
        {
            problems.push("events half lives and max_age_days must be positive".to_string());
        }
        if !(0.0..=1.0).contains(&self.recommend.mmr_lambda) {
            problems.push("recommend.mmr_lambda must be between 0 and 1".to_string());
        }
        if self.recommend.candidates == 0 || self.recommend.max_limit == 0 || self.recommend.default_limit == 0 {
            problems.push("recommend.candidates, max_limit and default_limit must be at least 1".to_string());
        }
        if self.train.factors == 0
            || self.train.iterations == 0
            || self.train.reg <= 0.0
            || self.train.half_life_days <= 0.0
        {
            problems
                .push("train.factors and iterations must be at least 1; reg and half_life_days positive".to_string());
        }
        let a = &self.assistant;
        if a.cards == 0 || a.candidates < a.cards || a.max_tokens == 0 || a.max_turns < 2 {
            problems.push(
                "assistant.cards and max_tokens must be at least 1, candidates at least cards, max_turns at least 2"
                    .to_string(),
            );
        }
        if a.personal_weight < 0.0 || a.session_max_age_days <= 0.0 {
            problems.push(
                "assistant.personal_weight must not be negative and session_max_age_days must be positive".to_string(),
            );
        }
        if self.auth.rate_per_sec < 0.0 || self.auth.burst < 1.0 {
            problems.push("auth.rate_per_sec must not be negative and auth.burst must be at least 1".to_string());
        }
        for k in &self.auth.keys {
            if !matches!(k.role.as_str(), "admin" | "app" | "read") {
                problems.push(format!("auth.keys '{}': role must be admin, app or read, not '{}'", k.name, k.role));
            }
            if k.sha256.len() != 64 || hex::decode(&k.sha256).is_err() {
                problems.push(format!("auth.keys '{}': sha256 must be 64 hex digits", k.name));
            }
        }
        if self.search.dense_weight < 0.0 || self.search.keyword_weight < 0.0 {
            problems.push("search weights must not be negative".to_string());
        }
        if problems.is_empty() { Ok(()) } else { Err(Error::Config(problems.join("; "))) }
    }
}

/// Overlay `file` onto `base`, refusing keys the defaults do not have.
fn merge(base: &mut toml::Table, file: toml::Table, origin: &str) -> Result<()> {
    for (section, value) in file {
        let Some(toml::Value::Table(base_section)) = base.get_mut(&section) else {
            return Err(Error::Config(format!("{origin}: unknown section [{section}]")));
        };
        let toml::Value::Table(values) = value else {
            return Err(Error::Config(format!("{origin}: [{section}] must be a table")));
        };
        for (key, v) in values {
            if !base_section.contains_key(&key) {
                return Err(Error::Config(format!("{origin}: unknown key '{key}' in [{section}]")));
            }
            base_section.insert(key, v);
        }
    }
    Ok(())
}

/// Apply `AISLE_<SECTION>_<KEY>` variables (and the `QDRANT_URL` alias) to the table.
fn apply_env(table: &mut toml::Table, env: &[(String, String)]) -> Result<()> {
    let lookup = |name: &str| env.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    for (section, value) in table.iter_mut() {
        let toml::Value::Table(values) = value else { continue };
        for (key, slot) in values.iter_mut() {
            let mut var = format!("AISLE_{}_{}", section.to_uppercase(), key.to_uppercase());
            let mut raw = lookup(&var);
            if raw.is_none() && section == "store" && key == "qdrant_url" {
                var = "QDRANT_URL".into();
                raw = lookup(&var);
            }
            let Some(raw) = raw else { continue };
            *slot = parse_env_value(slot, &raw).map_err(|why| Error::Config(format!("{var}={raw:?}: {why}")))?;
        }
    }
    Ok(())
}

/// Parse an environment value as the type the default has.
fn parse_env_value(like: &toml::Value, raw: &str) -> std::result::Result<toml::Value, String> {
    Ok(match like {
        toml::Value::String(_) => toml::Value::String(raw.to_string()),
        toml::Value::Integer(_) => toml::Value::Integer(raw.trim().parse().map_err(|_| "expected an integer")?),
        toml::Value::Float(_) => toml::Value::Float(raw.trim().parse().map_err(|_| "expected a number")?),
        toml::Value::Boolean(_) => toml::Value::Boolean(match raw.trim() {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" => false,
            _ => return Err("expected true or false".into()),
        }),
        // Lists: a JSON array, or comma-separated strings.
        toml::Value::Array(_) => {
            let json: serde_json::Value = if raw.trim_start().starts_with('[') {
                serde_json::from_str(raw).map_err(|e| format!("not a JSON array: {e}"))?
            } else {
                serde_json::Value::Array(
                    raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| s.into()).collect(),
                )
            };
            toml::Value::try_from(json).map_err(|e| format!("cannot use this list: {e}"))?
        }
        _ => return Err("this key cannot be set from the environment".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn file_then_env_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aisle.toml");
        std::fs::write(
            &path,
            "[server]\nlisten = \"0.0.0.0:9000\"\nmax_body_bytes = 4096\n[search]\ndense_weight = 2.0\n",
        )
        .unwrap();
        let c =
            Config::load(Some(&path), env(&[("AISLE_SERVER_MAX_BODY_BYTES", "2048"), ("QDRANT_URL", "http://q:6334")]))
                .unwrap();
        assert_eq!(c.server.listen, "0.0.0.0:9000");
        assert_eq!(c.server.max_body_bytes, 2048);
        assert_eq!(c.search.dense_weight, 2.0);
        assert_eq!(c.store.qdrant_url, "http://q:6334");
        assert_eq!(c.embed.max_batch_size, EmbedConfig::default().max_batch_size);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aisle.toml");
        std::fs::write(&path, "[server]\nlisen = \"x\"\n").unwrap();
        let e = Config::load(Some(&path), env(&[])).unwrap_err().to_string();
        assert!(e.contains("unknown key 'lisen'"), "{e}");
        let e = Config::load(None, env(&[("AISLE_SERVER_MAX_BODY_BYTES", "lots")])).unwrap_err().to_string();
        assert!(e.contains("AISLE_SERVER_MAX_BODY_BYTES"), "{e}");
        let e = Config::load(None, env(&[("AISLE_SERVER_LOG_FORMAT", "xml")])).unwrap_err().to_string();
        assert!(e.contains("log_format"), "{e}");
    }
}
