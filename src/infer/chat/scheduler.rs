//! The chat scheduler: one worker thread owns the model and serves every request.
//!
//! Requests arrive over a channel and wait in FIFO order; up to `max_active` are generated at
//! once, round-robin one step each (a prompt chunk or one token), so a long prompt cannot hold
//! the others up. Each active request has its own KV cache, freed when it ends. A request whose
//! client went away (its event receiver is dropped) is cancelled at its next step and its slot
//! goes to the next waiting request.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::json::JsonPrefix;
use super::sampling::{Sampler, SamplingParams};
use super::schema::{SchemaPrefix, Shape};
use super::text::TextStream;
use super::{Cache, ChatModel, ChatTemplate, ChatTokenizer, Message, Model, ModelShape};
use crate::error::{Error, FieldError, Result};

/// Scheduler settings.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Requests generated at once.
    pub max_active: usize,
    /// Requests waiting before new ones are refused (503).
    pub max_waiting: usize,
    /// Prompt tokens per forward pass.
    pub prefill_chunk: usize,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
}

/// What callers may know about the model.
#[derive(Debug, Clone, Serialize)]
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
        };
        std::thread::Builder::new()
            .name("aisle-chat".into())
            .spawn(move || worker.run())
            .expect("spawn the chat worker");
        Self {
            tx,
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

/// The automaton a JSON constraint runs.
#[derive(Clone)]
enum JsonAutomaton {
    /// Any JSON object.
    Object(JsonPrefix),
    /// A document of a schema.
    Schema(SchemaPrefix),
}

impl JsonAutomaton {
    fn feed(&mut self, text: &str) -> bool {
        match self {
            JsonAutomaton::Object(j) => j.feed(text),
            JsonAutomaton::Schema(s) => s.feed(text),
        }
    }

    fn complete(&self) -> bool {
        match self {
            JsonAutomaton::Object(j) => j.complete(),
            JsonAutomaton::Schema(s) => s.complete(),
        }
    }
}

/// JSON constraint over bytes: characters may be split across tokens.
struct JsonGuard {
    json: JsonAutomaton,
    pending: Vec<u8>,
}

impl JsonGuard {
    /// Whether appending `bytes` keeps the output a JSON-object prefix.
    fn allows(&self, bytes: &[u8]) -> bool {
        if bytes.is_empty() {
            return false;
        }
        let mut all = self.pending.clone();
        all.extend_from_slice(bytes);
        let (text, rest) = split_utf8(&all);
        match &self.json {
            // Non-ASCII bytes can only be inside a string, so an incomplete tail is judged there.
            JsonAutomaton::Object(j) => j.accepts(text) && (rest.is_empty() || j.accepts(&format!("{text}\u{e9}"))),
            // A schema's enum values may hold non-ASCII characters: the tail must go on one.
            JsonAutomaton::Schema(s) => s.accepts_partial(text, rest),
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        let all = std::mem::take(&mut self.pending);
        let (text, rest) = split_utf8(&all);
        self.json.feed(text);
        self.pending = rest.to_vec();
    }
}

fn split_utf8(bytes: &[u8]) -> (&str, &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s, &[]),
        Err(e) => (std::str::from_utf8(&bytes[..e.valid_up_to()]).expect("valid prefix"), &bytes[e.valid_up_to()..]),
    }
}

struct Sequence {
    job: Job,
    cache: Cache,
    fed: usize,
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
            let mut i = 0;
            while i < self.active.len() {
                let seq = &mut self.active[i];
                if seq.job.events.is_closed() {
                    self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
                    self.active.swap_remove(i);
                    continue;
                }
                let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    step(&self.model, &self.tokenizer, &self.config, &self.stats, seq)
                }))
                .unwrap_or_else(|_| Err(Error::Internal("generation panicked".into())));
                match outcome {
                    Ok(Step::Continue) => i += 1,
                    Ok(Step::Finished(reason)) => {
                        let seq = self.active.swap_remove(i);
                        finish(seq, reason, &self.stats);
                    }
                    Err(e) => {
                        let seq = self.active.swap_remove(i);
                        let _ = seq.job.events.send(GenerationEvent::Failed(e.to_string()));
                    }
                }
            }
            self.stats.active.store(self.active.len(), Ordering::Relaxed);
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
            self.active.push(Sequence {
                cache: self.model.new_cache(),
                fed: 0,
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
}

/// One step of one sequence: a prompt chunk, or one generated token.
fn step(
    model: &Model,
    tok: &ChatTokenizer,
    config: &SchedulerConfig,
    stats: &SchedulerStats,
    seq: &mut Sequence,
) -> Result<Step> {
    let prompt_len = seq.job.request.prompt.len();
    if seq.fed < prompt_len {
        let end = (seq.fed + config.prefill_chunk.max(1)).min(prompt_len);
        let chunk = &seq.tokens[seq.fed..end];
        let logits = model.forward(chunk, &mut seq.cache)?;
        stats.prompt_tokens.fetch_add((end - seq.fed) as u64, Ordering::Relaxed);
        seq.fed = end;
        if seq.fed < prompt_len {
            return Ok(Step::Continue);
        }
        return choose(tok, stats, seq, logits);
    }
    let last = *seq.tokens.last().expect("non-empty");
    let logits = model.forward(&[last], &mut seq.cache)?;
    seq.fed += 1;
    choose(tok, stats, seq, logits)
}

fn choose(tok: &ChatTokenizer, stats: &SchedulerStats, seq: &mut Sequence, mut logits: Vec<f32>) -> Result<Step> {
    logits.truncate(tok.vocab());
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
    let _ = seq.job.events.send(GenerationEvent::Done(Finish {
        reason,
        prompt_tokens: seq.job.request.prompt.len(),
        completion_tokens: seq.generated,
        time_to_first_token: seq.first_token.unwrap_or(total),
        total,
    }));
    stats.finished.fetch_add(1, Ordering::Relaxed);
}
