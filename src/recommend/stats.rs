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

/// Counters of one (day, source), or of one (day, experiment, variant).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Items served.
    pub impressions: u64,
    /// Items clicked.
    pub clicks: u64,
    /// Items added to the cart.
    pub carts: u64,
    /// Items bought.
    pub purchases: u64,
    /// What the purchases brought: the item's price when it was served times the quantity.
    #[serde(default)]
    pub revenue: f64,
    /// The sum of each purchase's revenue squared (for the variance of revenue per impression).
    #[serde(default)]
    pub revenue_sq: f64,
}

impl Counters {
    /// Add another's counts.
    pub fn add(&mut self, o: &Counters) {
        self.impressions += o.impressions;
        self.clicks += o.clicks;
        self.carts += o.carts;
        self.purchases += o.purchases;
        self.revenue += o.revenue;
        self.revenue_sq += o.revenue_sq;
    }

    /// Count an outcome of a served item (`amount`: a purchase's revenue).
    fn count(&mut self, kind: Kind, amount: f64) {
        match kind {
            Kind::Click => self.clicks += 1,
            Kind::Cart => self.carts += 1,
            Kind::Purchase => {
                self.purchases += 1;
                self.revenue += amount;
                self.revenue_sq += amount * amount;
            }
            _ => {}
        }
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
            revenue: self.revenue,
            revenue_per_impression: if self.impressions == 0 { 0.0 } else { self.revenue / self.impressions as f64 },
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
    /// Revenue of the purchases (price when served times quantity).
    pub revenue: f64,
    /// Revenue per impression.
    pub revenue_per_impression: f64,
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
    /// Product id: the source credited.
    items: HashMap<String, String>,
    /// Product id: its price when served (for revenue).
    #[serde(default)]
    prices: HashMap<String, f64>,
    /// The (experiment, variant) pairs of the request.
    #[serde(default)]
    variants: Vec<(String, String)>,
    /// Product id: the re-ranker's features of the item as shown (its true position), missing
    /// values as null. Written to the store with the record, not kept in memory after.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    features: HashMap<String, Vec<Option<f32>>>,
}

/// Lists kept per shopper for attributing events sent without a `rec_id`.
const SHOWN_PER_SHOPPER: usize = 4;

/// Shoppers whose recent lists are kept (the oldest are forgotten first): at most about
/// 20,000 x 4 lists x their product ids, a few tens of MiB.
const SHOWN_SHOPPERS: usize = 20_000;

/// A list recently shown to a shopper: its `rec_id`, when, and its products. In memory only.
struct ShownList {
    rec_id: Uuid,
    ts: i64,
    products: Vec<String>,
}

/// A variant's counters key: day, experiment, variant.
type VariantKey = (NaiveDate, String, String);

#[derive(Default)]
struct Inner {
    recs: HashMap<Uuid, RecRecord>,
    order: VecDeque<Uuid>,
    counters: BTreeMap<(NaiveDate, String), Counters>,
    dirty_counters: HashSet<(NaiveDate, String)>,
    variants: BTreeMap<VariantKey, Counters>,
    dirty_variants: HashSet<VariantKey>,
    dirty_recs: HashSet<Uuid>,
    /// Pseudonymous shopper key (customer, else session): the latest lists shown to them.
    shown: HashMap<String, VecDeque<ShownList>>,
    /// (shopper key, when) of each list in `shown`, oldest first: for forgetting the oldest.
    shown_order: VecDeque<(String, i64)>,
}

/// What one response served, for the statistics.
pub struct Served<'a> {
    /// (product id, source credited, price) of each item.
    pub items: Vec<(String, String, Option<f64>)>,
    /// The request's experiment variants.
    pub variants: &'a [super::experiments::Assignment],
    /// Product id: the re-ranker's feature row as shown (NaN: missing).
    pub features: HashMap<String, Vec<f32>>,
    /// The pseudonymous key of the customer (else the session) it was shown to: kept in
    /// memory only, to attribute events that come back without the `rec_id`.
    pub shopper: Option<String>,
}

