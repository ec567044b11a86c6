//! Prices in a shopper's words: money amounts ("$1,299.99", "$1.5k", "150 dollars"), bounds
//! ("under $150", "between $800 and $1,200", "around $300"), prices relative to what was shown
//! ("cheaper ones", "more premium"), and the median of prices.
//!
//! Only the patterns and the amounts. Not where a turn's bounds go: `turn` reads them into a
//! turn and `state` merges them into the conversation.

use std::sync::LazyLock;

use regex::Regex;

use super::word_lists::UNITS;

/// A money amount: `$1,299.99`, `$1.2k`, `150 dollars`, `150 usd`, `€99`.
const MONEY: &str = r"(?:(?:\$|us\$|usd\s?|€|eur\s?|£|gbp\s?)\s?(\d[\d,]*(?:\.\d+)?)\s?(k\b)?|(\d[\d,]*(?:\.\d+)?)\s?(k\b)?\s?(?:dollars?|usd|bucks|euros?|eur|pounds|gbp|\$|€))";
/// A bare number (a price when a price word comes before it).
const NUMBER: &str = r"(\d[\d,]*(?:\.\d+)?)\s?(k\b)?(?:\s?([a-z\x22']+))?";

/// "between $800 and $1,200", "from 50 to 100": both bounds.
pub(super) static RANGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"(?i)(?:between|from)\s+(?:{MONEY}|{NUMBER})\s*(?:and|to|-)\s*(?:{MONEY}|{NUMBER})")).unwrap()
});
/// "$50-$150", "$50 to $150": both bounds, both written as money.
pub(super) static DASH_RANGE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"(?i){MONEY}\s*(?:-|to)\s*{MONEY}")).unwrap());
/// "under $150", "budget of $1.5k", "up to 200": an upper bound.
pub(super) static MAX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?i)(?:under|below|less than|cheaper than|at most|no more than|not more than|not over|max(?:imum)?|up to|within|budget(?:\s+(?:of|is))?|spend(?:ing)?(?:\s+(?:up to|at most))?|<=?)\s*(?:of\s+)?(?:{MONEY}|{NUMBER})"
    ))
    .unwrap()
});
/// "over 500 dollars", "at least $100": a lower bound.
pub(super) static MIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"(?i)(?:over|above|more than|at least|min(?:imum)?|starting at|>=?)\s*(?:{MONEY}|{NUMBER})"))
        .unwrap()
});
/// "around $300": a price to stay near.
pub(super) static AROUND: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"(?i)(?:around|about|approximately|roughly|~)\s*(?:{MONEY}|{NUMBER})")).unwrap()
});
/// Any money amount ("a $200 watch").
pub(super) static BARE_MONEY: LazyLock<Regex> = LazyLock::new(|| Regex::new(&format!(r"(?i){MONEY}")).unwrap());
/// "cheaper ones": below what was shown.
pub(super) static CHEAPER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(cheaper|less expensive|lower[- ]priced?|more affordable|(a )?lower price|budget (ones?|options?|alternatives?)|cheapest)\b").unwrap()
});
/// "something more premium": above what was shown.
pub(super) static PRICIER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(more expensive|pricier|higher[- ]end|more premium|premium (ones?|options?)|top of the line)\b")
        .unwrap()
});

fn parse_amount(num: &str, k: bool) -> Option<f64> {
    let v: f64 = num.replace(',', "").parse().ok()?;
    let v = if k { v * 1000.0 } else { v };
    (v.is_finite() && v >= 0.0).then_some(v)
}

/// The amount of a capture that is either MONEY (groups 1-4) or NUMBER (groups 5-7), starting
/// at group `base`. A bare number followed by a unit ("50 inch") is not a price.
pub(super) fn amount_at(c: &regex::Captures, base: usize) -> Option<f64> {
    for g in [base, base + 2] {
        if let Some(m) = c.get(g) {
            return parse_amount(m.as_str(), c.get(g + 1).is_some());
        }
    }
    let num = c.get(base + 4)?;
    let unit = c.get(base + 6).map(|u| u.as_str().to_lowercase());
    if unit.as_deref().is_some_and(|u| UNITS.contains(&u)) {
        return None;
    }
    parse_amount(num.as_str(), c.get(base + 5).is_some())
}

/// The median of prices (`None` for none).
pub fn median(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}
