//! The grounding check: every product an answer names must be one of the cards, and every price
//! or stock claim must match the catalog. The check runs sentence by sentence (so a streamed
//! answer is checked before it is sent): a wrong price or stock claim about a card is rewritten
//! from the catalog; a sentence naming a product that is not a card, or a price that belongs to
//! no card, is removed. Each violation is reported with what was done about it.
//!
//! Only the check of the model's text against the cards, and the splitting of streamed text into
//! sentences. Not the choice of the cards (see the assistant's `plan`) and not the streaming loop
//! that runs the check (see `answer`).

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use super::understand::{Vocabulary, is_stop, singular, word_positions, words};
use crate::catalog::Product;

/// What was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    /// A product that is not among the cards (or not in the catalog).
    Product,
    /// A price that is not the catalog's.
    Price,
    /// A stock claim that is not the catalog's.
    Stock,
}

/// What was done about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Rewritten from the catalog.
    Repaired,
    /// The sentence was removed.
    Removed,
}

/// One grounding violation.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Violation {
    /// What was wrong.
    pub kind: ViolationKind,
    /// The claim as the model wrote it.
    pub claim: String,
    /// What the catalog says, where it says something.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog: Option<String>,
    /// What was done.
    pub action: Action,
}

static MONEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(?:(?:\$|us\$|€|£)\s?(\d[\d,]*(?:\.\d{1,2})?)|(\d[\d,]*(?:\.\d{1,2})?)\s?(?:dollars?|usd|eur|euros?)\b)",
    )
    .unwrap()
});
static OUT_OF_STOCK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(out of stock|sold out|(currently |temporarily )?unavailable|not (currently )?available|not in stock|on back-?order)\b").unwrap()
});
static STOCK_QTY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(only\s+)?(\d+)\s+(units?\s+|pieces?\s+|items?\s+)?(left|remaining|in stock|available)\b")
        .unwrap()
});
static PRODUCT_ID: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b[A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)+\b").unwrap());

/// A product word is distinctive when at most this many products share it.
const DISTINCTIVE: usize = 5;

/// Format a price as the shop shows it.
pub fn format_price(price: f64, currency: &str) -> String {
    let amount = if price.fract().abs() < 1e-9 { format!("{price:.0}") } else { format!("{price:.2}") };
    match currency {
        "USD" => format!("${amount}"),
        "EUR" => format!("€{amount}"),
        "GBP" => format!("£{amount}"),
        other => format!("{amount} {other}"),
    }
}

/// Checks sentences against the cards.
pub struct Grounder<'a> {
    vocab: &'a Vocabulary,
    cards: &'a [Product],
    /// Prices the shopper named (their budget may be echoed).
    budget: Vec<f64>,
    /// The card the previous sentences were about ("It costs ...").
    last: Option<usize>,
    card_brands: HashSet<String>,
    /// Each card's title words.
    card_words: Vec<HashSet<String>>,
}

/// A card mentioned in a sentence, and where.
#[derive(Debug, Clone, Copy)]
struct CardMention {
    card: usize,
    at: usize,
}

/// What the check made of a sentence.
#[derive(Debug, Clone, Default)]
pub struct CheckedSentence {
    /// The sentence to send (`None`: removed).
    pub text: Option<String>,
    /// Violations found in it.
    pub violations: Vec<Violation>,
}

impl<'a> Grounder<'a> {
    /// A checker for an answer about `cards`, where the shopper named the prices in `budget`.
    pub fn new(vocab: &'a Vocabulary, cards: &'a [Product], budget: Vec<f64>) -> Self {
        let card_brands = cards.iter().filter_map(|c| c.brand.as_ref().map(|b| b.to_lowercase())).collect();
        let card_words = cards.iter().map(|c| words(&c.title).into_iter().collect()).collect();
        Self { vocab, cards, budget, last: None, card_brands, card_words }
    }

    /// Also count as each card's own words those of `facts[i]` (phrases taken from card `i`'s
    /// own data, such as its description): saying them names no other product.
    pub fn knowing(mut self, facts: &[Vec<String>]) -> Self {
        for (known, phrases) in self.card_words.iter_mut().zip(facts) {
            for phrase in phrases {
                known.extend(words(phrase));
            }
        }
        self
    }

    fn card_index(&self, id: &str) -> Option<usize> {
        self.cards.iter().position(|c| c.id.eq_ignore_ascii_case(id))
    }

