//! Chat under concurrency: `n` streams at once through aisle's scheduler (continuous batching)
//! and through llama.cpp's `llama-server` with `n` parallel slots and continuous batching, on
//! the same GGUF file, the same prompts (same token ids: aisle's tokenizer equals llama.cpp's)
//! and the same number of threads, one after the other in the same run. Every stream generates
//! exactly `tokens` tokens (greedy, end-of-generation ignored), so both do the same work.
//!
//! Measured per stream from its submission: time to first token, and the gaps between tokens;
//! overall: generated tokens over the time from the first submission to the last token.
//! aisle's streams are read from its scheduler in this process (no HTTP: its SSE path adds
//! well under a millisecond per token), llama-server's over loopback HTTP (SSE).
//!
//! Not for: single-stream pp/tg ([`super::llama`]) or the time to first token of one request
//! ([`super::chat`]).

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::report::{Row, row};
use crate::error::{Error, Result};
use crate::infer::chat::scheduler::SchedulerConfig;
use crate::infer::chat::{ChatModel, GenerateRequest, GenerationEvent, Generator, OutputFormat, SamplingParams};
use crate::measure::percentile;

/// What a set of concurrent streams measured.
#[derive(Debug, Clone, Default)]
pub struct Streams {
    /// Generated tokens over wall time (first submission to last token).
    pub tokens_per_second: f64,
    /// Median time to first token, ms.
    pub ttft_p50_ms: f64,
    /// Inter-token gap percentiles, ms.
    pub itl_p50_ms: f64,
    /// 99th percentile of the gaps.
    pub itl_p99_ms: f64,
}

/// One stream's arrival times (from its submission): the first token, then each later one.
struct Timing {
    arrivals: Vec<Duration>,
}

fn summarize(timings: &[Timing], wall: Duration) -> Streams {
    let tokens: usize = timings.iter().map(|t| t.arrivals.len()).sum();
    let mut ttft: Vec<f64> =
        timings.iter().filter_map(|t| t.arrivals.first()).map(|d| d.as_secs_f64() * 1000.0).collect();
    let mut gaps: Vec<f64> =
        timings.iter().flat_map(|t| t.arrivals.windows(2).map(|w| (w[1] - w[0]).as_secs_f64() * 1000.0)).collect();
    ttft.sort_by(f64::total_cmp);
    gaps.sort_by(f64::total_cmp);
    Streams {
        tokens_per_second: tokens as f64 / wall.as_secs_f64().max(1e-9),
        ttft_p50_ms: percentile(&ttft, 50.0),
        itl_p50_ms: percentile(&gaps, 50.0),
        itl_p99_ms: percentile(&gaps, 99.0),
    }
}

/// The prompt of stream `i`: different for each stream (no shared prefix beyond the first words).
pub fn prompt_text(i: usize) -> String {
    const TOPICS: [&str; 8] = [
        "a lighthouse",
        "a bakery",
        "a mountain train",
        "a city garden",
        "a night market",
        "an old library",
        "a river ferry",
        "a winter festival",
    ];
    format!(
        "Write a long, detailed story about {} number {i}, with its people, its sounds and what happens there over one whole year.",
        TOPICS[i % TOPICS.len()]
    )
}

/// `n` streams through aisle's scheduler with `n` active slots (prefix reuse off: the prompts
/// share nothing worth reusing, and llama-server's cache is off too).
pub fn aisle(model: &ChatModel, n: usize, tokens: usize, prefill_chunk: usize) -> Result<Streams> {
    let generator = Generator::start(
        model.clone(),
        &SchedulerConfig { max_active: n, max_waiting: n, prefill_chunk, prefix_cache_bytes: 0, threads: 0 },
    );
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| Error::io("runtime", e))?;
    let request = |i: usize| -> Result<GenerateRequest> {
        Ok(GenerateRequest {
            prompt: generator.text_prompt(&prompt_text(i))?,
            max_tokens: tokens,
            sampling: SamplingParams { temperature: 0.0, ignore_eos: true, ..Default::default() },
            stop: vec![],
            format: OutputFormat::Text,
        })
    };
    // Warm-up: one short request (first-touch of the weights, thread pool start).
    runtime.block_on(generator.generate(GenerateRequest { max_tokens: 2, ..request(99)? }))?;
    let started = Instant::now();
    let receivers = (0..n).map(|i| generator.submit(request(i)?)).collect::<Result<Vec<_>>>()?;
    let timings = runtime.block_on(async {
        let tasks = receivers.into_iter().map(|mut rx| async move {
            let mut arrivals = Vec::new();
            while let Some(event) = rx.recv().await {
                match event {
                    GenerationEvent::Text(_) => arrivals.push(started.elapsed()),
                    GenerationEvent::Done(f) => {
                        // Text events can carry several tokens (a character split across
                        // tokens): count tokens, spreading a carried one over its event.
                        while arrivals.len() < f.completion_tokens {
                            let last = arrivals.last().copied().unwrap_or_else(|| started.elapsed());
                            arrivals.push(last);
                        }
                        return Ok(Timing { arrivals });
                    }
                    GenerationEvent::Failed(e) => return Err(Error::Inference(e)),
                }
            }
            Err(Error::Internal("the stream ended early".into()))
        });
        futures::future::join_all(tasks).await.into_iter().collect::<Result<Vec<_>>>()
    })?;
    let wall = timings.iter().filter_map(|t| t.arrivals.last()).max().copied().unwrap_or_default();
    Ok(summarize(&timings, wall))
}

