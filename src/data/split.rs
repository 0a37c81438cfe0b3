//! Seeded, stratified index splits. Every function is deterministic in its seed (ChaCha8), so a
//! run's train/validation partition can be reproduced from the seed alone.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};

/// `0..n` in a seeded random order.
pub fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    v.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    v
}

/// Item indices grouped by class, classes in index order, items in index order.
fn by_class(labels: &[usize]) -> Vec<Vec<usize>> {
    let classes = labels.iter().max().map_or(0, |m| m + 1);
    let mut groups = vec![Vec::new(); classes];
    for (i, &l) in labels.iter().enumerate() {
        if let Some(g) = groups.get_mut(l) {
            g.push(i);
        }
    }
    groups
}

/// Split items into (keep, holdout) with about `holdout` of every class held out. A class with at
/// least two items keeps at least one on each side (when `holdout > 0`); a class with one item
/// stays on the keep side. Both lists are sorted.
pub fn stratified_split(labels: &[usize], holdout: f64, seed: u64) -> Result<(Vec<usize>, Vec<usize>)> {
    if !(0.0..1.0).contains(&holdout) {
        return Err(Error::arg("stratified_split", format!("holdout fraction {holdout} is not in [0, 1)")));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut keep, mut hold) = (Vec::new(), Vec::new());
    for mut group in by_class(labels) {
        group.shuffle(&mut rng);
        let n = group.len();
        let mut h = (holdout * n as f64).round() as usize;
        if holdout > 0.0 && n >= 2 {
            h = h.clamp(1, n - 1);
        } else if n < 2 {
            h = 0;
        }
        hold.extend_from_slice(&group[..h]);
        keep.extend_from_slice(&group[h..]);
    }
    keep.sort_unstable();
    hold.sort_unstable();
    Ok((keep, hold))
}

/// One fold of a k-fold split: indices to train on and to test on, both sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fold {
    pub train: Vec<usize>,
    pub test: Vec<usize>,
}

/// Stratified k-fold: the test sets partition `0..labels.len()`, every class is spread over the
/// folds as evenly as possible, and fold sizes differ by at most one.
pub fn kfold(labels: &[usize], k: usize, seed: u64) -> Result<Vec<Fold>> {
    if k < 2 {
        return Err(Error::arg("kfold", format!("k = {k}; need at least 2 folds")));
    }
    if k > labels.len() {
        return Err(Error::arg("kfold", format!("k = {k} folds but only {} items", labels.len())));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut tests = vec![Vec::new(); k];
    // Dealing round-robin and carrying the position over from class to class keeps both the
    // per-class counts and the overall fold sizes within one of each other.
    let mut next = 0usize;
    for mut group in by_class(labels) {
        group.shuffle(&mut rng);
        for i in group {
            tests[next].push(i);
            next = (next + 1) % k;
        }
    }
    let mut fold_of = vec![0usize; labels.len()];
    for (f, t) in tests.iter_mut().enumerate() {
        t.sort_unstable();
        for &i in t.iter() {
            fold_of[i] = f;
        }
    }
    Ok(tests
        .into_iter()
        .enumerate()
        .map(|(f, test)| Fold { train: (0..labels.len()).filter(|&i| fold_of[i] != f).collect(), test })
        .collect())
}
