//! The model's prompt: instructions with a compact product table, then as much of the
//! conversation as fits the model's context (the oldest turns dropped first, then table rows);
//! and how a product is named in text ([`short_title`]).
//!
//! Not which products are shown (see `plan`) and not the generation (see `answer`).

use super::Assistant;
use super::ground::format_price;
use super::session::Turn;
use crate::catalog::Product;
use crate::error::{Error, Result};
use crate::infer::chat::{Generator, Message};

impl Assistant {
    /// The prompt: instructions with the product table, then as much of the conversation as fits.
    pub(super) fn prompt(
        &self,
        generator: &Generator,
        history: &[Turn],
        products: &[Product],
        facts: &[Vec<String>],
    ) -> Result<Vec<u32>> {
        let context = generator.info().shape.context;
        let room = context.saturating_sub(self.config.max_tokens + 8);
        let mut rows = products.len();
        let mut first = 0;
        loop {
            let mut messages = vec![Message::new("system", self.instructions(&products[..rows], facts))];
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

    /// The system message: how to answer, with one line per product: its id, name, price and
    /// the facts an answer may give for it (the schema holds the answer to those).
    fn instructions(&self, products: &[Product], facts: &[Vec<String>]) -> String {
        let mut s = format!(
            "You are the shopping assistant of {}. Choose the products below that best fit what the shopper \
             asks for, best first, and for each give the one or two facts from its list that matter most \
             for the request. Leave out products that do not fit. \
             Reply in JSON: {{\"picks\": {{\"<id>\": [\"<fact>\"]}}}}.\n\nProducts in stock:\n",
            self.config.shop
        );
        for (p, f) in products.iter().zip(facts) {
            let mut row = format!("{}: {}", p.id, short_title(&p.title));
            if let Some(price) = p.price {
                row.push_str(&format!(", {}", format_price(price, &p.currency)));
            }
            if let Some(c) = p.categories.first() {
                row.push_str(&format!(", {c}"));
            }
            row.push_str(&format!(". Facts: {}", f.join("; ")));
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
