//! A plain-text corpus for causal language modelling: the whole file tokenized once, cut into
//! fixed-length blocks, with a contiguous tail held out for validation.

use std::ops::Range;
use std::path::{Path, PathBuf};

use super::tokenize::TextTokenizer;
use crate::error::{Error, Result};

/// Token ids of a text file.
#[derive(Debug, Clone)]
pub struct Corpus {
    pub path: PathBuf,
    pub tokens: Vec<u32>,
}

/// Text is tokenized in pieces of about this many bytes, cut after a newline.
const CHUNK: usize = 256 << 10;

/// Where to cut `text` near `at`: just after a newline that ends a non-blank line and is followed
/// by a non-space, so the pre-tokenizer sees the same words on both sides as in the whole text.
fn cut_near(text: &str, at: usize) -> usize {
    let b = text.as_bytes();
    let mut i = at;
    while i + 1 < b.len() {
        if b[i] == b'\n' && i > 0 && !b[i - 1].is_ascii_whitespace() && !b[i + 1].is_ascii_whitespace() {
            return i + 1;
        }
        i += 1;
    }
    b.len()
}

impl Corpus {
    /// Read `path` (UTF-8; a leading BOM is dropped) and tokenize it without special tokens.
    /// Invalid UTF-8 is an error naming the 1-based line.
    pub fn open(path: &Path, tok: &TextTokenizer) -> Result<Corpus> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let body = bytes.strip_prefix(b"\xEF\xBB\xBF".as_slice()).unwrap_or(&bytes);
        let text = std::str::from_utf8(body).map_err(|e| {
            let line = 1 + body[..e.valid_up_to()].iter().filter(|&&c| c == b'\n').count();
            Error::Format {
                path: path.display().to_string(),
                line: Some(line),
                message: "invalid UTF-8".into(),
            }
        })?;
        if text.trim().is_empty() {
            return Err(Error::Format {
                path: path.display().to_string(),
                line: None,
                message: "no text".into(),
            });
        }
        let mut tokens = Vec::new();
        let mut start = 0;
        while start < text.len() {
            let end = if text.len() - start <= CHUNK { text.len() } else { cut_near(text, start + CHUNK) };
            tokens.extend(tok.encode(&text[start..end], false)?);
            start = end;
        }
        Ok(Corpus { path: path.to_path_buf(), tokens })
    }

    /// Non-overlapping ranges of `block` tokens, in order; the last partial block is dropped.
    /// Each range is both the input and the labels (the model shifts by one).
    pub fn blocks(&self, block: usize) -> Vec<Range<usize>> {
        if block == 0 {
            return Vec::new();
        }
        (0..self.tokens.len() / block).map(|i| i * block..(i + 1) * block).collect()
    }

    /// (train, val) blocks: validation is the contiguous tail (`val_ratio` of the blocks, at
    /// least one when there are two or more), so no text is in both.
    pub fn split(&self, block: usize, val_ratio: f64) -> (Vec<Range<usize>>, Vec<Range<usize>>) {
        let mut train = self.blocks(block);
        let n = train.len();
        let mut nval = if val_ratio.is_finite() && val_ratio > 0.0 {
            (val_ratio * n as f64).round() as usize
        } else {
            0
        };
        if val_ratio > 0.0 && n >= 2 {
            nval = nval.clamp(1, n - 1);
        } else if n < 2 {
            nval = 0;
        }
        let val = train.split_off(n - nval);
        (train, val)
    }
}
