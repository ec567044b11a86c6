//! Requests written from a catalog's own facets ([`generate`]), so that the assistant's
//! evaluation is not only the hand-written requests of one catalog: for each kind of product
//! the catalog sells (the head noun of a category's name that its product titles use: "chair"
//! for "Chairs", "laptop" and "computer" for "Laptops & Notebook Computers"),
//! requests by kind alone, under a price, within a price range, of a brand, avoiding a brand,
//! with a misspelt brand, with an attribute value, "cheaper ones" as a follow-up, and a price
//! below anything of that kind (an honest "nothing found"). Each carries the constraints it
//! states, so the evaluation checks every card against them.
//!
//! Deterministic: the same catalog gives the same requests. Not the scoring (see the parent
//! module).

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::{Case, Expect};
use crate::assistant::understand::{singular, words};
use crate::catalog::Product;
use crate::catalog::search::is_attribute_name;

/// The templates, in the order they are tried for each kind.
const TEMPLATES: usize = 9;

/// Up to `n` requests from the facets of `products` (hidden and out-of-stock products and
/// products without a price are left out: a request is about what the shop sells now).
pub fn generate(products: &[Product], n: usize) -> Vec<Case> {
    let sellable: Vec<&Product> = products.iter().filter(|p| p.in_stock && !p.hidden && p.price.is_some()).collect();
    // A kind's products: those of the categories it names whose titles have the word (an "SSD"
    // in a laptop's title does not make the laptop an SSD).
    let mut kinds: Vec<(String, Vec<&Product>)> = kinds(&sellable)
        .into_iter()
        .map(|(k, categories)| {
            let ps: Vec<&Product> = sellable
                .iter()
                .copied()
                .filter(|p| p.categories.iter().any(|c| categories.contains(c)) && words(&p.title).contains(&k))
                .collect();
            (k, ps)
        })
        .filter(|(_, ps)| ps.len() >= 3)
        .collect();
    kinds.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
    let mut cases = Vec::new();
    let mut used: std::collections::HashSet<(usize, usize)> = Default::default();
    for round in 0..TEMPLATES {
        for (k, (kind, ps)) in kinds.iter().enumerate() {
            if cases.len() >= n {
                return cases;
            }
            let template = (k + round) % TEMPLATES;
            if !used.insert((k, template)) {
                continue;
            }
            if let Some(case) = write(template, kind, ps, &sellable) {
                cases.push(case);
            }
        }
    }
    cases
}

/// One request of `template` for a kind, or `None` when the catalog cannot support it.
fn write(template: usize, kind: &str, ps: &[&Product], all: &[&Product]) -> Option<Case> {
    let plural = plural(kind);
    let mut prices: Vec<f64> = ps.iter().filter_map(|p| p.price).collect();
    prices.sort_by(f64::total_cmp);
    let quantile = |q: f64| prices[((prices.len() - 1) as f64 * q).round() as usize];
    let currency = ps[0].currency.as_str();
    let money = |v: f64| if currency == "USD" { format!("${v}") } else { format!("{v} {currency}") };
    let mut expect = Expect { type_words: Some(vec![kind.to_string()]), ..Default::default() };
    let (id, turns) = match template {
        0 => (kind.to_string(), vec![format!("I'm looking for {plural}")]),
        1 => {
            let max = nice_up(quantile(0.4));
            expect.price_max = Some(max);
            (format!("{kind}-under"), vec![format!("{plural} under {}", money(max))])
        }
        2 => {
            let (lo, hi) = (nice_down(quantile(0.25)), nice_up(quantile(0.75)));
            if lo >= hi || lo <= 0.0 {
                return None;
            }
            (expect.price_min, expect.price_max) = (Some(lo), Some(hi));
            (format!("{kind}-range"), vec![format!("{plural} between {} and {}", money(lo), money(hi))])
        }
        3..=5 => {
            let brands = brand_counts(ps);
            let (brand, _) = brands.first()?;
            if brands.len() < 2 {
                return None; // "not X" or "X" must leave a choice
            }
            match template {
                3 => {
                    expect.brands = Some(vec![brand.clone()]);
                    (format!("{kind}-brand"), vec![format!("show me {brand} {plural}")])
                }
                4 => {
                    expect.exclude_brands = Some(vec![brand.clone()]);
                    (format!("{kind}-not-brand"), vec![format!("{plural}, but not {brand}")])
                }
                _ => {
                    let typo = misspell(brand)?;
                    expect.brands = Some(vec![brand.clone()]);
                    (format!("{kind}-misspelt-brand"), vec![format!("any {plural} from {typo}?")])
                }
            }
        }
        6 => {
            expect.cheaper = true;
            (format!("{kind}-cheaper"), vec![format!("{plural} please"), "cheaper ones".to_string()])
        }
        7 => {
            let (name, value, spellings) = attribute_value(ps, all)?;
            expect.attributes = Some(BTreeMap::from([(name, spellings)]));
            (format!("{kind}-attribute"), vec![format!("{value} {plural}")])
        }
        _ => {
            let below = (prices[0] * 0.5).floor();
            if below < 2.0 {
                return None;
            }
            expect.empty = true;
            expect.price_max = Some(below);
            (format!("{kind}-nothing"), vec![format!("{plural} under {}", money(below))])
        }
    };
    Some(Case { id: format!("gen-{}", id.replace(' ', "-")), turns, expect, generated: true })
}

