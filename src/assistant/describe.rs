//! `POST /v1/products/{id}/describe`: a merchandiser's draft description written by the chat
//! model from the product's own facts. Every sentence is checked before it is returned: a
//! number, a specification term or a brand that is not in the facts removes the sentence, so the
//! draft never claims a specification the product data does not have.
//!
//! Not the shopping chat (see [`super::Assistant::chat`]) and not the grounding check of chat
//! answers (see [`super::ground`]): a draft here is checked against one product's facts only.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Assistant;
use super::ground::{SentenceSplitter, format_price};
use super::output::TokenUsage;
use super::understand::word_positions;
use crate::error::{Error, FieldError, Result};
use crate::infer::chat::{GenerateRequest, Message, OutputFormat, SamplingParams};

/// `POST /v1/products/{id}/describe` body.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DescribeRequest {
    /// Longest draft, in words (20 to 300, default 80).
    pub max_words: Option<usize>,
    /// Tone, e.g. "friendly" or "technical" (at most 40 characters).
    pub tone: Option<String>,
}

/// A draft description.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Description {
    /// The product.
    pub product_id: String,
    /// The draft.
    pub description: String,
    /// Sentences removed because they claimed what the facts do not say, with why.
    pub removed: Vec<RemovedSentence>,
    /// The draft was written from the facts alone (the model's had nothing left).
    pub fallback: bool,
    /// The facts the model was given.
    pub facts: Vec<String>,
    /// Tokens.
    pub usage: TokenUsage,
}

/// A sentence of the model's draft that was taken out.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RemovedSentence {
    /// The sentence.
    pub sentence: String,
    /// Why: what it claims that the facts do not say.
    pub reason: String,
}

/// Terms that state a specification: a draft may use one only when the facts do.
const SPEC_TERMS: &[&str] = &[
    "bluetooth",
    "wi-fi",
    "wifi",
    "5g",
    "4g",
    "lte",
    "nfc",
    "gps",
    "waterproof",
    "water-resistant",
    "water resistant",
    "ip67",
    "ip68",
    "4k",
    "8k",
    "1080p",
    "hdr",
    "oled",
    "qled",
    "amoled",
    "lcd",
    "usb-c",
    "usb c",
    "thunderbolt",
    "hdmi",
    "noise cancelling",
    "noise-cancelling",
    "noise canceling",
    "anc",
    "battery life",
    "wireless charging",
    "fast charging",
    "dolby",
    "atmos",
    "ssd",
    "ram",
    "gb",
    "tb",
    "ghz",
    "hz",
    "mah",
    "megapixel",
    "mp",
    "inch",
    "inches",
    "oz",
    "lbs",
    "kg",
    "warranty",
    "certified",
    "refurbished",
    "organic",
    "vegan",
    "gluten",
];

static NUMBER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\d+(?:[.,]\d+)*").unwrap());

