//! `aisle eval` and `aisle assistant-eval`: run the offline evaluations and write their reports
//! (offline ranking quality on MovieLens 100K or the shop's own events; the shopping assistant
//! on a set of shopper requests).
//!
//! Not for: the metrics, splits and models being evaluated (`crate::eval`,
//! `crate::assistant::eval`) or the performance benchmarks (`crate::bench`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::args::{AssistantEvalArgs, EvalArgs};
use super::{open_services, write_json};
use crate::config::Config;
use crate::error::{Error, Result};

/// `aisle eval`: load, embed item texts, run the grid, write the reports.
pub fn eval(config: &Config, args: EvalArgs) -> Result<ExitCode> {
    use crate::eval::{data, report};
    let how: crate::eval::Split = args.split.parse().map_err(|e: String| Error::invalid("/split", e))?;
    let ds = match args.dataset.as_str() {
        "ml-100k" => data::load_ml100k(&args.data.clone().unwrap_or_else(|| PathBuf::from("data/raw/ml-100k")))?,
        "shop" => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::io("cannot start the async runtime", e))?;
            runtime.block_on(async {
                let services = open_services(config, false).await?;
                let w = config.events.clone();
                let weight = move |k: crate::events::Kind, v: f64| crate::events::kind_weight(&w, k, v);
                data::load_shop(&services.catalog, &services.events, weight).await
            })?
        }
        other => return Err(Error::invalid("/dataset", format!("unknown dataset '{other}' (ml-100k, shop)"))),
    };
    eprintln!("{}: {} users, {} items, {} interactions", ds.name, ds.n_users, ds.n_items, ds.interactions.len());
    let vectors = if args.no_content {
        None
    } else {
        let started = std::time::Instant::now();
        let device = crate::infer::select_device(&config.models.device)?;
        let model = crate::infer::EmbeddingModel::load(&config.models.resolve(&config.models.embedding), &device)?;
        let texts: Vec<&str> = ds.item_text.iter().map(String::as_str).collect();
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(64) {
            out.extend(model.embed(chunk)?);
        }
        eprintln!("embedded {} item texts in {:.1}s", out.len(), started.elapsed().as_secs_f64());
        Some(std::sync::Arc::new(out))
    };
    let r = report::run(&ds, how, vectors, args.quick, !args.no_rerank, &|line| eprintln!("  {line}"));
    let table = report::markdown(&r);
    print!("{table}");
    std::fs::create_dir_all(&args.out).map_err(|e| Error::io(format!("cannot create {}", args.out.display()), e))?;
    let write = |name: &str, body: &[u8]| {
        let p = args.out.join(name);
        std::fs::write(&p, body).map_err(|e| Error::io(format!("cannot write {}", p.display()), e))
    };
    write("report.md", table.as_bytes())?;
    write("report.json", &serde_json::to_vec_pretty(&r).map_err(|e| Error::Internal(e.to_string()))?)?;
    write("report.svg", report::svg(&r)?.as_bytes())?;
    eprintln!("wrote {}/report.{{md,json,svg}}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

/// `aisle assistant-eval`: score the assistant with the configured chat model on the cases,
/// print the table, and write the JSON report where asked.
pub async fn assistant_eval(config: &Config, args: AssistantEvalArgs) -> Result<ExitCode> {
    let mut cases = match &args.cases {
        Some(path) => crate::assistant::eval::load(path)?,
        None if args.generate > 0 => vec![],
        None => crate::assistant::eval::load(Path::new("tests/data/assistant_eval.jsonl"))?,
    };
    let services = open_services(config, true).await?;
    if args.generate > 0 {
        cases.extend(crate::assistant::eval::generate(&services.catalog.all().await?, args.generate));
    }
    if let Some(path) = &args.write_cases {
        let lines: Vec<String> = cases
            .iter()
            .map(serde_json::to_string)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::Internal(format!("cannot write the cases: {e}")))?;
        std::fs::write(path, lines.join("\n") + "\n")
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    }
    let label = args.catalog.clone().unwrap_or_else(|| {
        config.store.data_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "catalog".into())
    });
    let report = crate::assistant::eval::run(&services.assistant, &services.catalog, &label, &cases).await?;
    services.store.flush().await?;
    print!("{}", report.table());
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    if let Some(path) = &args.examples {
        std::fs::write(path, report.examples(&cases, 10))
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
        eprintln!("wrote example answers to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
