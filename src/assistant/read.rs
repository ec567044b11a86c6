//! Reading a shopper's turn ([`Assistant::read_turn`]): the rules of [`super::understand`]
//! first, then the kind of product, then, for what the rules cannot place, the chat model by
//! schema-constrained decoding, where every enum comes from the live catalog: the shop's
//! categories (asked only when the kind of product is unknown; the answer is a hint to the
//! search, not a filter), the brands the turn spells or nearly spells (named or to avoid), and
//! the attribute values the rules found (confirmed or not). The model can only choose values
//! that exist.
//!
//! The rules stay in charge of what they do well: prices, negations ("not Sony"), refusals,
//! and the kind of product (the words naming a category they found, else the noun of the first
//! phrase: asked for it under an enum, the model picked modifiers such as "wireless"). They
//! are also the fast path: a turn whose words the rules explain, a follow-up that only adjusts
//! ("cheaper ones"), or one whose kind is known with no attribute value to confirm does not
//! wait for the model. A brand the model names counts only when the text has it (spelt right
//! or nearly), with the negation the rules read.
//!
//! Not the merging into the conversation (see [`super::understand`]'s `state`) and not
//! retrieval (see `plan`).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde_json::{Value, json};

use super::Assistant;
use super::understand::{ConversationState, TurnReading, Vocabulary, is_stop, singular, words};
use crate::error::Result;
use crate::infer::chat::schema::Shape;
use crate::infer::chat::{GenerateRequest, Generator, Message, OutputFormat, SamplingParams};

/// The smallest chat model (in parameters) that reads turns: below it (SmolLM2-135M) the rules
/// read better than the model.
const MIN_READER_PARAMETERS: u64 = 1_000_000_000;

/// Words that end a noun phrase ("a monitor for my desk").
const PHRASE_BREAKS: &[&str] = &[
    "for", "with", "under", "over", "below", "above", "between", "from", "to", "in", "on", "that", "which", "who",
    "but", "and", "or", "by", "like", "around", "about", "less", "more", "than", "without", "of",
];

/// Most categories listed in the model's instructions (all stay in the schema's enum).
const MAX_LISTED_CATEGORIES: usize = 200;

/// Words that ask for something without saying what ("a gift", "something nice"): a turn of
/// nothing else names no kind of product.
const GENERIC: &[&str] = &[
    "gift",
    "present",
    "something",
    "anything",
    "thing",
    "stuff",
    "item",
    "product",
    "idea",
    "nice",
    "good",
    "cool",
    "great",
    "best",
    "special",
    "surprise",
    "birthday",
    "christma",
    "anniversary",
    "occasion",
    "someone",
    "somebody",
    "friend",
    "dad",
    "mom",
    "mum",
    "mother",
    "father",
    "wife",
    "husband",
    "son",
    "daughter",
    "kid",
    "child",
    "boyfriend",
    "girlfriend",
    "brother",
    "sister",
    "grandma",
    "grandpa",
    "family",
    "love",
    "like",
    "buy",
    "shop",
    "recommend",
    "suggest",
    "help",
    "budget",
    "cheap",
    "new",
    "looking",
    "need",
    "want",
];

/// What the model read, before it is checked against the rules.
#[derive(Debug, Default)]
struct ModelReading {
    categories: Vec<String>,
    brands: Vec<String>,
    avoid: Vec<String>,
    attributes: Vec<String>,
}

