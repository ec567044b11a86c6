//! HTTP load over loopback with latency percentiles.
//!
//! Open loop: requests are scheduled at a fixed rate whatever the server does, and latency is
//! measured from the *scheduled* send time, so a slow server's queueing shows in the figures
//! (no coordinated omission). Closed loop: `concurrency` clients send back to back, which
//! measures the most the server sustains.
//!
//! Not for: percentiles themselves (`crate::measure`) or starting a server to load
//! ([`super::serve`]).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::measure::percentile;

/// Latency and throughput of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LatencyReport {
    /// Requests answered (any status).
    pub requests: usize,
    /// Requests that failed or did not answer 2xx.
    pub errors: usize,
    /// Wall time of the run in seconds.
    pub seconds: f64,
    /// Answered requests per second.
    pub throughput: f64,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

fn report(mut latencies: Vec<f64>, errors: usize, seconds: f64) -> LatencyReport {
    latencies.sort_by(|a, b| a.total_cmp(b));
    let n = latencies.len();
    LatencyReport {
        requests: n,
        errors,
        seconds,
        throughput: n as f64 / seconds.max(1e-9),
        p50_ms: percentile(&latencies, 50.0),
        p95_ms: percentile(&latencies, 95.0),
        p99_ms: percentile(&latencies, 99.0),
        max_ms: latencies.last().copied().unwrap_or(0.0),
        mean_ms: if n == 0 { 0.0 } else { latencies.iter().sum::<f64>() / n as f64 },
    }
}

fn send(agent: &ureq::Agent, url: &str, body: Option<&str>) -> bool {
    let sent = match body {
        None => agent.get(url).call(),
        Some(b) => agent.post(url).set("content-type", "application/json").send_string(b),
    };
    match sent {
        Ok(r) => {
            let ok = (200..300).contains(&r.status());
            let _ = r.into_string();
            ok
        }
        Err(_) => false,
    }
}

/// `rate` requests per second for `duration`, from `workers` threads; `url(i)` is the i-th URL.
pub fn open_loop(url: impl Fn(usize) -> String + Sync, rate: f64, duration: Duration, workers: usize) -> LatencyReport {
    let (latencies, errors, seconds) = open_loop_samples(url, rate, duration, workers);
    report(latencies, errors, seconds)
}

/// Two settings compared at the same rate: `rounds` of A, B, B, A blocks of `block` each, every
/// block `rate` requests per second of its setting (`url(setting, i)`, setting 0 is A), so that
/// both see the same drift of the machine and the store. Returns A's report and B's.
pub fn open_loop_abba(
    url: impl Fn(usize, usize) -> String + Sync,
    rate: f64,
    block: Duration,
    rounds: usize,
    workers: usize,
) -> (LatencyReport, LatencyReport) {
    let mut samples = [(Vec::new(), 0usize, 0f64), (Vec::new(), 0usize, 0f64)];
    let mut offset = 0usize;
    for setting in (0..rounds.max(1)).flat_map(|_| [0usize, 1, 1, 0]) {
        let (l, e, s) = open_loop_samples(|i| url(setting, offset + i), rate, block, workers);
        offset += l.len();
        samples[setting].0.extend(l);
        samples[setting].1 += e;
        samples[setting].2 += s;
    }
    let [(la, ea, sa), (lb, eb, sb)] = samples;
    (report(la, ea, sa), report(lb, eb, sb))
}

/// [`open_loop`]'s latencies (ms), errors and wall seconds.
fn open_loop_samples(
    url: impl Fn(usize) -> String + Sync,
    rate: f64,
    duration: Duration,
    workers: usize,
) -> (Vec<f64>, usize, f64) {
    let next = AtomicUsize::new(0);
    let total = (rate * duration.as_secs_f64()).round() as usize;
    let results = Mutex::new((Vec::with_capacity(total), 0usize));
    let start = Instant::now() + Duration::from_millis(50);
    std::thread::scope(|s| {
        for _ in 0..workers.max(1) {
            s.spawn(|| {
                let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
                let mut mine = Vec::new();
                let mut errors = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let scheduled = start + Duration::from_secs_f64(i as f64 / rate);
                    if let Some(wait) = scheduled.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    if !send(&agent, &url(i), None) {
                        errors += 1;
                    }
                    mine.push(scheduled.elapsed().as_secs_f64() * 1000.0);
                }
                let mut r = results.lock().expect("not poisoned");
                r.0.extend(mine);
                r.1 += errors;
            });
        }
    });
    let seconds = start.elapsed().as_secs_f64();
    let (latencies, errors) = results.into_inner().expect("not poisoned");
    (latencies, errors, seconds)
}

/// `concurrency` clients sending back to back for `duration`.
pub fn closed_loop(url: impl Fn(usize) -> String + Sync, concurrency: usize, duration: Duration) -> LatencyReport {
    closed_loop_with(url, None::<fn(usize) -> String>, concurrency, duration)
}

/// [`closed_loop`] with JSON POST bodies.
pub fn closed_loop_post(
    url: impl Fn(usize) -> String + Sync,
    body: impl Fn(usize) -> String + Sync,
    concurrency: usize,
    duration: Duration,
) -> LatencyReport {
    closed_loop_with(url, Some(body), concurrency, duration)
}

fn closed_loop_with(
    url: impl Fn(usize) -> String + Sync,
    body: Option<impl Fn(usize) -> String + Sync>,
    concurrency: usize,
    duration: Duration,
) -> LatencyReport {
    let next = AtomicUsize::new(0);
    let results = Mutex::new((Vec::new(), 0usize));
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..concurrency.max(1) {
            s.spawn(|| {
                let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
                let mut mine = Vec::new();
                let mut errors = 0;
                while start.elapsed() < duration {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let t = Instant::now();
                    let b = body.as_ref().map(|f| f(i));
                    if !send(&agent, &url(i), b.as_deref()) {
                        errors += 1;
                    }
                    mine.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                let mut r = results.lock().expect("not poisoned");
                r.0.extend(mine);
                r.1 += errors;
            });
        }
    });
    let seconds = start.elapsed().as_secs_f64();
    let (latencies, errors) = results.into_inner().expect("not poisoned");
    report(latencies, errors, seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_sample() {
        let r = report((1..=100).map(|x| x as f64).collect(), 0, 10.0);
        assert_eq!((r.p50_ms, r.p95_ms, r.p99_ms, r.max_ms), (51.0, 95.0, 99.0, 100.0));
        assert_eq!(r.throughput, 10.0);
        assert!((r.mean_ms - 50.5).abs() < 1e-9);
    }
}
