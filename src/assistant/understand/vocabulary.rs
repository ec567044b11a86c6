//! The catalog's vocabulary ([`Vocabulary`]): its categories and their words, its brands, the
//! title words that (nearly) always mean one category or one brand's product line, and which
//! products each title word belongs to. Built from the whole catalog and reused for a while (see
//! `Assistant::vocabulary`).
//!
//! Not the reading of a turn (`intent`, `turn` and `state` add those methods to [`Vocabulary`])
//! and not a search index: retrieval is the catalog's hybrid search.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use super::text::{word_positions, words};
use super::word_lists::{SYNONYMS, is_stop};
use crate::catalog::Product;
use crate::catalog::search::is_attribute_name;

/// A catalog category and its words.
#[derive(Debug, Clone)]
struct CategoryWords {
    name: String,
    words: Vec<String>,
    /// Products in it.
    products: u32,
}

/// A catalog brand.
#[derive(Debug, Clone)]
struct CatalogBrand {
    name: String,
    lower: String,
    /// The brand is also an ordinary word in the catalog's text ("Ring", "Blink"): it counts
    /// only when written with a capital.
    needs_case: bool,
}

/// An attribute the catalog's products share, with its values (only attributes with few
/// distinct short text values: colour, size, material, "indoor"/"outdoor"; not free text).
#[derive(Debug, Clone)]
struct AttributeValues {
    name: String,
    /// Lowercase value -> the spellings the catalog uses for it, and how many products hold it.
    values: Vec<(String, Vec<String>, u32)>,
}

/// The catalog's words: categories, brands, and which products each title word belongs to.
#[derive(Debug, Default)]
pub struct Vocabulary {
    /// Attributes with few text values, which a turn may constrain.
    attributes: Vec<AttributeValues>,
    categories: Vec<CategoryWords>,
    /// Category word -> categories it names (by index).
    category_words: HashMap<String, Vec<usize>>,
    /// Title words that (nearly) always mean one category.
    learned: HashMap<String, usize>,
    /// Title word -> (category, share of the products with the word that are in it).
    shares: HashMap<String, Vec<(usize, f64)>>,
    brands: Vec<CatalogBrand>,
    /// Title word -> products (indices into `products`).
    title_index: HashMap<String, Vec<u32>>,
    /// Title words of one product line: nearly all their products share a brand ("xbox",
    /// "galaxy", "macbook").
    line_words: HashSet<String>,
    /// Product ids and brands.
    products: Vec<(String, Option<String>)>,
    ids: HashMap<String, u32>,
}

