//! A small Fashion-MNIST classifier whose penultimate features and confidences score samples.
//!
//! Three 3×3 conv + ReLU + 2×2 max-pool stages (16, 32, 64 channels: 28 → 14 → 7 → 4, the last
//! padded to 8 first), a 1024 → 64 linear layer with ReLU (the 64 **features** the Fréchet
//! distance is taken on) and a 64 → 10 linear layer (the logits). 90 k parameters; the weights trained by
//! `ddpm-lab train-classifier` ship inside the binary (`assets/classifier/`).

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{Optimizer, VarBuilder, VarMap};

use crate::data::ImageSet;
use crate::model::layers::{self, Conv2d};
use crate::rng::LabRng;

/// Width of the feature vector ([`Classifier::features_and_probs`]).
pub const FEATURE_DIM: usize = 64;
/// Side of the (grey, square) images the classifier reads.
pub const IMAGE_SIZE: usize = 28;
/// Number of classes.
pub const NUM_CLASSES: usize = 10;

/// The shipped Fashion-MNIST weights (safetensors).
const FASHION_MNIST_WEIGHTS: &[u8] =
    include_bytes!("../../assets/classifier/fashion_mnist.safetensors");

/// The classifier network.
#[derive(Debug, Clone)]
pub struct Classifier {
    conv1: Conv2d,
    conv2: Conv2d,
    conv3: Conv2d,
    fc1: candle_nn::Linear,
    fc2: candle_nn::Linear,
}

impl Classifier {
    /// Builds the network from `vb` (names `conv1`, `conv2`, `conv3`, `fc1`, `fc2`).
    pub fn new(vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            conv1: layers::conv2d(1, 16, 3, 1, 1, 1, true, vb.pp("conv1"))?,
            conv2: layers::conv2d(16, 32, 3, 1, 1, 1, true, vb.pp("conv2"))?,
            conv3: layers::conv2d(32, 64, 3, 1, 1, 1, true, vb.pp("conv3"))?,
            fc1: layers::linear(64 * 4 * 4, FEATURE_DIM, vb.pp("fc1"))?,
            fc2: layers::linear(FEATURE_DIM, NUM_CLASSES, vb.pp("fc2"))?,
        })
    }

    /// The shipped Fashion-MNIST classifier.
    pub fn fashion_mnist(device: &Device) -> Result<Self> {
        Self::from_safetensors(FASHION_MNIST_WEIGHTS, device)
            .context("the shipped Fashion-MNIST classifier does not load")
    }

    /// A classifier from safetensors bytes.
    pub fn from_safetensors(bytes: &[u8], device: &Device) -> Result<Self> {
        let tensors = candle_core::safetensors::load_buffer(bytes, device)?;
        Self::from_tensors(tensors, device)
    }

    /// A classifier from named tensors.
    pub fn from_tensors(tensors: HashMap<String, Tensor>, device: &Device) -> Result<Self> {
        let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
        Ok(Self::new(vb)?)
    }

    /// The 64 features (after the ReLU of `fc1`) and the logits of images `(N, 1, 28, 28)` in
    /// `[-1, 1]`. `dropout` (training only) drops features with that probability.
    fn forward_t(&self, x: &Tensor, dropout: Option<f32>) -> candle_core::Result<(Tensor, Tensor)> {
        let h = self.conv1.forward(x)?.relu()?.max_pool2d(2)?;
        let h = self.conv2.forward(&h)?.relu()?.max_pool2d(2)?;
        // 7×7 → 8×8 (zero rows and columns after the ReLU change no maximum) → 4×4: candle's
        // max-pool backward assumes the pooled size divides the input.
        let h = self.conv3.forward(&h)?.relu()?;
        let h = h
            .pad_with_zeros(2, 0, 1)?
            .pad_with_zeros(3, 0, 1)?
            .max_pool2d(2)?;
        let feats = self.fc1.forward(&h.flatten_from(1)?)?.relu()?;
        let dropped = match dropout {
            Some(p) => candle_nn::ops::dropout(&feats, p)?,
            None => feats.clone(),
        };
        let logits = self.fc2.forward(&dropped)?;
        Ok((feats, logits))
    }

    /// Features `(N, 64)` and class probabilities `(N, 10)` of `(N, 1, 28, 28)` images in
    /// `[-1, 1]`.
    pub fn features_and_probs(&self, x: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let (feats, logits) = self.forward_t(x, None)?;
        Ok((feats, candle_nn::ops::softmax_last_dim(&logits)?))
    }
}

/// Grey 28×28 images (784 bytes each, row-major) as a `(N, 1, 28, 28)` tensor in `[-1, 1]`,
/// the same scaling the diffusion model trains on.
pub fn images_tensor(images: &[&[u8]], device: &Device) -> Result<Tensor> {
    let px = IMAGE_SIZE * IMAGE_SIZE;
    let mut data = Vec::with_capacity(images.len() * px);
    for (i, im) in images.iter().enumerate() {
        if im.len() != px {
            bail!(
                "image {i} has {} bytes; the classifier reads grey {IMAGE_SIZE}×{IMAGE_SIZE} images ({px} bytes)",
                im.len()
            );
        }
        data.extend(im.iter().map(|&v| v as f32 / 127.5 - 1.0));
    }
    Ok(Tensor::from_vec(
        data,
        (images.len(), 1, IMAGE_SIZE, IMAGE_SIZE),
        device,
    )?)
}

