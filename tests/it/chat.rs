//! Chat runtime: the transformer against candle's reference implementation, tokenization
//! against llama.cpp, generation behaviour, and the OpenAI-compatible HTTP API.

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};

use crate::harness::models_dir;

fn smollm2() -> std::path::PathBuf {
    models_dir().join("SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf")
}

fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0
}

fn qwen() -> std::path::PathBuf {
    let p = models_dir().join("Qwen2.5-Coder-1.5B-Instruct/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf");
    assert!(p.exists(), "Qwen2.5-Coder is missing: run models/fetch.sh --with-qwen (scripts/test.sh does)");
    p
}

#[test]
fn token_ids_equal_llama_cpp_for_both_models() {
    let reference: serde_json::Value = serde_json::from_str(include_str!("../data/token_reference.json")).unwrap();
    for (name, path) in [("SmolLM2-135M-Instruct", smollm2()), ("Qwen2.5-Coder-1.5B-Instruct", qwen())] {
        let tok = aisle::infer::chat::ChatTokenizer::open(&path).unwrap();
        let cases = reference["models"][name].as_array().unwrap_or_else(|| panic!("no reference ids for {name}"));
        assert!(cases.len() >= 25);
        for case in cases {
            let text = case["text"].as_str().unwrap();
            let ids = |key: &str| -> Vec<u32> {
                case[key].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect()
            };
            assert_eq!(tok.encode(text, false, true).unwrap(), ids("ids"), "{name}: {text:?} (special tokens parsed)");
            assert_eq!(
                tok.encode(text, false, false).unwrap(),
                ids("ids_no_special"),
                "{name}: {text:?} (special tokens as text)"
            );
            if !text.contains("<|") && !text.contains("<tool_call>") {
                assert_eq!(tok.decode(&ids("ids")), text, "{name}: decode round trip");
            }
        }
    }
}

#[test]
fn chat_templates_render_each_models_own_format() {
    let smol = aisle::infer::chat::ChatModel::load(&smollm2(), &Device::Cpu, 4096).unwrap();
    let msgs = [aisle::infer::chat::Message::new("user", "Hi")];
    let s = smol.template.render(&msgs, true, &[]).unwrap();
    assert!(s.starts_with("<|im_start|>system\nYou are a helpful AI assistant named SmolLM"), "{s}");
    assert!(s.ends_with("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"), "{s}");
    assert!(smol.template.from_model);
}

fn softmax(v: &[f32]) -> Vec<f32> {
    let m = v.iter().fold(f32::MIN, |a, b| a.max(*b));
    let e: Vec<f32> = v.iter().map(|x| (x - m).exp()).collect();
    let sum: f32 = e.iter().sum();
    e.into_iter().map(|x| x / sum).collect()
}

/// Mean negative log-likelihood of the answer part of `text` under aisle's implementation and
/// under candle-transformers' (`reference(tokens, position) -> logits`), teacher-forced: the
/// prompt prefilled in one pass, the answer fed one token at a time. Also returns at how many
/// of the `n` answer positions the most likely token agrees.
fn nll_against_reference(
    path: &std::path::Path,
    text: &str,
    mut reference: impl FnMut(&[u32], usize) -> Vec<f32>,
) -> (f64, f64, usize, usize) {
    let model = aisle::infer::chat::ChatModel::load(path, &Device::Cpu, 4096).unwrap();
    let ids = model.tokenizer.encode(text, false, true).unwrap();
    let split = ids.iter().rposition(|&i| i == model.tokenizer.encode("\n", false, false).unwrap()[0]).unwrap() + 1;
    let nll = |logits: &[f32], next: u32| -> f64 { -(softmax(logits)[next as usize].max(1e-30) as f64).ln() };
    let mut cache = model.model.new_cache();
    let mut ours = model.model.forward(&ids[..split], &mut cache).unwrap();
    let mut theirs = reference(&ids[..split], 0);
    let (mut ours_nll, mut theirs_nll, mut agree) = (0.0, 0.0, 0);
    let n = ids.len() - split;
    for (k, &next) in ids[split..].iter().enumerate() {
        ours_nll += nll(&ours, next);
        theirs_nll += nll(&theirs, next);
        agree += usize::from(argmax(&ours) == argmax(&theirs));
        if k + 1 < n {
            ours = model.model.forward(&[next], &mut cache).unwrap();
            theirs = reference(&[next], split + k);
        }
    }
    (ours_nll / n as f64, theirs_nll / n as f64, agree, n)
}

const ANSWER: &str = "<|im_start|>user\nWhich laptop is lighter?<|im_end|>\n<|im_start|>assistant\nThe MacBook Air weighs 1.24 kg, while the Dell XPS 15 weighs about 1.8 kg, so the MacBook Air is the lighter of the two and easier to carry every day.";

