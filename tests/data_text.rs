//! Label maps, seeded stratified splits and k-fold, text tables (pairs, labels, SST-2), and
//! plain-text corpora cut into blocks.

// Corpus splits are lists of ranges; a one-range list is the expected value, not a mistake.
#![allow(clippy::single_range_in_vec_init)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use whet::data::corpus::Corpus;
use whet::data::labels::LabelMap;
use whet::data::split::{kfold, shuffled, stratified_split};
use whet::data::table::{TableOptions, TextTable};
use whet::data::tokenize::TextTokenizer;
use whet::Error;

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn label_map_orders_and_rejects() {
    let m = LabelMap::from_observed(["bee", "ant", "bee", "cat"]);
    assert_eq!(m.names(), &names(&["ant", "bee", "cat"]));
    assert_eq!((m.index("cat"), m.index("dog"), m.name(1), m.name(3)), (Some(2), None, Some("bee"), None));
    // Numeric order when every label is an integer; string order otherwise.
    assert_eq!(LabelMap::from_observed(["10", "2", "-1", "2"]).names(), &names(&["-1", "2", "10"]));
    assert_eq!(LabelMap::from_observed(["10", "2", "x"]).names(), &names(&["10", "2", "x"]));
    assert!(LabelMap::from_observed(Vec::<&str>::new()).is_empty());
    assert!(LabelMap::new(vec![]).is_err());
    assert!(LabelMap::new(names(&["a", "b", "a"])).unwrap_err().to_string().contains("'a' appears twice"));
    assert!(LabelMap::new(names(&["a", ""])).is_err());
    let m = LabelMap::new(names(&["zebra", "ant"])).unwrap();
    assert_eq!((m.len(), m.index("ant")), (2, Some(1)), "given order is kept");

    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("labels.json");
    m.save(&p).unwrap();
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    assert_eq!(v, serde_json::json!({"labels": ["zebra", "ant"]}));
    assert_eq!(LabelMap::load(&p).unwrap(), m);
    for (bad, want) in [
        ("{\"labels\": [\"a\", \"a\"]}", "appears twice"),
        ("{\"labels\": [1]}", "not a string"),
        ("[\"a\"]", "\"labels\" array"),
        ("{\"labels\": [\"a\"", "invalid JSON"),
    ] {
        std::fs::write(&p, bad).unwrap();
        match LabelMap::load(&p).unwrap_err() {
            Error::Format { path, message, .. } => {
                assert_eq!(path, p.display().to_string());
                assert!(message.contains(want), "{bad}: {message}");
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn shuffled_is_a_seeded_permutation() {
    let a = shuffled(100, 42);
    let mut s = a.clone();
    s.sort();
    assert_eq!(s, (0..100).collect::<Vec<_>>());
    assert_eq!(a, shuffled(100, 42));
    assert_ne!(a, shuffled(100, 43));
    assert_ne!(a, (0..100).collect::<Vec<_>>());
    assert!(shuffled(0, 1).is_empty());
}

#[test]
fn stratified_split_keeps_class_proportions() {
    // Classes of 50, 30, 10, 2 and 1 items, interleaved.
    let mut labels = Vec::new();
    for (c, n) in [(0usize, 50usize), (1, 30), (2, 10), (3, 2), (4, 1)] {
        labels.extend(std::iter::repeat_n(c, n));
    }
    let order = shuffled(labels.len(), 9);
    let labels: Vec<usize> = order.iter().map(|&i| labels[i]).collect();
    let (keep, hold) = stratified_split(&labels, 0.2, 1).unwrap();
    let count = |ix: &[usize], c| ix.iter().filter(|&&i| labels[i] == c).count();
    // round(.2 n): 10, 6, 2; the 2-item class keeps one on each side; the 1-item class stays.
    assert_eq!((0..5).map(|c| count(&hold, c)).collect::<Vec<_>>(), vec![10, 6, 2, 1, 0]);
    assert_eq!((0..5).map(|c| count(&keep, c)).collect::<Vec<_>>(), vec![40, 24, 8, 1, 1]);
    let all: HashSet<usize> = keep.iter().chain(&hold).copied().collect();
    assert_eq!(all.len(), labels.len(), "disjoint and complete");
    assert!(keep.windows(2).all(|w| w[0] < w[1]) && hold.windows(2).all(|w| w[0] < w[1]), "sorted");
    assert_eq!(stratified_split(&labels, 0.2, 1).unwrap().1, hold);
    assert_ne!(stratified_split(&labels, 0.2, 2).unwrap().1, hold);
    // A tiny holdout still puts one of every class of two or more on the holdout side.
    let (_, tiny) = stratified_split(&labels, 0.001, 1).unwrap();
    assert_eq!((0..5).map(|c| count(&tiny, c)).collect::<Vec<_>>(), vec![1, 1, 1, 1, 0]);
    assert!(stratified_split(&labels, 0.0, 1).unwrap().1.is_empty());
    assert!(stratified_split(&labels, 1.0, 1).is_err());
    assert!(stratified_split(&labels, f64::NAN, 1).is_err());
}

#[test]
fn kfold_partitions_and_stratifies() {
    let labels: Vec<usize> = (0..23).map(|i| if i % 3 == 0 { 1 } else { 0 }).collect(); // 8 ones, 15 zeros
    let folds = kfold(&labels, 5, 3).unwrap();
    assert_eq!(folds.len(), 5);
    let mut seen = vec![0usize; labels.len()];
    for f in &folds {
        for &i in &f.test {
            seen[i] += 1;
        }
        let test: HashSet<usize> = f.test.iter().copied().collect();
        let train: HashSet<usize> = f.train.iter().copied().collect();
        assert!(test.is_disjoint(&train));
        assert_eq!(test.len() + train.len(), 23);
        assert!(f.test.len() == 4 || f.test.len() == 5, "fold sizes within one: {}", f.test.len());
        let ones = f.test.iter().filter(|&&i| labels[i] == 1).count();
        assert!(ones == 1 || ones == 2, "8 ones over 5 folds: {ones}");
    }
    assert_eq!(seen, vec![1; 23], "test folds partition the items");
    assert_eq!(kfold(&labels, 5, 3).unwrap(), folds);
    assert!(kfold(&labels, 1, 0).is_err());
    assert!(kfold(&labels[..3], 4, 0).is_err());
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn tables_read_pairs_and_unlabelled_text() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "nli.csv",
        "premise,hypothesis,label\nA man sleeps.,A person rests.,entailment\n\"Two, dogs\",No animals.,contradiction\n",
    );
    let opts =
        TableOptions { text: "premise".into(), text_pair: Some("hypothesis".into()), ..Default::default() };
    let t = TextTable::open(&p, &opts).unwrap();
    assert_eq!(t.labels.names(), &names(&["contradiction", "entailment"]));
    assert_eq!(t.items[1].text, "Two, dogs");
    assert_eq!(t.items[1].pair.as_deref(), Some("No animals."));
    assert_eq!(t.items.iter().map(|i| i.label).collect::<Vec<_>>(), vec![Some(1), Some(0)]);

    let p = write(d.path(), "raw.jsonl", "{\"text\": \"only text\"}\n{\"text\": \"more\", \"extra\": 1}\n");
    let t = TextTable::open(&p, &TableOptions { label: None, ..Default::default() }).unwrap();
    assert!(t.labels.is_empty());
    assert_eq!(
        t.items.iter().map(|i| (i.text.as_str(), i.label)).collect::<Vec<_>>(),
        vec![("only text", None), ("more", None)]
    );

    // JSON integer labels without a fixed set are names, in numeric order.
    let p = write(d.path(), "ints.jsonl", "{\"text\": \"a\", \"label\": 10}\n{\"text\": \"b\", \"label\": 2}\n{\"text\": \"c\", \"label\": \"1\"}\n");
    let t = TextTable::open(&p, &TableOptions::default()).unwrap();
    assert_eq!(t.labels.names(), &names(&["1", "2", "10"]));
    assert_eq!(t.items.iter().map(|i| i.label).collect::<Vec<_>>(), vec![Some(2), Some(1), Some(0)]);

    let p = write(d.path(), "empty.csv", "text,label\n\n");
    assert!(TextTable::open(&p, &TableOptions::default()).unwrap_err().to_string().contains("no data rows"));
}

#[test]
fn sst2_real_files() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/SST-2");
    if !dir.exists() {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "!!!!!!!! sst2_real_files: {} ABSENT, SKIPPED !!!!!!!!",
            dir.display()
        );
        return;
    }
    let t = TextTable::open(
        &dir.join("train.tsv"),
        &TableOptions { text: "sentence".into(), ..Default::default() },
    )
    .unwrap();
    assert_eq!(t.items.len(), 67349);
    assert!(t.skipped.is_empty());
    assert_eq!(t.labels.names(), &names(&["0", "1"]));
    assert_eq!(t.items.iter().filter(|i| i.label == Some(1)).count(), 37569);
    // The file has CRLF line ends: no text keeps the '\r'.
    assert_eq!(t.items[0].text, "hide new secretions from the parental units");
    assert!(t.items.iter().all(|i| !i.text.contains('\r')));
    assert_eq!(t.items[0].line, Some(2));
    // dev/test name the text column `content`; with the training labels fixed.
    let opts = TableOptions { text: "content".into(), labels: Some(t.labels.clone()), ..Default::default() };
    let dev = TextTable::open(&dir.join("dev.tsv"), &opts).unwrap();
    assert_eq!(dev.items.len(), 872);
    assert_eq!(dev.items.iter().filter(|i| i.label == Some(1)).count(), 444);
    let test = TextTable::open(&dir.join("test.tsv"), &opts).unwrap();
    assert_eq!((test.items.len(), test.items.iter().filter(|i| i.label == Some(0)).count()), (1821, 912));
    // The wrong column name for train says which columns exist.
    let e = TextTable::open(&dir.join("train.tsv"), &opts).unwrap_err().to_string();
    assert!(e.contains("train.tsv:1: no column 'content'") && e.contains("label, sentence"), "{e}");
}

/// A word-level tokenizer.json: "[UNK]" 0, "a" 1, "b" 2, "c" 3, split on whitespace.
const WORDS: &str = r#"{"version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
 "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null, "decoder": null,
 "model": {"type": "WordLevel", "vocab": {"[UNK]": 0, "a": 1, "b": 2, "c": 3}, "unk_token": "[UNK]"}}"#;

