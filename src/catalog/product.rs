//! The product schema: what a retailer sends, how it is validated, what is stored.
//!
//! [`ProductInput`] is the wire form (unknown fields are rejected so typos surface);
//! [`Product`] is the validated, normalised form that is stored and returned.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::FieldError;

/// Longest product id, in characters.
pub const MAX_ID_CHARS: usize = 200;

/// A product as sent by a client or read from an import file.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    /// The retailer's id (SKU). Required except in `PUT /v1/products/{id}`, where the path gives it.
    pub id: Option<String>,
    /// Title. Required.
    pub title: Option<String>,
    /// Free-text description.
    pub description: Option<String>,
    /// Brand.
    pub brand: Option<String>,
    /// Categories, most general first or flat; each matched exactly (case-insensitively) by filters.
    pub categories: Option<Vec<String>>,
    /// Free tags.
    pub tags: Option<Vec<String>>,
    /// Price, >= 0.
    pub price: Option<f64>,
    /// ISO 4217 currency code; defaults to the catalog's currency.
    pub currency: Option<String>,
    /// Whether the product can be bought now; defaults to `stock_qty > 0`, or true.
    pub in_stock: Option<bool>,
    /// Units in stock, >= 0.
    pub stock_qty: Option<i64>,
    /// Attributes: string, number or boolean values, or arrays of strings.
    pub attributes: Option<Map<String, Value>>,
    /// Product page.
    pub url: Option<String>,
    /// Image.
    pub image_url: Option<String>,
    /// Hidden by a merchandiser: never searched, recommended or shown as similar.
    pub hidden: Option<bool>,
}

/// A validated product, as stored and returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Product {
    /// The retailer's id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Description (may be empty).
    #[serde(default)]
    pub description: String,
    /// Brand.
    #[serde(default)]
    pub brand: Option<String>,
    /// Categories.
    #[serde(default)]
    pub categories: Vec<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Price.
    #[serde(default)]
    pub price: Option<f64>,
    /// ISO 4217 currency.
    pub currency: String,
    /// Buyable now.
    pub in_stock: bool,
    /// Units in stock.
    #[serde(default)]
    pub stock_qty: Option<i64>,
    /// Attributes.
    #[serde(default)]
    pub attributes: Map<String, Value>,
    /// Product page.
    #[serde(default)]
    pub url: Option<String>,
    /// Image.
    #[serde(default)]
    pub image_url: Option<String>,
    /// Hidden from search, recommendations and similar products.
    #[serde(default)]
    pub hidden: bool,
    /// Last write, set by the server.
    pub updated_at: DateTime<Utc>,
}

/// ISO 4217 active currency codes.
const ISO_4217: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN", "BHD", "BIF",
    "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHF", "CLP", "CNY", "COP", "CRC",
    "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS",
    "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD",
    "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL",
    "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MYR", "MZN", "NAD",
    "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD",
    "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP",
    "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS", "VES",
    "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
];

/// Whether `code` is an active ISO 4217 currency code (upper case).
pub fn is_currency(code: &str) -> bool {
    ISO_4217.binary_search(&code).is_ok()
}

/// Check a product id: 1..=200 characters, no control characters, no `/`, not blank.
pub fn check_id(id: &str) -> Result<(), String> {
    if id.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if id.chars().count() > MAX_ID_CHARS {
        return Err(format!("must be at most {MAX_ID_CHARS} characters"));
    }
    if id.chars().any(|c| c.is_control()) {
        return Err("must not contain control characters".into());
    }
    if id.contains('/') {
        return Err("must not contain '/'".into());
    }
    if id != id.trim() {
        return Err("must not start or end with whitespace".into());
    }
    Ok(())
}

