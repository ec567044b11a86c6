//! What a recommendation is asked for and what comes back: the request with its checks, the
//! source names, and the response items with their sources, anchors and explanations.
//!
//! Not for computing recommendations (see [`super::Recommender`]), nor for the HTTP shape of
//! the request (see `crate::api::recommend`).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::catalog::{Product, ProductFilter};
use crate::error::{Error, FieldError, Result};
use crate::events::Kind;

/// A candidate source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceName {
    /// Customer taste vs product text.
    Content,
    /// Recent items.
    Session,
    /// Bought together with recent items.
    CoPurchase,
    /// Popular now.
    Trending,
    /// Collaborative filtering.
    Collab,
    /// Filled in because the sources could not fill the page.
    Fallback,
}

impl SourceName {
    /// The name in APIs and statistics.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceName::Content => "content",
            SourceName::Session => "session",
            SourceName::CoPurchase => "co_purchase",
            SourceName::Trending => "trending",
            SourceName::Collab => "collab",
            SourceName::Fallback => "fallback",
        }
    }
}

/// What to recommend for.
#[derive(Debug, Clone, Default)]
pub struct RecommendRequest {
    /// The customer, if known.
    pub customer_id: Option<String>,
    /// Items of the current (anonymous or not) session, most recent first.
    pub session_items: Vec<String>,
    /// The session's id (as in events): places an anonymous shopper in experiments.
    pub session_id: Option<String>,
    /// How many.
    pub limit: Option<usize>,
    /// Business filters (in stock defaults to true).
    pub filter: ProductFilter,
    /// Leave out what the customer bought (default true).
    pub exclude_purchased: Option<bool>,
    /// Leave out what the customer was shown recently (impression events; default true).
    pub exclude_seen: Option<bool>,
    /// MMR trade-off for this request.
    pub mmr_lambda: Option<f32>,
    /// Source weights for this request (missing sources keep the configured weight).
    pub weights: HashMap<SourceName, f32>,
    /// Whether the learned re-ranker applies (default: the experiment variant's setting, else
    /// `[recommend] rerank`).
    pub rerank: Option<bool>,
}

impl RecommendRequest {
    /// Check every field; the page size (`default_limit` when the request gives none), or
    /// every problem found.
    pub(super) fn validate(&self, default_limit: usize, max_limit: usize) -> Result<usize> {
        let limit = self.limit.unwrap_or(default_limit);
        let mut errors = Vec::new();
        if limit == 0 || limit > max_limit {
            errors.push(FieldError::new("/limit", format!("must be between 1 and {max_limit}")));
        }
        if self.session_items.len() > 50 {
            errors.push(FieldError::new("/session/items", "at most 50 items"));
        }
        if let Some(l) = self.mmr_lambda
            && !(0.0..=1.0).contains(&l)
        {
            errors.push(FieldError::new("/mmr_lambda", "must be between 0 and 1"));
        }
        for (s, w) in &self.weights {
            if !w.is_finite() || *w < 0.0 || *w > 100.0 {
                errors.push(FieldError::new(format!("/weights/{}", s.as_str()), "must be between 0 and 100"));
            }
        }
        errors.extend(self.filter.check("/filters"));
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }
        Ok(limit)
    }
}

/// A source that proposed an item.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SourceRank {
    /// Which source.
    pub source: SourceName,
    /// Its rank there (1 = first).
    pub rank: usize,
}

/// The history item that best explains a recommendation.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Anchor {
    /// Product id.
    pub product_id: String,
    /// Its title.
    pub title: String,
    /// What the customer did with it.
    pub kind: Kind,
}

/// One recommended product.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RecItem {
    /// The product.
    pub product: Product,
    /// Fused score.
    pub score: f32,
    /// Sources that proposed it, strongest first.
    pub sources: Vec<SourceRank>,
    /// History item it relates to.
    pub anchor: Option<Anchor>,
    /// Why, in words.
    pub explanation: String,
    /// The merchandising rules that pinned, boosted or buried it.
    pub rules: Vec<super::rules::RuleEffect>,
    /// When the learned re-ranker ordered the list: the features that moved this item most,
    /// strongest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ranked_by: Vec<FeatureEffect>,
}

/// A feature's part in an item's re-ranking score.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FeatureEffect {
    /// The feature's name (see the re-ranker's feature list).
    pub feature: String,
    /// In words.
    pub meaning: String,
    /// Its contribution to the score (positive: moved the item up).
    pub contribution: f64,
}

/// A recommendation response.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Recommendations {
    /// Id to send back with events (`rec_id`) for attribution.
    pub rec_id: Uuid,
    /// Whether the customer's profile was used.
    pub personalized: bool,
    /// Sources that took part.
    pub sources: Vec<SourceName>,
    /// The items.
    pub items: Vec<RecItem>,
    /// The experiment variants this list was made under (recorded with its `rec_id`).
    pub experiments: Vec<super::experiments::Assignment>,
    /// The version of the learned re-ranker that ordered the list, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ranker_version: Option<u64>,
}