fn tensor(x: &[u32]) -> Tensor {
    Tensor::new(x, &Device::Cpu).unwrap().unsqueeze(0).unwrap()
}

/// aisle's transformer is its own (shared weights, per-request caches, its own Q4_1 kernels
/// and a dense f32 path for prompts, grouped-query attention without copies). candle's
/// implementation of the same architecture is the reference; floating-point summation orders
/// differ (prompt rows multiply full-precision activations where candle quantizes them to 8
/// bits; Qwen2's activation outliers amplify rounding ~1e5 times, see
/// `grouped_attention_equals_repeated_kv` in src/infer/chat/model.rs), so logits are not
/// bitwise equal. What must agree is the model: the mean negative log-likelihood of a fixed
/// answer within 2%, and the most likely token at nine positions in ten or more.
fn assert_matches_reference(name: &str, ours: f64, theirs: f64, agree: usize, n: usize) {
    eprintln!("{name}: mean NLL {ours:.4} (aisle) vs {theirs:.4} (candle) over {n} tokens; argmax agrees at {agree}");
    assert!(n >= 30, "{n} answer tokens");
    assert!((ours - theirs).abs() / theirs < 0.02, "{name}: mean NLL {ours:.4} vs candle {theirs:.4}");
    assert!(agree * 10 >= n * 9, "{name}: the most likely token agrees at only {agree} of {n} positions");
}

#[test]
fn llama_forward_matches_candle_reference() {
    use candle_transformers::models::quantized_llama::ModelWeights;
    let path = smollm2();
    let mut f = std::fs::File::open(&path).unwrap();
    let ct = gguf_file::Content::read(&mut f).unwrap();
    let mut r = ModelWeights::from_gguf(ct, &mut f, &Device::Cpu).unwrap();
    let (ours, theirs, agree, n) = nll_against_reference(&path, ANSWER, |x, pos| {
        r.forward(&tensor(x), pos).unwrap().squeeze(0).unwrap().to_vec1().unwrap()
    });
    assert_matches_reference("llama (SmolLM2)", ours, theirs, agree, n);
}

#[test]
fn qwen2_forward_matches_candle_reference() {
    use candle_transformers::models::quantized_qwen2::ModelWeights;
    let path = qwen();
    let mut f = std::fs::File::open(&path).unwrap();
    let ct = gguf_file::Content::read(&mut f).unwrap();
    let mut r = ModelWeights::from_gguf(ct, &mut f, &Device::Cpu).unwrap();
    // Structure first: three tokens take the same summation order and must be bitwise equal.
    let model = aisle::infer::chat::ChatModel::load(&path, &Device::Cpu, 4096).unwrap();
    let ids = model.tokenizer.encode(ANSWER, false, true).unwrap();
    let ours = model.model.forward(&ids[..3], &mut model.model.new_cache()).unwrap();
    let theirs: Vec<f32> = r.forward(&tensor(&ids[..3]), 0).unwrap().squeeze(0).unwrap().to_vec1().unwrap();
    assert_eq!(ours, theirs);
    r.clear_kv_cache();
    let (ours, theirs, agree, n) = nll_against_reference(&path, ANSWER, |x, pos| {
        r.forward(&tensor(x), pos).unwrap().squeeze(0).unwrap().to_vec1().unwrap()
    });
    assert_matches_reference("qwen2 (Qwen2.5-Coder)", ours, theirs, agree, n);
}

use serde_json::{Value, json};

use crate::harness::{client, get, post, shared};

const MODEL: &str = "SmolLM2-135M-Instruct";

fn chat(body: Value) -> (u16, Value) {
    post(&shared().url("/v1/chat/completions"), &body)
}

/// POST a streaming request; returns the parsed `data:` payloads (the last one is `[DONE]`).
fn stream(path: &str, body: Value) -> Vec<String> {
    let r = client().post(shared().url(path)).json(&body).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let text = r.text().unwrap();
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty() && !e.starts_with(':'))
        .map(|e| e.strip_prefix("data: ").unwrap_or_else(|| panic!("not a data event: {e:?}")).to_string())
        .collect()
}

fn content(v: &Value) -> String {
    v["choices"][0]["message"]["content"].as_str().unwrap().to_string()
}

fn question(q: &str) -> Value {
    json!([{"role": "user", "content": q}])
}

