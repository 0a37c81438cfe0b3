//! Tokenizers for text models, on the `tokenizers` crate: HF `tokenizer.json` files, and the
//! vocabularies embedded in GGUF checkpoints (llama.cpp's `tokenizer.ggml.*` metadata):
//! byte-level BPE, and SentencePiece BPE (`spm_vocab.rs`).
//!
//! A tokenizer file is data from the internet: it is parsed under `catch_unwind` (the crate can
//! panic on odd files), and its vocabulary is checked (every id inside the vocabulary, every
//! merge naming known tokens) before it is used. Ids are checked against the *model's*
//! vocabulary with [`check_ids`] on the CPU before they go to the GPU.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Encoding, PostProcessor, Tokenizer, TruncationParams};

use crate::error::{Error, Result};
use crate::weights::gguf::GgufFile;

/// A tokenizer with its special ids.
#[derive(Clone)]
pub struct TextTokenizer {
    tok: Tokenizer,
    path: PathBuf,
    vocab: usize,
    pad: u32,
    bos: Option<u32>,
    eos: Option<u32>,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("path", &self.path)
            .field("vocab", &self.vocab)
            .field("pad", &self.pad)
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .finish()
    }
}

/// A padded batch of token ids, row-major `[batch, seq]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextBatch {
    pub ids: Vec<u32>,
    /// Segment ids (0 for the first text, 1 for the pair), 0 on padding.
    pub type_ids: Vec<u32>,
    /// 1 on real tokens, 0 on padding.
    pub mask: Vec<u32>,
    pub batch: usize,
    pub seq: usize,
}

fn fmt_err(path: &Path, message: impl Into<String>) -> Error {
    Error::Format { path: path.display().to_string(), line: None, message: message.into() }
}

/// Run `f`, turning a panic inside the tokenizers crate into an error.
fn guarded<T>(
    what: &str,
    f: impl FnOnce() -> std::result::Result<T, String>,
) -> std::result::Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Err(format!("the tokenizers crate panicked during {what}: {msg}"))
    })
}

/// First of `names` present in the vocabulary.
fn find_token(tok: &Tokenizer, names: &[&str]) -> Option<u32> {
    names.iter().find_map(|n| tok.token_to_id(n))
}

/// A GGUF vocabulary's token types applied: control tokens (type 3) are special, user-defined
/// ones (type 4) match as a whole; with `add_bos`, the bos token starts every sequence.
fn with_specials(
    mut tok: Tokenizer,
    tokens: &[&str],
    types: &[i64],
    add_bos: bool,
    bos: Option<u32>,
) -> std::result::Result<Tokenizer, String> {
    let of_type = |want: i64, special: bool| -> Vec<AddedToken> {
        tokens
            .iter()
            .zip(types)
            .filter(|(_, &t)| t == want)
            .map(|(s, _)| AddedToken::from(s.to_string(), special))
            .collect()
    };
    tok.add_special_tokens(of_type(3, true)).map_err(|e| e.to_string())?;
    tok.add_tokens(of_type(4, false)).map_err(|e| e.to_string())?;
    if let (true, Some(b)) = (add_bos, bos) {
        let name = tokens.get(b as usize).map(|s| s.to_string()).unwrap_or_default();
        let tp = TemplateProcessing::builder()
            .try_single(format!("{name} $A"))
            .and_then(|t| t.try_pair(format!("{name} $A {name}:1 $B:1")))
            .map_err(|e| e.to_string())?
            .special_tokens(vec![(name.clone(), b)])
            .build()
            .map_err(|e| e.to_string())?;
        tok.with_post_processor(Some(tp));
    }
    Ok(tok)
}