fn text(
    errors: &mut Vec<FieldError>,
    pointer: &str,
    value: Option<String>,
    max: usize,
    required: bool,
) -> Option<String> {
    let v = value.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    match &v {
        None if required => errors.push(FieldError::new(pointer, "is required and must not be blank")),
        Some(s) if s.chars().count() > max => {
            errors.push(FieldError::new(pointer, format!("must be at most {max} characters")))
        }
        Some(s) if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r') => {
            errors.push(FieldError::new(pointer, "must not contain control characters"))
        }
        _ => {}
    }
    v
}

fn list(
    errors: &mut Vec<FieldError>,
    pointer: &str,
    value: Option<Vec<String>>,
    max_items: usize,
    max_chars: usize,
) -> Vec<String> {
    let items = value.unwrap_or_default();
    if items.len() > max_items {
        errors.push(FieldError::new(pointer, format!("must have at most {max_items} items")));
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let p = format!("{pointer}/{i}");
        if let Some(s) = text(errors, &p, Some(item), max_chars, true)
            && !out.iter().any(|o| o.eq_ignore_ascii_case(&s))
        {
            out.push(s);
        }
    }
    out
}

fn check_url(errors: &mut Vec<FieldError>, pointer: &str, value: Option<String>) -> Option<String> {
    let v = text(errors, pointer, value, 2048, false)?;
    let lower = v.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://"))
        || v.contains(char::is_whitespace)
        || v.len() < 10
    {
        errors.push(FieldError::new(pointer, "must be an absolute http(s) URL without spaces"));
    }
    Some(v)
}

