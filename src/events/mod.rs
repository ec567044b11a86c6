//! Events: what customers do (view, click, cart, purchase, rating, return, impression), and
//! what each event changes at once, within the request that sends it:
//!
//! - the customer's live profile ([`profile`]): the `taste` vector, a time-decayed,
//!   kind-weighted mean of the text vectors of the products they interacted with, and their
//!   recent history and purchases;
//! - product popularity for `trending`: a forward-decayed sum kept as its logarithm, so that
//!   products updated at different times still rank correctly against each other;
//! - item-item co-occurrence for `co_purchase`: each product's sparse `co` vector counts, at
//!   the index of another product's number, how often a customer carted or bought both.
//!
//! Events are idempotent by id: a repeated event is acknowledged as a duplicate and changes
//! nothing. Without analytics consent an event is stored without its customer key (counted
//! anonymously); without personalization consent no profile is kept. This module knows
//! nothing of HTTP.

mod apply;
mod event;
pub mod import;
pub mod profile;

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::catalog::Catalog;
use crate::config::EventsConfig;
use crate::error::{Error, FieldError, Result};
use crate::privacy::Keyring;
use crate::store::{CollectionSpec, Condition, Filter, IndexKind, Payload, Store, point_id};

pub use apply::log_add_exp;
pub use event::{CustomerEvent, Event, EventInput, EventOutcome, IngestReport, Kind};
pub use profile::{Consent, CustomerInput, CustomerView, Profile, Profiles};

/// Logical name of the events collection.
pub const EVENTS: &str = "events";

/// Event payload: the log-term this event added to its product's trending score.
pub const POP_TERM: &str = "pop_term";
/// Event payload (of events stored before bought-together facts existed): the products this
/// event was counted as bought together with.
pub const CO_WITH: &str = "co_with";
/// Logical name of the bought-together facts collection (see `apply`).
pub const CO_FACTS: &str = "co_facts";

/// The event service.
#[derive(Clone)]
pub struct Events {
    store: Store,
    catalog: Catalog,
    profiles: Profiles,
    keys: Keyring,
    config: EventsConfig,
}

/// The events collection's layout.
pub fn collection_spec() -> CollectionSpec {
    CollectionSpec::payload_only(
        EVENTS,
        &[
            ("customer", IndexKind::Keyword),
            ("session", IndexKind::Keyword),
            ("product_id", IndexKind::Keyword),
            ("kind", IndexKind::Keyword),
            ("ts", IndexKind::Integer),
            ("rec_id", IndexKind::Keyword),
        ],
    )
}

/// The bought-together facts collection's layout.
fn facts_spec() -> CollectionSpec {
    CollectionSpec::payload_only(CO_FACTS, &[("owner", IndexKind::Keyword), ("ts", IndexKind::Integer)])
}

fn event_point(id: &str) -> Uuid {
    point_id(EVENTS, id)
}

impl Events {
    /// Open the event service, creating its collections if needed.
    pub async fn open(
        store: Store,
        catalog: Catalog,
        profiles: Profiles,
        keys: Keyring,
        config: EventsConfig,
    ) -> Result<Self> {
        store.ensure_collection(&collection_spec()).await?;
        store.ensure_collection(&facts_spec()).await?;
        Ok(Self { store, catalog, profiles, keys, config })
    }

    /// The pseudonymous key of an anonymous session id.
    pub fn session_key(&self, session_id: &str) -> String {
        self.keys.session_key(session_id)
    }

    /// The configured weight of an event in taste and popularity.
    pub fn weight(&self, kind: Kind, value: f64) -> f64 {
        kind_weight(&self.config, kind, value)
    }

