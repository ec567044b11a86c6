//! Understanding a shopper's turn without the model: intent (shopping, small talk, out of scope,
//! unsafe), hard constraints (price bounds, categories, brands, brands to avoid) and the search
//! query, all read against the live catalog's own vocabulary ([`Vocabulary`]).
//!
//! Rules, not the chat model, decide what is a constraint: a 135M-parameter model cannot be
//! trusted to turn "under $150" into a filter, and a filter that is wrong shows wrong products.
//! The same rules run over every user turn in order, so a follow-up ("cheaper ones", "what about
//! Sony?") narrows the previous turn's state, whether the conversation comes from a stored
//! session or from the client's full `messages`.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::catalog::{Product, ProductFilter};

/// What a turn asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// Looking for products.
    Shopping,
    /// A greeting or thanks.
    SmallTalk,
    /// Not about shopping here (poems, news, homework, ...): refused without retrieval.
    OutOfScope,
    /// Harmful: refused without retrieval.
    Unsafe,
}

/// The hard constraints of a conversation so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Constraints {
    /// Categories (any of).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// Brands (any of).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub brands: Vec<String>,
    /// Brands the shopper does not want.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_brands: Vec<String>,
    /// Lowest price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_min: Option<f64>,
    /// Highest price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_max: Option<f64>,
}

impl Constraints {
    /// The product filter: these constraints, in stock, and the client's own filter on top.
    pub fn to_filter(&self, client: Option<&ProductFilter>) -> ProductFilter {
        let mut f = client.cloned().unwrap_or_default();
        let nonempty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
        // The client's filter is a hard bound too: its categories and brands replace the
        // conversation's, and of two price bounds the narrower wins.
        if f.categories.is_none() {
            f.categories = nonempty(&self.categories);
        }
        if f.brands.is_none() {
            f.brands = nonempty(&self.brands);
        }
        let mut exclude = f.exclude_brands.take().unwrap_or_default();
        exclude.extend(self.exclude_brands.iter().cloned());
        f.exclude_brands = nonempty(&exclude);
        f.price_min = max_opt(f.price_min, self.price_min);
        f.price_max = min_opt(f.price_max, self.price_max);
        f.in_stock = Some(true);
        f
    }

    /// Whether nothing is constrained.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn min_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The conversation's state after a user turn.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    /// The search query (the rewritten request).
    pub query: String,
    /// Hard constraints.
    pub constraints: Constraints,
}

/// A price relative to what was shown before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relative {
    /// "cheaper ones".
    Cheaper,
    /// "something more premium".
    Pricier,
}

/// What one turn says, before it is merged with the state.
#[derive(Debug, Clone, Default)]
pub struct TurnReading {
    /// Categories named.
    pub categories: Vec<String>,
    /// Brands named.
    pub brands: Vec<String>,
    /// Brands to avoid.
    pub exclude_brands: Vec<String>,
    /// Price bounds named.
    pub price_min: Option<f64>,
    /// Price bounds named.
    pub price_max: Option<f64>,
    /// A price relative to the previous results.
    pub relative: Option<Relative>,
    /// The turn without price phrases and filler.
    pub query: String,
    /// Whether the turn refers back ("ones", "those", "it", "another").
    pub refers_back: bool,
}

/// A catalog category and its words.
#[derive(Debug, Clone)]
struct CategoryWords {
    name: String,
    words: Vec<String>,
}

/// A catalog brand.
#[derive(Debug, Clone)]
struct Brand {
    name: String,
    lower: String,
    /// The brand is also an ordinary word in the catalog's text ("Ring", "Blink"): it counts
    /// only when written with a capital.
    needs_case: bool,
}

