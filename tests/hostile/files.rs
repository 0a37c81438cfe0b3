//! One function per crafted file. Sizes are near 64 MiB where the danger is in proportion to
//! size (floods, quadratic scans, per-element overheads); small where a few bytes describe
//! something enormous.

use std::path::Path;

use image::RgbImage;
use whet::data::image::{decode, eval_transform, ImageLimits, ImageSpec};
use whet::data::table::{TableFormat, TableOptions, TextTable};
use whet::data::tokenize::TextTokenizer;
use whet::weights::gguf::GgufFile;
use whet::weights::gguf_llama::GgufLlama;
use whet::weights::safetensors::SafeTensorsFile;
use whet::weights::torch::TorchFile;
use whet::weights::WeightSource;

use super::gguf::Gguf;
use super::pickle::{legacy, legacy_head, Pickle};
use super::{refused, Outcome};

/// The size the bound is promised for.
const BIG: usize = 64 << 20;

/// A crafted file: it builds its input, reads it, and checks the outcome.
pub type Case = fn() -> Outcome;

pub const CASES: &[(&str, Case)] = &[
    ("pickle_billion_laughs", pickle_billion_laughs),
    ("pickle_deep_tuples", pickle_deep_tuples),
    ("pickle_mark_flood", pickle_mark_flood),
    ("pickle_memo_flood", pickle_memo_flood),
    ("pickle_empty_lists", pickle_empty_lists),
    ("pickle_dict_many_keys", pickle_dict_many_keys),
    ("pickle_persistent_id_copies", pickle_persistent_id_copies),
    ("pickle_cycle", pickle_cycle),
    ("torch_expanded_view", torch_expanded_view),
    ("gguf_u8_array", gguf_u8_array),
    ("gguf_array_count_lie", gguf_array_count_lie),
    ("gguf_many_keys", gguf_many_keys),
    ("gguf_llama_1d_embedding", gguf_llama_1d_embedding),
    ("safetensors_long_shape", safetensors_long_shape),
    ("csv_wide_header", csv_wide_header),
    ("csv_quoted_fields", csv_quoted_fields),
    ("csv_many_labels", csv_many_labels),
    ("image_16384x1", image_16384x1),
    ("image_strip_resize", image_strip_resize),
    ("tokenizer_huge_vocab", tokenizer_huge_vocab),
];

fn torch(name: &str, object: &[u8], storages: &[(&str, u32)]) -> whet::Result<TorchFile> {
    TorchFile::from_vec(name, legacy(object, storages))
}

/// Ten keys per level, each the same shared dict one level down, nine levels over a tensor under
/// a 1 MiB key: 10⁹ names of over a megabyte if the tree were copied out.
fn pickle_billion_laughs() -> Outcome {
    let mut p = Pickle::new();
    p.op(b"}(").str(&"k".repeat(1 << 20)).tensor("0", 1, &[1], &[1]).op(b"uq\x00");
    for level in 1..10u8 {
        p.op(b"}(");
        for k in 0..10 {
            p.str(&format!("{k}")).op(&[b'h', level - 1]);
        }
        p.op(&[b'u', b'q', level]);
    }
    let r = torch("laughs.pth", &p.finish(), &[("0", 1)]);
    refused(r, "laughs.pth", "flattened names take more memory than the pickle's size allows")
}

/// 64 MiB of TUPLE1 over one empty tuple: a tuple 64 million deep if unchecked.
fn pickle_deep_tuples() -> Outcome {
    let mut p = Pickle::new();
    p.op(b")").op(&vec![0x85; BIG]);
    refused(torch("deep.pth", &p.finish(), &[]), "deep.pth", "nested deeper than 64")
}

/// 64 MiB of MARK: eight bytes of mark stack each, then the file ends.
fn pickle_mark_flood() -> Outcome {
    let mut p = Pickle::new();
    p.op(&vec![b'('; BIG]);
    let mut bytes = legacy_head();
    bytes.extend(&p.0);
    refused(TorchFile::from_vec("marks.pth", bytes), "marks.pth", "truncated")
}

/// One value memoized 64 million times (MEMOIZE is one byte; an entry is ~70).
fn pickle_memo_flood() -> Outcome {
    let mut p = Pickle::new();
    p.op(b"N").op(&vec![0x94; BIG]);
    refused(torch("memo.pth", &p.finish(), &[]), "memo.pth", "more objects than its size allows")
}