impl Assistant {
    /// Read a shopping turn: the rules first, then the model unless the rules explain every
    /// word. `state` is the conversation so far (for follow-ups).
    pub(super) async fn read_turn(
        &self,
        generator: Option<&Generator>,
        vocab: &Vocabulary,
        text: &str,
        state: &ConversationState,
    ) -> Result<TurnReading> {
        let mut reading = vocab.read(text);
        let unexplained: Vec<String> =
            unexplained_words(&reading).into_iter().filter(|w| !GENERIC.contains(&w.as_str())).collect();
        let follow_up = !state.query.is_empty() || !state.constraints.is_empty();
        let specific = !reading.categories.is_empty()
            || !reading.brands.is_empty()
            || !reading.exclude_brands.is_empty()
            || !reading.attributes.is_empty();
        // Nothing but words that ask without saying what ("a gift for my mum"): ask back.
        reading.vague = !follow_up && !specific && unexplained.is_empty();
        let reader =
            generator.filter(|g| self.config.model_reading && g.info().shape.parameters >= MIN_READER_PARAMETERS);
        // The kind of product: the words naming a category the rules found ("desktop" and "pc"
        // in "Gaming Desktop Computer & PCs"), else the noun of the first phrase that has one
        // ("headphones" in "I'm looking for wireless headphones").
        let candidates = kind_words(vocab, text, &mut reading);
        let naming: Vec<&String> =
            candidates.iter().filter(|w| reading.categories.iter().any(|c| words(c).contains(w))).collect();
        reading.kind = if naming.is_empty() {
            candidates.first().cloned().into_iter().collect()
        } else {
            naming.into_iter().cloned().collect()
        };
        // Categories the rules took from elsewhere in the turn ("living room" in "a rug for the
        // living room") must hold the kind; if none does, the kind alone decides.
        let holding: Vec<String> = reading.kind.iter().flat_map(|k| vocab.categories_with_word(k)).collect();
        if !holding.is_empty() {
            reading.categories.retain(|c| holding.contains(c));
        }
        // The rules suffice when nothing is left for the model to read, for a follow-up that only
        // adjusts ("cheaper ones", "in white?", "what about Sony?"), and when the kind of product
        // is known and no attribute value needs confirming: the kind keeps the cards right.
        let rules_suffice = unexplained.is_empty()
            || (follow_up && !unexplained.iter().any(|w| vocab.is_title_word(w)))
            || (!reading.kind.is_empty() && reading.attributes.is_empty());
        let generator = match reader {
            Some(g) if !rules_suffice => g,
            _ => return Ok(reading),
        };
        let shape = reading_shape(vocab, text, &reading, reading.kind.is_empty())?;
        let prompt = generator.chat_prompt(&[
            Message::new("system", self.reading_instructions(vocab, state, reading.kind.is_empty())),
            Message::new("user", text.chars().take(1500).collect::<String>()),
        ])?;
        let (raw, _) = generator
            .generate(GenerateRequest {
                prompt,
                max_tokens: 160,
                sampling: SamplingParams { temperature: 0.0, ..SamplingParams::default() },
                stop: vec![],
                format: OutputFormat::JsonSchema(Arc::new(shape)),
            })
            .await?;
        tracing::debug!(turn = %text, reading = %raw, "the model read a turn");
        let model = parse(&raw);
        combine(&mut reading, model, vocab, text);
        Ok(reading)
    }

    /// The model's instructions for reading a turn (`categories`: the kind of product is not
    /// known, so the model is asked which of the shop's categories fit).
    fn reading_instructions(&self, vocab: &Vocabulary, state: &ConversationState, categories: bool) -> String {
        let mut s = format!("You read one message of a shopper at {} and fill in a form in JSON.\n", self.config.shop);
        if categories {
            s.push_str("- categories: the shop's categories that best fit what the shopper wants, best first.\n");
        }
        s.push_str(
            "- brands: brands the shopper asks for; avoid_brands: brands the shopper does not want.\n\
             - attributes: features the shopper asks for (colour, size, material, ...).\n\
             Only what the message says; never guess a brand or a feature.\n",
        );
        if categories {
            let names: Vec<&str> = vocab.category_names().take(MAX_LISTED_CATEGORIES).collect();
            s.push_str(&format!("\nThe shop's categories: {}\n", names.join("; ")));
        }
        if !state.query.is_empty() {
            s.push_str(&format!("\nThe shopper was looking for: {}\n", state.query));
        }
        s
    }
}

