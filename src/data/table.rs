//! Text tables for classification: CSV and TSV with a header row, or JSON Lines (one object a
//! line). Every record is checked (field count, UTF-8, quoting, required fields, labels, size) and
//! every problem is an [`Error::Format`] naming the file and the 1-based line, or with
//! `skip_bad` a listed [`Skipped`] entry.
//!
//! The CSV reader is written here rather than taken from the `csv` crate because the checks need
//! what that crate smooths over: a quote left open until end of file is an error (not a field
//! holding the rest of the file), a record is bounded in bytes while it is being read, and
//! after a bad record reading resumes at the next line so every bad line can be listed.

use std::path::{Path, PathBuf};

use super::labels::LabelMap;
use super::skip::{enforce, SkipPolicy, Skipped};
use crate::error::{Error, Result};

/// File format of a text table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    /// Comma-separated, RFC 4180 quoting (`"a, b"`, `""` for a quote).
    Csv,
    /// Tab-separated, no quoting (a quote is an ordinary character, as in IANA TSV).
    Tsv,
    /// JSON Lines: one object a line; blank lines are skipped.
    Jsonl,
}

impl TableFormat {
    /// The format from the extension: `.csv`, `.tsv`, `.jsonl`, `.ndjson`, `.json-lines`.
    pub fn from_path(path: &Path) -> Result<TableFormat> {
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("csv") => Ok(TableFormat::Csv),
            Some("tsv") | Some("tab") => Ok(TableFormat::Tsv),
            Some("jsonl") | Some("ndjson") | Some("json-lines") => Ok(TableFormat::Jsonl),
            _ => Err(Error::Format {
                path: path.display().to_string(),
                line: None,
                message: "cannot tell the table format from the extension (.csv, .tsv, .jsonl, .ndjson, .json-lines); \
                          give the format explicitly"
                    .into(),
            }),
        }
    }
}

/// Which columns to read and how strict to be.
#[derive(Debug, Clone)]
pub struct TableOptions {
    /// Format; `None` guesses from the extension.
    pub format: Option<TableFormat>,
    /// Column (CSV/TSV header name) or JSON field holding the text.
    pub text: String,
    /// Second text of a pair task (NLI, paraphrase), if any.
    pub text_pair: Option<String>,
    /// Label column; `None` for unlabelled text.
    pub label: Option<String>,
    /// A fixed label set (for example the training set's): an unknown label is an error. String
    /// labels are looked up by name; a JSON integer label by name first, then as an index.
    pub labels: Option<LabelMap>,
    pub policy: SkipPolicy,
    /// Longest record (CSV/TSV) or line (JSONL) accepted, in bytes.
    pub max_line_bytes: usize,
}

impl Default for TableOptions {
    fn default() -> Self {
        TableOptions {
            format: None,
            text: "text".into(),
            text_pair: None,
            label: Some("label".into()),
            labels: None,
            policy: SkipPolicy::default(),
            max_line_bytes: 1 << 20,
        }
    }
}

/// One example: text, optional pair text, label index, and its 1-based line in the file it was
/// read from (`None` for an item a host program made in memory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextItem {
    pub text: String,
    pub pair: Option<String>,
    pub label: Option<usize>,
    pub line: Option<usize>,
}

impl TextItem {
    /// An item made in memory: no file, no line.
    pub fn new(text: impl Into<String>, label: Option<usize>) -> TextItem {
        TextItem { text: text.into(), pair: None, label, line: None }
    }

    /// The same item with a second text (sentence-pair tasks).
    pub fn with_pair(mut self, pair: impl Into<String>) -> TextItem {
        self.pair = Some(pair.into());
        self
    }

    /// "line N: " for an item read from a file, "" for one made in memory: the start of a
    /// message about the item.
    pub fn place(&self) -> String {
        self.line.map_or(String::new(), |l| format!("line {l}: "))
    }
}

/// A parsed table. `labels` is `opts.labels` when given, otherwise the observed labels (see
/// [`LabelMap::from_observed`]); empty for unlabelled data.
#[derive(Debug, Clone)]
pub struct TextTable {
    pub path: PathBuf,
    pub items: Vec<TextItem>,
    pub labels: LabelMap,
    pub skipped: Vec<Skipped>,
}

/// A label as written: a string, or a JSON integer.
#[derive(Debug, Clone)]
enum RawLabel {
    Name(String),
    Int(i64),
}

/// A record before label resolution.
struct Row {
    line: usize,
    text: String,
    pair: Option<String>,
    label: Option<RawLabel>,
}

/// A bad record: its 1-based line and why.
type Bad = (usize, String);

impl TextTable {
    /// Read and check `path`; see the module docs.
    pub fn open(path: &Path, opts: &TableOptions) -> Result<TextTable> {
        let format = match opts.format {
            Some(f) => f,
            None => TableFormat::from_path(path)?,
        };
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(path, &bytes, &TableOptions { format: Some(format), ..opts.clone() })
    }

