//! The chat scheduler: one worker thread owns the model and serves every request.
//!
//! Requests arrive over a channel and wait in FIFO order; up to `max_active` are generated at
//! once (continuous batching). Every step runs all active sequences in one forward pass: each
//! decoding sequence adds one token, and sequences still reading their prompt add a chunk,
//! `prefill_chunk` prompt tokens per pass in all (oldest first), so a long prompt never stalls
//! the others' decoding for more than one chunk. New requests are admitted between steps.
//!
//! Each sequence has its own KV cache, freed when it ends. A new request starts from the
//! longest prefix of its prompt already in the [`PrefixCache`] (the assistant's instructions,
//! earlier turns), and every prompt's cache is offered to it once read.
//!
//! One sequence never hurts the others: a request whose client went away (its event receiver
//! is dropped) is cancelled before the next step; when a pass fails or panics, its sequences
//! run again one by one (their caches did not advance), and only the one that fails alone ends,
//! with its own error.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::guard::{JsonAutomaton, JsonGuard};
use super::json::JsonPrefix;
use super::reuse::{CANONICAL_ROWS, MIN_REUSED_TOKENS, PrefixCache, reuse_point};
use super::sampling::{Sampler, SamplingParams};
use super::schema::{SchemaPrefix, Shape};
use super::text::TextStream;
use super::{Cache, ChatModel, ChatTemplate, ChatTokenizer, KvPrefix, Message, Model, ModelShape};
use crate::error::{Error, FieldError, Result};

/// Scheduler settings.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Requests generated at once.
    pub max_active: usize,
    /// Requests waiting before new ones are refused (503).
    pub max_waiting: usize,
    /// Prompt tokens per forward pass (all sequences reading their prompt together).
    pub prefill_chunk: usize,
    /// Bytes of prompt KV caches kept for prefix reuse (0: off).
    pub prefix_cache_bytes: usize,
    /// Compute threads of the model's own pool (0: as many as the global pool).
    pub threads: usize,
}

/// One generation.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    /// Prompt token ids.
    pub prompt: Vec<u32>,
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// Sampling.
    pub sampling: SamplingParams,
    /// Stop strings (not part of the output).
    pub stop: Vec<String>,
    /// What the output must be: free text, one JSON object, or a document of a schema.
    pub format: OutputFormat,
}

/// The shape generation is held to.
#[derive(Debug, Clone, Default)]
pub enum OutputFormat {
    /// Free text.
    #[default]
    Text,
    /// One JSON object (`response_format: json_object`).
    JsonObject,
    /// One JSON document of a schema (`response_format: json_schema`).
    JsonSchema(Arc<Shape>),
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// End-of-generation token, stop string, or a complete JSON object.
    Stop,
    /// `max_tokens` reached.
    Length,
}

/// The end of a generation.
#[derive(Debug, Clone, Serialize)]
pub struct Finish {
    /// Why it ended.
    pub reason: FinishReason,
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Generated tokens.
    pub completion_tokens: usize,
    /// From submission to the first generated token.
    pub time_to_first_token: Duration,
    /// From submission to the end.
    pub total: Duration,
}

/// What a request receives, in order: text pieces, then one `Done` or `Failed`.
#[derive(Debug, Clone)]
pub enum GenerationEvent {
    /// Final text (never retracted).
    Text(String),
    /// Generation ended.
    Done(Finish),
    /// Generation failed.
    Failed(String),
}

/// Counters, for `/metrics` and tests.
#[derive(Debug, Default)]
pub struct SchedulerStats {
    /// Requests waiting.
    pub waiting: AtomicUsize,
    /// Requests generating.
    pub active: AtomicUsize,
    /// Requests finished.
    pub finished: AtomicU64,
    /// Requests cancelled because their client went away.
    pub cancelled: AtomicU64,
    /// Prompt tokens processed.
    pub prompt_tokens: AtomicU64,
    /// Tokens generated.
    pub generated_tokens: AtomicU64,
    /// Forward passes run.
    pub passes: AtomicU64,
    /// Sequences in those passes, summed (over `passes`: the mean batch).
    pub pass_sequences: AtomicU64,
    /// Sequences in the last pass.
    pub batch: AtomicUsize,
    /// Requests that started from a cached prompt prefix.
    pub prefix_hits: AtomicU64,
    /// Prompt tokens not run because their prefix was cached.
    pub prefix_tokens: AtomicU64,
    /// Bytes held by the prefix cache.
    pub prefix_bytes: AtomicUsize,
    /// Requests that ended with an error of their own.
    pub failed: AtomicU64,
    /// Bytes of the active requests' KV caches.
    pub kv_bytes: AtomicUsize,
}