fn has_term(text: &str, term: &str) -> bool {
    word_positions(text, term).next().is_some()
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

impl DescribeRequest {
    fn check(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.max_words.is_some_and(|w| !(20..=300).contains(&w)) {
            errors.push(FieldError::new("/max_words", "must be between 20 and 300"));
        }
        if let Some(t) = &self.tone
            && (t.trim().is_empty() || t.chars().count() > 40 || t.chars().any(char::is_control))
        {
            errors.push(FieldError::new("/tone", "must be 1 to 40 characters of plain text"));
        }
        errors
    }
}

impl Assistant {
    /// Draft a description of product `id` from its facts.
    pub async fn describe(&self, id: &str, request: &DescribeRequest) -> Result<Description> {
        let errors = request.check();
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }
        let generator = self.generator()?.clone();
        let product = self.catalog.get(id).await?;
        let vocab = self.vocabulary().await?;
        let mut facts = vec![format!("Name: {}", product.title)];
        if let Some(b) = &product.brand {
            facts.push(format!("Brand: {b}"));
        }
        if !product.categories.is_empty() {
            facts.push(format!("Category: {}", product.categories.join(", ")));
        }
        if let Some(p) = product.price {
            facts.push(format!("Price: {}", format_price(p, &product.currency)));
        }
        for (k, v) in &product.attributes {
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "),
                other => other.to_string(),
            };
            facts.push(format!("{}: {v}", k.replace('_', " ")));
        }
        if !product.tags.is_empty() {
            facts.push(format!("Tags: {}", product.tags.join(", ")));
        }
        if !product.description.trim().is_empty() {
            facts.push(format!("Current description: {}", product.description.trim()));
        }
        let facts_text = facts.join("\n");
        let facts_lower = facts_text.to_lowercase();
        let max_words = request.max_words.unwrap_or(80);
        let tone = request.tone.as_deref().unwrap_or("friendly, clear");
        let messages = vec![
            Message::new(
                "system",
                format!(
                    "You write product descriptions for {}. Use only the facts given. Do not add features, \
                     numbers or specifications that are not in the facts. Tone: {tone}. At most {max_words} words.",
                    self.config.shop
                ),
            ),
            Message::new("user", format!("Facts:\n{facts_text}\n\nWrite the product description.")),
        ];
        let prompt = generator.chat_prompt(&messages)?;
        let room = generator.info().shape.context.saturating_sub(prompt.len());
        if room < 16 {
            return Err(Error::invalid("/", "the product's facts are too long for the model's context"));
        }
        let request = GenerateRequest {
            prompt,
            max_tokens: (max_words * 2).min(400).min(room),
            sampling: SamplingParams { temperature: 0.0, repetition_penalty: 1.1, ..SamplingParams::default() },
            stop: vec![],
            format: OutputFormat::Text,
        };
        let (text, finish) = generator.generate(request).await?;
        let own_brand = product.brand.as_deref().map(str::to_lowercase);
        let mut split = SentenceSplitter::default();
        let mut sentences = split.push(&text);
        sentences.extend(split.finish());
        let (mut kept, mut removed, mut words) = (String::new(), Vec::new(), 0usize);
        for s in sentences {
            let lower = s.to_lowercase();
            let why = NUMBER
                .find_iter(&s)
                .find(|n| !facts_lower.contains(n.as_str()) && !facts_lower.contains(&n.as_str().replace(',', "")))
                .map(|n| format!("the number {} is not in the facts", n.as_str()))
                .or_else(|| {
                    SPEC_TERMS
                        .iter()
                        .find(|t| has_term(&lower, t) && !has_term(&facts_lower, t))
                        .map(|t| format!("\"{t}\" is not in the facts"))
                })
                .or_else(|| {
                    vocab
                        .brands()
                        .find(|(_, b, needs_case)| {
                            Some(*b) != own_brand.as_deref()
                                && has_term(&lower, b)
                                && !has_term(&facts_lower, b)
                                && (!needs_case || s.contains(&capitalized(b)))
                        })
                        .map(|(name, _, _)| format!("the brand {name} is not this product's"))
                });
            match why {
                Some(reason) => removed.push(RemovedSentence { sentence: s.trim().to_string(), reason }),
                None => {
                    let n = s.split_whitespace().count();
                    if words + n > max_words && words > 0 {
                        break;
                    }
                    words += n;
                    kept.push_str(if kept.is_empty() { s.trim_start() } else { &s });
                }
            }
        }
        let mut fallback = false;
        if !kept.chars().any(char::is_alphanumeric) {
            fallback = true;
            kept = match &product.brand {
                Some(b) if !product.title.to_lowercase().contains(&b.to_lowercase()) => {
                    format!("{} by {b}.", product.title)
                }
                _ => format!("{}.", product.title),
            };
            if !product.description.trim().is_empty() {
                kept.push(' ');
                kept.push_str(product.description.trim());
            }
        }
        Ok(Description {
            product_id: product.id,
            description: kept.trim().to_string(),
            removed,
            fallback,
            facts,
            usage: TokenUsage::new(finish.prompt_tokens, finish.completion_tokens),
        })
    }
}
