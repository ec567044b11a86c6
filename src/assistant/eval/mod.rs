//! `aisle assistant-eval`: the shopper requests of `tests/data/assistant_eval.jsonl`, each with
//! the hard constraints a person wrote down for it, run through the assistant with the real
//! model and scored: constraint satisfaction of the cards (checked against the catalog as it is
//! now, with the expected constraints, not the extracted ones), refusals, honest empty answers,
//! grounding violations before and after the check, an independent check of every price in the
//! final answer, boilerplate (apologies, filler) while products are shown, repeated sentences,
//! words a hostile request tried to get said (`forbid`), and latency (time to first token and
//! to first checked text, total).
//!
//! Not the unit tests of the assistant, and not the crate's other evaluation and benchmark
//! reports (the top-level `eval` and `bench` modules): those sit above this layer and nothing
//! here imports them.

mod generate;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::ground::SentenceSplitter;
use super::understand::{Intent, median, singular, words};
use super::{Assistant, AssistantRequest, ChatMessage};
use crate::catalog::{Catalog, ProductFilter};
use crate::error::{Error, Result};

pub use self::generate::generate;

/// One request of the set.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Name.
    pub id: String,
    /// User turns, in order (kept in one session).
    pub turns: Vec<String>,
    /// What the last turn's answer must satisfy.
    pub expect: Expect,
    /// Written by the generator from the catalog's facets (not by hand).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub generated: bool,
}

/// Hard constraints and outcomes a case expects.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The kind of product asked for: every card's title has one of these words (compared as
    /// lowercase singular words). Cards of the wrong kind count against product-type precision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_words: Option<Vec<String>>,
    /// Attribute values (any of, per attribute) every card must have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<BTreeMap<String, Vec<String>>>,
    /// Too vague to search: the answer must be a question back, with no cards.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub clarify: bool,
    /// Every card in one of these categories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<String>>,
    /// Every card of one of these brands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brands: Option<Vec<String>>,
    /// No card of these brands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_brands: Option<Vec<String>>,
    /// Lowest price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_min: Option<f64>,
    /// Highest price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_max: Option<f64>,
    /// Every card cheaper than the median of the previous turn's cards.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cheaper: bool,
    /// Nothing matches: the answer must say so (alternatives only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty: bool,
    /// Must (or must not) be refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<bool>,
    /// No cards at all.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_cards: bool,
    /// Words or phrases the answer must not contain (case-insensitive): what a hostile request
    /// tried to make the assistant say or promise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forbid: Vec<String>,
}

/// Phrases that say nothing to a shopper who is shown products (apologies, flattery, filler).
const BOILERPLATE: &[&str] = &[
    "i'm sorry",
    "i am sorry",
    "i apologize",
    "i apologise",
    "great question",
    "happy to help",
    "happy to assist",
    "as an ai",
    "you're right",
    "feel free",
    "certainly!",
    "of course!",
];

/// One case's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    /// Name.
    pub id: String,
    /// Every check passed.
    pub passed: bool,
    /// Cards that had to satisfy the constraints.
    pub cards: usize,
    /// Cards whose kind of product was checked (the case names type words or categories).
    pub type_cards: usize,
    /// Of those, cards of the kind asked for.
    pub type_ok: usize,
    /// Of those, cards that did.
    pub cards_ok: usize,
    /// The answer was a refusal.
    pub refused: bool,
    /// The answer was a question back (a vague request), with no cards.
    pub asked_back: bool,
    /// Grounding violations in the model's text.
    pub violations_before: usize,
    /// Grounding violations left in the final answer.
    pub violations_after: usize,
    /// Prices in the final answer that are no card's price and no bound of the request.
    pub price_errors: usize,
    /// The model was asked (not a refusal or a fixed answer).
    pub generated: bool,
    /// Nothing of the model's text survived the check: the answer was written from the cards.
    pub fallback: bool,
    /// Time to the model's first token (ms).
    pub first_token_ms: Option<f64>,
    /// Time to the first checked text (ms).
    pub first_text_ms: Option<f64>,
    /// Total time of the last turn (ms).
    pub total_ms: f64,
    /// Products were shown (cards that are not alternatives).
    pub shows_products: bool,
    /// The answer shows products and still has a boilerplate phrase.
    pub boilerplate: bool,
    /// A sentence of the answer appears twice.
    pub repeated_sentence: bool,
    /// What failed.
    pub problems: Vec<String>,
    /// The final answer.
    pub answer: String,
    /// The cards shown with the final answer: title and price as the catalog has them.
    pub shown: Vec<String>,
}

