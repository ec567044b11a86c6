//! A synthetic shop for benchmarks: products in categories, customers with tastes and
//! histories, and baskets of co-purchases, written through the real write paths (catalog,
//! profiles, event ingestion) into the real store.
//!
//! Product vectors are synthetic (a category centre plus noise, unit length) instead of
//! embeddings of generated text: embedding 10k texts would take minutes on 2 cores and measures
//! the embedder, not recommendations. Everything else (BM25 terms, payloads, indexes,
//! co-occurrence, popularity, profiles) is what a real shop would have.
//!
//! Not for: measuring anything (the sub-benchmarks do) or demo data for people (`data/demo/`).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::app::Services;
use crate::error::Result;
use crate::events::EventInput;
use crate::events::Kind;
use crate::events::profile::HistoryItem;

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShopSpec {
    /// Products.
    pub products: usize,
    /// Customers (with consent, taste and history).
    pub customers: usize,
    /// Anonymous baskets of 2 to 4 purchases (for co-occurrence and popularity).
    pub baskets: usize,
    /// Categories.
    pub categories: usize,
    /// Random seed.
    pub seed: u64,
}

/// Where a generated shop of `spec` is cached: `$AISLE_CACHE/bench/...` (default
/// `~/.cache/aisle`), shared by `aisle bench` and `cargo bench`.
pub fn cache_dir(spec: &ShopSpec) -> std::path::PathBuf {
    cache_root().join(format!("bench/shop-{}-{}-{}-v2", spec.products, spec.customers, spec.baskets))
}

/// `$AISLE_CACHE` (default `~/.cache/aisle`).
pub fn cache_root() -> std::path::PathBuf {
    std::env::var("AISLE_CACHE").map(std::path::PathBuf::from).unwrap_or_else(|_| {
        std::path::PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| ".".into())).join(".cache/aisle")
    })
}

/// Generate the shop into `dir` unless a marker says an earlier run already did.
pub async fn generate_once(
    services: &Services,
    dir: &std::path::Path,
    spec: ShopSpec,
    progress: impl FnMut(String),
) -> Result<()> {
    let marker = dir.join("bench-shop.json");
    if marker.exists() {
        return Ok(());
    }
    generate(services, spec, progress).await?;
    let bytes = serde_json::to_vec(&spec).map_err(|e| crate::error::Error::Internal(e.to_string()))?;
    std::fs::write(&marker, bytes).map_err(|e| crate::error::Error::io("bench marker", e))
}

/// The id of customer `i`.
pub fn customer_id(i: usize) -> String {
    format!("bench-customer-{i}")
}

fn gaussian(rng: &mut StdRng) -> f32 {
    let (u, v): (f32, f32) = (rng.random_range(1e-7..1.0), rng.random());
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f32::consts::PI * v).cos()
}

fn unit(v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.into_iter().map(|x| x / n).collect()
}

const WORDS: &[&str] = &[
    "wireless",
    "compact",
    "premium",
    "outdoor",
    "smart",
    "classic",
    "portable",
    "ergonomic",
    "waterproof",
    "organic",
    "silent",
    "digital",
    "vintage",
    "ultra",
    "solar",
    "steel",
    "cotton",
    "leather",
    "carbon",
    "bamboo",
];
const NOUNS: &[&str] = &[
    "headphones",
    "kettle",
    "backpack",
    "lamp",
    "jacket",
    "speaker",
    "chair",
    "watch",
    "blender",
    "tent",
    "camera",
    "keyboard",
    "bottle",
    "sneakers",
    "drill",
    "monitor",
    "scarf",
    "router",
    "grill",
    "mattress",
];

