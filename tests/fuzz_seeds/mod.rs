//! Small valid inputs for every fuzz target, built here so the checked-in seeds under
//! `fuzz/seeds/` can be regenerated (`write_seeds` in `tests/fuzz_regressions.rs`). Each seed is
//! checked to load before it is written: a seed that fails at the first byte teaches the fuzzer
//! nothing.

#[path = "../hostile/gguf.rs"]
mod gguf_writer;

use std::collections::BTreeMap;
use std::path::Path;

use image::{ImageFormat, Rgb, RgbImage};
use whet::fuzzing;
use whet::train::checkpoint::TrainState;

type Seed = (&'static str, &'static str, Vec<u8>);

/// Every seed as (target, file name, bytes), each checked against its entry point.
pub fn all() -> Vec<Seed> {
    let mut out = Vec::new();
    out.extend(safetensors());
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    out.push(("pth_zip", "tiny_zip.pth", std::fs::read(data.join("tiny_zip.pth")).unwrap()));
    out.push(("pth_legacy", "tiny_legacy.pth", std::fs::read(data.join("tiny_legacy.pth")).unwrap()));
    out.push(("gguf", "llama_with_tokenizer.gguf", gguf()));
    out.extend(tables());
    out.extend(tokenizers());
    out.push(("checkpoint_manifest", "step1.ckpt", checkpoint()));
    out.extend(images());
    for (target, name, bytes) in &out {
        let r = (fuzzing::entry(target).unwrap())(bytes);
        assert!(r.is_ok(), "seed {target}/{name} does not load: {}", r.err().unwrap());
    }
    out
}