#[test]
fn corpus_blocks_and_tail_split() {
    let d = tempfile::tempdir().unwrap();
    let tok = TextTokenizer::from_file(&write(d.path(), "tokenizer.json", WORDS)).unwrap();
    assert_eq!(tok.vocab_size(), 4);
    let c = Corpus::open(&write(d.path(), "c.txt", "a b c\nc b\n\nb zz a\n"), &tok).unwrap();
    assert_eq!(c.tokens, vec![1, 2, 3, 3, 2, 2, 0, 1]);
    assert_eq!(c.blocks(3), vec![0..3, 3..6]);
    assert_eq!(c.blocks(8), vec![0..8]);
    assert!(c.blocks(9).is_empty() && c.blocks(0).is_empty());
    assert_eq!(c.split(2, 0.25), (vec![0..2, 2..4, 4..6], vec![6..8]));
    assert_eq!(c.split(2, 0.01), (vec![0..2, 2..4, 4..6], vec![6..8]), "at least one val block");
    assert_eq!(c.split(2, 0.0), (vec![0..2, 2..4, 4..6, 6..8], vec![]));
    assert_eq!(c.split(8, 0.5), (vec![0..8], vec![]), "one block stays for training");

    // Big enough for several tokenizer chunks: nothing lost or doubled at the cuts.
    let big = "a b c\nb\n".repeat(150_000);
    let c = Corpus::open(&write(d.path(), "big.txt", &big), &tok).unwrap();
    assert_eq!(c.tokens.len(), 600_000);
    assert_eq!(&c.tokens[..8], &[1, 2, 3, 2, 1, 2, 3, 2]);

    let p = d.path().join("bad.txt");
    std::fs::write(&p, b"a b\nc a\nb \xff c\n").unwrap();
    match Corpus::open(&p, &tok).unwrap_err() {
        Error::Format { path, line, .. } => assert_eq!((path, line), (p.display().to_string(), Some(3))),
        other => panic!("{other:?}"),
    }
    assert!(Corpus::open(&write(d.path(), "blank.txt", " \n\n"), &tok).is_err());
}
