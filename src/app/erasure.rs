//! Right of access (export) and right to erasure.
//!
//! Erasing a customer removes their profile point (taste, history, consent, attributes, and
//! collaborative factors once they exist), every event stored under their key, their
//! bought-together facts, the recommendation lists their events point to (`rec_id`: the items
//! shown and the re-ranker's feature rows), and what those added to products: each event
//! remembers the popularity term it added (`pop_term`), each fact the pair it counted, and
//! exactly those are taken back from this replica's share of the products' signals (see
//! `catalog::shares`). The touched collections are then rewritten from their live points
//! ([`Store::compact`]), so that no segment, index or WAL file still holds the erased bytes.
//!
//! Erasure is a job recorded in `DATA_DIR/erasures/<job>.json` before anything changes. The job
//! first records what to take away and the version of this replica's share of each product,
//! then takes it away where the share is still at that version, then deletes and compacts;
//! every step can be repeated, so a crash at any point is finished on the next start
//! ([`Privacy::resume`]) without taking anything away twice. The job file holds the customer's
//! pseudonymous key only while the job runs.
//!
//! [`Store::compact`]: crate::store::Store::compact

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::assistant::session::{SessionView, Sessions};
use crate::catalog::{Catalog, Tally, popularity_units};
use crate::error::{Error, Result};
use crate::events::{CO_WITH, CustomerView, Events, POP_TERM, Profiles};
use crate::privacy::{Keyring, write_private};
use crate::recommend::stats::Stats;
use crate::store::Payload;

/// Everything held about a customer (the right of access).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CustomerExport {
    /// The customer id asked for.
    pub customer_id: String,
    /// When this export was made.
    pub exported_at: DateTime<Utc>,
    /// How the customer is keyed in storage.
    pub stored_under: String,
    /// The profile, if one is stored.
    pub profile: Option<CustomerView>,
    /// The taste vector (from the customer's events), if any.
    pub taste: Option<Vec<f32>>,
    /// Every stored event.
    pub events: Vec<ExportedEvent>,
    /// Assistant conversations kept under a session id (redacted when stored).
    pub sessions: Vec<SessionView>,
}

/// One stored event of a customer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ExportedEvent {
    /// Event id.
    pub id: Option<String>,
    /// The product.
    pub product_id: Option<String>,
    /// The kind (view, click, cart, purchase, ...).
    pub kind: Option<String>,
    /// Its value (a rating, an amount).
    pub value: Option<f64>,
    /// When it happened.
    pub timestamp: Option<DateTime<Utc>>,
    /// The recommendation it is attributed to.
    pub rec_id: Option<String>,
    /// The keyed hash of the shopping session.
    pub session_key: Option<String>,
}

/// What an erasure removed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ErasureReport {
    /// Whether a stored profile existed.
    pub profile: bool,
    /// Events deleted.
    pub events: usize,
    /// Products whose trending or bought-together counts were corrected.
    pub products_corrected: usize,
    /// Assistant sessions deleted.
    #[serde(default)]
    pub sessions: usize,
    /// Logged recommendation lists deleted: those the customer's events pointed to (their
    /// items and the re-ranker's feature rows).
    #[serde(default)]
    pub recommendations: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Phase {
    /// Nothing changed yet.
    Started,
    /// `products` holds the corrected counts; they may or may not be applied yet.
    Counted,
}

/// What an erasure takes away from one product, and the version of this replica's share of it
/// before (so that a resumed job applies it once).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ProductFix {
    product: String,
    /// Popularity units (a signed integer, as text).
    popularity: String,
    co: Vec<(u32, i64)>,
    at: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Job {
    key: String,
    phase: Phase,
    #[serde(default)]
    fixes: Vec<ProductFix>,
    /// The `rec_id`s the customer's events carried: their logged lists go too.
    #[serde(default)]
    recs: Vec<Uuid>,
    #[serde(default)]
    report: ErasureReport,
}

