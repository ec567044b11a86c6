//! What an answer streams ([`Output`]): how the request was understood ([`AnswerMeta`]), the
//! checked text, the product cards ([`ProductCard`]) and the summary at the end
//! ([`AnswerSummary`], with its [`GroundingReport`] and [`AnswerTimings`]).
//!
//! Only the types. Not how they are produced (see `answer`) and not how they are sent over HTTP
//! (the API's server-sent events).

use serde::Serialize;

use super::ground::Violation;
use super::understand::{Constraints, Intent};

/// A product card next to the answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProductCard {
    /// Product id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Price.
    pub price: Option<f64>,
    /// Currency.
    pub currency: String,
    /// Product page.
    pub url: Option<String>,
    /// Image.
    pub image_url: Option<String>,
    /// Buyable now.
    pub in_stock: bool,
    /// Units in stock.
    pub stock_qty: Option<i64>,
    /// Why it fits the request.
    pub why: String,
    /// Not a match for every constraint: the nearest alternative offered when nothing matched.
    pub alternative: bool,
}

/// What the grounding check did to one answer.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct GroundingReport {
    /// Violations in the model's text.
    pub violations_before: usize,
    /// Violations left in the final answer (checked again from scratch).
    pub violations_after: usize,
    /// Claims rewritten from the catalog.
    pub repaired: usize,
    /// Sentences removed.
    pub removed: usize,
    /// The answer was replaced by one written from the cards (nothing grounded was left).
    pub fallback: bool,
    /// The violations found (and what was done).
    pub violations: Vec<Violation>,
    /// Violations the second check still found in the final answer.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remaining: Vec<Violation>,
}

/// Timings of one answer.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct AnswerTimings {
    /// Understanding and retrieval.
    pub retrieval_ms: f64,
    /// From the request to the model's first token.
    pub first_token_ms: Option<f64>,
    /// From the request to the first text sent (after its sentence was checked).
    pub first_text_ms: Option<f64>,
    /// From the request to the end.
    pub total_ms: f64,
}

/// Tokens a generation used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TokenUsage {
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Generated tokens.
    pub completion_tokens: usize,
    /// Both.
    pub total_tokens: usize,
}

impl TokenUsage {
    /// Usage of a prompt and its completion.
    pub fn new(prompt_tokens: usize, completion_tokens: usize) -> Self {
        Self { prompt_tokens, completion_tokens, total_tokens: prompt_tokens + completion_tokens }
    }
}

/// The end of an answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AnswerSummary {
    /// The whole final answer.
    pub answer: String,
    /// The grounding check.
    pub grounding: GroundingReport,
    /// Prompt and generated tokens (0 when the model was not asked).
    pub usage: TokenUsage,
    /// Timings.
    pub timings: AnswerTimings,
}

/// The first event of an answer: how the request was understood.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AnswerMeta {
    /// The session id, if the conversation is stored.
    pub session_id: Option<String>,
    /// What the turn asks for.
    pub intent: Intent,
    /// The search query the conversation was rewritten into.
    pub query: String,
    /// The hard constraints applied (and in stock).
    pub constraints: Constraints,
    /// Whether the customer's taste re-ranked the results.
    pub personalized: bool,
    /// Whether the answer is a refusal.
    pub refused: bool,
}

/// What an answer streams, in order: one `Meta`, text pieces, the cards, one `Done` (or `Failed`).
#[derive(Debug, Clone)]
pub enum Output {
    /// How the request was understood.
    Meta(AnswerMeta),
    /// Checked answer text.
    Text(String),
    /// The product cards.
    Cards(Vec<ProductCard>),
    /// The end.
    Done(AnswerSummary),
    /// Generation failed.
    Failed(String),
}
