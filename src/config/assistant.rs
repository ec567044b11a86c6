//! `[assistant]`: what the shopping assistant shows and keeps (cards, candidates, tokens,
//! personalisation, sessions). Not the assistant (`assistant/`).

use serde::{Deserialize, Serialize};

/// `[assistant]`: the shopping assistant.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AssistantConfig {
    /// What the shop is, for the model's instructions.
    pub shop: String,
    /// Product cards per answer.
    pub cards: usize,
    /// Candidates retrieved before re-ranking by taste.
    pub candidates: usize,
    /// Most tokens of an answer.
    pub max_tokens: usize,
    /// Weight of the customer's taste ranking against relevance (RRF; 0 turns it off).
    pub personal_weight: f64,
    /// Turns kept in a stored session (oldest dropped first).
    pub max_turns: usize,
    /// Sessions idle for longer are deleted (and compacted away).
    pub session_max_age_days: f64,
    /// Seconds the catalog vocabulary (categories, brands, title words) is reused.
    pub vocabulary_refresh_secs: u64,
    /// Let the chat model read turns the rules cannot fully read (schema-constrained, enums
    /// from the catalog); off, the rules alone read them.
    pub model_reading: bool,
}

impl Default for AssistantConfig {
    fn default() -> Self {
        Self {
            shop: "our shop".into(),
            cards: 4,
            candidates: 20,
            max_tokens: 160,
            personal_weight: 0.5,
            max_turns: 20,
            session_max_age_days: 30.0,
            vocabulary_refresh_secs: 30,
            model_reading: true,
        }
    }
}

impl AssistantConfig {
    pub(super) fn validate(&self, problems: &mut Vec<String>) {
        if self.cards == 0 || self.candidates < self.cards || self.max_tokens == 0 || self.max_turns < 2 {
            problems.push(
                "assistant.cards and max_tokens must be at least 1, candidates at least cards, max_turns at least 2"
                    .to_string(),
            );
        }
        if self.personal_weight < 0.0 || self.session_max_age_days <= 0.0 {
            problems.push(
                "assistant.personal_weight must not be negative and session_max_age_days must be positive".to_string(),
            );
        }
    }
}
