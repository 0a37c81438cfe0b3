//! Weight sources behind one trait: PyTorch zip and legacy state dicts (restricted unpickler),
//! GGUF (metadata, dequantisation, the HF Llama adapter), HF model directories (single,
//! sharded, pytorch_model.bin), and `weights::open` choosing by content. Small fixtures live in
//! tests/data (written by tools/make_torch_fixtures.py); real checkpoints come from `make assets`.

mod real_assets;

use std::path::Path;

use real_assets::{asset, data, fixture, scratch};
use whet::weights::gguf::{GgufFile, MetaArray, MetaValue};
use whet::weights::gguf_llama::{unpermute_rows, GgufLlama};
use whet::weights::hf_dir::HfDir;
use whet::weights::safetensors::SafeTensorsFile;
use whet::weights::torch::{TorchFile, TorchFormat};
use whet::weights::{open, WeightDType, WeightSource};

fn err_of<T>(r: whet::Result<T>) -> String {
    match r {
        Ok(_) => panic!("accepted a bad input"),
        Err(e) => e.to_string(),
    }
}

// ---------------------------------------------------------------- PyTorch

fn check_tiny(src: &dyn WeightSource) {
    let names: Vec<String> = src.tensors().into_iter().map(|t| t.name).collect();
    // The "state_dict" entry was chosen; "epoch" and "optimizer" are not tensors.
    assert_eq!(names, ["fc.weight", "fc.bias", "proj.weight", "half.weight", "bn.num_batches_tracked"]);
    let w: Vec<f32> = (0..12).map(|i| i as f32 * 0.5).collect();
    assert_eq!(src.read_f32("fc.weight").unwrap(), (w, vec![3, 4]));
    // Storage offset 5 into a shared storage of 10..18.
    assert_eq!(src.read_f32("fc.bias").unwrap(), (vec![15.0, 16.0, 17.0], vec![3]));
    // A transposed (non-contiguous) view of the same storage.
    assert_eq!(src.read_f32("proj.weight").unwrap(), (vec![10.0, 13.0, 11.0, 14.0, 12.0, 15.0], vec![3, 2]));
    assert_eq!(src.read_f32("half.weight").unwrap(), (vec![0.5, -1.5, 2.0], vec![3]));
    let t = src.tensors().into_iter().find(|t| t.name == "bn.num_batches_tracked").unwrap();
    assert_eq!((t.dtype, t.shape), (WeightDType::I64, vec![]));
    // Integer tensors convert exactly (the exporter copies them through; the binder refuses
    // them as weights by dtype before reading).
    assert_eq!(src.read_f32("bn.num_batches_tracked").unwrap(), (vec![7.0], vec![]));
    assert!(err_of(src.read_f32("nope")).contains("no tensor named 'nope'"));
}

#[test]
fn torch_zip_and_legacy_fixtures_read_the_same_state_dict() {
    let z = TorchFile::open(data("tiny_zip.pth")).unwrap();
    assert_eq!(z.format(), TorchFormat::Zip);
    check_tiny(&z);
    let l = TorchFile::open(data("tiny_legacy.pth")).unwrap();
    assert_eq!(l.format(), TorchFormat::Legacy);
    check_tiny(&l);
    // And through the one entry point, detected by content.
    check_tiny(open(data("tiny_zip.pth")).unwrap().as_ref());
    check_tiny(open(data("tiny_legacy.pth")).unwrap().as_ref());
}

#[test]
fn hostile_torch_files_are_refused_with_specific_errors() {
    for (file, expect) in [
        ("evil_os_system.pth", "unsupported pickle global os.system"),
        ("truncated_storage.pth", "storage '3' truncated"),
        (
            "offset_past_end.pth",
            "'fc.bias': view (offset 7, shape [3], stride [1]) reaches element 9 past the 8",
        ),
        ("short_zip_storage.pth", "storage '0': 48 bytes expected"),
    ] {
        let msg = err_of(open(data(file)));
        assert!(msg.contains(file) && msg.contains(expect), "{file}: {msg}");
    }
}

