//! The embedding queue: one worker thread owns the model and batches requests.
//!
//! Callers tokenize their texts and send one job over a channel with a oneshot for the answer;
//! nothing else is shared. The worker alone owns the pending items. It fills each forward pass
//! up to a padded-token budget with texts of similar length (sorted by length, always including
//! the oldest waiting text so that long texts cannot starve), and skips the texts of callers who
//! went away (their oneshot is closed) instead of computing them.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;

use tokenizers::{Encoding, Tokenizer};
use tokio::sync::oneshot;

use super::embed::{EmbeddingModel, Pooling};
use crate::config::EmbedConfig;
use crate::error::{Error, Result};

/// What callers may know about the model behind the queue.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct EmbedderInfo {
    /// Model name (folder name).
    pub name: String,
    /// Vector dimension.
    pub dim: usize,
    /// Longest input in tokens (longer inputs are truncated).
    pub max_len: usize,
    /// Pooling mode.
    pub pooling: Pooling,
    /// Whether vectors are L2-normalised.
    pub normalize: bool,
    /// Bytes of the weights as loaded.
    pub weights_bytes: u64,
}

/// Counters of the queue, for `/metrics` and benchmarks.
#[derive(Debug, Default)]
pub struct EmbedStats {
    /// Texts waiting or being embedded.
    pub queued: AtomicUsize,
    /// Forward passes run.
    pub batches: AtomicU64,
    /// Texts embedded.
    pub texts: AtomicU64,
    /// Real (unpadded) tokens embedded.
    pub tokens: AtomicU64,
    /// Padded tokens computed (tokens + padding).
    pub padded_tokens: AtomicU64,
    /// Texts skipped because their caller went away.
    pub skipped: AtomicU64,
    /// Query embeddings answered from the cache.
    pub query_cache_hits: AtomicU64,
    /// Query embeddings computed (not in the cache).
    pub query_cache_misses: AtomicU64,
}

/// Query embeddings by their normalised text, bounded: two generations of at most `cap / 2`
/// entries each; a hit in the old one moves to the new one, and when the new one is full the
/// old one is dropped. Close to least-recently-used, with O(1) work per call.
struct QueryCache {
    cap: usize,
    new: HashMap<String, Arc<Vec<f32>>>,
    old: HashMap<String, Arc<Vec<f32>>>,
}

impl QueryCache {
    fn get(&mut self, key: &str) -> Option<Arc<Vec<f32>>> {
        if let Some(v) = self.new.get(key) {
            return Some(v.clone());
        }
        let v = self.old.remove(key)?;
        self.put(key.to_string(), v.clone());
        Some(v)
    }

    fn put(&mut self, key: String, v: Arc<Vec<f32>>) {
        if self.new.len() >= self.cap.div_ceil(2) {
            self.old = std::mem::take(&mut self.new);
        }
        self.new.insert(key, v);
    }
}

