//! The composition root: opens the store, loads the models and wires the domain services
//! together ([`Services`], [`Security`]), runs the background work that belongs to no request
//! ([`maintenance`]), and holds the workflows that cross several domains: export and erasure
//! ([`erasure`]) and ingest-then-attribute ([`Services::ingest_events`]).
//!
//! `api/` routes HTTP requests to what is built here, and `cli/` parses commands and calls it;
//! neither wires services itself. This module knows nothing of HTTP or of the command line.

pub mod erasure;
pub mod maintenance;
pub mod replica;

use std::sync::Arc;
use std::time::Instant;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::events::{EventInput, EventOutcome, Events, IngestReport, Profiles};
use crate::infer::chat::scheduler::SchedulerConfig;
use crate::infer::chat::{ChatModel, Generator};
use crate::infer::{Embedder, EmbeddingModel, select_device};
use crate::privacy::Keyring;
use crate::privacy::apikeys::KeyStore;
use crate::privacy::audit::AuditLog;
use crate::privacy::limits::Limiter;
use crate::privacy::pii::Redactor;
use crate::recommend::{Recommender, Stats};
use crate::store::Store;
use erasure::Privacy;

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
    /// This process among the replicas sharing the store (held: it locks the name).
    pub replica: Arc<replica::Replica>,
}

impl Services {
    /// Ingest events (validation, duplicates, profiles, popularity, co-occurrence) and attribute
    /// those that carry a `rec_id` to the recommendation that showed the product (a click, cart
    /// or purchase sent without one gets the `rec_id` of the list just shown to the same shopper
    /// that held the product, if any).
    pub async fn ingest_events(&self, mut inputs: Vec<EventInput>) -> Result<IngestReport> {
        let given = self.recommender.attribute_unsent(&mut inputs);
        let (mut report, accepted) = self.events.ingest(inputs).await?;
        report.attributed =
            given.iter().filter(|i| matches!(report.results.get(**i), Some(EventOutcome::Accepted { .. }))).count();
        for e in &accepted {
            if let Some(rec) = e.rec_id {
                self.recommender.stats().attribute(rec, &e.product_id, e.kind, e.value, e.timestamp).await?;
            }
        }
        Ok(report)
    }

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
    pub limits: Limiter,
}

impl Security {
    /// Open the keys, the audit log and the keyring under the data directory.
    pub fn open(config: &Config) -> Result<Self> {
        let dir = &config.store.data_dir;
        let keys = KeyStore::load(&config.auth.keys, dir, config.auth.open)?;
        // What the configuration says; `api::serve` corrects it with the address it bound.
        keys.set_loopback(config.server.listen.parse::<std::net::SocketAddr>().is_ok_and(|a| a.ip().is_loopback()));
        Ok(Self {
            keys,
            audit: AuditLog::open(dir)?,
            keyring: Keyring::load_or_create(dir, &config.privacy.secret)?,
            limits: Limiter::new(config.auth.rate_per_sec, config.auth.burst, config.auth.max_concurrent),
        })
    }
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
    let chat_path = if with_chat { config.models.chat_model(&config.chat.model) } else { None };
    if with_chat && chat_path.is_none() && config.chat.model == "auto" {
        tracing::warn!(dir = %config.models.dir.display(), "no chat model found (run models/fetch.sh): chat is off");
    }
    let generator = if let Some(path) = chat_path {
        let model = ChatModel::load_with(&path, &device, config.chat.max_context, config.chat.dense_copies)?;
        let scheduler = SchedulerConfig {
            max_active: config.chat.max_active,
            max_waiting: config.chat.max_waiting,
            prefill_chunk: config.chat.prefill_chunk,
            prefix_cache_bytes: config.chat.prefix_cache_mb << 20,
            threads: config.chat.threads,
        };
        Some(Generator::start(model, &scheduler))
    } else {
        None
    };
    let runtime = tokio::runtime::Handle::current();
    let keys = Keyring::load_or_create(&config.store.data_dir, &config.privacy.secret)?;
    let redactor = Redactor::new(&config.privacy.redact);
    let dim = embedder.info().dim;
    let (catalog, profiles, events, recommender, privacy, collab, assistant, replica) = runtime.block_on(async {
        let replica = replica::Replica::join(&config.store.data_dir, &store, &keys).await?;
        let catalog = Catalog::open(store.clone(), embedder.clone(), &replica.id).await?;
        let profiles =
            Profiles::open(store.clone(), keys.clone(), dim, config.privacy.implicit_consent, redactor.clone()).await?;
        let events =
            Events::open(store.clone(), catalog.clone(), profiles.clone(), keys.clone(), config.events.clone()).await?;
        let sessions = crate::assistant::session::Sessions::open(store.clone(), keys.clone()).await?;
        let stats = Arc::new(Stats::open(store.clone(), &replica.id).await?);
        let privacy = Privacy::new(
            keys,
            catalog.clone(),
            profiles.clone(),
            events.clone(),
            sessions.clone(),
            stats.clone(),
            &config.store.data_dir,
        );
        let resumed = privacy.resume().await?;
        if resumed > 0 {
            tracing::info!(erasures = resumed, "finished interrupted erasures");
        }
        let collab = crate::recommend::train::Collab::open(
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
            crate::recommend::rules::Rules::open(store.clone()).await?,
        )
        .with_collab(collab.clone())
        .with_ranker(crate::recommend::rank::Slot::open(&config.store.data_dir))
        .with_experiments(config.experiments.clone());
        let assistant = crate::assistant::Assistant::new(
            catalog.clone(),
            profiles.clone(),
            sessions,
            generator.clone(),
            redactor.clone(),
            config.assistant.clone(),
            config.search.clone(),
        );
        Ok::<_, Error>((catalog, profiles, events, recommender, privacy, collab, assistant, replica))
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
        replica: Arc::new(replica),
    })
}
