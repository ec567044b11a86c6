//! `[recommend]` and `[train]`: source weights, diversity and limits of recommendations, and the
//! collaborative-filtering training settings. Not the recommender (`recommend/`).

use serde::{Deserialize, Serialize};

/// `[recommend]`: candidate sources, fusion and diversity.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecommendConfig {
    /// RRF weight of the `content` source (customer taste vs product text).
    pub weight_content: f32,
    /// RRF weight of the `session` source (recent items).
    pub weight_session: f32,
    /// RRF weight of the `co_purchase` source (bought together).
    pub weight_co_purchase: f32,
    /// RRF weight of the `trending` source (time-decayed popularity).
    pub weight_trending: f32,
    /// RRF weight of the `collab` source (collaborative filtering, once trained).
    pub weight_collab: f32,
    /// Candidates each source contributes.
    pub candidates: usize,
    /// MMR trade-off: 1 = relevance only, 0 = diversity only.
    pub mmr_lambda: f32,
    /// The first items keep the fused relevance order; MMR diversifies from there on.
    pub mmr_keep_top: usize,
    /// Recent items that make the `session` source.
    pub session_items: usize,
    /// Hours within which impression events hide a product from recommendations.
    pub exclude_seen_hours: f64,
    /// Default number of recommendations.
    pub default_limit: usize,
    /// Largest `limit`.
    pub max_limit: usize,
    /// Re-rank the fused candidates with the learned model (LambdaMART) once `aisle train` has
    /// trained one from impressions; experiments and requests may turn it off.
    pub rerank: bool,
    /// A click, cart or purchase sent without a `rec_id`, on a product that a list shown to the
    /// same customer or session held within this many minutes before, is attributed to that
    /// list (the latest such): the impression the client did not send back is taken from the
    /// server's own log. 0 turns it off.
    pub attribution_minutes: f64,
}

impl Default for RecommendConfig {
    fn default() -> Self {
        Self {
            weight_content: 1.0,
            weight_session: 1.0,
            weight_co_purchase: 1.0,
            weight_trending: 0.5,
            weight_collab: 1.0,
            candidates: 100,
            mmr_lambda: 0.7,
            mmr_keep_top: 3,
            session_items: 5,
            exclude_seen_hours: 24.0,
            default_limit: 10,
            max_limit: 100,
            rerank: true,
            attribution_minutes: 30.0,
        }
    }
}

impl RecommendConfig {
    pub(super) fn validate(&self, problems: &mut Vec<String>) {
        if !(0.0..=1.0).contains(&self.mmr_lambda) {
            problems.push("recommend.mmr_lambda must be between 0 and 1".to_string());
        }
        if self.candidates == 0 || self.max_limit == 0 || self.default_limit == 0 {
            problems.push("recommend.candidates, max_limit and default_limit must be at least 1".to_string());
        }
        if !(self.attribution_minutes >= 0.0 && self.attribution_minutes.is_finite()) {
            problems.push("recommend.attribution_minutes must be 0 (off) or a positive number of minutes".to_string());
        }
    }
}

/// `[train]`: collaborative-filtering training (iALS).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Latent factors.
    pub factors: usize,
    /// L2 regularisation.
    pub reg: f32,
    /// Confidence scale.
    pub alpha: f32,
    /// Iterations.
    pub iterations: usize,
    /// Days after which an event counts half.
    pub half_life_days: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self { factors: 64, reg: 1.0, alpha: 10.0, iterations: 15, half_life_days: 90.0 }
    }
}

impl TrainConfig {
    pub(super) fn validate(&self, problems: &mut Vec<String>) {
        if self.factors == 0 || self.iterations == 0 || self.reg <= 0.0 || self.half_life_days <= 0.0 {
            problems
                .push("train.factors and iterations must be at least 1; reg and half_life_days positive".to_string());
        }
    }
}
