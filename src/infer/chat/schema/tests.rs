//! Tests of the schema compiler and the schema-constrained prefix automaton.

use std::sync::Arc;

use serde_json::{Value, json};

use super::prefix::number_state;
use super::*;

fn shape(schema: Value) -> Arc<Shape> {
    Arc::new(Shape::compile(&schema).expect("supported schema"))
}

fn product_schema() -> Arc<Shape> {
    shape(json!({
        "type": "object",
        "properties": {
            "intent": {"enum": ["shopping", "small_talk", "refuse"]},
            "max_price": {"type": "number"},
            "count": {"type": "integer"},
            "in_stock": {"type": "boolean"},
            "brands": {"type": "array", "items": {"enum": ["Sony", "Bose", "JBL"]}, "maxItems": 2},
            "query": {"type": "string", "maxLength": 20},
            "note": {"type": "null"},
            "filters": {
                "type": "object",
                "properties": {"colour": {"type": "string"}, "size": {"enum": [1, 10, true, null]}},
                "required": ["size"],
                "additionalProperties": false
            }
        },
        "required": ["intent", "brands", "filters"],
        "additionalProperties": false
    }))
}

/// Feed a whole document; true when every character is accepted and it is complete.
fn whole(shape: &Arc<Shape>, doc: &str) -> bool {
    let mut p = SchemaPrefix::new(shape.clone());
    p.feed(doc) && p.complete()
}

#[test]
fn accepts_documents_of_the_shape_and_only_those() {
    let s = product_schema();
    let good = [
        r#"{"intent":"shopping","brands":[],"filters":{"size":1}}"#,
        r#"{"intent": "refuse", "max_price": -12.5e3, "count": 0, "in_stock": false, "brands": ["Sony", "JBL"], "query": "a \"b\" \u00e9", "note": null, "filters": {"colour": "red", "size": 10}}"#,
        r#"{"intent":"small_talk","brands":["Bose"],"filters":{"size":null}}"#,
        r#"{"intent":"shopping","brands":[],"filters":{"size":true}}"#,
    ];
    for doc in good {
        assert!(whole(&s, doc), "{doc}");
        serde_json::from_str::<Value>(doc).expect("valid JSON");
    }
    let bad = [
        r#"{"brands":[],"intent":"shopping","filters":{"size":1}}"#, // order: intent comes first
        r#"{"intent":"buying","brands":[],"filters":{"size":1}}"#,   // not in the enum
        r#"{"intent":"shopping","filters":{"size":1}}"#,             // required brands missing
        r#"{"intent":"shopping","brands":["Sony","Bose","JBL"],"filters":{"size":1}}"#, // maxItems
        r#"{"intent":"shopping","brands":[],"filters":{"size":2}}"#, // not in the enum
        r#"{"intent":"shopping","count":1.5,"brands":[],"filters":{"size":1}}"#, // integer
        r#"{"intent":"shopping","query":"this is a very long query text","brands":[],"filters":{"size":1}}"#, // maxLength
        r#"{"intent":"shopping","brands":[],"filters":{"size":1},"extra":1}"#, // no other property
        r#"{"intent":"shopping","brands":[],"filters":{"size":1}} "#,          // nothing after the end
        r#"{"intent":"shopping",  "brands":[],"filters":{"size":1}}"#,         // one space at most
        r#"{ "intent":"shopping","brands":[],"filters":{"size":1}}"#,          // no space after {
        r#"{"intent":"shopping","max_price":01,"brands":[],"filters":{"size":1}}"#, // leading zero
    ];
    for doc in bad {
        assert!(!whole(&s, doc), "accepted {doc}");
    }
}

#[test]
fn every_prefix_of_a_good_document_is_accepted_and_incomplete() {
    let s = product_schema();
    let doc = r#"{"intent":"shopping","max_price":150,"brands":["Sony"],"filters":{"size":10}}"#;
    let mut p = SchemaPrefix::new(s);
    for (i, c) in doc.char_indices() {
        assert!(!p.complete(), "complete too early at {i}");
        assert!(p.accepts(&c.to_string()), "refused {c:?} at {i} of {doc}");
        assert!(p.feed(&c.to_string()));
    }
    assert!(p.complete());
    assert!(!p.accepts("}"));
}

#[test]
fn multi_character_tokens_are_judged_whole() {
    let s = product_schema();
    let mut p = SchemaPrefix::new(s);
    assert!(p.feed(r#"{"intent":""#));
    assert!(p.accepts("shop"));
    assert!(!p.accepts("shopz"));
    assert!(p.accepts(r#"shopping","#));
    assert!(!p.accepts(r#"shopping"}"#), "brands and filters are required");
}

#[test]
fn unsupported_keywords_are_named_with_their_place() {
    let e = Shape::compile(&json!({
        "type": "object",
        "properties": {
            "price": {"type": "number", "minimum": 0},
            "tags": {"type": "array", "items": {"type": "string", "pattern": "^a"}, "uniqueItems": true},
            "any": {"anyOf": [{"type": "string"}]},
            "obj": {"type": "object", "additionalProperties": true}
        },
        "$defs": {}
    }))
    .unwrap_err();
    let pointers: Vec<&str> = e.iter().map(|p| p.pointer.as_str()).collect();
    for expected in [
        "/$defs",
        "/properties/price/minimum",
        "/properties/tags/items/pattern",
        "/properties/tags/uniqueItems",
        "/properties/any/anyOf",
        "/properties/obj/additionalProperties",
    ] {
        assert!(pointers.contains(&expected), "{expected} not in {pointers:?}");
    }
    let e = Shape::compile(&json!({"type": "array", "items": {"type": "string"}})).unwrap_err();
    assert_eq!(e[0].pointer, "/type");
    let e = Shape::compile(&json!({"type": "object", "required": ["x"]})).unwrap_err();
    assert!(e[0].message.contains("'x'"), "{e:?}");
}

#[test]
fn numbers_follow_the_json_grammar() {
    for (s, int, want) in [
        ("-", false, Some(false)),
        ("0", false, Some(true)),
        ("01", false, None),
        ("12.", false, Some(false)),
        ("12.5", false, Some(true)),
        ("1e", false, Some(false)),
        ("1e+", false, Some(false)),
        ("1e+5", false, Some(true)),
        ("1.5", true, None),
        ("-42", true, Some(true)),
    ] {
        assert_eq!(number_state(s, int), want, "{s} integer={int}");
    }
}

#[test]
fn a_token_may_end_inside_a_character_of_an_enum_value() {
    let s = shape(json!({
        "type": "object",
        "properties": {"size": {"enum": ["24\u{201d} Class", "27 inch"]}, "note": {"type": "string", "maxLength": 3}},
        "required": ["size", "note"]
    }));
    let quote = "\u{201d}".as_bytes(); // three bytes
    let p = SchemaPrefix::new(s);
    assert!(p.accepts_partial(r#"{"size":"24"#, &quote[..1]), "the first byte of the curly quote");
    assert!(p.accepts_partial(r#"{"size":"24"#, &quote[..2]));
    assert!(!p.accepts_partial(r#"{"size":"27"#, &quote[..1]), "no value goes on with that byte there");
    let size = "{\"size\":\"24\u{201d} Class\",\"note\":\"";
    assert!(p.accepts_partial(&format!("{size}ab"), &"é".as_bytes()[..1]), "inside a string");
    assert!(!p.accepts_partial(&format!("{size}abc"), &"é".as_bytes()[..1]), "maxLength reached");
    assert!(!p.accepts_partial(r#"{"size""#, &quote[..1]), "not inside a value");
}
