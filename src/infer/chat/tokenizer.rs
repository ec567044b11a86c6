//! Chat-model tokenizers: `tokenizer.json` beside the GGUF file when present, else built from
//! the GGUF metadata so that token ids equal llama.cpp's.
//!
//! Byte-level BPE (`tokenizer.ggml.model = gpt2`) is rebuilt from the vocabulary and merges with
//! the pre-tokenizer `tokenizer.ggml.pre` names (SmolLM2's `smollm` isolates every digit; Qwen2's
//! regex differs from GPT-2's), no normalizer, and control tokens split out before BPE. Byte
//! symbols missing from a vocabulary get ids past its end so that they block merges exactly as
//! in llama.cpp, and are dropped from the output like llama.cpp drops them.

use std::collections::HashSet;
use std::path::Path;

use candle_core::quantized::gguf_file;
use tokenizers::models::bpe::{BPE, Merges, Vocab};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer};

use crate::error::{Error, Result};

const RE_GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
const RE_QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const RE_LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// llama.cpp runs the GPT-2 and Llama-3 expressions with hand-written splitters that treat an
/// unassigned code point as a piece of its own; this makes the regex do the same.
fn unassigned_apart(re: &str) -> String {
    format!("{}|\\p{{Cn}}", re.replace(r"[^\s\p{L}\p{N}]", r"[^\s\p{L}\p{N}\p{Cn}]"))
}

/// The pre-tokenizer regexes, whether merges are skipped for whole-vocab pieces, and the
/// default of add_bos, for a `tokenizer.ggml.pre` value.
fn pre_tokenizer(pre: &str) -> Result<(Vec<String>, bool, bool)> {
    Ok(match pre {
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva-7b" | "mellum" => {
            (vec![r"\p{N}".to_string(), unassigned_apart(RE_GPT2)], false, false)
        }
        "gpt-2" | "gpt2" | "phi-2" | "jina-es" | "jina-de" | "mpt" | "olmo" | "jais" | "trillion"
        | "granite-docling" => (vec![unassigned_apart(RE_GPT2)], false, false),
        "qwen2" | "deepseek-r1-qwen" | "stablelm2" | "megrez" | "hunyuan" => (vec![RE_QWEN2.to_string()], false, false),
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "pixtral" => (vec![unassigned_apart(RE_LLAMA3)], true, true),
        other => {
            return Err(Error::Model(format!(
                "tokenizer.ggml.pre '{other}' is not supported; put the model's tokenizer.json beside the GGUF file"
            )));
        }
    })
}

/// A tokenizer with the facts generation needs.
pub struct ChatTokenizer {
    inner: Tokenizer,
    vocab: usize,
    bos: Option<u32>,
    eog: HashSet<u32>,
    token_bytes: Vec<Vec<u8>>,
    special_texts: Vec<String>,
}

fn md_array<'a>(ct: &'a gguf_file::Content, key: &str) -> Result<&'a Vec<gguf_file::Value>> {
    ct.metadata
        .get(key)
        .ok_or_else(|| Error::Model(format!("GGUF metadata has no '{key}'")))?
        .to_vec()
        .map_err(|e| Error::Model(format!("GGUF '{key}': {e}")))
}

fn md_str(ct: &gguf_file::Content, key: &str) -> Option<String> {
    ct.metadata.get(key).and_then(|v| v.to_string().ok()).cloned()
}

fn md_id(ct: &gguf_file::Content, key: &str) -> Option<u32> {
    ct.metadata.get(key).and_then(|v| v.to_u32().ok())
}

fn md_bool(ct: &gguf_file::Content, key: &str) -> Option<bool> {
    ct.metadata.get(key).and_then(|v| v.to_bool().ok())
}

/// GPT-2's byte-to-character table, inverted: the byte each byte-level character stands for.
fn byte_level_decoder() -> std::collections::HashMap<char, u8> {
    let mut bytes: Vec<u32> = (b'!' as u32..=b'~' as u32).chain(0xA1..=0xAC).chain(0xAE..=0xFF).collect();
    let mut chars = bytes.clone();
    let mut n = 0;
    for b in 0..=255u32 {
        if !bytes.contains(&b) {
            bytes.push(b);
            chars.push(256 + n);
            n += 1;
        }
    }
    bytes.into_iter().zip(chars).map(|(b, c)| (char::from_u32(c).expect("valid char"), b as u8)).collect()
}

