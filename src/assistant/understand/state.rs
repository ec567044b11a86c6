//! Merging a read turn into the conversation's state ([`Vocabulary::merge`]): a follow-up
//! narrows the previous constraints and keeps the query, a turn on a new topic starts over, and
//! "cheaper" or "pricier" moves a price bound past the median of what was shown.
//!
//! Not the reading of the turn (see `turn`) and not where the state is kept between requests
//! (see the assistant's `session`).

use std::collections::HashSet;

use super::price::median;
use super::text::{singular, words};
use super::word_lists::is_stop;
use super::{Constraints, ConversationState, RelativePrice, TurnReading, Vocabulary};

impl Vocabulary {
    /// Merge a turn into the state. `shown` are the prices of the products shown last (for
    /// "cheaper ones").
    pub fn merge(&self, state: &ConversationState, turn: &TurnReading, shown: &[f64]) -> ConversationState {
        let had_topic = !state.query.is_empty() || !state.constraints.is_empty();
        let new_topic = !turn.categories.is_empty()
            && !state.constraints.categories.is_empty()
            && turn.categories.iter().all(|c| !state.constraints.categories.contains(c));
        let mut c = if new_topic || !had_topic { Constraints::default() } else { state.constraints.clone() };
        if !turn.categories.is_empty() {
            c.categories = turn.categories.clone();
        }
        if !turn.brands.is_empty() {
            c.brands = turn.brands.clone();
            c.exclude_brands.retain(|b| !turn.brands.contains(b));
        }
        if !turn.exclude_brands.is_empty() {
            c.brands.retain(|b| !turn.exclude_brands.contains(b));
            for b in &turn.exclude_brands {
                if !c.exclude_brands.contains(b) {
                    c.exclude_brands.push(b.clone());
                }
            }
        }
        for (name, values) in &turn.attributes {
            c.attributes.insert(name.clone(), values.clone());
        }
        if turn.price_min.is_some() || turn.price_max.is_some() {
            c.price_min = turn.price_min;
            c.price_max = turn.price_max;
        }
        match (turn.relative, median(shown)) {
            (Some(RelativePrice::Cheaper), Some(m)) => {
                c.price_max = Some(((m - 0.01) * 100.0).round() / 100.0);
                c.price_min = c.price_min.filter(|lo| *lo < m);
            }
            (Some(RelativePrice::Pricier), Some(m)) => {
                c.price_min = Some(((m + 0.01) * 100.0).round() / 100.0);
                c.price_max = c.price_max.filter(|hi| *hi > m);
            }
            _ => {}
        }
        // A turn that names its own product starts a new query; one that only adjusts
        // ("cheaper ones", "what about Sony?") keeps the previous one.
        let own_product = !turn.categories.is_empty()
            || words(&turn.query).iter().any(|w| !is_stop(w) && self.is_title_word(w) && !self.is_brand_word(w));
        let query = if new_topic || !had_topic || (own_product && !turn.refers_back) || state.query.is_empty() {
            turn.query.clone()
        } else {
            let mut q = state.query.clone();
            let have: HashSet<String> = words(&q).into_iter().collect();
            for w in turn.query.split_whitespace() {
                if !have.contains(&singular(&w.to_lowercase())) && !self.is_brand_word(&w.to_lowercase()) {
                    q.push(' ');
                    q.push_str(w);
                }
            }
            q
        };
        let query = if query.trim().is_empty() {
            // Nothing but constraints ("under $50"): search by what they name.
            c.categories.iter().chain(&c.brands).cloned().collect::<Vec<_>>().join(" ")
        } else {
            query
        };
        let kind = if !turn.kind.is_empty() {
            turn.kind.clone()
        } else if new_topic || !had_topic || (own_product && !turn.refers_back) {
            vec![]
        } else {
            state.kind.clone()
        };
        ConversationState { query, constraints: c, kind }
    }
}
