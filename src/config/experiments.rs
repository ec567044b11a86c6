//! `[[experiments]]`: A/B tests of recommendation settings. Each experiment splits shoppers
//! into variants by share; a variant may change the source weights, the MMR trade-off and
//! whether merchandising rules apply. Not the assignment or the report (`recommend::experiments`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The sources a variant may weigh.
const SOURCES: [&str; 5] = ["content", "session", "co_purchase", "trending", "collab"];

/// What an experiment's verdict compares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExperimentMetric {
    /// Clicks per impression.
    Ctr,
    /// Carts per impression.
    AddToCart,
    /// Purchases per impression.
    #[default]
    Conversion,
    /// Revenue per impression.
    Revenue,
}

impl ExperimentMetric {
    /// The name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ExperimentMetric::Ctr => "CTR",
            ExperimentMetric::AddToCart => "add-to-cart",
            ExperimentMetric::Conversion => "conversion",
            ExperimentMetric::Revenue => "revenue per impression",
        }
    }
}

/// One `[[experiments]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Its name (letters, digits, `-` and `_`), in responses and in
    /// `GET /v1/stats/experiments/{name}`.
    pub name: String,
    /// What the verdict compares (default conversion).
    #[serde(default)]
    pub metric: ExperimentMetric,
    /// Off: nobody is assigned, the report stays readable.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The variants; the first is the control the others are compared with.
    pub variants: Vec<VariantConfig>,
}

/// One variant of an experiment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantConfig {
    /// Its name.
    pub name: String,
    /// Its share of shoppers, relative to the other variants' (default 1).
    #[serde(default = "one")]
    pub share: f64,
    /// Source weights for this variant (by source name), where the request sets none.
    #[serde(default)]
    pub weights: BTreeMap<String, f32>,
    /// The MMR trade-off for this variant, where the request sets none.
    #[serde(default)]
    pub mmr_lambda: Option<f32>,
    /// Whether merchandising rules apply (default true).
    #[serde(default = "yes")]
    pub rules: bool,
    /// Whether the learned re-ranker applies, where the request says nothing (default: the
    /// `[recommend] rerank` setting).
    #[serde(default)]
    pub rerank: Option<bool>,
}

fn yes() -> bool {
    true
}

fn one() -> f64 {
    1.0
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Check every experiment; problems name the experiment and key.
pub(super) fn validate(experiments: &[ExperimentConfig], problems: &mut Vec<String>) {
    let mut names = std::collections::HashSet::new();
    for (i, e) in experiments.iter().enumerate() {
        let at = format!("experiments[{i}] ({})", e.name);
        if !is_name(&e.name) {
            problems.push(format!("{at}.name must be 1 to 64 letters, digits, '-' or '_'"));
        }
        if !names.insert(e.name.as_str()) {
            problems.push(format!("{at}.name is used twice"));
        }
        if e.variants.len() < 2 {
            problems.push(format!("{at} needs at least two variants"));
        }
        let mut variants = std::collections::HashSet::new();
        for (j, v) in e.variants.iter().enumerate() {
            let at = format!("{at}.variants[{j}] ({})", v.name);
            if !is_name(&v.name) || !variants.insert(v.name.as_str()) {
                problems.push(format!("{at}.name must be a unique name of letters, digits, '-' or '_'"));
            }
            if !(v.share.is_finite() && v.share > 0.0) {
                problems.push(format!("{at}.share must be above 0"));
            }
            for (source, w) in &v.weights {
                if !SOURCES.contains(&source.as_str()) {
                    problems.push(format!("{at}.weights: unknown source '{source}' (one of {})", SOURCES.join(", ")));
                }
                if !(w.is_finite() && (0.0..=100.0).contains(w)) {
                    problems.push(format!("{at}.weights.{source} must be between 0 and 100"));
                }
            }
            if v.mmr_lambda.is_some_and(|l| !(0.0..=1.0).contains(&l)) {
                problems.push(format!("{at}.mmr_lambda must be between 0 and 1"));
            }
        }
    }
}