    /// Products a sentence names: `(cards, foreign)` where foreign are descriptions of products
    /// that are not cards.
    fn mentions(&self, s: &str) -> (Vec<CardMention>, Vec<String>) {
        let mut cards: Vec<CardMention> = Vec::new();
        let mut foreign = Vec::new();
        // Ids written out.
        for m in PRODUCT_ID.find_iter(s) {
            if let Some(i) = self.card_index(m.as_str()) {
                cards.push(CardMention { card: i, at: m.start() });
            } else if self.vocab.product_index(m.as_str()).is_some() {
                foreign.push(m.as_str().to_string());
            }
        }
        // Distinctive title words, grouped by clause (a list names one product per item): the
        // products sharing most of a clause's words win.
        for (start, clause) in clauses(s) {
            self.clause_mentions(clause, start, &mut cards, &mut foreign);
        }
        // Brands of no card.
        let lower = s.to_lowercase();
        for (name, b, needs_case) in self.vocab.brands() {
            if !self.card_brands.contains(b)
                && word_positions(&lower, b)
                    .any(|at| !needs_case || s.get(at..).is_some_and(|t| t.starts_with(char::is_uppercase)))
            {
                foreign.push(format!("the brand {name}, which no result has"));
            }
        }
        cards.sort_by_key(|m| m.at);
        (cards, foreign)
    }

    /// Products a clause names. Its product words (distinctive title words, product-line
    /// words) are matched against the cards' titles: a word no card's title has names a product
    /// that is not a card; otherwise the cards sharing most of the words are the ones named.
    fn clause_mentions(&self, s: &str, base: usize, cards: &mut Vec<CardMention>, foreign: &mut Vec<String>) {
        let mut found: Vec<(String, usize)> = Vec::new();
        let mut offset = 0;
        for raw in s.split(|c: char| !(c.is_alphanumeric() || c == '\'')) {
            let at = s[offset..].find(raw).map(|i| i + offset).unwrap_or(offset);
            offset = at + raw.len();
            if raw.is_empty() || raw.chars().all(|c| c.is_ascii_digit()) {
                continue;
            }
            let w = singular(&raw.to_lowercase());
            if self.vocab.is_brand_word(&w) {
                continue;
            }
            let products = self.vocab.products_with(&w);
            if products.is_empty() || (products.len() > DISTINCTIVE && !self.vocab.is_line_word(&w)) {
                continue;
            }
            found.push((w, base + at));
        }
        if found.is_empty() {
            // No product word: the cards sharing most of the clause's words (brand, generic
            // title words) are what it is about ("Reolink ($149.99)").
            let ws: HashSet<String> =
                words(s).into_iter().filter(|w| !is_stop(w) && !w.chars().all(|c| c.is_ascii_digit())).collect();
            let overlap: Vec<usize> = self.card_words.iter().map(|cw| ws.intersection(cw).count()).collect();
            let best = overlap.iter().copied().max().unwrap_or(0);
            if best > 0 {
                for (i, &n) in overlap.iter().enumerate() {
                    if n == best && !cards.iter().any(|m| m.card == i) {
                        cards.push(CardMention { card: i, at: base });
                    }
                }
            }
            return;
        }
        if let Some((w, _)) = found.iter().find(|(w, _)| !self.card_words.iter().any(|cw| cw.contains(w))) {
            let example = self.vocab.products_with(w).first().map(|&p| self.vocab.product(p).0.to_string());
            foreign.push(format!(
                "a product that is not among the results (\"{w}\", as in {})",
                example.unwrap_or_default()
            ));
            return;
        }
        let hits: Vec<(usize, usize, usize)> = self
            .card_words
            .iter()
            .enumerate()
            .filter_map(|(i, cw)| {
                let mine: Vec<usize> = found.iter().filter(|(w, _)| cw.contains(w)).map(|(_, at)| *at).collect();
                (!mine.is_empty()).then(|| (i, mine.len(), mine[0]))
            })
            .collect();
        let best = hits.iter().map(|h| h.1).max().unwrap_or(0);
        for &(i, n, at) in &hits {
            if n == best && !cards.iter().any(|m| m.card == i) {
                cards.push(CardMention { card: i, at });
            }
        }
    }