/// The tiny GPT-2 the target binds to, as a scratch model's parameters.
fn safetensors() -> Vec<Seed> {
    let Some(engine) = fuzzing::engine() else { return Vec::new() };
    let m = whet::models::gpt2::Gpt2::scratch(engine, fuzzing::tiny_gpt2_config(), 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("gpt2.safetensors");
    whet::train::checkpoint::save_params(&m.params, &p).unwrap();
    vec![("safetensors", "tiny_gpt2.safetensors", std::fs::read(&p).unwrap())]
}

/// A llama GGUF with one block and a byte-level BPE tokenizer of a few tokens.
fn gguf() -> Vec<u8> {
    let mut g = gguf_writer::Gguf::new();
    g.str("general.architecture", "llama")
        .u32("llama.attention.head_count", 2)
        .u32("llama.attention.head_count_kv", 1)
        .u32("llama.embedding_length", 4)
        .u32("llama.block_count", 1)
        .u32("llama.feed_forward_length", 8)
        .u32("llama.context_length", 16)
        .f32("llama.attention.layer_norm_rms_epsilon", 1e-5)
        .f32("llama.rope.freq_base", 10000.0)
        .str("tokenizer.ggml.model", "gpt2")
        .str("tokenizer.ggml.pre", "smollm");
    let tokens = ["<|endoftext|>", "H", "e", "l", "o", "Ġ", "w", "r", "d", "1", "2", "3", "He", "ll"];
    g.kv("tokenizer.ggml.tokens", 9, &str_array(&tokens));
    g.kv("tokenizer.ggml.merges", 9, &str_array(&["H e", "l l"]));
    let mut types = 5u32.to_le_bytes().to_vec();
    types.extend((tokens.len() as u64).to_le_bytes());
    (0..tokens.len()).for_each(|i| types.extend((if i == 0 { 3i32 } else { 1 }).to_le_bytes()));
    g.kv("tokenizer.ggml.token_type", 9, &types).u32("tokenizer.ggml.eos_token_id", 0);
    g.f32_tensor("token_embd.weight", &[4, 14]).f32_tensor("output_norm.weight", &[4]);
    for (name, dims) in [
        ("attn_q", [4u64, 4]),
        ("attn_k", [4, 2]),
        ("attn_v", [4, 2]),
        ("attn_output", [4, 4]),
        ("ffn_gate", [4, 8]),
        ("ffn_up", [4, 8]),
        ("ffn_down", [8, 4]),
    ] {
        g.f32_tensor(&format!("blk.0.{name}.weight"), &dims);
    }
    g.f32_tensor("blk.0.attn_norm.weight", &[4]).f32_tensor("blk.0.ffn_norm.weight", &[4]);
    g.build()
}

fn str_array(items: &[&str]) -> Vec<u8> {
    let mut v = 8u32.to_le_bytes().to_vec();
    v.extend((items.len() as u64).to_le_bytes());
    for s in items {
        v.extend((s.len() as u64).to_le_bytes());
        v.extend(s.as_bytes());
    }
    v
}

/// The first byte picks the format: '0' CSV, '1' TSV, '2' JSON Lines.
fn tables() -> Vec<Seed> {
    vec![
        ("tables", "quoted.csv", b"0text,label\n\"hello, \"\"world\"\"\",pos\r\nbye,neg\n\n\"multi\nline\",pos\n".to_vec()),
        ("tables", "plain.tsv", "1label\ttext\nneg\tcaf\u{e9} \"quoted\"\npos\tok\n".as_bytes().to_vec()),
        (
            "tables",
            "rows.jsonl",
            b"2{\"text\": \"a\", \"label\": \"x\"}\n\n{\"text\": \"b\", \"label\": 1}\r\n{\"text\": \"c\", \"label\": \"y\"}\n".to_vec(),
        ),
    ]
}

/// A BERT-style WordPiece and a byte-level BPE `tokenizer.json`, each with text after a NUL.
fn tokenizers() -> Vec<Seed> {
    let wordpiece = r###"{"version":"1.0","truncation":null,"padding":null,
"added_tokens":[{"id":0,"content":"[PAD]","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true},
{"id":1,"content":"[UNK]","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true},
{"id":2,"content":"[CLS]","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true},
{"id":3,"content":"[SEP]","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}],
"normalizer":{"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":true,"strip_accents":null,"lowercase":true},
"pre_tokenizer":{"type":"BertPreTokenizer"},
"post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"[CLS]","type_id":0}},{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"[SEP]","type_id":0}}],
"pair":[{"SpecialToken":{"id":"[CLS]","type_id":0}},{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"[SEP]","type_id":0}},{"Sequence":{"id":"B","type_id":1}},{"SpecialToken":{"id":"[SEP]","type_id":1}}],
"special_tokens":{"[CLS]":{"id":"[CLS]","ids":[2],"tokens":["[CLS]"]},"[SEP]":{"id":"[SEP]","ids":[3],"tokens":["[SEP]"]}}},
"decoder":{"type":"WordPiece","prefix":"##","cleanup":true},
"model":{"type":"WordPiece","unk_token":"[UNK]","continuing_subword_prefix":"##","max_input_chars_per_word":100,
"vocab":{"[PAD]":0,"[UNK]":1,"[CLS]":2,"[SEP]":3,"hello":4,"world":5,",":6,"!":7,"1":8,"##2":9,"##3":10}}}"###;
    let bpe = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[
{"id":0,"content":"<|endoftext|>","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}],
"normalizer":null,"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true},
"post_processor":null,"decoder":{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true},
"model":{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,"end_of_word_suffix":null,"fuse_unk":false,"byte_fallback":false,
"vocab":{"<|endoftext|>":0,"H":1,"e":2,"l":3,"o":4,"\u0120":5,"w":6,"r":7,"d":8,"He":9,"ll":10,"llo":11},"merges":["H e","l l","ll o"]}}"#;
    let with_text = |json: &str, text: &str| [json.as_bytes(), b"\0", text.as_bytes()].concat();
    vec![
        ("tokenizer", "wordpiece.json", with_text(wordpiece, "Hello, world! 123 caf\u{e9}")),
        ("tokenizer", "bpe.json", with_text(bpe, "Hello world\u{1F600}")),
    ]
}

/// One checkpoint: a parameter, its two AdamW moments, the loop state, and a manifest whose
/// checksums are 0 (the entry point fills them in).
fn checkpoint() -> Vec<u8> {
    let f32s = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let w = f32s(&[1.0, -2.0]);
    fn view(b: &[u8]) -> safetensors::tensor::TensorView<'_> {
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2], b).unwrap()
    }
    let params = safetensors::serialize([("w", view(&w))], None).unwrap();
    let meta: std::collections::HashMap<String, String> =
        [("step", "1"), ("born", r#"{"w":0}"#), ("moments", r#"{"w":2}"#), ("names", "exp_avg,exp_avg_sq")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    let optim =
        safetensors::serialize([("w.exp_avg", view(&w)), ("w.exp_avg_sq", view(&w))], Some(meta)).unwrap();
    let state = TrainState {
        step: 1,
        epoch: 0,
        cursor: 1,
        attempts: 1,
        train_len: 4,
        accum_pos: 0,
        best: None,
        since_best: 0,
        bad_steps: 0,
        skipped_steps: 0,
        skipped_items: Vec::new(),
        train_secs: 0.5,
        last_metrics: Some(BTreeMap::from([("loss".to_string(), Some(0.25))])),
        config_digest: "seed".into(),
        ranks: 1,
        loss_scale: None,
    };
    let state = serde_json::to_vec(&state).unwrap();
    let zero = serde_json::json!({"size": 0, "crc32": 0});
    let manifest = serde_json::json!({"step": 1, "dir": "", "files": {
        "state.json": zero, "params.safetensors": zero, "optim.safetensors": zero}});
    let parts = [serde_json::to_vec(&manifest).unwrap(), state, params, optim];
    parts.join(fuzzing::PART_SEPARATOR)
}

/// A 6×5 picture in every format the decoder takes.
fn images() -> Vec<Seed> {
    let img = RgbImage::from_fn(6, 5, |x, y| Rgb([(x * 40) as u8, (y * 50) as u8, 128]));
    [
        ("small.png", ImageFormat::Png),
        ("small.jpg", ImageFormat::Jpeg),
        ("small.bmp", ImageFormat::Bmp),
        ("small.gif", ImageFormat::Gif),
        ("small.webp", ImageFormat::WebP),
    ]
    .into_iter()
    .map(|(name, f)| {
        let mut v = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut v), f).unwrap();
        ("image_prescan", name, v)
    })
    .collect()
}