/// The catalog's words: categories, brands, and which products each title word belongs to.
#[derive(Debug, Default)]
pub struct Vocabulary {
    categories: Vec<CategoryWords>,
    /// Category word -> categories it names (by index).
    category_words: HashMap<String, Vec<usize>>,
    /// Title words that (nearly) always mean one category.
    learned: HashMap<String, usize>,
    /// Title word -> (category, share of the products with the word that are in it).
    shares: HashMap<String, Vec<(usize, f64)>>,
    brands: Vec<Brand>,
    /// Title word -> products (indices into `products`).
    title_index: HashMap<String, Vec<u32>>,
    /// Title words of one product line: nearly all their products share a brand ("xbox",
    /// "galaxy", "macbook").
    line_words: HashSet<String>,
    /// Product ids and brands.
    products: Vec<(String, Option<String>)>,
    ids: HashMap<String, u32>,
}

/// Words that carry no product meaning.
const STOP: &[&str] = &[
    "a",
    "an",
    "the",
    "and",
    "or",
    "for",
    "with",
    "of",
    "to",
    "in",
    "on",
    "at",
    "by",
    "from",
    "my",
    "me",
    "i",
    "im",
    "i'm",
    "you",
    "your",
    "is",
    "are",
    "it",
    "its",
    "that",
    "this",
    "these",
    "those",
    "be",
    "can",
    "could",
    "would",
    "should",
    "do",
    "does",
    "what",
    "which",
    "any",
    "some",
    "something",
    "one",
    "ones",
    "show",
    "find",
    "get",
    "want",
    "need",
    "looking",
    "look",
    "like",
    "recommend",
    "suggest",
    "please",
    "good",
    "best",
    "great",
    "nice",
    "new",
    "buy",
    "about",
    "have",
    "has",
    "there",
    "than",
    "more",
    "less",
    "much",
    "very",
    "really",
    "also",
    "just",
    "but",
    "not",
    "no",
    "other",
    "another",
    "else",
    "instead",
    "under",
    "over",
    "below",
    "above",
    "between",
    "around",
    "cheap",
    "cheaper",
    "cheapest",
    "expensive",
    "price",
    "prices",
    "budget",
    "dollar",
    "dollars",
    "usd",
    "bucks",
    "maybe",
    "thing",
    "things",
    "them",
    "they",
    "we",
    "us",
    "our",
    "how",
    "who",
    "why",
    "when",
    "where",
    "will",
    "help",
    "gift",
    "present",
    "someone",
    "too",
    "so",
    "if",
    "as",
    "all",
    "only",
    "&",
    "two",
    "way",
];

/// Words that say "shopping" even when no product is named.
const SHOPPING: &[&str] = &[
    "buy",
    "recommend",
    "suggest",
    "looking",
    "need",
    "want",
    "shopping",
    "gift",
    "present",
    "cheaper",
    "cheapest",
    "price",
    "budget",
    "deal",
    "compare",
    "option",
    "options",
    "alternative",
    "alternatives",
    "model",
    "brand",
    "store",
    "shop",
    "product",
    "products",
    "stock",
    "affordable",
    "expensive",
    "premium",
    "similar",
    "ones",
];

/// Words for categories that shoppers use but catalogs rarely do.
const SYNONYMS: &[(&str, &str)] = &[
    ("earphone", "earbud"),
    ("headset", "headphone"),
    ("earpod", "earbud"),
    ("airpod", "earbud"),
    ("television", "tv"),
    ("telly", "tv"),
    ("smartwatch", "watch"),
    ("notebook", "laptop"),
    ("computer", "computer"),
    ("desktop", "desktop"),
    ("tablet", "tablet"),
    ("ipad", "ipad"),
    ("cellphone", "phone"),
    ("smartphone", "phone"),
    ("speaker", "speaker"),
    ("wifi", "wifi"),
    ("modem", "modem"),
    ("console", "console"),
    ("camcorder", "camcorder"),
    ("ssd", "ssd"),
    ("drive", "drive"),
    ("battery", "battery"),
    ("display", "monitor"),
    ("screen", "monitor"),
];

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

