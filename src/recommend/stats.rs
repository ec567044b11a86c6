//! Recommendation statistics: every response's `rec_id` remembers which source placed each
//! item, so that later events carrying the `rec_id` are attributed to that source. Counters per
//! day and source (impressions, clicks, carts, purchases) give CTR, add-to-cart and
//! conversion rates.
//!
//! Several aisle processes may share one store (see `app::replica`): each keeps its own
//! counters (points keyed by day, source and replica, written only by it), and a report sums
//! every replica's. An event's click, cart or purchase counts once per item of a response,
//! whichever replica receives it: the first to claim `(rec_id, product, kind)` in the store
//! counts it.
//!
//! Counters live in memory and are written to the store every few seconds (and on shutdown,
//! and before a report): a crash loses at most that much of the statistics, never catalog or
//! event data. On a shared server a response's record is written before the response leaves,
//! so that a replica receiving its clicks can attribute them at once; on the embedded store
//! (one process) records are buffered with the counters.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use chrono::{DateTime, NaiveDate, Utc};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::events::Kind;
use crate::store::{CollectionSpec, IndexKind, Point, Store, point_id};

/// Collection of counters per (day, source).
pub const STATS: &str = "rec_stats";
/// Collection of recommendation responses (which source placed which item).
pub const RECS: &str = "recs";
/// Collection of attributions claimed: one point per (rec_id, product, kind) counted.
const ATTRIBUTIONS: &str = "rec_attributions";
/// Responses remembered in memory for attribution (older ones are read from the store).
const MEMORY: usize = 100_000;

/// Counters of one (day, source).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Items served.
    pub impressions: u64,
    /// Items clicked.
    pub clicks: u64,
    /// Items added to the cart.
    pub carts: u64,
    /// Items bought.
    pub purchases: u64,
}

impl Counters {
    fn add(&mut self, o: &Counters) {
        self.impressions += o.impressions;
        self.clicks += o.clicks;
        self.carts += o.carts;
        self.purchases += o.purchases;
    }

    /// The counters with their rates.
    pub fn rates(&self) -> Rates {
        let rate = |n: u64| if self.impressions == 0 { 0.0 } else { n as f64 / self.impressions as f64 };
        Rates {
            impressions: self.impressions,
            clicks: self.clicks,
            carts: self.carts,
            purchases: self.purchases,
            ctr: rate(self.clicks),
            add_to_cart_rate: rate(self.carts),
            conversion_rate: rate(self.purchases),
        }
    }
}

/// Counters and the rates they give.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct Rates {
    /// Recommended items shown.
    pub impressions: u64,
    /// Clicks on them.
    pub clicks: u64,
    /// Added to a cart.
    pub carts: u64,
    /// Bought.
    pub purchases: u64,
    /// Clicks per impression.
    pub ctr: f64,
    /// Carts per impression.
    pub add_to_cart_rate: f64,
    /// Purchases per impression.
    pub conversion_rate: f64,
}

/// One day's counters of one source.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DayRates {
    /// The day (UTC).
    pub day: NaiveDate,
    /// The source.
    pub source: String,
    /// Its counters.
    #[serde(flatten)]
    pub rates: Rates,
}

/// `GET /v1/stats/recommendations`: what recommendations led to, per source and day.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StatsReport {
    /// First day (inclusive).
    pub from: NaiveDate,
    /// Last day (inclusive).
    pub to: NaiveDate,
    /// All sources.
    pub total: Rates,
    /// Per source.
    pub per_source: BTreeMap<String, Rates>,
    /// Per day and source.
    pub per_day: Vec<DayRates>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RecRecord {
    ts: i64,
    items: HashMap<String, String>,
}

#[derive(Default)]
struct Inner {
    recs: HashMap<Uuid, RecRecord>,
    order: VecDeque<Uuid>,
    counters: BTreeMap<(NaiveDate, String), Counters>,
    dirty_counters: HashSet<(NaiveDate, String)>,
    dirty_recs: HashSet<Uuid>,
}

