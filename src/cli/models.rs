//! `aisle models`: what models are configured and present, whether their files are intact, and
//! downloading new ones from the Hugging Face Hub where a network allows (`serve` never does).
//!
//! `models/fetch.sh` writes `SHA256SUMS` into the models directory; `verify` checks every file
//! listed there, then loads the configured embedding model and embeds a sentence.
//!
//! Not for: loading models to serve (`crate::infer`, `crate::app`) or where the configured models
//! are (`crate::config`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use sha2::{Digest, Sha256};

use super::args::ModelsCommand;
use crate::config::Config;
use crate::error::{Error, Result};

/// Files of a sentence-transformers model folder that `pull` fetches by default.
const SENTENCE_TRANSFORMERS_FILES: &[&str] = &[
    "config.json",
    "tokenizer.json",
    "model.safetensors",
    "modules.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
    "special_tokens_map.json",
    "tokenizer_config.json",
];

/// Run a `models` subcommand.
pub async fn run(config: &Config, command: ModelsCommand) -> Result<ExitCode> {
    match command {
        ModelsCommand::List => {
            list(config)?;
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Verify => {
            let c = config.clone();
            tokio::task::spawn_blocking(move || verify(&c)).await.map_err(|e| Error::Internal(e.to_string()))?
        }
        ModelsCommand::Pull { repo, files, revision, name } => {
            let dir = config.models.dir.clone();
            tokio::task::spawn_blocking(move || pull(&dir, &repo, &files, &revision, name.as_deref()))
                .await
                .map_err(|e| Error::Internal(e.to_string()))??;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Print the configured embedding model and each folder in the models directory with its size
/// and kind.
fn list(config: &Config) -> Result<()> {
    let embed = config.models.resolve(&config.models.embedding);
    println!("models directory: {}", config.models.dir.display());
    println!(
        "embedding model:  {} ({})",
        embed.display(),
        if embed.join("config.json").exists() { "present" } else { "MISSING: run models/fetch.sh" }
    );
    let Ok(entries) = std::fs::read_dir(&config.models.dir) else { return Ok(()) };
    let mut names: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    names.sort();
    for dir in names {
        let size: u64 = walk(&dir).iter().filter_map(|p| p.metadata().ok()).map(|m| m.len()).sum();
        let kind = if dir.join("modules.json").exists() || dir.join("config.json").exists() {
            "embedding (sentence-transformers)"
        } else if walk(&dir).iter().any(|p| p.extension().is_some_and(|e| e == "gguf")) {
            "chat (GGUF)"
        } else {
            "unknown"
        };
        println!(
            "  {:<40} {:>8.1} MiB  {kind}",
            dir.file_name().unwrap_or_default().to_string_lossy(),
            size as f64 / 1048576.0
        );
    }
    Ok(())
}

/// Every file under `dir`, recursively.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
        }
    }
    out
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    Ok(hex::encode(hasher.finalize()))
}

/// Check the files listed in `SHA256SUMS`, then load the embedding model and embed a sentence;
/// exit code 1 when anything failed.
fn verify(config: &Config) -> Result<ExitCode> {
    let mut ok = true;
    let sums = config.models.dir.join("SHA256SUMS");
    match std::fs::read_to_string(&sums) {
        Ok(text) => {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let Some((want, file)) = line.split_once("  ") else { continue };
                let path = config.models.dir.join(file.trim());
                match sha256_file(&path) {
                    Ok(got) if got == want.trim() => println!("ok       {file}"),
                    Ok(_) => {
                        ok = false;
                        println!("CORRUPT  {file} (checksum differs; run models/fetch.sh again)");
                    }
                    Err(e) => {
                        ok = false;
                        println!("MISSING  {file} ({e})");
                    }
                }
            }
        }
        Err(_) => println!("no {} (models not laid out by models/fetch.sh): skipping checksums", sums.display()),
    }
    let dir = config.models.resolve(&config.models.embedding);
    let device = crate::infer::select_device(&config.models.device)?;
    match crate::infer::EmbeddingModel::load(&dir, &device).and_then(|m| {
        let v = m.embed(&["a quick check"])?;
        Ok((m.name().to_string(), v[0].len()))
    }) {
        Ok((name, dim)) => println!("ok       embedding model {name} loads and embeds ({dim} dimensions)"),
        Err(e) => {
            ok = false;
            println!("FAILED   embedding model {}: {e}", dir.display());
        }
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Download `files` (default: the sentence-transformers layout) of `repo` at `revision` into
/// `models_dir/name`.
fn pull(models_dir: &Path, repo: &str, files: &[String], revision: &str, name: Option<&str>) -> Result<()> {
    let api = hf_hub::api::sync::ApiBuilder::new()
        .with_progress(true)
        .build()
        .map_err(|e| Error::Config(format!("cannot set up the Hugging Face Hub client: {e}")))?;
    let r = api.repo(hf_hub::Repo::with_revision(repo.to_string(), hf_hub::RepoType::Model, revision.to_string()));
    let name = name.map(str::to_string).unwrap_or_else(|| repo.rsplit('/').next().unwrap_or(repo).to_string());
    let target = models_dir.join(&name);
    let wanted: Vec<String> = if files.is_empty() {
        SENTENCE_TRANSFORMERS_FILES.iter().map(|s| s.to_string()).collect()
    } else {
        files.to_vec()
    };
    for file in &wanted {
        let cached = match r.get(file) {
            Ok(p) => p,
            Err(e)
                if files.is_empty()
                    && !matches!(file.as_str(), "config.json" | "tokenizer.json" | "model.safetensors") =>
            {
                eprintln!("skipping optional {file}: {e}");
                continue;
            }
            Err(e) => return Err(Error::Unavailable(format!("cannot download {file} from {repo}@{revision}: {e}"))),
        };
        let dest = target.join(file);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(format!("cannot create {}", parent.display()), e))?;
        }
        std::fs::copy(&cached, &dest).map_err(|e| Error::io(format!("cannot write {}", dest.display()), e))?;
        println!("{} -> {}", file, dest.display());
    }
    println!("pulled {repo}@{revision} into {}", target.display());
    Ok(())
}
