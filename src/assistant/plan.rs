//! Everything decided before the model runs ([`AnswerPlan`]): the conversation replayed into
//! its state, the intent with the fixed answers for refusals and small talk, retrieval with the
//! constraints as filters inside the store query, the nearest alternatives when nothing
//! matches, why each card fits, and the prompt when the model is to answer.
//!
//! Not the generation or the grounding check (see `answer`), not the taste re-ranking (see
//! `rank`) and not the prompt's wording (see `prompt`).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Assistant;
use super::facts::{answer_shape, facts};
use super::ground::format_price;
use super::output::AnswerMeta;
use super::prompt::name_with_price;
use super::request::AssistantRequest;
use super::session::{Session, Turn};
use super::understand::{self, ConversationState, Intent, Vocabulary};
use crate::catalog::search::{SearchMode, SearchRequest};
use crate::catalog::{Product, ProductFilter};
use crate::error::{Error, Result};
use crate::infer::chat::Generator;
use crate::infer::chat::schema::Shape;

/// Everything decided before the model runs.
pub(super) struct AnswerPlan {
    /// How the request was understood (the answer's first event).
    pub(super) meta: AnswerMeta,
    /// A fixed answer (refusal, small talk, nothing found), or the model's prompt.
    pub(super) answer: AnswerSource,
    /// The products shown as cards (and the only ones the answer may name).
    pub(super) cards: Vec<Product>,
    /// Why each card fits, in the order of `cards`.
    pub(super) card_why: Vec<String>,
    /// The cards are the nearest alternatives: nothing matched every constraint.
    pub(super) alternative: bool,
    /// The catalog's vocabulary, for the grounding check.
    pub(super) vocab: Arc<Vocabulary>,
    /// Prices the shopper named (their budget may be echoed).
    pub(super) budget: Vec<f64>,
    /// The stored session, when the client named one.
    pub(super) session: Option<Session>,
    /// This request's messages, redacted.
    pub(super) new_turns: Vec<Turn>,
    /// The conversation's state after this turn.
    pub(super) state: ConversationState,
    /// When the request arrived.
    pub(super) started: Instant,
    /// How long understanding and retrieval took.
    pub(super) retrieval: Duration,
}

/// Where an answer's text comes from.
pub(super) enum AnswerSource {
    /// A fixed text (refusal, small talk, nothing found), sent as it is.
    Fixed(String),
    /// The model picks products and gives reasons within a schema; the text is rendered.
    Model(ModelAnswer),
}

/// What the model is asked for, and what frames its answer.
pub(super) struct ModelAnswer {
    /// The prompt, as token ids.
    pub(super) prompt: Vec<u32>,
    /// The answer's schema: which cards to name, each with one or two of its facts.
    pub(super) shape: Arc<Shape>,
    /// The first sentence, written from what was understood (sent before the model runs).
    pub(super) opening: String,
    /// Each card's facts (the reasons the answer may give), in the order of the cards.
    pub(super) facts: Vec<Vec<String>>,
}

