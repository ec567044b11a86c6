//! The re-ranker's features: one fixed, named list, computed the same way offline (`aisle
//! eval`) and when serving, from facts about the shopper (their history) and the item, and
//! from what each candidate source said about the item.
//!
//! A missing value is NaN (LightGBM's missing value): a source that did not propose the item,
//! a price the catalog does not have. `position` is the slot the item was shown in when a
//! training example was logged, and the constant [`SERVING_POSITION`] when scoring, so the
//! model cannot learn the position's bias as relevance.

use std::collections::HashMap;

/// The features, in the order of a row. A saved model records these names; a model whose
/// names differ is refused (see `model`).
pub const FEATURES: &[&str] = &[
    "position",
    "fused_rank",
    "fused_score",
    "collab_rank",
    "collab_score",
    "co_purchase_rank",
    "co_purchase_score",
    "content_rank",
    "content_score",
    "session_rank",
    "session_score",
    "trending_rank",
    "trending_score",
    "collab_similarity",
    "taste_similarity",
    "popularity",
    "trend",
    "item_age_days",
    "price_ratio",
    "category_affinity",
    "brand_affinity",
    "history_length",
    "popularity_ratio",
];

/// Features per row.
pub const N_FEATURES: usize = 23;

/// The `position` used when scoring: every candidate looks as if shown first.
pub const SERVING_POSITION: f32 = 0.0;

/// The candidate sources with features, in row order.
pub const SOURCES: [&str; 5] = ["collab", "co_purchase", "content", "session", "trending"];

/// What is known about the shopper, from their history.
#[derive(Debug, Clone, Default)]
pub struct Shopper {
    /// Items in the history.
    pub history: usize,
    /// Share of history items in each category (lower-cased).
    pub categories: HashMap<String, f32>,
    /// Share of history items of each brand (lower-cased).
    pub brands: HashMap<String, f32>,
    /// Median price of the history items that have one.
    pub median_price: Option<f32>,
    /// Mean of ln(1 + popularity) over the history.
    pub mean_log_popularity: Option<f32>,
}

/// One history item, as [`Shopper::from_history`] reads it.
pub struct Seen<'a> {
    /// Its categories.
    pub categories: &'a [String],
    /// Its brand.
    pub brand: Option<&'a str>,
    /// Its price.
    pub price: Option<f64>,
    /// Its interaction count, when known.
    pub popularity: Option<f32>,
}

impl Shopper {
    /// Summarise a history.
    pub fn from_history<'a>(items: impl IntoIterator<Item = Seen<'a>>) -> Self {
        let mut s = Shopper::default();
        let mut prices = vec![];
        let (mut log_pop, mut with_pop) = (0f32, 0usize);
        for it in items {
            s.history += 1;
            for c in it.categories {
                *s.categories.entry(c.to_lowercase()).or_default() += 1.0;
            }
            if let Some(b) = it.brand {
                *s.brands.entry(b.to_lowercase()).or_default() += 1.0;
            }
            if let Some(p) = it.price.filter(|p| p.is_finite() && *p > 0.0) {
                prices.push(p as f32);
            }
            if let Some(p) = it.popularity {
                log_pop += p.max(0.0).ln_1p();
                with_pop += 1;
            }
        }
        if s.history > 0 {
            let n = s.history as f32;
            s.categories.values_mut().for_each(|v| *v /= n);
            s.brands.values_mut().for_each(|v| *v /= n);
        }
        if with_pop > 0 {
            s.mean_log_popularity = Some(log_pop / with_pop as f32);
        }
        if !prices.is_empty() {
            prices.sort_by(f32::total_cmp);
            s.median_price = Some(prices[prices.len() / 2]);
        }
        s
    }
}

/// What is known about a candidate item.
#[derive(Debug, Clone, Default)]
pub struct Item<'a> {
    /// Interactions with it (training events), when known.
    pub popularity: Option<f32>,
    /// Recent interactions (in a window, or decayed), when known.
    pub recent: Option<f32>,
    /// Days since it first appeared (first event, or its creation).
    pub age_days: Option<f32>,
    /// Its price.
    pub price: Option<f64>,
    /// Its categories.
    pub categories: &'a [String],
    /// Its brand.
    pub brand: Option<&'a str>,
}

/// What the sources said about one candidate.
#[derive(Debug, Clone, Copy, Default)]
pub struct Signals {
    /// Slot shown (training) or [`SERVING_POSITION`].
    pub position: f32,
    /// Rank (0-based) and score in the fused order.
    pub fused: (f32, f32),
    /// Per source in [`SOURCES`] order: rank (0-based) and score when it proposed the item.
    pub sources: [Option<(f32, f32)>; 5],
    /// The shopper's collaborative factors against the item's.
    pub collab_similarity: Option<f32>,
    /// The shopper's taste vector against the item's text vector.
    pub taste_similarity: Option<f32>,
}