/// What callers may know about the model.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChatInfo {
    /// Model name.
    pub name: String,
    /// Shape facts.
    pub shape: ModelShape,
}

struct Job {
    request: GenerateRequest,
    events: UnboundedSender<GenerationEvent>,
    submitted: Instant,
}

/// A handle to the scheduler. Cheap to clone.
#[derive(Clone)]
pub struct Generator {
    tx: mpsc::Sender<Job>,
    model: Model,
    info: Arc<ChatInfo>,
    tokenizer: Arc<ChatTokenizer>,
    template: Arc<ChatTemplate>,
    stats: Arc<SchedulerStats>,
    max_waiting: usize,
}

impl Generator {
    /// Start the worker thread that owns `model`.
    pub fn start(model: ChatModel, config: &SchedulerConfig) -> Self {
        let info = Arc::new(ChatInfo { name: model.name.clone(), shape: model.shape().clone() });
        let stats = Arc::new(SchedulerStats::default());
        let (tx, rx) = mpsc::channel();
        let worker = Worker {
            model: model.model.clone(),
            tokenizer: model.tokenizer.clone(),
            rx,
            stats: stats.clone(),
            config: config.clone(),
            waiting: VecDeque::new(),
            active: Vec::new(),
            prefixes: PrefixCache::new(config.prefix_cache_bytes, MIN_REUSED_TOKENS),
            fault_sequence: crate::fault::armed("chat.sequence"),
        };
        crate::infer::threads::spawn_worker("aisle-chat", config.threads, move || worker.run());
        Self {
            tx,
            model: model.model.clone(),
            info,
            tokenizer: model.tokenizer,
            template: model.template,
            stats,
            max_waiting: config.max_waiting.max(1),
        }
    }

