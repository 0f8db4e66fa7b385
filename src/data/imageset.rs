//! In-memory datasets: `ImageSet` (one split as u8 CHW pixels plus labels), `Dataset` (splits,
//! label names, where it came from) and `DataSource`.

use std::fmt;
use std::path::PathBuf;

use crate::imaging::Image8;

use super::convert;
use super::error::DataError;

/// Images of one split, pixels u8 in N×C×H×W order (CHW per image), labels per image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSet {
    /// `len() * channels * height * width` bytes, CHW per image.
    pub images: Vec<u8>,
    /// One class id per image.
    pub labels: Vec<u32>,
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
}

/// What identifies a run's training images, so a resume can tell the data it was trained on
/// from other data (a folder of other images under the old name, another folder given for a
/// moved one): how many there are, their size, and a BLAKE3 digest of their pixels in order
/// (labels are left out: training does not read them).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DataFingerprint {
    /// Number of images.
    pub images: usize,
    /// `C×H×W` of each.
    pub shape: [usize; 3],
    /// BLAKE3 of the pixels (u8, CHW per image, the images in order), in hex.
    pub blake3: String,
}

impl fmt::Display for DataFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [c, h, w] = self.shape;
        write!(
            f,
            "{} images of {c}×{h}×{w}, digest {}",
            self.images,
            &self.blake3[..self.blake3.len().min(12)]
        )
    }
}

impl ImageSet {
    /// The set's [`DataFingerprint`] (a few tens of milliseconds for Fashion-MNIST's 60 000).
    pub fn fingerprint(&self) -> DataFingerprint {
        DataFingerprint {
            images: self.len(),
            shape: [self.channels, self.height, self.width],
            blake3: blake3::hash(&self.images).to_hex().to_string(),
        }
    }

    /// Bytes per image (`channels * height * width`).
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the split has no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The CHW bytes of image `i` (panics when `i >= len()`).
    pub fn pixels(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.images[i * n..(i + 1) * n]
    }

    /// Image `i` as an HWC [`Image8`] for display and export (panics when `i >= len()`).
    pub fn image(&self, i: usize) -> Image8 {
        let (c, h, w) = (self.channels, self.height, self.width);
        let src = self.pixels(i);
        let mut pixels = vec![0u8; c * h * w];
        for ch in 0..c {
            for p in 0..h * w {
                pixels[p * c + ch] = src[ch * h * w + p];
            }
        }
        Image8 {
            width: w,
            height: h,
            channels: c,
            pixels,
        }
    }

    /// How many images carry each label `0..n_labels` (labels beyond are not counted).
    pub fn label_counts(&self, n_labels: usize) -> Vec<usize> {
        let mut counts = vec![0usize; n_labels];
        for &l in &self.labels {
            if let Some(c) = counts.get_mut(l as usize) {
                *c += 1;
            }
        }
        counts
    }

    /// Mean pixel value over all images and channels (0 for an empty set).
    pub fn mean_pixel(&self) -> f64 {
        if self.images.is_empty() {
            return 0.0;
        }
        let sum: u64 = self.images.iter().map(|&v| v as u64).sum();
        sum as f64 / self.images.len() as f64
    }

    /// Largest label + 1 (0 for an empty set).
    pub fn n_labels(&self) -> usize {
        self.labels
            .iter()
            .map(|&l| l as usize + 1)
            .max()
            .unwrap_or(0)
    }

    /// [`Self::converted`], refused with a clear error when the converted set cannot fit in the
    /// memory available (see [`check_convert_fits`]).
    pub fn try_converted(
        self,
        channels: Option<usize>,
        size: Option<usize>,
    ) -> Result<ImageSet, DataError> {
        let c = channels.unwrap_or(self.channels);
        let (h, w) = size.map_or((self.height, self.width), |s| (s, s));
        if (c, h, w) != (self.channels, self.height, self.width) {
            check_convert_fits(self.len(), c, h, w)?;
        }
        Ok(self.converted(channels, size))
    }