/// 64 million empty lists (one byte each; a list is over 100 bytes of heap and stack).
fn pickle_empty_lists() -> Outcome {
    let mut p = Pickle::new();
    p.op(&vec![b']'; BIG]);
    refused(torch("lists.pth", &p.finish(), &[]), "lists.pth", "more objects than its size allows")
}

/// A dict of three million distinct int keys, in batches of 1000 as Python writes them: a
/// duplicate check by scanning would be 4.5·10¹² comparisons.
fn pickle_dict_many_keys() -> Outcome {
    let mut p = Pickle::new();
    p.op(b"}");
    for batch in 0..3_000u32 {
        p.op(b"(");
        for i in 0..1000 {
            p.int(batch * 1000 + i).op(b"N");
        }
        p.op(b"u");
    }
    refused(torch("keys.pth", &p.finish(), &[]), "keys.pth", "no tensors in the checkpoint")
}

/// A persistent id with a 1 MiB storage key, memoized and loaded a million times.
fn pickle_persistent_id_copies() -> Outcome {
    let mut p = Pickle::new();
    p.storage_pid(&"s".repeat(1 << 20), 1).op(b"q\x00");
    for _ in 0..1_000_000 {
        p.op(b"h\x00Q0");
    }
    refused(torch("pids.pth", &p.finish(), &[]), "pids.pth", "more objects than its size allows")
}

/// A list appended to itself.
fn pickle_cycle() -> Outcome {
    let mut p = Pickle::new();
    p.op(b"]q\x00h\x00a");
    refused(torch("cycle.pth", &p.finish(), &[]), "cycle.pth", "appended to itself")
}

/// A stride-0 view of a billion elements over a one-element storage (4 GB on read).
fn torch_expanded_view() -> Outcome {
    let mut p = Pickle::new();
    p.op(b"}(").str("w").tensor("0", 1, &[1_000_000_000], &[0]).op(b"u");
    refused(torch("expand.pth", &p.finish(), &[("0", 1)]), "expand.pth", "expanded views are not supported")
}

/// One u8 metadata array of 64 MiB (32 bytes an element as enum values: 2 GiB).
fn gguf_u8_array() -> Outcome {
    let mut arr = 0u32.to_le_bytes().to_vec();
    arr.extend((BIG as u64).to_le_bytes());
    arr.resize(arr.len() + BIG, 7);
    let g = GgufFile::from_vec("u8.gguf", Gguf::new().kv("big", 9, &arr).build()).unwrap();
    let n = g.get_array("big").unwrap().len();
    assert_eq!(n, BIG);
    Outcome::Loaded(format!("a u8 array of {n} elements"))
}

/// A string array claiming 2⁴⁰ elements in a few bytes.
fn gguf_array_count_lie() -> Outcome {
    let mut arr = 8u32.to_le_bytes().to_vec();
    arr.extend((1u64 << 40).to_le_bytes());
    arr.extend([0u8; 64]);
    let r = GgufFile::from_vec("lie.gguf", Gguf::new().kv("toks", 9, &arr).build());
    refused(r, "lie.gguf", "array of 1099511627776 elements is longer than the file")
}

/// Two million distinct metadata keys (a duplicate check by scanning: 2·10¹² comparisons).
fn gguf_many_keys() -> Outcome {
    let mut g = Gguf::new();
    for i in 0..2_000_000u32 {
        g.kv(&format!("k{i:08}"), 0, &[1]);
    }
    let f = GgufFile::from_vec("keys.gguf", g.build()).unwrap();
    assert_eq!(f.metadata().len(), 2_000_000);
    assert!(f.get("k01999999").is_some());
    Outcome::Loaded("2,000,000 metadata keys".into())
}

/// A llama GGUF whose embedding table is 1-D.
fn gguf_llama_1d_embedding() -> Outcome {
    let mut g = Gguf::new();
    g.str("general.architecture", "llama")
        .u32("llama.attention.head_count", 2)
        .u32("llama.embedding_length", 4)
        .u32("llama.block_count", 1)
        .u32("llama.feed_forward_length", 8)
        .u32("llama.context_length", 16)
        .f32("llama.attention.layer_norm_rms_epsilon", 1e-5)
        .f32_tensor("token_embd.weight", &[32])
        .f32_tensor("output_norm.weight", &[4]);
    let file = GgufFile::from_vec("flat.gguf", g.build()).unwrap();
    refused(
        GgufLlama::new(file),
        "flat.gguf",
        "'token_embd.weight' has 1 dimension(s) [32]; a llama model needs 2",
    )
}

