//! The intent of a user turn ([`Vocabulary::intent`]): shopping, small talk, out of scope
//! (including requests about the assistant's own instructions), unsafe, or written in another
//! language than the rules read, decided by rules before anything is retrieved.
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
        r"capital\s+of|election|president|prime minister|politic|religio|",
        r"homework|math(s|ematics)?\s+problem|solve\s+(this|the)\s+equation|",
        r"diagnos|symptom|medical advice|legal advice|lawyer|invest(ing|ment)? advice|stock market|",
        r"write\s+(some\s+)?(code|python|javascript|sql)|who\s+won|meaning of life|",
        // Requests about the assistant itself rather than the shop (prompt injection).
        r"system\s+prompt|your\s+(instructions|prompt|guidelines|rules)\b|the\s+prompt\b|developer\s+mode|jailbreak|",
        r"(ignore|disregard|forget)\s+(all\s+|any\s+|the\s+|your\s+|previous\s+|prior\s+|above\s+)*(instructions|rules|prompts?)\b|",
        r"pretend\s+(to\s+be|you\s+are)|you\s+are\s+now\b|",
        // Promises only the shop can make.
        r"(give|apply|grant)\s+(me\s+|us\s+)?(a\s+|an\s+)?(\d+\s?%\s+|special\s+|extra\s+|bigger\s+)?(discount|coupon|voucher|promo\s+code)",
        r")"
    ))
    .unwrap()
});

/// Topics outside a shop's business whose words products also use ("all-weather tyres", "a
/// cooking pot"): out of scope only when the turn names nothing of the catalog.
static SOFT_OFF_TOPIC: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\b(weather|news|recipes?|cook(ing)?|translate|translation)\b").unwrap());

/// Common function words of other languages (Spanish, French, German, Italian, Portuguese,
/// Dutch) that English text does not use.
const FOREIGN: &[&str] = &[
    "por", "para", "del", "los", "las", "una", "menos", "más", "mas", "que", "sin", "pour", "sans", "avec", "moins",
    "une", "des", "les", "très", "und", "der", "die", "das", "für", "mit", "ohne", "unter", "eine", "nicht", "ich",
    "meno", "della", "il", "uno", "um", "uma", "não", "com", "voor", "met", "een", "het", "niet", "zonder", "je",
    "cherche", "busco", "suche", "quiero", "veux", "möchte",
];

/// English function words, to weigh against [`FOREIGN`].
const ENGLISH: &[&str] = &[
    "the", "a", "an", "and", "or", "for", "with", "without", "under", "over", "below", "above", "i", "me", "my",
    "want", "need", "looking", "is", "are", "of", "to", "in", "on", "some", "any", "that", "this", "but", "not",
];

/// Whether a turn is written in another language than English (the rules read English only).
fn other_language(text: &str) -> bool {
    let ws: Vec<String> =
        text.split(|c: char| !c.is_alphabetic()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect();
    let foreign = ws.iter().filter(|w| FOREIGN.contains(&w.as_str())).count();
    let english = ws.iter().filter(|w| ENGLISH.contains(&w.as_str())).count();
    foreign >= 2 && foreign > english
}

impl Vocabulary {
    /// The intent of a user turn (`context` says a shopping conversation is under way).
    pub fn intent(&self, text: &str, context: bool) -> Intent {
        if UNSAFE.is_match(text) {
            return Intent::Unsafe;
        }
        if OFF_TOPIC.is_match(text) {
            return Intent::OutOfScope;
        }
        if other_language(text) {
            return Intent::OtherLanguage;
        }
        if SMALL_TALK.is_match(text) {
            return Intent::SmallTalk;
        }
        let ws = words(text);
        let catalog = !self.categories_in(text).is_empty()
            || !self.brands_in(text).0.is_empty()
            || ws.iter().any(|w| w.len() >= 3 && !is_stop(w) && self.is_title_word(w) && !SOFT_OFF_TOPIC.is_match(w));
        if SOFT_OFF_TOPIC.is_match(text) && !catalog {
            return Intent::OutOfScope;
        }
        let shopping = catalog
            || ws.iter().any(|w| SHOPPING.contains(&w.as_str()))
            || BARE_MONEY.is_match(text)
            || (context
                && (REFERS_BACK.is_match(text)
                    || CHEAPER.is_match(text)
                    || PRICIER.is_match(text)
                    || !self.attributes_in(text).is_empty()));
        if shopping { Intent::Shopping } else { Intent::OutOfScope }
    }
}