/// The cache key of a query: its words as the tokenizer splits them (runs of whitespace are one).
fn normalise(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

struct Job {
    encodings: Vec<Encoding>,
    reply: oneshot::Sender<Result<Vec<Vec<f32>>>>,
}

/// A handle to the embedding queue. Cheap to clone.
#[derive(Clone)]
pub struct Embedder {
    tx: mpsc::Sender<Job>,
    tokenizer: Arc<Tokenizer>,
    info: Arc<EmbedderInfo>,
    stats: Arc<EmbedStats>,
    max_queued: usize,
    queries: Option<Arc<std::sync::Mutex<QueryCache>>>,
}

impl Embedder {
    /// Start the worker thread that owns `model`.
    pub fn start(model: EmbeddingModel, config: &EmbedConfig) -> Self {
        let info = Arc::new(EmbedderInfo {
            name: model.name().to_string(),
            dim: model.dim(),
            max_len: model.max_len(),
            pooling: model.pooling(),
            normalize: model.normalizes(),
            weights_bytes: model.weights_bytes(),
        });
        let tokenizer = Arc::new(model.tokenizer().clone());
        let stats = Arc::new(EmbedStats::default());
        let (tx, rx) = mpsc::channel();
        let worker = Worker {
            model,
            rx,
            stats: stats.clone(),
            max_batch_tokens: config.max_batch_tokens.max(1),
            max_batch_size: config.max_batch_size.max(1),
            jobs: HashMap::new(),
            pending: Vec::new(),
            next_job: 0,
            next_seq: 0,
        };
        crate::infer::threads::spawn_worker("aisle-embed", config.threads, move || worker.run());
        let queries = (config.query_cache_entries > 0).then(|| {
            Arc::new(std::sync::Mutex::new(QueryCache {
                cap: config.query_cache_entries,
                new: HashMap::new(),
                old: HashMap::new(),
            }))
        });
        Self { tx, tokenizer, info, stats, max_queued: config.max_queued.max(1), queries }
    }

    /// Model facts.
    pub fn info(&self) -> &EmbedderInfo {
        &self.info
    }

    /// Queue counters.
    pub fn stats(&self) -> &EmbedStats {
        &self.stats
    }

    /// Number of tokens `text` has for this model (after truncation).
    pub fn count_tokens(&self, text: &str) -> Result<usize> {
        Ok(self.tokenize(&[text])?[0].get_ids().len())
    }

    fn tokenize(&self, texts: &[&str]) -> Result<Vec<Encoding>> {
        texts
            .iter()
            .map(|t| self.tokenizer.encode(*t, true).map_err(|e| Error::Inference(format!("tokenization failed: {e}"))))
            .collect()
    }

    fn submit(&self, texts: &[&str]) -> Result<oneshot::Receiver<Result<Vec<Vec<f32>>>>> {
        let n = texts.len();
        let before = self.stats.queued.fetch_add(n, Ordering::SeqCst);
        if before + n > self.max_queued && before > 0 {
            self.stats.queued.fetch_sub(n, Ordering::SeqCst);
            return Err(Error::Overloaded(format!("embedding queue is full ({before} texts waiting)")));
        }
        let encodings = match self.tokenize(texts) {
            Ok(e) => e,
            Err(e) => {
                self.stats.queued.fetch_sub(n, Ordering::SeqCst);
                return Err(e);
            }
        };
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Job { encodings, reply }).is_err() {
            self.stats.queued.fetch_sub(n, Ordering::SeqCst);
            return Err(Error::Internal("the embedding worker has stopped".into()));
        }
        Ok(rx)
    }

    /// Embed `texts`; the answer keeps their order. Dropping the future cancels the work that
    /// has not started yet.
    pub async fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let rx = if texts.len() > 16 {
            let this = self.clone();
            let owned: Vec<String> = texts.iter().map(|s| s.to_string()).collect();
            tokio::task::spawn_blocking(move || this.submit(&owned.iter().map(String::as_str).collect::<Vec<_>>()))
                .await
                .map_err(|e| Error::Internal(format!("tokenization task failed: {e}")))??
        } else {
            self.submit(texts)?
        };
        rx.await.map_err(|_| Error::Internal("the embedding worker dropped a request".into()))?
    }

    /// The embedding of a search query, from a bounded cache keyed by the query's normalised
    /// text (search and assistant retrieval repeat queries; catalog texts do not use it).
    pub async fn embed_query(&self, text: &str) -> Result<Vec<f32>> {
        let key = normalise(text);
        if let Some(cache) = &self.queries
            && let Some(v) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key)
        {
            self.stats.query_cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(v.as_ref().clone());
        }
        self.stats.query_cache_misses.fetch_add(1, Ordering::Relaxed);
        let v = self.embed(&[key.as_str()]).await?.pop().ok_or_else(|| Error::Internal("no query vector".into()))?;
        if let Some(cache) = &self.queries {
            cache.lock().unwrap_or_else(|p| p.into_inner()).put(key, Arc::new(v.clone()));
        }
        Ok(v)
    }

    /// Blocking twin of [`Self::embed`], for command-line tools outside an async runtime.
    pub fn embed_blocking(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        self.submit(texts)?
            .blocking_recv()
            .map_err(|_| Error::Internal("the embedding worker dropped a request".into()))?
    }
}

