//! A shop simulator: synthetic shoppers with hidden preferences who are shown recommendation
//! lists over real HTTP and view, click and buy from them, so that the closed loop (show,
//! learn, show better) can be measured end to end.
//!
//! Each shopper loves two brands and has a budget, neither of which aisle is told. They arrive
//! having viewed a few products of their brands; then, for every list they are shown, they
//! look down it (attention falling with the position) and click an item with a probability
//! set by their preferences; some clicks become purchases. Clicks are sent with the list's
//! `rec_id`; purchases without it, as a checkout would send them, and aisle attributes them to
//! the list (checked). Everything is drawn from a seeded generator: a run is repeatable.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::harness::{Server, post, put};

/// A small, seeded generator (xorshift64*).
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// A uniform number in [0, 1).
    pub fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A uniform index below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        ((self.unit() * n as f64) as usize).min(n.saturating_sub(1))
    }
}

/// A catalog product as the simulator sees it.
#[derive(Debug, Clone)]
pub struct Product {
    pub id: String,
    pub brand: String,
    pub price: f64,
}

/// A synthetic shopper.
#[derive(Debug, Clone)]
pub struct Shopper {
    pub id: String,
    /// Hidden: the two brands they love.
    pub brands: [String; 2],
    /// Hidden: above this price they rarely click.
    pub budget: f64,
}

/// The simulated shop: a catalog and its shoppers' behaviour.
pub struct Shop {
    pub products: Vec<Product>,
    by_id: HashMap<String, usize>,
}

/// What a round of lists led to.
#[derive(Debug, Default, Clone, Copy)]
pub struct Outcome {
    pub lists: usize,
    pub impressions: usize,
    pub clicks: usize,
    pub purchases: usize,
}

impl Shop {
    /// A shop over catalog products (JSON objects with `id`, `brand`, `price`); products
    /// without a brand or price are left out of the shoppers' tastes but still shown.
    pub fn new(catalog: &[Value]) -> Self {
        let products: Vec<Product> = catalog
            .iter()
            .map(|p| Product {
                id: p["id"].as_str().unwrap().to_string(),
                brand: p["brand"].as_str().unwrap_or("").to_lowercase(),
                price: p["price"].as_f64().unwrap_or(0.0),
            })
            .collect();
        let by_id = products.iter().enumerate().map(|(i, p)| (p.id.clone(), i)).collect();
        Self { products, by_id }
    }

    /// `n` shoppers named `{prefix}-{i}`, each loving two of the brands with at least `min`
    /// products, with a budget around the median price of those brands' products.
    pub fn shoppers(&self, prefix: &str, n: usize, rng: &mut Rng) -> Vec<Shopper> {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for p in self.products.iter().filter(|p| !p.brand.is_empty()) {
            *counts.entry(&p.brand).or_default() += 1;
        }
        let mut brands: Vec<&str> = counts.into_iter().filter(|(_, c)| *c >= 8).map(|(b, _)| b).collect();
        brands.sort();
        assert!(brands.len() >= 4, "the catalog needs at least four brands with 8 products or more");
        (0..n)
            .map(|i| {
                let a = rng.below(brands.len());
                let mut b = rng.below(brands.len() - 1);
                if b >= a {
                    b += 1;
                }
                let mut prices: Vec<f64> = self
                    .products
                    .iter()
                    .filter(|p| p.brand == brands[a] || p.brand == brands[b])
                    .map(|p| p.price)
                    .collect();
                prices.sort_by(f64::total_cmp);
                let budget = prices[prices.len() / 2] * (1.0 + rng.unit());
                Shopper { id: format!("{prefix}-{i}"), brands: [brands[a].to_string(), brands[b].to_string()], budget }
            })
            .collect()
    }

    /// How much a shopper wants a product, as a click probability when seen at the top.
    pub fn appeal(&self, s: &Shopper, product: &str) -> f64 {
        let Some(p) = self.by_id.get(product).map(|i| &self.products[*i]) else { return 0.0 };
        let mut a = if s.brands.contains(&p.brand) { 0.5 } else { 0.04 };
        if p.price > s.budget {
            a *= 0.3;
        }
        a
    }

    /// Attention at a 0-based position: shoppers look less the further down.
    pub fn attention(position: usize) -> f64 {
        1.0 / (1.0 + position as f64).sqrt()
    }

    /// Each shopper consents and arrives having viewed `n` products of their brands (what aisle
    /// can learn their taste from).
    pub fn arrive(&self, server: &Server, shoppers: &[Shopper], n: usize, rng: &mut Rng) {
        let mut events = Vec::new();
        for s in shoppers {
            let (status, v) = put(
                &server.url(&format!("/v1/customers/{}", s.id)),
                &json!({"consent": {"personalization": true, "analytics": true}}),
            );
            assert!(status == 200 || status == 201, "{v}");
            let theirs: Vec<&Product> = self.products.iter().filter(|p| s.brands.contains(&p.brand)).collect();
            for _ in 0..n {
                let p = theirs[rng.below(theirs.len())];
                events.push(json!({"customer_id": s.id, "product_id": p.id, "kind": "view"}));
            }
        }
        send(server, events);
    }

    /// Every shopper is shown one list (`body` adds to the request) and acts on it; returns
    /// what happened.
    pub fn round(&self, server: &Server, shoppers: &[Shopper], body: &Value, rng: &mut Rng) -> Outcome {
        let mut out = Outcome::default();
        let mut events = Vec::new();
        for s in shoppers {
            let mut req = json!({"customer_id": s.id, "limit": 10});
            req.as_object_mut().unwrap().extend(body.as_object().cloned().unwrap_or_default());
            let (status, v) = post(&server.url("/v1/recommendations"), &req);
            assert_eq!(status, 200, "{v}");
            let rec = v["rec_id"].as_str().unwrap().to_string();
            out.lists += 1;
            for (pos, item) in v["items"].as_array().unwrap().iter().enumerate() {
                out.impressions += 1;
                let product = item["product"]["id"].as_str().unwrap();
                if rng.unit() < Self::attention(pos) * self.appeal(s, product) {
                    out.clicks += 1;
                    events.push(json!({"customer_id": s.id, "product_id": product, "kind": "click", "rec_id": rec}));
                    if rng.unit() < 0.2 {
                        // As a checkout sends it: without the rec_id, which aisle finds itself
                        // (the list just shown to this customer that held the product).
                        out.purchases += 1;
                        events.push(json!({"customer_id": s.id, "product_id": product, "kind": "purchase"}));
                    }
                }
            }
        }
        let attributed = send(server, events);
        assert_eq!(attributed, out.purchases, "every purchase is attributed to the list it came from");
        out
    }
}

/// Post events in batches; returns how many aisle attributed to a list without a `rec_id`.
fn send(server: &Server, events: Vec<Value>) -> usize {
    let mut attributed = 0;
    for chunk in events.chunks(500) {
        let (status, v) = post(&server.url("/v1/events"), &json!({ "events": chunk }));
        assert_eq!((status, v["accepted"].as_u64()), (200, Some(chunk.len() as u64)), "{v}");
        attributed += v["attributed"].as_u64().unwrap() as usize;
    }
    attributed
}