#[test]
fn damaged_torch_bytes_never_panic() {
    for file in ["tiny_legacy.pth", "tiny_zip.pth"] {
        let good = std::fs::read(data(file)).unwrap();
        // Every truncation is an error.
        for n in 0..good.len() {
            assert!(TorchFile::from_vec(file, good[..n].to_vec()).is_err(), "{file} cut at {n} accepted");
        }
        // Every single-byte corruption is an error or a file that still reads: never a panic.
        for i in 0..good.len() {
            let mut b = good.clone();
            b[i] ^= 0xa5;
            if let Ok(t) = TorchFile::from_vec(file, b) {
                for info in t.tensors() {
                    let _ = t.read_f32(&info.name);
                }
            }
        }
    }
}

#[test]
fn real_efficientnet_legacy_pth_loads() {
    let Some(p) = asset(real_assets::EFFICIENTNET_PTH) else { return };
    let src = open(&p).unwrap();
    let t = src.tensors();
    assert_eq!(t.len(), 296);
    let shape = |n: &str| t.iter().find(|t| t.name == n).unwrap_or_else(|| panic!("{n}")).shape.clone();
    assert_eq!(shape("_conv_stem.weight"), [32, 3, 3, 3]);
    assert_eq!(shape("_fc.weight"), [1000, 1280]);
    for info in t.iter().filter(|t| t.dtype == WeightDType::F32) {
        let (v, s) = src.read_f32(&info.name).unwrap();
        assert_eq!(v.len(), s.iter().product::<usize>());
        assert!(v.iter().all(|x| x.is_finite()), "{}", info.name);
    }
    let tf = TorchFile::open(&p).unwrap();
    assert_eq!(tf.format(), TorchFormat::Legacy);
}

// ---------------------------------------------------------------- GGUF

/// A minimal GGUF writer for synthetic files.
struct GgufWriter {
    kv: Vec<u8>,
    n_kv: u64,
    tensors: Vec<(String, Vec<u64>, u32, Vec<u8>)>,
    alignment: usize,
}

fn gstr(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

impl GgufWriter {
    fn new() -> Self {
        GgufWriter { kv: Vec::new(), n_kv: 0, tensors: Vec::new(), alignment: 32 }
    }
    /// `value` is the type id followed by its encoding.
    fn kv(&mut self, key: &str, ty: u32, value: &[u8]) -> &mut Self {
        gstr(&mut self.kv, key);
        self.kv.extend(ty.to_le_bytes());
        self.kv.extend(value);
        self.n_kv += 1;
        self
    }
    fn u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.kv(key, 4, &v.to_le_bytes())
    }
    fn f32(&mut self, key: &str, v: f32) -> &mut Self {
        self.kv(key, 6, &v.to_le_bytes())
    }
    fn str(&mut self, key: &str, v: &str) -> &mut Self {
        let mut b = Vec::new();
        gstr(&mut b, v);
        self.kv(key, 8, &b)
    }
    /// `dims` innermost-first, as GGUF stores them.
    fn tensor(&mut self, name: &str, dims: &[u64], ty: u32, bytes: Vec<u8>) -> &mut Self {
        self.tensors.push((name.into(), dims.to_vec(), ty, bytes));
        self
    }
    fn f32_tensor(&mut self, name: &str, dims: &[u64], v: &[f32]) -> &mut Self {
        self.tensor(name, dims, 0, v.iter().flat_map(|x| x.to_le_bytes()).collect())
    }
    fn build(&self) -> Vec<u8> {
        let a = self.alignment;
        let mut out = b"GGUF".to_vec();
        out.extend(3u32.to_le_bytes());
        out.extend((self.tensors.len() as u64).to_le_bytes());
        out.extend(self.n_kv.to_le_bytes());
        out.extend(&self.kv);
        let mut off = 0usize;
        for (name, dims, ty, bytes) in &self.tensors {
            gstr(&mut out, name);
            out.extend((dims.len() as u32).to_le_bytes());
            for d in dims {
                out.extend(d.to_le_bytes());
            }
            out.extend(ty.to_le_bytes());
            out.extend((off as u64).to_le_bytes());
            off += bytes.len().div_ceil(a) * a;
        }
        out.resize(out.len().div_ceil(a) * a, 0);
        for (_, _, _, bytes) in &self.tensors {
            let start = out.len();
            out.extend(bytes);
            out.resize(start + bytes.len().div_ceil(a) * a, 0);
        }
        out
    }
}

