//! What gets embedded and what gets keyword-indexed for a product.
//!
//! The embedding text leads with the title and brand (what a shopper names), then categories,
//! description and attributes. Its hash, salted with the model name, decides whether a product
//! must be re-embedded on update: an update that changes only price or stock reuses the vector.

use sha2::{Digest, Sha256};

use super::product::Product;

/// The text the embedding model sees for a product.
pub fn embedding_text(p: &Product) -> String {
    let mut s = String::with_capacity(256);
    s.push_str(&p.title);
    if let Some(b) = &p.brand {
        s.push_str("\nBrand: ");
        s.push_str(b);
    }
    if !p.categories.is_empty() {
        s.push_str("\nCategory: ");
        s.push_str(&p.categories.join(" / "));
    }
    if !p.description.is_empty() {
        s.push('\n');
        s.push_str(&p.description);
    }
    let attrs = attribute_text(p);
    if !attrs.is_empty() {
        s.push('\n');
        s.push_str(&attrs);
    }
    s
}

/// The text BM25 indexes: everything a shopper might type, tags included.
pub fn keyword_text(p: &Product) -> String {
    let mut parts: Vec<&str> = vec![&p.title];
    if let Some(b) = &p.brand {
        parts.push(b);
    }
    parts.extend(p.categories.iter().map(String::as_str));
    parts.extend(p.tags.iter().map(String::as_str));
    parts.push(&p.description);
    let attrs = attribute_text(p);
    let mut s = parts.join(" ");
    s.push(' ');
    s.push_str(&attrs);
    s
}

/// Attributes as `key: value; ...`, keys sorted so that the text (and its hash) does not depend
/// on the order a client sent them in.
fn attribute_text(p: &Product) -> String {
    let mut attributes: Vec<(&String, &serde_json::Value)> = p.attributes.iter().collect();
    attributes.sort_by(|a, b| a.0.cmp(b.0));
    attributes
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Array(items) => {
                    items.iter().filter_map(|i| i.as_str()).collect::<Vec<_>>().join(", ")
                }
                other => other.to_string(),
            };
            format!("{k}: {v}")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Hash of the embedding text under a model: equal hashes mean the stored vector is still right.
pub fn embedding_hash(model: &str, text: &str) -> String {
    let mut h = Sha256::new();
    h.update(model.as_bytes());
    h.update([0u8]);
    h.update(text.as_bytes());
    hex::encode(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product() -> Product {
        serde_json::from_value(serde_json::json!({
            "id": "1", "title": "Sony WH-1000XM5", "brand": "Sony", "categories": ["Audio", "Headphones"],
            "description": "Noise cancelling", "currency": "USD", "in_stock": true, "price": 399.0,
            "attributes": {"color": "black", "bluetooth": true}, "updated_at": "2026-01-01T00:00:00Z"
        }))
        .unwrap()
    }

    #[test]
    fn text_has_title_brand_categories_description_attributes() {
        let t = embedding_text(&product());
        assert_eq!(
            t,
            "Sony WH-1000XM5\nBrand: Sony\nCategory: Audio / Headphones\nNoise cancelling\nbluetooth: true; color: black"
        );
    }

    #[test]
    fn price_and_stock_do_not_change_the_hash_but_text_does() {
        let a = product();
        let mut b = a.clone();
        b.price = Some(10.0);
        b.in_stock = false;
        assert_eq!(embedding_hash("m", &embedding_text(&a)), embedding_hash("m", &embedding_text(&b)));
        b.title.push('!');
        assert_ne!(embedding_hash("m", &embedding_text(&a)), embedding_hash("m", &embedding_text(&b)));
        assert_ne!(embedding_hash("m", "x"), embedding_hash("n", "x"));
    }
}