impl TextTokenizer {
    /// Load a HF `tokenizer.json`. Truncation and padding stored in the file are dropped (the
    /// batch functions do both explicitly); its pad id, if set, is kept.
    pub fn from_file(path: &Path) -> Result<TextTokenizer> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(path, &bytes)
    }

    /// [`TextTokenizer::from_file`] for bytes already in memory; `path` names them in errors.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<TextTokenizer> {
        let tok = guarded("parsing", || {
            Tokenizer::from_bytes(bytes).map_err(|e| match e.downcast_ref::<serde_json::Error>() {
                Some(j) => {
                    format!("not a valid tokenizer.json (line {}, column {}): {j}", j.line(), j.column())
                }
                None => format!("not a valid tokenizer.json: {e}"),
            })
        })
        .map_err(|m| fmt_err(path, m))?;
        let pad = tok.get_padding().map(|p| p.pad_id);
        Self::finish(tok, path, pad, None, None, None)
    }

    /// The vocabulary embedded in a GGUF file: byte-level BPE (`tokenizer.ggml.model = gpt2`:
    /// tokens, merges and the pre-tokenizer named by `tokenizer.ggml.pre`, `gpt2`/`default` or
    /// `smollm`, which splits digits one by one as SmolLM's tokenizer.json does) or
    /// SentencePiece BPE (`llama`: pieces, scores, byte fallback; see `spm_vocab.rs`). Token
    /// types (control tokens become special) and the bos/eos/pad ids apply to both.
    pub fn from_gguf(path: &Path) -> Result<TextTokenizer> {
        Self::from_gguf_file(&GgufFile::open(path)?)
    }

    /// [`TextTokenizer::from_gguf`] for a GGUF file already open.
    pub fn from_gguf_file(g: &GgufFile) -> Result<TextTokenizer> {
        let path = g.path();
        let model = g.get_str("tokenizer.ggml.model")?;
        let tokens = g.get_str_array("tokenizer.ggml.tokens")?;
        let types = match g.get("tokenizer.ggml.token_type") {
            Some(_) => g.get_int_array("tokenizer.ggml.token_type")?,
            None => Vec::new(),
        };
        let opt_bool = |key: &str| -> Result<Option<bool>> {
            match g.get(key) {
                Some(_) => g.get_bool(key).map(Some),
                None => Ok(None),
            }
        };
        let opt_id = |key: &str| -> Result<Option<u32>> {
            match g.get(key) {
                Some(_) => g.get_u32(key).map(Some),
                None => Ok(None),
            }
        };
        let (bos, eos, pad) = (
            opt_id("tokenizer.ggml.bos_token_id")?,
            opt_id("tokenizer.ggml.eos_token_id")?,
            opt_id("tokenizer.ggml.padding_token_id")?,
        );
        let add_bos = opt_bool("tokenizer.ggml.add_bos_token")?.unwrap_or(false);
        let add_prefix = opt_bool("tokenizer.ggml.add_space_prefix")?;
        let base = match model {
            "gpt2" => Self::gguf_byte_level(g, &tokens, add_prefix.unwrap_or(false))?,
            // SentencePiece models prepend the dummy space unless told not to (llama.cpp too).
            "llama" => {
                let scores = g.get_f32_array("tokenizer.ggml.scores")?;
                guarded("building the SentencePiece model", || {
                    super::spm_vocab::tokenizer(&tokens, scores, &types, add_prefix.unwrap_or(true))
                })
                .map_err(|m| fmt_err(path, format!("GGUF tokenizer: {m}")))?
            }
            other => {
                return Err(fmt_err(
                    path,
                    format!(
                        "tokenizer.ggml.model is '{other}'; byte-level BPE ('gpt2') and SentencePiece \
                         ('llama') are supported"
                    ),
                ))
            }
        };
        let tok = guarded("adding the special tokens", || with_specials(base, &tokens, &types, add_bos, bos))
            .map_err(|m| fmt_err(path, format!("GGUF tokenizer: {m}")))?;
        Self::finish(tok, path, pad, bos, eos, Some(tokens.len()))
    }

    /// The byte-level BPE of a GGUF file's tokens and `tokenizer.ggml.merges`.
    fn gguf_byte_level(g: &GgufFile, tokens: &[&str], add_prefix: bool) -> Result<Tokenizer> {
        let path = g.path();
        let merges = g.get_str_array("tokenizer.ggml.merges")?;
        let pre = match g.get("tokenizer.ggml.pre") {
            Some(_) => g.get_str("tokenizer.ggml.pre")?.to_string(),
            None => "default".to_string(),
        };
        let vocab: Vocab = tokens.iter().enumerate().map(|(i, t)| (t.to_string(), i as u32)).collect();
        let merges = merges
            .iter()
            .enumerate()
            .map(|(i, m)| {
                m.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())).ok_or_else(|| {
                    fmt_err(path, format!("tokenizer.ggml.merges[{i}] = '{m}' is not two tokens"))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let byte_level = ByteLevel::new(add_prefix, true, true);
        let pre_tok: tokenizers::PreTokenizerWrapper = match pre.as_str() {
            "gpt2" | "default" => byte_level.into(),
            "smollm" => Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into(),
            other => {
                return Err(fmt_err(
                    path,
                    format!("tokenizer.ggml.pre '{other}' is not supported (known: gpt2, default, smollm)"),
                ))
            }
        };
        guarded("building the BPE model", || {
            let bpe = BPE::builder().vocab_and_merges(vocab, merges).build().map_err(|e| e.to_string())?;
            let mut tok = Tokenizer::new(bpe);
            tok.with_pre_tokenizer(Some(pre_tok));
            tok.with_decoder(Some(ByteLevel::default()));
            Ok(tok)
        })
        .map_err(|m| fmt_err(path, format!("GGUF tokenizer: {m}")))
    }

    /// Check the vocabulary and settle the special ids.
    fn finish(
        mut tok: Tokenizer,
        path: &Path,
        pad: Option<u32>,
        bos: Option<u32>,
        eos: Option<u32>,
        vocab: Option<usize>,
    ) -> Result<TextTokenizer> {
        tok.with_padding(None);
        tok.with_truncation(None).map_err(|e| fmt_err(path, e.to_string()))?;
        let vocab = vocab.unwrap_or_else(|| tok.get_vocab_size(true));
        if vocab == 0 {
            return Err(fmt_err(path, "the vocabulary is empty"));
        }
        // When every id below `vocab` names a token, the (at most `vocab`) tokens fill exactly
        // those ids and none lies outside; only otherwise is the vocabulary copied (a 4M-token
        // file would spend seconds and hundreds of MiB on the copy) to find the one that does.
        let dense = (0..vocab).all(|i| u32::try_from(i).ok().and_then(|i| tok.id_to_token(i)).is_some());
        let mut bad: Vec<(String, u32)> = if dense {
            Vec::new()
        } else {
            tok.get_vocab(true).into_iter().filter(|(_, id)| *id as usize >= vocab).collect()
        };
        bad.sort_by_key(|b| b.1);
        if let Some((t, id)) = bad.last() {
            return Err(fmt_err(
                path,
                format!(
                    "token '{t}' has id {id}, outside a vocabulary of {vocab} entries ({} such tokens)",
                    bad.len()
                ),
            ));
        }
        let bos = bos.or_else(|| find_token(&tok, &["<s>", "<|begin_of_text|>", "<|startoftext|>", "<bos>"]));
        let eos = eos.or_else(|| find_token(&tok, &["</s>", "<|endoftext|>", "<|end_of_text|>", "<eos>"]));
        let pad = pad
            .or_else(|| find_token(&tok, &["[PAD]", "<pad>", "<|pad|>", "<|finetune_right_pad_id|>"]))
            .or(eos)
            .unwrap_or(0);
        for (name, id) in [("bos", bos), ("eos", eos), ("pad", Some(pad))] {
            if let Some(id) = id.filter(|&i| i as usize >= vocab) {
                return Err(fmt_err(
                    path,
                    format!("{name} id {id} is outside a vocabulary of {vocab} entries"),
                ));
            }
        }
        Ok(TextTokenizer { tok, path: path.to_path_buf(), vocab, pad, bos, eos })
    }

    /// Number of token ids this tokenizer can produce.
    pub fn vocab_size(&self) -> usize {
        self.vocab
    }

    /// Id used for padding (the file's pad token, else `[PAD]`/`<pad>`, else eos, else 0).
    pub fn pad_id(&self) -> u32 {
        self.pad
    }

    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }

    pub fn eos_id(&self) -> Option<u32> {
        self.eos
    }

    /// The file this tokenizer came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.tok
    }

    fn raw(&self, text: &str, pair: Option<&str>, add_special: bool) -> Result<Encoding> {
        guarded("encoding", || {
            let r = match pair {
                Some(p) => self.tok.encode((text, p), add_special),
                None => self.tok.encode(text, add_special),
            };
            r.map_err(|e| e.to_string())
        })
        .map_err(|m| Error::arg("encode", format!("{}: {m}", self.path.display())))
    }

    /// Token ids of `text`; `add_special` applies the tokenizer's post-processor (for BERT,
    /// `[CLS] … [SEP]`).
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        Ok(self.raw(text, None, add_special)?.get_ids().to_vec())
    }

    /// Text of `ids`; ids outside the vocabulary are an error.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        check_ids(ids, self.vocab, "decode")?;
        guarded("decoding", || self.tok.decode(ids, skip_special).map_err(|e| e.to_string()))
            .map_err(|m| Error::arg("decode", format!("{}: {m}", self.path.display())))
    }

    /// Encode texts (or text pairs) with special tokens, truncated to `max_len` tokens each
    /// (longest text of a pair first, as HF's `longest_first`), padded with `pad_id` to the
    /// longest row of the batch.
    pub fn encode_batch(&self, items: &[(&str, Option<&str>)], max_len: usize) -> Result<TextBatch> {
        self.batch(items, max_len, false)
    }

    /// [`TextTokenizer::encode_batch`] padded to exactly `max_len` (HF `padding="max_length"`).
    pub fn encode_batch_padded(&self, items: &[(&str, Option<&str>)], max_len: usize) -> Result<TextBatch> {
        self.batch(items, max_len, true)
    }

    fn batch(&self, items: &[(&str, Option<&str>)], max_len: usize, to_max: bool) -> Result<TextBatch> {
        let mut rows = Vec::with_capacity(items.len());
        for &(a, b) in items {
            let added = self.tok.get_post_processor().map_or(0, |p| p.added_tokens(b.is_some()));
            if max_len <= added {
                return Err(Error::arg(
                    "encode_batch",
                    format!("max_len {max_len} leaves no room next to {added} special tokens"),
                ));
            }
            let ea = self.raw(a, None, false)?;
            let eb = b.map(|b| self.raw(b, None, false)).transpose()?;
            let params = TruncationParams { max_length: max_len - added, ..Default::default() };
            let enc = guarded("truncation", || {
                let (ea, eb) = tokenizers::utils::truncation::truncate_encodings(ea, eb, &params)
                    .map_err(|e| e.to_string())?;
                self.tok.post_process(ea, eb, true).map_err(|e| e.to_string())
            })
            .map_err(|m| Error::arg("encode_batch", format!("{}: {m}", self.path.display())))?;
            rows.push(enc);
        }
        let longest = rows.iter().map(|e| e.get_ids().len()).max().unwrap_or(0);
        let seq = if to_max { max_len } else { longest.min(max_len) };
        let n = rows.len();
        let mut out = TextBatch {
            ids: vec![self.pad; n * seq],
            type_ids: vec![0; n * seq],
            mask: vec![0; n * seq],
            batch: n,
            seq,
        };
        for (r, e) in rows.iter().enumerate() {
            let len = e.get_ids().len().min(seq);
            let at = r * seq;
            out.ids[at..at + len].copy_from_slice(&e.get_ids()[..len]);
            out.type_ids[at..at + len].copy_from_slice(&e.get_type_ids()[..len]);
            out.mask[at..at + len].iter_mut().for_each(|m| *m = 1);
        }
        Ok(out)
    }
}

/// Every id must be below `vocab` (the model's embedding rows): an error names `what`, the
/// position and the id. Run on the CPU before ids are uploaded.
pub fn check_ids(ids: &[u32], vocab: usize, what: &str) -> Result<()> {
    match ids.iter().position(|&id| id as usize >= vocab) {
        None => Ok(()),
        Some(i) => Err(Error::arg(
            "check_ids",
            format!("{what}: token id {} at position {i} is outside the vocabulary of {vocab}", ids[i]),
        )),
    }
}
