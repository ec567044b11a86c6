//! Behavioural signals that several aisle processes on one Qdrant server can change at once
//! without losing an increment: each process (a *replica*, named by the id in its data
//! directory) keeps its own share of every product's popularity and bought-together counts in
//! the `signal_shares` collection, which only it writes. A product's `trend` payload and `co`
//! vector are the sum of its shares, written after every change (*materialised*) so that
//! queries can rank and filter by them.
//!
//! Sums are exact, so the result does not depend on which replica counted what, or in what
//! order: popularity is kept as an integer (each event adds `e^term × 2^32`, rounded, see
//! [`popularity_units`]; a big integer because forward decay grows without bound), counts as
//! integers. Erasure subtracts from the erasing replica's share (shares may be negative; only
//! sums mean anything).
//!
//! Materialising reads every share of a product, writes the sums, and reads the shares again:
//! if one changed in between, it goes round again. The last writer of a product therefore wrote
//! sums that include every share written before it finished, whatever the interleaving.
//!
//! Not for: deciding what an event adds (that is `events`), or erasure's bookkeeping.

use std::collections::{BTreeMap, HashMap};
use std::f64::consts::LN_2;

use num_bigint::{BigInt, Sign};
use num_traits::{ToPrimitive, Zero};
use serde_json::{Value, json};

use super::{CO_VECTOR, Catalog, PRODUCTS, SignalUpdate, TREND, product_point};
use crate::error::Result;
use crate::store::{CollectionSpec, Condition, Filter, IndexKind, Payload, Point, Vector, point_id};

/// Collection of every replica's share of every product's signals.
pub const SHARES: &str = "signal_shares";
/// The replica name of shares carried over from a store written before shares existed.
const BASE: &str = "base";
/// Marks a store whose earlier signals were carried over into shares.
const SEEDED: &str = "@seeded";
/// Fractional bits of popularity units.
const FRACTION_BITS: i64 = 32;

/// What a replica adds to (or, negative, takes from) one product's signals.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// Popularity units (see [`popularity_units`]).
    pub popularity: BigInt,
    /// Bought-together counts by the other product's number.
    pub co: BTreeMap<u32, i64>,
}

impl Tally {
    /// Add another tally to this one.
    pub fn add(&mut self, other: &Tally) {
        self.popularity += &other.popularity;
        for (k, v) in &other.co {
            *self.co.entry(*k).or_default() += v;
        }
        self.co.retain(|_, v| *v != 0);
    }

    /// Count one bought-together occurrence with product number `with` (`by` = -1 takes one away).
    pub fn count_with(&mut self, with: u32, by: i64) {
        *self.co.entry(with).or_default() += by;
    }

    fn from_payload(p: &Payload) -> Tally {
        let popularity = p.get("popularity").and_then(Value::as_str).and_then(|s| s.parse().ok()).unwrap_or_default();
        let co = p
            .get("co")
            .and_then(Value::as_object)
            .map(|m| m.iter().filter_map(|(k, v)| Some((k.parse().ok()?, v.as_i64()?))).collect())
            .unwrap_or_default();
        Tally { popularity, co }
    }

    fn to_payload(&self, product: &str, replica: &str, seq: u64) -> Payload {
        let co: serde_json::Map<String, Value> = self.co.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
        let v = json!({
            "product": product, "replica": replica, "seq": seq,
            "popularity": self.popularity.to_string(), "co": co,
        });
        v.as_object().cloned().unwrap_or_default()
    }
}

/// The exact integer an event with forward-decay log-term `term` adds to its product's
/// popularity: `e^term × 2^32`, rounded to 53 significant bits. A pure function of the term,
/// so every replica (and erasure, later) computes the same units for the same event.
pub fn popularity_units(term: f64) -> BigInt {
    let y = term / LN_2 + FRACTION_BITS as f64;
    if !y.is_finite() || y < 0.0 {
        return BigInt::zero();
    }
    let k = y.floor();
    let mantissa = ((y - k).exp2() * (1u64 << 52) as f64).round() as u64; // in [2^52, 2^53]
    let k = k as i64;
    if k >= 52 { BigInt::from(mantissa) << (k - 52) as usize } else { BigInt::from(mantissa >> (52 - k)) }
}

/// The trending score (log of the forward-decayed popularity) of a total of units, or `None`
/// when nothing positive is left.
pub fn trend_score(units: &BigInt) -> Option<f64> {
    if units.sign() != Sign::Plus {
        return None;
    }
    let shift = units.bits().saturating_sub(64);
    let top = (units >> shift as usize).to_u64()? as f64;
    Some(top.ln() + (shift as f64 - FRACTION_BITS as f64) * LN_2)
}

/// The shares collection's layout.
pub fn collection_spec() -> CollectionSpec {
    CollectionSpec::payload_only(SHARES, &[("product", IndexKind::Keyword), ("replica", IndexKind::Keyword)])
}

