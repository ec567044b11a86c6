//! Understanding a shopper's turn by rules: intent (shopping, small talk, out of scope, unsafe,
//! vague), hard constraints (price bounds, categories, brands, brands to avoid, attribute
//! values) and the search query, all read against the live catalog's own vocabulary
//! ([`Vocabulary`]).
//!
//! The rules decide what they read reliably: a filter that is wrong shows wrong products, and
//! "under $150" or "not Sony" must never depend on a model's mood. What they cannot place is
//! read by the chat model under a schema made of the catalog (the assistant's `read`), which
//! uses these rules as its fast path and its check.
//!
//! The same rules run over every user turn in order, so a follow-up ("cheaper ones", "what about
//! Sony?") narrows the previous turn's state, whether the conversation comes from a stored
//! session or from the client's full `messages`.
//!
//! This file holds what understanding produces ([`Intent`], [`Constraints`],
//! [`ConversationState`], [`TurnReading`]). The entry points are methods of [`Vocabulary`]:
//! [`Vocabulary::intent`] (in `intent`), [`Vocabulary::read`] (in `turn`) and
//! [`Vocabulary::merge`] (in `state`). The parts they use: `word_lists` (fixed word lists),
//! `text` (text helpers), `price` (price phrases) and `vocabulary` (the catalog's words).
//!
//! Not the retrieval or the answer (see the assistant's `plan` and `answer`), and not the check
//! of the model's text (see [`super::ground`]).

mod intent;
mod price;
mod state;
#[cfg(test)]
mod tests;
mod text;
mod turn;
mod vocabulary;
mod word_lists;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use self::price::median;
pub use self::text::{singular, word_positions, words};
pub use self::vocabulary::Vocabulary;
pub use self::word_lists::is_stop;
use crate::catalog::ProductFilter;

/// What a turn asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// Looking for products.
    Shopping,
    /// A greeting or thanks.
    SmallTalk,
    /// Not about shopping here (poems, news, homework, ...): refused without retrieval.
    OutOfScope,
    /// Harmful: refused without retrieval.
    Unsafe,
    /// Asks for something without saying what ("a gift"): answered with a question back and
    /// a few of the catalog's categories, without retrieval.
    Vague,
    /// Written in a language the rules do not read (they read English): answered with a request
    /// to ask in English, without retrieval.
    OtherLanguage,
}

/// The hard constraints of a conversation so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Constraints {
    /// Categories (any of).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// Brands (any of).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub brands: Vec<String>,
    /// Brands the shopper does not want.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_brands: Vec<String>,
    /// Lowest price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_min: Option<f64>,
    /// Highest price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_max: Option<f64>,
    /// Attribute values (any of, per attribute), as the catalog spells them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, Vec<String>>,
}

impl Constraints {
    /// The product filter: these constraints, in stock, and the client's own filter on top.
    pub fn to_filter(&self, client: Option<&ProductFilter>) -> ProductFilter {
        let mut f = client.cloned().unwrap_or_default();
        let nonempty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
        // The client's filter is a hard bound too: its categories and brands replace the
        // conversation's, and of two price bounds the narrower wins.
        if f.categories.is_none() {
            f.categories = nonempty(&self.categories);
        }
        if f.brands.is_none() {
            f.brands = nonempty(&self.brands);
        }
        let mut exclude = f.exclude_brands.take().unwrap_or_default();
        exclude.extend(self.exclude_brands.iter().cloned());
        f.exclude_brands = nonempty(&exclude);
        f.price_min = max_opt(f.price_min, self.price_min);
        f.price_max = min_opt(f.price_max, self.price_max);
        if !self.attributes.is_empty() {
            let mut attrs = f.attributes.take().unwrap_or_default();
            for (name, values) in &self.attributes {
                attrs.entry(name.clone()).or_insert_with(|| values.clone());
            }
            f.attributes = Some(attrs);
        }
        f.in_stock = Some(true);
        f
    }

    /// Whether nothing is constrained.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn min_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The conversation's state after a user turn.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConversationState {
    /// The search query (the rewritten request).
    pub query: String,
    /// Hard constraints.
    pub constraints: Constraints,
    /// The words naming the kind of product asked for ("chair"; "desktop" and "pc" for a
    /// "gaming desktop pc" in "Gaming Desktop Computer & PCs"): cards must have one in their
    /// title when some product of the catalog does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kind: Vec<String>,
}

/// A price relative to what was shown before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelativePrice {
    /// "cheaper ones".
    Cheaper,
    /// "something more premium".
    Pricier,
}

/// What one turn says, before it is merged with the state.
#[derive(Debug, Clone, Default)]
pub struct TurnReading {
    /// Categories named.
    pub categories: Vec<String>,
    /// Brands named.
    pub brands: Vec<String>,
    /// Brands to avoid.
    pub exclude_brands: Vec<String>,
    /// Price bounds named.
    pub price_min: Option<f64>,
    /// Price bounds named.
    pub price_max: Option<f64>,
    /// A price relative to the previous results.
    pub relative: Option<RelativePrice>,
    /// The turn without price phrases and filler.
    pub query: String,
    /// Whether the turn refers back ("ones", "those", "it", "another").
    pub refers_back: bool,
    /// Attribute values named, per attribute, as the catalog spells them.
    pub attributes: BTreeMap<String, Vec<String>>,
    /// The words naming the kind of product asked for, when known (any of them).
    pub kind: Vec<String>,
    /// The turn names no kind of product, brand or feature to search by ("a gift").
    pub vague: bool,
}
