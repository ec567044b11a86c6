//! Privacy: pseudonymous customer keys ([`Keyring`]), PII redaction ([`pii`]), API keys
//! ([`apikeys`]) and the audit log ([`audit`]). Erasure and export, which touch every collection,
//! are workflows of the composition root (`app::erasure`), not of this module.
//!
//! A customer's external id is never stored: every record is keyed by HMAC-SHA256 of it under a
//! secret that lives only in the data directory (created on first start, mode 0600) or in the
//! configuration. Without the secret the key cannot be linked back to the id.

pub mod apikeys;
pub mod audit;
pub mod limits;
pub mod pii;

use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Error, Result};

/// The server's secret and the keys derived from it.
#[derive(Clone)]
pub struct Keyring {
    secret: Vec<u8>,
}

impl Keyring {
    /// The configured secret if not empty, else the one in `data_dir/secret`, created with
    /// 32 random bytes and mode 0600 on first use.
    pub fn load_or_create(data_dir: &Path, configured: &str) -> Result<Self> {
        if !configured.is_empty() {
            if configured.len() < 16 {
                return Err(Error::Config("privacy.secret must be at least 16 characters".into()));
            }
            return Ok(Self { secret: configured.as_bytes().to_vec() });
        }
        std::fs::create_dir_all(data_dir).map_err(|e| Error::io(format!("cannot create {}", data_dir.display()), e))?;
        let path = data_dir.join("secret");
        if let Ok(text) = std::fs::read_to_string(&path) {
            let secret = hex::decode(text.trim())
                .map_err(|_| Error::Config(format!("{} is not a hex secret", path.display())))?;
            if secret.len() < 16 {
                return Err(Error::Config(format!("{} holds too short a secret", path.display())));
            }
            return Ok(Self { secret });
        }
        let secret: [u8; 32] = rand::random();
        write_private(&path, hex::encode(secret).as_bytes())?;
        Ok(Self { secret: secret.to_vec() })
    }

    fn mac(&self, domain: &str, id: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes keys of any length");
        mac.update(domain.as_bytes());
        mac.update(&[0]);
        mac.update(id.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// A fingerprint of the secret (not the secret): two keyrings with the same fingerprint
    /// derive the same keys. Stored next to the data so that a replica with another secret is
    /// refused instead of filing the same customer under two keys.
    pub fn fingerprint(&self) -> String {
        self.mac("fingerprint", "aisle")[..32].to_string()
    }

    /// The pseudonymous key of a customer id.
    pub fn customer_key(&self, customer_id: &str) -> String {
        self.mac("customer", customer_id)
    }

    /// The subject recorded in the audit log for a customer id: another keyed hash, so the log
    /// cannot be joined with stored records (nor with the erased customer's key).
    pub fn audit_subject(&self, customer_id: &str) -> String {
        self.mac("audit", customer_id)[..32].to_string()
    }

    /// The pseudonymous key of an anonymous session id.
    pub fn session_key(&self, session_id: &str) -> String {
        self.mac("session", session_id)
    }
}

/// Write a file that only its owner may read (mode 0600) atomically: a temporary file beside
/// it, synced, renamed over it, and the directory synced. A crash leaves the old file or the new
/// one, never a mix.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(&tmp).map_err(|e| Error::io(format!("cannot write {}", tmp.display()), e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(format!("cannot write {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_created_once_private_and_keys_are_stable() {
        let dir = tempfile::tempdir().unwrap();
        let a = Keyring::load_or_create(dir.path(), "").unwrap();
        let b = Keyring::load_or_create(dir.path(), "").unwrap();
        assert_eq!(a.customer_key("alice@example.com"), b.customer_key("alice@example.com"));
        assert_ne!(a.customer_key("alice"), a.customer_key("bob"));
        assert_ne!(a.customer_key("alice"), a.session_key("alice"), "domains are separated");
        assert!(!a.customer_key("alice").contains("alice"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("secret")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other = tempfile::tempdir().unwrap();
        let c = Keyring::load_or_create(other.path(), "").unwrap();
        assert_ne!(a.customer_key("alice"), c.customer_key("alice"), "another secret, another key");
        let d = Keyring::load_or_create(other.path(), "a configured secret!").unwrap();
        assert_ne!(c.customer_key("alice"), d.customer_key("alice"));
        assert!(Keyring::load_or_create(other.path(), "short").is_err());
    }
}