/// A money amount: `$1,299.99`, `$1.2k`, `150 dollars`, `150 usd`, `€99`.
const MONEY: &str = r"(?:(?:\$|us\$|usd\s?|€|eur\s?|£|gbp\s?)\s?(\d[\d,]*(?:\.\d+)?)\s?(k\b)?|(\d[\d,]*(?:\.\d+)?)\s?(k\b)?\s?(?:dollars?|usd|bucks|euros?|eur|pounds|gbp|\$|€))";
/// A bare number (a price when a price word comes before it).
const NUMBER: &str = r"(\d[\d,]*(?:\.\d+)?)\s?(k\b)?(?:\s?([a-z\x22']+))?";

static RANGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"(?i)(?:between|from)\s+(?:{MONEY}|{NUMBER})\s*(?:and|to|-)\s*(?:{MONEY}|{NUMBER})")).unwrap()
});
static DASH_RANGE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"(?i){MONEY}\s*(?:-|to)\s*{MONEY}")).unwrap());
static MAX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?i)(?:under|below|less than|cheaper than|at most|no more than|not more than|not over|max(?:imum)?|up to|within|budget(?:\s+(?:of|is))?|spend(?:ing)?(?:\s+(?:up to|at most))?|<=?)\s*(?:of\s+)?(?:{MONEY}|{NUMBER})"
    ))
    .unwrap()
});
static MIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"(?i)(?:over|above|more than|at least|min(?:imum)?|starting at|>=?)\s*(?:{MONEY}|{NUMBER})"))
        .unwrap()
});
static AROUND: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"(?i)(?:around|about|approximately|roughly|~)\s*(?:{MONEY}|{NUMBER})")).unwrap()
});
static BARE_MONEY: LazyLock<Regex> = LazyLock::new(|| Regex::new(&format!(r"(?i){MONEY}")).unwrap());
static CHEAPER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(cheaper|less expensive|lower[- ]priced?|more affordable|(a )?lower price|budget (ones?|options?|alternatives?)|cheapest)\b").unwrap()
});
static PRICIER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(more expensive|pricier|higher[- ]end|more premium|premium (ones?|options?)|top of the line)\b")
        .unwrap()
});
static NOT_BRAND: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:not|no|except|other than|besides|without|anything but|avoid)\s+(?:an?\s+)?$").unwrap()
});
static REFERS_BACK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(ones?|those|these|them|it|that|another|others|instead|same|similar|what about|how about|any other|else)\b").unwrap()
});
static FILLER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(i'?m|i am|we'?re|we are)\s+(looking|searching|shopping)\s+for\b|\b(can|could|would)\s+you\s+(please\s+)?(show|find|recommend|suggest|give)(\s+me)?\b|\b(show|find|recommend|suggest|give)\s+me\b|\bi\s+(want|need|would like)(\s+to\s+buy)?\b|\bdo\s+you\s+(have|sell|carry)\b|\bplease\b|\bthanks?\b|\bwhat about\b|\bhow about\b").unwrap()
});

/// Unit words after a number that make it a size, not a price.
const UNITS: &[&str] = &[
    "inch", "inches", "in", "\"", "gb", "tb", "mb", "hz", "w", "watt", "watts", "mm", "cm", "m", "mp", "ft", "lb",
    "lbs", "hour", "hours", "h", "mah", "x", "k", "p", "fps", "core", "cores", "pack", "count", "ct", "pcs", "piece",
    "pieces", "year", "years", "month", "months", "%", "ghz", "'",
];

/// Lowercase words of a text, singular (a light stemmer: "headphones" -> "headphone").
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .map(|w| w.trim_matches('\'').to_lowercase())
        .filter(|w| !w.is_empty())
        .map(|w| singular(&w))
        .collect()
}

/// Byte offsets where `needle` stands in `haystack` as a whole word (not inside another word).
pub fn word_positions<'a>(haystack: &'a str, needle: &'a str) -> impl Iterator<Item = usize> + 'a {
    haystack.match_indices(needle).map(|(at, _)| at).filter(move |&at| {
        let end = at + needle.len();
        !needle.is_empty()
            && !haystack[..at].chars().next_back().is_some_and(char::is_alphanumeric)
            && !haystack[end..].chars().next().is_some_and(char::is_alphanumeric)
    })
}

