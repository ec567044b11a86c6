//! The shopping assistant: a grounded, personalised chat over the live catalog.
//!
//! One request runs: read the conversation ([`understand`]'s rules, and the chat model under a
//! schema of the catalog for what they cannot place, in `read`: intent, hard constraints, the
//! kind of product, the search query), refuse out-of-scope or unsafe requests and ask back on
//! vague ones without retrieval, retrieve candidates with the hybrid search and the
//! constraints as filters inside the store query (cards only of the kind asked for), re-rank by the
//! customer's taste when consent allows, put a compact product table into the prompt within the
//! model's context, stream the answer sentence by sentence through the grounding check
//! ([`ground`]), then send the product cards. Conversations are kept (redacted) only when the
//! client names a `session_id` ([`session`]).
//!
//! This file holds the [`Assistant`] service, its counters and its public entry points. The
//! steps live beside it: `request` (the request and its checks), `read` (the model's reading
//! of a turn), `plan` (everything decided
//! before the model runs), `rank` (re-ranking by taste), `prompt` (the prompt within the model's
//! context), `answer` (generation, grounding and streaming) and `output` (what an answer
//! streams); [`describe`] drafts product descriptions and [`eval`] scores the assistant.
//!
//! Not the HTTP edge (routes and server-sent events are the API's) and not configuration
//! ([`AssistantConfig`] lives in `crate::config` and is re-exported here).

mod answer;
pub mod describe;
pub mod eval;
mod facts;
pub mod ground;
mod output;
mod plan;
mod prompt;
mod rank;
mod read;
mod request;
pub mod session;
pub mod understand;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

pub use self::output::{AnswerMeta, AnswerSummary, AnswerTimings, GroundingReport, Output, ProductCard, TokenUsage};
pub use self::prompt::short_title;
pub use self::request::{AssistantRequest, ChatMessage, MAX_ID_CHARS, MAX_MESSAGE_CHARS, MAX_MESSAGES};
use self::session::Sessions;
use self::understand::Vocabulary;
use crate::catalog::Catalog;
pub use crate::config::AssistantConfig;
use crate::config::SearchConfig;
use crate::error::{Error, Result};
use crate::events::Profiles;
use crate::infer::chat::Generator;
use crate::privacy::pii::Redactor;

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

/// The catalog's vocabulary with when it was built, shared by the service's clones.
type VocabularyCache = Arc<RwLock<Option<(Instant, Arc<Vocabulary>)>>>;

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
    vocab: VocabularyCache,
    stats: Arc<AssistantStats>,
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
        let v = Arc::new(Vocabulary::build(&self.catalog.all().await?));
        *self.vocab.write() = Some((Instant::now(), v.clone()));
        Ok(v)
    }

    /// Start answering: checks and plans at once (errors are the caller's), then streams.
    pub async fn chat(&self, request: AssistantRequest) -> Result<UnboundedReceiver<Output>> {
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

    /// Answer to the end (the non-streaming form): the same events, collected.
    pub async fn collect(mut rx: UnboundedReceiver<Output>) -> Result<(AnswerMeta, Vec<ProductCard>, AnswerSummary)> {
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