    /// Check one sentence.
    pub fn check(&mut self, sentence: &str) -> CheckedSentence {
        let mut out = CheckedSentence::default();
        let (mentions, foreign) = self.mentions(sentence);
        if !foreign.is_empty() {
            for f in foreign {
                out.violations.push(Violation {
                    kind: ViolationKind::Product,
                    claim: f,
                    catalog: None,
                    action: Action::Removed,
                });
            }
            return out;
        }
        if let Some(m) = mentions.last() {
            self.last = Some(m.card);
        }
        let referents: Vec<CardMention> = if mentions.is_empty() {
            self.last.map(|c| vec![CardMention { card: c, at: 0 }]).unwrap_or_default()
        } else {
            mentions.clone()
        };
        let mut text = sentence.to_string();
        // Prices, replaced right to left so earlier offsets stay valid.
        let amounts: Vec<(usize, usize, f64)> = MONEY
            .captures_iter(sentence)
            .filter_map(|c| {
                let m = c.get(0)?;
                let v: f64 = c.get(1).or(c.get(2))?.as_str().replace(',', "").parse().ok()?;
                Some((m.start(), m.end(), v))
            })
            .collect();
        let same = |a: f64, b: Option<f64>| b.is_some_and(|b| (a - b).abs() < 0.005);
        for &(start, end, v) in amounts.iter().rev() {
            let named = referents.iter().any(|m| same(v, self.cards[m.card].price));
            let budget = self.budget.iter().any(|b| (v - b).abs() < 0.005);
            if named || budget || (mentions.is_empty() && self.cards.iter().any(|c| same(v, c.price))) {
                continue;
            }
            // The nearest card named before the amount (or the first one after it).
            let target = referents.iter().rev().find(|m| m.at <= start).or(referents.first()).map(|m| m.card);
            match target.and_then(|i| Some((i, self.cards[i].price?))) {
                Some((i, price)) => {
                    let right = format_price(price, &self.cards[i].currency);
                    out.violations.push(Violation {
                        kind: ViolationKind::Price,
                        claim: sentence[start..end].to_string(),
                        catalog: Some(format!("{} costs {right}", self.cards[i].id)),
                        action: Action::Repaired,
                    });
                    text.replace_range(start..end, &right);
                }
                None => {
                    out.violations.push(Violation {
                        kind: ViolationKind::Price,
                        claim: sentence[start..end].to_string(),
                        catalog: None,
                        action: Action::Removed,
                    });
                    return out;
                }
            }
        }
        // Stock: every card is in stock, so "out of stock" about one is wrong.
        if let Some(m) = OUT_OF_STOCK.find(&text.clone()) {
            match referents.first() {
                Some(r) if self.cards[r.card].in_stock => {
                    out.violations.push(Violation {
                        kind: ViolationKind::Stock,
                        claim: m.as_str().to_string(),
                        catalog: Some(format!("{} is in stock", self.cards[r.card].id)),
                        action: Action::Repaired,
                    });
                    text.replace_range(m.range(), "in stock");
                }
                _ => {
                    out.violations.push(Violation {
                        kind: ViolationKind::Stock,
                        claim: m.as_str().to_string(),
                        catalog: None,
                        action: Action::Removed,
                    });
                    return out;
                }
            }
        }
        if let Some(c) = STOCK_QTY.captures(&text.clone()) {
            let m = c.get(0).expect("match");
            let claimed: i64 = c[2].parse().unwrap_or(-1);
            if let Some(r) = referents.first() {
                let card = &self.cards[r.card];
                if card.stock_qty != Some(claimed) {
                    let right = match card.stock_qty {
                        Some(q) => format!("{q} {}", &c[4]),
                        None => "in stock".to_string(),
                    };
                    out.violations.push(Violation {
                        kind: ViolationKind::Stock,
                        claim: m.as_str().to_string(),
                        catalog: Some(format!("{}: {right}", card.id)),
                        action: Action::Repaired,
                    });
                    text.replace_range(m.range(), &right);
                }
            }
        }
        out.text = Some(text);
        out
    }
}

/// The clauses of a sentence (split at ", " and "; "; not at "and": titles have it), with
/// their byte offsets.
fn clauses(s: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        let sep = [", ", "; "].iter().find(|p| rest.starts_with(**p)).map(|p| p.len());
        match sep {
            Some(n) => {
                out.push((start, &s[start..i]));
                i += n;
                start = i;
            }
            None => i += rest.chars().next().map_or(1, char::len_utf8),
        }
    }
    out.push((start, &s[start..]));
    out
}

/// Splits streamed text into sentences: a sentence ends at `.`, `!` or `?` followed by
/// whitespace, or at a newline. A list number ("1. ") does not end one.
#[derive(Debug, Default)]
pub struct SentenceSplitter {
    buf: String,
}

impl SentenceSplitter {
    /// Add text; returns the sentences completed (each with its trailing whitespace).
    pub fn push(&mut self, text: &str) -> Vec<String> {
        self.buf.push_str(text);
        let mut out = Vec::new();
        while let Some(end) = self.boundary() {
            let rest = self.buf.split_off(end);
            out.push(std::mem::replace(&mut self.buf, rest));
        }
        out
    }

    /// The rest, at the end of the stream.
    pub fn finish(&mut self) -> Option<String> {
        let s = std::mem::take(&mut self.buf);
        (!s.trim().is_empty()).then_some(s)
    }