fn synthetic_gguf() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.alignment = 64;
    let mut tokens = 8u32.to_le_bytes().to_vec(); // array of strings
    tokens.extend(3u64.to_le_bytes());
    for t in ["<s>", "a", "b c"] {
        gstr(&mut tokens, t);
    }
    let mut types = 5u32.to_le_bytes().to_vec(); // array of i32
    types.extend(3u64.to_le_bytes());
    for t in [3i32, 1, -1] {
        types.extend(t.to_le_bytes());
    }
    let mut nested = 9u32.to_le_bytes().to_vec(); // array of arrays of u8
    nested.extend(1u64.to_le_bytes());
    nested.extend(0u32.to_le_bytes());
    nested.extend(2u64.to_le_bytes());
    nested.extend([7u8, 9]);
    w.u32("general.alignment", 64)
        .str("general.architecture", "test")
        .kv("k.u8", 0, &[200])
        .kv("k.i8", 1, &[0xff])
        .kv("k.u16", 2, &500u16.to_le_bytes())
        .kv("k.i16", 3, &(-500i16).to_le_bytes())
        .kv("k.i32", 5, &(-7i32).to_le_bytes())
        .f32("k.f32", 0.25)
        .kv("k.bool", 7, &[1])
        .kv("k.u64", 10, &(1u64 << 40).to_le_bytes())
        .kv("k.i64", 11, &(-3i64).to_le_bytes())
        .kv("k.f64", 12, &1.5f64.to_le_bytes())
        .kv("tokenizer.ggml.tokens", 9, &tokens)
        .kv("tokenizer.ggml.token_type", 9, &types)
        .kv("k.nested", 9, &nested);
    w.f32_tensor("m", &[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let mut q8 = half::f16::from_f32(0.5).to_le_bytes().to_vec();
    q8.extend((0..32).map(|i| i as u8));
    w.tensor("q", &[32, 1], 8, q8);
    let f16: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes()).collect();
    w.tensor("h", &[2], 1, f16);
    w.build()
}

#[test]
fn synthetic_gguf_metadata_shapes_and_values() {
    let g = GgufFile::from_vec("synthetic.gguf", synthetic_gguf()).unwrap();
    assert_eq!((g.version, g.alignment()), (3, 64));
    assert_eq!(g.get_str("general.architecture").unwrap(), "test");
    assert_eq!(g.get_u32("k.u8").unwrap(), 200);
    assert_eq!(g.get("k.i8"), Some(&MetaValue::I8(-1)));
    assert_eq!(g.get_u32("k.u16").unwrap(), 500);
    assert_eq!(g.get("k.i16").unwrap().as_i64(), Some(-500));
    assert!(g.get_u32("k.i32").is_err(), "negative does not fit u32");
    assert_eq!(g.get_f32("k.f32").unwrap(), 0.25);
    assert!(g.get_bool("k.bool").unwrap());
    assert_eq!(g.get_u64("k.u64").unwrap(), 1 << 40);
    assert_eq!(g.get("k.i64").unwrap().as_i64(), Some(-3));
    assert_eq!(g.get_f32("k.f64").unwrap(), 1.5);
    assert_eq!(g.get_str_array("tokenizer.ggml.tokens").unwrap(), ["<s>", "a", "b c"]);
    assert_eq!(g.get_int_array("tokenizer.ggml.token_type").unwrap(), [3, 1, -1]);
    assert_eq!(g.get_array("k.nested").unwrap(), &MetaArray::Array(vec![MetaArray::U8(vec![7, 9])]));
    assert!(err_of(g.get_str("k.u8")).contains("metadata 'k.u8' is u8, expected a string"));
    assert!(err_of(g.get_u32("missing")).contains("missing metadata key 'missing'"));
    // Dims [3, 2] innermost-first are 2 rows of 3, row-major.
    assert_eq!(g.read_f32("m").unwrap(), (vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], vec![2, 3]));
    let (q, s) = g.read_f32("q").unwrap();
    assert_eq!((q[0], q[31], s), (0.0, 15.5, vec![1, 32]));
    assert_eq!(g.read_f32("h").unwrap(), (vec![1.5, -2.0], vec![2]));
    let dts: Vec<WeightDType> = g.tensors().iter().map(|t| t.dtype).collect();
    assert_eq!(dts, [WeightDType::F32, WeightDType::Q8_0, WeightDType::F16]);
}