    /// Validate one input (everything but the product's existence).
    fn validate(
        &self,
        input: EventInput,
        now: DateTime<Utc>,
    ) -> std::result::Result<(EventInput, DateTime<Utc>), Vec<FieldError>> {
        let mut errors = Vec::new();
        let id_ok = |s: &str| !s.trim().is_empty() && s.chars().count() <= 200 && !s.chars().any(char::is_control);
        if let Some(id) = &input.id
            && !id_ok(id)
        {
            errors.push(FieldError::new("/id", "must be 1 to 200 characters without control characters"));
        }
        if let Some(c) = &input.customer_id
            && !id_ok(c)
        {
            errors.push(FieldError::new("/customer_id", "must be 1 to 200 characters without control characters"));
        }
        if let Some(s) = &input.session_id
            && !id_ok(s)
        {
            errors.push(FieldError::new("/session_id", "must be 1 to 200 characters without control characters"));
        }
        if let Err(why) = crate::catalog::product::check_id(&input.product_id) {
            errors.push(FieldError::new("/product_id", why));
        }
        match (input.kind, input.value) {
            (Kind::Rating, None) => errors.push(FieldError::new("/value", "a rating needs a value from 1 to 5")),
            (Kind::Rating, Some(v)) if !(1.0..=5.0).contains(&v) => {
                errors.push(FieldError::new("/value", "a rating is 1 to 5"))
            }
            (_, Some(v)) if !v.is_finite() || !(0.0..=1e6).contains(&v) => {
                errors.push(FieldError::new("/value", "must be a number from 0 to 1e6"))
            }
            _ => {}
        }
        let ts = input.timestamp.unwrap_or(now);
        if ts > now + chrono::Duration::minutes(5) {
            errors.push(FieldError::new("/timestamp", "is in the future"));
        }
        if (now - ts).num_seconds() as f64 > self.config.max_age_days * 86_400.0 {
            errors.push(FieldError::new(
                "/timestamp",
                format!("is older than the retention of {} days", self.config.max_age_days),
            ));
        }
        if let Some(r) = &input.rec_id
            && Uuid::parse_str(r).is_err()
        {
            errors.push(FieldError::new("/rec_id", "is not a rec_id returned by a recommendation response"));
        }
        if errors.is_empty() { Ok((input, ts)) } else { Err(errors) }
    }

    /// Ingest a batch: each event is validated on its own (an unknown product or a bad field
    /// rejects that event only), duplicates are skipped, and the rest are stored and applied
    /// to profiles, popularity and co-occurrence before this returns. Returns the report and
    /// the accepted events (for recommendation attribution).
    pub async fn ingest(&self, inputs: Vec<EventInput>) -> Result<(IngestReport, Vec<Event>)> {
        let now = Utc::now();
        let mut report = IngestReport::default();
        let mut staged: Vec<(usize, EventInput, DateTime<Utc>)> = Vec::new();
        let mut results: Vec<Option<EventOutcome>> = vec![None; inputs.len()];
        for (i, input) in inputs.into_iter().enumerate() {
            match self.validate(input, now) {
                Ok((input, ts)) => staged.push((i, input, ts)),
                Err(errors) => results[i] = Some(EventOutcome::Rejected { errors }),
            }
        }
        // Unknown products are per-event errors.
        let product_ids: Vec<String> = staged.iter().map(|(_, e, _)| e.product_id.clone()).collect();
        let known = self.catalog.existing_ids(&product_ids).await?;
        // Repeated within the batch: duplicates.
        let ids: Vec<String> =
            staged.iter().map(|(_, e, _)| e.id.clone().unwrap_or_else(|| Uuid::new_v4().to_string())).collect();
        let mut seen = std::collections::HashSet::new();
        let mut events = Vec::new();
        for ((i, input, ts), id) in staged.into_iter().zip(ids) {
            if !known.contains(&input.product_id) {
                results[i] = Some(EventOutcome::Rejected {
                    errors: vec![FieldError::new(
                        "/product_id",
                        format!("product '{}' does not exist", input.product_id),
                    )],
                });
                continue;
            }
            if !seen.insert(id.clone()) {
                results[i] = Some(EventOutcome::Duplicate { id });
                continue;
            }
            let customer = input.customer_id.as_deref().map(|c| self.keys.customer_key(c));
            let session = input.session_id.as_deref().map(|s| self.keys.session_key(s));
            let value = input.value.unwrap_or(1.0);
            events.push((
                i,
                Event {
                    id: id.clone(),
                    customer,
                    session,
                    product_id: input.product_id,
                    kind: input.kind,
                    value,
                    timestamp: ts,
                    rec_id: input.rec_id.as_deref().and_then(|r| Uuid::parse_str(r).ok()),
                },
            ));
        }
        // Consent decides what is kept about whom.
        let mut consents: HashMap<String, Consent> = HashMap::new();
        for (_, e) in &events {
            if let Some(c) = &e.customer
                && !consents.contains_key(c)
            {
                consents.insert(c.clone(), self.profiles.consent_of_key(c).await?);
            }
        }
        // Stored by claiming the event's id: an id stored before (by any replica) is a duplicate.
        let records = events.iter().map(|(_, e)| apply::event_record(e, &consents, self.popularity_term(e))).collect();
        let won = self.store.claim(EVENTS, records).await?;
        let (accepted, duplicates): (Vec<_>, Vec<_>) =
            events.into_iter().partition(|(_, e)| won.contains(&event_point(&e.id)));
        for (i, e) in duplicates {
            results[i] = Some(EventOutcome::Duplicate { id: e.id });
        }
        for (i, e) in &accepted {
            results[*i] = Some(EventOutcome::Accepted { id: e.id.clone() });
        }
        self.apply(accepted.iter().map(|(_, e)| e).collect(), &consents).await?;
        for r in results.into_iter().flatten() {
            match &r {
                EventOutcome::Accepted { .. } => report.accepted += 1,
                EventOutcome::Duplicate { .. } => report.duplicates += 1,
                EventOutcome::Rejected { .. } => report.rejected += 1,
            }
            report.results.push(r);
        }
        Ok((report, accepted.into_iter().map(|(_, e)| e).collect()))
    }