    /// Every sentence of a whole text.
    pub fn split_all(text: &str) -> Vec<String> {
        let mut splitter = Self::default();
        let mut parts = splitter.push(text);
        parts.extend(splitter.finish());
        parts
    }

    fn boundary(&self) -> Option<usize> {
        let b = self.buf.as_bytes();
        for i in 0..b.len() {
            let c = b[i];
            if c == b'\n' {
                let mut j = i + 1;
                while j < b.len() && b[j] == b'\n' {
                    j += 1;
                }
                if self.buf[..i].trim().is_empty() {
                    continue;
                }
                return Some(j);
            }
            if matches!(c, b'.' | b'!' | b'?') && i + 1 < b.len() && (b[i + 1] == b' ' || b[i + 1] == b'\n') {
                // "1. " at the start of a line is a list number.
                if c == b'.' {
                    let start = self.buf[..i].rfind('\n').map(|p| p + 1).unwrap_or(0);
                    let head = self.buf[start..i].trim();
                    if !head.is_empty() && head.bytes().all(|d| d.is_ascii_digit()) {
                        continue;
                    }
                }
                let mut j = i + 1;
                while j < b.len() && b[j] == b' ' {
                    j += 1;
                }
                if j == b.len() {
                    return None; // the whitespace may go on: wait
                }
                return Some(j);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(id: &str, title: &str, brand: &str, price: f64, qty: Option<i64>, in_stock: bool) -> Product {
        Product {
            id: id.into(),
            title: title.into(),
            description: String::new(),
            brand: Some(brand.into()),
            categories: vec!["Headphones & Earbuds".into()],
            tags: vec![],
            price: Some(price),
            currency: "USD".into(),
            in_stock,
            stock_qty: qty,
            attributes: Default::default(),
            url: None,
            image_url: None,
            hidden: false,
            updated_at: chrono::Utc::now(),
        }
    }

    fn catalog() -> Vec<Product> {
        vec![
            product("el-1", "Beats Flex Wireless Earphones", "Beats", 49.99, Some(7), true),
            product("el-2", "Skullcandy Sesh ANC True Wireless Headphones", "Skullcandy", 49.97, None, true),
            product("el-3", "Sony WH1000XM5 Wireless Headphones", "Sony", 399.99, Some(2), true),
            product("el-4", "Apple AirPods (3rd Generation)", "Apple", 169.99, Some(0), false),
        ]
    }

    #[test]
    fn repairs_prices_and_stock_and_removes_foreign_products() {
        let all = catalog();
        let vocab = Vocabulary::build(&all);
        let cards = all[..2].to_vec();
        let mut g = Grounder::new(&vocab, &cards, vec![100.0]);
        let c = g.check("The Beats Flex is a great choice at $45.");
        assert_eq!(c.text.as_deref(), Some("The Beats Flex is a great choice at $49.99."));
        assert_eq!(c.violations[0].kind, ViolationKind::Price);
        // "It" refers to the last card named.
        let c = g.check("It is out of stock right now.");
        assert_eq!(c.text.as_deref(), Some("It is in stock right now."));
        let c = g.check("Only 3 left of the Beats Flex!");
        assert_eq!(c.text.as_deref(), Some("7 left of the Beats Flex!"));
        let c = g.check("The Skullcandy Sesh costs $49.97 and stays under your $100 budget.");
        assert!(c.violations.is_empty(), "{:?}", c.violations);
        let c = g.check("You could also try the Sony WH1000XM5.");
        assert!(c.text.is_none());
        assert_eq!(c.violations[0].kind, ViolationKind::Product);
        let c = g.check("The AirPods are popular too.");
        assert!(c.text.is_none(), "a product that is not a card is removed");
        let c = g.check("Apple makes good ones.");
        assert!(c.text.is_none(), "a brand no card has is removed");
        let c = g.check("These start at $12.");
        assert_eq!(c.text.as_deref(), Some("These start at $49.97."), "an amount with a referent is repaired");
        let c = g.check("İİİ Apple ürün, İyi.");
        assert!(c.text.is_none(), "non-ASCII text around a foreign brand: {c:?}");
        let mut fresh = Grounder::new(&vocab, &cards, vec![]);
        assert!(fresh.check("Prices start at $12.").text.is_none(), "an amount about nothing is removed");
    }

    #[test]
    fn sentences_split_streamed_text() {
        let mut s = SentenceSplitter::default();
        let mut out = s.push("Here are two options");
        out.extend(s.push(":\n1. Beats Flex at $49"));
        out.extend(s.push(".99. It is light! And"));
        out.extend(s.push(" cheap."));
        out.extend(s.finish());
        assert_eq!(out, vec!["Here are two options:\n", "1. Beats Flex at $49.99. ", "It is light! ", "And cheap."]);
    }
}