/// A light English singular.
pub fn singular(w: &str) -> String {
    if w.chars().any(|c| c.is_ascii_digit()) {
        return w.to_string();
    }
    if w.len() <= 3 {
        // "tvs", "pcs"; not "gps", "bus", "has".
        let keep = ["gps", "bus", "has", "was", "yes", "its", "his", "ups", "abs", "us", "is", "as", "ss"];
        return match w.strip_suffix('s') {
            Some(stem) if w.len() == 3 && !keep.contains(&w) => stem.to_string(),
            _ => w.to_string(),
        };
    }
    for (suffix, with) in [("ies", "y"), ("sses", "ss"), ("ches", "ch"), ("shes", "sh"), ("xes", "x")] {
        if let Some(stem) = w.strip_suffix(suffix) {
            return format!("{stem}{with}");
        }
    }
    if w.ends_with('s') && !w.ends_with("ss") && !w.ends_with("us") && !w.ends_with("is") {
        return w[..w.len() - 1].to_string();
    }
    w.to_string()
}

/// Whether a word carries no product meaning.
pub fn is_stop(w: &str) -> bool {
    STOP.contains(&w)
}

fn parse_amount(num: &str, k: bool) -> Option<f64> {
    let v: f64 = num.replace(',', "").parse().ok()?;
    let v = if k { v * 1000.0 } else { v };
    (v.is_finite() && v >= 0.0).then_some(v)
}