/// A running `llama-server`, stopped when dropped.
pub struct LlamaServer {
    child: Child,
    port: u16,
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl LlamaServer {
    /// Start `llama-server` (built by `benches/llama-cpp.sh`) on `gguf` with `slots` parallel
    /// slots, continuous batching and `threads` threads; `None` (with a line on stderr) when it
    /// cannot be built or started.
    pub fn start(root: &Path, gguf: &Path, threads: usize, slots: usize, context_per_slot: usize) -> Option<Self> {
        let out = Command::new(root.join("benches/llama-cpp.sh")).output().ok()?;
        if !out.status.success() {
            eprintln!("llama.cpp could not be built: {}", String::from_utf8_lossy(&out.stderr));
            return None;
        }
        let bin = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("llama-server");
        let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let child = Command::new(&bin)
            .arg("-m")
            .arg(gguf)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["-t", &threads.to_string(), "-tb", &threads.to_string()])
            .args(["-np", &slots.to_string(), "-c", &(slots * context_per_slot).to_string(), "-cb"])
            .args(["--no-webui"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| eprintln!("llama-server could not start: {e}"))
            .ok()?;
        let server = Self { child, port };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(120) {
            if ureq::get(&format!("http://127.0.0.1:{port}/health")).call().is_ok() {
                return Some(server);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        eprintln!("llama-server did not become healthy in 120 s");
        None
    }

    /// One streamed completion of `prompt`: token arrival times from the request.
    fn stream(&self, prompt: &str, tokens: usize, started: Instant) -> Result<Timing> {
        let body = serde_json::json!({
            "prompt": prompt, "n_predict": tokens, "temperature": 0.0, "ignore_eos": true,
            "stream": true, "cache_prompt": false,
        });
        let response = ureq::post(&format!("http://127.0.0.1:{}/completion", self.port))
            .send_json(body)
            .map_err(|e| Error::Internal(format!("llama-server: {e}")))?;
        let mut arrivals = Vec::new();
        for line in std::io::BufReader::new(response.into_reader()).lines() {
            let line = line.map_err(|e| Error::io("llama-server stream", e))?;
            let Some(data) = line.strip_prefix("data: ") else { continue };
            let v: serde_json::Value = serde_json::from_str(data).unwrap_or_default();
            if v["content"].as_str().is_some_and(|c| !c.is_empty())
                || v["tokens"].as_array().is_some_and(|t| !t.is_empty())
            {
                arrivals.push(started.elapsed());
            }
            if v["stop"].as_bool() == Some(true) {
                break;
            }
        }
        Ok(Timing { arrivals })
    }

    /// `n` concurrent streams.
    pub fn streams(&self, n: usize, tokens: usize) -> Result<Streams> {
        self.stream(&prompt_text(99), 2, Instant::now())?; // warm-up
        let started = Instant::now();
        let timings = std::thread::scope(|s| {
            let handles: Vec<_> =
                (0..n).map(|i| s.spawn(move || self.stream(&prompt_text(i), tokens, started))).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(Error::Internal("a stream panicked".into()))))
                .collect::<Result<Vec<_>>>()
        })?;
        let wall = timings.iter().filter_map(|t| t.arrivals.last()).max().copied().unwrap_or_default();
        Ok(summarize(&timings, wall))
    }
}

/// Rows for `levels` of concurrency: aisle's aggregate tokens/s against llama-server's, and
/// both sides' time to first token and inter-token latency. llama-server runs `model.path`.
pub fn run(
    model: &ChatModel,
    root: &Path,
    levels: &[usize],
    tokens: usize,
    threads: usize,
    prefill_chunk: usize,
    anchors: bool,
) -> Result<Vec<Row>> {
    let name = &model.name;
    let mut rows = Vec::new();
    for &n in levels {
        let ours = aisle(model, n, tokens, prefill_chunk)?;
        let theirs = if anchors {
            LlamaServer::start(root, &model.path, threads, n, 512).map(|s| s.streams(n, tokens)).transpose()?
        } else {
            None
        };
        let label = |what: &str| format!("{name} {n} streams {what}");
        let mut r = row("chat", label("aggregate"), ours.tokens_per_second, "tokens/s");
        if let Some(t) = &theirs {
            r = r.against("llama-server", t.tokens_per_second, true);
        }
        rows.push(r);
        for (what, value, anchor) in [
            ("time to first token p50", ours.ttft_p50_ms, theirs.as_ref().map(|t| t.ttft_p50_ms)),
            ("inter-token p50", ours.itl_p50_ms, theirs.as_ref().map(|t| t.itl_p50_ms)),
            ("inter-token p99", ours.itl_p99_ms, theirs.as_ref().map(|t| t.itl_p99_ms)),
        ] {
            let mut r = row("chat", label(what), value, "ms");
            if let Some(a) = anchor {
                r = r.against("llama-server", a, false);
            }
            rows.push(r);
        }
    }
    Ok(rows)
}