    /// [`TextTable::open`] for bytes already in memory; `path` names them in errors (and gives
    /// the format when `opts.format` is `None`).
    pub fn from_bytes(path: &Path, bytes: &[u8], opts: &TableOptions) -> Result<TextTable> {
        let format = match opts.format {
            Some(f) => f,
            None => TableFormat::from_path(path)?,
        };
        let body = bytes.strip_prefix(b"\xEF\xBB\xBF".as_slice()).unwrap_or(bytes);
        let fail = |line: Option<usize>, message: String| Error::Format {
            path: path.display().to_string(),
            line,
            message,
        };
        let (rows, mut bad, total) = match format {
            TableFormat::Csv => read_delimited(body, b',', true, opts).map_err(|(l, m)| fail(Some(l), m))?,
            TableFormat::Tsv => {
                read_delimited(body, b'\t', false, opts).map_err(|(l, m)| fail(Some(l), m))?
            }
            TableFormat::Jsonl => read_jsonl(body, opts),
        };
        if total == 0 {
            return Err(fail(None, "no data rows".into()));
        }

        let mut items = Vec::with_capacity(rows.len());
        let labels = match (&opts.label, &opts.labels) {
            (None, _) => {
                items.extend(rows.into_iter().map(|r| TextItem {
                    text: r.text,
                    pair: r.pair,
                    label: None,
                    line: Some(r.line),
                }));
                LabelMap::empty()
            }
            (Some(_), Some(fixed)) => {
                let index = LabelIndex::new(fixed);
                for r in rows {
                    match resolve_fixed(&index, r.label.as_ref()) {
                        Ok(l) => items.push(TextItem {
                            text: r.text,
                            pair: r.pair,
                            label: Some(l),
                            line: Some(r.line),
                        }),
                        Err(m) => bad.push((r.line, m)),
                    }
                }
                fixed.clone()
            }
            (Some(_), None) => {
                let names: Vec<String> =
                    rows.iter().filter_map(|r| r.label.as_ref().map(label_name)).collect();
                let map = LabelMap::from_observed(names.iter().map(String::as_str));
                let index = LabelIndex::new(&map);
                for (r, name) in rows.into_iter().zip(&names) {
                    let label = index.get(name);
                    items.push(TextItem { text: r.text, pair: r.pair, label, line: Some(r.line) });
                }
                map
            }
        };
        bad.sort_by_key(|b| b.0);
        let shown = path.display().to_string();
        let skipped: Vec<Skipped> = bad
            .into_iter()
            .map(|(line, reason)| Skipped { path: shown.clone(), line: Some(line), reason })
            .collect();
        let skipped = enforce(&opts.policy, skipped, total, &shown)?;
        if items.is_empty() {
            return Err(fail(None, "no usable rows".into()));
        }
        Ok(TextTable { path: path.to_path_buf(), items, labels, skipped })
    }
}

fn label_name(l: &RawLabel) -> String {
    match l {
        RawLabel::Name(n) => n.clone(),
        RawLabel::Int(i) => i.to_string(),
    }
}

/// Class indices by name, hashed once per table (a row per class would make
/// [`LabelMap::index`]'s scan quadratic).
struct LabelIndex<'a> {
    map: &'a LabelMap,
    by_name: std::collections::HashMap<&'a str, usize>,
}

impl<'a> LabelIndex<'a> {
    fn new(map: &'a LabelMap) -> Self {
        let by_name = map.names().iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
        LabelIndex { map, by_name }
    }

    fn get(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }
}

fn resolve_fixed(index: &LabelIndex, label: Option<&RawLabel>) -> std::result::Result<usize, String> {
    let map = index.map;
    let known = || {
        let mut s: Vec<&str> = map.names().iter().take(10).map(String::as_str).collect();
        if map.len() > 10 {
            s.push("...");
        }
        s.join(", ")
    };
    match label {
        None => Err("missing label".into()),
        Some(RawLabel::Name(n)) => {
            index.get(n).ok_or_else(|| format!("unknown label '{n}' (known: {})", known()))
        }
        Some(RawLabel::Int(i)) => index
            .get(&i.to_string())
            .or_else(|| usize::try_from(*i).ok().filter(|&k| k < map.len()))
            .ok_or_else(|| format!("label {i} is out of range for {} classes ({})", map.len(), known())),
    }
}

/// A record's raw fields and the line it starts on.
struct RawRecord {
    line: usize,
    fields: Vec<Vec<u8>>,
}

/// RFC 4180 style records; on a bad record the reader resumes at the line after its first line.
struct Records<'a> {
    b: &'a [u8],
    pos: usize,
    line: usize,
    delim: u8,
    quoting: bool,
    max: usize,
}

