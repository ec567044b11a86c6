//! `/healthz` (the process answers) and `/readyz` (models loaded, store open).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::routes;

use super::AppState;
use super::auth::{Access, Subject};
use super::openapi::Api;
use super::problem::ApiError;
use crate::infer::EmbedderInfo;
use crate::infer::chat::ChatInfo;
use crate::infer::threads::ThreadSource;
use crate::privacy::apikeys::AuthMode;

/// Routes of this resource.
pub fn routes() -> Api {
    Api::new().route(Access::Public, Subject::None, routes!(healthz)).route(
        Access::Public,
        Subject::None,
        routes!(readyz),
    )
}

/// `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
    /// Seconds since the process started.
    pub uptime_secs: u64,
}

/// Compute threads.
#[derive(Debug, Serialize, ToSchema)]
pub struct Threads {
    /// Threads the process computes with.
    pub count: usize,
    /// Where that number came from.
    pub source: ThreadSource,
    /// The embedding model's pool.
    pub embedding: usize,
    /// The chat model's pool.
    pub chat: usize,
}

/// `GET /readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// Always `ready` (a server that is not answers 503).
    pub status: String,
    /// The store: embedded (its directory) or a Qdrant server (its URL).
    pub store: String,
    /// Products in the catalog, hidden ones included.
    pub products: u64,
    /// The embedding model.
    pub embedding_model: EmbedderInfo,
    /// The chat model, if one is configured.
    pub chat_model: Option<ChatInfo>,
    /// The compute device.
    pub device: String,
    /// How requests are authenticated now.
    pub auth: AuthMode,
    /// Compute threads.
    pub threads: Threads,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "operations",
    responses((status = 200, description = "The process answers.", body = Health)))]
async fn healthz(State(state): State<AppState>) -> Json<Health> {
    Json(Health { status: "ok".into(), uptime_secs: state.inner.started.elapsed().as_secs() })
}

fn pool_size(configured: usize, count: usize) -> usize {
    if configured > 0 { configured } else { count }
}

/// Readiness: models loaded and the store open (503 until then).
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "operations",
    responses((status = 200, description = "Ready to serve.", body = Readiness)))]
async fn readyz(State(state): State<AppState>) -> Result<Json<Readiness>, ApiError> {
    let services = state.services()?;
    let all = crate::catalog::ProductFilter { include_hidden: true, ..Default::default() };
    let products = services.catalog.count(&all).await?;
    Ok(Json(Readiness {
        status: "ready".into(),
        store: services.store.describe(),
        products: products as u64,
        embedding_model: services.embedder.info().clone(),
        chat_model: services.generator.as_ref().map(|g| g.info().clone()),
        device: state.inner.device.clone(),
        auth: state.security().keys.mode(),
        threads: Threads {
            count: state.inner.threads.0,
            source: state.inner.threads.1,
            // Each model computes on a pool of its own (0 in the config: all of `count`).
            embedding: pool_size(state.inner.config.embed.threads, state.inner.threads.0),
            chat: pool_size(state.inner.config.chat.threads, state.inner.threads.0),
        },
    }))
}