/// Write the shop. `progress` receives a line per stage.
pub async fn generate(services: &Services, spec: ShopSpec, mut progress: impl FnMut(String)) -> Result<()> {
    let dim = services.embedder.info().dim;
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let centres: Vec<Vec<f32>> =
        (0..spec.categories).map(|_| unit((0..dim).map(|_| gaussian(&mut rng)).collect())).collect();
    let noise = 0.9 / (dim as f32).sqrt();
    let mut by_category: Vec<Vec<String>> = vec![Vec::new(); spec.categories];
    let started = std::time::Instant::now();
    for start in (0..spec.products).step_by(1000) {
        let mut batch = Vec::new();
        for i in start..(start + 1000).min(spec.products) {
            let c = i % spec.categories;
            let id = format!("bench-product-{i}");
            let title = format!(
                "{} {} {} {i}",
                WORDS[rng.random_range(0..WORDS.len())],
                WORDS[rng.random_range(0..WORDS.len())],
                NOUNS[c % NOUNS.len()]
            );
            let in_stock = rng.random::<f32>() > 0.1;
            let input: crate::catalog::ProductInput = serde_json::from_value(json!({
                "id": id, "title": title, "brand": format!("Brand {}", rng.random_range(0..200)),
                "categories": [format!("Category {c}")], "price": (5.0 + rng.random::<f64>().powi(2) * 2000.0 * 100.0).round() / 100.0,
                "in_stock": in_stock, "stock_qty": if in_stock { rng.random_range(1..100) } else { 0 },
                "description": format!("A {} for everyday use.", NOUNS[c % NOUNS.len()]),
            }))
            .map_err(|e| crate::Error::Internal(e.to_string()))?;
            let product = services.catalog.validate(input, None).map_err(crate::Error::Invalid)?;
            let vector = unit(centres[c].iter().map(|x| x + noise * gaussian(&mut rng)).collect());
            by_category[c].push(id);
            batch.push((product, vector));
        }
        services.catalog.upsert_embedded(batch).await?;
    }
    progress(format!("{} products in {:.1}s", spec.products, started.elapsed().as_secs_f64()));

    let started = std::time::Instant::now();
    let now = chrono::Utc::now().timestamp();
    for start in (0..spec.customers).step_by(1000) {
        let mut batch = Vec::new();
        for i in start..(start + 1000).min(spec.customers) {
            let mut p = services.profiles.new_profile(&customer_id(i));
            p.exists = true;
            p.consent.personalization = true;
            p.consent.analytics = true;
            let fav = rng.random_range(0..spec.categories);
            let items = &by_category[fav];
            p.history = (0..5)
                .filter(|_| !items.is_empty())
                .map(|k| HistoryItem {
                    product_id: items[rng.random_range(0..items.len())].clone(),
                    kind: if k == 0 { Kind::Cart } else { Kind::View },
                    ts: now - k * 3600,
                })
                .collect();
            p.purchased = p.history.iter().take(1).map(|h| h.product_id.clone()).collect();
            p.taste = Some(centres[fav].iter().map(|x| 0.7 * (x + noise * gaussian(&mut rng))).collect());
            p.taste_mass = 5.0;
            p.taste_ts = now;
            batch.push(p);
        }
        services.profiles.save_many(&batch).await?;
    }
    progress(format!("{} customers in {:.1}s", spec.customers, started.elapsed().as_secs_f64()));

    let started = std::time::Instant::now();
    let mut events = Vec::new();
    for b in 0..spec.baskets {
        let items = &by_category[rng.random_range(0..spec.categories)];
        for _ in 0..rng.random_range(2..=4) {
            if items.is_empty() {
                break;
            }
            events.push(EventInput {
                id: None,
                customer_id: None,
                session_id: Some(format!("bench-basket-{b}")),
                product_id: items[rng.random_range(0..items.len())].clone(),
                kind: Kind::Purchase,
                value: None,
                timestamp: None,
                rec_id: None,
            });
        }
    }
    let n = events.len();
    while !events.is_empty() {
        let rest = events.split_off(events.len().min(1000));
        services.events.ingest(std::mem::replace(&mut events, rest)).await?;
    }
    progress(format!("{n} basket events in {:.1}s", started.elapsed().as_secs_f64()));
    let started = std::time::Instant::now();
    services.store.optimize().await?;
    progress(format!("indexes built in {:.1}s", started.elapsed().as_secs_f64()));
    Ok(())
}
