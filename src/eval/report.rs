//! Evaluating a trained run: sample n images, score them, and score n real test images the same
//! way (the real-vs-real baseline a user reads the samples' score against).

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::classifier::{Classifier, IMAGE_SIZE};
use super::score::{Quality, Scorer};
use crate::data::{Dataset, DatasetSpec, ImageSet};
use crate::imaging::Image8;

/// Most images one evaluation samples.
pub const MAX_EVAL_N: usize = 50_000;

/// The scores of a run's samples beside real images'.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// The generated images' quality.
    pub samples: Quality,
    /// The same figures for real test images (as many as samples, or all there are).
    pub real: Quality,
    /// Number of reference (training) images the Fréchet distances are measured against.
    pub reference_n: usize,
    /// `samples.frechet / real.frechet`: 1 is as good as real images.
    pub frechet_ratio: Option<f64>,
    /// Class names by label.
    pub class_names: Vec<String>,
    /// Whether the real images are the training split's (the data has no test split): the
    /// classifier learnt them and they are in the reference, so that baseline flatters.
    pub real_from_train: bool,
}

/// Whether a shipped classifier may score images of `dataset` (an error saying why not),
/// without loading it: Fashion-MNIST, or a folder, whose images [`scorer_for`] checks once
/// loaded where its path does not name Fashion-MNIST.
pub fn check_classifier(dataset: &DatasetSpec) -> Result<()> {
    if !matches!(dataset, DatasetSpec::FashionMnist | DatasetSpec::Path(_)) {
        bail!(
            "no quality classifier for dataset '{dataset}': ddpm-lab ships one for Fashion-MNIST \
             (grey 28×28) only"
        );
    }
    Ok(())
}

/// The classifier that scores images of `dataset`, or an error saying none is shipped.
pub fn classifier_for(dataset: &DatasetSpec) -> Result<Classifier> {
    check_classifier(dataset)?;
    Classifier::fashion_mnist(&candle_core::Device::Cpu)
}

/// The share of a folder's first images (whose path does not name Fashion-MNIST) that the
/// classifier must label as their own labels say for them to be taken for Fashion-MNIST (it
/// labels about 90 % of real ones right; other data, or other classes, about 10 %).
pub const FASHION_BY_CONTENT: f64 = 0.5;

/// How many of a folder's images that check reads (its first).
const CONTENT_CHECK_N: usize = 1000;

/// Checks that the labelled images of `set` (from the folder `spec`) are Fashion-MNIST's, by
/// the share of its first images the classifier labels as their labels say.
fn check_fashion_content(
    classifier: &Classifier,
    spec: &DatasetSpec,
    set: &ImageSet,
) -> Result<()> {
    let n = set.len().min(CONTENT_CHECK_N);
    let first = ImageSet {
        images: set.images[..n * set.image_len()].to_vec(),
        labels: set.labels[..n].to_vec(),
        channels: set.channels,
        height: set.height,
        width: set.width,
    };
    let right = super::classifier::accuracy(classifier, &first)?;
    if right < FASHION_BY_CONTENT {
        bail!(
            "the images of {spec} do not look like Fashion-MNIST: the garment classifier that scores samples labels {:.0}% of its first {n} as their labels say (about 90% of Fashion-MNIST's), so its scores would mean nothing",
            right * 100.0
        );
    }
    Ok(())
}

/// Checks an evaluation's sample count (at least 1, at most [`MAX_EVAL_N`]).
pub fn check_n(n: usize) -> Result<()> {
    if n == 0 {
        bail!("--n must be at least 1");
    }
    if n > MAX_EVAL_N {
        bail!("--n must be at most {MAX_EVAL_N}, got {n}");
    }
    Ok(())
}

/// A scorer for images of `spec` whose reference is `train` (its training split).
pub fn scorer_for(spec: &DatasetSpec, set: &ImageSet) -> Result<Scorer> {
    let classifier = classifier_for(spec)?;
    if set.channels != 1 || set.height != IMAGE_SIZE || set.width != IMAGE_SIZE {
        bail!(
            "dataset '{spec}' has {}×{}×{} images; the classifier scores grey {IMAGE_SIZE}×{IMAGE_SIZE} ones",
            set.channels,
            set.height,
            set.width
        );
    }
    if let DatasetSpec::Path(p) = spec {
        if !crate::data::names_fashion_mnist(p) {
            check_fashion_content(&classifier, spec, set)?;
        }
    }
    let views: Vec<&[u8]> = (0..set.len()).map(|i| set.pixels(i)).collect();
    Scorer::new(classifier, &views)
}

/// Scores `samples` and as many real test images (the training split when the data has no test
/// split) against the training split.
pub fn evaluate(scorer: &Scorer, dataset: &Dataset, samples: &[Image8]) -> Result<EvalReport> {
    let quality = scorer
        .score_images(samples)
        .context("cannot score the samples")?;
    let real_set = dataset.test.as_ref().unwrap_or(&dataset.train);
    let real_from_train = dataset.test.is_none();
    let k = samples.len().min(real_set.len());
    let real_views: Vec<&[u8]> = (0..k).map(|i| real_set.pixels(i)).collect();
    let real = scorer.score_pixels(&real_views)?;
    let frechet_ratio = match (quality.frechet, real.frechet) {
        (Some(s), Some(r)) if r > 0.0 => Some(s / r),
        _ => None,
    };
    // The classifier's classes: the ten garments, whatever the folder calls its labels.
    let class_names: Vec<String> = crate::data::spec::FASHION_MNIST_LABELS
        .iter()
        .map(|s| s.to_string())
        .collect();
    Ok(EvalReport {
        samples: quality,
        real,
        reference_n: scorer.reference_len(),
        frechet_ratio,
        class_names,
        real_from_train,
    })
}