    /// Model facts.
    pub fn info(&self) -> &ChatInfo {
        &self.info
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &ChatTokenizer {
        &self.tokenizer
    }

    /// Counters.
    pub fn stats(&self) -> &SchedulerStats {
        &self.stats
    }

    /// Memory the model holds (weights, dequantized copies); KV caches are in [`Self::stats`].
    pub fn memory(&self) -> super::model::ModelMemory {
        self.model.memory()
    }

    /// Render a conversation with the model's template and tokenize it.
    pub fn chat_prompt(&self, messages: &[Message]) -> Result<Vec<u32>> {
        let text = self.template.render(messages, true, self.tokenizer.special_texts())?;
        // For debugging prompts; the log writer redacts PII from it like from every line.
        tracing::debug!(prompt = %text, "rendered chat prompt");
        // The template writes BOS itself where the model wants one.
        let mut ids = self.tokenizer.encode(&text, false, true)?;
        if let Some(bos) = self.tokenizer.bos()
            && ids.first() != Some(&bos)
        {
            ids.insert(0, bos);
        }
        Ok(ids)
    }

    /// Tokenize a plain prompt (`/v1/completions`): BOS where the model wants one, no special tokens.
    pub fn text_prompt(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer.encode(text, true, false)
    }

    /// Check a request against the model's context and queue it; events arrive on the receiver.
    /// Dropping the receiver cancels the request.
    pub fn submit(&self, request: GenerateRequest) -> Result<UnboundedReceiver<GenerationEvent>> {
        let context = self.info.shape.context;
        if request.prompt.is_empty() {
            return Err(Error::invalid("/messages", "the prompt is empty"));
        }
        if request.max_tokens == 0 {
            return Err(Error::invalid("/max_tokens", "must be at least 1"));
        }
        if request.prompt.len() + request.max_tokens > context {
            return Err(Error::Invalid(vec![FieldError::new(
                if request.prompt.len() >= context { "/messages" } else { "/max_tokens" },
                format!(
                    "the prompt has {} tokens; with max_tokens {} that exceeds the model's context of {context} tokens",
                    request.prompt.len(),
                    request.max_tokens
                ),
            )]));
        }
        let waiting = self.stats.waiting.fetch_add(1, Ordering::SeqCst);
        if waiting >= self.max_waiting {
            self.stats.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(Error::Overloaded(format!("{waiting} chat requests are waiting")));
        }
        let (events, rx) = unbounded_channel();
        if self.tx.send(Job { request, events, submitted: Instant::now() }).is_err() {
            self.stats.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(Error::Internal("the chat worker has stopped".into()));
        }
        Ok(rx)
    }

    /// Generate to the end and return the text with how it finished.
    pub async fn generate(&self, request: GenerateRequest) -> Result<(String, Finish)> {
        let mut rx = self.submit(request)?;
        let mut text = String::new();
        while let Some(event) = rx.recv().await {
            match event {
                GenerationEvent::Text(t) => text.push_str(&t),
                GenerationEvent::Done(f) => return Ok((text, f)),
                GenerationEvent::Failed(e) => return Err(Error::Inference(e)),
            }
        }
        Err(Error::Internal("the chat worker dropped a request".into()))
    }
}

struct Sequence {
    job: Job,
    cache: Cache,
    fed: usize,
    /// Leading prompt positions computed as a cold run computes them (see [`reuse_point`]).
    canonical: usize,
    tokens: Vec<u32>,
    generated: usize,
    sampler: Sampler,
    text: TextStream,
    json: Option<JsonGuard>,
    first_token: Option<Duration>,
}

enum Step {
    Continue,
    Finished(FinishReason),
}

struct Worker {
    model: Model,
    tokenizer: Arc<ChatTokenizer>,
    rx: mpsc::Receiver<Job>,
    stats: Arc<SchedulerStats>,
    config: SchedulerConfig,
    waiting: VecDeque<Job>,
    active: Vec<Sequence>,
    prefixes: PrefixCache<KvPrefix>,
    fault_sequence: bool, // `AISLE_FAULT=chat.sequence`, read once (not on every pass)
}

impl Worker {
    fn run(mut self) {
        loop {
            if self.active.is_empty() && self.waiting.is_empty() {
                match self.rx.recv() {
                    Ok(job) => self.waiting.push_back(job),
                    Err(_) => return,
                }
            }
            while let Ok(job) = self.rx.try_recv() {
                self.waiting.push_back(job);
            }
            self.admit();
            let before = self.active.len();
            self.active.retain(|seq| !seq.job.events.is_closed());
            self.stats.cancelled.fetch_add((before - self.active.len()) as u64, Ordering::Relaxed);
            if !self.active.is_empty() {
                self.step();
            }
            self.stats.active.store(self.active.len(), Ordering::Relaxed);
            self.stats.kv_bytes.store(self.active.iter().map(|s| s.cache.bytes()).sum(), Ordering::Relaxed);
        }
    }

