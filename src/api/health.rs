//! `/healthz` (the process answers) and `/readyz` (models loaded, store open).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::AppState;
use super::problem::ApiError;

/// Routes of this resource.
pub fn routes() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

async fn healthz(State(state): State<AppState>) -> Json<Value> {
    Json(json!({"status": "ok", "uptime_secs": state.inner.started.elapsed().as_secs()}))
}

fn pool_size(configured: usize, count: usize) -> usize {
    if configured > 0 { configured } else { count }
}

async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let services = state.services()?;
    let all = crate::catalog::ProductFilter { include_hidden: true, ..Default::default() };
    let products = services.catalog.count(&all).await?;
    Ok(Json(json!({
        "status": "ready",
        "store": services.store.describe(),
        "products": products,
        "embedding_model": services.embedder.info(),
        "chat_model": services.generator.as_ref().map(|g| g.info()),
        "device": state.inner.device,
        "auth": state.security().keys.mode(),
        "threads": {
            "count": state.inner.threads.0,
            "source": state.inner.threads.1,
            // Each model computes on a pool of its own (0 in the config: all of `count`).
            "embedding": pool_size(state.inner.config.embed.threads, state.inner.threads.0),
            "chat": pool_size(state.inner.config.chat.threads, state.inner.threads.0),
        },
    })))
}
