//! Datasets. (Image folders, text tables and corpora arrive with the training driver.)

pub mod digits;