    /// This set with `channels` and a square `size` (each `None` keeps the current value):
    /// grey↔RGB conversion by luma/replication, resize and centre-crop as `image` does.
    pub fn converted(self, channels: Option<usize>, size: Option<usize>) -> ImageSet {
        let c = channels.unwrap_or(self.channels);
        let same_size = size.is_none_or(|s| s == self.height && s == self.width);
        if c == self.channels && same_size {
            return self;
        }
        let (h, w) = match size {
            Some(s) => (s, s),
            None => (self.height, self.width),
        };
        let n = self.len();
        let chunks = convert::par_map(n, |i| {
            let img =
                convert::chw_to_dynamic(self.pixels(i), self.channels, self.height, self.width);
            convert::dynamic_to_chw(&img, c, size).0
        });
        let mut images = Vec::with_capacity(n * c * h * w);
        for chunk in chunks {
            images.extend_from_slice(&chunk);
        }
        ImageSet {
            images,
            labels: self.labels,
            channels: c,
            height: h,
            width: w,
        }
    }
}

/// Refuses converting `n` images to `c`×`h`×`w` when that cannot fit in the memory available:
/// the converted images are assembled from per-image pieces, so both are counted.
pub fn check_convert_fits(n: usize, c: usize, h: usize, w: usize) -> Result<(), DataError> {
    let bytes = (n as u128)
        .saturating_mul(c as u128)
        .saturating_mul(h as u128)
        .saturating_mul(w as u128)
        .saturating_mul(2);
    let what = format!("converting {n} images to {c}×{h}×{w} (--image-size, --channels)");
    crate::memory::check_fits(&what, bytes, crate::memory::available_memory())
        .map_err(|e| DataError::InvalidOption(e.to_string()))
}

/// Where a dataset came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSource {
    /// The Hugging Face Hub (possibly answered from the local cache).
    Hub {
        /// `owner/name`.
        repo: String,
        /// The revision (`refs/convert/parquet`).
        revision: String,
        /// The Hub cache folder holding the files.
        cache_dir: PathBuf,
    },
    /// A local file or folder.
    Local(PathBuf),
    /// The built-in procedural set.
    BuiltIn,
}

impl fmt::Display for DataSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSource::Hub {
                repo,
                revision,
                cache_dir,
            } => write!(
                f,
                "Hugging Face Hub {repo} @ {revision} (cache {})",
                cache_dir.display()
            ),
            DataSource::Local(p) => write!(f, "local {}", p.display()),
            DataSource::BuiltIn => f.write_str("built-in procedural set, no files"),
        }
    }
}

/// A dataset in memory: train split, optional test split, class names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// Short name ("fashion_mnist", "shapes", or the folder name).
    pub name: String,
    /// Where it came from.
    pub source: DataSource,
    /// The training images.
    pub train: ImageSet,
    /// The test images, when the source has them.
    pub test: Option<ImageSet>,
    /// Class names by label id (at least as many as the largest label + 1).
    pub label_names: Vec<String>,
}

impl Dataset {
    /// Channels of the images.
    pub fn channels(&self) -> usize {
        self.train.channels
    }

    /// (height, width) of the images.
    pub fn image_size(&self) -> (usize, usize) {
        (self.train.height, self.train.width)
    }

    /// Whether this is the built-in offline set (the TUI labels it as such).
    pub fn is_builtin(&self) -> bool {
        self.source == DataSource::BuiltIn
    }

    /// The name of label `l` (its number when there is no name).
    pub fn label_name(&self, l: u32) -> String {
        self.label_names
            .get(l as usize)
            .cloned()
            .unwrap_or_else(|| l.to_string())
    }
}

/// Extends `names` with numbers so that every label of the splits has a name.
pub(crate) fn complete_label_names(mut names: Vec<String>, sets: &[&ImageSet]) -> Vec<String> {
    let n = sets.iter().map(|s| s.n_labels()).max().unwrap_or(0);
    while names.len() < n {
        names.push(names.len().to_string());
    }
    names
}