/// The statistics service.
pub struct Stats {
    store: Store,
    inner: Mutex<Inner>,
    /// This process's name among the replicas sharing the store.
    replica: String,
}

fn counter_point(day: NaiveDate, source: &str, replica: &str) -> Uuid {
    point_id(STATS, &format!("{day}|{source}|{replica}"))
}

/// Every stored counter point: (day, source, replica (empty for points written before
/// replicas), counters).
async fn stored_counters(store: &Store) -> Result<Vec<(NaiveDate, String, String, Counters)>> {
    let mut out = Vec::new();
    let mut offset = None;
    loop {
        let page = store.scroll(STATS, None, offset, 1000).await?;
        for r in &page.records {
            let p = &r.payload;
            let (Some(day), Some(source)) =
                (p.get("day").and_then(Value::as_str), p.get("source").and_then(Value::as_str))
            else {
                continue;
            };
            let Ok(day) = day.parse::<NaiveDate>() else { continue };
            let replica = p.get("replica").and_then(Value::as_str).unwrap_or("").to_string();
            let c: Counters = serde_json::from_value(Value::Object(p.clone())).unwrap_or_default();
            out.push((day, source.to_string(), replica, c));
        }
        match page.next {
            Some(n) => offset = Some(n),
            None => return Ok(out),
        }
    }
}

impl Stats {
    /// Open the statistics of replica `replica`, loading its stored counters.
    pub async fn open(store: Store, replica: &str) -> Result<Self> {
        store.ensure_collection(&CollectionSpec::payload_only(STATS, &[("day", IndexKind::Keyword)])).await?;
        store.ensure_collection(&CollectionSpec::payload_only(RECS, &[("ts", IndexKind::Integer)])).await?;
        store.ensure_collection(&CollectionSpec::payload_only(ATTRIBUTIONS, &[("ts", IndexKind::Integer)])).await?;
        let mut inner = Inner::default();
        for (day, source, owner, c) in stored_counters(&store).await? {
            if owner == replica {
                inner.counters.insert((day, source), c);
            }
        }
        Ok(Self { store, inner: Mutex::new(inner), replica: replica.to_string() })
    }

    /// A response was served: `items` are (product id, source that placed it). On a shared
    /// server the record is written before this returns.
    pub async fn record(&self, rec_id: Uuid, items: &[(String, String)], at: DateTime<Utc>) -> Result<()> {
        let record = RecRecord { ts: at.timestamp(), items: items.iter().cloned().collect() };
        let shared = self.store.is_remote();
        if shared {
            self.store.upsert(RECS, vec![rec_point(rec_id, &record)?]).await?;
        }
        let mut g = self.inner.lock();
        let day = at.date_naive();
        for (_, source) in items {
            let key = (day, source.clone());
            g.counters.entry(key.clone()).or_default().impressions += 1;
            g.dirty_counters.insert(key);
        }
        g.recs.insert(rec_id, record);
        g.order.push_back(rec_id);
        if !shared {
            g.dirty_recs.insert(rec_id);
        }
        while g.order.len() > MEMORY {
            if let Some(old) = g.order.pop_front()
                && !g.dirty_recs.contains(&old)
            {
                g.recs.remove(&old);
            }
        }
        Ok(())
    }