impl ProductInput {
    /// Validate and normalise. `path_id` is the id from the URL, if any (the body's id must then
    /// be absent or equal). All problems are reported at once, each with its JSON pointer.
    pub fn validate(
        self,
        path_id: Option<&str>,
        default_currency: &str,
        now: DateTime<Utc>,
    ) -> Result<Product, Vec<FieldError>> {
        let mut errors = Vec::new();
        let id = match (path_id, self.id) {
            (Some(p), Some(b)) if p != b => {
                errors.push(FieldError::new("/id", format!("'{b}' differs from the id in the URL ('{p}')")));
                p.to_string()
            }
            (Some(p), _) => p.to_string(),
            (None, Some(b)) => b,
            (None, None) => {
                errors.push(FieldError::new("/id", "is required"));
                String::new()
            }
        };
        if (!id.is_empty() || path_id.is_some())
            && let Err(why) = check_id(&id)
        {
            errors.push(FieldError::new("/id", why));
        }
        let title = text(&mut errors, "/title", self.title, 500, true).unwrap_or_default();
        let description = text(&mut errors, "/description", self.description, 20_000, false).unwrap_or_default();
        let brand = text(&mut errors, "/brand", self.brand, 200, false);
        let categories = list(&mut errors, "/categories", self.categories, 50, 200);
        let tags = list(&mut errors, "/tags", self.tags, 100, 100);
        if let Some(p) = self.price {
            if !p.is_finite() || p < 0.0 {
                errors.push(FieldError::new("/price", "must be a number >= 0"));
            } else if p > 1e12 {
                errors.push(FieldError::new("/price", "must be at most 1e12"));
            }
        }
        let currency = match self.currency.map(|c| c.trim().to_string()) {
            None => default_currency.to_string(),
            Some(c) if is_currency(&c) => c,
            Some(c) if is_currency(&c.to_ascii_uppercase()) => c.to_ascii_uppercase(),
            Some(c) => {
                errors.push(FieldError::new(
                    "/currency",
                    format!("'{c}' is not an ISO 4217 currency code (e.g. USD, EUR)"),
                ));
                c
            }
        };
        if self.stock_qty.is_some_and(|q| q < 0) {
            errors.push(FieldError::new("/stock_qty", "must be >= 0"));
        }
        let in_stock = match (self.in_stock, self.stock_qty) {
            (Some(true), Some(0)) => {
                errors.push(FieldError::new("/in_stock", "is true but stock_qty is 0"));
                true
            }
            (Some(s), _) => s,
            (None, Some(q)) => q > 0,
            (None, None) => true,
        };
        let attributes = self.attributes.unwrap_or_default();
        if attributes.len() > 100 {
            errors.push(FieldError::new("/attributes", "must have at most 100 keys"));
        }
        for (k, v) in &attributes {
            let p = format!("/attributes/{}", k.replace('~', "~0").replace('/', "~1"));
            if k.trim().is_empty() || k.chars().count() > 100 {
                errors.push(FieldError::new(&p, "keys must be 1 to 100 characters"));
            }
            let ok = match v {
                Value::String(s) => s.chars().count() <= 1000,
                Value::Number(_) | Value::Bool(_) => true,
                Value::Array(items) => {
                    items.len() <= 50 && items.iter().all(|i| matches!(i, Value::String(s) if s.chars().count() <= 200))
                }
                Value::Null | Value::Object(_) => false,
            };
            if !ok {
                errors.push(FieldError::new(
                    &p,
                    "must be a string (<= 1000 characters), a number, a boolean, or an array of up to 50 strings",
                ));
            }
        }
        let url = check_url(&mut errors, "/url", self.url);
        let image_url = check_url(&mut errors, "/image_url", self.image_url);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Product {
            id,
            title,
            description,
            brand,
            categories,
            tags,
            price: self.price,
            currency,
            in_stock,
            stock_qty: self.stock_qty,
            attributes,
            url,
            image_url,
            hidden: self.hidden.unwrap_or(false),
            updated_at: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(v: serde_json::Value) -> ProductInput {
        serde_json::from_value(v).unwrap()
    }

    fn pointers(r: Result<Product, Vec<FieldError>>) -> Vec<String> {
        r.unwrap_err().into_iter().map(|e| e.pointer).collect()
    }

    #[test]
    fn currency_table_is_sorted_for_binary_search() {
        assert!(ISO_4217.windows(2).all(|w| w[0] < w[1]));
        assert!(is_currency("EUR") && is_currency("USD") && !is_currency("usd") && !is_currency("XXX1"));
    }

    #[test]
    fn valid_product_is_normalised() {
        let p = input(serde_json::json!({"id": "sku-1", "title": "  Headphones ", "price": 99.5, "currency": "eur",
            "stock_qty": 0, "categories": ["Audio", "audio", "Headphones"]}))
        .validate(None, "USD", Utc::now())
        .unwrap();
        assert_eq!(p.title, "Headphones");
        assert_eq!(p.currency, "EUR");
        assert!(!p.in_stock);
        assert_eq!(p.categories, vec!["Audio", "Headphones"]);
    }

    #[test]
    fn every_problem_is_reported_with_its_pointer() {
        let r = input(serde_json::json!({"id": "a/b", "title": " ", "price": -1.0, "currency": "DOLLARS",
            "stock_qty": -3, "url": "ftp://x", "attributes": {"color": {"nested": true}}, "tags": [""]}))
        .validate(None, "USD", Utc::now());
        let mut p = pointers(r);
        p.sort();
        assert_eq!(
            p,
            vec!["/attributes/color", "/currency", "/id", "/price", "/stock_qty", "/tags/0", "/title", "/url"]
        );
    }

    #[test]
    fn path_id_must_agree_with_body() {
        let r = input(serde_json::json!({"id": "a", "title": "t"})).validate(Some("b"), "USD", Utc::now());
        assert_eq!(pointers(r), vec!["/id"]);
        let p = input(serde_json::json!({"title": "t"})).validate(Some("b"), "USD", Utc::now()).unwrap();
        assert_eq!(p.id, "b");
        let r = input(serde_json::json!({"title": "t"})).validate(None, "USD", Utc::now());
        assert_eq!(pointers(r), vec!["/id"]);
    }

    #[test]
    fn in_stock_contradiction_is_an_error() {
        let r = input(serde_json::json!({"id": "a", "title": "t", "in_stock": true, "stock_qty": 0})).validate(
            None,
            "USD",
            Utc::now(),
        );
        assert_eq!(pointers(r), vec!["/in_stock"]);
    }
}