#[test]
fn greedy_is_deterministic_and_streaming_gives_the_same_text() {
    let body = json!({"model": MODEL, "messages": question("Name three fruits."), "temperature": 0, "max_tokens": 24});
    let (status, a) = chat(body.clone());
    assert_eq!(status, 200, "{a}");
    let (_, b) = chat(body.clone());
    assert_eq!(content(&a), content(&b));
    assert!(!content(&a).is_empty());
    assert_eq!(a["object"], "chat.completion");
    assert_eq!(a["choices"][0]["message"]["role"], "assistant");
    let usage = &a["usage"];
    let completion = usage["completion_tokens"].as_u64().unwrap();
    assert_eq!(usage["total_tokens"].as_u64(), Some(usage["prompt_tokens"].as_u64().unwrap() + completion));
    // Either the model ended its answer (EOS) or max_tokens cut it.
    let finish = a["choices"][0]["finish_reason"].as_str().unwrap();
    assert!((finish == "length" && completion == 24) || (finish == "stop" && completion < 24), "{a}");

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let events = stream("/v1/chat/completions", streamed);
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String =
        chunks.iter().filter_map(|c| c["choices"].get(0)?["delta"]["content"].as_str().map(str::to_string)).collect();
    assert_eq!(text, content(&a), "streamed and non-streamed text differ");
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["id"], chunks[0]["id"]);
    }
    let finish: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0))
        .map(|c| &c["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finish, vec![&a["choices"][0]["finish_reason"]]);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"], a["usage"]);
}

#[test]
fn stop_strings_end_the_text_before_them() {
    let body = json!({"model": MODEL, "messages": question("Write a short story about a cat."), "temperature": 0, "max_tokens": 40});
    let (_, full) = chat(body.clone());
    let full = content(&full);
    // A stop string from the middle of the greedy answer.
    let words: Vec<&str> = full.split_whitespace().collect();
    assert!(words.len() > 6, "{full}");
    let stop = words[4];
    let cut = full.find(stop).unwrap();
    let mut stopped = body.clone();
    stopped["stop"] = json!([stop, "ZZZ-never"]);
    let (status, v) = chat(stopped.clone());
    assert_eq!(status, 200);
    assert_eq!(content(&v), full[..cut], "stop {stop:?}");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    // Streaming stops at the same place and never shows the stop string.
    stopped["stream"] = json!(true);
    let events = stream("/v1/chat/completions", stopped);
    let text: String = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str::<Value>(e).unwrap())
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str().map(str::to_string))
        .collect();
    assert_eq!(text, full[..cut]);
}

#[test]
fn seeds_repeat_and_differ() {
    let body = |seed: u64| json!({"model": MODEL, "messages": question("Tell me a fun fact."), "temperature": 0.9, "max_tokens": 20, "seed": seed});
    let a = content(&chat(body(11)).1);
    let b = content(&chat(body(11)).1);
    assert_eq!(a, b, "same seed, same text");
    let others: Vec<String> = [12, 13, 14].iter().map(|s| content(&chat(body(*s)).1)).collect();
    assert!(others.iter().any(|o| o != &a), "three other seeds all gave the same text");
}

#[test]
fn json_object_mode_returns_a_json_object() {
    let body = json!({"model": MODEL, "temperature": 0, "max_tokens": 80, "response_format": {"type": "json_object"},
        "messages": question("Give me a JSON object with the name and price of a cheap laptop.")});
    let (status, v) = chat(body);
    assert_eq!(status, 200, "{v}");
    let text = content(&v);
    let parsed: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    assert!(parsed.is_object(), "{text}");
    assert_eq!(v["choices"][0]["finish_reason"], "stop", "the object was completed: {text}");
}

#[test]
fn json_schema_mode_returns_a_document_of_the_schema() {
    let schema = json!({
        "type": "object",
        "properties": {
            "intent": {"enum": ["shopping", "small_talk", "out_of_scope"]},
            "categories": {"type": "array", "items": {"enum": ["Headphones", "Laptops", "Cameras"]}, "maxItems": 2},
            "price": {
                "type": "object",
                "properties": {"min": {"type": "number"}, "max": {"type": "number"}},
                "required": ["max"],
                "additionalProperties": false
            },
            "count": {"type": "integer"},
            "gift": {"type": "boolean"}
        },
        "required": ["intent", "categories", "price", "count", "gift"],
        "additionalProperties": false
    });
    for prompt in ["Two headphones under $150 please, as a gift.", "Hi! Nice weather today."] {
        let body = json!({"model": MODEL, "temperature": 0, "max_tokens": 120, "messages": question(prompt),
            "response_format": {"type": "json_schema", "json_schema": {"name": "request", "schema": schema, "strict": true}}});
        let (status, v) = chat(body);
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["choices"][0]["finish_reason"], "stop", "{v}");
        let text = content(&v);
        let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
        let o = doc.as_object().unwrap_or_else(|| panic!("not an object: {text}"));
        let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["categories", "count", "gift", "intent", "price"], "{text}");
        assert!(["shopping", "small_talk", "out_of_scope"].contains(&o["intent"].as_str().unwrap_or("?")), "{text}");
        let cats = o["categories"].as_array().unwrap_or_else(|| panic!("{text}"));
        assert!(cats.len() <= 2, "{text}");
        assert!(
            cats.iter().all(|c| ["Headphones", "Laptops", "Cameras"].contains(&c.as_str().unwrap_or("?"))),
            "{text}"
        );
        let price = o["price"].as_object().unwrap_or_else(|| panic!("{text}"));
        assert!(price["max"].is_number(), "{text}");
        assert!(price.keys().all(|k| k == "min" || k == "max"), "{text}");
        assert!(price.get("min").is_none_or(Value::is_number), "{text}");
        assert!(o["count"].is_i64() || o["count"].is_u64(), "{text}");
        assert!(o["gift"].is_boolean(), "{text}");
    }
}