/// The kinds of product a catalog sells: the head noun of each part of a category's name (the
/// last word of "Laptops", "Notebook Computers" in "Laptops & Notebook Computers"), kept when
/// at least 3 and at least 30% of the category's titles use it ("Smart Home" is no kind: few
/// titles say "home").
fn kinds(products: &[&Product]) -> Vec<(String, Vec<String>)> {
    let mut per_category: HashMap<&str, (usize, HashMap<String, usize>)> = HashMap::new();
    for p in products {
        let title: std::collections::HashSet<String> = words(&p.title).into_iter().collect();
        for c in &p.categories {
            let e = per_category.entry(c.as_str()).or_default();
            e.0 += 1;
            for w in &title {
                *e.1.entry(w.clone()).or_default() += 1;
            }
        }
    }
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut names: Vec<&&str> = per_category.keys().collect();
    names.sort();
    for name in names {
        let (size, titles) = &per_category[*name];
        for part in name.split(['&', ',']).flat_map(|p| p.split(" and ")) {
            let Some(head) = words(part).into_iter().next_back() else { continue };
            let head = singular(&head);
            let n = titles.get(&head).copied().unwrap_or(0);
            if head.len() >= 2 && head.chars().all(char::is_alphabetic) && n >= 3 && 10 * n >= 3 * size {
                match out.iter_mut().find(|(k, _)| *k == head) {
                    Some((_, cs)) => cs.push(name.to_string()),
                    None => out.push((head, vec![name.to_string()])),
                }
            }
        }
    }
    out
}

/// An English plural of a singular word.
fn plural(w: &str) -> String {
    if w.ends_with('s') || w.ends_with('x') || w.ends_with("ch") || w.ends_with("sh") {
        format!("{w}es")
    } else if w.ends_with('y') && !w.ends_with("ay") && !w.ends_with("ey") && !w.ends_with("oy") {
        format!("{}ies", &w[..w.len() - 1])
    } else {
        format!("{w}s")
    }
}