/// A one-byte tensor whose shape lists 30 million ones (a JSON tree of them: ~1 GiB).
fn safetensors_long_shape() -> Outcome {
    let dims = 30_000_000;
    let mut header = String::with_capacity(2 * dims + 64);
    header.push_str(r#"{"a":{"dtype":"U8","data_offsets":[0,1],"shape":["#);
    header.push('1');
    (1..dims).for_each(|_| header.push_str(",1"));
    header.push_str("]}}");
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header.as_bytes());
    bytes.push(42);
    drop(header);
    let st = SafeTensorsFile::from_vec("shape.st", bytes).unwrap();
    let (v, shape) = st.read_f32("a").unwrap();
    assert_eq!((v, shape.len()), (vec![42.0], dims));
    Outcome::Loaded(format!("a tensor of rank {dims}"))
}

fn table_opts() -> TableOptions {
    TableOptions { format: Some(TableFormat::Csv), max_line_bytes: BIG, ..Default::default() }
}

/// A header of a million columns (a duplicate check by scanning: 5·10¹¹ comparisons).
fn csv_wide_header() -> Outcome {
    let n = 1_000_000;
    let mut csv = String::from("text,label");
    (0..n).for_each(|i| csv.push_str(&format!(",c{i}")));
    csv.push_str("\nhello,pos");
    (0..n).for_each(|_| csv.push_str(",x"));
    csv.push('\n');
    let t = TextTable::from_bytes(Path::new("wide.csv"), csv.as_bytes(), &table_opts()).unwrap();
    assert_eq!(t.items.len(), 1);
    Outcome::Loaded(format!("one row of {} columns", n + 2))
}

/// A record of a million quoted fields (line tracking by rescanning: 2·10¹² byte reads).
fn csv_quoted_fields() -> Outcome {
    let mut csv = String::from("text,label\n");
    (0..1_000_000).for_each(|_| csv.push_str("\"x\","));
    csv.push_str("\"y\"\n");
    let r = TextTable::from_bytes(Path::new("quoted.csv"), csv.as_bytes(), &table_opts());
    refused(r, "quoted.csv", "expected 2 fields as in the header, found 1000001")
}

/// Two million rows, each its own class (a label lookup by scanning: 2·10¹² comparisons).
fn csv_many_labels() -> Outcome {
    let n = 2_000_000;
    let mut csv = String::from("text,label\n");
    (0..n).for_each(|i| csv.push_str(&format!("t,L{i}\n")));
    let t = TextTable::from_bytes(Path::new("labels.csv"), csv.as_bytes(), &table_opts()).unwrap();
    assert_eq!((t.items.len(), t.labels.len()), (n, n));
    assert_eq!(t.labels.name(t.items[n - 1].label.unwrap()), Some(format!("L{}", n - 1).as_str()));
    Outcome::Loaded(format!("{n} rows of {n} classes"))
}

/// A 16384×1 PNG: within the width limit, but 4,194,304×256 after resizing the short side.
fn image_16384x1() -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("strip.png");
    RgbImage::new(16384, 1).save(&p).unwrap();
    let r = decode(&p, &ImageLimits::default());
    refused(r, &p.display().to_string(), "more elongated than the limit of 64:1")
}

/// The same strip handed straight to the transform: bounded by the resize's pixel cap.
fn image_strip_resize() -> Outcome {
    let v = eval_transform(&RgbImage::new(16384, 1), &ImageSpec::IMAGENET);
    assert_eq!(v.len(), 3 * 224 * 224);
    Outcome::Loaded("a 3×224×224 tensor".into())
}

/// A WordLevel tokenizer.json of four million tokens (~64 MiB).
fn tokenizer_huge_vocab() -> Outcome {
    let n = 4_000_000;
    let mut json = String::from(
        r#"{"version":"1.0","added_tokens":[],"normalizer":null,"pre_tokenizer":{"type":"Whitespace"},"post_processor":null,"decoder":null,"model":{"type":"WordLevel","unk_token":"t0","vocab":{"#,
    );
    for i in 0..n {
        if i > 0 {
            json.push(',');
        }
        json.push_str(&format!("\"t{i}\":{i}"));
    }
    json.push_str("}}}");
    let size = json.len();
    let tok = TextTokenizer::from_bytes(Path::new("vocab.json"), json.as_bytes()).unwrap();
    drop(json);
    assert_eq!(tok.vocab_size(), n);
    assert_eq!(tok.encode("t3999999 t7", false).unwrap(), [3_999_999, 7]);
    Outcome::Loaded(format!("{n} tokens from {} MiB", size >> 20))
}
