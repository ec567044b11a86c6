//! Reading one user turn ([`Vocabulary::read`]) into a [`TurnReading`]: price bounds, a price
//! relative to what was shown, categories, brands named or avoided, whether the turn refers
//! back, and its words as a search query.
//!
//! One turn only: merging it into the conversation is `state`'s job, and the price patterns
//! are in `price`.

use std::sync::LazyLock;

use regex::Regex;

use super::price::{AROUND, BARE_MONEY, CHEAPER, DASH_RANGE, MAX, MIN, PRICIER, RANGE, amount_at};
use super::text::singular;
use super::word_lists::is_stop;
use super::{RelativePrice, TurnReading, Vocabulary};

/// Words that refer back to what was shown ("ones", "those", "what about").
pub(super) static REFERS_BACK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(ones?|those|these|them|it|that|another|others|instead|same|similar|what about|how about|any other|else)\b").unwrap()
});
/// Request phrasing that is not what is asked for ("I'm looking for", "can you show me").
static FILLER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(i'?m|i am|we'?re|we are)\s+(looking|searching|shopping)\s+for\b|\b(can|could|would)\s+you\s+(please\s+)?(show|find|recommend|suggest|give)(\s+me)?\b|\b(show|find|recommend|suggest|give)\s+me\b|\bi\s+(want|need|would like)(\s+to\s+buy)?\b|\bdo\s+you\s+(have|sell|carry)\b|\bplease\b|\bthanks?\b|\bwhat about\b|\bhow about\b").unwrap()
});

/// A brand to avoid with its negation ("not Sony"), cut from the query.
static NOT_BRAND_PHRASE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(not|no|except|other than|besides|without|anything but|avoid)\s+(an?\s+)?\S+").unwrap()
});

impl Vocabulary {
    /// Read one user turn.
    pub fn read(&self, text: &str) -> TurnReading {
        let mut r = TurnReading::default();
        let mut stripped = text.to_string();
        let cut = |re: &Regex, s: &mut String| *s = re.replace_all(s, " ").into_owned();
        if let Some(c) = RANGE.captures(text) {
            let (a, b) = (amount_at(&c, 1), amount_at(&c, 8));
            if let (Some(a), Some(b)) = (a, b) {
                r.price_min = Some(a.min(b));
                r.price_max = Some(a.max(b));
            }
            cut(&RANGE, &mut stripped);
        } else if let Some(c) = DASH_RANGE.captures(text) {
            let (a, b) = (amount_at(&c, 1), amount_at(&c, 5));
            if let (Some(a), Some(b)) = (a, b) {
                r.price_min = Some(a.min(b));
                r.price_max = Some(a.max(b));
            }
            cut(&DASH_RANGE, &mut stripped);
        } else {
            if let Some(c) = MAX.captures(text)
                && let Some(v) = amount_at(&c, 1)
            {
                r.price_max = Some(v);
                cut(&MAX, &mut stripped);
            }
            if let Some(c) = MIN.captures(text)
                && let Some(v) = amount_at(&c, 1)
            {
                r.price_min = Some(v);
                cut(&MIN, &mut stripped);
            }
            if r.price_min.is_none()
                && r.price_max.is_none()
                && let Some(v) = AROUND
                    .captures(text)
                    .and_then(|c| amount_at(&c, 1))
                    .or_else(|| BARE_MONEY.captures(text).and_then(|c| amount_at(&c, 1)))
            {
                // "around $200", "a $200 watch": within 20% either way.
                r.price_min = Some((v * 0.8 * 100.0).round() / 100.0);
                r.price_max = Some((v * 1.2 * 100.0).round() / 100.0);
                cut(&AROUND, &mut stripped);
                cut(&BARE_MONEY, &mut stripped);
            }
        }
        if CHEAPER.is_match(text) && r.price_max.is_none() {
            r.relative = Some(RelativePrice::Cheaper);
        } else if PRICIER.is_match(text) && r.price_min.is_none() {
            r.relative = Some(RelativePrice::Pricier);
        }
        cut(&CHEAPER, &mut stripped);
        cut(&PRICIER, &mut stripped);
        r.categories = self.categories_in(&stripped);
        let (named, avoided) = self.brands_in(text);
        r.brands = named;
        r.exclude_brands = avoided;
        for (name, _, spellings) in self.attributes_in(&stripped) {
            r.attributes.entry(name).or_default().extend(spellings);
        }
        r.refers_back = REFERS_BACK.is_match(text);
        let cleaned = FILLER.replace_all(&stripped, " ");
        let cleaned = NOT_BRAND_PHRASE.replace_all(&cleaned, " ");
        r.query = cleaned
            .split_whitespace()
            .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric() && c != '-' && c != '&'))
            .filter(|w| !w.is_empty() && !is_stop(&singular(&w.to_lowercase())))
            .collect::<Vec<_>>()
            .join(" ");
        r
    }
}
