//! PII redaction: e-mail addresses, phone numbers, payment card numbers (Luhn-checked), IBANs
//! (mod-97-checked) and street addresses in common English, German, French, Italian, Spanish
//! and Portuguese formats are replaced by a tag such as `[email]` before text is logged, stored
//! or embedded.
//!
//! Detection is by pattern, with checksums where the format has one, so that prices, dates,
//! SKUs, model numbers and barcodes survive. `tests/data/pii_corpus.tsv` holds positive and
//! negative examples; the unit test below reports precision and recall on it.

use std::borrow::Cow;
use std::sync::OnceLock;

use regex::{Captures, Regex};

pub use crate::config::PiiKind;

impl PiiKind {
    /// The tag that replaces a match.
    pub fn tag(self) -> &'static str {
        match self {
            PiiKind::Email => "[email]",
            PiiKind::Phone => "[phone]",
            PiiKind::Card => "[card]",
            PiiKind::Iban => "[iban]",
            PiiKind::Address => "[address]",
        }
    }
}

/// A redactor for a set of kinds. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Redactor {
    kinds: Vec<PiiKind>,
}

impl Default for Redactor {
    fn default() -> Self {
        Self::new(&PiiKind::ALL)
    }
}

struct Patterns {
    email: Regex,
    iban: Regex,
    card: Regex,
    phone: Vec<Regex>,
    address: Vec<Regex>,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        let re = |s: &str| Regex::new(s).expect("PII patterns are valid");
        // Full words, or abbreviations that may end with a period.
        let suffixes = "(?:Street|Avenue|Road|Boulevard|Lane|Drive|Court|Place|Way|Terrace|Parkway|Square|Highway|\
                        Close|Crescent|Gardens|Row|Mews|Loop)\\b|(?:St|Ave|Rd|Blvd|Ln|Dr|Ct|Pl|Pkwy|Sq|Hwy)\\b\\.?";
        Patterns {
            email: re(r"(?i)\b[a-z0-9](?:[a-z0-9._%+\-]*[a-z0-9_%+\-])?@[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?)*\.[a-z]{2,24}\b"),
            iban: re(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b"),
            card: re(r"\b\d(?:[ \-]?\d){12,18}\b"),
            phone: vec![
                // +CC then 6 to 14 more digits in groups.
                re(r"\+\d{1,3}(?:[ .\-]?\(?\d{1,4}\)?){2,6}\b"),
                // North American: (555) 123-4567, 555-123-4567, 555.123.4567.
                re(r"(?:\(\d{3}\)\s?|\b\d{3}[.\-\s])\d{3}[.\-\s]\d{4}\b"),
                // European national format with a trunk 0: 030 1234567, 06 12 34 56 78, 0171/1234567.
                re(r"\b0\d{1,4}(?:[ /\-]\d{2,8}){1,4}\b"),
            ],
            address: vec![
                // 221B Baker Street, 1600 Pennsylvania Ave NW, 12 High St., Apt 4.
                re(&format!(
                    r"\b\d{{1,5}}[A-Za-z]?,?\s+(?:(?:N|S|E|W|North|South|East|West)\.?\s+)?(?:[A-Z][a-z]+\.?\s+){{1,3}}(?:{suffixes})(?:\s+(?:NW|NE|SW|SE))?(?:,?\s*(?:Apt|Apartment|Suite|Unit|Flat|#)\.?\s*\w+)?"
                )),
                // Hauptstraße 5, Bahnhofstr. 12a, Am Ring 3 (German-style: street, then number).
                re(
                    r"\b[A-ZÄÖÜ][a-zäöüß]+(?:straße|strasse|str\.|weg|gasse|allee|platz|ring|damm|ufer|chaussee)\s+\d{1,4}[a-z]?\b",
                ),
                // 12 rue de Rivoli, 5 bis avenue Foch.
                re(
                    r"\b\d{1,4}(?:\s?(?:bis|ter))?,?\s+(?:rue|Rue|avenue|boulevard|bd|place|chemin|allée|allee|impasse|quai)\s+(?:d[eu]s?\s+|de\s+la\s+|l'|d')?[\p{L}'\-]+(?:\s+[\p{Lu}][\p{L}'\-]+){0,3}",
                ),
                // Via Roma 10, Calle Mayor 5, Rua Augusta 100, Piazza di Spagna 3.
                re(
                    r"\b(?:Via|Viale|Corso|Piazza|Calle|Avenida|Avda\.|Paseo|Rua|Travessa|Largo)\s+(?:(?:de|del|di|da|do|dos|della|la)\s+)?(?:[\p{Lu}][\p{L}']+\s+){1,3}\d{1,4}\b",
                ),
            ],
        }
    })
}

