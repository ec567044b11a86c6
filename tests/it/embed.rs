//! Embedding parity with sentence-transformers, batching, and model-file failures.

use aisle::config::EmbedConfig;
use aisle::infer::{Embedder, EmbeddingModel, Pooling};
use serde_json::Value;

use crate::harness::models_dir;

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn reference() -> (Vec<String>, Vec<Vec<f32>>) {
    let v: Value = serde_json::from_str(include_str!("../data/embed_reference.json")).unwrap();
    let texts = v["texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
    let vectors = v["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect())
        .collect();
    (texts, vectors)
}

fn model() -> EmbeddingModel {
    EmbeddingModel::load(&models_dir().join("all-MiniLM-L6-v2"), &candle_core::Device::Cpu).unwrap()
}

#[test]
fn matches_sentence_transformers_one_text_at_a_time() {
    let m = model();
    assert_eq!(m.pooling(), Pooling::Mean, "pooling is read from 1_Pooling/config.json");
    assert!(m.normalizes(), "modules.json has a Normalize module");
    assert_eq!(m.max_len(), 256, "max_seq_length from sentence_bert_config.json");
    let (texts, want) = reference();
    for (text, want) in texts.iter().zip(&want) {
        let got = m.embed(&[text]).unwrap().remove(0);
        let c = cosine(&got, want);
        assert!(c >= 0.9999, "cosine {c} for {text:?}");
        let norm: f32 = got.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "not normalised: {norm}");
    }
}

#[test]
fn batched_and_padded_through_the_queue_matches_too() {
    let (texts, want) = reference();
    // A small token budget forces several batches of mixed lengths with padding.
    let cfg = EmbedConfig { max_batch_tokens: 600, max_batch_size: 5, ..EmbedConfig::default() };
    let embedder = Embedder::start(model(), &cfg);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let got = embedder.embed_blocking(&refs).unwrap();
    assert_eq!(got.len(), want.len());
    for ((g, w), t) in got.iter().zip(&want).zip(&texts) {
        let c = cosine(g, w);
        assert!(c >= 0.9999, "cosine {c} for {t:?} (batched)");
    }
    let stats = embedder.stats();
    assert!(stats.batches.load(std::sync::atomic::Ordering::Relaxed) >= 4, "the budget must have split the work");
    assert_eq!(stats.queued.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[test]
fn long_texts_are_truncated_not_refused() {
    let m = model();
    let long = "word ".repeat(5000);
    let enc = m.tokenize(&long).unwrap();
    assert_eq!(enc.get_ids().len(), 256);
    assert_eq!(m.embed(&[&long]).unwrap()[0].len(), 384);
}

/// aisle's CPU encoder against candle's `BertModel` on the same weights, beyond MiniLM's own
/// configuration: every pooling mode, the other activations, weights stored under `bert.`,
/// and batches of mixed lengths (packed rows against padded ones).
#[test]
fn the_cpu_encoder_matches_candles_bert_model_in_every_configuration() {
    let base = crate::harness::temp_dir("encoder-variants");
    let texts = [
        "a",
        "wireless noise cancelling headphones",
        "Laptop under $1,000 with 16GB RAM and a 512GB SSD (SKU LP-2024-XJ9)",
        "Kopfhörer mit aktiver Geräuschunterdrückung",
        &"very long product description that goes on and on ".repeat(30),
    ];
    let pooling = |mode: &str| {
        let modes = ["cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens"];
        let fields: Vec<String> = modes.iter().map(|m| format!("\"pooling_mode_{m}\": {}", *m == mode)).collect();
        format!("{{\"word_embedding_dimension\": 384, {}}}", fields.join(", "))
    };
    type Change = Box<dyn Fn(&std::path::Path)>;
    let variants: Vec<(&str, Change)> = vec![
        ("mean", Box::new(|_| {})),
        ("cls", Box::new(move |d| std::fs::write(d.join("1_Pooling/config.json"), pooling("cls_token")).unwrap())),
        ("max", Box::new(move |d| std::fs::write(d.join("1_Pooling/config.json"), pooling("max_tokens")).unwrap())),
        (
            "mean_sqrt_len",
            Box::new(move |d| {
                std::fs::write(d.join("1_Pooling/config.json"), pooling("mean_sqrt_len_tokens")).unwrap()
            }),
        ),
        ("gelu_approximate", Box::new(|d| set_config(d, "hidden_act", "geluapproximate"))),
        ("relu", Box::new(|d| set_config(d, "hidden_act", "relu"))),
        ("prefixed", Box::new(prefix_weights)),
    ];
    for (name, change) in variants {
        let dir = base.join(name);
        copy_model(&dir);
        change(&dir);
        let ours = EmbeddingModel::load(&dir, &candle_core::Device::Cpu).unwrap();
        let theirs = EmbeddingModel::load_reference(&dir, &candle_core::Device::Cpu).unwrap();
        let alone: Vec<Vec<f32>> = texts.iter().map(|t| ours.embed(&[t]).unwrap().remove(0)).collect();
        let batched = ours.embed(&texts).unwrap();
        let reference = theirs.embed(&texts).unwrap();
        for (i, text) in texts.iter().enumerate() {
            let c = cosine(&batched[i], &reference[i]);
            assert!(c >= 0.99999, "{name}: cosine {c} against candle for {text:?}");
            let diff = batched[i].iter().zip(&reference[i]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(diff < 1e-4, "{name}: largest difference {diff} against candle for {text:?}");
            let same = cosine(&alone[i], &batched[i]);
            assert!(same >= 0.999999, "{name}: alone and in a packed batch differ ({same}) for {text:?}");
        }
    }
}

fn set_config(dir: &std::path::Path, key: &str, value: &str) {
    let path = dir.join("config.json");
    let mut config: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    config[key] = Value::String(value.into());
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
}

/// Rewrite the weights with every name under `bert.`, as some checkpoints store them.
fn prefix_weights(dir: &std::path::Path) {
    let path = dir.join("model.safetensors");
    let tensors = candle_core::safetensors::load(&path, &candle_core::Device::Cpu).unwrap();
    let renamed: std::collections::HashMap<String, candle_core::Tensor> =
        tensors.into_iter().map(|(k, v)| (format!("bert.{k}"), v)).collect();
    candle_core::safetensors::save(&renamed, &path).unwrap();
}

fn copy_model(to: &std::path::Path) {
    let from = models_dir().join("all-MiniLM-L6-v2");
    for entry in walk(&from) {
        let rel = entry.strip_prefix(&from).unwrap();
        let dest = to.join(rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&entry, &dest).unwrap();
    }
}

fn walk(d: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

fn load_err(dir: &std::path::Path) -> String {
    match EmbeddingModel::load(dir, &candle_core::Device::Cpu) {
        Ok(_) => panic!("loading {} should fail", dir.display()),
        Err(e) => {
            assert!(matches!(e, aisle::Error::Model(_)), "{e:?}");
            e.to_string()
        }
    }
}

#[test]
fn corrupt_or_missing_model_files_are_clear_errors() {
    let base = crate::harness::temp_dir("corrupt-model");

    let d = base.join("truncated");
    copy_model(&d);
    let w = d.join("model.safetensors");
    let bytes = std::fs::read(&w).unwrap();
    std::fs::write(&w, &bytes[..bytes.len() / 2]).unwrap();
    assert!(load_err(&d).contains("model.safetensors"));

    let d = base.join("garbage-weights");
    copy_model(&d);
    std::fs::write(d.join("model.safetensors"), b"this is not a safetensors file").unwrap();
    assert!(load_err(&d).contains("model.safetensors"));

    let d = base.join("bad-tokenizer");
    copy_model(&d);
    std::fs::write(d.join("tokenizer.json"), b"{\"not\": \"a tokenizer\"").unwrap();
    assert!(load_err(&d).contains("tokenizer.json"));

    let d = base.join("bad-config");
    copy_model(&d);
    std::fs::write(d.join("config.json"), b"{\"model_type\": \"bert\", \"hidden_size\": \"big\"}").unwrap();
    assert!(load_err(&d).contains("config.json"));

    let d = base.join("wrong-arch");
    copy_model(&d);
    let cfg = std::fs::read_to_string(d.join("config.json")).unwrap().replace("\"bert\"", "\"gpt2\"");
    std::fs::write(d.join("config.json"), cfg).unwrap();
    assert!(load_err(&d).contains("gpt2"));

    let d = base.join("shape-mismatch");
    copy_model(&d);
    let cfg =
        std::fs::read_to_string(d.join("config.json")).unwrap().replace("\"hidden_size\": 384", "\"hidden_size\": 768");
    std::fs::write(d.join("config.json"), cfg).unwrap();
    assert!(load_err(&d).contains("model.safetensors"));

    assert!(load_err(&base.join("does-not-exist")).contains("does not exist"));
}

#[test]
fn server_with_a_corrupt_model_exits_with_a_message_not_a_panic() {
    let models = crate::harness::temp_dir("corrupt-serve");
    copy_model(&models.join("all-MiniLM-L6-v2"));
    std::fs::write(models.join("all-MiniLM-L6-v2/model.safetensors"), b"garbage").unwrap();
    let data = crate::harness::temp_dir("corrupt-serve-data");
    let out = crate::harness::aisle()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .arg("--models-dir")
        .arg(&models)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("model.safetensors"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
