//! The one split routine of every data kind: which items train, which validate, which test.
//!
//! Images, tables and corpora arrive as a pool of items plus, per held-out split, either items
//! given by the data (a test table, an image root's `val/` folder, a corpus tail) or a ratio of
//! the pool to carve. [`resolve`] then applies, in this order and with these seeds (runs and
//! their resumes depend on them selecting the same items):
//!
//! 1. cross-validation `(k, f)`: every item is pooled, fold `f` of a stratified k-fold split
//!    (`seed ^ 0xf01d`) is the test split and validation is carved from the rest (`seed ^ 2`);
//! 2. otherwise the test split is given, carved by `test_ratio` (`seed ^ 1`) or absent (then
//!    validation stands in for it), and validation is given or carved (`seed ^ 2`) so that it
//!    is `val_ratio` of the whole;
//! 3. `limit_train` / `limit_eval` / `limit_test` keep seeded stratified subsets
//!    (`seed ^ 0x5eed`).
//!
//! Items without labels (corpus blocks) form one class for holdouts and folds, and a limit keeps
//! the first items: blocks cut from one text stay in their order.

use crate::data::split::{kfold, stratified_split};
use crate::error::{Error, Result};

/// Where a held-out split comes from.
#[derive(Debug, Clone)]
pub enum Held<T> {
    /// Items the data names (a table, a split folder, a corpus tail).
    Given(Vec<T>),
    /// A stratified ratio of the pool (none when the ratio is 0).
    Carve,
    /// No such split: validation stands in for a missing test split.
    Absent,
}

/// The recipe's numbers for [`resolve`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitSpec {
    /// `data.split_seed`, else the training seed.
    pub seed: u64,
    pub val_ratio: f64,
    pub test_ratio: f64,
    /// `(folds, fold)` of cross-validation.
    pub fold: Option<(usize, usize)>,
    pub limit_train: Option<usize>,
    pub limit_eval: Option<usize>,
    pub limit_test: Option<usize>,
}

/// The three splits of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Splits<T> {
    pub train: Vec<T>,
    pub val: Vec<T>,
    pub test: Vec<T>,
    /// "test", or "val" when the data has no test split and validation stands in.
    pub test_split: &'static str,
}

/// The class of an item for stratification; `None` for unlabelled items (corpus blocks).
pub type LabelOf<'a, T> = Option<&'a dyn Fn(&T) -> usize>;

/// Split `pool` (plus any given `val` / `test` items) as the module docs describe.
pub fn resolve<T: Clone>(
    pool: Vec<T>,
    val: Held<T>,
    test: Held<T>,
    label: LabelOf<'_, T>,
    spec: &SplitSpec,
) -> Result<Splits<T>> {
    let by = |t: &T| label.map_or(0, |f| f(t));
    let seed = spec.seed;
    let (rest, val, test) = match spec.fold {
        Some((k, f)) => {
            // Every labelled item takes part, in pool, validation, test order.
            let mut pool = pool;
            for held in [val, test] {
                if let Held::Given(mut items) = held {
                    pool.append(&mut items);
                }
            }
            let test = hold_out_fold(&mut pool, by, k, f, seed)?;
            let val = carve(&mut pool, by, spec.val_ratio, seed ^ 2)?;
            (pool, val, Some(test))
        }
        None => {
            let mut pool = pool;
            let test = match test {
                Held::Given(items) => Some(items),
                Held::Carve if spec.test_ratio > 0.0 => {
                    Some(carve(&mut pool, by, spec.test_ratio, seed ^ 1)?)
                }
                Held::Carve | Held::Absent => None,
            };
            let val = match val {
                Held::Given(items) => items,
                // Relative to what the test holdout left, so validation is val_ratio of the whole.
                Held::Carve | Held::Absent => {
                    carve(&mut pool, by, spec.val_ratio / (1.0 - spec.test_ratio), seed ^ 2)?
                }
            };
            (pool, val, test)
        }
    };
    let train = limit(rest, label, spec.limit_train, seed)?;
    let val = limit(val, label, spec.limit_eval, seed)?;
    Ok(match test {
        Some(test) => Splits {
            train,
            test: limit(test, label, spec.limit_test.or(spec.limit_eval), seed)?,
            val,
            test_split: "test",
        },
        None => Splits { train, test: val.clone(), val, test_split: "val" },
    })
}

/// At most `n` items: a seeded stratified subset, or the first `n` of unlabelled items.
fn limit<T>(mut items: Vec<T>, label: LabelOf<'_, T>, n: Option<usize>, seed: u64) -> Result<Vec<T>> {
    match label {
        Some(f) => subset(items, f, n, seed),
        None => {
            if let Some(n) = n {
                items.truncate(n);
            }
            Ok(items)
        }
    }
}

/// Remove a stratified `ratio` of `items` (seeded by `seed`) and return it, in order.
fn carve<T>(items: &mut Vec<T>, label: impl Fn(&T) -> usize, ratio: f64, seed: u64) -> Result<Vec<T>> {
    let ys: Vec<usize> = items.iter().map(label).collect();
    let (_, held) = stratified_split(&ys, ratio, seed)?;
    Ok(take(items, &held))
}

/// A seeded, stratified subset of at most `limit` items (all when `None` or not smaller).
pub fn subset<T>(
    items: Vec<T>,
    label: impl Fn(&T) -> usize,
    limit: Option<usize>,
    seed: u64,
) -> Result<Vec<T>> {
    match limit {
        Some(n) if n < items.len() => {
            if n == 0 {
                return Err(Error::arg("recipe", "data.limit_train / limit_eval must be >= 1"));
            }
            let ys: Vec<usize> = items.iter().map(&label).collect();
            let (_, chosen) = stratified_split(&ys, n as f64 / items.len() as f64, seed ^ 0x5eed)?;
            let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
            Ok(chosen.iter().filter_map(|&i| slots.get_mut(i).and_then(Option::take)).collect())
        }
        _ => Ok(items),
    }
}