/// The amount of a capture that is either MONEY (groups 1-4) or NUMBER (groups 5-7), starting
/// at group `base`. A bare number followed by a unit ("50 inch") is not a price.
fn amount_at(c: &regex::Captures, base: usize) -> Option<f64> {
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

impl Vocabulary {
    /// Build the vocabulary of a catalog.
    pub fn build<'a>(products: impl IntoIterator<Item = &'a Product>) -> Self {
        let mut v = Vocabulary::default();
        let mut category_index: HashMap<String, usize> = HashMap::new();
        let mut brand_names: HashMap<String, String> = HashMap::new();
        let mut lowercase_words: HashSet<String> = HashSet::new();
        // word -> per-category product counts, for learned category words
        let mut word_categories: HashMap<String, HashMap<usize, u32>> = HashMap::new();
        let mut word_df: HashMap<String, u32> = HashMap::new();
        for p in products {
            let n = v.products.len() as u32;
            v.ids.insert(p.id.to_lowercase(), n);
            v.products.push((p.id.clone(), p.brand.clone()));
            let cats: Vec<usize> = p
                .categories
                .iter()
                .map(|c| {
                    let next = category_index.len();
                    *category_index.entry(c.clone()).or_insert_with(|| {
                        v.categories.push(CategoryWords {
                            name: c.clone(),
                            words: words(c).into_iter().filter(|w| !is_stop(w)).collect(),
                        });
                        next
                    })
                })
                .collect();
            if let Some(b) = &p.brand {
                brand_names.entry(b.to_lowercase()).or_insert_with(|| b.clone());
            }
            for text in [&p.title, &p.description] {
                for raw in text.split(|c: char| !c.is_alphanumeric()) {
                    if !raw.is_empty() && raw.chars().all(|c| c.is_lowercase()) {
                        lowercase_words.insert(raw.to_string());
                    }
                }
            }
            let mut seen = HashSet::new();
            for w in words(&p.title) {
                if is_stop(&w) || w.chars().all(|c| c.is_ascii_digit()) || !seen.insert(w.clone()) {
                    continue;
                }
                v.title_index.entry(w.clone()).or_default().push(n);
                *word_df.entry(w.clone()).or_default() += 1;
                let per = word_categories.entry(w).or_default();
                for &c in &cats {
                    *per.entry(c).or_default() += 1;
                }
            }
        }
        for (i, c) in v.categories.iter().enumerate() {
            for w in &c.words {
                v.category_words.entry(w.clone()).or_default().push(i);
            }
        }
        for (lower, name) in brand_names {
            let single_word = !lower.contains(char::is_whitespace);
            let needs_case = single_word && lowercase_words.contains(&lower);
            v.brands.push(Brand { name, lower, needs_case });
        }
        // Longest first, so "Bowers & Wilkins" wins over a shorter brand inside it.
        v.brands.sort_by(|a, b| b.lower.len().cmp(&a.lower.len()).then(a.lower.cmp(&b.lower)));
        let brand_words: HashSet<String> = v.brands.iter().flat_map(|b| words(&b.lower)).collect();
        for (w, products) in &v.title_index {
            if products.len() < 2 || v.category_words.contains_key(w) || brand_words.contains(w) {
                continue;
            }
            let mut per_brand: HashMap<&str, usize> = HashMap::new();
            for &p in products {
                if let Some(b) = &v.products[p as usize].1 {
                    *per_brand.entry(b.as_str()).or_default() += 1;
                }
            }
            if per_brand.values().max().is_some_and(|&n| n as f64 >= 0.9 * products.len() as f64) {
                v.line_words.insert(w.clone());
            }
        }
        for (w, per) in word_categories {
            let df = word_df.get(&w).copied().unwrap_or(0);
            if df >= 1 {
                let shares = per.iter().map(|(&c, &n)| (c, f64::from(n) / f64::from(df))).collect();
                v.shares.insert(w.clone(), shares);
            }
            if df < 3 || v.category_words.contains_key(&w) || brand_words.contains(&w) {
                continue;
            }
            if let Some((&c, &n)) = per.iter().max_by_key(|&(c, n)| (*n, std::cmp::Reverse(*c)))
                && f64::from(n) >= 0.8 * f64::from(df)
            {
                v.learned.insert(w, c);
            }
        }
        v
    }

    /// Categories a text names, best matches only. A category word counts 1/(number of
    /// categories it names); a title word that nearly always means one category counts 1/2.
    /// Among the categories named so, the share of products whose titles have the words breaks
    /// ties ("smart tv": TVs, not Smart Home); categories within 0.3 of the best are kept
    /// ("laptop": laptops and gaming laptops).
    pub fn categories_in(&self, text: &str) -> Vec<String> {
        let mut score = vec![0.0f64; self.categories.len()];
        let mut bonus = vec![0.0f64; self.categories.len()];
        let mut seen = HashSet::new();
        for w in words(text) {
            let w = SYNONYMS.iter().find(|(from, _)| *from == w).map(|(_, to)| to.to_string()).unwrap_or(w);
            if is_stop(&w) || !seen.insert(w.clone()) {
                continue;
            }
            let shares = self.shares.get(&w).map(Vec::as_slice).unwrap_or(&[]);
            let titles = self.title_index.get(&w).map_or(0, Vec::len);
            if let Some(cats) = self.category_words.get(&w) {
                for &c in cats {
                    // A category word that product titles use for other things ("video" in
                    // "video doorbell") is a modifier there: it counts a quarter.
                    let share = shares.iter().find(|(x, _)| *x == c).map_or(0.0, |(_, s)| *s);
                    let damp = if titles >= 3 && share < 0.1 { 0.25 } else { 1.0 };
                    score[c] += damp / cats.len() as f64;
                }
            } else if let Some(&c) = self.learned.get(&w) {
                score[c] += 0.5;
            }
            for &(c, share) in shares {
                bonus[c] += 0.25 * share;
            }
        }
        for (s, b) in score.iter_mut().zip(&bonus) {
            if *s > 0.0 {
                *s += b;
            }
        }
        let best = score.iter().copied().fold(0.0f64, f64::max);
        if best < 0.3 {
            return vec![]; // too weak to be a hard filter: the search alone decides
        }
        let mut out: Vec<String> = score
            .iter()
            .enumerate()
            .filter(|&(_, s)| *s > 0.0 && *s >= best - 0.3)
            .map(|(i, _)| self.categories[i].name.clone())
            .collect();
        out.sort();
        out
    }

    /// Brands a text names: `(named, avoided)`.
    pub fn brands_in(&self, text: &str) -> (Vec<String>, Vec<String>) {
        let lower = text.to_lowercase();
        let mut taken = vec![false; lower.len()];
        let (mut named, mut avoided) = (Vec::new(), Vec::new());
        for b in &self.brands {
            for at in word_positions(&lower, &b.lower).collect::<Vec<_>>() {
                let end = at + b.lower.len();
                if taken[at..end].iter().any(|t| *t) {
                    continue;
                }
                // (Lowercasing can change byte lengths: a misaligned offset counts as not capitalised.)
                if b.needs_case && !text.get(at..end).is_some_and(|t| t.starts_with(char::is_uppercase)) {
                    continue;
                }
                taken[at..end].iter_mut().for_each(|t| *t = true);
                let list = if NOT_BRAND.is_match(&lower[..at]) { &mut avoided } else { &mut named };
                if !list.contains(&b.name) {
                    list.push(b.name.clone());
                }
            }
        }
        (named, avoided)
    }

    /// Whether a word is a title word of some product.
    pub fn is_title_word(&self, w: &str) -> bool {
        self.title_index.contains_key(w)
    }

    /// Whether a title word names one brand's product line.
    pub fn is_line_word(&self, w: &str) -> bool {
        self.line_words.contains(w)
    }

    /// The products a title word belongs to.
    pub fn products_with(&self, w: &str) -> &[u32] {
        self.title_index.get(w).map(Vec::as_slice).unwrap_or(&[])
    }

    /// A product's id and brand by index.
    pub fn product(&self, i: u32) -> (&str, Option<&str>) {
        let (id, brand) = &self.products[i as usize];
        (id, brand.as_deref())
    }

    /// The index of a product id (case-insensitive).
    pub fn product_index(&self, id: &str) -> Option<u32> {
        self.ids.get(&id.to_lowercase()).copied()
    }

    /// Brand names as written in the catalog, with whether each needs a capital.
    pub fn brands(&self) -> impl Iterator<Item = (&str, &str, bool)> {
        self.brands.iter().map(|b| (b.name.as_str(), b.lower.as_str(), b.needs_case))
    }

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
            r.relative = Some(Relative::Cheaper);
        } else if PRICIER.is_match(text) && r.price_min.is_none() {
            r.relative = Some(Relative::Pricier);
        }
        cut(&CHEAPER, &mut stripped);
        cut(&PRICIER, &mut stripped);
        r.categories = self.categories_in(&stripped);
        let (named, avoided) = self.brands_in(text);
        r.brands = named;
        r.exclude_brands = avoided;
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

    /// Merge a turn into the state. `shown` are the prices of the products shown last (for
    /// "cheaper ones").
    pub fn merge(&self, state: &State, turn: &TurnReading, shown: &[f64]) -> State {
        let had_topic = !state.query.is_empty() || !state.constraints.is_empty();
        let new_topic = !turn.categories.is_empty()
            && !state.constraints.categories.is_empty()
            && turn.categories.iter().all(|c| !state.constraints.categories.contains(c));
        let mut c = if new_topic || !had_topic { Constraints::default() } else { state.constraints.clone() };
        if !turn.categories.is_empty() {
            c.categories = turn.categories.clone();
        }
        if !turn.brands.is_empty() {
            c.brands = turn.brands.clone();
            c.exclude_brands.retain(|b| !turn.brands.contains(b));
        }
        if !turn.exclude_brands.is_empty() {
            c.brands.retain(|b| !turn.exclude_brands.contains(b));
            for b in &turn.exclude_brands {
                if !c.exclude_brands.contains(b) {
                    c.exclude_brands.push(b.clone());
                }
            }
        }
        if turn.price_min.is_some() || turn.price_max.is_some() {
            c.price_min = turn.price_min;
            c.price_max = turn.price_max;
        }
        match (turn.relative, median(shown)) {
            (Some(Relative::Cheaper), Some(m)) => {
                c.price_max = Some(((m - 0.01) * 100.0).round() / 100.0);
                c.price_min = c.price_min.filter(|lo| *lo < m);
            }
            (Some(Relative::Pricier), Some(m)) => {
                c.price_min = Some(((m + 0.01) * 100.0).round() / 100.0);
                c.price_max = c.price_max.filter(|hi| *hi > m);
            }
            _ => {}
        }
        // A turn that names its own product starts a new query; one that only adjusts
        // ("cheaper ones", "what about Sony?") keeps the previous one.
        let own_product = !turn.categories.is_empty()
            || words(&turn.query).iter().any(|w| !is_stop(w) && self.is_title_word(w) && !self.is_brand_word(w));
        let query = if new_topic || !had_topic || (own_product && !turn.refers_back) || state.query.is_empty() {
            turn.query.clone()
        } else {
            let mut q = state.query.clone();
            let have: HashSet<String> = words(&q).into_iter().collect();
            for w in turn.query.split_whitespace() {
                if !have.contains(&singular(&w.to_lowercase())) && !self.is_brand_word(&w.to_lowercase()) {
                    q.push(' ');
                    q.push_str(w);
                }
            }
            q
        };
        let query = if query.trim().is_empty() {
            // Nothing but constraints ("under $50"): search by what they name.
            c.categories.iter().chain(&c.brands).cloned().collect::<Vec<_>>().join(" ")
        } else {
            query
        };
        State { query, constraints: c }
    }

    /// Whether a (lowercase) word is a whole brand name.
    pub fn is_brand_word(&self, w: &str) -> bool {
        self.brands.iter().any(|b| b.lower == w)
    }
}