impl Assistant {
    /// Decide everything before the model runs: read the conversation, refuse or retrieve,
    /// re-rank, and build the prompt (or a fixed answer).
    pub(super) async fn plan(&self, request: &AssistantRequest, generator: &Generator) -> Result<AnswerPlan> {
        let started = Instant::now();
        let customer_key = request.customer_id.as_deref().map(|c| self.profiles.key_of(c));
        let mut session = match &request.session_id {
            None => None,
            Some(id) => Some(match self.sessions.get(id).await? {
                Some(s) => {
                    if s.customer.is_some() && customer_key.is_some() && s.customer != customer_key {
                        return Err(Error::invalid("/session_id", "this session belongs to another customer"));
                    }
                    s
                }
                None => Session { key: self.sessions.key_of(id), ..Default::default() },
            }),
        };
        if let (Some(s), Some(k)) = (session.as_mut(), &customer_key) {
            s.customer = Some(k.clone());
        }
        // Redacted before anything is stored, embedded, logged or put into a prompt.
        let new_turns: Vec<Turn> = request
            .messages
            .iter()
            .map(|m| Turn { role: m.role.clone(), content: self.redactor.redact(&m.content).into_owned() })
            .collect();
        let vocab = self.vocabulary().await?;
        // Replay the user turns before the last one.
        let (mut state, mut shown) = match &session {
            Some(s) => (s.state.clone(), s.shown.iter().map(|(_, p)| *p).collect::<Vec<f64>>()),
            None => (ConversationState::default(), vec![]),
        };
        let last = new_turns.len() - 1;
        for t in new_turns[..last].iter().filter(|t| t.role == "user") {
            let context = !state.query.is_empty();
            if vocab.intent(&t.content, context) != Intent::Shopping {
                continue;
            }
            let reading = self.read_turn(Some(generator), &vocab, &t.content, &state).await?;
            if reading.relative.is_some() && shown.is_empty() && context {
                shown = self.shown_prices(&vocab, &state, request.filters.as_ref()).await?;
            }
            state = vocab.merge(&state, &reading, &shown);
            shown.clear();
        }
        let text = &new_turns[last].content;
        let context = !state.query.is_empty();
        let intent = vocab.intent(text, context);
        let mut meta = AnswerMeta {
            session_id: request.session_id.clone(),
            intent,
            query: String::new(),
            constraints: state.constraints.clone(),
            personalized: false,
            refused: false,
        };
        let fixed = |answer: String, meta: AnswerMeta, state: ConversationState| AnswerPlan {
            meta,
            answer: AnswerSource::Fixed(answer),
            cards: vec![],
            card_why: vec![],
            alternative: false,
            vocab: vocab.clone(),
            budget: vec![],
            session: session.clone(),
            new_turns: new_turns.clone(),
            state,
            started,
            retrieval: started.elapsed(),
        };
        match intent {
            Intent::Unsafe => {
                meta.refused = true;
                return Ok(fixed(
                    "I'm sorry, but I can't help with that. I'm happy to help you find products in our shop, though."
                        .into(),
                    meta,
                    state,
                ));
            }
            Intent::OutOfScope => {
                meta.refused = true;
                return Ok(fixed(
                    format!(
                        "I'm sorry, I can only help with shopping at {}: finding products, comparing them and \
                         checking prices and availability. What are you looking for?",
                        self.config.shop
                    ),
                    meta,
                    state,
                ));
            }
            Intent::SmallTalk => {
                return Ok(fixed(
                    "Hello! Tell me what you're looking for (and your budget, if you have one) and I'll find \
                     products that are in stock."
                        .into(),
                    meta,
                    state,
                ));
            }
            Intent::OtherLanguage => {
                return Ok(fixed(
                    "I can only read requests in English for now. Please tell me in English what you are \
                     looking for, with your budget if you have one."
                        .into(),
                    meta,
                    state,
                ));
            }
            Intent::Shopping | Intent::Vague => {}
        }
        let reading = self.read_turn(Some(generator), &vocab, text, &state).await?;
        if reading.vague && state.query.is_empty() && state.constraints.is_empty() {
            // Too vague to search: ask back, with the catalog's three largest categories.
            meta.intent = Intent::Vague;
            let suggestions = vocab.largest_categories(3);
            let text = if suggestions.is_empty() {
                "What kind of product are you looking for? Tell me the kind of product or a brand, and your budget \
                 if you have one, and I'll find what is in stock."
                    .to_string()
            } else {
                format!(
                    "What kind of product are you looking for? We have {}, for example. Tell me the kind of \
                     product or a brand, and your budget if you have one, and I'll find what is in stock.",
                    join_or(&suggestions)
                )
            };
            // What it did say (a budget) is kept for the next turn.
            let state = vocab.merge(&state, &reading, &shown);
            return Ok(fixed(text, meta, state));
        }
        if reading.relative.is_some() && shown.is_empty() && context {
            shown = self.shown_prices(&vocab, &state, request.filters.as_ref()).await?;
        }
        let state = vocab.merge(&state, &reading, &shown);
        meta.query = state.query.clone();
        meta.constraints = state.constraints.clone();
        let filter = state.constraints.to_filter(request.filters.as_ref());
        let budget: Vec<f64> = [filter.price_min, filter.price_max].into_iter().flatten().collect();
        let (kind, vouch) = kind_of(&vocab, &state, &filter);
        let mut hits = self.retrieve_kind(&state.query, &filter, self.config.candidates, &kind, vouch).await?;
        // Personalise: fuse relevance with the customer's taste, when they allow it.
        if let Some(key) = &customer_key
            && self.config.personal_weight > 0.0
            && hits.len() > 1
        {
            let profile = self.profiles.load_keys(vec![key.clone()]).await?.remove(key);
            if let Some(taste) = profile.filter(|p| p.consent.personalization).and_then(|p| p.taste) {
                hits = self.rerank(hits, &taste).await?;
                meta.personalized = true;
            }
        }
        hits.truncate(self.config.cards.max(1));
        let alternative = hits.is_empty();
        let answer = if alternative {
            // Nothing matches every constraint: say so and offer the nearest alternatives,
            // relaxing price first, then brands, then categories.
            self.stats.empty.fetch_add(1, Ordering::Relaxed);
            let mut relaxed = filter.clone();
            for step in 0..3 {
                match step {
                    0 => (relaxed.price_min, relaxed.price_max) = (None, None),
                    1 => (relaxed.brands, relaxed.exclude_brands, relaxed.attributes) = (None, None, None),
                    _ => relaxed.categories = None,
                }
                hits = self.retrieve_kind(&state.query, &relaxed, self.config.cards.max(1), &kind, vouch).await?;
                if !hits.is_empty() {
                    break;
                }
            }
            if hits.is_empty() && !kind.is_empty() {
                // Not even the kind of product: the nearest of anything, flagged as such.
                hits = self.retrieve(&state.query, &relaxed, self.config.cards.max(1)).await?;
            }
            let currency = hits.first().map_or("USD", |p| p.currency.as_str());
            let wanted = describe_constraints(&state, &filter, currency);
            AnswerSource::Fixed(if hits.is_empty() {
                format!("I'm sorry, I couldn't find anything in stock{wanted}.")
            } else {
                let names: Vec<String> = hits.iter().map(name_with_price).collect();
                format!(
                    "I'm sorry, I couldn't find anything in stock{wanted}. The nearest alternatives are {}.",
                    join_and(&names)
                )
            })
        } else {
            let mut history: Vec<Turn> = session.as_ref().map(|s| s.turns.clone()).unwrap_or_default();
            history.extend(new_turns.iter().cloned());
            let currency = hits.first().map_or("USD", |p| p.currency.as_str());
            let facts: Vec<Vec<String>> = hits.iter().map(|p| facts(p, &hits, filter.price_max)).collect();
            // The opening names what was understood (category, brands, price), not the
            // shopper's words: those are theirs to read back, not ours to repeat.
            let mut understood = state.clone();
            understood.query.clear();
            AnswerSource::Model(ModelAnswer {
                prompt: self.prompt(generator, &history, &hits, &facts)?,
                shape: Arc::new(answer_shape(&hits, &facts)?),
                opening: format!(
                    "Here is what I found in stock{}.",
                    describe_constraints(&understood, &filter, currency)
                ),
                facts,
            })
        };
        let personalized = meta.personalized && !alternative;
        let card_why = hits.iter().map(|p| self.why(p, &state, &filter, personalized)).collect();
        Ok(AnswerPlan {
            meta,
            answer,
            cards: hits,
            card_why,
            alternative,
            vocab,
            budget,
            session,
            new_turns,
            state,
            started,
            retrieval: started.elapsed(),
        })
    }

