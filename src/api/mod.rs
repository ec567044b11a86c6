//! The HTTP edge: axum routers (one file per resource), problem+json errors, limits, startup
//! and graceful shutdown. Handlers are thin: parse and validate, call the domain module, map
//! the result. Nothing here touches a tensor or a Qdrant type.

pub mod admin;
pub mod assistant;
pub mod auth;
pub mod customers;
pub mod events;
pub mod extract;
pub mod health;
pub mod metrics;
pub mod openai;
pub mod problem;
pub mod products;
pub mod recommend;
pub mod search;

use std::future::IntoFuture;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::events::{Events, Profiles};
use crate::infer::chat::scheduler::SchedulerConfig;
use crate::infer::chat::{ChatModel, Generator};
use crate::infer::threads::ThreadSource;
use crate::infer::{Embedder, EmbeddingModel, select_device};
use crate::privacy::Keyring;
use crate::privacy::apikeys::KeyStore;
use crate::privacy::audit::AuditLog;
use crate::privacy::erasure::Privacy;
use crate::privacy::pii::Redactor;
use crate::recommend::{Recommender, Stats};
use crate::store::Store;

/// The engines a request may use, present once the models are loaded.
pub struct Services {
    /// The vector store.
    pub store: Store,
    /// The embedding queue.
    pub embedder: Embedder,
    /// The catalog service.
    pub catalog: Catalog,
    /// The chat scheduler, when a chat model is configured.
    pub generator: Option<Generator>,
    /// Customers and their profiles.
    pub profiles: Profiles,
    /// Event ingestion.
    pub events: Events,
    /// Recommendations (and their statistics).
    pub recommender: Recommender,
    /// Export and erasure.
    pub privacy: Privacy,
    /// Collaborative filtering: training and the served model.
    pub collab: crate::recommend::train::Collab,
    /// PII redaction for text that is stored or embedded.
    pub redactor: Redactor,
    /// The shopping assistant.
    pub assistant: crate::assistant::Assistant,
}

impl Services {
    /// Names of the models served.
    pub fn model_names(&self) -> Vec<String> {
        let mut names = vec![self.embedder.info().name.clone()];
        names.extend(self.generator.as_ref().map(|g| g.info().name.clone()));
        names
    }
}

/// Keys, limits and the audit log: ready before the models are.
pub struct Security {
    /// API keys.
    pub keys: KeyStore,
    /// The audit log.
    pub audit: AuditLog,
    /// Keyed hashes (audit subjects).
    pub keyring: Keyring,
    /// Per-key limits.
    pub limits: auth::Limiter,
}

impl Security {
    /// Open the keys, the audit log and the keyring under the data directory.
    pub fn open(config: &Config) -> Result<Self> {
        let dir = &config.store.data_dir;
        Ok(Self {
            keys: KeyStore::load(&config.auth.keys, dir)?,
            audit: AuditLog::open(dir)?,
            keyring: Keyring::load_or_create(dir, &config.privacy.secret)?,
            limits: auth::Limiter::new(config.auth.rate_per_sec, config.auth.burst, config.auth.max_concurrent),
        })
    }
}

struct Inner {
    security: Security,
    config: Config,
    services: OnceLock<Services>,
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
                services: OnceLock::new(),
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

    /// Install the services (once).
    pub fn set_services(&self, services: Services) {
        let _ = self.inner.services.set(services);
    }
}

/// The application router.
pub fn router(state: AppState) -> Router {
    let max_body = state.config().server.max_body_bytes;
    Router::new()
        .merge(health::routes())
        .merge(products::routes())
        .merge(search::routes())
        .merge(openai::routes())
        .merge(customers::routes())
        .merge(events::routes())
        .merge(recommend::routes())
        .merge(metrics::routes())
        .merge(admin::routes())
        .merge(assistant::routes())
        .fallback(problem::no_route)
        .method_not_allowed_fallback(problem::wrong_method)
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::guard))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(CatchPanicLayer::custom(problem::panicked))
        // Spans name the route, never the raw path: paths carry customer ids.
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            let route = req.extensions().get::<axum::extract::MatchedPath>().map(|m| m.as_str().to_string());
            tracing::debug_span!("request", method = %req.method(), route = route.as_deref().unwrap_or("(unmatched)"))
        }))
        .with_state(state)
}