impl Redactor {
    /// A redactor for `kinds` (empty: redacts nothing).
    pub fn new(kinds: &[PiiKind]) -> Self {
        let mut kinds = kinds.to_vec();
        // Order matters: e-mails and IBANs first, then cards before phones (digit runs).
        kinds.sort_by_key(|k| PiiKind::ALL.iter().position(|a| a == k));
        kinds.dedup();
        Self { kinds }
    }

    /// The kinds this redactor replaces.
    pub fn kinds(&self) -> &[PiiKind] {
        &self.kinds
    }

    /// `text` with every match replaced by its tag; borrowed when nothing matched.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for kind in &self.kinds {
            let replaced = replace_kind(*kind, &out);
            if let Cow::Owned(s) = replaced {
                out = Cow::Owned(s);
            }
        }
        out
    }

    /// The kinds found in `text` (for reports and tests).
    pub fn find(&self, text: &str) -> Vec<PiiKind> {
        let mut found = Vec::new();
        let mut rest = text.to_string();
        for kind in &self.kinds {
            if let Cow::Owned(s) = replace_kind(*kind, &rest) {
                found.push(*kind);
                rest = s;
            }
        }
        found
    }

    /// Redact every string inside a JSON value (keys are left alone).
    pub fn redact_json(&self, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(s) => {
                if let Cow::Owned(r) = self.redact(s) {
                    *s = r;
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(|v| self.redact_json(v)),
            serde_json::Value::Object(o) => o.values_mut().for_each(|v| self.redact_json(v)),
            _ => {}
        }
    }
}

fn replace_kind<'a>(kind: PiiKind, text: &'a str) -> Cow<'a, str> {
    let p = patterns();
    match kind {
        PiiKind::Email => p.email.replace_all(text, kind.tag()),
        PiiKind::Iban => checked(&p.iban, text, kind, iban_valid),
        PiiKind::Card => checked(&p.card, text, kind, card_valid),
        PiiKind::Phone => {
            let mut out = Cow::Borrowed(text);
            for re in &p.phone {
                if let Cow::Owned(s) = checked(re, &out, kind, phone_plausible) {
                    out = Cow::Owned(s);
                }
            }
            out
        }
        PiiKind::Address => {
            let mut out = Cow::Borrowed(text);
            for re in &p.address {
                if let Cow::Owned(s) = re.replace_all(&out, kind.tag()) {
                    out = Cow::Owned(s);
                }
            }
            out
        }
    }
}

/// Replace the matches that pass `valid`; borrowed when none does.
fn checked<'a>(re: &Regex, text: &'a str, kind: PiiKind, valid: fn(&str) -> bool) -> Cow<'a, str> {
    if !re.is_match(text) {
        return Cow::Borrowed(text);
    }
    let mut any = false;
    let out = re.replace_all(text, |c: &Captures| {
        let m = &c[0];
        if valid(m) {
            any = true;
            kind.tag().to_string()
        } else {
            m.to_string()
        }
    });
    if any { Cow::Owned(out.into_owned()) } else { Cow::Borrowed(text) }
}

/// The Luhn check over 13 to 19 digits (separators allowed), rejecting runs of one digit.
pub fn card_valid(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) || digits.iter().all(|d| *d == digits[0]) {
        return false;
    }
    // Known issuer prefixes only: 2/5 (Mastercard), 3 (Amex, Diners, JCB), 4 (Visa), 6 (Discover,
    // UnionPay, Maestro). EAN-13 barcodes (often starting 0, 7, 8, 9) pass Luhn by chance.
    if !matches!(digits[0], 2..=6) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// The ISO 13616 mod-97 check.