#[test]
fn bad_parameters_are_4xx_naming_the_field() {
    let base = json!({"model": MODEL, "messages": question("hi")});
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({"max_tokens": -5}), 400, "/max_tokens"),
        (json!({"max_tokens": 0}), 400, "/max_tokens"),
        (json!({"temperature": 3.5}), 400, "/temperature"),
        (json!({"temperature": -1}), 400, "/temperature"),
        (json!({"top_p": 0}), 400, "/top_p"),
        (json!({"model": "gpt-4o"}), 404, "/model"),
        (json!({"messages": []}), 400, "/messages"),
        (json!({"messages": [{"role": "wizard", "content": "x"}]}), 400, "/messages/0/role"),
        (json!({"n": 3}), 400, "/n"),
        (json!({"tools": [{"type": "function"}]}), 400, "/tools"),
        (json!({"response_format": {"type": "xml"}}), 400, "/response_format/type"),
        (json!({"response_format": {"type": "json_schema"}}), 400, "/response_format/json_schema"),
        (
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema":
                {"type": "object", "properties": {"price": {"type": "number", "minimum": 0}}}}}}),
            400,
            "/response_format/json_schema/schema/properties/price/minimum",
        ),
        (json!({"stop": ["a", "b", "c", "d", "e"]}), 400, "/stop"),
        (json!({"logprobs": true}), 400, "/logprobs"),
        (json!({"max_tokens": 100000}), 400, "/max_tokens"),
        (json!({"messages": [{"role": "user", "content": "word ".repeat(5000)}]}), 400, "/messages"),
        (json!({"temperature": "hot"}), 400, "/temperature"),
    ];
    for (patch, status, pointer) in cases {
        let mut body = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = client().post(shared().url("/v1/chat/completions")).json(&body).send().unwrap();
        assert_eq!(r.status().as_u16(), status, "{patch}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let v: Value = r.json().unwrap();
        let pointers: Vec<&str> =
            v["errors"].as_array().unwrap().iter().map(|e| e["pointer"].as_str().unwrap()).collect();
        assert!(pointers.contains(&pointer), "{patch}: {v}");
        assert!(v["error"]["message"].is_string(), "OpenAI-style error member: {v}");
    }
}

#[test]
fn completions_embeddings_and_models() {
    let s = shared();
    let (status, v) = post(
        &s.url("/v1/completions"),
        &json!({"model": MODEL, "prompt": "The capital of France is", "max_tokens": 8, "temperature": 0}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "text_completion");
    assert!(!v["choices"][0]["text"].as_str().unwrap().is_empty());
    assert_eq!(
        v["usage"]["completion_tokens"].as_u64().unwrap() + v["usage"]["prompt_tokens"].as_u64().unwrap(),
        v["usage"]["total_tokens"].as_u64().unwrap()
    );
    let events = stream(
        "/v1/completions",
        json!({"model": MODEL, "prompt": "The capital of France is", "max_tokens": 8, "temperature": 0, "stream": true}),
    );
    let text: String = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str::<Value>(e).unwrap())
        .filter_map(|c| c["choices"][0]["text"].as_str().map(str::to_string))
        .collect();
    assert_eq!(text, v["choices"][0]["text"].as_str().unwrap());

    let (status, e) = post(
        &s.url("/v1/embeddings"),
        &json!({"model": "all-MiniLM-L6-v2", "input": ["red running shoes", "a blue kettle"]}),
    );
    assert_eq!(status, 200, "{e}");
    assert_eq!(e["data"].as_array().unwrap().len(), 2);
    let v0: Vec<f64> = e["data"][0]["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    assert_eq!(v0.len(), 384);
    assert!((v0.iter().map(|x| x * x).sum::<f64>().sqrt() - 1.0).abs() < 1e-3);
    assert!(e["usage"]["prompt_tokens"].as_u64().unwrap() >= 6);
    let (_, b) = post(
        &s.url("/v1/embeddings"),
        &json!({"model": "all-MiniLM-L6-v2", "input": "red running shoes", "encoding_format": "base64"}),
    );
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b["data"][0]["embedding"].as_str().unwrap()).unwrap();
    let decoded: Vec<f64> = bytes.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64).collect();
    assert!(decoded.iter().zip(&v0).all(|(a, b)| (a - b).abs() < 1e-6));
    let (status, _) = post(&s.url("/v1/embeddings"), &json!({"model": "nope", "input": "x"}));
    assert_eq!(status, 404);
    let (status, _) = post(&s.url("/v1/embeddings"), &json!({"model": "all-MiniLM-L6-v2", "input": [1, 2, 3]}));
    assert_eq!(status, 400);

    let (status, m) = get(&s.url("/v1/models"));
    assert_eq!(status, 200);
    let ids: Vec<&str> = m["data"].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["all-MiniLM-L6-v2", MODEL]);
    assert_eq!(get(&s.url(&format!("/v1/models/{MODEL}"))).0, 200);
    assert_eq!(get(&s.url("/v1/models/nope")).0, 404);
}

