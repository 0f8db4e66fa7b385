//! Scores a set of images against real ones: the Fréchet distance of the classifier's features,
//! the share of images it recognises with confidence, and the class histogram.

use anyhow::{bail, Result};
use candle_core::Device;
use serde::{Deserialize, Serialize};

use super::classifier::{images_tensor, Classifier, IMAGE_SIZE, NUM_CLASSES};
use super::frechet::{frechet_distance, Gaussian};
use crate::imaging::Image8;

/// Confidence from which an image counts as recognised.
pub const RECOGNISED_CONFIDENCE: f64 = 0.8;
/// Fewest images a Fréchet distance is reported for (below it the 64×64 covariance is too
/// poorly estimated to mean anything).
pub const MIN_FRECHET_N: usize = 64;
/// Images per classifier batch.
const CHUNK: usize = 500;

/// The quality figures of one set of images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    /// Number of images scored.
    pub n: usize,
    /// Fréchet distance of their features to the reference set's (`None` below
    /// [`MIN_FRECHET_N`] images).
    pub frechet: Option<f64>,
    /// Fraction recognised (top class probability ≥ [`RECOGNISED_CONFIDENCE`]).
    pub recognised: f64,
    /// Fraction of images per predicted class (sums to 1).
    pub class_fractions: Vec<f64>,
    /// Mean top class probability.
    pub mean_confidence: f64,
}

impl Quality {
    /// The smallest and largest class fraction.
    pub fn class_range(&self) -> (f64, f64) {
        let min = self
            .class_fractions
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        let max = self.class_fractions.iter().copied().fold(0.0, f64::max);
        (min, max)
    }

    /// One line: `FD 12.3 · 61% recognised · each class 3–15%` (the smallest and the largest
    /// share of the images a class takes: 10 % each where the ten garments come equally).
    pub fn summary(&self) -> String {
        let (lo, hi) = self.class_range();
        let fd = match self.frechet {
            Some(f) => format!("FD {} · ", fmt_fd(f)),
            None => String::new(),
        };
        format!(
            "{fd}{:.0}% recognised · each class {:.0}–{:.0}%",
            self.recognised * 100.0,
            lo * 100.0,
            hi * 100.0
        )
    }
}

/// A Fréchet distance with three significant figures.
pub fn fmt_fd(f: f64) -> String {
    if f >= 100.0 {
        format!("{f:.0}")
    } else if f >= 10.0 {
        format!("{f:.1}")
    } else {
        format!("{f:.2}")
    }
}

/// Features and probabilities of a set of images.
struct Classified {
    features: Vec<Vec<f32>>,
    probs: Vec<Vec<f32>>,
}

/// Scores images against a reference set with the shipped classifier.
#[derive(Debug, Clone)]
pub struct Scorer {
    classifier: Classifier,
    reference: Gaussian,
    device: Device,
}

impl Scorer {
    /// A scorer whose Fréchet distances are measured against `reference` (grey 28×28 real
    /// images, 784 bytes each; the training split is the natural choice).
    pub fn new(classifier: Classifier, reference: &[&[u8]]) -> Result<Self> {
        let device = Device::Cpu;
        let c = classify(&classifier, reference, &device)?;
        let reference = Gaussian::fit(&c.features)?;
        Ok(Self {
            classifier,
            reference,
            device,
        })
    }

    /// Number of reference images.
    pub fn reference_len(&self) -> usize {
        self.reference.n
    }

    /// The quality of grey 28×28 images given as raw bytes.
    pub fn score_pixels(&self, images: &[&[u8]]) -> Result<Quality> {
        if images.is_empty() {
            bail!("no images to score");
        }
        let c = classify(&self.classifier, images, &self.device)?;
        let frechet = if images.len() >= MIN_FRECHET_N {
            Some(frechet_distance(
                &Gaussian::fit(&c.features)?,
                &self.reference,
            )?)
        } else {
            None
        };
        let mut counts = [0usize; NUM_CLASSES];
        let (mut recognised, mut conf_sum) = (0usize, 0f64);
        for p in &c.probs {
            let (best, &conf) = p
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .expect("ten probabilities");
            counts[best] += 1;
            conf_sum += conf as f64;
            if conf as f64 >= RECOGNISED_CONFIDENCE {
                recognised += 1;
            }
        }
        let n = images.len();
        Ok(Quality {
            n,
            frechet,
            recognised: recognised as f64 / n as f64,
            class_fractions: counts.iter().map(|&k| k as f64 / n as f64).collect(),
            mean_confidence: conf_sum / n as f64,
        })
    }

    /// The quality of generated images (grey, 28×28).
    pub fn score_images(&self, images: &[Image8]) -> Result<Quality> {
        if let Some(im) = images
            .iter()
            .find(|im| im.channels != 1 || im.width != IMAGE_SIZE || im.height != IMAGE_SIZE)
        {
            bail!(
                "the classifier scores grey {IMAGE_SIZE}×{IMAGE_SIZE} images, got {}×{}×{}",
                im.channels,
                im.height,
                im.width
            );
        }
        let views: Vec<&[u8]> = images.iter().map(|im| im.pixels.as_slice()).collect();
        self.score_pixels(&views)
    }
}

fn classify(classifier: &Classifier, images: &[&[u8]], device: &Device) -> Result<Classified> {
    let mut out = Classified {
        features: Vec::with_capacity(images.len()),
        probs: Vec::with_capacity(images.len()),
    };
    for chunk in images.chunks(CHUNK) {
        let x = images_tensor(chunk, device)?;
        let (f, p) = crate::ops::on_pool(device, || classifier.features_and_probs(&x))?;
        out.features.extend(f.to_vec2::<f32>()?);
        out.probs.extend(p.to_vec2::<f32>()?);
    }
    Ok(out)
}