static NOT_BRAND_PHRASE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(not|no|except|other than|besides|without|anything but|avoid)\s+(an?\s+)?\S+").unwrap()
});

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

#[cfg(test)]
mod tests {
    use super::*;

    fn product(id: &str, title: &str, brand: &str, category: &str, price: f64) -> Product {
        Product {
            id: id.into(),
            title: title.into(),
            description: "a ring light and a blink of an eye".into(),
            brand: Some(brand.into()),
            categories: vec![category.into()],
            tags: vec![],
            price: Some(price),
            currency: "USD".into(),
            in_stock: true,
            stock_qty: None,
            attributes: Default::default(),
            url: None,
            image_url: None,
            hidden: false,
            updated_at: chrono::Utc::now(),
        }
    }

    fn vocab() -> Vocabulary {
        let ps = vec![
            product("h1", "Beats Flex Wireless Earphones", "Beats", "Headphones & Earbuds", 49.99),
            product("h2", "Sony WH1000XM5 Wireless Headphones", "Sony", "Headphones & Earbuds", 399.99),
            product("l1", "MacBook Air 13-inch Laptop", "Apple", "Laptops & Notebook Computers", 999.0),
            product("l2", "MacBook Pro 14-inch Laptop", "Apple", "Laptops & Notebook Computers", 1999.0),
            product("l3", "MacBook Pro 16-inch Laptop", "Apple", "Laptops & Notebook Computers", 2499.0),
            product("g1", "MSI Katana Gaming Laptop", "MSI", "Gaming Laptops & Notebook Computers", 1099.0),
            product("d1", "Ring Video Doorbell", "Ring", "Smart Home & Safety", 99.0),
            product("t1", "Samsung 65-inch 4K Smart TV", "Samsung", "TVs", 799.0),
            product("b1", "Bowers & Wilkins Px7 S2 Headphones", "Bowers & Wilkins", "Headphones & Earbuds", 299.0),
        ];
        Vocabulary::build(&ps)
    }

