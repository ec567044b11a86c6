//! Experiments: which variant of each `[[experiments]]` entry a shopper gets, and what the
//! variants' counters say.
//!
//! Assignment is a pure function of the experiment's name and the shopper's pseudonymous key
//! (the keyed hash of the customer id, else of the session id): the same shopper gets the same
//! variant after a restart and on every replica (replicas share the secret), and nothing about
//! the assignment is stored. A request with neither a customer nor a session id takes part in
//! no experiment.
//!
//! The report gives each variant's rates with 95% intervals (Wilson for rates, normal for
//! revenue per impression) and compares every variant with the first (the control) on the
//! experiment's metric: a two-sided two-proportion z-test (Welch's for revenue), significant
//! below p = 0.05; short of that, the impressions still needed to see the observed difference
//! with 80% power.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::stats::{Counters, Rates};
use crate::config::{ExperimentConfig, ExperimentMetric, VariantConfig};

/// z of a two-sided 95% interval.
const Z95: f64 = 1.959_964;
/// z of 80% power.
const Z80: f64 = 0.841_621;

/// A shopper's variant in one experiment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Assignment {
    /// The experiment.
    pub experiment: String,
    /// The variant.
    pub variant: String,
}

/// The variant of `experiment` for the shopper with pseudonymous key `unit`: a point in [0, 1)
/// from a hash of both, placed among the variants' cumulative shares.
pub fn assign<'a>(experiment: &'a ExperimentConfig, unit: &str) -> &'a VariantConfig {
    let digest = Sha256::digest(format!("{}\u{1f}{unit}", experiment.name).as_bytes());
    let x = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes")) as f64 / (u64::MAX as f64 + 1.0);
    let total: f64 = experiment.variants.iter().map(|v| v.share).sum();
    let mut edge = 0.0;
    for v in &experiment.variants {
        edge += v.share / total;
        if x < edge {
            return v;
        }
    }
    experiment.variants.last().expect("validated: at least two variants")
}

/// One variant's figures.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VariantReport {
    /// The variant.
    pub variant: String,
    /// Its configured share of shoppers (0 to 1).
    pub share: f64,
    /// Its counters and rates.
    pub rates: Rates,
    /// 95% interval of the CTR.
    pub ctr_interval: [f64; 2],
    /// 95% interval of the add-to-cart rate.
    pub add_to_cart_interval: [f64; 2],
    /// 95% interval of the conversion rate.
    pub conversion_interval: [f64; 2],
    /// 95% interval of the revenue per impression.
    pub revenue_per_impression_interval: [f64; 2],
}

/// A variant against the control on the experiment's metric.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Comparison {
    /// The variant.
    pub variant: String,
    /// The control it is compared with.
    pub control: String,
    /// The variant's metric minus the control's.
    pub difference: f64,
    /// Two-sided p-value (none without impressions on both sides).
    pub p_value: Option<f64>,
    /// p below 0.05.
    pub significant: bool,
    /// Impressions still needed (both variants together) to see this difference with 80%
    /// power at the 5% level, when not significant yet and a difference is seen.
    pub more_impressions_needed: Option<u64>,
    /// The comparison in words.
    pub verdict: String,
}

/// `GET /v1/stats/experiments/{name}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExperimentReport {
    /// The experiment.
    pub experiment: String,
    /// Whether shoppers are being assigned.
    pub enabled: bool,
    /// What the verdict compares.
    pub metric: ExperimentMetric,
    /// First day (inclusive).
    pub from: NaiveDate,
    /// Last day (inclusive).
    pub to: NaiveDate,
    /// Every variant together.
    pub total: Rates,
    /// Per variant, in configuration order (the control first).
    pub variants: Vec<VariantReport>,
    /// Each variant against the control.
    pub comparisons: Vec<Comparison>,
    /// The comparisons in a sentence.
    pub verdict: String,
}

