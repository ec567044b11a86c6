//! `aisle store migrate`: copy the vector store between the data directory's embedded engine
//! and a Qdrant server, with progress, resuming an interrupted copy.
//!
//! Not for: how a copy is done (`crate::store::migrate`).

use std::process::ExitCode;

use super::args::StoreCommand;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::store::Store;
use crate::store::migrate::copy_all;

/// `aisle store ...`.
pub async fn run(config: &Config, cmd: StoreCommand) -> Result<ExitCode> {
    let StoreCommand::Migrate(args) = cmd;
    let (url, onto_server) = match (&args.to, &args.from) {
        (Some(to), None) => (to.clone(), true),
        (None, Some(from)) => (from.clone(), false),
        _ => return Err(Error::invalid("/to", "give exactly one of --to URL and --from URL")),
    };
    let mut remote_config = config.store.clone();
    remote_config.qdrant_url = url.clone();
    let mut problems = Vec::new();
    remote_config.validate_url(&mut problems);
    if !problems.is_empty() {
        return Err(Error::Config(problems.join("; ")));
    }
    let data_dir = config.store.data_dir.clone();
    std::fs::create_dir_all(&data_dir).map_err(|e| Error::io(format!("cannot create {}", data_dir.display()), e))?;
    let embedded = {
        let prefix = match (&args.target_prefix, onto_server) {
            (Some(p), false) => p.clone(),
            _ => config.store.collection_prefix.clone(),
        };
        let (dir, after) = (data_dir.join("qdrant"), config.store.index_after_points);
        tokio::task::spawn_blocking(move || Store::open_embedded(&dir, &prefix, after))
            .await
            .map_err(|e| Error::Internal(e.to_string()))??
    };
    let target_prefix = args.target_prefix.clone().unwrap_or_else(|| config.store.collection_prefix.clone());
    if onto_server {
        remote_config.collection_prefix = target_prefix.clone();
    }
    let remote = Store::open_remote(&remote_config)?;
    remote.health().await?;
    let (from, to) = if onto_server { (&embedded, &remote) } else { (&remote, &embedded) };
    let slug: String = url.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    let direction = if onto_server { "to" } else { "from" };
    let checkpoint = data_dir.join(format!("migrate-{direction}-{slug}.json"));
    if args.restart {
        let _ = std::fs::remove_file(&checkpoint);
    }
    eprintln!("copying {} -> {}", from.describe(), to.describe());
    let mut progress = |name: &str, copied: usize, total: usize| eprintln!("{name}: {copied}/{total} points");
    let report = copy_all(from, to, &checkpoint, args.page, &mut progress).await?;
    if !onto_server {
        // The embedded engine builds its graphs when asked; a restored store is complete.
        to.optimize().await?;
    }
    to.flush().await?;
    let mut short = Vec::new();
    for c in &report {
        let how = if c.already_done {
            "complete already".to_string()
        } else if c.resumed {
            format!("{} copied now, resuming an earlier run", c.copied_now)
        } else {
            format!("{} copied", c.copied_now)
        };
        println!("{}: {} points in the source, {} in the target ({how})", c.name, c.source_points, c.target_points);
        if c.target_points < c.source_points {
            short.push(c.name.clone());
        }
    }
    println!(
        "the data directory's own files (secret, keys.json, collab.json) are not in the store: \
         give every aisle process that uses {} the same ones (or set privacy.secret and [auth] keys)",
        to.describe()
    );
    if !short.is_empty() {
        return Err(Error::Store(format!(
            "the target has fewer points than the source in {}; run the command again with --restart",
            short.join(", ")
        )));
    }
    Ok(ExitCode::SUCCESS)
}