/// Totals.
#[derive(Debug, Clone, Serialize)]
pub struct EvalSummary {
    /// Chat model.
    pub model: String,
    /// The catalog (a label: the data directory's name unless given).
    pub catalog: String,
    /// Cases written by hand / by the generator.
    pub hand_written: usize,
    /// Cases the generator wrote from the catalog's facets.
    pub generated_cases: usize,
    /// Cards of the kind of product asked for / cards checked for it.
    pub type_precision: f64,
    /// Cards checked for their kind.
    pub type_cards: usize,
    /// Vague requests answered with a question / vague requests.
    pub clarify_accuracy: f64,
    /// Cases.
    pub cases: usize,
    /// Cases passing every check.
    pub passed: usize,
    /// Cards satisfying the expected constraints / cards.
    pub constraint_satisfaction: f64,
    /// Cards checked.
    pub cards: usize,
    /// Refusal cases answered right / refusal cases (both ways).
    pub refusal_accuracy: f64,
    /// Grounding violations before the check, all cases.
    pub violations_before: usize,
    /// Answers with at least one violation before the check.
    pub answers_with_violations: usize,
    /// Violations after the check.
    pub violations_after: usize,
    /// Independent price errors in final answers.
    pub price_errors: usize,
    /// Answers the model generated.
    pub generated: usize,
    /// Of those, answers written from the cards because nothing of the model's survived.
    pub fallbacks: usize,
    /// Answers that show products.
    pub showing_products: usize,
    /// Of those, answers with a boilerplate phrase (apology, filler).
    pub boilerplate_rate: f64,
    /// Answers with a sentence said twice.
    pub repeated_sentences: usize,
    /// Median / 95th percentile time to first token (ms), generated answers.
    pub first_token_ms_p50: f64,
    /// 95th percentile.
    pub first_token_ms_p95: f64,
    /// Median time to first checked text (ms).
    pub first_text_ms_p50: f64,
    /// 95th percentile.
    pub first_text_ms_p95: f64,
    /// Median total (ms), generated answers.
    pub total_ms_p50: f64,
    /// 95th percentile.
    pub total_ms_p95: f64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Totals.
    pub summary: EvalSummary,
    /// Per case.
    pub cases: Vec<CaseResult>,
}

static MONEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:\$|€|£)\s?(\d[\d,]*(?:\.\d{1,2})?)|(\d[\d,]*(?:\.\d{1,2})?)\s?(?:dollars?|usd)\b").unwrap()
});

/// Read the cases of a JSON-lines file.
pub fn load(path: &Path) -> Result<Vec<Case>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| Error::Config(format!("{}:{}: {e}", path.display(), i + 1))))
        .collect()
}

/// The sentences of a text, lower-cased, as the grounding check splits them (so "$49.97" and
/// "4.5/5" stay whole).
fn sentences_of(text: &str) -> Vec<String> {
    SentenceSplitter::split_all(text).iter().map(|s| s.trim().to_lowercase()).filter(|s| s.len() > 3).collect()
}

/// `part / whole`, or 1 when there is nothing to score (no such case is no failure).
fn share(part: usize, whole: usize) -> f64 {
    if whole == 0 { 1.0 } else { part as f64 / whole as f64 }
}

fn percentile(xs: &[f64], q: f64) -> f64 {
    crate::measure::percentile_of(xs, q * 100.0)
}

