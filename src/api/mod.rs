//! The HTTP edge: axum routers (one file per resource), problem+json errors, limits, startup
//! and graceful shutdown. Handlers are thin: parse and validate, call the domain module, map
//! the result. Nothing here touches a tensor or a Qdrant type, and nothing here wires services
//! together: `app` opens them, this module routes requests to them.

pub mod admin;
pub mod assistant;
pub mod auth;
pub mod console;
pub mod customers;
pub mod events;
pub mod extract;
pub mod health;
mod listen;
pub mod metrics;
pub mod openai;
pub mod openapi;
pub mod pages;
pub mod problem;
pub mod products;
pub mod recommend;
pub mod rules;
pub mod search;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::app::load_services;
use crate::app::{Security, Services};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::infer::select_device;
use crate::infer::threads::ThreadSource;
use crate::privacy::apikeys::AuthMode;
use crate::store::Store;

struct Inner {
    security: Security,
    config: Config,
    services: Arc<OnceLock<Services>>,
    started: Instant,
    threads: (usize, ThreadSource),
    device: String,
}

/// Shared state of every handler. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

impl AppState {
    /// State with no services yet (they arrive with [`AppState::set_services`]).
    pub fn new(config: Config, threads: (usize, ThreadSource), device: String) -> Result<Self> {
        let security = Security::open(&config)?;
        Ok(Self {
            inner: Arc::new(Inner {
                security,
                config,
                services: Arc::new(OnceLock::new()),
                started: Instant::now(),
                threads,
                device,
            }),
        })
    }

    /// Keys, limits and the audit log.
    pub fn security(&self) -> &Security {
        &self.inner.security
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The services, or 503 while models load.
    pub fn services(&self) -> Result<&Services> {
        self.inner.services.get().ok_or_else(|| Error::Unavailable("the server is starting: models are loading".into()))
    }

    /// Where the services will be, for background work that starts before they do.
    pub fn services_slot(&self) -> Arc<OnceLock<Services>> {
        self.inner.services.clone()
    }

    /// Install the services (once).
    pub fn set_services(&self, services: Services) {
        let _ = self.inner.services.set(services);
    }
}

/// Every route: the handlers, who may call them, and their OpenAPI operations.
pub fn api() -> openapi::Api {
    openapi::Api::new()
        .merge(health::routes())
        .merge(products::routes())
        .merge(search::routes())
        .merge(openai::routes())
        .merge(customers::routes())
        .merge(events::routes())
        .merge(recommend::routes())
        .merge(rules::routes())
        .merge(metrics::routes())
        .merge(admin::routes())
        .merge(assistant::routes())
        .merge(console::routes())
        .merge(pages::routes())
        .merge(openapi::routes())
}

/// The application router.
pub fn router(state: AppState) -> Router {
    let max_body = state.config().server.max_body_bytes;
    let guarded = openapi::router()
        .fallback(problem::no_route)
        .method_not_allowed_fallback(problem::wrong_method)
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::guard));
    // Pages of the origins in `[server] cors_origins` (the widget on a retailer's shop) may call
    // the API; preflight requests are answered here, before authentication.
    let origins = &state.config().server.cors_origins;
    let guarded = if origins.is_empty() { guarded } else { guarded.layer(cors(origins)) };
    guarded
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(CatchPanicLayer::custom(problem::panicked))
        // Spans name the route, never the raw path: paths carry customer ids.
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            let route = req.extensions().get::<axum::extract::MatchedPath>().map(|m| m.as_str().to_string());
            let id = req.extensions().get::<problem::RequestId>().map(|r| r.0.as_str()).unwrap_or("-");
            tracing::debug_span!("request", method = %req.method(), route = route.as_deref().unwrap_or("(unmatched)"), request_id = id)
        }))
        .layer(axum::middleware::from_fn(problem::request_id))
        .with_state(state)
}

fn cors(origins: &[String]) -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderName, HeaderValue, Method, header};
    let origins: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    tower_http::cors::CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, HeaderName::from_static("x-api-key")])
        .expose_headers([header::RETRY_AFTER, HeaderName::from_static("x-request-id")])
        .max_age(Duration::from_secs(600))
}

