//! `whet lr-find RECIPE`: the learning-rate range test ([`LrFinder`]) on the recipe's own task,
//! with the recipe's optimizer, batch size, freezing and adapters, so the suggested rate is one
//! for the run the recipe describes. The weights it changes are thrown away: nothing is written.
//!
//! The sweep replaces the recipe's schedule by geometric growth from `start` to `end` over
//! `steps` batches. Parameter groups with a rate of their own keep their ratio to the base rate,
//! and layer-wise rates their decay, so the sweep moves every rate by the same factor.

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::nn::Mode;
use crate::optim::{Optimizer, Schedule};
use crate::train::lr_finder::{LrFinder, LrReport};

use super::prepare::prepare;
use super::Recipe;

/// The range test of `recipe`'s task (see the module docs). With `progress`, loading shows its
/// progress on stderr.
pub fn lr_find(engine: &Engine, recipe: &Recipe, finder: &LrFinder, progress: bool) -> Result<LrReport> {
    let mut prep = prepare(engine, recipe, progress)?;
    let mut optim = prep.optim_config(recipe)?;
    let scale = finder.start / optim.lr;
    optim.lr = finder.start;
    for g in &mut optim.groups {
        g.lr = g.lr.map(|lr| lr * scale);
        g.schedule = None;
    }
    let growth = (finder.end / finder.start).powf(1.0 / (finder.steps.max(2) - 1) as f64);
    optim.schedule = Schedule::Exponential { gamma: growth };
    let driver = prep.driver_config(recipe, false);
    let task = prep.task.as_task();
    // The trainable set of the run's first epoch (a linear probe's head, LoRA's adapters).
    driver.plan.apply(task.params_mut(), 0)?;
    if let Some(f) = &driver.freeze {
        task.params_mut().freeze(f)?;
    }
    let n = task.train_len();
    let batch = recipe.train.batch_size.min(n);
    if batch == 0 {
        return Err(Error::arg("lr-find", "the recipe's training split is empty"));
    }
    let mut optimizer = Optimizer::new(engine, optim)?;
    let mut order: Vec<usize> = Vec::new();
    let seed = recipe.train.seed;
    finder.run(|_lr| {
        if order.len() < batch {
            // Another pass over the training items, reshuffled.
            order = shuffled(n, seed ^ optimizer.steps());
        }
        let items: Vec<usize> = order.drain(..batch).collect();
        let loss = task.loss(&items, Mode::train(seed ^ optimizer.steps()))?;
        let grads = loss.backward()?;
        optimizer.step(task.params_mut(), &grads)?;
        Ok(loss.to_vec()?[0])
    })
}

/// `0..n` in a seeded order.
fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    use rand::seq::SliceRandom;
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
    let mut v: Vec<usize> = (0..n).collect();
    v.shuffle(&mut rng);
    v
}