#[test]
fn damaged_gguf_is_refused_never_panics() {
    let good = synthetic_gguf();
    for n in 0..good.len() {
        if n < good.len() - 60 {
            assert!(GgufFile::from_vec("cut.gguf", good[..n].to_vec()).is_err(), "cut at {n} accepted");
        }
    }
    for i in 0..good.len().min(2000) {
        let mut b = good.clone();
        b[i] ^= 0x5a;
        if let Ok(g) = GgufFile::from_vec("flip.gguf", b) {
            for t in g.tensors() {
                let _ = g.read_f32(&t.name);
            }
        }
    }
    // A huge array count is refused before allocating.
    let mut w = GgufWriter::new();
    let mut arr = 4u32.to_le_bytes().to_vec();
    arr.extend(u64::MAX.to_le_bytes());
    w.kv("a", 9, &arr);
    assert!(err_of(GgufFile::from_vec("huge.gguf", w.build())).contains("longer than the file"));
    // A tensor whose data runs past the end.
    let mut w = GgufWriter::new();
    w.f32_tensor("t", &[4], &[1.0; 4]);
    let mut b = w.build();
    b.truncate(b.len() - 32);
    assert!(err_of(GgufFile::from_vec("short.gguf", b)).contains("'t': 16 bytes at data offset 0 run past"));
    // An unsupported quant type names itself.
    let mut w = GgufWriter::new();
    w.tensor("k", &[256], 13, vec![0; 176]);
    assert!(err_of(GgufFile::from_vec("q5k.gguf", w.build())).contains("Q5_K is not supported"));
}