/// Words of the turn's query that the rules did not explain: not function words, not the words
/// of a category, brand or attribute value they found.
fn unexplained_words(r: &TurnReading) -> Vec<String> {
    let mut known: HashSet<String> = HashSet::new();
    for c in &r.categories {
        known.extend(words(c));
    }
    for b in r.brands.iter().chain(&r.exclude_brands) {
        known.extend(words(b));
    }
    for values in r.attributes.values() {
        for v in values {
            known.extend(words(v));
        }
    }
    words(&r.query)
        .into_iter()
        .filter(|w| !is_stop(w) && !known.contains(w) && w.chars().any(char::is_alphabetic))
        .collect()
}

/// The turn's own words that product titles use (not brands, not attribute values the rules
/// found): the words that may name the kind of product. The likeliest first: English puts the
/// noun last in its phrase ("wireless headphones", "a monitor for my desk"), so the first phrase's
/// words come last to first, then the others.
fn product_words(vocab: &Vocabulary, text: &str, rules: &TurnReading) -> Vec<String> {
    let values: HashSet<String> = rules.attributes.values().flatten().flat_map(|v| words(v)).collect();
    let is_candidate = |w: &str| {
        w.len() >= 2
            && w.chars().all(char::is_alphanumeric)
            && !is_stop(w)
            && vocab.is_title_word(w)
            && !vocab.is_brand_word(w)
            && !values.contains(w)
            && !GENERIC.contains(&w)
    };
    // The phrases of the turn, split at punctuation and at words like "for", "with", "under".
    let mut phrases: Vec<Vec<String>> = vec![vec![]];
    for raw in text.split_whitespace() {
        for w in words(raw) {
            if PHRASE_BREAKS.contains(&w.as_str()) {
                phrases.push(vec![]);
            } else if let Some(last) = phrases.last_mut() {
                last.push(singular(&w));
            }
        }
        if raw.ends_with([',', '.', ';', '?', '!']) {
            phrases.push(vec![]);
        }
    }
    let mut candidates: Vec<String> = Vec::new();
    let mut first = true;
    for mut phrase in phrases {
        phrase.retain(|w| is_candidate(w));
        if first && !phrase.is_empty() {
            // The first phrase naming something: its last word is the likeliest noun.
            phrase.reverse();
            first = false;
        }
        for w in phrase {
            if !candidates.contains(&w) {
                candidates.push(w);
            }
        }
    }
    candidates
}

/// The words that may name the kind of product, likeliest first. A word the rules read as an
/// attribute value that stands where the noun does is the kind and not a feature: "wine
/// glasses" are glasses, not things with a glass finish (in "glass bowls" glass stays a feature).
fn kind_words(vocab: &Vocabulary, text: &str, reading: &mut TurnReading) -> Vec<String> {
    if reading.attributes.is_empty() {
        return product_words(vocab, text, reading);
    }
    let plain = product_words(vocab, text, &TurnReading::default());
    let Some(head) = plain.first() else { return plain };
    let is_value = |values: &Vec<String>| values.iter().any(|v| words(v).contains(head));
    if reading.attributes.values().any(is_value) {
        reading.attributes.retain(|_, values| !is_value(values));
        return plain;
    }
    product_words(vocab, text, reading)
}

/// The reading's schema, with its enums from the catalog and the turn (`categories`: ask which
/// of the shop's categories fit).
fn reading_shape(vocab: &Vocabulary, text: &str, rules: &TurnReading, categories: bool) -> Result<Shape> {
    let mut properties = serde_json::Map::new();
    let names: Vec<&str> = vocab.category_names().collect();
    if categories && !names.is_empty() {
        properties.insert("categories".into(), json!({"type": "array", "items": {"enum": names}, "maxItems": 2}));
    }
    let (named, avoided) = vocab.brands_in(text);
    let brands: Vec<String> = named.into_iter().chain(avoided).collect();
    if !brands.is_empty() {
        let list = json!({"type": "array", "items": {"enum": brands}, "maxItems": 3});
        properties.insert("brands".into(), list.clone());
        properties.insert("avoid_brands".into(), list);
    }
    let values: Vec<String> =
        rules.attributes.iter().flat_map(|(name, values)| values.iter().map(move |v| format!("{name}: {v}"))).collect();
    if !values.is_empty() {
        properties.insert("attributes".into(), json!({"type": "array", "items": {"enum": values}, "maxItems": 4}));
    }
    let required: Vec<String> = properties.keys().cloned().collect();
    let schema =
        json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false});
    Shape::compile(&schema)
        .map_err(|p| crate::error::Error::Internal(format!("the reading schema does not compile: {:?}", p.first())))
}

