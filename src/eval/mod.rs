//! Offline evaluation: datasets, splits, full-ranking metrics, baselines and reports.
//!
//! Every model ranks ALL items for every test user (no sampled negatives), items the user had
//! in training excluded. Hyper-parameters are chosen on a validation split cut from the
//! training part the same way the test split is cut from the whole, then the chosen setting is
//! retrained on the whole training part and scored once on the test split. Seeds are fixed.
//! Not serving: the served recommender is `recommend`; this module only measures models offline.

pub mod data;
pub mod metrics;
pub mod models;
pub mod report;
pub mod rerank;

pub use data::{Dataset, Split, split};
pub use metrics::{Metrics, evaluate};
pub use models::{Scorer, Trained};