/// The converter's permutation, for building a synthetic llama GGUF from HF-layout weights.
fn permute(w: &[f32], rows: usize, cols: usize, heads: usize) -> Vec<f32> {
    let hd = rows / heads;
    let mut out = vec![0.0; w.len()];
    for h in 0..heads {
        for i in 0..hd / 2 {
            for p in 0..2 {
                let (src, dst) = (h * hd + p * hd / 2 + i, h * hd + 2 * i + p);
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&w[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

#[test]
fn gguf_llama_adapter_renames_and_unpermutes() {
    // hidden 8, 2 heads of 4, 1 kv head; HF-layout q [8, 8] and k [4, 8].
    let q: Vec<f32> = (0..64).map(|x| x as f32).collect();
    let k: Vec<f32> = (0..32).map(|x| -(x as f32)).collect();
    let mut w = GgufWriter::new();
    w.str("general.architecture", "llama")
        .u32("llama.embedding_length", 8)
        .u32("llama.block_count", 1)
        .u32("llama.attention.head_count", 2)
        .u32("llama.attention.head_count_kv", 1)
        .u32("llama.feed_forward_length", 16)
        .u32("llama.context_length", 128)
        .f32("llama.attention.layer_norm_rms_epsilon", 1e-6);
    w.f32_tensor("token_embd.weight", &[8, 3], &[0.5; 24])
        .f32_tensor("blk.0.attn_q.weight", &[8, 8], &permute(&q, 8, 8, 2))
        .f32_tensor("blk.0.attn_k.weight", &[8, 4], &permute(&k, 4, 8, 1))
        .f32_tensor("blk.0.ffn_down.weight", &[16, 8], &[1.0; 128])
        .f32_tensor("blk.0.attn_norm.weight", &[8], &[1.0; 8])
        .f32_tensor("output_norm.weight", &[8], &[2.0; 8]);
    let l = GgufLlama::new(GgufFile::from_vec("tiny-llama.gguf", w.build()).unwrap()).unwrap();
    let names: Vec<String> = l.tensors().into_iter().map(|t| t.name).collect();
    assert_eq!(
        names,
        [
            "model.embed_tokens.weight",
            "model.layers.0.self_attn.q_proj.weight",
            "model.layers.0.self_attn.k_proj.weight",
            "model.layers.0.mlp.down_proj.weight",
            "model.layers.0.input_layernorm.weight",
            "model.norm.weight"
        ]
    );
    assert_eq!(l.read_f32("model.layers.0.self_attn.q_proj.weight").unwrap(), (q, vec![8, 8]));
    assert_eq!(l.read_f32("model.layers.0.self_attn.k_proj.weight").unwrap(), (k, vec![4, 8]));
    assert_eq!(l.read_f32("model.layers.0.mlp.down_proj.weight").unwrap().1, [8, 16]);
    let c = l.config();
    assert_eq!((c.hidden_size, c.num_attention_heads, c.num_key_value_heads, c.vocab_size), (8, 2, 1, 3));
    assert_eq!((c.rope_theta, c.tie_word_embeddings), (10000.0, true));
    assert_eq!(c.to_json()["intermediate_size"], 16);
    assert!(unpermute_rows(&[0.0; 6], 6, 1, 4).is_err());
}

#[test]
fn real_smollm2_gguf_dequantises_every_tensor() {
    let Some(p) = asset(real_assets::SMOLLM2_GGUF) else { return };
    let g = GgufFile::open(&p).unwrap();
    assert_eq!(g.get_str("general.architecture").unwrap(), "llama");
    assert_eq!(g.get_str_array("tokenizer.ggml.tokens").unwrap().len(), 49152);
    assert_eq!(g.get_str_array("tokenizer.ggml.merges").unwrap().len(), 48900);
    assert_eq!(g.get_int_array("tokenizer.ggml.token_type").unwrap().len(), 49152);
    assert_eq!(
        (
            g.get_u32("tokenizer.ggml.bos_token_id").unwrap(),
            g.get_u32("tokenizer.ggml.eos_token_id").unwrap()
        ),
        (1, 2)
    );
    for t in g.tensors() {
        let (v, s) = g.read_f32(&t.name).unwrap();
        assert_eq!(v.len(), s.iter().product::<usize>(), "{}", t.name);
        assert!(v.iter().all(|x| x.is_finite()), "{}", t.name);
    }
    // Embedding rows: centred, with a spread typical of trained embeddings.
    let (e, s) = g.read_f32("token_embd.weight").unwrap();
    assert_eq!(s, [49152, 576]);
    let n = e.len() as f64;
    let mean = e.iter().map(|&x| x as f64).sum::<f64>() / n;
    let std = (e.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
    assert!(mean.abs() < 0.05 && std > 0.01 && std < 1.0, "mean {mean} std {std}");

    let l = GgufLlama::new(g).unwrap();
    let c = l.config().clone();
    assert_eq!(
        (
            c.hidden_size,
            c.num_hidden_layers,
            c.num_attention_heads,
            c.num_key_value_heads,
            c.intermediate_size
        ),
        (576, 30, 9, 3, 1536)
    );
    assert_eq!(
        (c.vocab_size, c.max_position_embeddings, c.rope_theta, c.tie_word_embeddings),
        (49152, 8192, 100000.0, true)
    );
    assert!((c.rms_norm_eps - 1e-5).abs() < 1e-9);
    let t = l.tensors();
    assert_eq!(t.len(), 272);
    assert!(!t.iter().any(|t| t.name == "lm_head.weight"));
    let (k, s) = l.read_f32("model.layers.0.self_attn.k_proj.weight").unwrap();
    assert_eq!((k.len(), s), (192 * 576, vec![192, 576]));
    assert_eq!(l.read_f32("model.layers.29.mlp.down_proj.weight").unwrap().1, [576, 1536]);
}

// ---------------------------------------------------------------- HF directories and open()

fn same_tensors(a: &dyn WeightSource, b: &dyn WeightSource) {
    let (ta, tb) = (a.tensors(), b.tensors());
    let mut na: Vec<_> = ta.iter().map(|t| (&t.name, &t.shape)).collect();
    let mut nb: Vec<_> = tb.iter().map(|t| (&t.name, &t.shape)).collect();
    na.sort();
    nb.sort();
    assert_eq!(na, nb);
    for t in &ta {
        assert_eq!(a.read_f32(&t.name).unwrap(), b.read_f32(&t.name).unwrap(), "{}", t.name);
    }
}

#[test]
fn hf_fixture_dirs_open_through_open() {
    for d in ["gpt2_tiny", "llama_tiny"] {
        let Some(p) = fixture(d) else { return };
        let dir = HfDir::open(&p).unwrap();
        assert!(dir.config()["vocab_size"].as_u64().is_some(), "{d}: config exposed");
        let st = SafeTensorsFile::open(p.join("model.safetensors")).unwrap();
        same_tensors(&dir, &st);
        same_tensors(open(&p).unwrap().as_ref(), &st);
    }
}

fn st_dtype(d: WeightDType) -> safetensors::Dtype {
    match d {
        WeightDType::F32 => safetensors::Dtype::F32,
        WeightDType::F16 => safetensors::Dtype::F16,
        WeightDType::BF16 => safetensors::Dtype::BF16,
        WeightDType::I64 => safetensors::Dtype::I64,
        other => panic!("fixture dtype {other:?}"),
    }
}

/// Split `src` into two shards in `dir` and write the index; returns the weight map.
fn write_shards(src: &Path, dir: &Path) -> serde_json::Map<String, serde_json::Value> {
    let st = SafeTensorsFile::open(src).unwrap();
    let tensors = st.tensors();
    let half = tensors.len() / 2;
    let mut map = serde_json::Map::new();
    for (i, part) in [&tensors[..half], &tensors[half..]].into_iter().enumerate() {
        let file = format!("model-0000{}-of-00002.safetensors", i + 1);
        let views: Vec<_> = part
            .iter()
            .map(|t| {
                map.insert(t.name.clone(), file.clone().into());
                let v = safetensors::tensor::TensorView::new(
                    st_dtype(t.dtype),
                    t.shape.clone(),
                    st.bytes(&t.name).unwrap(),
                );
                (t.name.clone(), v.unwrap())
            })
            .collect();
        std::fs::write(dir.join(&file), safetensors::serialize(views, None).unwrap()).unwrap();
    }
    map
}

fn write_index(dir: &Path, map: &serde_json::Map<String, serde_json::Value>) {
    let index = serde_json::json!({ "metadata": { "total_size": 0 }, "weight_map": map });
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
}

#[test]
fn sharded_hf_dir_reads_like_the_single_file_and_checks_the_index() {
    let Some(src) = fixture("llama_tiny") else { return };
    let dir = scratch("sharded");
    std::fs::copy(src.join("config.json"), dir.join("config.json")).unwrap();
    let map = write_shards(&src.join("model.safetensors"), &dir);
    write_index(&dir, &map);
    let single = SafeTensorsFile::open(src.join("model.safetensors")).unwrap();
    let sharded = HfDir::open(&dir).unwrap();
    assert_eq!(sharded.weight_files().len(), 2);
    same_tensors(&sharded, &single);
    same_tensors(open(&dir).unwrap().as_ref(), &single);

    let key = map.keys().next().unwrap().clone();
    let broken = |edit: &dyn Fn(&mut serde_json::Map<String, serde_json::Value>), expect: &str| {
        let mut m = map.clone();
        edit(&mut m);
        write_index(&dir, &m);
        let msg = err_of(HfDir::open(&dir));
        assert!(msg.contains("model.safetensors.index.json") && msg.contains(expect), "{expect}: {msg}");
    };
    broken(
        &|m| {
            m.insert(key.clone(), "model-00003-of-00002.safetensors".into());
        },
        "shard 'model-00003-of-00002.safetensors' does not exist",
    );
    broken(
        &|m| {
            m.insert(key.clone(), "../model.safetensors".into());
        },
        "not a file in the directory",
    );
    broken(
        &|m| {
            m.insert(key.clone(), "model-00002-of-00002.safetensors".into());
        },
        "but weight_map says 'model-00002-of-00002.safetensors'",
    );
    broken(
        &|m| {
            m.remove(&key);
        },
        "is not in weight_map",
    );
    broken(
        &|m| {
            m.insert("ghost.weight".into(), "model-00001-of-00002.safetensors".into());
        },
        "weight_map maps 'ghost.weight' to 'model-00001-of-00002.safetensors', which does not hold it",
    );
}

#[test]
fn hf_dir_falls_back_to_pytorch_model_bin() {
    let dir = scratch("bin");
    std::fs::write(dir.join("config.json"), r#"{"model_type": "tiny"}"#).unwrap();
    assert!(err_of(HfDir::open(&dir)).contains("no weights"));
    std::fs::copy(data("tiny_zip.pth"), dir.join("pytorch_model.bin")).unwrap();
    let d = HfDir::open(&dir).unwrap();
    assert_eq!(d.config()["model_type"], "tiny");
    check_tiny(&d);
    check_tiny(open(&dir).unwrap().as_ref());
}

#[test]
fn real_minilm_dir_opens_through_open() {
    let Some(p) = asset(real_assets::MINILM_DIR) else { return };
    let src = open(&p).unwrap();
    let t = src.tensors();
    let emb = t.iter().find(|t| t.name.ends_with("word_embeddings.weight")).expect("word embeddings");
    assert_eq!(emb.shape, [30522, 384]);
    assert_eq!(HfDir::open(&p).unwrap().config()["hidden_size"], 384);
}

#[test]
fn open_detects_by_content_and_names_unknown_files() {
    let dir = scratch("open");
    // A GGUF and a torch zip under misleading extensions.
    std::fs::write(dir.join("weights.safetensors"), synthetic_gguf()).unwrap();
    assert_eq!(open(dir.join("weights.safetensors")).unwrap().tensors().len(), 3);
    std::fs::copy(data("tiny_zip.pth"), dir.join("model.gguf")).unwrap();
    check_tiny(open(dir.join("model.gguf")).unwrap().as_ref());
    std::fs::write(dir.join("notes.bin"), b"hello, weights\n").unwrap();
    let msg = err_of(open(dir.join("notes.bin")));
    assert!(msg.contains("notes.bin") && msg.contains("68 65 6c 6c 6f"), "{msg}");
    std::fs::write(dir.join("empty.pt"), b"").unwrap();
    assert!(err_of(open(dir.join("empty.pt"))).contains("empty file"));
    // A plain pickle is not a torch checkpoint.
    std::fs::write(dir.join("plain.pkl"), b"\x80\x02}q\x00.").unwrap();
    assert!(err_of(open(dir.join("plain.pkl"))).contains("not a torch.save file"));
    // A directory without config.json.
    assert!(err_of(open(&dir)).contains("no config.json"));
    assert!(matches!(open(dir.join("absent")), Err(whet::Error::Io { .. })));
}
