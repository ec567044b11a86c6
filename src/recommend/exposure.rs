//! Exposure: who recommendations show, the question retailers are asked about bias. From the
//! responses served in a period (each response's record: the items, the source credited with
//! each, the experiment variants), the catalog and the purchases of the period:
//! - long-tail exposure: the share of impressions that went to each popularity decile of the
//!   catalog (products ordered by their decayed popularity, never-bought ones last), and to the
//!   products outside the most popular 20%;
//! - catalog coverage: the share of listable products shown at least once;
//! - concentration: the Gini coefficient of impressions over the catalog's products (0: every
//!   product shown as often, 1: one product shown alone);
//! - category and brand exposure: each one's share of impressions against its share of the
//!   catalog and of purchases, as a ratio, with the Gini of impressions over them;
//! - the same summary per source and per experiment variant.

use std::collections::{BTreeMap, HashMap};

use chrono::{NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::Recommender;
use super::stats::RECS;
use crate::catalog::{PRODUCTS, TREND};
use crate::error::Result;
use crate::events::EVENTS;
use crate::store::{Condition, Filter};

/// Groups listed per kind (the most shown first).
const MAX_GROUPS: usize = 50;

/// A listable product as exposure needs it.
#[derive(Debug, Clone)]
pub struct CatalogItem {
    /// Product id.
    pub id: String,
    /// Its categories.
    pub categories: Vec<String>,
    /// Its brand.
    pub brand: Option<String>,
    /// Its decayed popularity (none for products never bought or viewed).
    pub popularity: Option<f64>,
}

/// One item of one response.
#[derive(Debug, Clone)]
pub struct Shown {
    /// Product id.
    pub product: String,
    /// The source credited.
    pub source: String,
    /// The response's experiment variants, as `experiment/variant`.
    pub variants: Vec<String>,
}

/// Exposure of a set of impressions over the catalog.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExposureSummary {
    /// Items shown.
    pub impressions: u64,
    /// Share of the catalog's products shown at least once.
    pub coverage: f64,
    /// Gini coefficient of impressions over the catalog's products.
    pub gini: f64,
    /// Share of impressions that went to products outside the most popular 20%.
    pub long_tail_share: f64,
}

/// One popularity decile.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Decile {
    /// 1 = the most popular tenth of the catalog, 10 = the least.
    pub decile: usize,
    /// Its products.
    pub products: usize,
    /// Share of impressions it received (a tenth each would be even).
    pub impression_share: f64,
}

/// A category's or brand's exposure.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GroupExposure {
    /// The category or brand.
    pub name: String,
    /// Its share of the catalog's products.
    pub catalog_share: f64,
    /// Its share of the period's purchases.
    pub purchase_share: f64,
    /// Its share of impressions.
    pub impression_share: f64,
    /// Impression share over catalog share: above 1, shown more than its size.
    pub ratio: f64,
}

/// Exposure of categories or brands.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GroupsExposure {
    /// Gini coefficient of impressions over them.
    pub gini: f64,
    /// How many there are.
    pub count: usize,
    /// The most shown (at most 50).
    pub top: Vec<GroupExposure>,
}

/// `GET /v1/stats/exposure`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExposureReport {
    /// First day (inclusive).
    pub from: NaiveDate,
    /// Last day (inclusive).
    pub to: NaiveDate,
    /// Recommendation lists served.
    pub lists: u64,
    /// Listable products in the catalog (not hidden).
    pub catalog_products: usize,
    /// All impressions.
    pub total: ExposureSummary,
    /// Impressions per popularity decile.
    pub deciles: Vec<Decile>,
    /// Per category.
    pub categories: GroupsExposure,
    /// Per brand.
    pub brands: GroupsExposure,
    /// Per source credited.
    pub per_source: BTreeMap<String, ExposureSummary>,
    /// Per experiment variant (`experiment/variant`).
    pub per_variant: BTreeMap<String, ExposureSummary>,
}