    /// Hybrid retrieval with the filter inside the store query.
    async fn retrieve(&self, query: &str, filter: &ProductFilter, limit: usize) -> Result<Vec<Product>> {
        let query = if query.trim().is_empty() { "products".to_string() } else { query.chars().take(1000).collect() };
        let request = SearchRequest {
            query,
            limit: Some(limit.clamp(1, self.search.max_limit)),
            offset: None,
            filters: Some(filter.clone()),
            mode: Some(SearchMode::Hybrid),
        };
        Ok(self.catalog.search(&request, &self.search).await?.into_iter().map(|h| h.product).collect())
    }

    /// Retrieval kept to products whose title has `kind` (a word of the catalog's titles); when
    /// the first candidates have none, a second search leads with the word; when that finds
    /// none either, a category asked for vouches for its products (when `vouch`: none of its
    /// titles has the word).
    async fn retrieve_kind(
        &self,
        query: &str,
        filter: &ProductFilter,
        limit: usize,
        kind: &[String],
        vouch: bool,
    ) -> Result<Vec<Product>> {
        if kind.is_empty() {
            return self.retrieve(query, filter, limit).await;
        }
        let has = |p: &Product| understand::words(&p.title).iter().any(|w| kind.iter().any(|k| is_kind(w, k)));
        let all = self.retrieve(query, filter, limit.max(self.config.candidates)).await?;
        let mut hits: Vec<Product> = all.iter().filter(|p| has(p)).cloned().collect();
        if hits.is_empty() {
            let lead = format!("{} {query}", kind.join(" "));
            hits = self.retrieve(&lead, filter, 3 * self.config.candidates.max(limit)).await?;
            hits.retain(has);
        }
        if hits.is_empty() && vouch && filter.categories.as_ref().is_some_and(|c| !c.is_empty()) {
            // The category was asked for and its titles use other words ("buds" for earbuds):
            // its products are of the kind by the catalog's own account.
            hits = all;
        }
        hits.truncate(limit);
        Ok(hits)
    }