/// Load the models and open the services (the slow part of startup). `with_chat` loads the chat
/// model too (the server does; imports do not need it).
pub fn load_services(config: &Config, store: Store, with_chat: bool) -> Result<Services> {
    let device = select_device(&config.models.device)?;
    let dir = config.models.resolve(&config.models.embedding);
    let started = Instant::now();
    let model = EmbeddingModel::load(&dir, &device)?;
    tracing::info!(
        model = model.name(),
        dim = model.dim(),
        secs = started.elapsed().as_secs_f32(),
        "embedding model loaded"
    );
    let embedder = Embedder::start(model, &config.embed);
    let generator = if config.chat.model.is_empty() || !with_chat {
        None
    } else {
        let path = config.models.resolve(&config.chat.model);
        let model = ChatModel::load(&path, &device, config.chat.max_context)?;
        let scheduler = SchedulerConfig {
            max_active: config.chat.max_active,
            max_waiting: config.chat.max_waiting,
            prefill_chunk: config.chat.prefill_chunk,
        };
        Some(Generator::start(model, &scheduler))
    };
    let runtime = tokio::runtime::Handle::current();
    let keys = Keyring::load_or_create(&config.store.data_dir, &config.privacy.secret)?;
    let redactor = Redactor::new(&config.privacy.redact);
    let dim = embedder.info().dim;
    let (catalog, profiles, events, recommender, privacy, collab, assistant) = runtime.block_on(async {
        let catalog = Catalog::open(store.clone(), embedder.clone()).await?;
        let profiles =
            Profiles::open(store.clone(), keys.clone(), dim, config.privacy.implicit_consent, redactor.clone()).await?;
        let events =
            Events::open(store.clone(), catalog.clone(), profiles.clone(), keys.clone(), config.events.clone()).await?;
        let sessions = crate::assistant::session::Sessions::open(store.clone(), keys.clone()).await?;
        let privacy = Privacy::new(
            store.clone(),
            keys,
            catalog.clone(),
            profiles.clone(),
            events.clone(),
            sessions.clone(),
            &config.store.data_dir,
        );
        let resumed = privacy.resume().await?;
        if resumed > 0 {
            tracing::info!(erasures = resumed, "finished interrupted erasures");
        }
        let stats = Arc::new(Stats::open(store.clone()).await?);
        let collab = crate::recommend::train::Collab::open(
            store.clone(),
            catalog.clone(),
            profiles.clone(),
            events.clone(),
            config.train.clone(),
            &config.store.data_dir,
        )?;
        let recommender = Recommender::new(
            store.clone(),
            catalog.clone(),
            profiles.clone(),
            events.clone(),
            stats,
            config.recommend.clone(),
        )
        .with_collab(collab.clone());
        let assistant = crate::assistant::Assistant::new(
            catalog.clone(),
            profiles.clone(),
            sessions,
            generator.clone(),
            redactor.clone(),
            config.assistant.clone(),
            config.search.clone(),
        );
        Ok::<_, Error>((catalog, profiles, events, recommender, privacy, collab, assistant))
    })?;
    Ok(Services {
        store,
        embedder,
        catalog,
        generator,
        profiles,
        events,
        recommender,
        privacy,
        redactor,
        collab,
        assistant,
    })
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
    let listener = TcpListener::bind(&config.server.listen)
        .await
        .map_err(|e| Error::io(format!("cannot listen on {}", config.server.listen), e))?;
    let addr = listener.local_addr().map_err(|e| Error::io("local address", e))?;
    let device = select_device(&config.models.device)?;
    let state = AppState::new(config.clone(), threads, crate::infer::device_name(&device))?;
    if !state.security().keys.enabled() {
        tracing::warn!(
            "no API keys configured: every request is allowed (create one with `aisle keys create --role admin`)"
        );
    }
    // Machine-readable for scripts and tests; logs go to stderr.
    println!("aisle listening on http://{addr}");
    tracing::info!(%addr, threads = threads.0, "listening");

    let (fail_tx, mut fail_rx) = watch::channel(None::<String>);
    {
        let state = state.clone();
        let store = store.clone();
        let config = config.clone();
        tokio::task::spawn_blocking(move || match load_services(&config, store, true) {
            Ok(services) => {
                state.set_services(services);
                tracing::info!("ready");
            }
            Err(e) => {
                let _ = fail_tx.send(Some(e.to_string()));
            }
        });
    }
    let config_retention = config.privacy.retention_interval_secs;
    let maintenance = {
        let store = store.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            let mut n = 0u64;
            let retention_every = Duration::from_secs(config_retention.max(1));
            let mut last_retention: Option<Instant> = None;
            loop {
                tick.tick().await;
                n += 1;
                if let Ok(s) = state.services()
                    && last_retention.is_none_or(|t| t.elapsed() >= retention_every)
                {
                    last_retention = Some(Instant::now());
                    match s.events.purge_expired(chrono::Utc::now()).await {
                        Ok(0) => {}
                        Ok(purged) => tracing::info!(purged, "retention: purged expired events"),
                        Err(e) => tracing::warn!(error = %e, "retention failed"),
                    }
                    let max_age = state.config().assistant.session_max_age_days;
                    match s.assistant.sessions().purge_expired(max_age).await {
                        Ok(0) => {}
                        Ok(purged) => tracing::info!(purged, "retention: purged idle assistant sessions"),
                        Err(e) => tracing::warn!(error = %e, "session retention failed"),
                    }
                }
                if let Ok(s) = state.services()
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
    };

    let failure = Arc::new(OnceLock::<String>::new());
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
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
            let _ = stopping_tx.send(());
        }
    };
    let grace = Duration::from_secs(config.server.shutdown_grace_secs);
    let state_for_shutdown = state.clone();
    let mut serving = tokio::spawn(axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).into_future());
    // Once shutdown begins, in-flight requests get `grace` to finish; then they are cut.
    tokio::select! {
        _ = &mut serving => {}
        _ = async {
            if stopping_rx.await.is_err() { std::future::pending::<()>().await; }
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(secs = grace.as_secs(), "grace period over; closing the remaining connections");
            serving.abort();
        }
    }
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
