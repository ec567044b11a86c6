//! Per-key request limits: a token bucket for the rate and a semaphore for requests in flight.
//! Not the authentication (which key is who: `apikeys`) nor the HTTP answer (`api::auth`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Per-key request rate (token bucket) and concurrency.
pub struct Limiter {
    rate: f64,
    burst: f64,
    max_concurrent: usize,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
    inflight: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Limiter {
    /// Limits from the configuration (0 = none).
    pub fn new(rate: f64, burst: f64, max_concurrent: usize) -> Self {
        Self { rate, burst, max_concurrent, buckets: Default::default(), inflight: Default::default() }
    }

    /// Take a token, or say how long until one is there.
    pub fn take(&self, who: &str) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock();
        let now = Instant::now();
        let (tokens, at) = buckets.entry(who.to_string()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.rate))
        }
    }

    /// Enter, or refuse when the key has `max_concurrent` requests in flight.
    #[allow(clippy::result_unit_err)]
    pub fn enter(&self, who: &str) -> Result<Option<OwnedSemaphorePermit>, ()> {
        if self.max_concurrent == 0 {
            return Ok(None);
        }
        let sem = self
            .inflight
            .lock()
            .entry(who.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.max_concurrent)))
            .clone();
        sem.try_acquire_owned().map(Some).map_err(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_bucket_refuses_above_the_burst() {
        let l = Limiter::new(1.0, 2.0, 1);
        assert!(l.take("k").is_ok() && l.take("k").is_ok());
        let wait = l.take("k").unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        assert!(l.take("other").is_ok(), "limits are per key");
        let p = l.enter("k").unwrap();
        assert!(l.enter("k").is_err());
        drop(p);
        assert!(l.enter("k").is_ok());
    }
}