/// The model's JSON (a document cut short by `max_tokens` reads as nothing).
fn parse(raw: &str) -> ModelReading {
    let v: Value = serde_json::from_str(raw).unwrap_or(Value::Null);
    let list = |k: &str| -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for s in v.get(k).and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
            if !out.iter().any(|x| x == s) {
                out.push(s.to_string());
            }
        }
        out
    };
    ModelReading {
        categories: list("categories"),
        brands: list("brands"),
        avoid: list("avoid_brands"),
        attributes: list("attributes"),
    }
}

/// Fold the model's reading into the rules': its first category as a hint to the search (not a
/// filter: "a gift for my dad who likes music, under $100" may well be a speaker, not an
/// instrument), brands only where the text has them (negation as the rules read it), attribute
/// values the model confirmed.
fn combine(r: &mut TurnReading, m: ModelReading, vocab: &Vocabulary, text: &str) {
    if r.categories.is_empty()
        && let Some(c) = m.categories.first()
    {
        r.query = format!("{} {c}", r.query).trim().to_string();
    }
    let (named, avoided) = vocab.brands_in(text);
    for b in m.brands.into_iter().chain(m.avoid) {
        // The rules read negation; a brand the text does not have is never taken.
        let list = if avoided.contains(&b) {
            &mut r.exclude_brands
        } else if named.contains(&b) {
            &mut r.brands
        } else {
            continue;
        };
        if !list.contains(&b) {
            list.push(b);
        }
    }
    if !r.attributes.is_empty() {
        let confirmed: BTreeMap<String, Vec<String>> = r
            .attributes
            .iter()
            .filter_map(|(name, values)| {
                let kept: Vec<String> =
                    values.iter().filter(|v| m.attributes.contains(&format!("{name}: {v}"))).cloned().collect();
                (!kept.is_empty()).then(|| (name.clone(), kept))
            })
            .collect();
        r.attributes = confirmed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Product;

    fn product(id: &str, title: &str, cat: &str, finish: &str) -> Product {
        serde_json::from_value(json!({
            "id": id, "title": title, "categories": [cat], "price": 5.0, "currency": "USD",
            "in_stock": true, "attributes": {"finish": finish}, "updated_at": "2026-01-01T00:00:00Z"
        }))
        .unwrap()
    }

    fn catalog() -> Vocabulary {
        let p = |id: &str, title: &str, cat: &str, brand: &str, colour: &str| -> Product {
            serde_json::from_value(json!({
                "id": id, "title": title, "categories": [cat], "brand": brand, "price": 50.0, "currency": "USD",
                "in_stock": true, "attributes": {"colour": colour}, "updated_at": "2026-01-01T00:00:00Z"
            }))
            .unwrap()
        };
        let products = [
            p("1", "Oak Dining Chair", "Furniture", "Woodly", "Brown"),
            p("2", "Office Chair Mesh", "Furniture", "Sitwell", "Black"),
            p("3", "Bedside Table", "Furniture", "Woodly", "White"),
            p("4", "Phalaenopsis Orchid", "Garden", "Bloom", "White"),
            p("5", "Trail Running Shoe", "Sports", "Nike", "Black"),
            p("6", "Football Size 5", "Sports", "Nike", "White"),
            p("7", "Camera Tripod", "Photo", "Nikon", "Grey"),
        ];
        Vocabulary::build(&products)
    }

    #[test]
    fn the_schema_offers_only_what_the_catalog_and_the_turn_have() {
        let v = catalog();
        let r = v.read("a white chair, not Nikkon");
        let candidates = product_words(&v, "a white chair, not Nikkon", &r);
        assert_eq!(
            product_words(&v, "running shoe for a football game", &v.read("")),
            vec!["shoe", "running", "football"]
        );
        assert_eq!(candidates, vec!["chair"]);
        let shape = reading_shape(&v, "a white chair, not Nikkon", &r, true).unwrap();
        let ok = |doc: &str| {
            let mut s = crate::infer::chat::schema::SchemaPrefix::new(Arc::new(shape.clone()));
            s.feed(doc) && s.complete()
        };
        assert!(ok(
            r#"{"categories":["Furniture"],"brands":[],"avoid_brands":["Nikon"],"attributes":["colour: White"]}"#
        ));
        assert!(!ok(r#"{"categories":["Sofas"],"brands":[],"avoid_brands":[],"attributes":[]}"#), "no such category");
        assert!(!ok(r#"{"categories":[],"brands":["Sony"],"avoid_brands":[],"attributes":[]}"#), "no such brand");
        assert!(!ok(r#"{"categories":[],"brands":["Nike"],"avoid_brands":[],"attributes":[]}"#), "not in the text");
        assert!(!ok(r#"{"categories":[],"brands":[],"avoid_brands":[],"attributes":["colour: Black"]}"#));
    }

    #[test]
    fn brands_need_the_text_and_negation_is_the_rules() {
        let v = catalog();
        let text = "a camera under $200, but not Nikkon";
        let mut r = v.read(text);
        assert_eq!(r.exclude_brands, vec!["Nikon"], "a misspelt brand after a negation is avoided");
        let m = ModelReading {
            brands: vec!["Nikon".into(), "Nike".into()],
            categories: vec!["Photo".into()],
            ..Default::default()
        };
        combine(&mut r, m, &v, text);
        assert!(r.brands.is_empty(), "{:?}", r.brands);
        assert_eq!(r.exclude_brands, vec!["Nikon"]);
        assert!(r.categories.is_empty() && r.query.ends_with("Photo"), "a hint to the search, not a filter: {r:?}");
        assert_eq!(r.price_max, Some(200.0));
    }

    #[test]
    fn attribute_values_are_filters_only_when_the_model_confirms_them() {
        let v = catalog();
        let mut r = v.read("white chairs");
        assert_eq!(r.attributes.get("colour"), Some(&vec!["White".to_string()]));
        combine(&mut r, ModelReading { attributes: vec!["colour: White".into()], ..Default::default() }, &v, "");
        assert_eq!(r.attributes.get("colour"), Some(&vec!["White".to_string()]));
        let mut r = v.read("white chairs");
        combine(&mut r, ModelReading::default(), &v, "");
        assert!(r.attributes.is_empty());
    }

    #[test]
    fn a_word_is_the_kind_or_a_feature_not_both() {
        let v = Vocabulary::build(&[
            product("1", "Crystal Wine Glass", "Glassware", "Glass"),
            product("2", "Sunnai Glass Bowl", "Bowls", "Glass"),
            product("3", "Rustic Bowl", "Bowls", "Wood"),
            product("4", "Beer Mug", "Glassware", "Steel"),
            product("5", "Tea Cup", "Glassware", "Clay"),
        ]);
        let mut r = v.read("glass bowls");
        assert_eq!(kind_words(&v, "glass bowls", &mut r), vec!["bowl"]);
        assert_eq!(r.attributes.get("finish"), Some(&vec!["Glass".to_string()]));
        let mut r = v.read("glasses under $10");
        assert_eq!(kind_words(&v, "glasses under $10", &mut r), vec!["glass"]);
        assert!(r.attributes.is_empty(), "{r:?}");
        let mut r = v.read("wine glasses");
        assert_eq!(kind_words(&v, "wine glasses", &mut r), vec!["glass", "wine"]);
        assert!(r.attributes.is_empty(), "{r:?}");
    }

    #[test]
    fn a_turn_of_generic_words_is_vague() {
        let v = catalog();
        let generic = |t: &str| unexplained_words(&v.read(t)).iter().all(|w| GENERIC.contains(&w.as_str()));
        assert!(generic("I need a gift for my dad"));
        assert!(generic("something nice for my mum"));
        assert!(!generic("a chair for my dad"));
        assert!(!generic("a gift for someone who loves hiking"));
    }
}
