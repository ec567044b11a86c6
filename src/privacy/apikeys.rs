//! API keys: random bearer tokens with a role, stored only as their SHA-256 and compared in
//! constant time. Keys come from the configuration (`[auth] keys`) and from
//! `DATA_DIR/keys.json` (written by `aisle keys create`, mode 0600, re-read when it changes).
//!
//! Without keys the server fails closed. It is open (every request acts as `admin`) only when
//! `[auth] open = true` says so, or while it has never had a key and listens on a loopback
//! address (a developer's machine). Once a key existed (the marker `DATA_DIR/auth-required` is
//! written then), revoking the last key or deleting `keys.json` refuses every request that
//! needs a key (401) until a key is created again.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::ApiKeyConfig;
use crate::error::{Error, Result};

/// What a key may do. From `read` up, each role includes the ones below it; `widget` stands
/// apart (lowest in the order, so no route that names a least role admits it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// For pages shoppers load (the embeddable widget), where the key is public: only the routes
    /// registered as `Access::Shopper` (search, similar, trending, recommendations, events, the
    /// assistant's chat, whoami). Never customers' data, product listings, statistics, metrics
    /// or the OpenAI-compatible endpoints.
    Widget,
    /// Read the catalog, search, trending, statistics, models, metrics.
    Read,
    /// Also events, customers' consent, recommendations, chat and embeddings.
    App,
    /// Also catalog writes, imports, training, privacy operations (export, erasure), audit.
    Admin,
}

impl Role {
    /// Parse `admin`, `app`, `read` or `widget`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "widget" => Some(Role::Widget),
            "admin" => Some(Role::Admin),
            "app" => Some(Role::App),
            "read" => Some(Role::Read),
            _ => None,
        }
    }

    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::App => "app",
            Role::Read => "read",
            Role::Widget => "widget",
        }
    }
}

/// A stored key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredKey {
    /// Name (for logs and the audit log).
    pub name: String,
    /// Role.
    pub role: Role,
    /// Hex SHA-256 of the key.
    pub sha256: String,
    /// When it was made.
    #[serde(default)]
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key's name (`anonymous` with authentication off).
    pub name: String,
    /// Its role.
    pub role: Role,
}

/// The file that `aisle keys` manages.
pub fn keys_file(data_dir: &Path) -> PathBuf {
    data_dir.join("keys.json")
}

/// SHA-256 of a key, in hex.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A new random key: `aisle_` and 43 characters of base64url (256 bits).
pub fn generate_key() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    format!("aisle_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Read the keys file (none if missing).
pub fn read_keys_file(path: &Path) -> Result<Vec<StoredKey>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| Error::Config(format!("{} is not a valid keys file: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
        Err(e) => Err(Error::io(format!("cannot read {}", path.display()), e)),
    }
}

/// Write the keys file atomically with mode 0600.
pub fn write_keys_file(path: &Path, keys: &[StoredKey]) -> Result<()> {
    let body = serde_json::to_vec_pretty(keys).map_err(|e| Error::Internal(e.to_string()))?;
    super::write_private(path, &body)
}

/// Key changes of this process, one at a time (the file is read, changed and written whole).
static KEYS_FILE_WRITER: Mutex<()> = Mutex::new(());

/// Add a key named `name` with `role` to the keys file under `data_dir` (and seal the
/// directory: from now on, no keys means closed). The key is returned once and stored only
/// hashed.
pub fn create_key(data_dir: &Path, name: &str, role: Role) -> Result<(String, StoredKey)> {
    let _one_writer = KEYS_FILE_WRITER.lock();
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Error::invalid("/name", "must be 1 to 100 characters, none of them control characters"));
    }
    let path = keys_file(data_dir);
    let mut keys = read_keys_file(&path)?;
    if keys.iter().any(|k| k.name == name) {
        return Err(Error::Conflict(format!("a key named '{name}' exists; revoke it first")));
    }
    let key = generate_key();
    let stored =
        StoredKey { name: name.to_string(), role, sha256: hash_key(&key), created_at: Some(chrono::Utc::now()) };
    keys.push(stored.clone());
    write_keys_file(&path, &keys)?;
    seal(data_dir)?;
    Ok((key, stored))
}

/// Remove the key named `name` from the keys file under `data_dir` (404 if there is none).
pub fn revoke_key(data_dir: &Path, name: &str) -> Result<()> {
    let _one_writer = KEYS_FILE_WRITER.lock();
    let path = keys_file(data_dir);
    let mut keys = read_keys_file(&path)?;
    let before = keys.len();
    keys.retain(|k| k.name != name);
    if keys.len() == before {
        return Err(Error::not_found("key", name));
    }
    write_keys_file(&path, &keys)
}

