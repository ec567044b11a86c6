//! `aisle keys`: create, list, revoke and hash API keys in `DATA_DIR/keys.json` (kept hashed;
//! a running server picks changes up), each change written to the audit log.
//!
//! Not for: checking keys on requests (`crate::privacy::apikeys`, `crate::api`) or the key
//! file's format (`crate::privacy::apikeys`).

use std::process::ExitCode;

use super::args::KeysCommand;
use crate::config::Config;
use crate::error::{Error, Result};

/// `aisle keys ...`: edits DATA_DIR/keys.json (no store, so it works beside a running server).
pub fn run(config: &Config, cmd: KeysCommand) -> Result<ExitCode> {
    use crate::privacy::apikeys::{Role, create_key, hash_key, keys_file, read_keys_file, revoke_key};
    let path = keys_file(&config.store.data_dir);
    let audit = |action: &str, subject: Option<String>| -> Result<()> {
        crate::privacy::audit::AuditLog::open(&config.store.data_dir)?.append(&crate::privacy::audit::AuditEntry {
            ts: chrono::Utc::now(),
            actor: "cli".into(),
            role: "admin".into(),
            action: action.into(),
            subject,
            status: 0,
        })
    };
    match cmd {
        KeysCommand::Create { role, name } => {
            let role = Role::parse(&role)
                .ok_or_else(|| Error::invalid("/role", format!("must be admin, app, read or widget, not '{role}'")))?;
            let (key, _) = create_key(&config.store.data_dir, &name, role)?;
            audit("keys.create", Some(format!("key:{name}")))?;
            eprintln!(
                "created {} key '{name}' (stored hashed in {}); it is shown only now:",
                role.as_str(),
                path.display()
            );
            println!("{key}");
        }
        KeysCommand::List => {
            for k in read_keys_file(&path)? {
                println!(
                    "{}\t{}\t{}…\t{}",
                    k.name,
                    k.role.as_str(),
                    &k.sha256[..12],
                    k.created_at.map(|t| t.to_rfc3339()).unwrap_or_default()
                );
            }
            for k in &config.auth.keys {
                println!("{}\t{}\t{}…\t(configuration)", k.name, k.role, &k.sha256[..12.min(k.sha256.len())]);
            }
        }
        KeysCommand::Revoke { name } => {
            revoke_key(&config.store.data_dir, &name)?;
            audit("keys.revoke", Some(format!("key:{name}")))?;
            eprintln!("revoked '{name}'");
        }
        KeysCommand::Hash { key } => println!("{}", hash_key(&key)),
    }
    Ok(ExitCode::SUCCESS)
}