    /// Every stored event of a customer key (payloads), oldest first.
    pub async fn of_customer(&self, customer_key: &str) -> Result<Vec<Payload>> {
        let filter = Filter::default().must(Condition::Keyword { key: "customer".into(), value: customer_key.into() });
        let mut out = Vec::new();
        let mut offset = None;
        loop {
            let page = self.store.scroll(EVENTS, Some(filter.clone()), offset, 1000).await?;
            out.extend(page.records.into_iter().map(|r| r.payload));
            match page.next {
                Some(n) => offset = Some(n),
                None => break,
            }
        }
        out.sort_by_key(|p| p.get("ts").and_then(Value::as_i64).unwrap_or(0));
        Ok(out)
    }

    /// How many events of each kind were stored on each day from `from` to `to` (UTC days,
    /// both included), oldest first; at most 366 days. Counted by the store (indexed `kind`
    /// and `ts`), not by reading the events.
    pub async fn per_day(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<(NaiveDate, Vec<(Kind, usize)>)>> {
        let count = |day: NaiveDate, kind: Kind| {
            let start = day.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp()).unwrap_or(0);
            let filter =
                Filter::default().must(Condition::Keyword { key: "kind".into(), value: kind.as_str().into() }).must(
                    Condition::Range { key: "ts".into(), gte: Some(start as f64), lte: Some((start + 86_399) as f64) },
                );
            async move { self.store.count(EVENTS, Some(filter)).await.map(|n| (kind, n)) }
        };
        let days: Vec<NaiveDate> = from.iter_days().take_while(|d| *d <= to).take(366).collect();
        // A day's kinds at once (seven requests in flight on a Qdrant server, not one by one).
        let mut out = Vec::with_capacity(days.len());
        for day in days {
            out.push((day, futures::future::try_join_all(Kind::ALL.map(|k| count(day, k))).await?));
        }
        Ok(out)
    }

    /// Rewrite the events collection from its live points, so deleted events leave the disk.
    pub async fn compact(&self) -> Result<()> {
        self.store.compact(EVENTS).await?;
        self.store.compact(CO_FACTS).await
    }

