//! `[events]`: how events weigh in profiles, popularity and co-occurrence, and what is accepted.
//! Not the ingestion (`events/`).

use serde::{Deserialize, Serialize};

/// `[events]`: how events shape profiles, popularity and co-occurrence.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// Weight of a view in taste and popularity.
    pub weight_view: f64,
    /// Weight of a click.
    pub weight_click: f64,
    /// Weight of an add-to-cart.
    pub weight_cart: f64,
    /// Weight of a purchase.
    pub weight_purchase: f64,
    /// Weight of a return (negative: pushes taste away).
    pub weight_return: f64,
    /// Weight per rating point away from 3 (a 5 adds 2x this, a 1 subtracts 2x this).
    pub weight_rating: f64,
    /// Days after which an event counts half in a customer's taste.
    pub taste_half_life_days: f64,
    /// Days after which an event counts half in trending.
    pub trending_half_life_days: f64,
    /// Days within which two cart/purchase events of one customer count as bought together.
    pub co_purchase_window_days: f64,
    /// Most events accepted in one request.
    pub max_batch: usize,
    /// Events older than this many days are refused on ingestion (and purged by retention).
    pub max_age_days: f64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            weight_view: 1.0,
            weight_click: 2.0,
            weight_cart: 4.0,
            weight_purchase: 8.0,
            weight_return: -6.0,
            weight_rating: 1.5,
            taste_half_life_days: 30.0,
            trending_half_life_days: 7.0,
            co_purchase_window_days: 30.0,
            max_batch: 1000,
            max_age_days: 365.0,
        }
    }
}

impl EventsConfig {
    pub(super) fn validate(&self, problems: &mut Vec<String>) {
        if self.taste_half_life_days <= 0.0 || self.trending_half_life_days <= 0.0 || self.max_age_days <= 0.0 {
            problems.push("events half lives and max_age_days must be positive".to_string());
        }
    }
}