/// Run the server until SIGINT/SIGTERM: bind, answer `/healthz` at once, load models in the
/// background (`/readyz` turns 200 when done), drain in-flight requests on shutdown, flush.
pub async fn serve(config: Config, threads: (usize, ThreadSource)) -> Result<()> {
    let store = {
        let c = config.store.clone();
        tokio::task::spawn_blocking(move || Store::open(&c)).await.map_err(|e| Error::Internal(e.to_string()))??
    };
    tracing::info!(store = %store.describe(), "store open");
    let embed_dir = config.models.resolve(&config.models.embedding);
    if !embed_dir.join("config.json").exists() {
        return Err(Error::Model(format!(
            "no embedding model at {}; run models/fetch.sh (or `aisle models pull`) first",
            embed_dir.display()
        )));
    }
    // The metrics recorder, before anything records.
    metrics::handle();
    let listener = TcpListener::bind(&config.server.listen)
        .await
        .map_err(|e| Error::io(format!("cannot listen on {}", config.server.listen), e))?;
    let addr = listener.local_addr().map_err(|e| Error::io("local address", e))?;
    let device = select_device(&config.models.device)?;
    let state = AppState::new(config.clone(), threads, crate::infer::device_name(&device))?;
    let keys = &state.security().keys;
    keys.set_loopback(addr.ip().is_loopback());
    match keys.mode() {
        AuthMode::Keys => {}
        AuthMode::Open => tracing::warn!("[auth] open = true: every request is allowed, with no API key"),
        AuthMode::Unset if addr.ip().is_loopback() => tracing::warn!(
            "no API keys: every request is allowed on this loopback address (create one with `aisle keys create --role admin`)"
        ),
        AuthMode::Unset => {
            return Err(Error::Config(format!(
                "refusing to serve {addr} without API keys: create one with `aisle keys create --role admin` \
                 (or give [auth] keys), or set [auth] open = true (AISLE_AUTH_OPEN=true) to serve everyone"
            )));
        }
        AuthMode::Closed => tracing::error!(
            "this server had API keys and has none now: requests that need a key are refused (401) until one is created"
        ),
    }
    // Machine-readable for scripts and tests; logs go to stderr.
    println!("aisle listening on http://{addr}");
    tracing::info!(%addr, threads = threads.0, "listening");

    let (fail_tx, mut fail_rx) = watch::channel(None::<String>);
    {
        let state = state.clone();
        let store = store.clone();
        let config = config.clone();
        tokio::task::spawn_blocking(move || {
            let runtime = tokio::runtime::Handle::current();
            let start = || {
                runtime.block_on(store.health())?;
                load_services(&config, store.clone(), true)
            };
            loop {
                match start() {
                    Ok(services) => {
                        state.set_services(services);
                        tracing::info!("ready");
                    }
                    // A Qdrant server that is not up yet (or restarting): wait for it, not ready.
                    Err(Error::Unavailable(why)) => {
                        tracing::warn!(%why, "the store is unavailable; retrying in 2 s");
                        std::thread::sleep(Duration::from_secs(2));
                        continue;
                    }
                    Err(e) => {
                        let _ = fail_tx.send(Some(e.to_string()));
                    }
                }
                break;
            }
        });
    }
    let maintenance = crate::app::maintenance::spawn(
        store.clone(),
        state.services_slot(),
        Duration::from_secs(config.privacy.retention_interval_secs),
        config.assistant.session_max_age_days,
    );

    let failure = Arc::new(OnceLock::<String>::new());
    let shutdown = {
        let failure = failure.clone();
        async move {
            tokio::select! {
                _ = shutdown_signal() => tracing::info!("shutting down: draining in-flight requests"),
                _ = async {
                    loop {
                        if fail_rx.changed().await.is_err() { std::future::pending::<()>().await; }
                        if let Some(e) = fail_rx.borrow().clone() { let _ = failure.set(e); break; }
                    }
                } => tracing::error!(error = failure.get().map(String::as_str).unwrap_or(""), "startup failed"),
            }
        }
    };
    let grace = Duration::from_secs(config.server.shutdown_grace_secs);
    let header_timeout = Duration::from_secs(config.server.header_timeout_secs);
    extract::set_body_timeout(Duration::from_secs(config.server.body_timeout_secs));
    let state_for_shutdown = state.clone();
    listen::run(listener, router(state), header_timeout, shutdown, grace).await;
    maintenance.abort();
    if let Ok(s) = state_for_shutdown.services()
        && let Err(e) = s.recommender.stats().flush().await
    {
        tracing::error!(error = %e, "final write of recommendation statistics failed");
    }
    if let Err(e) = store.flush().await {
        tracing::error!(error = %e, "final flush failed");
    }
    tracing::info!("stopped");
    match failure.get() {
        Some(e) => Err(Error::Model(e.clone())),
        None => Ok(()),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