/// A stored response, as the re-ranker's training reads it.
pub struct Logged {
    /// Its `rec_id`.
    pub rec_id: Uuid,
    /// When it was served (unix seconds).
    pub ts: i64,
    /// Product id: feature row as shown (NaN: missing).
    pub features: HashMap<String, Vec<f32>>,
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

fn variant_point(day: NaiveDate, experiment: &str, variant: &str, replica: &str) -> Uuid {
    point_id(STATS, &format!("experiment|{day}|{experiment}|{variant}|{replica}"))
}

/// A stored counter point: its day, what it counts (`Ok(source)` or `Err((experiment,
/// variant))`), the replica that wrote it (empty for points written before replicas) and the
/// counters.
type StoredCounter = (NaiveDate, std::result::Result<String, (String, String)>, String, Counters);

/// Every stored counter point, of sources and of experiment variants (which share the
/// collection and have no `source`).
async fn stored_counters(store: &Store) -> Result<Vec<StoredCounter>> {
    let mut out = Vec::new();
    let mut offset = None;
    loop {
        let page = store.scroll(STATS, None, offset, 1000).await?;
        for r in &page.records {
            let p = &r.payload;
            let field = |k: &str| p.get(k).and_then(Value::as_str);
            let Some(Ok(day)) = field("day").map(str::parse::<NaiveDate>) else { continue };
            let what = match (field("source"), field("experiment"), field("variant")) {
                (Some(source), _, _) => Ok(source.to_string()),
                (None, Some(e), Some(v)) => Err((e.to_string(), v.to_string())),
                _ => continue,
            };
            let c: Counters = serde_json::from_value(Value::Object(p.clone())).unwrap_or_default();
            out.push((day, what, field("replica").unwrap_or("").to_string(), c));
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
        for (day, what, owner, c) in stored_counters(&store).await? {
            match what {
                _ if owner != replica => {}
                Ok(source) => _ = inner.counters.insert((day, source), c),
                Err((experiment, variant)) => _ = inner.variants.insert((day, experiment, variant), c),
            }
        }
        Ok(Self { store, inner: Mutex::new(inner), replica: replica.to_string() })
    }

    /// A response was served: each item counts an impression for its source and for each of
    /// the request's variants. On a shared server the record is written before this returns.
    pub async fn record(&self, rec_id: Uuid, served: Served<'_>, at: DateTime<Utc>) -> Result<()> {
        let record = RecRecord {
            ts: at.timestamp(),
            items: served.items.iter().map(|(p, s, _)| (p.clone(), s.clone())).collect(),
            prices: served.items.iter().filter_map(|(p, _, price)| Some((p.clone(), (*price)?))).collect(),
            variants: served.variants.iter().map(|a| (a.experiment.clone(), a.variant.clone())).collect(),
            features: served
                .features
                .into_iter()
                .map(|(p, row)| (p, row.into_iter().map(|x| (!x.is_nan()).then_some(x)).collect()))
                .collect(),
        };
        let shared = self.store.is_remote();
        let mut record = record;
        if shared {
            self.store.upsert(RECS, vec![rec_point(rec_id, &record)?]).await?;
            record.features.clear();
        }
        let mut g = self.inner.lock();
        let day = at.date_naive();
        for (_, source, _) in &served.items {
            let key = (day, source.clone());
            g.counters.entry(key.clone()).or_default().impressions += 1;
            g.dirty_counters.insert(key);
        }
        for (experiment, variant) in &record.variants {
            let key = (day, experiment.clone(), variant.clone());
            g.variants.entry(key.clone()).or_default().impressions += served.items.len() as u64;
            g.dirty_variants.insert(key);
        }
        if let Some(shopper) = served.shopper {
            let list =
                ShownList { rec_id, ts: record.ts, products: served.items.iter().map(|(p, _, _)| p.clone()).collect() };
            let lists = g.shown.entry(shopper.clone()).or_default();
            lists.push_back(list);
            if lists.len() > SHOWN_PER_SHOPPER {
                lists.pop_front();
            }
            g.shown_order.push_back((shopper, record.ts));
            while g.shown_order.len() > SHOWN_SHOPPERS * 2 || g.shown.len() > SHOWN_SHOPPERS {
                let Some((old, ts)) = g.shown_order.pop_front() else { break };
                // Forgotten unless a later list was shown to the same shopper.
                if g.shown.get(&old).and_then(|l| l.back()).is_some_and(|l| l.ts <= ts) {
                    g.shown.remove(&old);
                }
            }
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

    /// An event carrying `rec_id` happened to `product_id` (`quantity`: the event's value):
    /// count it for the item's source and the response's variants, once per (response,
    /// product, kind) across all replicas.
    pub async fn attribute(
        &self,
        rec_id: Uuid,
        product_id: &str,
        kind: Kind,
        quantity: f64,
        at: DateTime<Utc>,
    ) -> Result<()> {
        if !matches!(kind, Kind::Click | Kind::Cart | Kind::Purchase) {
            return Ok(());
        }
        let record = self.inner.lock().recs.get(&rec_id).cloned();
        let record = match record {
            Some(r) => r,
            None => {
                // Served by another replica, before this process started, or long ago.
                let Some(r) = self.store.retrieve(RECS, vec![rec_id], vec![]).await?.pop() else { return Ok(()) };
                let Ok(mut record) = serde_json::from_value::<RecRecord>(Value::Object(r.payload)) else {
                    return Ok(());
                };
                record.features.clear();
                let mut g = self.inner.lock();
                g.recs.entry(rec_id).or_insert(record.clone());
                g.order.push_back(rec_id);
                record
            }
        };
        let Some(source) = record.items.get(product_id).cloned() else { return Ok(()) };
        let amount = record.prices.get(product_id).copied().unwrap_or(0.0) * quantity;
        let claim = point_id(ATTRIBUTIONS, &format!("{rec_id}|{product_id}|{}", kind.as_str()));
        let payload = json!({ "ts": at.timestamp() }).as_object().cloned().unwrap_or_default();
        if self.store.claim(ATTRIBUTIONS, vec![Point { id: claim, vectors: vec![], payload }]).await?.is_empty() {
            return Ok(());
        }
        let mut g = self.inner.lock();
        let day = at.date_naive();
        let key = (day, source);
        g.counters.entry(key.clone()).or_default().count(kind, amount);
        g.dirty_counters.insert(key);
        for (experiment, variant) in record.variants {
            let key = (day, experiment, variant);
            g.variants.entry(key.clone()).or_default().count(kind, amount);
            g.dirty_variants.insert(key);
        }
        Ok(())
    }

    /// Write what changed since the last flush.
    pub async fn flush(&self) -> Result<()> {
        let (counters, variants, recs) = {
            let mut g = self.inner.lock();
            let variants: Vec<(VariantKey, Counters)> = g
                .dirty_variants
                .drain()
                .collect::<Vec<_>>()
                .into_iter()
                .filter_map(|k| g.variants.get(&k).map(|c| (k, *c)))
                .collect();
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
                .filter_map(|id| {
                    // The features go to the store only; memory keeps what attribution needs.
                    let r = g.recs.get_mut(&id)?;
                    let features = std::mem::take(&mut r.features);
                    Some((id, RecRecord { features, ..r.clone() }))
                })
                .collect();
            (counters, variants, recs)
        };
        let payload = |c: Counters, day: NaiveDate, fields: &[(&str, &str)]| {
            let mut payload = serde_json::to_value(c).ok().and_then(|v| v.as_object().cloned()).unwrap_or_default();
            payload.insert("day".into(), json!(day.to_string()));
            payload.insert("replica".into(), json!(self.replica));
            for (k, v) in fields {
                payload.insert(k.to_string(), json!(v));
            }
            payload
        };
        let mut points: Vec<Point> = counters
            .into_iter()
            .map(|((day, source), c)| Point {
                id: counter_point(day, &source, &self.replica),
                vectors: vec![],
                payload: payload(c, day, &[("source", &source)]),
            })
            .collect();
        points.extend(variants.into_iter().map(|((day, experiment, variant), c)| Point {
            id: variant_point(day, &experiment, &variant, &self.replica),
            vectors: vec![],
            payload: payload(c, day, &[("experiment", &experiment), ("variant", &variant)]),
        }));
        self.store.upsert(STATS, points).await?;
        let points = recs.into_iter().map(|(id, r)| rec_point(id, &r)).collect::<Result<Vec<_>>>()?;
        self.store.upsert(RECS, points).await
    }

    /// The latest list shown to `shopper` (a pseudonymous key) within `window_secs` before
    /// `at` that held `product_id`: where an event sent without a `rec_id` came from.
    pub fn shown_to(&self, shopper: &str, product_id: &str, at: DateTime<Utc>, window_secs: i64) -> Option<Uuid> {
        let g = self.inner.lock();
        let at = at.timestamp();
        g.shown.get(shopper)?.iter().rev().find_map(|l| {
            let fresh = l.ts <= at + 5 && at - l.ts <= window_secs;
            (fresh && l.products.iter().any(|p| p == product_id)).then_some(l.rec_id)
        })
    }

    /// Erasure: forget the responses `rec_ids` (those a customer's events pointed to): their
    /// items, prices and feature rows leave memory and the store, and the collection is
    /// rewritten so that their bytes leave the disk. Returns how many were held.
    pub async fn forget(&self, shopper: &str, rec_ids: &[Uuid]) -> Result<usize> {
        self.inner.lock().shown.remove(shopper);
        if rec_ids.is_empty() {
            return Ok(0);
        }
        // Pending writes first, so that no later flush writes a forgotten response back.
        self.flush().await?;
        {
            let mut g = self.inner.lock();
            for id in rec_ids {
                g.recs.remove(id);
                g.dirty_recs.remove(id);
            }
            g.order.retain(|id| !rec_ids.contains(id));
        }
        let held = self.store.retrieve(RECS, rec_ids.to_vec(), vec![]).await?.len();
        self.store.delete(RECS, rec_ids.to_vec()).await?;
        self.store.compact(RECS).await?;
        Ok(held)
    }

    /// Every stored response that logged features, for training the re-ranker (after a flush,
    /// so that this replica's latest are included).
    pub async fn for_each_logged(&self, mut visit: impl FnMut(Logged)) -> Result<()> {
        self.flush().await?;
        let mut offset = None;
        loop {
            let page = self.store.scroll(RECS, None, offset, 500).await?;
            for r in page.records {
                let Ok(record) = serde_json::from_value::<RecRecord>(Value::Object(r.payload)) else { continue };
                if record.features.is_empty() {
                    continue;
                }
                let features = record
                    .features
                    .into_iter()
                    .map(|(p, row)| (p, row.into_iter().map(|x| x.unwrap_or(f32::NAN)).collect()))
                    .collect();
                visit(Logged { rec_id: r.id, ts: record.ts, features });
            }
            match page.next {
                Some(n) => offset = Some(n),
                None => return Ok(()),
            }
        }
    }

    /// One experiment's counters per variant from `from` to `to` (inclusive), summed over every
    /// replica sharing the store. This replica's are written first.
    pub async fn variant_counters(
        &self,
        experiment: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<BTreeMap<String, Counters>> {
        self.flush().await?;
        let mut out: BTreeMap<String, Counters> = BTreeMap::new();
        for (day, what, _, c) in stored_counters(&self.store).await? {
            if let Err((e, variant)) = what
                && e == experiment
                && (from..=to).contains(&day)
            {
                out.entry(variant).or_default().add(&c);
            }
        }
        Ok(out)
    }

    /// Counters from `from` to `to` (inclusive), summed over every replica sharing the store:
    /// per source, per day and source, and in total. This replica's are written first.
    pub async fn report(&self, from: NaiveDate, to: NaiveDate) -> Result<StatsReport> {
        self.flush().await?;
        let mut counters: BTreeMap<(NaiveDate, String), Counters> = BTreeMap::new();
        for (day, what, _, c) in stored_counters(&self.store).await? {
            if let Ok(source) = what
                && (from..=to).contains(&day)
            {
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