/// Gini coefficient of non-negative values (0 for none or all zero).
pub fn gini(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let total: f64 = values.iter().sum();
    if values.is_empty() || total <= 0.0 {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let weighted: f64 = v.iter().enumerate().map(|(i, x)| (i as f64 + 1.0) * x).sum();
    (2.0 * weighted / (n * total) - (n + 1.0) / n).max(0.0)
}

/// Exposure of `shown` over `catalog`, with the period's purchases per product.
pub fn compute(
    catalog: &[CatalogItem],
    shown: &[Shown],
    lists: u64,
    purchases: &HashMap<String, u64>,
    (from, to): (NaiveDate, NaiveDate),
) -> ExposureReport {
    // Popularity rank: most popular first, never-bought last, ties by id.
    let mut order: Vec<&CatalogItem> = catalog.iter().collect();
    order.sort_by(|a, b| {
        let (pa, pb) = (a.popularity.unwrap_or(f64::MIN), b.popularity.unwrap_or(f64::MIN));
        pb.total_cmp(&pa).then_with(|| a.id.cmp(&b.id))
    });
    let n = order.len();
    let rank: HashMap<&str, usize> = order.iter().enumerate().map(|(i, p)| (p.id.as_str(), i)).collect();
    let head = n.div_ceil(5);
    let summary = |items: &mut dyn Iterator<Item = &Shown>| -> ExposureSummary {
        let mut per_product = vec![0.0f64; n];
        let mut impressions = 0u64;
        let mut tail = 0u64;
        for s in items {
            impressions += 1;
            if let Some(&r) = rank.get(s.product.as_str()) {
                per_product[r] += 1.0;
                if r >= head {
                    tail += 1;
                }
            }
        }
        let covered = per_product.iter().filter(|x| **x > 0.0).count();
        ExposureSummary {
            impressions,
            coverage: if n == 0 { 0.0 } else { covered as f64 / n as f64 },
            gini: gini(&per_product),
            long_tail_share: if impressions == 0 { 0.0 } else { tail as f64 / impressions as f64 },
        }
    };
    let total = summary(&mut shown.iter());
    let mut deciles: Vec<Decile> = (1..=10).map(|d| Decile { decile: d, products: 0, impression_share: 0.0 }).collect();
    let decile_of = |r: usize| (r * 10 / n.max(1)).min(9);
    for r in 0..n {
        deciles[decile_of(r)].products += 1;
    }
    for s in shown {
        if let Some(&r) = rank.get(s.product.as_str()) {
            deciles[decile_of(r)].impression_share += 1.0;
        }
    }
    for d in &mut deciles {
        d.impression_share = if total.impressions == 0 { 0.0 } else { d.impression_share / total.impressions as f64 };
    }
    let by_id: HashMap<&str, &CatalogItem> = catalog.iter().map(|p| (p.id.as_str(), p)).collect();
    let groups = |of: &dyn Fn(&CatalogItem) -> Vec<String>| -> GroupsExposure {
        let mut size: HashMap<String, f64> = HashMap::new();
        let mut bought: HashMap<String, f64> = HashMap::new();
        let mut seen: HashMap<String, f64> = HashMap::new();
        for p in catalog {
            for g in of(p) {
                *size.entry(g.clone()).or_default() += 1.0;
                *bought.entry(g).or_default() += purchases.get(&p.id).copied().unwrap_or(0) as f64;
            }
        }
        for s in shown {
            if let Some(p) = by_id.get(s.product.as_str()) {
                for g in of(p) {
                    *seen.entry(g).or_default() += 1.0;
                }
            }
        }
        let (all_size, all_bought, all_seen) =
            (n.max(1) as f64, bought.values().sum::<f64>(), seen.values().sum::<f64>());
        let share = |x: f64, of: f64| if of > 0.0 { x / of } else { 0.0 };
        let mut top: Vec<GroupExposure> = size
            .iter()
            .map(|(name, s)| {
                let impression_share = share(seen.get(name).copied().unwrap_or(0.0), all_seen);
                let catalog_share = s / all_size;
                GroupExposure {
                    name: name.clone(),
                    catalog_share,
                    purchase_share: share(bought.get(name).copied().unwrap_or(0.0), all_bought),
                    impression_share,
                    ratio: share(impression_share, catalog_share),
                }
            })
            .collect();
        let values: Vec<f64> = size.keys().map(|g| seen.get(g).copied().unwrap_or(0.0)).collect();
        top.sort_by(|a, b| b.impression_share.total_cmp(&a.impression_share).then_with(|| a.name.cmp(&b.name)));
        let count = top.len();
        top.truncate(MAX_GROUPS);
        GroupsExposure { gini: gini(&values), count, top }
    };
    let categories = groups(&|p| p.categories.clone());
    let brands = groups(&|p| p.brand.iter().cloned().collect());
    let mut sources: BTreeMap<String, Vec<&Shown>> = BTreeMap::new();
    let mut variants: BTreeMap<String, Vec<&Shown>> = BTreeMap::new();
    for s in shown {
        sources.entry(s.source.clone()).or_default().push(s);
        for v in &s.variants {
            variants.entry(v.clone()).or_default().push(s);
        }
    }
    let per = |m: BTreeMap<String, Vec<&Shown>>| {
        m.into_iter().map(|(k, v)| (k, summary(&mut v.into_iter()))).collect::<BTreeMap<_, _>>()
    };
    ExposureReport {
        from,
        to,
        lists,
        catalog_products: n,
        total,
        deciles,
        categories,
        brands,
        per_source: per(sources),
        per_variant: per(variants),
    }
}

impl Recommender {
    /// The exposure of the lists served from `from` to `to` (inclusive, UTC days).
    pub async fn exposure(&self, from: NaiveDate, to: NaiveDate) -> Result<ExposureReport> {
        self.stats.flush().await?;
        let start = from.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp()).unwrap_or(0);
        let end = to.and_hms_opt(23, 59, 59).map(|t| t.and_utc().timestamp()).unwrap_or_else(|| Utc::now().timestamp());
        let in_period = Condition::Range { key: "ts".into(), gte: Some(start as f64), lte: Some(end as f64) };

        let mut catalog = Vec::new();
        let listable = Filter::default().must_not(Condition::Bool { key: "hidden".into(), value: true });
        self.pages(PRODUCTS, listable, |p| {
            let strings = |k: &str| -> Vec<String> {
                p.get(k)
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
                    .unwrap_or_default()
            };
            if let Some(id) = p.get("id").and_then(Value::as_str) {
                catalog.push(CatalogItem {
                    id: id.to_string(),
                    categories: strings("categories"),
                    brand: p.get("brand").and_then(Value::as_str).map(String::from),
                    popularity: p.get(TREND).and_then(Value::as_f64),
                });
            }
        })
        .await?;

        let mut shown = Vec::new();
        let mut lists = 0u64;
        self.pages(RECS, Filter::default().must(in_period.clone()), |p| {
            lists += 1;
            let variants: Vec<String> = p
                .get("variants")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|pair| Some(format!("{}/{}", pair.get(0)?.as_str()?, pair.get(1)?.as_str()?)))
                        .collect()
                })
                .unwrap_or_default();
            for (product, source) in p.get("items").and_then(Value::as_object).into_iter().flatten() {
                let source = source.as_str().unwrap_or_default().to_string();
                shown.push(Shown { product: product.clone(), source, variants: variants.clone() });
            }
        })
        .await?;

        let mut purchases: HashMap<String, u64> = HashMap::new();
        let bought =
            Filter::default().must(Condition::Keyword { key: "kind".into(), value: "purchase".into() }).must(in_period);
        self.pages(EVENTS, bought, |p| {
            if let Some(id) = p.get("product_id").and_then(Value::as_str) {
                *purchases.entry(id.to_string()).or_default() += 1;
            }
        })
        .await?;
        Ok(compute(&catalog, &shown, lists, &purchases, (from, to)))
    }

    /// Every payload of `collection` matching `filter`, page by page.
    async fn pages(
        &self,
        collection: &str,
        filter: Filter,
        mut each: impl FnMut(&crate::store::Payload),
    ) -> Result<()> {
        let mut offset = None;
        loop {
            let page = self.store.scroll(collection, Some(filter.clone()), offset, 1000).await?;
            for r in &page.records {
                each(&r.payload);
            }
            match page.next {
                Some(n) => offset = Some(n),
                None => return Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gini_of_known_distributions() {
        assert_eq!(gini(&[1.0, 1.0, 1.0, 1.0]), 0.0);
        assert!((gini(&[0.0, 0.0, 0.0, 4.0]) - 0.75).abs() < 1e-12);
        assert_eq!(gini(&[]), 0.0);
    }

    #[test]
    fn popular_items_only_is_concentrated_and_misses_the_tail() {
        let catalog: Vec<CatalogItem> = (0..20)
            .map(|i| CatalogItem {
                id: format!("p{i:02}"),
                categories: vec![if i < 10 { "a" } else { "b" }.into()],
                brand: Some(format!("brand{}", i % 4)),
                popularity: (i < 15).then_some(100.0 - i as f64),
            })
            .collect();
        let show = |ids: &[usize], source: &str| -> Vec<Shown> {
            ids.iter()
                .map(|i| Shown { product: format!("p{i:02}"), source: source.into(), variants: vec!["e/x".into()] })
                .collect()
        };
        let mut shown = show(&[0, 0, 0, 0, 1, 1, 2, 3], "trending");
        shown.extend(show(&[10, 15, 19, 3], "session"));
        let purchases: HashMap<String, u64> = [("p00".to_string(), 3), ("p12".to_string(), 1)].into_iter().collect();
        let day = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let r = compute(&catalog, &shown, 3, &purchases, (day, day));
        assert_eq!((r.total.impressions, r.catalog_products), (12, 20));
        assert!((r.total.coverage - 7.0 / 20.0).abs() < 1e-12);
        assert_eq!(r.per_source["trending"].long_tail_share, 0.0, "the 4 most popular: all in the head");
        assert_eq!(r.per_source["session"].long_tail_share, 0.75);
        assert!(r.per_source["trending"].gini > r.per_source["session"].gini);
        assert!((r.deciles[0].impression_share - 0.5).abs() < 1e-12, "p00, p01 shown 6 times of 12: {:?}", r.deciles);
        assert!((r.deciles[9].impression_share - 1.0 / 12.0).abs() < 1e-12, "p19 (never bought) is in the last decile");
        let a = r.categories.top.iter().find(|g| g.name == "a").unwrap();
        assert!(
            (a.impression_share - 9.0 / 12.0).abs() < 1e-12
                && (a.ratio - 1.5).abs() < 1e-12
                && a.purchase_share == 0.75
        );
        assert_eq!(r.per_variant["e/x"].impressions, 12);
    }
}