/// One row of features.
pub fn row(signals: &Signals, shopper: &Shopper, item: &Item) -> [f32; N_FEATURES] {
    let nan = f32::NAN;
    let mut r = [nan; N_FEATURES];
    r[0] = signals.position;
    r[1] = signals.fused.0;
    r[2] = signals.fused.1;
    for (i, s) in signals.sources.iter().enumerate() {
        if let Some((rank, score)) = s {
            r[3 + 2 * i] = *rank;
            r[4 + 2 * i] = *score;
        }
    }
    r[13] = signals.collab_similarity.unwrap_or(nan);
    r[14] = signals.taste_similarity.unwrap_or(nan);
    let log_pop = item.popularity.map(|p| p.max(0.0).ln_1p());
    r[15] = log_pop.unwrap_or(nan);
    r[16] = item.recent.map_or(nan, |x| x.max(0.0).ln_1p());
    r[17] = item.age_days.unwrap_or(nan);
    r[18] = match (item.price, shopper.median_price) {
        (Some(p), Some(m)) if p.is_finite() && m > 0.0 => p as f32 / m,
        _ => nan,
    };
    if shopper.history > 0 {
        r[19] = item
            .categories
            .iter()
            .map(|c| shopper.categories.get(&c.to_lowercase()).copied().unwrap_or(0.0))
            .fold(0.0, f32::max);
        r[20] = match item.brand {
            Some(b) if !shopper.brands.is_empty() => shopper.brands.get(&b.to_lowercase()).copied().unwrap_or(0.0),
            _ => nan,
        };
    }
    r[21] = (shopper.history as f32).ln_1p();
    r[22] = match (log_pop, shopper.mean_log_popularity) {
        (Some(l), Some(m)) => l - m,
        _ => nan,
    };
    r
}

/// A feature's name in words, for explanations.
pub fn describe(name: &str) -> &'static str {
    match name {
        "position" => "position",
        "fused_rank" | "fused_score" => "the sources' combined rank",
        "collab_rank" | "collab_score" | "collab_similarity" => "shoppers with similar taste",
        "co_purchase_rank" | "co_purchase_score" => "bought together with your items",
        "content_rank" | "content_score" | "taste_similarity" => "your taste",
        "session_rank" | "session_score" => "your recent items",
        "trending_rank" | "trending_score" | "trend" => "trending now",
        "popularity" | "popularity_ratio" => "popularity",
        "item_age_days" => "how new it is",
        "price_ratio" => "its price against what you usually pay",
        "category_affinity" => "categories you like",
        "brand_affinity" => "brands you like",
        "history_length" => "how much you have shopped",
        _ => "other signals",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_and_the_row_agree() {
        assert_eq!(FEATURES.len(), N_FEATURES);
        let mut seen = std::collections::HashSet::new();
        assert!(FEATURES.iter().all(|f| seen.insert(*f)), "feature names are unique");
        for (i, s) in SOURCES.iter().enumerate() {
            assert_eq!(FEATURES[3 + 2 * i], format!("{s}_rank"));
            assert_eq!(FEATURES[4 + 2 * i], format!("{s}_score"));
        }
    }

    #[test]
    fn affinities_and_ratios_come_from_the_history() {
        let shoes = vec!["Shoes".to_string()];
        let hats = vec!["hats".to_string()];
        let hist = [
            Seen { categories: &shoes, brand: Some("Acme"), price: Some(40.0), popularity: Some(9.0) },
            Seen { categories: &shoes, brand: Some("Zed"), price: Some(60.0), popularity: Some(9.0) },
            Seen { categories: &hats, brand: Some("acme"), price: None, popularity: Some(9.0) },
            Seen { categories: &hats, brand: None, price: Some(50.0), popularity: Some(9.0) },
        ];
        let s = Shopper::from_history(hist);
        let item = Item {
            popularity: Some(9.0),
            price: Some(100.0),
            categories: &shoes,
            brand: Some("ACME"),
            ..Item::default()
        };
        let r = row(&Signals::default(), &s, &item);
        assert_eq!(r[19], 0.5);
        assert_eq!(r[20], 0.5);
        assert_eq!(r[18], 2.0);
        assert_eq!(r[22], 0.0);
        assert!(r[3].is_nan() && r[17].is_nan());
        // No history: affinities and ratios are missing, not zero.
        let r = row(&Signals::default(), &Shopper::default(), &item);
        assert!(r[18].is_nan() && r[19].is_nan() && r[20].is_nan() && r[22].is_nan());
        assert_eq!(r[21], 0.0);
    }
}