impl<'a> Records<'a> {
    /// The next record, `None` at end of input; blank lines are skipped.
    fn next_record(&mut self) -> Option<std::result::Result<RawRecord, Bad>> {
        // Skip blank lines ("\n" or "\r\n").
        loop {
            let rest = self.b.get(self.pos..)?;
            if rest.is_empty() {
                return None;
            }
            if rest.starts_with(b"\n") {
                self.pos += 1;
                self.line += 1;
            } else if rest.starts_with(b"\r\n") {
                self.pos += 2;
                self.line += 1;
            } else {
                break;
            }
        }
        let (start, start_line) = (self.pos, self.line);
        let r = self.parse(start, start_line);
        if r.is_err() {
            // Resume after the record's first line.
            let next =
                self.b[start..].iter().position(|&c| c == b'\n').map_or(self.b.len(), |p| start + p + 1);
            self.pos = next;
            self.line = start_line + 1;
        }
        Some(r)
    }

    fn parse(&mut self, start: usize, start_line: usize) -> std::result::Result<RawRecord, Bad> {
        let b = self.b;
        let mut i = start;
        // The line of byte `i`, counted as bytes are consumed (recounting from the record's
        // start at each field would be quadratic in a record of many quoted fields).
        let mut line = start_line;
        let mut fields = Vec::new();
        let max = self.max;
        let too_long =
            || (start_line, format!("record is longer than {max} bytes (an unclosed quote, or a huge line)"));
        loop {
            let mut field = Vec::new();
            if self.quoting && b.get(i) == Some(&b'"') {
                let open_line = line;
                i += 1;
                loop {
                    if i - start > max {
                        return Err(too_long());
                    }
                    match b.get(i) {
                        None => {
                            return Err((
                                open_line,
                                "unbalanced quote: the quoted field opened on this line is never closed"
                                    .into(),
                            ))
                        }
                        Some(b'"') if b.get(i + 1) == Some(&b'"') => {
                            field.push(b'"');
                            i += 2;
                        }
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(&c) => {
                            field.push(c);
                            line += usize::from(c == b'\n');
                            i += 1;
                        }
                    }
                }
                match b.get(i) {
                    None | Some(b'\n') => {}
                    Some(&c) if c == self.delim => {}
                    Some(b'\r') if matches!(b.get(i + 1), None | Some(b'\n')) => i += 1,
                    Some(&c) => {
                        return Err((
                            line,
                            format!("unexpected {:?} after a closing quote (a quote inside a quoted field is written \"\")", c as char),
                        ))
                    }
                }
            } else {
                while let Some(&c) = b.get(i) {
                    if c == self.delim || c == b'\n' {
                        break;
                    }
                    field.push(c);
                    i += 1;
                    if i - start > max {
                        return Err(too_long());
                    }
                }
                if field.last() == Some(&b'\r') && matches!(b.get(i), None | Some(b'\n')) {
                    field.pop();
                }
            }
            fields.push(field);
            match b.get(i) {
                Some(&c) if c == self.delim => i += 1,
                Some(b'\n') => {
                    i += 1;
                    line += 1;
                    break;
                }
                _ => break,
            }
        }
        self.line = line;
        self.pos = i;
        Ok(RawRecord { line: start_line, fields })
    }
}

/// Field `k` of a record as UTF-8; the error names the line of the bad byte.
fn field_str(rec: &RawRecord, k: usize) -> std::result::Result<String, Bad> {
    let raw = rec.fields.get(k).map(Vec::as_slice).unwrap_or_default();
    match std::str::from_utf8(raw) {
        Ok(s) => Ok(s.to_string()),
        Err(e) => {
            let before = raw.get(..e.valid_up_to()).unwrap_or_default();
            let line = rec.line + before.iter().filter(|&&c| c == b'\n').count();
            Err((
                line,
                format!("invalid UTF-8 in field {} (byte offset {} in the field)", k + 1, e.valid_up_to()),
            ))
        }
    }
}

