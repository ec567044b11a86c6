//! Configuration: one [`Config`], read from `aisle.toml` < `AISLE_*` environment < command-line flags.
//!
//! Every key of the file has an environment twin named `AISLE_<SECTION>_<KEY>` in upper case,
//! e.g. `[server] listen` is `AISLE_SERVER_LISTEN`. `QDRANT_URL` and `QDRANT_API_KEY` are
//! accepted as aliases of `AISLE_STORE_QDRANT_URL` and `AISLE_STORE_QDRANT_API_KEY`. Unknown
//! keys in the file are an error, not silently ignored.
//!
//! One file per section, each with its own validation. This module is the bottom layer of
//! aisle: domain modules import their section from here, and it imports nothing of them. It
//! only parses and validates; it opens nothing.

mod assistant;
mod auth;
mod events;
mod experiments;
mod models;
mod privacy;
mod recommend;
mod search;
mod server;
mod store;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use assistant::AssistantConfig;
pub use auth::{ApiKeyConfig, AuthConfig};
pub use events::EventsConfig;
pub use experiments::{ExperimentConfig, ExperimentMetric, VariantConfig};
pub use models::{ChatConfig, EmbedConfig, ModelsConfig};
pub use privacy::{PiiKind, PrivacyConfig};
pub use recommend::{RecommendConfig, TrainConfig};
pub use search::SearchConfig;
pub use server::ServerConfig;
pub use store::StoreConfig;

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
    pub train: TrainConfig,
    /// The shopping assistant.
    pub assistant: AssistantConfig,
    /// A/B tests of recommendation settings (`[[experiments]]`; `AISLE_EXPERIMENTS` as a JSON
    /// array).
    pub experiments: Vec<ExperimentConfig>,
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

    /// Check values that parse but make no sense: each section checks its own.
    pub fn validate(&self) -> Result<()> {
        let mut problems = Vec::new();
        self.server.validate(&mut problems);
        self.embed.validate(&mut problems);
        self.store.validate(&mut problems);
        self.search.validate(&mut problems);
        self.chat.validate(&mut problems);
        self.events.validate(&mut problems);
        self.recommend.validate(&mut problems);
        self.train.validate(&mut problems);
        self.assistant.validate(&mut problems);
        self.auth.validate(&mut problems);
        experiments::validate(&self.experiments, &mut problems);
        if problems.is_empty() { Ok(()) } else { Err(Error::Config(problems.join("; "))) }
    }
}

/// Overlay `file` onto `base`, refusing keys the defaults do not have.
fn merge(base: &mut toml::Table, file: toml::Table, origin: &str) -> Result<()> {
    for (section, value) in file {
        // Arrays of tables (`[[experiments]]`) replace the default list.
        if let (Some(toml::Value::Array(list)), toml::Value::Array(given)) = (base.get_mut(&section), &value) {
            *list = given.clone();
            continue;
        }
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

/// Apply `AISLE_<SECTION>_<KEY>` variables (and the `QDRANT_URL` and `QDRANT_API_KEY` aliases) to the table.
fn apply_env(table: &mut toml::Table, env: &[(String, String)]) -> Result<()> {
    let lookup = |name: &str| env.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    for (section, value) in table.iter_mut() {
        if let toml::Value::Array(_) = value {
            // A top-level list (`experiments`): `AISLE_EXPERIMENTS`, a JSON array.
            let var = format!("AISLE_{}", section.to_uppercase());
            if let Some(raw) = lookup(&var) {
                *value = parse_env_value(value, &raw).map_err(|why| Error::Config(format!("{var}: {why}")))?;
            }
            continue;
        }
        let toml::Value::Table(values) = value else { continue };
        for (key, slot) in values.iter_mut() {
            let mut var = format!("AISLE_{}_{}", section.to_uppercase(), key.to_uppercase());
            let mut raw = lookup(&var);
            if raw.is_none() && section == "store" && (key == "qdrant_url" || key == "qdrant_api_key") {
                var = key.to_uppercase();
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
    fn experiments_from_the_file_or_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aisle.toml");
        let text = "[[experiments]]\nname = \"light\"\n[[experiments.variants]]\nname = \"a\"\n\
                    [[experiments.variants]]\nname = \"b\"\nshare = 3\nweights = { trending = 0.1 }\n";
        std::fs::write(&path, text).unwrap();
        let c = Config::load(Some(&path), env(&[])).unwrap();
        assert_eq!((c.experiments[0].name.as_str(), c.experiments[0].variants[1].share), ("light", 3.0));
        let json = r#"[{"name": "x", "variants": [{"name": "a"}, {"name": "a", "weights": {"popular": 1}}]}]"#;
        let e = Config::load(None, env(&[("AISLE_EXPERIMENTS", json)])).unwrap_err().to_string();
        assert!(e.contains("variants[1] (a).name") && e.contains("unknown source 'popular'"), "{e}");
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