pub fn iban_valid(s: &str) -> bool {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let rearranged = compact[4..].chars().chain(compact[..4].chars());
    let mut rem: u32 = 0;
    for c in rearranged {
        let v = match c {
            '0'..='9' => c as u32 - '0' as u32,
            'A'..='Z' => c as u32 - 'A' as u32 + 10,
            _ => return false,
        };
        rem = if v >= 10 { (rem * 100 + v) % 97 } else { (rem * 10 + v) % 97 };
    }
    rem == 1
}

/// 7 to 15 digits, not all the same.
fn phone_plausible(s: &str) -> bool {
    let digits: Vec<char> = s.chars().filter(char::is_ascii_digit).collect();
    (7..=15).contains(&digits.len()) && !digits.iter().all(|d| *d == digits[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums() {
        assert!(card_valid("4111 1111 1111 1111"));
        assert!(card_valid("5500-0000-0000-0004"));
        assert!(!card_valid("4111 1111 1111 1112"));
        assert!(!card_valid("9783161484193"), "an EAN-13 barcode that passes Luhn by chance is not a card");
        assert!(iban_valid("DE89 3704 0044 0532 0130 00"));
        assert!(iban_valid("GB82WEST12345698765432"));
        assert!(!iban_valid("DE89 3704 0044 0532 0130 01"));
    }

    #[test]
    fn redacts_in_place_and_keeps_the_rest() {
        let r = Redactor::default();
        let text = "Mail jane.doe@example.co.uk or call +44 20 7946 0958, card 4111 1111 1111 1111, \
                    IBAN DE89 3704 0044 0532 0130 00, ship to 221B Baker Street. Budget $149.99 for WH-1000XM5.";
        let out = r.redact(text);
        assert_eq!(
            out,
            "Mail [email] or call [phone], card [card], IBAN [iban], ship to [address]. Budget $149.99 for WH-1000XM5."
        );
        assert!(matches!(r.redact("headphones under $100"), Cow::Borrowed(_)));
        assert_eq!(Redactor::new(&[]).redact(text), text);
        assert_eq!(Redactor::new(&[PiiKind::Email]).redact("a@b.io 4111111111111111"), "[email] 4111111111111111");
    }

    /// Precision and recall on the corpus of positive and negative examples.
    #[test]
    fn corpus_precision_and_recall() {
        let corpus =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/pii_corpus.tsv")).unwrap();
        let r = Redactor::default();
        let (mut tp, mut fp, mut fn_, mut tn) = (0, 0, 0, 0);
        let mut misses = Vec::new();
        for line in corpus.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
            let (label, text) = line.split_once('\t').expect("label<TAB>text");
            let found = r.find(text);
            let expected: Option<PiiKind> = match label {
                "none" => None,
                k => Some(serde_json::from_value(serde_json::json!(k)).unwrap_or_else(|_| panic!("bad label {k}"))),
            };
            match expected {
                Some(k) if found.contains(&k) => tp += 1,
                Some(_) => {
                    fn_ += 1;
                    misses.push(format!("missed {label}: {text}"));
                }
                None if found.is_empty() => tn += 1,
                None => {
                    fp += 1;
                    misses.push(format!("false {found:?}: {text} -> {}", r.redact(text)));
                }
            }
        }
        let precision = tp as f64 / (tp + fp) as f64;
        let recall = tp as f64 / (tp + fn_) as f64;
        println!("PII corpus: {tp} true positives, {fn_} missed, {fp} false positives, {tn} true negatives");
        println!("precision {precision:.3}, recall {recall:.3}");
        for m in &misses {
            println!("  {m}");
        }
        assert!(tp + fn_ >= 60 && fp + tn >= 60, "the corpus needs enough examples of both");
        assert!(precision >= 0.95, "precision {precision:.3}: {misses:#?}");
        assert!(recall >= 0.90, "recall {recall:.3}: {misses:#?}");
    }
}
