//! Answering a plan: run the model on its prompt (or send its fixed answer), check the streamed
//! text sentence by sentence through the grounding check, fall back to an answer written from
//! the cards when nothing grounded is left, check the final answer again from scratch, send the
//! cards, save the session and end with the summary.
//!
//! Not the decisions before the model runs (see `plan`) and not the grounding rules (see
//! [`super::ground`]).

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use super::Assistant;
use super::facts::complete_picks;
use super::ground::{Action, Grounder, SentenceSplitter, ViolationKind};
use super::output::{AnswerSummary, AnswerTimings, GroundingReport, Output, ProductCard, TokenUsage};
use super::plan::{AnswerPlan, AnswerSource};
use super::prompt::name_with_price;
use super::session::Turn;
use super::understand::Intent;
use crate::infer::chat::{GenerateRequest, GenerationEvent, Generator, OutputFormat, SamplingParams};

impl Assistant {
    /// Stream the answer to `plan` into `tx`, then save the session.
    pub(super) async fn answer(&self, plan: AnswerPlan, generator: Generator, tx: UnboundedSender<Output>) {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        if plan.meta.refused {
            self.stats.refusals.fetch_add(1, Ordering::Relaxed);
        }
        if tx.send(Output::Meta(plan.meta.clone())).is_err() {
            return;
        }
        let mut grounding = GroundingReport::default();
        let mut timings = AnswerTimings { retrieval_ms: ms(plan.retrieval), ..Default::default() };
        let mut usage = TokenUsage::default();
        let mut answer = String::new();
        match &plan.answer {
            AnswerSource::Fixed(text) => {
                timings.first_text_ms = Some(ms(plan.started.elapsed()));
                answer = text.clone();
                if tx.send(Output::Text(answer.clone())).is_err() {
                    return;
                }
            }
            AnswerSource::Model(model) => {
                let mut grounder = Grounder::new(&plan.vocab, &plan.cards, plan.budget.clone()).knowing(&model.facts);
                let mut seen: HashSet<String> = HashSet::new();
                let mut emit =
                    |sentence: String, answer: &mut String, grounding: &mut GroundingReport| -> Option<String> {
                        let checked = grounder.check(&sentence);
                        grounding.violations_before += checked.violations.len();
                        grounding.repaired +=
                            checked.violations.iter().filter(|v| v.action == Action::Repaired).count();
                        if checked.text.is_none() {
                            grounding.removed += 1;
                        }
                        grounding.violations.extend(checked.violations);
                        let text = checked.text?;
                        // A sentence said once is enough.
                        if !seen.insert(text.trim().to_lowercase()) {
                            return None;
                        }
                        let piece = if answer.is_empty() { text.trim_start().to_string() } else { text };
                        answer.push_str(&piece);
                        Some(piece)
                    };
                // The opening is ours, written from what was understood (categories, brands and
                // prices the catalog has): it goes out before the model has produced anything.
                answer.push_str(&model.opening);
                timings.first_text_ms = Some(ms(plan.started.elapsed()));
                if tx.send(Output::Text(model.opening.clone())).is_err() {
                    return;
                }
                let request = GenerateRequest {
                    prompt: model.prompt.clone(),
                    max_tokens: self.config.max_tokens.max(40 * plan.cards.len()),
                    sampling: SamplingParams { temperature: 0.0, repetition_penalty: 1.1, ..SamplingParams::default() },
                    stop: vec![],
                    format: OutputFormat::JsonSchema(model.shape.clone()),
                };
                let mut rx = match generator.submit(request) {
                    Ok(rx) => rx,
                    Err(e) => {
                        let _ = tx.send(Output::Failed(e.to_string()));
                        return;
                    }
                };
                // The model's JSON so far, how many of its picks were handled, which products
                // it named and how many of those sentences passed the check.
                let mut raw = String::new();
                let mut handled = 0;
                let mut named: HashSet<String> = HashSet::new();
                let mut said = 0;
                loop {
                    let Some(event) = rx.recv().await else {
                        let _ = tx.send(Output::Failed("the chat worker dropped the request".into()));
                        return;
                    };
                    match event {
                        GenerationEvent::Text(t) => {
                            if timings.first_token_ms.is_none() {
                                timings.first_token_ms = Some(ms(plan.started.elapsed()));
                            }
                            raw.push_str(&t);
                            let picks = complete_picks(&raw);
                            for (id, chosen) in picks.into_iter().skip(handled) {
                                handled += 1;
                                let Some(card) = plan.cards.iter().find(|p| p.id == id) else { continue };
                                if !named.insert(id) {
                                    continue;
                                }
                                // Name and price from the catalog, reasons from the card's own
                                // facts: the model only chose them.
                                let mut reasons: Vec<&str> = Vec::new();
                                for f in &chosen {
                                    if !reasons.contains(&f.as_str()) {
                                        reasons.push(f);
                                    }
                                }
                                let sentence = format!(" {}: {}.", name_with_price(card), reasons.join(", "));
                                if let Some(piece) = emit(sentence, &mut answer, &mut grounding) {
                                    said += 1;
                                    timings.first_text_ms.get_or_insert(ms(plan.started.elapsed()));
                                    if tx.send(Output::Text(piece)).is_err() {
                                        return; // the client left: dropping `rx` cancels generation
                                    }
                                }
                            }
                        }
                        GenerationEvent::Done(f) => {
                            if timings.first_token_ms.is_none() {
                                timings.first_token_ms = Some(ms(f.time_to_first_token + plan.retrieval));
                            }
                            usage = TokenUsage::new(f.prompt_tokens, f.completion_tokens);
                            break;
                        }
                        GenerationEvent::Failed(e) => {
                            let _ = tx.send(Output::Failed(e));
                            return;
                        }
                    }
                }
                // No pick survived the check: name the cards.
                if said == 0 {
                    grounding.fallback = true;
                    self.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
                    let names: Vec<String> = plan.cards.iter().map(name_with_price).collect();
                    // One clause per card, so that each price sits with its product.
                    let text = if answer.is_empty() {
                        format!("Here is what I found in stock: {}.", names.join("; "))
                    } else {
                        format!(" Top picks: {}.", names.join("; "))
                    };
                    answer.push_str(&text);
                    timings.first_text_ms.get_or_insert(ms(plan.started.elapsed()));
                    if tx.send(Output::Text(text)).is_err() {
                        return;
                    }
                }
                // Check the final answer again from scratch: what a shopper reads after our
                // opening (the part the model chose).
                let mut again = Grounder::new(&plan.vocab, &plan.cards, plan.budget.clone()).knowing(&model.facts);
                let parts = SentenceSplitter::split_all(answer.get(model.opening.len()..).unwrap_or(""));
                grounding.remaining = parts.iter().flat_map(|s| again.check(s).violations).collect();
                grounding.violations_after = grounding.remaining.len();
                for v in &grounding.violations {
                    let c = match v.kind {
                        ViolationKind::Product => &self.stats.violations_product,
                        ViolationKind::Price => &self.stats.violations_price,
                        ViolationKind::Stock => &self.stats.violations_stock,
                    };
                    c.fetch_add(1, Ordering::Relaxed);
                }
                self.stats.repaired.fetch_add(grounding.repaired as u64, Ordering::Relaxed);
                self.stats.removed.fetch_add(grounding.removed as u64, Ordering::Relaxed);
                self.stats.violations_after.fetch_add(grounding.violations_after as u64, Ordering::Relaxed);
            }
        }
        let cards: Vec<ProductCard> = plan
            .cards
            .iter()
            .zip(&plan.card_why)
            .map(|(p, why)| ProductCard {
                id: p.id.clone(),
                title: p.title.clone(),
                price: p.price,
                currency: p.currency.clone(),
                url: p.url.clone(),
                image_url: p.image_url.clone(),
                in_stock: p.in_stock,
                stock_qty: p.stock_qty,
                why: why.clone(),
                alternative: plan.alternative,
            })
            .collect();
        if tx.send(Output::Cards(cards)).is_err() {
            return;
        }
        if let Some(mut session) = plan.session {
            session.turns.extend(plan.new_turns);
            session.turns.push(Turn { role: "assistant".into(), content: answer.clone() });
            let excess = session.turns.len().saturating_sub(self.config.max_turns.max(2));
            session.turns.drain(..excess);
            if plan.meta.intent == Intent::Shopping {
                session.state = plan.state;
                session.shown = plan.cards.iter().filter_map(|p| Some((p.id.clone(), p.price?))).collect();
            }
            if let Err(e) = self.sessions.put(session).await {
                let _ = tx.send(Output::Failed(format!("the session could not be saved: {e}")));
                return;
            }
        }
        timings.total_ms = ms(plan.started.elapsed());
        let _ = tx.send(Output::Done(AnswerSummary { answer, grounding, usage, timings }));
    }
}

/// A duration in milliseconds, to two decimals.
fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}