    fn admit(&mut self) {
        while self.active.len() < self.config.max_active.max(1) {
            let Some(job) = self.waiting.pop_front() else { break };
            self.stats.waiting.fetch_sub(1, Ordering::SeqCst);
            if job.events.is_closed() {
                self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let json = match &job.request.format {
                OutputFormat::Text => None,
                OutputFormat::JsonObject => Some(JsonAutomaton::Object(JsonPrefix::default())),
                OutputFormat::JsonSchema(shape) => Some(JsonAutomaton::Schema(SchemaPrefix::new(shape.clone()))),
            }
            .map(|json| JsonGuard { json, pending: Vec::new() });
            let (cache, fed) = self.start_cache(&job.request.prompt);
            self.active.push(Sequence {
                cache,
                fed,
                canonical: fed,
                tokens: job.request.prompt.clone(),
                generated: 0,
                sampler: Sampler::new(job.request.sampling.clone()),
                text: TextStream::new(job.request.stop.clone()),
                json,
                first_token: None,
                job,
            });
        }
        self.stats.active.store(self.active.len(), Ordering::Relaxed);
    }

    /// A cache for `prompt`: from the longest cached prefix, or empty; and how many prompt
    /// tokens it already holds.
    fn start_cache(&mut self, prompt: &[u32]) -> (Cache, usize) {
        let chunk = self.config.prefill_chunk.max(1);
        if self.model.batches()
            && let Some((prefix, shared)) = self.prefixes.lookup(prompt)
            && let Some(n) = reuse_point(shared, prompt.len(), chunk)
        {
            match self.model.cache_from(prefix, n) {
                Ok(cache) => {
                    self.stats.prefix_hits.fetch_add(1, Ordering::Relaxed);
                    self.stats.prefix_tokens.fetch_add(n as u64, Ordering::Relaxed);
                    return (cache, n);
                }
                Err(e) => tracing::warn!(error = %e, "a cached prompt prefix could not be reused"),
            }
        }
        (self.model.new_cache(), 0)
    }

    /// One step: every active sequence in one forward pass (a prompt chunk or its last token);
    /// then each chooses its next token. A failed pass is run again one sequence at a time.
    fn step(&mut self) {
        // What each sequence feeds: decoding ones their last token, prompt readers their next
        // chunk (up to the next multiple of `prefill_chunk`, or the prompt's end) while the
        // pass's prompt budget holds it, oldest first; a reader whose chunk does not fit waits a
        // step. A prompt is cut at the same places in any batch and after any reused prefix.
        let chunk = self.config.prefill_chunk.max(1);
        let mut budget = chunk;
        let spans: Vec<Option<(usize, usize)>> = self
            .active
            .iter()
            .map(|seq| {
                let prompt_len = seq.job.request.prompt.len();
                if seq.fed >= prompt_len {
                    return Some((seq.tokens.len() - 1, seq.tokens.len()));
                }
                // Chunks end at multiples of `chunk` from the prompt's start, wherever it began.
                let n = prompt_len.min((seq.fed / chunk + 1) * chunk) - seq.fed;
                if n > budget {
                    return None;
                }
                budget -= n;
                Some((seq.fed, seq.fed + n))
            })
            .collect();
        let chosen: Vec<usize> = (0..self.active.len()).filter(|&i| spans[i].is_some()).collect();
        let run = |model: &Model, active: &mut [Sequence], which: &[usize]| -> Result<Vec<Vec<f32>>> {
            if self.fault_sequence
                && which
                    .iter()
                    .any(|&i| active[i].generated >= 2 && active[i].job.request.stop.iter().any(|s| s == FAULT_STOP))
            {
                return Err(Error::Inference("AISLE_FAULT: a sequence failed in its pass".into()));
            }
            let mut items: Vec<(&[u32], &mut Cache)> = Vec::with_capacity(which.len());
            let mut rest: &mut [Sequence] = active;
            let mut base = 0;
            for &i in which {
                let (_, tail) = std::mem::take(&mut rest).split_at_mut(i - base);
                let (seq, tail) = tail.split_first_mut().expect("an active sequence");
                let (from, to) = spans[i].expect("chosen");
                items.push((&seq.tokens[from..to], &mut seq.cache));
                rest = tail;
                base = i + 1;
            }
            std::panic::catch_unwind(AssertUnwindSafe(|| model.forward_batch(&mut items)))
                .unwrap_or_else(|_| Err(Error::Internal("the forward pass panicked".into())))
        };
        let mut outcomes: Vec<(usize, Result<Vec<f32>>)> = Vec::with_capacity(chosen.len());
        let batched = if self.model.batches() && chosen.len() > 1 {
            run(&self.model, &mut self.active, &chosen).ok()
        } else {
            None
        };
        match batched {
            Some(all) => {
                self.count_pass(chosen.len());
                outcomes.extend(chosen.iter().copied().zip(all.into_iter().map(Ok)));
            }
            None => {
                for &i in &chosen {
                    self.count_pass(1);
                    let one = run(&self.model, &mut self.active, &[i]).map(|mut v| v.remove(0));
                    outcomes.push((i, one));
                }
            }
        }
        // Each sequence goes on, finishes or fails on its own; remove from the back.
        let mut ended: Vec<(usize, std::result::Result<FinishReason, Error>)> = Vec::new();
        for (i, logits) in outcomes {
            let (from, to) = spans[i].expect("chosen");
            let seq = &mut self.active[i];
            let outcome = logits.and_then(|logits| {
                let prompt_len = seq.job.request.prompt.len();
                if seq.fed < prompt_len {
                    self.stats.prompt_tokens.fetch_add((to - from) as u64, Ordering::Relaxed);
                    if seq.canonical == from && to - from >= CANONICAL_ROWS {
                        seq.canonical = to;
                    }
                    seq.fed = to;
                    if seq.fed < prompt_len {
                        return Ok(Step::Continue);
                    }
                    offer_prefix(&mut self.prefixes, &self.stats, seq);
                } else {
                    seq.fed += 1;
                }
                std::panic::catch_unwind(AssertUnwindSafe(|| choose(&self.tokenizer, &self.stats, seq, logits)))
                    .unwrap_or_else(|_| Err(Error::Internal("choosing a token panicked".into())))
            });
            match outcome {
                Ok(Step::Continue) => {}
                Ok(Step::Finished(reason)) => ended.push((i, Ok(reason))),
                Err(e) => ended.push((i, Err(e))),
            }
        }
        ended.sort_by_key(|(i, _)| std::cmp::Reverse(*i));
        for (i, how) in ended {
            let seq = self.active.remove(i);
            match how {
                Ok(reason) => finish(seq, reason, &self.stats),
                Err(e) => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "a chat request failed alone; the others go on");
                    let _ = seq.job.events.send(GenerationEvent::Failed(e.to_string()));
                }
            }
        }
    }