struct JobState {
    results: Vec<Option<Vec<f32>>>,
    remaining: usize,
    reply: oneshot::Sender<Result<Vec<Vec<f32>>>>,
    /// When its texts joined the queue.
    queued_at: std::time::Instant,
}

struct Item {
    job: u64,
    index: usize,
    seq: u64,
    encoding: Encoding,
}

struct Worker {
    model: EmbeddingModel,
    rx: mpsc::Receiver<Job>,
    stats: Arc<EmbedStats>,
    max_batch_tokens: usize,
    max_batch_size: usize,
    jobs: HashMap<u64, JobState>,
    pending: Vec<Item>,
    next_job: u64,
    next_seq: u64,
}

impl Worker {
    fn run(mut self) {
        loop {
            if self.pending.is_empty() {
                match self.rx.recv() {
                    Ok(job) => self.accept(job),
                    Err(_) => return, // every handle is gone
                }
            }
            while let Ok(job) = self.rx.try_recv() {
                self.accept(job);
            }
            self.drop_abandoned();
            if self.pending.is_empty() {
                continue;
            }
            let chosen = select_batch(
                &self.pending.iter().map(|i| (i.encoding.get_ids().len(), i.seq)).collect::<Vec<_>>(),
                self.max_batch_tokens,
                self.max_batch_size,
            );
            let mut batch = Vec::with_capacity(chosen.len());
            let mut chosen = chosen;
            chosen.sort_unstable_by(|a, b| b.cmp(a));
            for i in chosen {
                batch.push(self.pending.swap_remove(i));
            }
            self.compute(batch);
        }
    }

    fn accept(&mut self, job: Job) {
        let id = self.next_job;
        self.next_job += 1;
        let n = job.encodings.len();
        for (index, encoding) in job.encodings.into_iter().enumerate() {
            self.pending.push(Item { job: id, index, seq: self.next_seq, encoding });
            self.next_seq += 1;
        }
        self.jobs.insert(
            id,
            JobState { results: vec![None; n], remaining: n, reply: job.reply, queued_at: std::time::Instant::now() },
        );
    }

    /// Forget the pending texts of callers who are no longer waiting.
    fn drop_abandoned(&mut self) {
        let gone: Vec<u64> = self.jobs.iter().filter(|(_, j)| j.reply.is_closed()).map(|(id, _)| *id).collect();
        if gone.is_empty() {
            return;
        }
        let before = self.pending.len();
        self.pending.retain(|item| !gone.contains(&item.job));
        let skipped = before - self.pending.len();
        for id in gone {
            self.jobs.remove(&id);
        }
        self.stats.skipped.fetch_add(skipped as u64, Ordering::Relaxed);
        self.stats.queued.fetch_sub(skipped, Ordering::SeqCst);
    }

