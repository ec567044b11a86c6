//! The shopping assistant: a grounded, personalised chat over the live catalog.
//!
//! One request runs: read the conversation ([`understand`]: intent, hard constraints, the search
//! query), refuse out-of-scope or unsafe requests without retrieval, retrieve candidates with the
//! hybrid search and the constraints as filters inside the store query, re-rank by the
//! customer's taste when consent allows, put a compact product table into the prompt within the
//! model's context, stream the answer sentence by sentence through the grounding check
//! ([`ground`]), then send the product cards. Conversations are kept (redacted) only when the
//! client names a `session_id` ([`session`]).

pub mod describe;
pub mod eval;
pub mod ground;
pub mod session;
pub mod understand;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use self::ground::{Action, Grounder, Sentences, Violation, ViolationKind, format_price};
use self::session::{Session, Sessions, Turn};
use self::understand::{Constraints, Intent, State, Vocabulary};
use crate::catalog::search::{SearchMode, SearchRequest};
use crate::catalog::{Catalog, Product, ProductFilter, TEXT_VECTOR, product_point};
use crate::config::SearchConfig;
use crate::error::{Error, FieldError, Result};
use crate::events::Profiles;
use crate::infer::chat::{Event, GenerateRequest, Generator, Message, SamplingParams};
use crate::privacy::pii::Redactor;
use crate::store::Vector;

/// `[assistant]`: the shopping assistant.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AssistantConfig {
    /// What the shop is, for the model's instructions.
    pub shop: String,
    /// Product cards per answer.
    pub cards: usize,
    /// Candidates retrieved before re-ranking by taste.
    pub candidates: usize,
    /// Most tokens of an answer.
    pub max_tokens: usize,
    /// Weight of the customer's taste ranking against relevance (RRF; 0 turns it off).
    pub personal_weight: f64,
    /// Turns kept in a stored session (oldest dropped first).
    pub max_turns: usize,
    /// Sessions idle for longer are deleted (and compacted away).
    pub session_max_age_days: f64,
    /// Seconds the catalog vocabulary (categories, brands, title words) is reused.
    pub vocabulary_refresh_secs: u64,
}

impl Default for AssistantConfig {
    fn default() -> Self {
        Self {
            shop: "an electronics shop".into(),
            cards: 4,
            candidates: 20,
            max_tokens: 160,
            personal_weight: 0.5,
            max_turns: 20,
            session_max_age_days: 30.0,
            vocabulary_refresh_secs: 30,
        }
    }
}

/// One message of `POST /v1/assistant/chat`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChatMessage {
    /// `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// `POST /v1/assistant/chat` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    /// The shopper, for personalisation (their consent applies).
    pub customer_id: Option<String>,
    /// Keep the conversation under this id: later requests send only their new message.
    pub session_id: Option<String>,
    /// The conversation (or, with a stored session, its new messages); the last is the user's.
    pub messages: Vec<ChatMessage>,
    /// The client's own hard filters, on top of what the conversation asks for.
    pub filters: Option<ProductFilter>,
    /// Answer as server-sent events.
    pub stream: Option<bool>,
}

/// Longest message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 4000;
/// Most messages per request.
pub const MAX_MESSAGES: usize = 50;
/// Longest session or customer id.
pub const MAX_ID_CHARS: usize = 200;

impl ChatRequest {
    /// Check the request.
    pub fn check(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.messages.is_empty() {
            errors.push(FieldError::new("/messages", "must hold at least one message"));
        } else if self.messages.len() > MAX_MESSAGES {
            errors.push(FieldError::new("/messages", format!("must hold at most {MAX_MESSAGES} messages")));
        }
        for (i, m) in self.messages.iter().enumerate() {
            if m.role != "user" && m.role != "assistant" {
                errors.push(FieldError::new(
                    format!("/messages/{i}/role"),
                    format!("'{}' is not user or assistant", m.role),
                ));
            }
            if m.content.trim().is_empty() {
                errors.push(FieldError::new(format!("/messages/{i}/content"), "must not be blank"));
            } else if m.content.chars().count() > MAX_MESSAGE_CHARS {
                errors.push(FieldError::new(
                    format!("/messages/{i}/content"),
                    format!("must be at most {MAX_MESSAGE_CHARS} characters"),
                ));
            }
        }
        if let Some(last) = self.messages.last()
            && last.role != "user"
        {
            errors.push(FieldError::new(
                format!("/messages/{}/role", self.messages.len() - 1),
                "the last message must be the user's",
            ));
        }
        for (name, v) in [("session_id", &self.session_id), ("customer_id", &self.customer_id)] {
            if let Some(v) = v
                && (v.trim().is_empty() || v.chars().count() > MAX_ID_CHARS)
            {
                errors.push(FieldError::new(format!("/{name}"), format!("must be 1 to {MAX_ID_CHARS} characters")));
            }
        }
        if let Some(f) = &self.filters {
            errors.extend(f.check("/filters"));
        }
        errors
    }
}