/// Brands of the products, most products first.
fn brand_counts(ps: &[&Product]) -> Vec<(String, usize)> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for p in ps {
        if let Some(b) = &p.brand {
            *counts.entry(b.as_str()).or_default() += 1;
        }
    }
    let mut v: Vec<(String, usize)> = counts.into_iter().map(|(b, n)| (b.to_string(), n)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

/// A brand with one letter doubled ("Nikon" -> "Nikkon"), for single-word brands of 5 letters
/// or more.
fn misspell(brand: &str) -> Option<String> {
    let chars: Vec<char> = brand.chars().collect();
    if chars.len() < 5 || !chars.iter().all(|c| c.is_alphabetic()) {
        return None;
    }
    let i = chars.len() / 2;
    let mut out: String = chars[..=i].iter().collect();
    out.extend(&chars[i..]);
    Some(out)
}

/// An attribute value some (not all) products of the kind have, from a facet of the catalog
/// (an attribute on a third of its products at least, with 2 to 40 short values), and a value
/// no other attribute holds, so the request means one thing: `(name, value as asked, the
/// catalog's spellings)`.
fn attribute_value(ps: &[&Product], all: &[&Product]) -> Option<(String, String, Vec<String>)> {
    let mut distinct: HashMap<&str, std::collections::HashSet<String>> = HashMap::new();
    let mut holders: HashMap<&str, usize> = HashMap::new();
    let mut value_names: HashMap<String, std::collections::HashSet<&str>> = HashMap::new();
    for p in all {
        for (name, v) in &p.attributes {
            if let Some(s) = v.as_str() {
                distinct.entry(name.as_str()).or_default().insert(s.to_lowercase());
                *holders.entry(name.as_str()).or_default() += 1;
                value_names.entry(s.to_lowercase()).or_default().insert(name.as_str());
            }
        }
    }
    let mut best: Option<(usize, String, String)> = None;
    for p in ps {
        let mut names: Vec<&String> = p.attributes.keys().collect();
        names.sort();
        for name in names {
            let Some(Value::String(v)) = p.attributes.get(name) else { continue };
            let lower = v.to_lowercase();
            let few = distinct.get(name.as_str()).is_some_and(|d| (2..=40).contains(&d.len()))
                && 3 * holders.get(name.as_str()).copied().unwrap_or(0) >= all.len()
                && value_names.get(&lower).is_some_and(|n| n.len() == 1);
            if !few || !is_attribute_name(name) || lower.len() < 3 || lower.split_whitespace().count() > 3 {
                continue;
            }
            let with = ps.iter().filter(|q| q.attributes.get(name).and_then(Value::as_str) == Some(v)).count();
            if with < ps.len() && best.as_ref().is_none_or(|(n, _, _)| with > *n) {
                best = Some((with, name.clone(), lower));
            }
        }
    }
    let (_, name, value) = best?;
    let spellings: Vec<String> = {
        let mut s: Vec<String> = all
            .iter()
            .filter_map(|p| p.attributes.get(&name).and_then(Value::as_str))
            .filter(|v| v.to_lowercase() == value)
            .map(str::to_string)
            .collect();
        s.sort();
        s.dedup();
        s
    };
    Some((name, value, spellings))
}

/// A round price at or above `x` (a shopper's budget: $40, $250, $1300).
fn nice_up(x: f64) -> f64 {
    let step = nice_step(x);
    (x / step).ceil() * step
}

/// A round price at or below `x`.
fn nice_down(x: f64) -> f64 {
    let step = nice_step(x);
    (x / step).floor() * step
}

fn nice_step(x: f64) -> f64 {
    match x {
        x if x < 20.0 => 1.0,
        x if x < 100.0 => 5.0,
        x if x < 1000.0 => 10.0,
        _ => 100.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn product(id: usize, title: &str, brand: &str, price: f64, colour: &str) -> Product {
        serde_json::from_value(json!({
            "id": format!("p{id}"), "title": title, "categories": ["Chairs"], "brand": brand, "price": price,
            "currency": "USD", "in_stock": true, "attributes": {"colour": colour},
            "updated_at": "2026-01-01T00:00:00Z"
        }))
        .unwrap()
    }

    #[test]
    fn requests_come_from_the_catalogs_kinds_brands_prices_and_attributes() {
        let ps = [
            product(1, "Oak Dining Chair, Set of 2", "Woodly", 80.0, "Brown"),
            product(2, "Mesh Office Chair", "Sitwell", 120.0, "Black"),
            product(3, "Folding Chair", "Woodly", 25.0, "White"),
            product(4, "Kids Chair - Blue", "Tiny", 40.0, "Blue"),
            product(5, "Garden Bench", "Woodly", 150.0, "Brown"),
        ];
        let mut bench = ps[4].clone();
        bench.categories = vec!["Benches & Outdoor Furniture".into()];
        let ps: Vec<Product> = ps[..4].iter().cloned().chain([bench]).collect();
        let refs: Vec<&Product> = ps.iter().collect();
        assert_eq!(
            kinds(&refs),
            vec![("chair".to_string(), vec!["Chairs".to_string()])],
            "one bench is no kind, furniture no title word"
        );
        let cases = generate(&ps, 50);
        assert_eq!(cases.len(), 9, "{cases:#?}");
        let by = |id: &str| cases.iter().find(|c| c.id == id).unwrap_or_else(|| panic!("no {id}"));
        assert_eq!(by("gen-chair").turns, vec!["I'm looking for chairs"]);
        assert_eq!(by("gen-chair-under").expect.price_max, Some(40.0));
        assert_eq!(by("gen-chair-not-brand").expect.exclude_brands, Some(vec!["Woodly".to_string()]));
        assert_eq!(by("gen-chair-misspelt-brand").turns, vec!["any chairs from Wooddly?"]);
        assert_eq!(by("gen-chair-nothing").expect.price_max, Some(12.0));
        let attr = by("gen-chair-attribute");
        assert_eq!(attr.turns, vec!["brown chairs"]);
        assert_eq!(attr.expect.attributes, Some(BTreeMap::from([("colour".to_string(), vec!["Brown".to_string()])])));
        assert!(cases.iter().all(|c| c.expect.type_words == Some(vec!["chair".to_string()])));
    }

    #[test]
    fn plurals_and_round_prices() {
        assert_eq!(plural("battery"), "batteries");
        assert_eq!(plural("watch"), "watches");
        assert_eq!(plural("headphone"), "headphones");
        assert_eq!((nice_up(37.49), nice_down(1234.0), nice_up(233.0)), (40.0, 1200.0, 240.0));
    }
}