    /// An event carrying `rec_id` happened to `product_id`: count it for the item's source,
    /// once per (response, product, kind) across all replicas.
    pub async fn attribute(&self, rec_id: Uuid, product_id: &str, kind: Kind, at: DateTime<Utc>) -> Result<()> {
        if !matches!(kind, Kind::Click | Kind::Cart | Kind::Purchase) {
            return Ok(());
        }
        let known = self.inner.lock().recs.get(&rec_id).map(|r| r.items.get(product_id).cloned());
        let source = match known {
            Some(source) => source,
            None => {
                // Served by another replica, before this process started, or long ago.
                let Some(r) = self.store.retrieve(RECS, vec![rec_id], vec![]).await?.pop() else { return Ok(()) };
                let Ok(record) = serde_json::from_value::<RecRecord>(Value::Object(r.payload)) else {
                    return Ok(());
                };
                let source = record.items.get(product_id).cloned();
                let mut g = self.inner.lock();
                g.recs.entry(rec_id).or_insert(record);
                g.order.push_back(rec_id);
                source
            }
        };
        let Some(source) = source else { return Ok(()) };
        let claim = point_id(ATTRIBUTIONS, &format!("{rec_id}|{product_id}|{}", kind.as_str()));
        let payload = json!({ "ts": at.timestamp() }).as_object().cloned().unwrap_or_default();
        if self.store.claim(ATTRIBUTIONS, vec![Point { id: claim, vectors: vec![], payload }]).await?.is_empty() {
            return Ok(());
        }
        let mut g = self.inner.lock();
        let key = (at.date_naive(), source);
        let c = g.counters.entry(key.clone()).or_default();
        match kind {
            Kind::Click => c.clicks += 1,
            Kind::Cart => c.carts += 1,
            Kind::Purchase => c.purchases += 1,
            _ => {}
        }
        g.dirty_counters.insert(key);
        Ok(())
    }

    /// Write what changed since the last flush.
    pub async fn flush(&self) -> Result<()> {
        let (counters, recs) = {
            let mut g = self.inner.lock();
            let counters: Vec<((NaiveDate, String), Counters)> = g
                .dirty_counters
                .drain()
                .collect::<Vec<_>>()
                .into_iter()
                .filter_map(|k| g.counters.get(&k).map(|c| (k, *c)))
                .collect();
            let recs: Vec<(Uuid, RecRecord)> = g
                .dirty_recs
                .drain()
                .collect::<Vec<_>>()
                .into_iter()
                .filter_map(|id| g.recs.get(&id).map(|r| (id, r.clone())))
                .collect();
            (counters, recs)
        };
        let points: Vec<Point> = counters
            .into_iter()
            .map(|((day, source), c)| {
                let mut payload = serde_json::to_value(c).ok().and_then(|v| v.as_object().cloned()).unwrap_or_default();
                payload.insert("day".into(), json!(day.to_string()));
                payload.insert("source".into(), json!(source));
                payload.insert("replica".into(), json!(self.replica));
                Point { id: counter_point(day, &source, &self.replica), vectors: vec![], payload }
            })
            .collect();
        self.store.upsert(STATS, points).await?;
        let points = recs.into_iter().map(|(id, r)| rec_point(id, &r)).collect::<Result<Vec<_>>>()?;
        self.store.upsert(RECS, points).await
    }

    /// Counters from `from` to `to` (inclusive), summed over every replica sharing the store:
    /// per source, per day and source, and in total. This replica's are written first.
    pub async fn report(&self, from: NaiveDate, to: NaiveDate) -> Result<StatsReport> {
        self.flush().await?;
        let mut counters: BTreeMap<(NaiveDate, String), Counters> = BTreeMap::new();
        for (day, source, _, c) in stored_counters(&self.store).await? {
            if (from..=to).contains(&day) {
                counters.entry((day, source)).or_default().add(&c);
            }
        }
        let mut per_source: BTreeMap<String, Counters> = BTreeMap::new();
        let mut total = Counters::default();
        let mut days = Vec::new();
        for ((day, source), c) in &counters {
            per_source.entry(source.clone()).or_default().add(c);
            total.add(c);
            days.push(DayRates { day: *day, source: source.clone(), rates: c.rates() });
        }
        Ok(StatsReport {
            from,
            to,
            total: total.rates(),
            per_source: per_source.iter().map(|(s, c)| (s.clone(), c.rates())).collect(),
            per_day: days,
        })
    }
}

/// The stored point of a response's record.
fn rec_point(id: Uuid, r: &RecRecord) -> Result<Point> {
    let payload =
        serde_json::to_value(r).map_err(|e| Error::Internal(e.to_string()))?.as_object().cloned().unwrap_or_default();
    Ok(Point { id, vectors: vec![], payload })
}
