//! Right of access (export) and right to erasure.
//!
//! Erasing a customer removes their profile point (taste, history, consent, attributes, and
//! collaborative factors once they exist), every event stored under their key, and what those
//! events added to other records: each event remembers the trending term and the bought-together
//! pairs it contributed (`pop_term`, `co_with`), and exactly those are taken back. The touched
//! collections are then rewritten from their live points ([`Store::compact`]), so that no
//! segment, index or WAL file under the data directory still holds the erased bytes.
//!
//! Erasure is a job recorded in `DATA_DIR/erasures/<job>.json` before anything changes. The job
//! first records the products' new absolute counts, then applies them, then deletes and
//! compacts; every step can be repeated, so a crash at any point is finished on the next start
//! ([`Privacy::resume`]) without taking anything away twice. The job file holds the customer's
//! pseudonymous key only while the job runs.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::assistant::session::Sessions;
use crate::catalog::{Catalog, SignalUpdate};
use crate::error::{Error, Result};
use crate::events::{CO_WITH, Events, POP_TERM, Profiles};
use crate::privacy::{Keyring, write_private};
use crate::store::Payload;

/// What an erasure removed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Phase {
    /// Nothing changed yet.
    Started,
    /// `products` holds the corrected counts; they may or may not be applied yet.
    Counted,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ProductFix {
    point: Uuid,
    trend: Option<f64>,
    co: Vec<(u32, f32)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Job {
    key: String,
    phase: Phase,
    #[serde(default)]
    products: Vec<ProductFix>,
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
        data_dir: &Path,
    ) -> Self {
        Self { keys, catalog, profiles, events, sessions, jobs: data_dir.join("erasures"), running: Default::default() }
    }

    /// Everything held about a customer: profile (with the taste vector), events, sessions.
    pub async fn export(&self, customer_id: &str) -> Result<Value> {
        let profile = self.profiles.get(customer_id).await?;
        let key = self.keys.customer_key(customer_id);
        let events: Vec<Value> = self
            .events
            .of_customer(&key)
            .await?
            .into_iter()
            .map(|p| {
                let ts = p.get("ts").and_then(Value::as_i64).unwrap_or(0);
                json!({
                    "id": p.get("event_id"),
                    "product_id": p.get("product_id"),
                    "kind": p.get("kind"),
                    "value": p.get("value"),
                    "timestamp": chrono::DateTime::from_timestamp(ts, 0).map(|t| t.to_rfc3339()),
                    "rec_id": p.get("rec_id"),
                    "session_key": p.get("session"),
                })
            })
            .collect();
        Ok(json!({
            "customer_id": customer_id,
            "exported_at": Utc::now(),
            "stored_under": "HMAC-SHA256 of the customer id with the server's secret; the id itself is not stored",
            "profile": if profile.exists { profile.to_json(customer_id) } else { Value::Null },
            "taste": profile.taste,
            "events": events,
            // Assistant conversations kept under a session id (redacted when stored).
            "sessions": self.sessions.of_customer(&key).await?.iter().map(|s| s.to_json()).collect::<Vec<_>>(),
        }))
    }

    /// Erase a customer (idempotent: erasing an unknown or erased customer removes nothing).
    pub async fn erase(&self, customer_id: &str) -> Result<ErasureReport> {
        let _one = self.running.lock().await;
        let key = self.keys.customer_key(customer_id);
        let job = Job { key, phase: Phase::Started, products: vec![], report: ErasureReport::default() };
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
        if matches!(job.phase, Phase::Started) {
            // Hold product writes so that no event changes the counts between reading and
            // writing them.
            let _writes = self.catalog.product_writes().lock().await;
            let events = self.events.of_customer(&job.key).await?;
            job.report.events = events.len();
            job.report.profile = self.profiles.load_keys(vec![job.key.clone()]).await?.values().any(|p| p.exists);
            job.products = self.corrected_counts(&events).await?;
            job.report.products_corrected = job.products.len();
            job.phase = Phase::Counted;
            write_job(path, &job)?;
            self.apply(&job.products).await?;
        } else {
            // Absolute values: applying them again is harmless.
            self.apply(&job.products).await?;
        }
        crate::fault::point("erase-after-counts");
        self.events.delete_of_customer(&job.key).await?;
        self.profiles.delete_key(&job.key).await?;
        job.report.sessions = self.sessions.erase_customer(&job.key).await?;
        crate::fault::point("erase-after-delete");
        self.events.compact().await?;
        self.profiles.compact().await?;
        std::fs::remove_file(path).map_err(|e| Error::io(format!("cannot remove {}", path.display()), e))?;
        sync_dir(&self.jobs);
        Ok(job.report)
    }

    /// The trending scores and bought-together counts of every product the events touched,
    /// with the events' contributions taken away.
    async fn corrected_counts(&self, events: &[Payload]) -> Result<Vec<ProductFix>> {
        let mut involved: Vec<String> = Vec::new();
        for e in events {
            involved.extend(e.get("product_id").and_then(Value::as_str).map(str::to_string));
            if let Some(Value::Array(with)) = e.get(CO_WITH) {
                involved.extend(with.iter().filter_map(Value::as_str).map(str::to_string));
            }
        }
        involved.sort();
        involved.dedup();
        struct State {
            point: Uuid,
            num: u32,
            trend: Option<f64>,
            co: BTreeMap<u32, f32>,
            changed: bool,
        }
        let mut products: HashMap<String, State> = self
            .catalog
            .signals(&involved, false)
            .await?
            .into_iter()
            .map(|(id, p)| (id, State { point: p.point, num: p.num, trend: p.trend, co: p.co, changed: false }))
            .collect();
        for e in events {
            let Some(product) = e.get("product_id").and_then(Value::as_str) else { continue };
            if let Some(term) = e.get(POP_TERM).and_then(Value::as_f64)
                && let Some(p) = products.get_mut(product)
            {
                p.trend = p.trend.and_then(|t| log_sub_exp(t, term));
                p.changed = true;
            }
            let with: Vec<&str> = match e.get(CO_WITH) {
                Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            for other in with {
                let (Some(a), Some(b)) = (products.get(product).map(|p| p.num), products.get(other).map(|p| p.num))
                else {
                    continue;
                };
                for (owner, at) in [(product, b), (other, a)] {
                    if let Some(p) = products.get_mut(owner) {
                        if let Some(v) = p.co.get_mut(&at) {
                            *v -= 1.0;
                            if *v < 0.5 {
                                p.co.remove(&at);
                            }
                        }
                        p.changed = true;
                    }
                }
            }
        }
        Ok(products
            .into_values()
            .filter(|p| p.changed)
            .map(|p| ProductFix { point: p.point, trend: p.trend, co: p.co.into_iter().collect() })
            .collect())
    }

    async fn apply(&self, fixes: &[ProductFix]) -> Result<()> {
        if fixes.is_empty() {
            return Ok(());
        }
        let updates = fixes
            .iter()
            .map(|f| SignalUpdate { point: f.point, trend: Some(f.trend), co: Some(f.co.iter().copied().collect()) })
            .collect();
        self.catalog.write_signals(updates).await
    }
}

/// `ln(e^a - e^b)`, or `None` when nothing is left.
pub fn log_sub_exp(a: f64, b: f64) -> Option<f64> {
    if b >= a - 1e-9 {
        return None;
    }
    Some(a + (-(b - a).exp()).ln_1p())
}

fn write_job(path: &Path, job: &Job) -> Result<()> {
    write_private(path, &serde_json::to_vec(job).map_err(|e| Error::Internal(e.to_string()))?)
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::log_add_exp;

    #[test]
    fn subtracting_a_term_undoes_adding_it() {
        let a = 3.2f64;
        let b = 1.7f64;
        let sum = log_add_exp(a, b);
        assert!((log_sub_exp(sum, b).unwrap() - a).abs() < 1e-9);
        assert_eq!(log_sub_exp(b, b), None);
    }
}