/// A product card next to the answer.
#[derive(Debug, Clone, Serialize)]
pub struct Card {
    /// Product id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Price.
    pub price: Option<f64>,
    /// Currency.
    pub currency: String,
    /// Product page.
    pub url: Option<String>,
    /// Image.
    pub image_url: Option<String>,
    /// Buyable now.
    pub in_stock: bool,
    /// Units in stock.
    pub stock_qty: Option<i64>,
    /// Why it fits the request.
    pub why: String,
    /// Not a match for every constraint: the nearest alternative offered when nothing matched.
    pub alternative: bool,
}

/// What the grounding check did to one answer.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Grounding {
    /// Violations in the model's text.
    pub violations_before: usize,
    /// Violations left in the final answer (checked again from scratch).
    pub violations_after: usize,
    /// Claims rewritten from the catalog.
    pub repaired: usize,
    /// Sentences removed.
    pub removed: usize,
    /// The answer was replaced by one written from the cards (nothing grounded was left).
    pub fallback: bool,
    /// The violations found (and what was done).
    pub violations: Vec<Violation>,
    /// Violations the second check still found in the final answer.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remaining: Vec<Violation>,
}

/// Timings of one answer.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    /// Understanding and retrieval.
    pub retrieval_ms: f64,
    /// From the request to the model's first token.
    pub first_token_ms: Option<f64>,
    /// From the request to the first text sent (after its sentence was checked).
    pub first_text_ms: Option<f64>,
    /// From the request to the end.
    pub total_ms: f64,
}

/// The end of an answer.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The whole final answer.
    pub answer: String,
    /// The grounding check.
    pub grounding: Grounding,
    /// Prompt and generated tokens (0 when the model was not asked).
    pub usage: Value,
    /// Timings.
    pub timings: Timings,
}

/// The first event of an answer: how the request was understood.
#[derive(Debug, Clone, Serialize)]
pub struct Meta {
    /// The session id, if the conversation is stored.
    pub session_id: Option<String>,
    /// What the turn asks for.
    pub intent: Intent,
    /// The search query the conversation was rewritten into.
    pub query: String,
    /// The hard constraints applied (and in stock).
    pub constraints: Constraints,
    /// Whether the customer's taste re-ranked the results.
    pub personalized: bool,
    /// Whether the answer is a refusal.
    pub refused: bool,
}

