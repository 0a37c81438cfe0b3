//! Datasets and the data pipeline: image folders, CSV/TSV/JSONL text tables, plain-text corpora,
//! tokenizers, label maps, seeded splits, and the skip policy that keeps bad data from being
//! dropped silently.
//!
//! Everything here runs on the CPU and checks the data before any training starts: an image
//! folder is decoded file by file in a pre-scan, a table is parsed record by record, and every
//! problem names the file and, for text, the 1-based line.

pub mod chat;
pub mod corpus;
pub mod digits;
pub mod image;
pub mod image_folder;
pub mod labels;
pub mod skip;
pub mod split;
mod spm_vocab;
pub mod table;
pub mod tokenize;

pub use corpus::Corpus;
pub use image::{decode, eval_transform, train_transform, Augment, ImageLimits, ImageSpec};
pub use image_folder::{ImageFolder, ImageFolderOptions, ImageItem};
pub use labels::LabelMap;
pub use skip::{enforce, SkipPolicy, Skipped};
pub use split::{kfold, shuffled, stratified_split, Fold};
pub use table::{TableFormat, TableOptions, TextItem, TextTable};
pub use tokenize::{check_ids, TextBatch, TextTokenizer};