/// The report of `experiment` from its variants' summed counters.
pub fn report(
    experiment: &ExperimentConfig,
    counters: &BTreeMap<String, Counters>,
    from: NaiveDate,
    to: NaiveDate,
) -> ExperimentReport {
    let total_share: f64 = experiment.variants.iter().map(|v| v.share).sum();
    let of = |v: &VariantConfig| counters.get(&v.name).copied().unwrap_or_default();
    let mut total = Counters::default();
    let variants: Vec<VariantReport> = experiment
        .variants
        .iter()
        .map(|v| {
            let c = of(v);
            total.add(&c);
            VariantReport {
                variant: v.name.clone(),
                share: v.share / total_share,
                rates: c.rates(),
                ctr_interval: wilson(c.clicks, c.impressions),
                add_to_cart_interval: wilson(c.carts, c.impressions),
                conversion_interval: wilson(c.purchases, c.impressions),
                revenue_per_impression_interval: mean_interval(&c),
            }
        })
        .collect();
    let control = &experiment.variants[0];
    let comparisons: Vec<Comparison> =
        experiment.variants[1..].iter().map(|v| compare(experiment.metric, control, &of(control), v, &of(v))).collect();
    let verdict = comparisons.iter().map(|c| c.verdict.clone()).collect::<Vec<_>>().join("; ");
    ExperimentReport {
        experiment: experiment.name.clone(),
        enabled: experiment.enabled,
        metric: experiment.metric,
        from,
        to,
        total: total.rates(),
        variants,
        comparisons,
        verdict,
    }
}