/// A negation just before a brand ("not", "other than"): the brand is to be avoided.
static NOT_BRAND: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:not|no|except|other than|besides|without|anything but|avoid)\s+(?:an?\s+)?$").unwrap()
});

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
        // attribute -> lowercase value -> (spellings, products)
        let mut attribute_values: HashMap<String, HashMap<String, (Vec<String>, u32)>> = HashMap::new();
        for p in products {
            for (name, value) in &p.attributes {
                if !is_attribute_name(name) {
                    continue;
                }
                let texts: Vec<&str> = match value {
                    Value::String(s) => vec![s.as_str()],
                    Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
                    _ => vec![],
                };
                for t in texts {
                    let lower = t.trim().to_lowercase();
                    let e = attribute_values.entry(name.clone()).or_default().entry(lower).or_default();
                    if !e.0.iter().any(|x| x == t) {
                        e.0.push(t.to_string());
                    }
                    e.1 += 1;
                }
            }
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
                            products: 0,
                        });
                        next
                    })
                })
                .collect();
            for &c in &cats {
                v.categories[c].products += 1;
            }
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
            v.brands.push(CatalogBrand { name, lower, needs_case });
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
        let total = v.products.len() as u32;
        for (name, values) in attribute_values {
            let products: u32 = values.values().map(|(_, n)| n).sum();
            let short = |v: &str| {
                (3..=40).contains(&v.len())
                    && v.split_whitespace().count() <= 4
                    && v.chars().any(char::is_alphabetic)
                    && !is_stop(v)
            };
            // A facet: a handful to 40 short values, on a third of the products at least (an
            // attribute few products have would filter out the others, which may well match).
            if !(4..=40).contains(&values.len()) || 3 * products < total || !values.keys().all(|v| short(v)) {
                continue;
            }
            let mut values: Vec<(String, Vec<String>, u32)> =
                values.into_iter().map(|(k, (sp, n))| (k, sp, n)).collect();
            values.sort();
            v.attributes.push(AttributeValues { name, values });
        }
        v.attributes.sort_by(|a, b| a.name.cmp(&b.name));
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
        for (at, name) in self.brands_misspelt_in(text) {
            if taken.get(at).copied().unwrap_or(true) || named.contains(&name) || avoided.contains(&name) {
                continue;
            }
            let negated = lower.get(..at).is_some_and(|before| NOT_BRAND.is_match(before));
            if negated { avoided.push(name) } else { named.push(name) }
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

    /// The `n` categories with the most products, largest first.
    pub fn largest_categories(&self, n: usize) -> Vec<String> {
        let mut by_size: Vec<&CategoryWords> = self.categories.iter().collect();
        by_size.sort_by(|a, b| b.products.cmp(&a.products).then(a.name.cmp(&b.name)));
        by_size.into_iter().take(n).map(|c| c.name.clone()).collect()
    }

    /// The categories holding a product whose title has the word (or a compound ending with it).
    pub fn categories_with_word(&self, w: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (word, shares) in &self.shares {
            if word == w || (word.len() >= w.len() + 3 && word.ends_with(w)) {
                for &(c, _) in shares {
                    let name = &self.categories[c].name;
                    if !out.contains(name) {
                        out.push(name.clone());
                    }
                }
            }
        }
        out
    }

    /// Category names as written in the catalog.
    pub fn category_names(&self) -> impl Iterator<Item = &str> {
        self.categories.iter().map(|c| c.name.as_str())
    }

    /// Attribute values a text names, as `(attribute, lowercase value, the catalog's
    /// spellings)`: a value counts when all its words stand in the text. A value several
    /// attributes hold ("white" as a colour and as a colour family) counts once, for the
    /// attribute most products hold it in; a value inside a longer one found ("blue" in "light
    /// blue") is left out.
    pub fn attributes_in(&self, text: &str) -> Vec<(String, String, Vec<String>)> {
        let have: HashSet<String> = words(text).into_iter().collect();
        let mut best: Vec<(String, String, Vec<String>, u32)> = Vec::new();
        for a in &self.attributes {
            for (value, spellings, n) in &a.values {
                let ws = words(value);
                if ws.is_empty() || !ws.iter().all(|w| have.contains(w)) {
                    continue;
                }
                match best.iter_mut().find(|b| b.1 == *value) {
                    Some(b) if b.3 >= *n => {}
                    Some(b) => *b = (a.name.clone(), value.clone(), spellings.clone(), *n),
                    None => best.push((a.name.clone(), value.clone(), spellings.clone(), *n)),
                }
            }
        }
        let found: Vec<String> = best.iter().map(|b| b.1.clone()).collect();
        best.retain(|b| !found.iter().any(|f| f.len() > b.1.len() && word_positions(f, &b.1).next().is_some()));
        best.into_iter().map(|(name, value, spellings, _)| (name, value, spellings)).collect()
    }

    /// Brands a word of the text nearly spells ("Nikkon" for Nikon, "adiddas" for Adidas):
    /// one edit for names of 4 to 6 letters, two from 7; words the catalog's titles use and
    /// function words never count.
    pub fn brands_misspelt_in(&self, text: &str) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        let lower = text.to_lowercase();
        let mut spans = Vec::new();
        let mut start = None;
        for (i, c) in lower.char_indices().chain(std::iter::once((lower.len(), ' '))) {
            match (c.is_alphanumeric(), start) {
                (true, None) => start = Some(i),
                (false, Some(s)) => {
                    spans.push((s, &lower[s..i]));
                    start = None;
                }
                _ => {}
            }
        }
        for (start, w) in spans {
            if w.chars().count() < 4 || is_stop(w) || self.is_title_word(&super::text::singular(w)) {
                continue;
            }
            for b in &self.brands {
                if b.lower.contains(char::is_whitespace) || b.lower == w {
                    continue;
                }
                let n = b.lower.chars().count();
                let allowed = if n >= 7 {
                    2
                } else if n >= 4 {
                    1
                } else {
                    0
                };
                if allowed > 0 && edit_distance(w, &b.lower) <= allowed {
                    out.push((start, b.name.clone()));
                    break;
                }
            }
        }
        out
    }

    /// Whether a (lowercase) word is a whole brand name.
    pub fn is_brand_word(&self, w: &str) -> bool {
        self.brands.iter().any(|b| b.lower == w)
    }
}

/// Levenshtein distance between two words (characters).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}