    /// Prices of what the previous state showed (for "cheaper ones" without a stored session).
    async fn shown_prices(
        &self,
        vocab: &Vocabulary,
        state: &ConversationState,
        client: Option<&ProductFilter>,
    ) -> Result<Vec<f64>> {
        let filter = state.constraints.to_filter(client);
        let (kind, vouch) = kind_of(vocab, state, &filter);
        Ok(self
            .retrieve_kind(&state.query, &filter, self.config.cards.max(1), &kind, vouch)
            .await?
            .iter()
            .filter_map(|p| p.price)
            .collect())
    }

    /// Why a product fits: words it matches, the constraints it meets, rating, stock.
    fn why(&self, p: &Product, state: &ConversationState, filter: &ProductFilter, personalized: bool) -> String {
        let mut parts = Vec::new();
        let title: HashSet<String> = understand::words(&p.title).into_iter().collect();
        let matched: Vec<String> = state
            .query
            .split_whitespace()
            .filter(|w| title.contains(&understand::singular(&w.to_lowercase())))
            .map(str::to_string)
            .collect();
        if !matched.is_empty() {
            parts.push(format!("matches \"{}\"", matched.join(" ")));
        }
        if let Some(price) = p.price {
            let shown = format_price(price, &p.currency);
            match (filter.price_min, filter.price_max) {
                (Some(lo), Some(hi)) => parts.push(format!(
                    "{shown}, within {}-{}",
                    format_price(lo, &p.currency),
                    format_price(hi, &p.currency)
                )),
                (None, Some(hi)) => parts.push(format!("{shown}, under {}", format_price(hi, &p.currency))),
                (Some(lo), None) => parts.push(format!("{shown}, over {}", format_price(lo, &p.currency))),
                (None, None) => parts.push(shown),
            }
        }
        if let Some(b) = &p.brand
            && filter.brands.as_ref().is_some_and(|bs| bs.iter().any(|x| x.eq_ignore_ascii_case(b)))
        {
            parts.push(format!("{b}, as asked"));
        }
        if let Some(r) = p.attributes.get("rating").and_then(Value::as_f64) {
            match p.attributes.get("review_count").and_then(Value::as_u64) {
                Some(n) => parts.push(format!("rated {r:.1}/5 by {n} shoppers")),
                None => parts.push(format!("rated {r:.1}/5")),
            }
        }
        if personalized {
            parts.push("ranked up for your taste".into());
        }
        parts.push(match p.stock_qty {
            Some(q) if p.in_stock && q <= 5 => format!("in stock (only {q} left)"),
            _ if p.in_stock => "in stock".into(),
            _ => "out of stock".into(),
        });
        parts.join("; ")
    }
}