    #[test]
    fn prices() {
        let v = vocab();
        let r = v.read("headphones under $100");
        assert_eq!((r.price_min, r.price_max), (None, Some(100.0)));
        assert_eq!(r.categories, vec!["Headphones & Earbuds"]);
        let r = v.read("a laptop between $800 and $1,200 please");
        assert_eq!((r.price_min, r.price_max), (Some(800.0), Some(1200.0)));
        let r = v.read("TV over 500 dollars");
        assert_eq!((r.price_min, r.price_max), (Some(500.0), None));
        let r = v.read("a TV under 50 inches");
        assert_eq!((r.price_min, r.price_max), (None, None), "a size is not a price");
        let r = v.read("laptop, budget of $1.5k");
        assert_eq!(r.price_max, Some(1500.0));
        let r = v.read("headphones around $300");
        assert_eq!((r.price_min, r.price_max), (Some(240.0), Some(360.0)));
        let r = v.read("$50-$150 earbuds");
        assert_eq!((r.price_min, r.price_max), (Some(50.0), Some(150.0)));
    }

    #[test]
    fn categories_and_brands() {
        let v = vocab();
        assert_eq!(v.categories_in("a gaming laptop"), vec!["Gaming Laptops & Notebook Computers"]);
        assert_eq!(v.categories_in("smart tv for the living room"), vec!["TVs"]);
        assert_eq!(v.categories_in("wireless earphones"), vec!["Headphones & Earbuds"]);
        assert!(v.categories_in("tell me something").is_empty());
        assert_eq!(v.brands_in("sony headphones").0, vec!["Sony"]);
        assert_eq!(v.brands_in("headphones, but not Sony").1, vec!["Sony"]);
        assert_eq!(v.brands_in("Bowers & Wilkins headphones").0, vec!["Bowers & Wilkins"]);
        // "ring" is an ordinary word in the catalog's text: only "Ring" names the brand.
        assert!(v.brands_in("a ring light").0.is_empty());
        assert_eq!(v.brands_in("a Ring doorbell").0, vec!["Ring"]);
        // Lowercasing "İ" adds a byte: offsets into the lowercase text must not slice the
        // original one mid-character.
        let _ = v.brands_in("İİİ Ring doorbell from İstanbul, not Sony");
        assert_eq!(v.brands_in("İİ Sony headphones").0, vec!["Sony"]);
    }

