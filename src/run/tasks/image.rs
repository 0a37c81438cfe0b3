//! Image classification over an [`ImageFolder`]: decoded images are kept in memory (downscaled
//! to the model's resize size, so augmentation still has pixels to crop from), training items are
//! augmented with a seed drawn from the step's dropout seed (exact resume replays them), and
//! evaluation tensors are prepared once.

use std::collections::HashMap;
use std::ops::Range;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{gathered_report, probabilities, regularised, val_share, IMAGE_EVAL_BATCH};
use crate::data::image::{decode, eval_transform, train_transform, Augment, ImageLimits, ImageSpec};
use crate::data::image_folder::ImageItem;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::eval::Predictions;
use crate::models::zoo::AnyModel;
use crate::nn::{Mode, Params};
use crate::ops::loss::{cross_entropy, CrossEntropy};
use crate::tensor::Tensor;
use crate::train::driver::{whole_split, Metrics, Task};
use crate::train::l2sp::L2Sp;

/// A classifier of images into `classes`.
pub struct ImageTask {
    pub engine: Engine,
    pub model: AnyModel,
    pub spec: ImageSpec,
    pub augment: Augment,
    pub classes: usize,
    pub label_smoothing: f32,
    pub l2sp: Option<L2Sp>,
    train: Vec<ImageItem>,
    val: Vec<ImageItem>,
    limits: ImageLimits,
    /// Decoded training images by index (filled on first use).
    decoded: HashMap<usize, image::RgbImage>,
    /// Prepared inputs of the validation items last evaluated (a rank's share, or all).
    val_inputs: Option<(Range<usize>, Vec<Vec<f32>>)>,
}

/// Builds an [`ImageTask`]: `ImageTask::builder(&engine, model).train(items).val(items)
/// .classes(2).build()?`.
pub struct ImageTaskBuilder {
    engine: Engine,
    model: AnyModel,
    train: Vec<ImageItem>,
    val: Vec<ImageItem>,
    classes: Option<usize>,
    augment: Augment,
    spec: Option<ImageSpec>,
    label_smoothing: f32,
}

impl ImageTaskBuilder {
    /// Labelled images to train on (required, at least one).
    pub fn train(mut self, items: Vec<ImageItem>) -> Self {
        self.train = items;
        self
    }

    /// Labelled images evaluated after each epoch (default: none).
    pub fn val(mut self, items: Vec<ImageItem>) -> Self {
        self.val = items;
        self
    }

    /// Number of classes, the model head's outputs (required).
    pub fn classes(mut self, n: usize) -> Self {
        self.classes = Some(n);
        self
    }

    /// Training-time augmentation (default: none).
    pub fn augment(mut self, augment: Augment) -> Self {
        self.augment = augment;
        self
    }

    /// Input size and normalisation (default: the model's own `image_spec()`).
    pub fn spec(mut self, spec: ImageSpec) -> Self {
        self.spec = Some(spec);
        self
    }

    /// Label smoothing of the training loss (default 0).
    pub fn label_smoothing(mut self, eps: f32) -> Self {
        self.label_smoothing = eps;
        self
    }

    /// The task, or [`Error::InvalidArgument`] naming the setting that is missing or wrong.
    pub fn build(self) -> Result<ImageTask> {
        const OP: &str = "ImageTask::builder";
        let classes = self.classes.ok_or_else(|| Error::arg(OP, "classes is not set"))?;
        if classes == 0 {
            return Err(Error::arg(OP, "classes must be >= 1"));
        }
        if self.train.is_empty() {
            return Err(Error::arg("image task", "no training images"));
        }
        if let Some(i) = self.train.iter().chain(&self.val).find(|i| i.label >= classes) {
            return Err(Error::arg(
                OP,
                format!("{}: label {} is not below classes = {classes}", i.path.display(), i.label),
            ));
        }
        let spec = match self.spec.or_else(|| self.model.image_spec()) {
            Some(s) => s,
            None => return Err(Error::arg(OP, "spec is not set and the model is not an image model")),
        };
        Ok(ImageTask {
            engine: self.engine,
            model: self.model,
            spec,
            augment: self.augment,
            classes,
            label_smoothing: self.label_smoothing,
            l2sp: None,
            train: self.train,
            val: self.val,
            limits: ImageLimits::default(),
            decoded: HashMap::new(),
            val_inputs: None,
        })
    }
}

impl ImageTask {
    /// An [`ImageTaskBuilder`] for `model`.
    pub fn builder(engine: &Engine, model: AnyModel) -> ImageTaskBuilder {
        ImageTaskBuilder {
            engine: engine.clone(),
            model,
            train: Vec::new(),
            val: Vec::new(),
            classes: None,
            augment: Augment::default(),
            spec: None,
            label_smoothing: 0.0,
        }
    }

