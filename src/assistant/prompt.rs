//! The model's prompt: instructions with a compact product table, then as much of the
//! conversation as fits the model's context (the oldest turns dropped first, then table rows);
//! and how a product is named in text ([`short_title`]).
//!
//! Not which products are shown (see `plan`) and not the generation (see `answer`).

use serde_json::Value;

use super::Assistant;
use super::ground::format_price;
use super::session::Turn;
use crate::catalog::Product;
use crate::error::{Error, Result};
use crate::infer::chat::{Generator, Message};

impl Assistant {
    /// The prompt: instructions with the product table, then as much of the conversation as fits.
    pub(super) fn prompt(&self, generator: &Generator, history: &[Turn], products: &[Product]) -> Result<Vec<u32>> {
        let context = generator.info().shape.context;
        let room = context.saturating_sub(self.config.max_tokens + 8);
        let mut rows = products.len();
        let mut first = 0;
        loop {
            let mut messages = vec![Message::new("system", self.instructions(&products[..rows]))];
            messages.extend(history[first..].iter().map(|t| Message::new(&t.role, t.content.clone())));
            let ids = generator.chat_prompt(&messages)?;
            if ids.len() <= room {
                return Ok(ids);
            }
            if first + 1 < history.len() {
                first += 1; // drop the oldest turn
            } else if rows > 1 {
                rows -= 1;
            } else {
                return Err(Error::invalid(
                    format!("/messages/{}/content", history.len().saturating_sub(1)),
                    format!("the message is too long for the model's context of {context} tokens"),
                ));
            }
        }
    }

    /// The system message: how to answer, with the product table.
    fn instructions(&self, products: &[Product]) -> String {
        let mut s = format!(
            "You are the shopping assistant of {}. Recommend only products from the table below, by name. \
             Quote prices exactly as listed. Never invent products, prices or specifications. \
             Answer in two to four short sentences.\n\nProducts in stock:\n",
            self.config.shop
        );
        for (i, p) in products.iter().enumerate() {
            let mut row = format!("{}. {}", i + 1, short_title(&p.title));
            if let Some(price) = p.price {
                row.push_str(&format!(" | {}", format_price(price, &p.currency)));
            }
            if let Some(b) = &p.brand {
                row.push_str(&format!(" | {b}"));
            }
            if let Some(c) = p.categories.first() {
                row.push_str(&format!(" | {c}"));
            }
            if let Some(r) = p.attributes.get("rating").and_then(Value::as_f64) {
                row.push_str(&format!(" | rated {r:.1}/5"));
            }
            s.push_str(&row);
            s.push('\n');
        }
        s
    }
}

/// A title short enough for a prompt table and for a model to repeat.
pub fn short_title(title: &str) -> String {
    let cut = title.find(" - ").or_else(|| title.find(" with ")).or_else(|| title.find(", ")).unwrap_or(title.len());
    let t = title[..cut].trim();
    let words: Vec<&str> = t.split_whitespace().collect();
    if words.len() > 10 { words[..10].join(" ") } else { t.to_string() }
}

/// A product's short title with its price, as an answer names it.
pub(super) fn name_with_price(p: &Product) -> String {
    match p.price {
        Some(price) => format!("{} ({})", short_title(&p.title), format_price(price, &p.currency)),
        None => short_title(&p.title),
    }
}