/// Relevance before filling: the words of the kind of product asked for that some title uses
/// (cards must have one), and whether a category asked for vouches for its products when none
/// does: only when none of its titles has the word (earbuds sold as "Buds"; not Samsung
/// tablets for "iPads under $169").
fn kind_of(vocab: &Vocabulary, state: &ConversationState, filter: &ProductFilter) -> (Vec<String>, bool) {
    let kind: Vec<String> = state.kind.iter().filter(|w| !vocab.products_with(w).is_empty()).cloned().collect();
    let vouch = !kind.iter().any(|k| {
        let holding = vocab.categories_with_word(k);
        filter.categories.iter().flatten().any(|c| holding.iter().any(|h| h.eq_ignore_ascii_case(c)))
    });
    (kind, vouch)
}

/// Whether a title word is of a kind: the word itself, or a compound ending with it ("armchair"
/// is a chair, "teapot" a pot).
pub(super) fn is_kind(word: &str, kind: &str) -> bool {
    word == kind || (word.len() >= kind.len() + 3 && word.ends_with(kind))
}

fn join_and(items: &[String]) -> String {
    match items.len() {
        0 => String::new(),
        1 => items[0].clone(),
        n => format!("{} and {}", items[..n - 1].join(", "), items[n - 1]),
    }
}

fn join_or(items: &[String]) -> String {
    match items.len() {
        0 => String::new(),
        1 => items[0].clone(),
        n => format!("{} or {}", items[..n - 1].join(", "), items[n - 1]),
    }
}

fn describe_constraints(state: &ConversationState, filter: &ProductFilter, currency: &str) -> String {
    let mut s = if state.query.trim().is_empty() { String::new() } else { format!(" for \"{}\"", state.query) };
    if let Some(c) = filter.categories.as_ref().filter(|c| !c.is_empty()) {
        s.push_str(&format!(" in {}", c.join(" or ")));
    }
    if let Some(b) = filter.brands.as_ref().filter(|b| !b.is_empty()) {
        s.push_str(&format!(" from {}", b.join(" or ")));
    }
    if let Some(b) = filter.exclude_brands.as_ref().filter(|b| !b.is_empty()) {
        s.push_str(&format!(" other than {}", b.join(" or ")));
    }
    for (name, values) in filter.attributes.iter().flatten() {
        s.push_str(&format!(" with {} {}", name.replace('_', " "), values.first().map_or("", String::as_str)));
    }
    match (filter.price_min, filter.price_max) {
        (Some(lo), Some(hi)) => {
            s.push_str(&format!(" between {} and {}", format_price(lo, currency), format_price(hi, currency)))
        }
        (None, Some(hi)) => s.push_str(&format!(" under {}", format_price(hi, currency))),
        (Some(lo), None) => s.push_str(&format!(" over {}", format_price(lo, currency))),
        (None, None) => {}
    }
    s
}