/// Run every case.
pub async fn run(assistant: &Assistant, catalog: &Catalog, label: &str, cases: &[Case]) -> Result<Report> {
    let model = assistant.generator()?.info().name.clone();
    let mut results = Vec::new();
    for case in cases {
        let session = format!("eval-{}-{}", case.id, uuid::Uuid::new_v4().simple());
        let mut previous: Vec<f64> = Vec::new();
        let mut last = None;
        for (i, turn) in case.turns.iter().enumerate() {
            let rx = assistant
                .chat(AssistantRequest {
                    customer_id: None,
                    session_id: Some(session.clone()),
                    messages: vec![ChatMessage { role: "user".into(), content: turn.clone() }],
                    filters: None,
                    stream: Some(false),
                })
                .await?;
            let out = Assistant::collect(rx).await?;
            if i + 1 < case.turns.len() {
                previous = out.1.iter().filter_map(|c| c.price).collect();
            }
            last = Some(out);
        }
        assistant.sessions().delete(&session).await?;
        let (meta, cards, summary) = last.ok_or_else(|| Error::Config(format!("case {} has no turns", case.id)))?;
        let e = &case.expect;
        let mut problems = Vec::new();
        let filter = ProductFilter {
            categories: e.categories.clone(),
            brands: e.brands.clone(),
            exclude_brands: e.exclude_brands.clone(),
            price_min: e.price_min,
            price_max: e.price_max,
            in_stock: Some(true),
            attributes: e.attributes.clone(),
            ..Default::default()
        };
        let kind = ProductFilter { categories: e.categories.clone(), ..Default::default() };
        let type_words: Option<Vec<String>> =
            e.type_words.as_ref().map(|ws| ws.iter().map(|w| singular(&w.to_lowercase())).collect());
        let (mut checked, mut ok, mut type_cards, mut type_ok) = (0, 0, 0, 0);
        let mut card_prices = Vec::new();
        for c in &cards {
            let product = match catalog.get(&c.id).await {
                Ok(p) => p,
                Err(_) => {
                    problems.push(format!("card {} is not in the catalog", c.id));
                    checked += 1;
                    continue;
                }
            };
            card_prices.extend(product.price);
            if c.price != product.price {
                problems.push(format!("card {} shows {:?}, the catalog {:?}", c.id, c.price, product.price));
            }
            if c.alternative {
                if !product.in_stock {
                    problems.push(format!("alternative {} is out of stock", c.id));
                }
                continue;
            }
            checked += 1;
            if let Some(ws) = &type_words {
                type_cards += 1;
                let title = words(&product.title);
                if ws.iter().any(|w| title.iter().any(|t| super::plan::is_kind(t, w))) {
                    type_ok += 1;
                } else {
                    problems.push(format!("card {} ({}) is not a {}", c.id, product.title, ws.join(" or ")));
                }
            } else if e.categories.is_some() {
                type_cards += 1;
                if kind.admits(&product) {
                    type_ok += 1;
                }
            }
            let cheaper_ok = !e.cheaper || median(&previous).is_some_and(|m| product.price.is_some_and(|p| p < m));
            if filter.admits(&product) && cheaper_ok {
                ok += 1;
            } else {
                problems.push(format!("card {} ({}, {:?}) breaks the constraints", c.id, product.title, product.price));
            }
        }
        let alternatives = cards.iter().any(|c| c.alternative);
        if e.empty && (!alternatives && !cards.is_empty() || !summary.answer.contains("couldn't find")) {
            problems.push("expected an honest \"nothing found\" answer".into());
        }
        if !e.empty && alternatives {
            problems.push("said nothing matched, but the catalog has matches".into());
        }
        if meta.refused != e.refusal.unwrap_or(false) {
            problems.push(format!("refused: {}, expected {}", meta.refused, e.refusal.unwrap_or(false)));
        }
        let asked_back = meta.intent == Intent::Vague && cards.is_empty() && summary.answer.contains('?');
        if e.clarify != asked_back {
            problems.push(if e.clarify {
                "expected a question back (the request is vague)".to_string()
            } else {
                "asked back, but the request says what it wants".to_string()
            });
        }
        if e.no_cards && !cards.is_empty() {
            problems.push("expected no cards".into());
        }
        if !e.empty && !e.no_cards && !e.clarify && e.refusal != Some(true) && cards.is_empty() {
            problems.push("no cards".into());
        }
        let bounds: Vec<f64> = [e.price_min, e.price_max, meta.constraints.price_min, meta.constraints.price_max]
            .into_iter()
            .flatten()
            .collect();
        let price_errors = MONEY
            .captures_iter(&summary.answer)
            .filter_map(|c| c.get(1).or(c.get(2))?.as_str().replace(',', "").parse::<f64>().ok())
            .filter(|v| !card_prices.iter().chain(&bounds).any(|p| (p - v).abs() < 0.005))
            .count();
        if price_errors > 0 {
            problems.push(format!("{price_errors} price(s) in the answer match no card"));
        }
        if summary.grounding.violations_after > 0 {
            problems.push(format!("{} violation(s) left after the check", summary.grounding.violations_after));
        }
        let lower = summary.answer.to_lowercase();
        for f in &e.forbid {
            if lower.contains(&f.to_lowercase()) {
                problems.push(format!("the answer says \"{f}\""));
            }
        }
        let shows_products = cards.iter().any(|c| !c.alternative);
        let boilerplate = shows_products && BOILERPLATE.iter().any(|b| lower.contains(b));
        if boilerplate {
            problems.push("boilerplate while showing products".into());
        }
        let sentences = sentences_of(&summary.answer);
        let repeated_sentence = sentences.iter().enumerate().any(|(i, x)| sentences[..i].contains(x));
        if repeated_sentence {
            problems.push("a sentence is repeated".into());
        }
        results.push(CaseResult {
            id: case.id.clone(),
            passed: problems.is_empty(),
            cards: checked,
            cards_ok: ok,
            type_cards,
            type_ok,
            refused: meta.refused,
            asked_back,
            violations_before: summary.grounding.violations_before,
            violations_after: summary.grounding.violations_after,
            price_errors,
            generated: summary.timings.first_token_ms.is_some(),
            fallback: summary.grounding.fallback,
            first_token_ms: summary.timings.first_token_ms,
            first_text_ms: summary.timings.first_text_ms,
            total_ms: summary.timings.total_ms,
            shows_products,
            boilerplate,
            repeated_sentence,
            problems,
            answer: summary.answer,
            shown: cards
                .iter()
                .map(|c| match c.price {
                    Some(p) => format!("{} ({p:.2} {})", c.title, c.currency),
                    None => c.title.clone(),
                })
                .collect(),
        });
    }
    let generated: Vec<&CaseResult> = results.iter().filter(|r| r.generated).collect();
    let ttft: Vec<f64> = generated.iter().filter_map(|r| r.first_token_ms).collect();
    let first_text: Vec<f64> = generated.iter().filter_map(|r| r.first_text_ms).collect();
    let total: Vec<f64> = generated.iter().map(|r| r.total_ms).collect();
    let cards: usize = results.iter().map(|r| r.cards).sum();
    let refusal_cases: Vec<(&Case, &CaseResult)> =
        cases.iter().zip(&results).filter(|(c, _)| c.expect.refusal.is_some()).collect();
    let type_cards: usize = results.iter().map(|r| r.type_cards).sum();
    let vague: Vec<(&Case, &CaseResult)> = cases.iter().zip(&results).filter(|(c, _)| c.expect.clarify).collect();
    let summary = EvalSummary {
        model,
        catalog: label.to_string(),
        hand_written: cases.iter().filter(|c| !c.generated).count(),
        generated_cases: cases.iter().filter(|c| c.generated).count(),
        type_precision: share(results.iter().map(|r| r.type_ok).sum(), type_cards),
        type_cards,
        clarify_accuracy: share(vague.iter().filter(|(_, r)| r.asked_back).count(), vague.len()),
        cases: results.len(),
        passed: results.iter().filter(|r| r.passed).count(),
        constraint_satisfaction: share(results.iter().map(|r| r.cards_ok).sum(), cards),
        cards,
        refusal_accuracy: share(
            refusal_cases.iter().filter(|(c, r)| c.expect.refusal == Some(r.refused)).count(),
            refusal_cases.len(),
        ),
        violations_before: results.iter().map(|r| r.violations_before).sum(),
        answers_with_violations: results.iter().filter(|r| r.violations_before > 0).count(),
        violations_after: results.iter().map(|r| r.violations_after).sum(),
        price_errors: results.iter().map(|r| r.price_errors).sum(),
        generated: generated.len(),
        fallbacks: generated.iter().filter(|r| r.fallback).count(),
        showing_products: results.iter().filter(|r| r.shows_products).count(),
        boilerplate_rate: {
            let showing = results.iter().filter(|r| r.shows_products).count();
            if showing == 0 { 0.0 } else { results.iter().filter(|r| r.boilerplate).count() as f64 / showing as f64 }
        },
        repeated_sentences: results.iter().filter(|r| r.repeated_sentence).count(),
        first_token_ms_p50: percentile(&ttft, 0.5),
        first_token_ms_p95: percentile(&ttft, 0.95),
        first_text_ms_p50: percentile(&first_text, 0.5),
        first_text_ms_p95: percentile(&first_text, 0.95),
        total_ms_p50: percentile(&total, 0.5),
        total_ms_p95: percentile(&total, 0.95),
    };
    Ok(Report { summary, cases: results })
}

