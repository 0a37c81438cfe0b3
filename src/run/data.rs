//! Stage 1 of a run: the recipe's data read, checked (bad items fail here, before any model is
//! loaded, or are listed under `skip_bad`) and split into train / validation / test by the one
//! routine of [`splits`](super::splits).

use std::ops::Range;
use std::path::Path;

use crate::data::corpus::Corpus;
use crate::data::image_folder::{ImageFolder, ImageFolderOptions, ImageItem};
use crate::data::labels::LabelMap;
use crate::data::skip::SkipPolicy;
use crate::data::table::{TableOptions, TextItem, TextTable};
use crate::data::tokenize::TextTokenizer;
use crate::error::Result;

use super::recipe::{DataKind, Recipe};
use super::splits::{resolve, Held, SplitSpec, Splits};

/// The items of a run, by data kind.
// One per run, never in a collection: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Items {
    Images(Splits<ImageItem>),
    Texts(Splits<TextItem>),
    /// Token blocks of one corpus, read with the model's tokenizer.
    Blocks {
        tokens: Vec<u32>,
        tokenizer: TextTokenizer,
        splits: Splits<Range<usize>>,
    },
}

/// The data of a run, split and ready for a model.
pub struct Data {
    pub items: Items,
    /// Class names by index (classifiers).
    pub labels: Option<LabelMap>,
    /// Every item skipped under `skip_bad`, as "path:line: reason".
    pub skipped: Vec<String>,
}

impl Items {
    /// "test", or "val" when the data has no test split and validation stands in.
    pub fn test_split(&self) -> &'static str {
        match self {
            Items::Images(s) => s.test_split,
            Items::Texts(s) => s.test_split,
            Items::Blocks { splits, .. } => splits.test_split,
        }
    }
}

/// The seed of every split and subset: `data.split_seed`, else the training seed, so runs with
/// different training seeds can share one test set (paired comparisons).
pub fn split_seed(recipe: &Recipe) -> u64 {
    recipe.data.split_seed.unwrap_or(recipe.train.seed)
}

/// What `skip_bad` and `max_skipped` ask of every reader.
pub fn skip_policy(recipe: &Recipe) -> SkipPolicy {
    SkipPolicy { skip_bad: recipe.data.skip_bad, max_skipped: recipe.data.max_skipped }
}

fn split_spec(recipe: &Recipe) -> SplitSpec {
    let d = &recipe.data;
    SplitSpec {
        seed: split_seed(recipe),
        val_ratio: d.val_ratio,
        test_ratio: d.test_ratio,
        fold: d.folds.zip(d.fold),
        limit_train: d.limit_train,
        limit_eval: d.limit_eval,
        limit_test: d.limit_test,
    }
}

/// Read and split the data `recipe` names; with `progress`, the image pre-scan shows on stderr.
pub fn load(recipe: &Recipe, progress: bool) -> Result<Data> {
    match recipe.data.kind {
        DataKind::ImageFolder => images(recipe, progress),
        DataKind::Text => texts(recipe),
        DataKind::Corpus => corpus(recipe),
    }
}

/// An image folder, pre-scanned. Its own val/test folders (or the ratios it carves, seeded by
/// the split seed) are the given splits.
fn images(recipe: &Recipe, progress: bool) -> Result<Data> {
    let (d, spec) = (&recipe.data, split_spec(recipe));
    let opts = ImageFolderOptions {
        val_ratio: d.val_ratio,
        test_ratio: d.test_ratio,
        seed: spec.seed,
        policy: skip_policy(recipe),
        progress,
        ..Default::default()
    };
    let folder = ImageFolder::open(&d.train, &opts)?;
    let skipped = folder.skipped.iter().map(|s| s.to_string()).collect();
    let test = if folder.test.is_empty() { Held::Absent } else { Held::Given(folder.test) };
    let label = |i: &ImageItem| i.label;
    let splits = resolve(folder.train, Held::Given(folder.val), test, Some(&label), &spec)?;
    Ok(Data { items: Items::Images(splits), labels: Some(folder.labels), skipped })
}

/// A labelled table of texts, with optional val/test tables (read with `eval_text`, under the
/// training table's labels). Cross-validation reads neither.
fn texts(recipe: &Recipe) -> Result<Data> {
    let d = &recipe.data;
    let policy = skip_policy(recipe);
    let train = text_table(recipe, &d.train, &d.text, None, &policy)?;
    let labels = train.labels.clone();
    let mut skipped: Vec<String> = train.skipped.iter().map(|s| s.to_string()).collect();
    let eval_column = d.eval_text.as_deref().unwrap_or(&d.text);
    let mut given = |path: Option<&Path>| -> Result<Held<TextItem>> {
        match path.filter(|_| d.folds.is_none()) {
            Some(p) => {
                let t = text_table(recipe, p, eval_column, Some(labels.clone()), &policy)?;
                skipped.extend(t.skipped.iter().map(|s| s.to_string()));
                Ok(Held::Given(t.items))
            }
            None => Ok(Held::Carve),
        }
    };
    // The test table first: skipped items are listed in reading order.
    let test = given(d.test.as_deref())?;
    let val = given(d.val.as_deref())?;
    let label = |t: &TextItem| t.label.unwrap_or(0);
    let splits = resolve(train.items, val, test, Some(&label), &split_spec(recipe))?;
    Ok(Data { items: Items::Texts(splits), labels: Some(labels), skipped })
}

/// A table of the recipe's text columns: `column` as the text, `data.label` as the label.
fn text_table(
    recipe: &Recipe,
    path: &Path,
    column: &str,
    labels: Option<LabelMap>,
    policy: &SkipPolicy,
) -> Result<TextTable> {
    let d = &recipe.data;
    let opts = TableOptions {
        text: column.to_string(),
        text_pair: d.text_pair.clone(),
        label: Some(d.label.clone()),
        labels,
        policy: *policy,
        ..Default::default()
    };
    TextTable::open(path, &opts)
}

/// A text corpus cut into blocks of `max_len` tokens; validation is its contiguous tail.
fn corpus(recipe: &Recipe) -> Result<Data> {
    let d = &recipe.data;
    let tokenizer = tokenizer_for(recipe)?;
    let corpus = Corpus::open(&d.train, &tokenizer)?;
    let (train, val) = corpus.split(d.max_len, d.val_ratio);
    let splits = resolve(train, Held::Given(val), Held::Absent, None, &split_spec(recipe))?;
    Ok(Data {
        items: Items::Blocks { tokens: corpus.tokens, tokenizer, splits },
        labels: None,
        skipped: Vec::new(),
    })
}

/// The recipe's tokenizer: `model.tokenizer`, else `<model dir>/tokenizer.json`, else the
/// tokenizer embedded in a GGUF file.
pub fn tokenizer_for(recipe: &Recipe) -> Result<TextTokenizer> {
    let m = &recipe.model;
    if let Some(t) = &m.tokenizer {
        return TextTokenizer::from_file(t);
    }
    if m.path.is_dir() {
        return TextTokenizer::from_file(&m.path.join("tokenizer.json"));
    }
    if m.path.extension().is_some_and(|e| e == "gguf") {
        return TextTokenizer::from_gguf(&m.path);
    }
    let beside = m.path.parent().unwrap_or(Path::new(".")).join("tokenizer.json");
    TextTokenizer::from_file(&beside)
}