impl ChatTokenizer {
    /// The tokenizer of a GGUF model: `tokenizer.json` in `dir` if it exists, else from metadata.
    pub fn load(ct: &gguf_file::Content, dir: Option<&Path>) -> Result<Self> {
        let tokens: Vec<String> = md_array(ct, "tokenizer.ggml.tokens")?
            .iter()
            .map(|v| v.to_string().cloned().map_err(|e| Error::Model(format!("tokenizer.ggml.tokens: {e}"))))
            .collect::<Result<_>>()?;
        let types: Vec<i32> = match ct.metadata.get("tokenizer.ggml.token_type") {
            Some(v) => v
                .to_vec()
                .map_err(|e| Error::Model(format!("tokenizer.ggml.token_type: {e}")))?
                .iter()
                .map(|t| t.to_i32().unwrap_or(1))
                .collect(),
            None => vec![1; tokens.len()],
        };
        if types.len() != tokens.len() {
            return Err(Error::Model("tokenizer.ggml.token_type and tokenizer.ggml.tokens differ in length".into()));
        }
        let model = md_str(ct, "tokenizer.ggml.model").unwrap_or_default();
        let beside = dir.map(|d| d.join("tokenizer.json")).filter(|p| p.exists());
        let (inner, default_bos) = match beside {
            Some(path) => {
                let t = Tokenizer::from_file(&path)
                    .map_err(|e| Error::Model(format!("cannot load {}: {e}", path.display())))?;
                (t, false)
            }
            None if model == "gpt2" => build_bpe(ct, &tokens, &types)?,
            None => {
                return Err(Error::Model(format!(
                    "tokenizer model '{model}' cannot be rebuilt from GGUF metadata; put the model's tokenizer.json beside the GGUF file"
                )));
            }
        };
        let add_bos = md_bool(ct, "tokenizer.ggml.add_bos_token").unwrap_or(default_bos);
        let bos = md_id(ct, "tokenizer.ggml.bos_token_id").filter(|_| add_bos);
        // End of generation: EOS, EOT, and control tokens llama.cpp treats as such.
        let mut eog: HashSet<u32> =
            ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"]
                .iter()
                .filter_map(|k| md_id(ct, k))
                .collect();
        for (i, t) in tokens.iter().enumerate() {
            let control = types[i] == 3;
            if control
                && matches!(
                    t.as_str(),
                    "<|eot_id|>"
                        | "<|im_end|>"
                        | "<|end|>"
                        | "<end_of_turn>"
                        | "<|endoftext|>"
                        | "<|eom_id|>"
                        | "<EOT>"
                        | "<|fim_pad|>"
                        | "<|repo_name|>"
                        | "<|file_sep|>"
                        | "<reponame>"
                )
            {
                eog.insert(i as u32);
            }
        }
        let byte_of = byte_level_decoder();
        let token_bytes: Vec<Vec<u8>> = tokens
            .iter()
            .zip(&types)
            .map(|(t, ty)| match ty {
                // Control, unused and unknown tokens are never shown.
                2 | 3 | 5 => Vec::new(),
                _ if model == "gpt2" => t.chars().map(|c| byte_of.get(&c).copied().unwrap_or(b'?')).collect(),
                _ => spm_bytes(t),
            })
            .collect();
        let special_texts = tokens.iter().zip(&types).filter(|(_, ty)| **ty == 3).map(|(t, _)| t.clone()).collect();
        let mut inner = inner;
        if let Some(b) = bos {
            let text = tokens
                .get(b as usize)
                .cloned()
                .ok_or_else(|| Error::Model(format!("BOS id {b} is out of the vocabulary")))?;
            let tp = TemplateProcessing::builder()
                .try_single(format!("{text} $A"))
                .map_err(|e| Error::Model(format!("BOS template: {e}")))?
                .special_tokens(vec![(text, b)])
                .build()
                .map_err(|e| Error::Model(format!("BOS template: {e}")))?;
            inner.with_post_processor(Some(tp));
        }
        Ok(Self { inner, vocab: tokens.len(), bos, eog, token_bytes, special_texts })
    }

    /// The tokenizer of the GGUF file at `path` (metadata only: the weights are not read).
    pub fn open(path: &Path) -> Result<Self> {
        super::gguf::check_file(path)?;
        let mut file =
            std::fs::File::open(path).map_err(|e| Error::Model(format!("cannot open {}: {e}", path.display())))?;
        let ct = gguf_file::Content::read(&mut file).map_err(|e| Error::Model(format!("{}: {e}", path.display())))?;
        Self::load(&ct, path.parent())
    }

