//! The intent of a user turn ([`Vocabulary::intent`]): shopping, small talk, out of scope or
//! unsafe, decided by rules before anything is retrieved.
//!
//! Not what a shopping turn asks for (see `turn`) and not the refusal texts (see the
//! assistant's `plan`).

use std::sync::LazyLock;

use regex::Regex;

use super::price::{BARE_MONEY, CHEAPER, PRICIER};
use super::text::words;
use super::turn::REFERS_BACK;
use super::word_lists::{SHOPPING, is_stop};
use super::{Intent, Vocabulary};

/// Greetings and thanks.
static SMALL_TALK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*(hi|hello|hey|hallo|good (morning|afternoon|evening)|thanks?( you)?|thank you( so much)?|cheers|bye|goodbye|ok(ay)?|great|cool)[\s!.,]*(there|a lot|very much)?[\s!.]*$").unwrap()
});

/// Requests no shop should help with.
static UNSAFE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?i)\b(",
        r"(make|build|assemble)\s+(a\s+)?(bomb|explosive|weapon|gun)|explosives?\b|pipe ?bomb|",
        r"(kill|hurt|harm|poison|attack)\s+(myself|someone|somebody|him|her|them|my\s+\w+|a person|people)|",
        r"suicide|self[- ]harm|",
        r"(spy|snoop)\s+on|stalk(ing)?\b|track\s+(my\s+)?(wife|husband|girlfriend|boyfriend|partner|ex|neighbou?r)\b|",
        r"without\s+(his|her|their|them|anyone)\s*(knowing|knowledge|consent)|",
        r"hack\s+(into|someone|my\s+neighbou?r)|steal\b|stolen\b|",
        r"cocaine|heroin|meth(amphetamine)?\b|illegal\s+drugs?",
        r")"
    ))
    .unwrap()
});

/// Requests outside a shop's business, even when they name a product.
static OFF_TOPIC: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?i)\b(",
        r"(write|compose|tell)\s+(me\s+)?(a\s+)?(poem|song|story|joke|essay|limerick|haiku)|",
        r"capital\s+of|weather\b|news\b|election|president|prime minister|politic|religio|",
        r"homework|math(s|ematics)?\s+problem|solve\s+(this|the)\s+equation|translate\b|",
        r"recipe|cook(ing)?\b|diagnos|symptom|medical advice|legal advice|lawyer|invest(ing|ment)? advice|stock market|",
        r"write\s+(some\s+)?(code|python|javascript|sql)|who\s+won|meaning of life",
        r")"
    ))
    .unwrap()
});

impl Vocabulary {
    /// The intent of a user turn (`context` says a shopping conversation is under way).
    pub fn intent(&self, text: &str, context: bool) -> Intent {
        if UNSAFE.is_match(text) {
            return Intent::Unsafe;
        }
        if OFF_TOPIC.is_match(text) {
            return Intent::OutOfScope;
        }
        if SMALL_TALK.is_match(text) {
            return Intent::SmallTalk;
        }
        let ws = words(text);
        let shopping = ws.iter().any(|w| SHOPPING.contains(&w.as_str()))
            || !self.categories_in(text).is_empty()
            || !self.brands_in(text).0.is_empty()
            || ws.iter().any(|w| w.len() >= 3 && !is_stop(w) && self.is_title_word(w))
            || BARE_MONEY.is_match(text)
            || (context && (REFERS_BACK.is_match(text) || CHEAPER.is_match(text) || PRICIER.is_match(text)));
        if shopping { Intent::Shopping } else { Intent::OutOfScope }
    }
}