    /// Every stored event kept with a customer key (analytics consent), page by page in point
    /// order: what training and offline evaluation learn from. `visit` sees each event once.
    pub async fn for_each_customer_event(&self, mut visit: impl FnMut(CustomerEvent<'_>)) -> Result<()> {
        let mut offset = None;
        loop {
            let page = self.store.scroll(EVENTS, None, offset, 2000).await?;
            for r in &page.records {
                let p = &r.payload;
                let (Some(customer), Some(product_id), Some(kind)) = (
                    p.get("customer").and_then(Value::as_str),
                    p.get("product_id").and_then(Value::as_str),
                    p.get("kind").and_then(|k| serde_json::from_value::<Kind>(k.clone()).ok()),
                ) else {
                    continue;
                };
                visit(CustomerEvent {
                    customer,
                    product_id,
                    kind,
                    value: p.get("value").and_then(Value::as_f64),
                    ts: p.get("ts").and_then(Value::as_i64),
                });
            }
            match page.next {
                Some(n) => offset = Some(n),
                None => return Ok(()),
            }
        }
    }

    /// Every stored event that carries a `rec_id` (customer or anonymous session): the
    /// outcomes of recommendation lists, which the re-ranker learns from. `visit` gets the
    /// `rec_id`, product and kind.
    pub async fn for_each_attributed(&self, mut visit: impl FnMut(&str, &str, Kind)) -> Result<()> {
        let mut offset = None;
        loop {
            let page = self.store.scroll(EVENTS, None, offset, 2000).await?;
            for r in &page.records {
                let p = &r.payload;
                if let (Some(rec), Some(product), Some(kind)) = (
                    p.get("rec_id").and_then(Value::as_str),
                    p.get("product_id").and_then(Value::as_str),
                    p.get("kind").and_then(|k| serde_json::from_value::<Kind>(k.clone()).ok()),
                ) {
                    visit(rec, product, kind);
                }
            }
            match page.next {
                Some(n) => offset = Some(n),
                None => return Ok(()),
            }
        }
    }

    /// The bought-together facts of a customer key: (product, other product) per fact.
    pub async fn facts_of_customer(&self, customer_key: &str) -> Result<Vec<(String, String)>> {
        let filter =
            Filter::default().must(Condition::Keyword { key: "owner".into(), value: format!("c:{customer_key}") });
        let mut out = Vec::new();
        let mut offset = None;
        loop {
            let page = self.store.scroll(CO_FACTS, Some(filter.clone()), offset, 1000).await?;
            out.extend(page.records.iter().filter_map(|r| {
                Some((r.payload.get("product")?.as_str()?.to_string(), r.payload.get("other")?.as_str()?.to_string()))
            }));
            match page.next {
                Some(n) => offset = Some(n),
                None => return Ok(out),
            }
        }
    }

    /// Delete every event of a customer key, and its bought-together facts.
    pub async fn delete_of_customer(&self, customer_key: &str) -> Result<()> {
        let filter = Filter::default().must(Condition::Keyword { key: "customer".into(), value: customer_key.into() });
        self.store.delete_by_filter(EVENTS, filter).await?;
        let facts =
            Filter::default().must(Condition::Keyword { key: "owner".into(), value: format!("c:{customer_key}") });
        self.store.delete_by_filter(CO_FACTS, facts).await
    }

    /// Retention: delete events older than `events.max_age_days`, then rewrite the collection
    /// so their bytes are gone from disk. Returns how many were deleted.
    pub async fn purge_expired(&self, now: DateTime<Utc>) -> Result<usize> {
        let cutoff = now.timestamp() - (self.config.max_age_days * 86_400.0) as i64;
        let filter =
            Filter::default().must(Condition::Range { key: "ts".into(), gte: None, lte: Some((cutoff - 1) as f64) });
        let n = self.store.count(EVENTS, Some(filter.clone())).await?;
        if n > 0 {
            self.store.delete_by_filter(EVENTS, filter.clone()).await?;
            self.store.compact(EVENTS).await?;
        }
        // Their bought-together facts go too (the counts they added stay, as the events' do).
        if self.store.count(CO_FACTS, Some(filter.clone())).await? > 0 {
            self.store.delete_by_filter(CO_FACTS, filter).await?;
            self.store.compact(CO_FACTS).await?;
        }
        Ok(n)
    }

    /// Product ids of a customer's impression events since `since` (to exclude what was shown).
    pub async fn shown_since(&self, customer_key: &str, since: DateTime<Utc>) -> Result<Vec<String>> {
        let filter = Filter::default()
            .must(Condition::Keyword { key: "customer".into(), value: customer_key.into() })
            .must(Condition::Keyword { key: "kind".into(), value: "impression".into() })
            .must(Condition::Range { key: "ts".into(), gte: Some(since.timestamp() as f64), lte: None });
        let page = self.store.scroll(EVENTS, Some(filter), None, 500).await?;
        Ok(page.records.iter().filter_map(|r| r.payload.get("product_id")?.as_str().map(str::to_string)).collect())
    }
}

/// The configured weight of an event in taste, popularity and training.
pub fn kind_weight(c: &EventsConfig, kind: Kind, value: f64) -> f64 {
    match kind {
        Kind::View => c.weight_view,
        Kind::Click => c.weight_click,
        Kind::Cart => c.weight_cart,
        Kind::Purchase => c.weight_purchase,
        Kind::Return => c.weight_return,
        Kind::Rating => (value - 3.0) * c.weight_rating,
        Kind::Impression => 0.0,
    }
}

/// Errors of a whole request body that is not a list of events.
pub fn batch_too_large(n: usize, max: usize) -> Error {
    Error::invalid("/events", format!("at most {max} events per request; got {n}"))
}