/// CSV or TSV: (good rows, bad rows, number of data records). A bad header is an error.
fn read_delimited(
    b: &[u8],
    delim: u8,
    quoting: bool,
    opts: &TableOptions,
) -> std::result::Result<(Vec<Row>, Vec<Bad>, usize), Bad> {
    let mut recs = Records { b, pos: 0, line: 1, delim, quoting, max: opts.max_line_bytes };
    let header = match recs.next_record() {
        None => return Err((1, "empty file: no header row".into())),
        Some(r) => r?,
    };
    let names = (0..header.fields.len())
        .map(|k| field_str(&header, k).map(|s| s.trim().to_string()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut seen = std::collections::HashSet::with_capacity(names.len());
    for n in &names {
        if !seen.insert(n.as_str()) {
            return Err((header.line, format!("column '{n}' appears twice in the header")));
        }
    }
    let column = |want: &str| {
        names.iter().position(|n| n == want).ok_or_else(|| {
            let mut shown: Vec<&str> = names.iter().take(20).map(String::as_str).collect();
            if names.len() > 20 {
                shown.push("...");
            }
            (header.line, format!("no column '{want}' in the header (columns: {})", shown.join(", ")))
        })
    };
    let text_col = column(&opts.text)?;
    let pair_col = opts.text_pair.as_deref().map(column).transpose()?;
    let label_col = opts.label.as_deref().map(column).transpose()?;

    let (mut rows, mut bad, mut total) = (Vec::new(), Vec::new(), 0usize);
    while let Some(rec) = recs.next_record() {
        total += 1;
        let row = rec.and_then(|rec| {
            if rec.fields.len() != names.len() {
                return Err((
                    rec.line,
                    format!("expected {} fields as in the header, found {}", names.len(), rec.fields.len()),
                ));
            }
            let fields = (0..rec.fields.len())
                .map(|k| field_str(&rec, k))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let get = |k: usize| fields.get(k).cloned().unwrap_or_default();
            let text = nonempty(get(text_col), &opts.text, rec.line)?;
            let pair = match (pair_col, &opts.text_pair) {
                (Some(k), Some(name)) => Some(nonempty(get(k), name, rec.line)?),
                _ => None,
            };
            let label = match (label_col, &opts.label) {
                (Some(k), Some(name)) => {
                    let l = get(k).trim().to_string();
                    if l.is_empty() {
                        return Err((rec.line, format!("empty label in column '{name}'")));
                    }
                    Some(RawLabel::Name(l))
                }
                _ => None,
            };
            Ok(Row { line: rec.line, text, pair, label })
        });
        match row {
            Ok(r) => rows.push(r),
            Err(e) => bad.push(e),
        }
    }
    Ok((rows, bad, total))
}

fn nonempty(s: String, column: &str, line: usize) -> std::result::Result<String, Bad> {
    if s.trim().is_empty() {
        Err((line, format!("empty text in '{column}'")))
    } else {
        Ok(s)
    }
}

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a bool",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// JSON Lines: (good rows, bad rows, number of non-blank lines).
fn read_jsonl(b: &[u8], opts: &TableOptions) -> (Vec<Row>, Vec<Bad>, usize) {
    let (mut rows, mut bad, mut total) = (Vec::new(), Vec::new(), 0usize);
    for (i, raw) in b.split(|&c| c == b'\n').enumerate() {
        let line = i + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        total += 1;
        match json_row(raw, line, opts) {
            Ok(r) => rows.push(r),
            Err(m) => bad.push((line, m)),
        }
    }
    (rows, bad, total)
}

fn json_row(raw: &[u8], line: usize, opts: &TableOptions) -> std::result::Result<Row, String> {
    if raw.len() > opts.max_line_bytes {
        return Err(format!("line is {} bytes, over the limit of {}", raw.len(), opts.max_line_bytes));
    }
    let s = std::str::from_utf8(raw)
        .map_err(|e| format!("invalid UTF-8 at byte {} of the line", e.valid_up_to()))?;
    let v: serde_json::Value = serde_json::from_str(s).map_err(|e| format!("invalid JSON: {e}"))?;
    let obj = v.as_object().ok_or_else(|| format!("expected a JSON object, found {}", json_type(&v)))?;
    let text_of = |name: &str| -> std::result::Result<String, String> {
        match obj.get(name) {
            None | Some(serde_json::Value::Null) => Err(format!("missing field '{name}'")),
            Some(serde_json::Value::String(t)) if t.trim().is_empty() => {
                Err(format!("empty text in '{name}'"))
            }
            Some(serde_json::Value::String(t)) => Ok(t.clone()),
            Some(other) => Err(format!("field '{name}' is {}, expected a string", json_type(other))),
        }
    };
    let text = text_of(&opts.text)?;
    let pair = opts.text_pair.as_deref().map(text_of).transpose()?;
    let label = match opts.label.as_deref() {
        None => None,
        Some(name) => Some(match obj.get(name) {
            None | Some(serde_json::Value::Null) => return Err(format!("missing field '{name}'")),
            Some(serde_json::Value::String(l)) if l.trim().is_empty() => {
                return Err(format!("empty label in '{name}'"))
            }
            Some(serde_json::Value::String(l)) => RawLabel::Name(l.trim().to_string()),
            Some(serde_json::Value::Number(n)) => match n.as_i64() {
                Some(i) => RawLabel::Int(i),
                None => return Err(format!("label {n} in '{name}' is not an integer in range")),
            },
            Some(other) => {
                return Err(format!(
                    "field '{name}' is {}, expected a string or an integer label",
                    json_type(other)
                ))
            }
        }),
    };
    Ok(Row { line, text, pair, label })
}