    fn compute(&mut self, batch: Vec<Item>) {
        let encodings: Vec<&Encoding> = batch.iter().map(|i| &i.encoding).collect();
        let tokens: usize = encodings.iter().map(|e| e.get_ids().len()).sum();
        let padded = encodings.iter().map(|e| e.get_ids().len()).max().unwrap_or(0) * encodings.len();
        for item in &batch {
            if let Some(job) = self.jobs.get(&item.job) {
                metrics::histogram!("aisle_embed_queue_wait_seconds").record(job.queued_at.elapsed().as_secs_f64());
            }
        }
        metrics::histogram!("aisle_embed_batch_texts").record(batch.len() as f64);
        let started = std::time::Instant::now();
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| self.model.embed_encodings(&encodings)))
            .unwrap_or_else(|_| Err(Error::Internal("the embedding model panicked".into())));
        metrics::histogram!("aisle_embed_batch_duration_seconds").record(started.elapsed().as_secs_f64());
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        self.stats.texts.fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.stats.tokens.fetch_add(tokens as u64, Ordering::Relaxed);
        self.stats.padded_tokens.fetch_add(padded as u64, Ordering::Relaxed);
        self.stats.queued.fetch_sub(batch.len(), Ordering::SeqCst);
        match outcome {
            Ok(vectors) => {
                for (item, vector) in batch.into_iter().zip(vectors) {
                    let Some(job) = self.jobs.get_mut(&item.job) else { continue };
                    job.results[item.index] = Some(vector);
                    job.remaining -= 1;
                    if job.remaining == 0 {
                        let job = self.jobs.remove(&item.job).expect("job present");
                        let results = job.results.into_iter().map(|v| v.unwrap_or_default()).collect();
                        let _ = job.reply.send(Ok(results));
                    }
                }
            }
            Err(e) => {
                let failed: Vec<u64> = {
                    let mut ids: Vec<u64> = batch.iter().map(|i| i.job).collect();
                    ids.dedup();
                    ids
                };
                let before = self.pending.len();
                self.pending.retain(|item| !failed.contains(&item.job));
                self.stats.queued.fetch_sub(before - self.pending.len(), Ordering::SeqCst);
                for id in failed {
                    if let Some(job) = self.jobs.remove(&id) {
                        let _ = job.reply.send(Err(Error::Inference(e.to_string())));
                    }
                }
            }
        }
    }
}

/// Choose the pending items (given as `(token_len, arrival_seq)`) for the next forward pass.
///
/// The oldest item is always chosen; around it, in length order, items are added while
/// `count * longest <= max_tokens` and `count <= max_size`, shorter neighbours first (they add
/// no padding). Returns indices into `items`.
pub fn select_batch(items: &[(usize, u64)], max_tokens: usize, max_size: usize) -> Vec<usize> {
    if items.is_empty() {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| (items[i].0, items[i].1));
    let oldest = (0..items.len()).min_by_key(|&i| items[i].1).expect("non-empty");
    let pos = order.iter().position(|&i| i == oldest).expect("oldest is in order");
    let (mut lo, mut hi) = (pos, pos + 1);
    let mut longest = items[oldest].0.max(1);
    while hi - lo < max_size {
        if lo > 0 && (hi - lo + 1) * longest <= max_tokens {
            lo -= 1;
            continue;
        }
        if hi < order.len() {
            let next_longest = longest.max(items[order[hi]].0);
            if (hi - lo + 1) * next_longest <= max_tokens {
                longest = next_longest;
                hi += 1;
                continue;
            }
        }
        break;
    }
    order[lo..hi].to_vec()
}

#[cfg(test)]
mod tests {
    use super::select_batch;

    #[test]
    fn batch_always_holds_the_oldest_and_respects_budgets() {
        // (len, seq): the oldest (seq 0) is long.
        let items = vec![(200, 0), (5, 1), (6, 2), (7, 3), (190, 4), (210, 5)];
        let b = select_batch(&items, 450, 32);
        assert!(b.contains(&0));
        let longest = b.iter().map(|&i| items[i].0).max().unwrap();
        assert!(b.len() * longest <= 450, "{b:?}");
        // Short items are batched together once the long one is gone.
        let items = vec![(5, 10), (6, 11), (7, 12), (300, 13)];
        let b = select_batch(&items, 64, 32);
        assert_eq!(b.len(), 3);
        assert!(!b.contains(&3));
        // Size cap.
        let items: Vec<(usize, u64)> = (0..100).map(|i| (10, i)).collect();
        assert_eq!(select_batch(&items, 1_000_000, 8).len(), 8);
        // A single item over budget is still taken alone.
        assert_eq!(select_batch(&[(999, 0)], 10, 8), vec![0]);
    }
}