fn share_point(product: &str, replica: &str) -> uuid::Uuid {
    point_id(SHARES, &format!("{product}|{replica}"))
}

/// Every share of some products: the summed tally per product, and each share's version.
struct Shares {
    sums: HashMap<String, Tally>,
    versions: BTreeMap<(String, String), u64>,
}

impl Catalog {
    /// The versions of this replica's shares of `products` (0 where it has none).
    pub async fn own_share_versions(&self, products: &[String]) -> Result<HashMap<String, u64>> {
        let ids = products.iter().map(|p| share_point(p, &self.replica)).collect();
        let mut out: HashMap<String, u64> = products.iter().map(|p| (p.clone(), 0)).collect();
        for r in self.store.retrieve(SHARES, ids, vec![]).await? {
            if let Some(p) = r.payload.get("product").and_then(Value::as_str) {
                out.insert(p.to_string(), r.payload.get("seq").and_then(Value::as_u64).unwrap_or(0));
            }
        }
        Ok(out)
    }

    /// Add `tallies` (by product id) to this replica's shares and bring those products'
    /// `trend` and `co` up to date.
    pub async fn add_signals(&self, tallies: HashMap<String, Tally>) -> Result<()> {
        let _writes = self.writes.lock().await;
        self.add_signals_held(tallies, None).await
    }

    /// As [`Catalog::add_signals`], for a caller that holds [`Catalog::product_writes`]. With
    /// `only_at`, a product's tally is added only if this replica's share is still at that
    /// version (so that a resumed erasure does not take the same events away twice).
    pub async fn add_signals_held(
        &self,
        tallies: HashMap<String, Tally>,
        only_at: Option<&HashMap<String, u64>>,
    ) -> Result<()> {
        if tallies.is_empty() {
            return Ok(());
        }
        let products: Vec<String> = tallies.keys().cloned().collect();
        let mut own: HashMap<String, (Tally, u64)> = HashMap::new();
        let ids = products.iter().map(|p| share_point(p, &self.replica)).collect();
        for r in self.store.retrieve(SHARES, ids, vec![]).await? {
            if let Some(p) = r.payload.get("product").and_then(Value::as_str) {
                let seq = r.payload.get("seq").and_then(Value::as_u64).unwrap_or(0);
                own.insert(p.to_string(), (Tally::from_payload(&r.payload), seq));
            }
        }
        let mut points = Vec::with_capacity(tallies.len());
        for (product, tally) in &tallies {
            let (mut share, seq) = own.remove(product).unwrap_or_default();
            if only_at.is_some_and(|at| at.get(product).copied().unwrap_or(0) != seq) {
                continue;
            }
            share.add(tally);
            let payload = share.to_payload(product, &self.replica, seq + 1);
            points.push(Point { id: share_point(product, &self.replica), vectors: vec![], payload });
        }
        self.store.upsert(SHARES, points).await?;
        self.materialise(&products).await
    }

    /// Write the sums of the shares of `products` into their `trend` and `co`, until no share
    /// changed while doing so (products without shares are left alone).
    pub(super) async fn materialise(&self, products: &[String]) -> Result<()> {
        if products.is_empty() {
            return Ok(());
        }
        let mut shares = self.shares(products).await?;
        // A product without shares has no signals to write (nor one that no longer exists).
        let existing = self.existing_ids(products).await?;
        let shared: std::collections::HashSet<&str> = shares.versions.keys().map(|(p, _)| p.as_str()).collect();
        let products: Vec<String> =
            products.iter().filter(|p| existing.contains(*p) && shared.contains(p.as_str())).cloned().collect();
        if products.is_empty() {
            return Ok(());
        }
        for round in 0u32.. {
            let updates = products
                .iter()
                .map(|p| {
                    let sum = shares.sums.remove(p).unwrap_or_default();
                    SignalUpdate {
                        point: product_point(p),
                        trend: Some(trend_score(&sum.popularity)),
                        co: Some(sum.co.iter().filter(|(_, v)| **v > 0).map(|(k, v)| (*k, *v as f32)).collect()),
                    }
                })
                .collect();
            self.write_signals(updates).await?;
            let again = self.shares(&products).await?;
            if again.versions == shares.versions {
                return Ok(());
            }
            if round >= 3 {
                // Another replica keeps changing these products: let it settle.
                tokio::time::sleep(std::time::Duration::from_millis(5 * u64::from(round.min(40)))).await;
            }
            shares = again;
        }
        Ok(())
    }