    /// Decode and shrink to the model's resize size (the largest any transform reads).
    fn load(&self, item: &ImageItem) -> Result<image::RgbImage> {
        let img = decode(&item.path, &self.limits)?;
        let (w, h) = img.dimensions();
        let short = w.min(h).max(1);
        let target = self.spec.resize.max(self.spec.size);
        if short > target {
            let (nw, nh) = (
                (w as u64 * target as u64 / short as u64) as u32,
                (h as u64 * target as u64 / short as u64) as u32,
            );
            Ok(image::imageops::resize(&img, nw.max(1), nh.max(1), image::imageops::FilterType::Triangle))
        } else {
            Ok(img)
        }
    }

    /// Stack CHW images into one `[n, 3, S, S]` tensor.
    fn batch(&self, images: &[Vec<f32>]) -> Result<Tensor> {
        let s = self.spec.size as usize;
        let flat: Vec<f32> = images.iter().flat_map(|v| v.iter().copied()).collect();
        Tensor::from_slice(&self.engine, &flat, &[images.len(), 3, s, s])
    }

    /// The model's evaluation input for `item`: CHW, `3 × size × size`, normalised exactly as
    /// [`ImageTask::predict`] feeds it (attributions differentiate with respect to it).
    pub fn eval_input(&self, item: &ImageItem) -> Result<Vec<f32>> {
        Ok(eval_transform(&self.load(item)?, &self.spec))
    }

    /// Class probabilities of `items` (evaluation mode, no tape).
    pub fn predict(&mut self, items: &[ImageItem]) -> Result<Predictions> {
        let labels = items.iter().map(|i| i.label).collect();
        Predictions::new(self.probabilities_of(items)?, labels, self.classes)
    }

    /// Class probabilities of `items`, row-major (empty for no items).
    pub fn probabilities_of(&self, items: &[ImageItem]) -> Result<Vec<f32>> {
        let inputs: Vec<Vec<f32>> = items.iter().map(|it| self.eval_input(it)).collect::<Result<_>>()?;
        self.input_probabilities(&inputs)
    }

    fn input_probabilities(&self, inputs: &[Vec<f32>]) -> Result<Vec<f32>> {
        let _g = self.engine.no_grad();
        let mut probs = Vec::with_capacity(inputs.len() * self.classes);
        for chunk in inputs.chunks(IMAGE_EVAL_BATCH) {
            let logits = self.model.classify_images(&self.batch(chunk)?, Mode::EVAL)?;
            probs.extend(probabilities(&logits)?);
        }
        Ok(probs)
    }
}

impl Task for ImageTask {
    fn params(&self) -> &Params {
        self.model.params()
    }
    fn params_mut(&mut self) -> &mut Params {
        self.model.params_mut()
    }
    fn train_len(&self) -> usize {
        self.train.len()
    }

    fn loss(&mut self, items: &[usize], mode: Mode) -> Result<Tensor> {
        let mut inputs = Vec::with_capacity(items.len());
        let mut labels = Vec::with_capacity(items.len());
        for &i in items {
            let item = self
                .train
                .get(i)
                .ok_or_else(|| Error::arg("image task", format!("item {i} out of range")))?;
            if !self.decoded.contains_key(&i) {
                let img = self.load(item)?;
                self.decoded.insert(i, img);
            }
            // Each item's augmentation depends only on the step's seed and the item: a resumed
            // run draws the same crops and flips.
            let mut rng =
                ChaCha8Rng::seed_from_u64(mode.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            inputs.push(train_transform(&self.decoded[&i], &self.spec, &self.augment, &mut rng));
            labels.push(item.label as u32);
        }
        let logits = self.model.classify_images(&self.batch(&inputs)?, mode)?;
        let ce = CrossEntropy { label_smoothing: self.label_smoothing, ..Default::default() };
        let loss = cross_entropy(&logits, &labels, ce)?;
        regularised(loss, self.l2sp.as_ref(), self.model.params())
    }

    fn evaluate(&mut self) -> Result<Metrics> {
        whole_split(self)
    }

    fn val_len(&self) -> usize {
        self.val.len()
    }

    /// The class probabilities of the items, row after row (their inputs decoded once).
    fn val_outputs(&mut self, items: Range<usize>) -> Result<Vec<f64>> {
        let val = val_share(&self.val, &items, "image task")?;
        let inputs = match self.val_inputs.take() {
            Some((r, v)) if r == items => v,
            _ => val.iter().map(|it| self.eval_input(it)).collect::<Result<_>>()?,
        };
        let probs = self.input_probabilities(&inputs);
        self.val_inputs = Some((items, inputs));
        Ok(probs?.into_iter().map(f64::from).collect())
    }

    fn val_metrics(&mut self, outputs: &[f64]) -> Result<Metrics> {
        gathered_report(outputs, self.val.iter().map(|i| i.label).collect(), self.classes)
    }
}