/// Export and erasure over the stored data.
#[derive(Clone)]
pub struct Privacy {
    keys: Keyring,
    catalog: Catalog,
    profiles: Profiles,
    events: Events,
    sessions: Sessions,
    stats: Arc<Stats>,
    jobs: PathBuf,
    running: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Privacy {
    /// The privacy service; jobs live under `data_dir/erasures`.
    pub fn new(
        keys: Keyring,
        catalog: Catalog,
        profiles: Profiles,
        events: Events,
        sessions: Sessions,
        stats: Arc<Stats>,
        data_dir: &Path,
    ) -> Self {
        Self {
            keys,
            catalog,
            profiles,
            events,
            sessions,
            stats,
            jobs: data_dir.join("erasures"),
            running: Default::default(),
        }
    }

    /// Everything held about a customer: profile (with the taste vector), events, sessions.
    pub async fn export(&self, customer_id: &str) -> Result<CustomerExport> {
        let profile = self.profiles.get(customer_id).await?;
        let key = self.keys.customer_key(customer_id);
        let text = |p: &Payload, k: &str| p.get(k).and_then(Value::as_str).map(str::to_string);
        let events = self
            .events
            .of_customer(&key)
            .await?
            .into_iter()
            .map(|p| ExportedEvent {
                id: text(&p, "event_id"),
                product_id: text(&p, "product_id"),
                kind: text(&p, "kind"),
                value: p.get("value").and_then(Value::as_f64),
                timestamp: chrono::DateTime::from_timestamp(p.get("ts").and_then(Value::as_i64).unwrap_or(0), 0),
                rec_id: text(&p, "rec_id"),
                session_key: text(&p, "session"),
            })
            .collect();
        Ok(CustomerExport {
            customer_id: customer_id.to_string(),
            exported_at: Utc::now(),
            stored_under: "HMAC-SHA256 of the customer id with the server's secret; the id itself is not stored"
                .to_string(),
            profile: profile.exists.then(|| profile.view(customer_id)),
            taste: profile.taste,
            events,
            // Assistant conversations kept under a session id (redacted when stored).
            sessions: self.sessions.of_customer(&key).await?.iter().map(|s| s.view()).collect(),
        })
    }

    /// Erase a customer (idempotent: erasing an unknown or erased customer removes nothing).
    pub async fn erase(&self, customer_id: &str) -> Result<ErasureReport> {
        let _one = self.running.lock().await;
        let key = self.keys.customer_key(customer_id);
        let job = Job { key, phase: Phase::Started, fixes: vec![], recs: vec![], report: ErasureReport::default() };
        let path = self.jobs.join(format!("{}.json", Uuid::new_v4()));
        write_job(&path, &job)?;
        self.run(&path, job).await
    }

    /// Finish erasures a crash interrupted. Run at startup, before serving requests.
    pub async fn resume(&self) -> Result<usize> {
        let _one = self.running.lock().await;
        let Ok(entries) = std::fs::read_dir(&self.jobs) else { return Ok(0) };
        let mut n = 0;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                let _ = std::fs::remove_file(&path); // a half-written job: nothing was changed
                continue;
            }
            let job: Job = serde_json::from_slice(
                &std::fs::read(&path).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?,
            )
            .map_err(|e| Error::Store(format!("erasure job {} is unreadable: {e}", path.display())))?;
            tracing::info!(job = %path.display(), "resuming an interrupted erasure");
            self.run(&path, job).await?;
            n += 1;
        }
        Ok(n)
    }

    async fn run(&self, path: &Path, mut job: Job) -> Result<ErasureReport> {
        {
            // Product writes held: no event of this process changes this replica's shares
            // between reading their versions and taking the events' contributions away.
            let _writes = self.catalog.product_writes().lock().await;
            if matches!(job.phase, Phase::Started) {
                let events = self.events.of_customer(&job.key).await?;
                let facts = self.events.facts_of_customer(&job.key).await?;
                job.report.events = events.len();
                let mut recs: Vec<Uuid> = events
                    .iter()
                    .filter_map(|p| p.get("rec_id").and_then(Value::as_str).and_then(|r| Uuid::parse_str(r).ok()))
                    .collect();
                recs.sort();
                recs.dedup();
                job.recs = recs;
                job.report.profile = self.profiles.load_keys(vec![job.key.clone()]).await?.values().any(|p| p.exists);
                let taken = self.taken_away(&events, &facts).await?;
                let products: Vec<String> = taken.keys().cloned().collect();
                let at = self.catalog.own_share_versions(&products).await?;
                job.fixes = taken
                    .into_iter()
                    .map(|(product, t)| ProductFix {
                        at: at.get(&product).copied().unwrap_or(0),
                        product,
                        popularity: t.popularity.to_string(),
                        co: t.co.into_iter().collect(),
                    })
                    .collect();
                job.report.products_corrected = job.fixes.len();
                job.phase = Phase::Counted;
                write_job(path, &job)?;
            }
            let mut tallies = HashMap::new();
            let mut at = HashMap::new();
            for f in &job.fixes {
                let popularity = f
                    .popularity
                    .parse()
                    .map_err(|_| Error::Store(format!("erasure job {} is unreadable", path.display())))?;
                tallies.insert(f.product.clone(), Tally { popularity, co: f.co.iter().copied().collect() });
                at.insert(f.product.clone(), f.at);
            }
            // Applied only where this replica's share is still at the recorded version.
            self.catalog.add_signals_held(tallies, Some(&at)).await?;
        }
        crate::fault::point("erase-after-counts");
        self.events.delete_of_customer(&job.key).await?;
        self.profiles.delete_key(&job.key).await?;
        job.report.sessions = self.sessions.erase_customer(&job.key).await?;
        job.report.recommendations = self.stats.forget(&job.key, &job.recs).await?;
        crate::fault::point("erase-after-delete");
        self.events.compact().await?;
        self.profiles.compact().await?;
        std::fs::remove_file(path).map_err(|e| Error::io(format!("cannot remove {}", path.display()), e))?;
        sync_dir(&self.jobs);
        Ok(job.report)
    }

    /// What the events (and the customer's bought-together facts) added to products, negated:
    /// each event's popularity units, and one count each way per pair.
    async fn taken_away(&self, events: &[Payload], facts: &[(String, String)]) -> Result<HashMap<String, Tally>> {
        let mut pairs: Vec<(String, String)> = facts.to_vec();
        for e in events {
            let Some(product) = e.get("product_id").and_then(Value::as_str) else { continue };
            // Events stored before facts existed name their pairs themselves.
            if let Some(Value::Array(with)) = e.get(CO_WITH) {
                pairs.extend(with.iter().filter_map(Value::as_str).map(|o| (product.to_string(), o.to_string())));
            }
        }
        let mut involved: Vec<String> = pairs.iter().flat_map(|(a, b)| [a.clone(), b.clone()]).collect();
        involved.sort();
        involved.dedup();
        let nums: HashMap<String, u32> =
            self.catalog.signals(&involved, false).await?.into_iter().map(|(k, s)| (k, s.num)).collect();
        let mut out: HashMap<String, Tally> = HashMap::new();
        for e in events {
            if let (Some(product), Some(term)) =
                (e.get("product_id").and_then(Value::as_str), e.get(POP_TERM).and_then(Value::as_f64))
            {
                out.entry(product.to_string()).or_default().popularity -= popularity_units(term);
            }
        }
        for (a, b) in pairs {
            let (Some(na), Some(nb)) = (nums.get(&a), nums.get(&b)) else { continue };
            out.entry(a.clone()).or_default().count_with(*nb, -1);
            out.entry(b).or_default().count_with(*na, -1);
        }
        Ok(out)
    }
}

fn write_job(path: &Path, job: &Job) -> Result<()> {
    write_private(path, &serde_json::to_vec(job).map_err(|e| Error::Internal(e.to_string()))?)
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}