/// The marker that this data directory has had API keys: from then on, no keys means closed.
pub fn sealed_marker(data_dir: &Path) -> PathBuf {
    data_dir.join("auth-required")
}

/// Write the marker (see [`sealed_marker`]); called whenever keys are seen or created.
pub fn seal(data_dir: &Path) -> Result<()> {
    let path = sealed_marker(data_dir);
    if path.exists() {
        return Ok(());
    }
    super::write_private(
        &path,
        b"This data directory has had API keys: without one, aisle refuses requests that need a key.\n\
          Delete this file only together with setting [auth] open = true on purpose.\n",
    )
}

/// The keys a server accepts.
pub struct KeyStore {
    configured: Vec<StoredKey>,
    file: PathBuf,
    marker: PathBuf,
    state: Mutex<FileState>,
    /// `[auth] open`: serve without keys, on purpose.
    open: bool,
    /// Keys existed (in this process or, by the marker, before).
    sealed: AtomicBool,
    /// The server listens on a loopback address only.
    loopback: AtomicBool,
}

/// How requests are authenticated now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// Keys exist: each request needs a valid one.
    Keys,
    /// No keys and `[auth] open = true`: every request is allowed.
    Open,
    /// No keys ever, no setting: open on a loopback address, closed on any other.
    Unset,
    /// Keys existed and none is left: every request that needs a key is refused.
    Closed,
}

struct FileState {
    keys: Vec<StoredKey>,
    modified: Option<SystemTime>,
    checked: Instant,
}

/// The outcome of checking a presented key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Authentication is off (no keys at all).
    Open,
    /// A valid key.
    Valid(Principal),
    /// No key, or not a known one.
    Invalid,
}