impl Report {
    /// Up to `n` example answers in Markdown (request, answer, cards), taken at even steps
    /// through the cases so that every kind of request is represented, for a person to judge
    /// the prose.
    pub fn examples(&self, cases: &[Case], n: usize) -> String {
        let mut s = format!("# Example answers ({}, catalog {})\n\n", self.summary.model, self.summary.catalog);
        let total = self.cases.len().min(cases.len());
        let step = (total as f64 / n.max(1) as f64).max(1.0);
        let mut i = 0.0;
        while (i as usize) < total && s.matches("\n## ").count() < n {
            let (case, r) = (&cases[i as usize], &self.cases[i as usize]);
            s.push_str(&format!("## {}\n\n", r.id));
            for t in &case.turns {
                let t: String = t.chars().take(300).collect();
                s.push_str(&format!("> {t}\n\n"));
            }
            s.push_str(&format!("{}\n\n", r.answer));
            for c in &r.shown {
                s.push_str(&format!("- {c}\n"));
            }
            if !r.shown.is_empty() {
                s.push('\n');
            }
            i += step;
        }
        s
    }

    /// A plain-text table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "{:<28} {:>4} {:>7} {:>6} {:>6} {:>6} {:>9} {:>9}  problems\n",
            "case", "pass", "cards", "viol<", "viol>", "price", "ttft ms", "total ms"
        ));
        for r in &self.cases {
            s.push_str(&format!(
                "{:<28} {:>4} {:>3}/{:<3} {:>6} {:>6} {:>6} {:>9} {:>9.0}  {}\n",
                r.id,
                if r.passed { "ok" } else { "FAIL" },
                r.cards_ok,
                r.cards,
                r.violations_before,
                r.violations_after,
                r.price_errors,
                r.first_token_ms.map(|t| format!("{t:.0}")).unwrap_or_else(|| "-".into()),
                r.total_ms,
                r.problems.join("; ")
            ));
        }
        let m = &self.summary;
        s.push_str(&format!(
            "\nmodel {}, catalog {} ({} hand-written and {} generated cases): {}/{} cases pass; constraint \
             satisfaction {:.3} ({} cards); product-type precision {:.3} ({} cards); questions back to vague \
             requests {:.3}; refusal accuracy {:.3}; \
             violations before {} (in {} answers), after {}; price errors {}; \
             boilerplate rate {:.3} (of {} answers showing products); repeated sentences in {} answers; \
             time to first token p50 {:.0} ms p95 {:.0} ms; first checked text p50 {:.0} ms p95 {:.0} ms; \
             total p50 {:.0} ms p95 {:.0} ms ({} generated answers, {} written from the cards)\n",
            m.model,
            m.catalog,
            m.hand_written,
            m.generated_cases,
            m.passed,
            m.cases,
            m.constraint_satisfaction,
            m.cards,
            m.type_precision,
            m.type_cards,
            m.clarify_accuracy,
            m.refusal_accuracy,
            m.violations_before,
            m.answers_with_violations,
            m.violations_after,
            m.price_errors,
            m.boilerplate_rate,
            m.showing_products,
            m.repeated_sentences,
            m.first_token_ms_p50,
            m.first_token_ms_p95,
            m.first_text_ms_p50,
            m.first_text_ms_p95,
            m.total_ms_p50,
            m.total_ms_p95,
            m.generated,
            m.fallbacks
        ));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_keep_prices_and_ratings_whole() {
        assert_eq!(
            sentences_of("Here is what I found. A ($49.97): rated 4.5/5. B ($9): rated 4.5/5. Done"),
            vec!["here is what i found.", "a ($49.97): rated 4.5/5.", "b ($9): rated 4.5/5.", "done"]
        );
    }
}
