//! `[search]`: weights and limits of the hybrid product search. Not the search (`catalog::search`).

use serde::{Deserialize, Serialize};

/// `[search]`: hybrid product search.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchConfig {
    /// RRF weight of the dense (semantic) source.
    pub dense_weight: f32,
    /// RRF weight of the BM25 keyword source.
    pub keyword_weight: f32,
    /// Candidates each source contributes before fusion.
    pub candidates: usize,
    /// Largest `limit` a search may ask for.
    pub max_limit: usize,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self { dense_weight: 1.0, keyword_weight: 1.0, candidates: 100, max_limit: 100 }
    }
}

impl SearchConfig {
    pub(super) fn validate(&self, problems: &mut Vec<String>) {
        if self.candidates == 0 || self.max_limit == 0 {
            problems.push("search.candidates and search.max_limit must be at least 1".to_string());
        }
        if self.dense_weight < 0.0 || self.keyword_weight < 0.0 {
            problems.push("search weights must not be negative".to_string());
        }
    }
}
