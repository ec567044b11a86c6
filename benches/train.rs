//! Training time and peak memory on MovieLens 100K (data/fetch.sh puts it under
//! data/raw/ml-100k): iALS (64 factors, 15 iterations), EASE (1,682 items) and item-kNN, at
//! the machine's thread count.
//!
//!   cargo bench --bench train
//!
//! Under `cargo test` it runs 2 iALS iterations as a smoke test.

use std::time::Instant;

use aisle::eval::data::load_ml100k;
use aisle::recommend::cf::{AlsConfig, Interactions, train_als, train_ease, train_item_knn};

use aisle::measure::peak_rss_mib;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/raw/ml-100k");
    let ds = load_ml100k(&dir).expect("run data/fetch.sh first");
    let data = Interactions::new(ds.n_users, ds.n_items, ds.interactions.iter().map(|x| (x.0, x.1, x.2)));
    println!(
        "train bench: ml-100k ({} users, {} items, {} interactions), {} threads",
        ds.n_users,
        ds.n_items,
        data.nnz(),
        rayon::current_num_threads()
    );
    println!("| model | seconds | peak RSS after (MiB) |");
    println!("|---|---|---|");
    let iterations = if full { 15 } else { 2 };
    let c = AlsConfig { factors: 64, reg: 10.0, alpha: 2.0, iterations, ..AlsConfig::default() };
    let t = Instant::now();
    let mut losses = vec![];
    let f = train_als(&data, &c, |_, l| losses.push(l));
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(f.items.len(), ds.n_items * 64);
    println!(
        "| iALS 64 factors x {iterations} iterations ({:.3} s/iteration) | {secs:.3} | {:.0} |",
        secs / iterations as f64,
        peak_rss_mib()
    );
    if full {
        let t = Instant::now();
        let b = train_ease(&data, 250.0);
        println!("| EASE reg 250 | {:.3} | {:.0} |", t.elapsed().as_secs_f64(), peak_rss_mib());
        drop(b);
        let t = Instant::now();
        let nn = train_item_knn(&data, 200, 0.0);
        println!("| item-kNN k=200 | {:.3} | {:.0} |", t.elapsed().as_secs_f64(), peak_rss_mib());
        drop(nn);
    }
}