/// Remove the items at the sorted positions `held` from `items` and return them, in order.
fn take<T>(items: &mut Vec<T>, held: &[usize]) -> Vec<T> {
    let mut slots: Vec<Option<T>> = std::mem::take(items).into_iter().map(Some).collect();
    let out = held.iter().filter_map(|&i| slots.get_mut(i).and_then(Option::take)).collect();
    *items = slots.into_iter().flatten().collect();
    out
}

/// Fold `f` of a stratified `k`-fold split of `items` (by `split_seed`), removed from `items`.
/// The folds depend only on the labels and the seed, so every strategy and training seed of a
/// comparison holds out the same items.
fn hold_out_fold<T>(
    items: &mut Vec<T>,
    label: impl Fn(&T) -> usize,
    k: usize,
    f: usize,
    seed: u64,
) -> Result<Vec<T>> {
    let ys: Vec<usize> = items.iter().map(label).collect();
    let folds = kfold(&ys, k, seed ^ 0xf01d)?;
    let fold = folds
        .get(f)
        .ok_or_else(|| Error::arg("recipe", format!("data.fold {f} of {k} folds (folds count from 0)")))?;
    Ok(take(items, &fold.test))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Items 0..n with labels i % classes.
    fn items(n: usize) -> Vec<usize> {
        (0..n).collect()
    }

    fn class3(i: &usize) -> usize {
        i % 3
    }

    fn spec() -> SplitSpec {
        SplitSpec {
            seed: 7,
            val_ratio: 0.2,
            test_ratio: 0.2,
            fold: None,
            limit_train: None,
            limit_eval: None,
            limit_test: None,
        }
    }

    fn set(v: &[usize]) -> BTreeSet<usize> {
        v.iter().copied().collect()
    }

    #[test]
    fn carved_splits_are_disjoint_and_cover_the_pool() {
        let s = resolve(items(100), Held::Carve, Held::Carve, Some(&class3), &spec()).unwrap();
        assert_eq!(s.test_split, "test");
        let (tr, va, te) = (set(&s.train), set(&s.val), set(&s.test));
        assert!(tr.is_disjoint(&va) && tr.is_disjoint(&te) && va.is_disjoint(&te));
        assert_eq!(s.train.len() + s.val.len() + s.test.len(), 100);
        // About a fifth each, stratified: every class in every split.
        assert!((17..=23).contains(&s.val.len()) && (17..=23).contains(&s.test.len()), "{s:?}");
        for part in [&s.train, &s.val, &s.test] {
            assert_eq!(part.iter().map(class3).collect::<BTreeSet<_>>().len(), 3);
        }
        // Same seed, same items; another seed, other items.
        assert_eq!(s, resolve(items(100), Held::Carve, Held::Carve, Some(&class3), &spec()).unwrap());
        let other =
            resolve(items(100), Held::Carve, Held::Carve, Some(&class3), &SplitSpec { seed: 8, ..spec() });
        assert_ne!(s, other.unwrap());
    }

    #[test]
    fn an_absent_test_split_is_stood_in_for_by_validation() {
        let spec = SplitSpec { limit_test: Some(1), ..spec() };
        let s = resolve(items(30), Held::Carve, Held::Absent, Some(&class3), &spec).unwrap();
        assert_eq!((s.test_split, &s.test), ("val", &s.val));
        let given =
            resolve(items(30), Held::Given(vec![100, 101]), Held::Given(vec![200]), None, &spec).unwrap();
        assert_eq!((given.train.len(), given.val, given.test), (30, vec![100, 101], vec![200]));
    }

    #[test]
    fn folds_partition_every_item() {
        let k = 4;
        let mut tests = BTreeSet::new();
        for f in 0..k {
            let spec = SplitSpec { fold: Some((k, f)), test_ratio: 0.0, ..spec() };
            let s =
                resolve(items(40), Held::Given(items(50)[40..].to_vec()), Held::Absent, Some(&class3), &spec);
            let s = s.unwrap();
            assert_eq!(s.train.len() + s.val.len() + s.test.len(), 50);
            assert!(set(&s.train).is_disjoint(&set(&s.test)) && set(&s.val).is_disjoint(&set(&s.test)));
            assert!(tests.is_disjoint(&set(&s.test)), "fold {f} overlaps an earlier fold");
            tests.extend(s.test);
        }
        assert_eq!(tests, set(&items(50)));
    }

    #[test]
    fn limits_are_seeded_stratified_subsets() {
        let spec = SplitSpec { limit_train: Some(12), limit_eval: Some(3), ..spec() };
        let s = resolve(items(300), Held::Carve, Held::Carve, Some(&class3), &spec).unwrap();
        assert_eq!((s.train.len(), s.val.len(), s.test.len()), (12, 3, 3));
        let per_class: Vec<usize> =
            (0..3).map(|c| s.train.iter().filter(|i| class3(i) == c).count()).collect();
        assert_eq!(per_class, [4, 4, 4]);
        assert_eq!(s, resolve(items(300), Held::Carve, Held::Carve, Some(&class3), &spec).unwrap());
        // Unlabelled items keep their first n, in order.
        let blocks = resolve(items(10), Held::Given(vec![10, 11, 12]), Held::Absent, None, &spec).unwrap();
        assert_eq!(
            (blocks.train, blocks.val.clone(), blocks.test),
            ((0..10).collect(), vec![10, 11, 12], blocks.val)
        );
    }
}
