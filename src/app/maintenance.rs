//! Background work that belongs to no request: retention (expired events, idle assistant
//! sessions), flushing recommendation statistics, and store maintenance (index building). One
//! task, started by the server, stopped when it stops. Not the HTTP lifecycle (`api`).

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::Services;
use crate::store::Store;

/// Start the maintenance loop: every 2 s statistics are flushed, every 10 s the store builds
/// indexes it needs, every `retention_every` expired data is purged. It waits for `services`
/// to be set (models load after the server starts listening).
pub fn spawn(
    store: Store,
    services: Arc<OnceLock<Services>>,
    retention_every: Duration,
    session_max_age_days: f64,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        let mut n = 0u64;
        let retention_every = retention_every.max(Duration::from_secs(1));
        let mut last_retention: Option<Instant> = None;
        loop {
            tick.tick().await;
            n += 1;
            if let Some(s) = services.get()
                && last_retention.is_none_or(|t| t.elapsed() >= retention_every)
            {
                last_retention = Some(Instant::now());
                match s.events.purge_expired(chrono::Utc::now()).await {
                    Ok(0) => {}
                    Ok(purged) => tracing::info!(purged, "retention: purged expired events"),
                    Err(e) => tracing::warn!(error = %e, "retention failed"),
                }
                match s.assistant.sessions().purge_expired(session_max_age_days).await {
                    Ok(0) => {}
                    Ok(purged) => tracing::info!(purged, "retention: purged idle assistant sessions"),
                    Err(e) => tracing::warn!(error = %e, "session retention failed"),
                }
            }
            if let Some(s) = services.get()
                && let Err(e) = s.recommender.stats().flush().await
            {
                tracing::warn!(error = %e, "writing recommendation statistics failed");
            }
            if n.is_multiple_of(5)
                && let Err(e) = store.maintain().await
            {
                tracing::warn!(error = %e, "store maintenance failed");
            }
        }
    })
}