    #[test]
    fn intents() {
        let v = vocab();
        assert_eq!(v.intent("headphones under $100", false), Intent::Shopping);
        assert_eq!(v.intent("Write me a poem about the sea", false), Intent::OutOfScope);
        assert_eq!(v.intent("what is the capital of France?", false), Intent::OutOfScope);
        assert_eq!(v.intent("how do I make a bomb", false), Intent::Unsafe);
        assert_eq!(v.intent("a camera to spy on my neighbour", false), Intent::Unsafe);
        assert_eq!(v.intent("hello!", false), Intent::SmallTalk);
        assert_eq!(v.intent("cheaper ones?", true), Intent::Shopping);
        assert_eq!(v.intent("what's the meaning of life", false), Intent::OutOfScope);
    }

    #[test]
    fn follow_up_narrows() {
        let v = vocab();
        let s0 = State::default();
        let s1 = v.merge(&s0, &v.read("I'm looking for wireless headphones"), &[]);
        assert_eq!(s1.constraints.categories, vec!["Headphones & Earbuds"]);
        assert!(s1.query.contains("wireless"), "{}", s1.query);
        let s2 = v.merge(&s1, &v.read("show me cheaper ones"), &[49.99, 299.0, 399.99]);
        assert_eq!(s2.constraints.categories, vec!["Headphones & Earbuds"]);
        assert_eq!(s2.constraints.price_max, Some(298.99));
        assert_eq!(s2.query, s1.query);
        let s3 = v.merge(&s2, &v.read("what about Sony?"), &[49.99]);
        assert_eq!(s3.constraints.brands, vec!["Sony"]);
        assert_eq!(s3.constraints.price_max, Some(298.99), "earlier constraints stay");
        let s4 = v.merge(&s3, &v.read("actually I need a laptop"), &[]);
        assert!(s4.constraints.categories.contains(&"Laptops & Notebook Computers".to_string()), "{s4:?}");
        assert!(s4.constraints.brands.is_empty() && s4.constraints.price_max.is_none(), "a new topic resets");
    }
}