/// What an answer streams, in order: one `Meta`, text pieces, the cards, one `Done` (or `Failed`).
#[derive(Debug, Clone)]
pub enum Output {
    /// How the request was understood.
    Meta(Meta),
    /// Checked answer text.
    Text(String),
    /// The product cards.
    Cards(Vec<Card>),
    /// The end.
    Done(Summary),
    /// Generation failed.
    Failed(String),
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct AssistantStats {
    /// Answers.
    pub requests: AtomicU64,
    /// Refusals (out of scope or unsafe).
    pub refusals: AtomicU64,
    /// Answers with no matching product.
    pub empty: AtomicU64,
    /// Violations found, by kind.
    pub violations_product: AtomicU64,
    /// Price violations found.
    pub violations_price: AtomicU64,
    /// Stock violations found.
    pub violations_stock: AtomicU64,
    /// Claims repaired.
    pub repaired: AtomicU64,
    /// Sentences removed.
    pub removed: AtomicU64,
    /// Answers replaced by one written from the cards.
    pub fallbacks: AtomicU64,
    /// Violations left after the check (should stay 0).
    pub violations_after: AtomicU64,
}

/// The assistant service.
#[derive(Clone)]
pub struct Assistant {
    catalog: Catalog,
    profiles: Profiles,
    sessions: Sessions,
    generator: Option<Generator>,
    redactor: Redactor,
    config: AssistantConfig,
    search: SearchConfig,
    vocab: Arc<RwLock<Option<(Instant, Arc<Vocabulary>)>>>,
    stats: Arc<AssistantStats>,
}

/// Everything decided before the model runs.
struct Plan {
    meta: Meta,
    /// A fixed answer (refusal, small talk, nothing found), or the model's prompt.
    answer: Planned,
    cards: Vec<Product>,
    card_why: Vec<String>,
    alternative: bool,
    vocab: Arc<Vocabulary>,
    budget: Vec<f64>,
    session: Option<Session>,
    new_turns: Vec<Turn>,
    state: State,
    started: Instant,
    retrieval: Duration,
}

enum Planned {
    Fixed(String),
    Model(Vec<u32>),
}

impl Assistant {
    /// The assistant over these services.
    pub fn new(
        catalog: Catalog,
        profiles: Profiles,
        sessions: Sessions,
        generator: Option<Generator>,
        redactor: Redactor,
        config: AssistantConfig,
        search: SearchConfig,
    ) -> Self {
        Self {
            catalog,
            profiles,
            sessions,
            generator,
            redactor,
            config,
            search,
            vocab: Default::default(),
            stats: Default::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> &AssistantStats {
        &self.stats
    }

    /// The sessions store.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// The chat model, or 503 when none is configured.
    pub fn generator(&self) -> Result<&Generator> {
        self.generator.as_ref().ok_or_else(|| Error::Unavailable("no chat model is configured ([chat] model)".into()))
    }

    /// The catalog's vocabulary, rebuilt when older than `vocabulary_refresh_secs`.
    pub async fn vocabulary(&self) -> Result<Arc<Vocabulary>> {
        let fresh = Duration::from_secs(self.config.vocabulary_refresh_secs);
        if let Some((at, v)) = self.vocab.read().as_ref()
            && at.elapsed() < fresh
        {
            return Ok(v.clone());
        }
        let all = ProductFilter { include_hidden: true, ..Default::default() };
        let mut products = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let (page, next) = self.catalog.list(&all, cursor.as_deref(), 1000).await?;
            products.extend(page);
            match next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        let v = Arc::new(Vocabulary::build(&products));
        *self.vocab.write() = Some((Instant::now(), v.clone()));
        Ok(v)
    }

    /// Start answering: checks and plans at once (errors are the caller's), then streams.
    pub async fn chat(&self, request: ChatRequest) -> Result<UnboundedReceiver<Output>> {
        let errors = request.check();
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }
        let generator = self.generator()?.clone();
        let plan = self.plan(&request, &generator).await?;
        let (tx, rx) = unbounded_channel();
        let this = self.clone();
        tokio::spawn(async move { this.answer(plan, generator, tx).await });
        Ok(rx)
    }

    async fn plan(&self, request: &ChatRequest, generator: &Generator) -> Result<Plan> {
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
            None => (State::default(), vec![]),
        };
        let last = new_turns.len() - 1;
        for t in new_turns[..last].iter().filter(|t| t.role == "user") {
            let context = !state.query.is_empty();
            if vocab.intent(&t.content, context) != Intent::Shopping {
                continue;
            }
            let reading = vocab.read(&t.content);
            if reading.relative.is_some() && shown.is_empty() && context {
                shown = self.shown_prices(&state, request.filters.as_ref()).await?;
            }
            state = vocab.merge(&state, &reading, &shown);
            shown.clear();
        }
        let text = &new_turns[last].content;
        let context = !state.query.is_empty();
        let intent = vocab.intent(text, context);
        let mut meta = Meta {
            session_id: request.session_id.clone(),
            intent,
            query: String::new(),
            constraints: state.constraints.clone(),
            personalized: false,
            refused: false,
        };
        let fixed = |answer: String, meta: Meta, state: State| Plan {
            meta,
            answer: Planned::Fixed(answer),
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
            Intent::Shopping => {}
        }
        let reading = vocab.read(text);
        if reading.relative.is_some() && shown.is_empty() && context {
            shown = self.shown_prices(&state, request.filters.as_ref()).await?;
        }
        let state = vocab.merge(&state, &reading, &shown);
        meta.query = state.query.clone();
        meta.constraints = state.constraints.clone();
        let filter = state.constraints.to_filter(request.filters.as_ref());
        let budget: Vec<f64> = [filter.price_min, filter.price_max].into_iter().flatten().collect();
        let mut hits = self.retrieve(&state.query, &filter, self.config.candidates).await?;
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
                    1 => (relaxed.brands, relaxed.exclude_brands) = (None, None),
                    _ => relaxed.categories = None,
                }
                hits = self.retrieve(&state.query, &relaxed, self.config.cards.max(1)).await?;
                if !hits.is_empty() {
                    break;
                }
            }
            let currency = hits.first().map_or("USD", |p| p.currency.as_str());
            let wanted = describe_constraints(&state, &filter, currency);
            Planned::Fixed(if hits.is_empty() {
                format!("I'm sorry, I couldn't find anything in stock {wanted}.")
            } else {
                let names: Vec<String> = hits.iter().map(name_with_price).collect();
                format!(
                    "I'm sorry, I couldn't find anything in stock {wanted}. The nearest alternatives are {}.",
                    join_and(&names)
                )
            })
        } else {
            let mut history: Vec<Turn> = session.as_ref().map(|s| s.turns.clone()).unwrap_or_default();
            history.extend(new_turns.iter().cloned());
            Planned::Model(self.prompt(generator, &history, &hits)?)
        };
        let personalized = meta.personalized && !alternative;
        let card_why = hits.iter().map(|p| self.why(p, &state, &filter, personalized)).collect();
        Ok(Plan {
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

    /// Prices of what the previous state showed (for "cheaper ones" without a stored session).
    async fn shown_prices(&self, state: &State, client: Option<&ProductFilter>) -> Result<Vec<f64>> {
        let filter = state.constraints.to_filter(client);
        Ok(self
            .retrieve(&state.query, &filter, self.config.cards.max(1))
            .await?
            .iter()
            .filter_map(|p| p.price)
            .collect())
    }

    /// Fuse the relevance order with the taste order (weighted RRF, k = 60).
    async fn rerank(&self, hits: Vec<Product>, taste: &[f32]) -> Result<Vec<Product>> {
        let records = self
            .catalog
            .store()
            .retrieve(
                crate::catalog::PRODUCTS,
                hits.iter().map(|p| product_point(&p.id)).collect(),
                vec![TEXT_VECTOR.into()],
            )
            .await?;
        let norm = taste.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        let mut sim: std::collections::HashMap<String, f32> = Default::default();
        for r in records {
            if let (Some(id), Some(Vector::Dense(v))) =
                (r.payload.get("id").and_then(Value::as_str), r.vectors.get(TEXT_VECTOR))
            {
                sim.insert(id.to_string(), v.iter().zip(taste).map(|(a, b)| a * b).sum::<f32>() / norm);
            }
        }
        let mut by_taste: Vec<usize> = (0..hits.len()).collect();
        by_taste.sort_by(|&a, &b| {
            let (sa, sb) =
                (sim.get(&hits[a].id).copied().unwrap_or(-1.0), sim.get(&hits[b].id).copied().unwrap_or(-1.0));
            sb.total_cmp(&sa)
        });
        let mut score = vec![0.0f64; hits.len()];
        for (rank, s) in score.iter_mut().enumerate() {
            *s += 1.0 / (60.0 + rank as f64 + 1.0);
        }
        for (rank, &i) in by_taste.iter().enumerate() {
            score[i] += self.config.personal_weight / (60.0 + rank as f64 + 1.0);
        }
        let mut order: Vec<usize> = (0..hits.len()).collect();
        order.sort_by(|&a, &b| score[b].total_cmp(&score[a]).then(a.cmp(&b)));
        let mut hits: Vec<Option<Product>> = hits.into_iter().map(Some).collect();
        Ok(order.into_iter().filter_map(|i| hits[i].take()).collect())
    }

    /// Why a product fits: words it matches, the constraints it meets, rating, stock.
    fn why(&self, p: &Product, state: &State, filter: &ProductFilter, personalized: bool) -> String {
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

    /// The prompt: instructions with the product table, then as much of the conversation as fits.
    fn prompt(&self, generator: &Generator, history: &[Turn], products: &[Product]) -> Result<Vec<u32>> {
        let context = generator.info().shape.context;
        let room = context.saturating_sub(self.config.max_tokens + 8);
        let mut rows = products.len();
        let mut first = 0;
        loop {
            let mut messages = vec![Message::new("system", self.instructions(&products[..rows]))];
            messages.extend(history[first..].iter().map(|t| Message::new(&t.role, t.content.clone())));
            let ids = generator.chat_prompt(&messages)?;
            if ids.len() <= room {
                return Ok(ids);
            }
            if first + 1 < history.len() {
                first += 1; // drop the oldest turn
            } else if rows > 1 {
                rows -= 1;
            } else {
                return Err(Error::invalid(
                    format!("/messages/{}/content", history.len().saturating_sub(1)),
                    format!("the message is too long for the model's context of {context} tokens"),
                ));
            }
        }
    }

    fn instructions(&self, products: &[Product]) -> String {
        let mut s = format!(
            "You are the shopping assistant of {}. Recommend only products from the table below, by name. \
             Quote prices exactly as listed. Never invent products, prices or specifications. \
             Answer in two to four short sentences.\n\nProducts in stock:\n",
            self.config.shop
        );
        for (i, p) in products.iter().enumerate() {
            let mut row = format!("{}. {}", i + 1, short_title(&p.title));
            if let Some(price) = p.price {
                row.push_str(&format!(" | {}", format_price(price, &p.currency)));
            }
            if let Some(b) = &p.brand {
                row.push_str(&format!(" | {b}"));
            }
            if let Some(c) = p.categories.first() {
                row.push_str(&format!(" | {c}"));
            }
            if let Some(r) = p.attributes.get("rating").and_then(Value::as_f64) {
                row.push_str(&format!(" | rated {r:.1}/5"));
            }
            s.push_str(&row);
            s.push('\n');
        }
        s
    }

    async fn answer(&self, plan: Plan, generator: Generator, tx: UnboundedSender<Output>) {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        if plan.meta.refused {
            self.stats.refusals.fetch_add(1, Ordering::Relaxed);
        }
        if tx.send(Output::Meta(plan.meta.clone())).is_err() {
            return;
        }
        let mut grounding = Grounding::default();
        let mut timings = Timings { retrieval_ms: ms(plan.retrieval), ..Default::default() };
        let mut usage = json!({"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0});
        let mut answer = String::new();
        match &plan.answer {
            Planned::Fixed(text) => {
                timings.first_text_ms = Some(ms(plan.started.elapsed()));
                answer = text.clone();
                if tx.send(Output::Text(answer.clone())).is_err() {
                    return;
                }
            }
            Planned::Model(prompt) => {
                let request = GenerateRequest {
                    prompt: prompt.clone(),
                    max_tokens: self.config.max_tokens,
                    sampling: SamplingParams { temperature: 0.0, repetition_penalty: 1.1, ..SamplingParams::default() },
                    stop: vec![],
                    json: false,
                };
                let mut rx = match generator.submit(request) {
                    Ok(rx) => rx,
                    Err(e) => {
                        let _ = tx.send(Output::Failed(e.to_string()));
                        return;
                    }
                };
                let mut grounder = Grounder::new(&plan.vocab, &plan.cards, plan.budget.clone());
                let mut sentences = Sentences::default();
                let mut seen: HashSet<String> = HashSet::new();
                let mut emit = |sentence: String, answer: &mut String, grounding: &mut Grounding| -> Option<String> {
                    let checked = grounder.check(&sentence);
                    grounding.violations_before += checked.violations.len();
                    grounding.repaired += checked.violations.iter().filter(|v| v.action == Action::Repaired).count();
                    if checked.text.is_none() {
                        grounding.removed += 1;
                    }
                    grounding.violations.extend(checked.violations);
                    let text = checked.text?;
                    // Small models repeat themselves: a sentence said once is enough.
                    if !seen.insert(text.trim().to_lowercase()) {
                        return None;
                    }
                    let piece = if answer.is_empty() { text.trim_start().to_string() } else { text };
                    answer.push_str(&piece);
                    Some(piece)
                };
                loop {
                    let Some(event) = rx.recv().await else {
                        let _ = tx.send(Output::Failed("the chat worker dropped the request".into()));
                        return;
                    };
                    match event {
                        Event::Text(t) => {
                            if timings.first_token_ms.is_none() {
                                timings.first_token_ms = Some(ms(plan.started.elapsed()));
                            }
                            for s in sentences.push(&t) {
                                if let Some(piece) = emit(s, &mut answer, &mut grounding) {
                                    timings.first_text_ms.get_or_insert(ms(plan.started.elapsed()));
                                    if tx.send(Output::Text(piece)).is_err() {
                                        return; // the client left: dropping `rx` cancels generation
                                    }
                                }
                            }
                        }
                        Event::Done(f) => {
                            if timings.first_token_ms.is_none() {
                                timings.first_token_ms = Some(ms(f.time_to_first_token + plan.retrieval));
                            }
                            usage = json!({
                                "prompt_tokens": f.prompt_tokens,
                                "completion_tokens": f.completion_tokens,
                                "total_tokens": f.prompt_tokens + f.completion_tokens,
                            });
                            break;
                        }
                        Event::Failed(e) => {
                            let _ = tx.send(Output::Failed(e));
                            return;
                        }
                    }
                }
                if let Some(s) = sentences.finish()
                    && let Some(piece) = emit(s, &mut answer, &mut grounding)
                {
                    timings.first_text_ms.get_or_insert(ms(plan.started.elapsed()));
                    if tx.send(Output::Text(piece)).is_err() {
                        return;
                    }
                }
                // Nothing grounded left (or nothing said): answer from the cards.
                if !answer.chars().any(char::is_alphanumeric) {
                    grounding.fallback = true;
                    self.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
                    let names: Vec<String> = plan.cards.iter().map(name_with_price).collect();
                    // One clause per card, so that each price sits with its product.
                    let text = format!("Here is what I found in stock: {}.", names.join("; "));
                    let piece = if answer.is_empty() { text } else { format!(" {text}") };
                    answer.push_str(&piece);
                    timings.first_text_ms.get_or_insert(ms(plan.started.elapsed()));
                    if tx.send(Output::Text(piece)).is_err() {
                        return;
                    }
                }
                // Check the final answer again from scratch: what a shopper reads.
                let mut again = Grounder::new(&plan.vocab, &plan.cards, plan.budget.clone());
                let mut split = Sentences::default();
                let mut parts = split.push(&answer);
                parts.extend(split.finish());
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
        let cards: Vec<Card> = plan
            .cards
            .iter()
            .zip(&plan.card_why)
            .map(|(p, why)| Card {
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
        let _ = tx.send(Output::Done(Summary { answer, grounding, usage, timings }));
    }

    /// Answer to the end (the non-streaming form): the same events, collected.
    pub async fn collect(mut rx: UnboundedReceiver<Output>) -> Result<(Meta, Vec<Card>, Summary)> {
        let (mut meta, mut cards) = (None, Vec::new());
        while let Some(o) = rx.recv().await {
            match o {
                Output::Meta(m) => meta = Some(m),
                Output::Text(_) => {}
                Output::Cards(c) => cards = c,
                Output::Done(s) => {
                    let meta = meta.ok_or_else(|| Error::Internal("an answer without its first event".into()))?;
                    return Ok((meta, cards, s));
                }
                Output::Failed(e) => return Err(Error::Inference(e)),
            }
        }
        Err(Error::Internal("the answer ended early".into()))
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

/// A title short enough for a prompt table and for a model to repeat.
pub fn short_title(title: &str) -> String {
    let cut = title.find(" - ").or_else(|| title.find(" with ")).or_else(|| title.find(", ")).unwrap_or(title.len());
    let t = title[..cut].trim();
    let words: Vec<&str> = t.split_whitespace().collect();
    if words.len() > 10 { words[..10].join(" ") } else { t.to_string() }
}

fn name_with_price(p: &Product) -> String {
    match p.price {
        Some(price) => format!("{} ({})", short_title(&p.title), format_price(price, &p.currency)),
        None => short_title(&p.title),
    }
}

fn join_and(items: &[String]) -> String {
    match items.len() {
        0 => String::new(),
        1 => items[0].clone(),
        n => format!("{} and {}", items[..n - 1].join(", "), items[n - 1]),
    }
}

fn describe_constraints(state: &State, filter: &ProductFilter, currency: &str) -> String {
    let mut s = format!("for \"{}\"", state.query);
    if let Some(c) = filter.categories.as_ref().filter(|c| !c.is_empty()) {
        s.push_str(&format!(" in {}", c.join(" or ")));
    }
    if let Some(b) = filter.brands.as_ref().filter(|b| !b.is_empty()) {
        s.push_str(&format!(" from {}", b.join(" or ")));
    }
    if let Some(b) = filter.exclude_brands.as_ref().filter(|b| !b.is_empty()) {
        s.push_str(&format!(" other than {}", b.join(" or ")));
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
