//! `aisle bench train`: iALS seconds per iteration on MovieLens 100K (a synthetic matrix of the
//! same size when the dataset was not fetched), and the process's peak resident memory.
//!
//! Not for: training quality (`crate::eval`) or training from stored events
//! (`crate::recommend::train`).

use std::path::Path;
use std::time::Instant;

use super::bar;
use super::report::{Row, row};
use crate::error::Result;

/// Train iALS (64 factors) on MovieLens 100K under `root`, or a synthetic matrix.
pub fn run(root: &Path, quick: bool) -> Result<Vec<Row>> {
    use crate::recommend::cf::{AlsConfig, Interactions, train_als};
    let ml = root.join("data/raw/ml-100k");
    let (data, source) = match crate::eval::data::load_ml100k(&ml) {
        Ok(d) => {
            (Interactions::new(d.n_users, d.n_items, d.interactions.iter().map(|x| (x.0, x.1, x.2))), "MovieLens 100K")
        }
        Err(_) => {
            // A synthetic matrix of the same size when the dataset was not fetched.
            let (u, i) = (943u64, 1682u64);
            let t = (0..100_000u64).map(|k| {
                let h = k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                ((h % u) as u32, ((h >> 20) % i) as u32, 1.0f32)
            });
            (Interactions::new(u as usize, i as usize, t), "synthetic 943x1682, 100k")
        }
    };
    let iterations = if quick { 5 } else { 15 };
    let pb = bar(iterations as u64, "train");
    let c = AlsConfig { factors: 64, reg: 10.0, alpha: 2.0, iterations, ..AlsConfig::default() };
    let t = Instant::now();
    let _f = train_als(&data, &c, |_, _| pb.inc(1));
    let s = t.elapsed().as_secs_f64();
    pb.finish_and_clear();
    Ok(vec![
        row("train", format!("iALS 64 factors, {source}: seconds per iteration"), s / iterations as f64, "s"),
        row("train", format!("iALS 64 factors, {source}: {iterations} iterations"), s, "s"),
        row("train", "peak RSS of the process so far", crate::measure::peak_rss_mib(), "MiB"),
    ])
}