    /// Every share of `products`, summed.
    async fn shares(&self, products: &[String]) -> Result<Shares> {
        let mut out = Shares { sums: HashMap::new(), versions: BTreeMap::new() };
        for chunk in products.chunks(500) {
            let filter =
                Filter::default().must(Condition::KeywordAny { key: "product".into(), values: chunk.to_vec() });
            let mut offset = None;
            loop {
                let page = self.store.scroll(SHARES, Some(filter.clone()), offset, 1000).await?;
                for r in &page.records {
                    let p = &r.payload;
                    let (Some(product), Some(replica)) =
                        (p.get("product").and_then(Value::as_str), p.get("replica").and_then(Value::as_str))
                    else {
                        continue;
                    };
                    let seq = p.get("seq").and_then(Value::as_u64).unwrap_or(0);
                    out.versions.insert((product.to_string(), replica.to_string()), seq);
                    out.sums.entry(product.to_string()).or_default().add(&Tally::from_payload(p));
                }
                match page.next {
                    Some(n) => offset = Some(n),
                    None => break,
                }
            }
        }
        Ok(out)
    }

    /// Delete every share of a product (it was deleted).
    pub(super) async fn delete_shares(&self, product: &str) -> Result<()> {
        let filter = Filter::default().must(Condition::Keyword { key: "product".into(), value: product.into() });
        self.store.delete_by_filter(SHARES, filter).await
    }

    /// Carry the signals of a store written before shares existed into a `base` share, once:
    /// every product with a trend or counts and no share at all gets one holding exactly what
    /// it has. Claimed, so that replicas starting together carry nothing over twice.
    pub(super) async fn seed_shares(&self) -> Result<()> {
        let marker = point_id(SHARES, SEEDED);
        if !self.store.retrieve(SHARES, vec![marker], vec![]).await?.is_empty() {
            return Ok(());
        }
        let mut offset = None;
        let mut seeded = 0usize;
        loop {
            let page = self.store.scroll_with_vectors(PRODUCTS, offset, 1000, vec![CO_VECTOR.into()]).await?;
            let mut candidates: Vec<(String, Tally)> = Vec::new();
            for r in &page.records {
                let Some(id) = r.payload.get("id").and_then(Value::as_str) else { continue };
                let trend = r.payload.get(TREND).and_then(Value::as_f64);
                let co: BTreeMap<u32, i64> = match r.vectors.get(CO_VECTOR) {
                    Some(Vector::Sparse { indices, values }) => indices
                        .iter()
                        .zip(values)
                        .filter(|(_, v)| **v >= 0.5)
                        .map(|(k, v)| (*k, v.round() as i64))
                        .collect(),
                    _ => BTreeMap::new(),
                };
                if trend.is_some() || !co.is_empty() {
                    candidates.push((
                        id.to_string(),
                        Tally { popularity: trend.map(popularity_units).unwrap_or_default(), co },
                    ));
                }
            }
            // Read the shares after the products: a product whose trend came from a share
            // already has that share.
            let ids: Vec<String> = candidates.iter().map(|(id, _)| id.clone()).collect();
            let have = self.shares(&ids).await?;
            let points: Vec<Point> = candidates
                .into_iter()
                .filter(|(id, _)| !have.versions.keys().any(|(p, _)| p == id))
                .map(|(id, tally)| Point {
                    id: share_point(&id, BASE),
                    vectors: vec![],
                    payload: tally.to_payload(&id, BASE, 1),
                })
                .collect();
            seeded += self.store.claim(SHARES, points).await?.len();
            match page.next {
                Some(n) => offset = Some(n),
                None => break,
            }
        }
        if seeded > 0 {
            tracing::info!(products = seeded, "carried earlier trending scores and counts over into shares");
        }
        let mut payload = Payload::new();
        payload.insert("product".into(), json!(SEEDED));
        self.store.claim(SHARES, vec![Point { id: marker, vectors: vec![], payload }]).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_sum_exactly_in_any_order_and_read_back_as_the_log_sum() {
        let terms = [3.2f64, 40.7, -5.0, 12.25, 40.69, 700.5];
        let forward: BigInt = terms.iter().map(|t| popularity_units(*t)).sum();
        let backward: BigInt = terms.iter().rev().map(|t| popularity_units(*t)).sum();
        assert_eq!(forward, backward);
        let top = 700.5f64;
        let exact = top + terms.iter().map(|t| (t - top).exp()).sum::<f64>().ln();
        assert!((trend_score(&forward).unwrap() - exact).abs() < 1e-9, "{:?} vs {exact}", trend_score(&forward));
        // Small numbers too.
        let one = popularity_units(0.0);
        assert_eq!(one, BigInt::from(1u64) << 32usize);
        assert!(trend_score(&one).unwrap().abs() < 1e-12);
        // Taking every term away leaves nothing.
        let none = terms.iter().fold(forward, |acc, t| acc - popularity_units(*t));
        assert_eq!(trend_score(&none), None);
    }

    #[test]
    fn tallies_add_and_drop_zero_counts() {
        let mut a = Tally::default();
        a.count_with(7, 2);
        let mut b = Tally::default();
        b.count_with(7, -2);
        b.count_with(9, 1);
        a.add(&b);
        assert_eq!(a.co, BTreeMap::from([(9, 1)]));
        let p = a.to_payload("x", "r", 3);
        assert_eq!(Tally::from_payload(&p), a);
    }
}