fn metric(base: &str, name: &str) -> f64 {
    let text = client().get(format!("{base}/metrics")).send().unwrap().text().unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} missing"))
        .parse()
        .unwrap()
}

#[test]
fn a_cancelled_request_frees_its_slot() {
    use std::io::Read;
    // One slot only: if the cancelled request kept it, the next request would wait behind it.
    let dir = crate::harness::temp_dir("cancel");
    let server = crate::harness::Server::start(&dir, &[("AISLE_CHAT_MAX_ACTIVE", "1")]);
    let body = json!({"model": MODEL, "messages": question("Write a very long essay about the history of Rome."), "max_tokens": 3000,
        "temperature": 0.7, "stream": true});
    let mut r = client().post(server.url("/v1/chat/completions")).json(&body).send().unwrap();
    let mut buf = [0u8; 256];
    let n = r.read(&mut buf).unwrap();
    assert!(n > 0);
    drop(r); // the client goes away mid-stream
    let started = std::time::Instant::now();
    while metric(&server.base, "aisle_chat_cancelled_total") < 1.0 {
        assert!(started.elapsed().as_secs() < 30, "the cancelled generation was never noticed");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(metric(&server.base, "aisle_chat_active"), 0.0);
    assert!(metric(&server.base, "aisle_chat_generated_tokens_total") < 3000.0);
    let (status, v) = post(
        &server.url("/v1/chat/completions"),
        &json!({"model": MODEL, "messages": question("hi"), "max_tokens": 5}),
    );
    assert_eq!(status, 200, "{v}");
    server.stop();
}

fn gguf_fail(path: &std::path::Path) -> String {
    match aisle::infer::chat::ChatModel::load(path, &Device::Cpu, 4096) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => {
            assert!(matches!(e, aisle::Error::Model(_)), "{e:?}");
            e.to_string()
        }
    }
}