    fn count_pass(&self, sequences: usize) {
        self.stats.passes.fetch_add(1, Ordering::Relaxed);
        self.stats.pass_sequences.fetch_add(sequences as u64, Ordering::Relaxed);
        self.stats.batch.store(sequences, Ordering::Relaxed);
    }
}

/// With `AISLE_FAULT=chat.sequence`, every pass that holds a request with this stop string
/// fails once it has generated two tokens (tests of a sequence that fails mid-batch).
pub const FAULT_STOP: &str = "AISLE_FAULT_SEQUENCE";

/// Offer a sequence's prompt cache (just read) to the prefix cache: the positions a cold run
/// would compute the same way (a short last chunk took other kernels).
fn offer_prefix(prefixes: &mut PrefixCache<KvPrefix>, stats: &SchedulerStats, seq: &Sequence) {
    let prompt = &seq.job.request.prompt[..seq.canonical];
    if !prefixes.wants(prompt) {
        return;
    }
    match seq.cache.snapshot(prompt.len()) {
        Ok(Some(kv)) => {
            let bytes = kv.bytes();
            prefixes.insert(prompt, kv, bytes);
            stats.prefix_bytes.store(prefixes.bytes(), Ordering::Relaxed);
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "a prompt's cache could not be kept for reuse"),
    }
}

fn choose(tok: &ChatTokenizer, stats: &SchedulerStats, seq: &mut Sequence, mut logits: Vec<f32>) -> Result<Step> {
    logits.truncate(tok.vocab());
    if seq.job.request.sampling.ignore_eos {
        for t in tok.eog() {
            if let Some(l) = logits.get_mut(t as usize) {
                *l = f32::NEG_INFINITY;
            }
        }
    }
    let history = &seq.tokens;
    let token = match seq.json.as_ref() {
        None => seq.sampler.sample(&mut logits, history, None),
        Some(guard) => {
            let mut allowed = |t: u32| guard.allows(tok.token_bytes(t));
            seq.sampler.sample(&mut logits, history, Some(&mut allowed))
        }
    };
    let Some(token) = token else {
        return Err(Error::Inference("no token satisfies the JSON constraint".into()));
    };
    if seq.first_token.is_none() {
        seq.first_token = Some(seq.job.submitted.elapsed());
    }
    seq.tokens.push(token);
    seq.generated += 1;
    stats.generated_tokens.fetch_add(1, Ordering::Relaxed);
    if tok.is_eog(token) {
        return Ok(Step::Finished(FinishReason::Stop));
    }
    let bytes = tok.token_bytes(token);
    if let Some(guard) = seq.json.as_mut() {
        guard.push(bytes);
    }
    let delta = seq.text.push(bytes);
    if !delta.is_empty() {
        let _ = seq.job.events.send(GenerationEvent::Text(delta));
    }
    if seq.text.stopped() || seq.json.as_ref().is_some_and(|g| g.json.complete()) {
        return Ok(Step::Finished(FinishReason::Stop));
    }
    if seq.generated >= seq.job.request.max_tokens {
        return Ok(Step::Finished(FinishReason::Length));
    }
    Ok(Step::Continue)
}

fn finish(mut seq: Sequence, reason: FinishReason, stats: &SchedulerStats) {
    let rest = seq.text.finish();
    if !rest.is_empty() {
        let _ = seq.job.events.send(GenerationEvent::Text(rest));
    }
    let total = seq.job.submitted.elapsed();
    let first = seq.first_token.unwrap_or(total);
    super::record_finish(first, total, seq.generated);
    let _ = seq.job.events.send(GenerationEvent::Done(Finish {
        reason,
        prompt_tokens: seq.job.request.prompt.len(),
        completion_tokens: seq.generated,
        time_to_first_token: first,
        total,
    }));
    stats.finished.fetch_add(1, Ordering::Relaxed);
}