impl KeyStore {
    /// Keys from the configuration and the keys file under `data_dir`; `open` is `[auth] open`.
    pub fn load(configured: &[ApiKeyConfig], data_dir: &Path, open: bool) -> Result<Self> {
        let configured = configured
            .iter()
            .map(|k| {
                Ok(StoredKey {
                    name: k.name.clone(),
                    role: Role::parse(&k.role).ok_or_else(|| Error::Config(format!("bad role '{}'", k.role)))?,
                    sha256: k.sha256.to_ascii_lowercase(),
                    created_at: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let file = keys_file(data_dir);
        let keys = read_keys_file(&file)?;
        let modified = std::fs::metadata(&file).and_then(|m| m.modified()).ok();
        let marker = sealed_marker(data_dir);
        if !configured.is_empty() || !keys.is_empty() {
            seal(data_dir)?;
        }
        let sealed = AtomicBool::new(marker.exists());
        Ok(Self {
            configured,
            file,
            marker,
            state: Mutex::new(FileState { keys, modified, checked: Instant::now() }),
            open,
            sealed,
            loopback: AtomicBool::new(false),
        })
    }

    /// Say whether the server listens on a loopback address only (the default is no: closed).
    pub fn set_loopback(&self, loopback: bool) {
        self.loopback.store(loopback, Ordering::Relaxed);
    }

    /// How requests are authenticated now.
    pub fn mode(&self) -> AuthMode {
        self.refresh();
        if !self.configured.is_empty() || !self.state.lock().keys.is_empty() {
            if !self.sealed.swap(true, Ordering::Relaxed)
                && let Some(dir) = self.marker.parent()
                && let Err(e) = seal(dir)
            {
                tracing::error!(error = %e, "cannot write the auth-required marker");
            }
            AuthMode::Keys
        } else if self.open {
            AuthMode::Open
        } else if self.sealed.load(Ordering::Relaxed) {
            AuthMode::Closed
        } else {
            AuthMode::Unset
        }
    }

    /// Re-read the keys file if it changed, and look for the marker another process may have
    /// written (both at most once a second, not on every request).
    fn refresh(&self) {
        let mut s = self.state.lock();
        if s.checked.elapsed() < Duration::from_secs(1) {
            return;
        }
        s.checked = Instant::now();
        if self.marker.exists() {
            self.sealed.store(true, Ordering::Relaxed);
        }
        let modified = std::fs::metadata(&self.file).and_then(|m| m.modified()).ok();
        if modified != s.modified {
            match read_keys_file(&self.file) {
                Ok(keys) => {
                    tracing::info!(keys = keys.len(), "reloaded the API keys file");
                    s.keys = keys;
                    s.modified = modified;
                }
                Err(e) => tracing::error!(error = %e, "keeping the previous API keys"),
            }
        }
    }

    /// The keys in effect: from the configuration (`configured: true`) and the keys file.
    pub fn list(&self) -> Vec<(StoredKey, bool)> {
        self.refresh();
        let state = self.state.lock();
        self.configured.iter().map(|k| (k.clone(), true)).chain(state.keys.iter().map(|k| (k.clone(), false))).collect()
    }

    /// Re-read the keys file now (after this process changed it), not within the next second.
    pub fn reload(&self) {
        self.state.lock().checked = Instant::now() - Duration::from_secs(2);
        self.refresh();
    }

    /// Check a presented key: its hash is compared with every stored hash in constant time.
    pub fn check(&self, presented: Option<&str>) -> Check {
        match self.mode() {
            AuthMode::Keys => {}
            AuthMode::Open => return Check::Open,
            AuthMode::Unset if self.loopback.load(Ordering::Relaxed) => return Check::Open,
            AuthMode::Unset | AuthMode::Closed => return Check::Invalid,
        }
        let Some(presented) = presented else { return Check::Invalid };
        let hash = hash_key(presented);
        let state = self.state.lock();
        let mut found: Option<&StoredKey> = None;
        for k in self.configured.iter().chain(state.keys.iter()) {
            // No early exit: the time taken does not depend on which key matched.
            let equal: bool = k.sha256.as_bytes().ct_eq(hash.as_bytes()).into();
            if equal && found.is_none() {
                found = Some(k);
            }
        }
        match found {
            Some(k) => Check::Valid(Principal { name: k.name.clone(), role: k.role }),
            None => Check::Invalid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stored_hashed_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::load(&[], dir.path(), false).unwrap();
        assert_eq!(store.mode(), AuthMode::Unset);
        assert_eq!(store.check(None), Check::Invalid, "no keys, no setting, not on loopback: closed");
        store.set_loopback(true);
        assert_eq!(store.check(None), Check::Open, "no keys ever, on loopback: open");
        let key = generate_key();
        assert!(key.starts_with("aisle_") && key.len() == 49);
        let stored = StoredKey {
            name: "web".into(),
            role: Role::App,
            sha256: hash_key(&key),
            created_at: Some(chrono::Utc::now()),
        };
        write_keys_file(&keys_file(dir.path()), std::slice::from_ref(&stored)).unwrap();
        let text = std::fs::read_to_string(keys_file(dir.path())).unwrap();
        assert!(!text.contains(&key), "only the hash is written");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(keys_file(dir.path())).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let admin = generate_key();
        let configured = [ApiKeyConfig { name: "ops".into(), role: "admin".into(), sha256: hash_key(&admin) }];
        let store = KeyStore::load(&configured, dir.path(), false).unwrap();
        assert_eq!(store.check(Some(&key)), Check::Valid(Principal { name: "web".into(), role: Role::App }));
        assert_eq!(store.check(Some(&admin)), Check::Valid(Principal { name: "ops".into(), role: Role::Admin }));
        assert_eq!(store.check(Some("aisle_wrong")), Check::Invalid);
        assert_eq!(store.check(None), Check::Invalid);
        assert!(Role::Admin > Role::App && Role::App > Role::Read && Role::Read > Role::Widget);
    }

    #[test]
    fn a_store_that_had_keys_never_opens_without_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let key = generate_key();
        let stored = StoredKey { name: "ops".into(), role: Role::Admin, sha256: hash_key(&key), created_at: None };
        write_keys_file(&keys_file(dir.path()), &[stored]).unwrap();
        let store = KeyStore::load(&[], dir.path(), false).unwrap();
        store.set_loopback(true);
        assert_eq!(store.mode(), AuthMode::Keys);
        assert!(sealed_marker(dir.path()).exists(), "keys seen: the directory is marked");
        // The last key revoked, then the keys file deleted: closed, in this process and the next.
        let changes: [fn(&Path); 2] = [|p| write_keys_file(p, &[]).unwrap(), |p| std::fs::remove_file(p).unwrap()];
        for change in changes {
            change(&keys_file(dir.path()));
            let fresh = KeyStore::load(&[], dir.path(), false).unwrap();
            fresh.set_loopback(true);
            assert_eq!(fresh.mode(), AuthMode::Closed);
            assert_eq!(fresh.check(None), Check::Invalid);
            assert_eq!(fresh.check(Some(&key)), Check::Invalid);
        }
        // Even with the marker gone, this process remembers it had keys.
        std::fs::remove_file(sealed_marker(dir.path())).unwrap();
        store.state.lock().checked = Instant::now() - Duration::from_secs(2);
        assert_eq!(store.mode(), AuthMode::Closed);
        // Only the explicit setting opens it.
        let open = KeyStore::load(&[], dir.path(), true).unwrap();
        assert_eq!((open.mode(), open.check(None)), (AuthMode::Open, Check::Open));
    }
}