    /// Token ids of `text`. `add_special` adds BOS where the model wants it; `parse_special`
    /// turns control-token texts (e.g. `<|im_start|>`) into their ids.
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Result<Vec<u32>> {
        let enc = if parse_special {
            self.inner.encode(text, add_special)
        } else {
            let mut t = self.inner.clone();
            t.set_encode_special_tokens(true);
            t.encode(text, add_special)
        };
        let enc = enc.map_err(|e| Error::Inference(format!("tokenization failed: {e}")))?;
        Ok(enc.get_ids().iter().copied().filter(|&i| (i as usize) < self.vocab).collect())
    }

    /// Vocabulary size.
    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// The BOS id added at the start of a prompt, if the model wants one.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// Whether `id` ends generation.
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.contains(&id)
    }

    /// The end-of-generation token ids.
    pub fn eog(&self) -> impl Iterator<Item = u32> + '_ {
        self.eog.iter().copied()
    }

    /// The bytes a token stands for in generated text (empty for control tokens).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.token_bytes.get(id as usize).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Texts of control tokens (to keep them out of user-supplied text).
    pub fn special_texts(&self) -> &[String] {
        &self.special_texts
    }

    /// Text of a token sequence (control tokens left out).
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids.iter().flat_map(|&i| self.token_bytes(i).iter().copied()).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Bytes of a SentencePiece token: `▁` is a space, `<0xAB>` is the byte 0xAB.
fn spm_bytes(t: &str) -> Vec<u8> {
    if t.len() == 6
        && t.starts_with("<0x")
        && t.ends_with('>')
        && let Ok(b) = u8::from_str_radix(&t[3..5], 16)
    {
        return vec![b];
    }
    t.replace('\u{2581}', " ").into_bytes()
}

fn build_bpe(ct: &gguf_file::Content, tokens: &[String], types: &[i32]) -> Result<(Tokenizer, bool)> {
    let pre = md_str(ct, "tokenizer.ggml.pre").unwrap_or_else(|| "default".into());
    let (regexes, ignore_merges, default_bos) = pre_tokenizer(&pre)?;
    let n = tokens.len() as u32;
    let mut vocab: Vocab = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
    let mut alphabet: Vec<char> = ByteLevel::alphabet().into_iter().collect();
    alphabet.sort();
    let mut next = n;
    for c in alphabet {
        let s = c.to_string();
        if !vocab.contains_key(&s) {
            vocab.insert(s, next);
            next += 1;
        }
    }
    let merges: Merges = md_array(ct, "tokenizer.ggml.merges")?
        .iter()
        .filter_map(|m| {
            let m = m.to_string().ok()?;
            let split = m.char_indices().skip(1).find(|&(_, c)| c == ' ')?.0;
            Some((m[..split].to_string(), m[split + 1..].to_string()))
        })
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .byte_fallback(false)
        .ignore_merges(ignore_merges)
        .build()
        .map_err(|e| Error::Model(format!("cannot build the BPE tokenizer: {e}")))?;
    let mut tok = Tokenizer::new(bpe);
    let mut steps: Vec<PreTokenizerWrapper> = Vec::new();
    for r in &regexes {
        let split = Split::new(SplitPattern::Regex(r.clone()), SplitDelimiterBehavior::Isolated, false)
            .map_err(|e| Error::Model(format!("pre-tokenizer regex: {e}")))?;
        steps.push(split.into());
    }
    steps.push(ByteLevel::new(false, false, false).into());
    tok.with_pre_tokenizer(Some(Sequence::new(steps)));
    tok.with_decoder(Some(ByteLevel::default()));
    let special: Vec<AddedToken> = tokens
        .iter()
        .zip(types)
        .filter(|(_, ty)| matches!(**ty, 2 | 3))
        .map(|(t, _)| AddedToken::from(t.clone(), true))
        .collect();
    let user: Vec<AddedToken> = tokens
        .iter()
        .zip(types)
        .filter(|(_, ty)| **ty == 4)
        .map(|(t, _)| AddedToken::from(t.clone(), false).normalized(false))
        .collect();
    tok.add_special_tokens(special).map_err(|e| Error::Model(format!("special tokens: {e}")))?;
    tok.add_tokens(user).map_err(|e| Error::Model(format!("user-defined tokens: {e}")))?;
    Ok((tok, default_bos))
}