#[test]
fn corrupt_or_unsupported_gguf_files_are_clear_errors() {
    let dir = crate::harness::temp_dir("corrupt-gguf");
    let good = std::fs::read(smollm2()).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let e = gguf_fail(&write("truncated.gguf", &good[..good.len() / 3]));
    assert!(e.contains("truncated") || e.contains("past the end"), "{e}");
    let e = gguf_fail(&write("header-only.gguf", &good[..64]));
    assert!(e.contains("truncated"), "{e}");
    let e = gguf_fail(&write("garbage.gguf", b"definitely not a model file at all"));
    assert!(e.contains("magic"), "{e}");
    let e = gguf_fail(&write("empty.gguf", b""));
    assert!(e.contains("truncated"), "{e}");
    // Same structure, another architecture name of the same length.
    let mut other = good.clone();
    let at = other.windows(b"general.architecture".len()).position(|w| w == b"general.architecture").unwrap();
    let value = at + b"general.architecture".len() + 4 + 8; // type (u32) and string length (u64)
    assert_eq!(&other[value..value + 5], b"llama");
    other[value..value + 5].copy_from_slice(b"mamba");
    let e = gguf_fail(&write("mamba.gguf", &other));
    assert!(e.contains("architecture 'mamba' is not supported"), "{e}");
    // A metadata array that claims more items than the file could hold.
    let mut huge = good.clone();
    let at = huge.windows(b"tokenizer.ggml.tokens".len()).position(|w| w == b"tokenizer.ggml.tokens").unwrap();
    let count = at + b"tokenizer.ggml.tokens".len() + 4 + 4; // value type, item type
    huge[count..count + 8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    let e = gguf_fail(&write("huge-array.gguf", &huge));
    assert!(e.contains("tokenizer.ggml.tokens"), "{e}");
    let e = gguf_fail(&dir.join("missing.gguf"));
    assert!(e.contains("does not exist"), "{e}");

    // The server refuses to start on a corrupt chat model, with the reason, and no panic.
    let models = crate::harness::temp_dir("corrupt-gguf-models");
    std::fs::create_dir_all(models.join("all-MiniLM-L6-v2")).unwrap();
    for f in std::fs::read_dir(models_dir().join("all-MiniLM-L6-v2")).unwrap() {
        let f = f.unwrap().path();
        if f.is_file() {
            std::fs::copy(&f, models.join("all-MiniLM-L6-v2").join(f.file_name().unwrap())).unwrap();
        }
    }
    std::fs::create_dir_all(models.join("all-MiniLM-L6-v2/1_Pooling")).unwrap();
    std::fs::copy(
        models_dir().join("all-MiniLM-L6-v2/1_Pooling/config.json"),
        models.join("all-MiniLM-L6-v2/1_Pooling/config.json"),
    )
    .unwrap();
    std::fs::create_dir_all(models.join("SmolLM2-135M-Instruct")).unwrap();
    std::fs::write(models.join("SmolLM2-135M-Instruct/model.gguf"), &good[..good.len() / 2]).unwrap();
    let out = crate::harness::aisle()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(crate::harness::temp_dir("corrupt-gguf-data"))
        .arg("--models-dir")
        .arg(&models)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("model.gguf"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn concurrent_requests_are_interleaved_fairly() {
    // A long request, then a short one: with round-robin steps the short one finishes first.
    let url = shared().url("/v1/chat/completions");
    let long = {
        let url = url.clone();
        std::thread::spawn(move || {
            let body = json!({"model": MODEL, "messages": question("Write a long story about a dragon."), "max_tokens": 200,
                "temperature": 0.8, "seed": 1, "min_p": 0.0});
            let r = client().post(url).json(&body).send().unwrap();
            (std::time::Instant::now(), r.json::<Value>().unwrap())
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    let body = json!({"model": MODEL, "messages": question("hi"), "max_tokens": 3});
    let r = client().post(&url).json(&body).send().unwrap();
    let short_done = std::time::Instant::now();
    assert_eq!(r.status(), 200);
    let (long_done, long_body) = long.join().unwrap();
    let long_tokens = long_body["usage"]["completion_tokens"].as_u64().unwrap();
    if long_tokens > 20 {
        assert!(short_done < long_done, "the short request waited for the long one ({long_tokens} tokens)");
    }
}

#[test]
fn qwen_generates_through_the_scheduler_with_its_own_template() {
    let model = aisle::infer::chat::ChatModel::load(&qwen(), &Device::Cpu, 4096).unwrap();
    let prompt_text = model
        .template
        .render(&[aisle::infer::chat::Message::new("user", "What is 2+2? Answer with the number only.")], true, &[])
        .unwrap();
    assert!(prompt_text.starts_with("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud."), "{prompt_text}");
    let cfg = aisle::infer::chat::scheduler::SchedulerConfig {
        max_active: 2,
        max_waiting: 4,
        prefill_chunk: 512,
        prefix_cache_bytes: 0,
        threads: 0,
    };
    let generator = aisle::infer::chat::Generator::start(model, &cfg);
    let prompt = generator
        .chat_prompt(&[aisle::infer::chat::Message::new("user", "What is 2+2? Answer with the number only.")])
        .unwrap();
    let sampling = aisle::infer::chat::SamplingParams { temperature: 0.0, ..Default::default() };
    let request = aisle::infer::chat::GenerateRequest {
        prompt,
        max_tokens: 8,
        sampling,
        stop: vec![],
        format: aisle::infer::chat::OutputFormat::Text,
    };
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let (text, finish) = rt.block_on(generator.generate(request)).unwrap();
    assert!(text.trim().starts_with('4'), "{text:?}");
    assert_eq!(finish.reason, aisle::infer::chat::FinishReason::Stop, "{text:?}: <|im_end|> ends the answer");
}

/// Continuous batching must not change what a sequence computes: four prompts started two at a
/// time, so passes mix prompt chunks with each other and with decoding tokens, give each the same
/// logits as running it alone: bit for bit on Q4_1 (SmolLM2), close on Q4_K/Q6_K (Qwen).
#[test]
fn a_sequence_computes_the_same_logits_in_any_batch() {
    use aisle::infer::chat::{Cache, ChatModel};
    for path in [smollm2(), qwen()] {
        let chat = ChatModel::load(&path, &Device::Cpu, 4096).unwrap();
        let model = &chat.model;
        let prompts: Vec<Vec<u32>> = [
            "Name three fruits that grow in a cold climate, and say which of them keeps longest.",
            "Write a haiku about the sea in the light of an autumn morning, please.",
            "hi",
            "What is the capital of France? Answer briefly, then explain why it became the capital.",
        ]
        .iter()
        .map(|q| chat.tokenizer.encode(q, true, false).unwrap())
        .collect();
        let steps = 6;
        // Alone: the prompt in one pass, then greedy tokens one at a time.
        let alone: Vec<Vec<Vec<f32>>> = prompts
            .iter()
            .map(|p| {
                let mut cache = model.new_cache();
                let mut out = vec![model.forward(p, &mut cache).unwrap()];
                for _ in 1..steps {
                    let next = argmax(out.last().unwrap()) as u32;
                    out.push(model.forward(&[next], &mut cache).unwrap());
                }
                out
            })
            .collect();
        // Together: prompts 2i and 2i+1 join at pass i (two prompt chunks share a pass).
        let mut caches: Vec<Cache> = prompts.iter().map(|_| model.new_cache()).collect();
        let mut together: Vec<Vec<Vec<f32>>> = vec![Vec::new(); prompts.len()];
        for pass in 0..steps + prompts.len() {
            let feeds: Vec<(usize, Vec<u32>)> = (0..prompts.len())
                .filter(|&i| i / 2 <= pass && together[i].len() < steps)
                .map(|i| match together[i].len() {
                    0 => (i, prompts[i].clone()),
                    // The tokens the lone run chose, so the steps stay comparable where a
                    // near-tie could go either way (K-quants, below).
                    k => (i, vec![argmax(&alone[i][k - 1]) as u32]),
                })
                .collect();
            if feeds.is_empty() {
                continue;
            }
            let mut items: Vec<(&[u32], &mut Cache)> = Vec::new();
            let mut rest: &mut [Cache] = &mut caches;
            let mut base = 0;
            for (i, tokens) in &feeds {
                let (_, tail) = std::mem::take(&mut rest).split_at_mut(i - base);
                let (c, tail) = tail.split_first_mut().unwrap();
                items.push((tokens.as_slice(), c));
                rest = tail;
                base = i + 1;
            }
            let logits = model.forward_batch(&mut items).unwrap();
            for ((i, _), l) in feeds.iter().zip(logits) {
                together[*i].push(l);
            }
        }
        // Q4_1 and Q8_0 (SmolLM2) run aisle's kernels: bit for bit. Qwen's K-quants take
        // candle's tiles from four decoding rows (faster), another summation order, which
        // Qwen2's activation outliers amplify (see `assert_matches_reference`): the logits
        // stay within 5% of their range and the most likely token agrees at nine steps in ten.
        let exact = path == smollm2();
        let (mut agree, mut compared) = (0, 0);
        for (i, (a, t)) in alone.iter().zip(&together).enumerate() {
            assert_eq!(a.len(), t.len());
            for (s, (x, y)) in a.iter().zip(t).enumerate() {
                if exact {
                    assert!(x == y, "{}: prompt {i} step {s} differs in a batch", path.display());
                } else {
                    let scale = x.iter().fold(0f32, |m, v| m.max(v.abs()));
                    let diff = x.iter().zip(y).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
                    assert!(diff <= 0.05 * scale, "{}: prompt {i} step {s}: {diff} of {scale}", path.display());
                    agree += usize::from(argmax(x) == argmax(y));
                    compared += 1;
                }
            }
        }
        assert!(
            agree * 10 >= compared * 9,
            "{}: the most likely token agrees at {agree} of {compared}",
            path.display()
        );
    }
}

/// Several streams share every forward pass; one that fails mid-batch (an injected fault after
/// its second token), one whose client goes away and one over the context each end alone with
/// their own outcome, and the others finish with exactly the text each gives alone.
#[test]
fn one_bad_sequence_never_hurts_the_batch() {
    use std::io::Read;
    let dir = crate::harness::temp_dir("batch");
    let server = crate::harness::Server::start(
        &dir,
        &[("AISLE_CHAT_MAX_ACTIVE", "8"), ("AISLE_FAULT", "chat.sequence"), ("AISLE_CHAT_PREFIX_CACHE_MB", "0")],
    );
    let url = server.url("/v1/chat/completions");
    let good = |i: usize| {
        json!({"model": MODEL, "messages": question(&format!("Tell me about the number {i} in three sentences.")),
            "temperature": 0, "max_tokens": 48, "ignore_eos": true})
    };
    let texts: Vec<String> = std::thread::scope(|s| {
        let goods: Vec<_> = (0..3)
            .map(|i| {
                let (url, body) = (url.clone(), good(i));
                s.spawn(move || post(&url, &body))
            })
            .collect();
        let failing = s.spawn(|| {
            let mut body = good(7);
            body["stop"] = json!(["AISLE_FAULT_SEQUENCE"]);
            body["stream"] = json!(true);
            client().post(&url).json(&body).send().unwrap().text().unwrap()
        });
        let cancelled = s.spawn(|| {
            let mut body = good(8);
            body["stream"] = json!(true);
            body["max_tokens"] = json!(400);
            let mut r = client().post(&url).json(&body).send().unwrap();
            let mut buf = [0u8; 64];
            let _ = r.read(&mut buf);
        });
        let (status, v) = post(&url, &json!({"model": MODEL, "messages": question("hi"), "max_tokens": 100000}));
        assert_eq!(status, 400, "{v}");
        assert_eq!(v["errors"][0]["pointer"], "/max_tokens", "{v}");
        let failed = failing.join().unwrap();
        assert!(failed.contains("AISLE_FAULT"), "the failing stream carries its own error: {failed}");
        cancelled.join().unwrap();
        goods
            .into_iter()
            .map(|h| {
                let (status, v) = h.join().unwrap();
                assert_eq!(status, 200, "{v}");
                assert_eq!(v["usage"]["completion_tokens"], 48, "{v}");
                content(&v)
            })
            .collect()
    });
    assert!(metric(&server.base, "aisle_chat_failed_total") >= 1.0);
    let started = std::time::Instant::now();
    while metric(&server.base, "aisle_chat_cancelled_total") < 1.0 {
        assert!(started.elapsed().as_secs() < 30, "the cancelled stream was never noticed");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (passes, sequences) =
        (metric(&server.base, "aisle_chat_passes_total"), metric(&server.base, "aisle_chat_pass_sequences_total"));
    assert!(sequences > passes, "requests shared forward passes ({sequences} in {passes})");
    for (i, text) in texts.iter().enumerate() {
        let (_, v) = post(&url, &good(i));
        assert_eq!(&content(&v), text, "request {i} alone");
    }
    server.stop();
}

/// A follow-up turn starts from the first turn's cached prompt: the tokens it skips are counted,
/// and its greedy answer is the one a server without reuse gives.
#[test]
fn a_follow_up_turn_reuses_the_cached_prompt() {
    let system = "You are the shopping assistant of a garden shop. Answer in one short sentence. \
        Products: 1. Hose reel, $39. 2. Pruning shears, $24. 3. Watering can, $15. 4. Raised bed kit, $89.";
    let first =
        json!([{"role": "system", "content": system}, {"role": "user", "content": "What can I water plants with?"}]);
    let mut follow = first.as_array().unwrap().clone();
    follow.push(json!({"role": "assistant", "content": "The watering can at $15 or the hose reel at $39."}));
    follow.push(json!({"role": "user", "content": "Which one is cheaper?"}));
    let body = |messages: &Value| json!({"model": MODEL, "messages": messages, "temperature": 0, "max_tokens": 16});
    let answers: Vec<(String, f64, f64)> = ["256", "0"]
        .iter()
        .map(|mb| {
            let dir = crate::harness::temp_dir("prefix");
            let server = crate::harness::Server::start(&dir, &[("AISLE_CHAT_PREFIX_CACHE_MB", mb)]);
            let url = server.url("/v1/chat/completions");
            let (status, v) = post(&url, &body(&first));
            assert_eq!(status, 200, "{v}");
            let first_prompt = v["usage"]["prompt_tokens"].as_f64().unwrap();
            let before = metric(&server.base, "aisle_chat_prefix_tokens_total");
            let (_, v) = post(&url, &body(&Value::Array(follow.clone())));
            let reused = metric(&server.base, "aisle_chat_prefix_tokens_total") - before;
            server.stop();
            (content(&v), reused, first_prompt)
        })
        .collect();
    let ((with, reused, first_prompt), (without, none, _)) = (&answers[0], &answers[1]);
    assert!(*reused >= first_prompt - 4.0, "reused {reused} of the first turn's {first_prompt} tokens");
    assert_eq!(*none, 0.0);
    assert_eq!(with, without, "reuse changed the answer");
}

/// Prefix reuse computes what a cold run computes: a prompt read after 64 cached positions
/// gives the same logits, bit for bit, as read whole (prompt rows take kernels whose result
/// for a row does not depend on the other rows of its chunk), on both weight formats.
#[test]
fn a_reused_prefix_gives_the_logits_of_a_cold_run() {
    use aisle::infer::chat::ChatModel;
    for path in [smollm2(), qwen()] {
        let chat = ChatModel::load(&path, &Device::Cpu, 4096).unwrap();
        let model = &chat.model;
        let text = "You are the shopping assistant of a garden shop. Products: a hose reel with thirty metres \
            of hose, pruning shears with a safety lock, a galvanised watering can, a raised bed kit in larch \
            wood, a compost bin with a lid, garden gloves in three sizes, a steel trowel and a kneeling pad. \
            Delivery is free above fifty euros. Which of them would help me start growing tomatoes, basil \
            and strawberries on a small balcony this spring, and what should I buy first?";
        let ids = chat.tokenizer.encode(text, true, false).unwrap();
        assert!(ids.len() > 64 + 16, "{} tokens", ids.len());
        let mut cold = model.new_cache();
        let whole = model.forward(&ids, &mut cold).unwrap();
        let prefix = cold.snapshot(64).unwrap().unwrap();
        let mut warm = model.cache_from(&prefix, 64).unwrap();
        let rest = model.forward(&ids[64..], &mut warm).unwrap();
        assert!(whole == rest, "{}: reading after a reused prefix changed the logits", path.display());
    }
}