/// What [`train`] reports after each epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochReport {
    /// Epoch number (1-based).
    pub epoch: usize,
    /// Mean training loss of the epoch.
    pub loss: f64,
    /// Accuracy on the test split (when given).
    pub test_accuracy: Option<f64>,
}

/// Trains a fresh classifier on `train` (grey 28×28, labels 0..9) with Adam, random horizontal
/// flips and feature dropout; returns its variables. `progress` gets a report per epoch.
pub fn train(
    train: &ImageSet,
    test: Option<&ImageSet>,
    epochs: usize,
    seed: u64,
    progress: &mut dyn FnMut(&EpochReport),
) -> Result<VarMap> {
    check_set(train)?;
    if let Some(t) = test {
        check_set(t)?;
    }
    let device = Device::Cpu;
    let varmap = VarMap::new();
    let model = Classifier::new(VarBuilder::from_varmap(&varmap, DType::F32, &device))?;
    crate::model::init::pytorch_default_init(&varmap, seed)?;
    let mut opt = candle_nn::AdamW::new(
        varmap.all_vars(),
        candle_nn::ParamsAdamW {
            lr: 2e-3,
            weight_decay: 1e-4,
            ..Default::default()
        },
    )?;
    let batch = 128;
    let px = IMAGE_SIZE * IMAGE_SIZE;
    let mut rng = LabRng::derived(seed, 0xC1A5);
    for epoch in 1..=epochs {
        let mut order: Vec<usize> = (0..train.len()).collect();
        rand::seq::SliceRandom::shuffle(order.as_mut_slice(), rng.inner());
        // Cosine decay of the learning rate over the epochs.
        opt.set_learning_rate(
            2e-3 * 0.5 * (1.0 + (std::f64::consts::PI * (epoch - 1) as f64 / epochs as f64).cos()),
        );
        let (mut sum, mut count) = (0f64, 0usize);
        for chunk in order.chunks(batch) {
            let mut pixels = Vec::with_capacity(chunk.len() * px);
            for &i in chunk {
                let im = train.pixels(i);
                if rng.coin() {
                    for row in im.chunks(IMAGE_SIZE) {
                        pixels.extend(row.iter().rev());
                    }
                } else {
                    pixels.extend_from_slice(im);
                }
            }
            let views: Vec<&[u8]> = pixels.chunks(px).collect();
            let x = images_tensor(&views, &device)?;
            let labels: Vec<u32> = chunk.iter().map(|&i| train.labels[i]).collect();
            let y = Tensor::new(labels.as_slice(), &device)?;
            let (_, logits) = model.forward_t(&x, Some(0.25))?;
            let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
            opt.backward_step(&loss)?;
            sum += loss.to_scalar::<f32>()? as f64 * chunk.len() as f64;
            count += chunk.len();
        }
        let test_accuracy = match test {
            Some(t) => Some(accuracy(&model, t)?),
            None => None,
        };
        progress(&EpochReport {
            epoch,
            loss: sum / count.max(1) as f64,
            test_accuracy,
        });
    }
    Ok(varmap)
}

/// Fraction of `set` the classifier labels correctly.
pub fn accuracy(model: &Classifier, set: &ImageSet) -> Result<f64> {
    check_set(set)?;
    let mut correct = 0usize;
    let idx: Vec<usize> = (0..set.len()).collect();
    for chunk in idx.chunks(500) {
        let views: Vec<&[u8]> = chunk.iter().map(|&i| set.pixels(i)).collect();
        let x = images_tensor(&views, &Device::Cpu)?;
        let (_, probs) = model.features_and_probs(&x)?;
        let pred: Vec<u32> = probs.argmax(D::Minus1)?.to_vec1()?;
        correct += chunk
            .iter()
            .zip(pred)
            .filter(|(&i, p)| set.labels[i] == *p)
            .count();
    }
    Ok(correct as f64 / set.len().max(1) as f64)
}

fn check_set(set: &ImageSet) -> Result<()> {
    if set.channels != 1 || set.height != IMAGE_SIZE || set.width != IMAGE_SIZE {
        bail!(
            "the classifier reads grey {IMAGE_SIZE}×{IMAGE_SIZE} images, got {}×{}×{}",
            set.channels,
            set.height,
            set.width
        );
    }
    if set.is_empty() {
        bail!("no images to classify");
    }
    if let Some(&l) = set.labels.iter().find(|&&l| l as usize >= NUM_CLASSES) {
        bail!("label {l} is out of range (the classifier has {NUM_CLASSES} classes)");
    }
    Ok(())
}