/// A variant against the control.
fn compare(
    metric: ExperimentMetric,
    control: &VariantConfig,
    a: &Counters,
    variant: &VariantConfig,
    b: &Counters,
) -> Comparison {
    let (ma, mb) = (value(metric, a), value(metric, b));
    let (n1, n2) = (a.impressions as f64, b.impressions as f64);
    let name = metric.as_str();
    let mut c = Comparison {
        variant: variant.name.clone(),
        control: control.name.clone(),
        difference: mb - ma,
        p_value: None,
        significant: false,
        more_impressions_needed: None,
        verdict: String::new(),
    };
    if n1 == 0.0 || n2 == 0.0 {
        c.verdict = format!("{} against {}: no impressions yet", variant.name, control.name);
        return c;
    }
    // Variances of one impression's outcome under each variant.
    let (va, vb) = match metric {
        ExperimentMetric::Revenue => (revenue_variance(a), revenue_variance(b)),
        _ => (ma * (1.0 - ma), mb * (1.0 - mb)),
    };
    let se = match metric {
        ExperimentMetric::Revenue => (va / n1 + vb / n2).sqrt(),
        _ => {
            let pooled = (ma * n1 + mb * n2) / (n1 + n2);
            (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt()
        }
    };
    let p = if se > 0.0 { 2.0 * normal_tail((mb - ma).abs() / se) } else { 1.0 };
    c.p_value = Some(p);
    c.significant = p < 0.05 && mb != ma;
    if c.significant {
        let word = if mb > ma { "better" } else { "worse" };
        c.verdict = format!("{} {word} than {} on {name}, p = {}", variant.name, control.name, round_p(p));
    } else if mb == ma {
        c.verdict = format!("{} against {}: no difference on {name} seen yet", variant.name, control.name);
    } else {
        let per_arm = (Z95 + Z80).powi(2) * (va + vb) / (mb - ma).powi(2);
        let more = ((per_arm - n1.min(n2)).max(0.0) * 2.0).ceil() as u64;
        c.more_impressions_needed = Some(more);
        c.verdict = format!(
            "{} against {} on {name}: not yet significant (p = {}), about {more} more impressions needed",
            variant.name,
            control.name,
            round_p(p)
        );
    }
    c
}

fn round_p(p: f64) -> String {
    if p < 0.001 { "< 0.001".into() } else { format!("{p:.3}") }
}

/// The metric's value for one variant.
fn value(metric: ExperimentMetric, c: &Counters) -> f64 {
    let r = c.rates();
    match metric {
        ExperimentMetric::Ctr => r.ctr,
        ExperimentMetric::AddToCart => r.add_to_cart_rate,
        ExperimentMetric::Conversion => r.conversion_rate,
        ExperimentMetric::Revenue => r.revenue_per_impression,
    }
}

/// Variance of the revenue of one impression (0 for most, the purchase's amount for some).
fn revenue_variance(c: &Counters) -> f64 {
    if c.impressions == 0 {
        return 0.0;
    }
    let n = c.impressions as f64;
    let mean = c.revenue / n;
    (c.revenue_sq / n - mean * mean).max(0.0)
}

/// 95% normal interval of the revenue per impression.
fn mean_interval(c: &Counters) -> [f64; 2] {
    if c.impressions == 0 {
        return [0.0, 0.0];
    }
    let n = c.impressions as f64;
    let mean = c.revenue / n;
    let half = Z95 * (revenue_variance(c) / n).sqrt();
    [(mean - half).max(0.0), mean + half]
}

/// Wilson 95% interval of `x` successes in `n` trials.
pub fn wilson(x: u64, n: u64) -> [f64; 2] {
    if n == 0 {
        return [0.0, 1.0];
    }
    let (x, n) = (x as f64, n as f64);
    let p = x / n;
    let z2 = Z95 * Z95;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    [(centre - half).max(0.0), (centre + half).min(1.0)]
}

/// P(Z > z) for a standard normal Z (via the complementary error function; relative error
/// below 1.2e-7).
pub fn normal_tail(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn experiment(shares: &[f64]) -> ExperimentConfig {
        let variants = shares
            .iter()
            .enumerate()
            .map(|(i, s)| VariantConfig {
                name: format!("v{i}"),
                share: *s,
                weights: Default::default(),
                mmr_lambda: None,
                rules: true,
                rerank: None,
            })
            .collect();
        ExperimentConfig { name: "e".into(), metric: ExperimentMetric::Ctr, enabled: true, variants }
    }

    #[test]
    fn assignment_is_stable_and_follows_the_shares() {
        let e = experiment(&[1.0, 3.0]);
        let mut counts = [0usize; 2];
        for i in 0..20_000 {
            let unit = format!("key-{i}");
            let v = assign(&e, &unit);
            assert_eq!(v.name, assign(&e, &unit).name, "the same key, the same variant");
            counts[if v.name == "v0" { 0 } else { 1 }] += 1;
        }
        let share = counts[1] as f64 / 20_000.0;
        assert!((share - 0.75).abs() < 0.015, "{counts:?}");
        // Another experiment splits the same keys independently.
        let mut other = experiment(&[1.0, 1.0]);
        other.name = "f".into();
        let same =
            (0..2000).filter(|i| assign(&other, &format!("key-{i}")).name == assign(&e, &format!("key-{i}")).name);
        let agree = same.count() as f64 / 2000.0;
        assert!((agree - 0.5).abs() < 0.05, "{agree}");
    }

    #[test]
    fn tests_and_intervals_match_known_values() {
        // 100/1000 against 130/1000: z = 2.103, p = 0.0355.
        let c = |clicks, impressions| Counters { impressions, clicks, ..Default::default() };
        let mut counters = BTreeMap::new();
        counters.insert("v0".to_string(), c(100, 1000));
        counters.insert("v1".to_string(), c(130, 1000));
        let day = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let r = report(&experiment(&[1.0, 1.0]), &counters, day, day);
        let cmp = &r.comparisons[0];
        assert!((cmp.p_value.unwrap() - 0.03549).abs() < 0.0001, "{cmp:?}");
        assert!(cmp.significant && r.verdict == "v1 better than v0 on CTR, p = 0.035", "{}", r.verdict);
        assert_eq!(r.total.impressions, 2000);
        // Too few to tell: how many more.
        counters.insert("v0".to_string(), c(10, 100));
        counters.insert("v1".to_string(), c(13, 100));
        let r = report(&experiment(&[1.0, 1.0]), &counters, day, day);
        let more = r.comparisons[0].more_impressions_needed.unwrap();
        assert!(!r.comparisons[0].significant && (3000..4000).contains(&more), "{r:?}");
        let [lo, hi] = wilson(10, 100);
        assert!((lo - 0.0552).abs() < 0.001 && (hi - 0.1744).abs() < 0.001, "{lo} {hi}");
        assert!((normal_tail(1.959_964) - 0.025).abs() < 1e-6);
    }
}
