//! What to load (`DatasetSpec`), how (`LoadOptions`), progress reports (`LoadProgress`), and the
//! table of Hub datasets the lab knows by name.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::error::DataError;

/// The Fashion-MNIST class names (as in the blog and the dataset card).
pub const FASHION_MNIST_LABELS: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// The MNIST class names (the digits).
pub const MNIST_LABELS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// The CIFAR-10 class names.
pub const CIFAR10_LABELS: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// One split of a Hub dataset: its name, the folder its parquet shards live in, and the shard
/// names known in advance (used when the repository listing is not available).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubSplit {
    /// "train" or "test".
    pub name: &'static str,
    /// Folder prefix of the shards in the repository, ending in `/`.
    pub prefix: &'static str,
    /// Shards known to exist at the revision.
    pub files: &'static [&'static str],
}

/// A dataset on the Hugging Face Hub in the parquet layout of `datasets`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubDataset {
    /// Short name used on the command line.
    pub name: &'static str,
    /// `owner/name` of the dataset repository.
    pub repo: &'static str,
    /// Revision holding the parquet files.
    pub revision: &'static str,
    /// The splits (train first).
    pub splits: &'static [HubSplit],
    /// Column holding the image struct `{bytes, path}`.
    pub image_column: &'static str,
    /// Column holding the integer class label.
    pub label_column: &'static str,
    /// Class names, by label id.
    pub label_names: &'static [&'static str],
    /// Channels of the images (1 grey, 3 RGB).
    pub channels: usize,
    /// Side of the (square) images.
    pub image_size: usize,
}

/// Fashion-MNIST (`zalando-datasets/fashion_mnist`).
pub const FASHION_MNIST_HUB: HubDataset = HubDataset {
    name: "fashion_mnist",
    repo: "zalando-datasets/fashion_mnist",
    revision: "refs/convert/parquet",
    splits: &[
        HubSplit {
            name: "train",
            prefix: "fashion_mnist/train/",
            files: &["fashion_mnist/train/0000.parquet"],
        },
        HubSplit {
            name: "test",
            prefix: "fashion_mnist/test/",
            files: &["fashion_mnist/test/0000.parquet"],
        },
    ],
    image_column: "image",
    label_column: "label",
    label_names: &FASHION_MNIST_LABELS,
    channels: 1,
    image_size: 28,
};

/// MNIST (`ylecun/mnist`).
pub const MNIST_HUB: HubDataset = HubDataset {
    name: "mnist",
    repo: "ylecun/mnist",
    revision: "refs/convert/parquet",
    splits: &[
        HubSplit {
            name: "train",
            prefix: "mnist/train/",
            files: &["mnist/train/0000.parquet"],
        },
        HubSplit {
            name: "test",
            prefix: "mnist/test/",
            files: &["mnist/test/0000.parquet"],
        },
    ],
    image_column: "image",
    label_column: "label",
    label_names: &MNIST_LABELS,
    channels: 1,
    image_size: 28,
};

/// CIFAR-10 (`uoft-cs/cifar10`), 32×32 RGB.
pub const CIFAR10_HUB: HubDataset = HubDataset {
    name: "cifar10",
    repo: "uoft-cs/cifar10",
    revision: "refs/convert/parquet",
    splits: &[
        HubSplit {
            name: "train",
            prefix: "plain_text/train/",
            files: &["plain_text/train/0000.parquet"],
        },
        HubSplit {
            name: "test",
            prefix: "plain_text/test/",
            files: &["plain_text/test/0000.parquet"],
        },
    ],
    image_column: "img",
    label_column: "label",
    label_names: &CIFAR10_LABELS,
    channels: 3,
    image_size: 32,
};

/// Which dataset to load.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum DatasetSpec {
    /// Fashion-MNIST from the Hub (the blog's dataset; the default).
    #[default]
    FashionMnist,
    /// MNIST from the Hub.
    Mnist,
    /// CIFAR-10 from the Hub (RGB: the model runs with 3 channels).
    Cifar10,
    /// The built-in procedural set (no file, no network).
    Shapes,
    /// A local file or folder (IDX files, parquet files, or images).
    Path(PathBuf),
}

impl DatasetSpec {
    /// The Hub dataset behind a named spec, if it is one.
    pub fn hub(&self) -> Option<&'static HubDataset> {
        match self {
            DatasetSpec::FashionMnist => Some(&FASHION_MNIST_HUB),
            DatasetSpec::Mnist => Some(&MNIST_HUB),
            DatasetSpec::Cifar10 => Some(&CIFAR10_HUB),
            DatasetSpec::Shapes | DatasetSpec::Path(_) => None,
        }
    }

    /// Parses a name without checking that a path exists (`FromStr` checks).
    pub fn parse_unchecked(s: &str) -> Self {
        match s.trim().to_ascii_lowercase().as_str() {
            "fashion_mnist" | "fashion-mnist" | "fashionmnist" => DatasetSpec::FashionMnist,
            "mnist" => DatasetSpec::Mnist,
            "cifar10" | "cifar-10" | "cifar_10" => DatasetSpec::Cifar10,
            "shapes" => DatasetSpec::Shapes,
            _ => DatasetSpec::Path(PathBuf::from(s)),
        }
    }
}

impl FromStr for DatasetSpec {
    type Err = DataError;

    /// A built-in name, or else a path that must exist.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match DatasetSpec::parse_unchecked(s) {
            DatasetSpec::Path(p) if !p.exists() => Err(DataError::UnknownDataset(s.to_string())),
            spec => Ok(spec),
        }
    }
}

impl fmt::Display for DatasetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatasetSpec::FashionMnist => f.write_str("fashion_mnist"),
            DatasetSpec::Mnist => f.write_str("mnist"),
            DatasetSpec::Cifar10 => f.write_str("cifar10"),
            DatasetSpec::Shapes => f.write_str("shapes"),
            DatasetSpec::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Largest image side the loaders resize to (and a run may have): a 1024×1024 RGB image is
/// 3 MB as bytes and 12 MB as floats, and the UNet's middle attention grows with the fourth
/// power of the side.
pub const MAX_IMAGE_SIZE: usize = 1024;

/// How to load: target image geometry, network and cache settings, and the built-in set's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// Resize (and centre-crop) every image to this square side; `None` keeps the native size
    /// (then all images of a source must share one size).
    pub image_size: Option<usize>,
    /// Convert to 1 (grey) or 3 (RGB) channels; `None` keeps the source's channels.
    pub channels: Option<usize>,
    /// Never touch the network (also on when `HF_HUB_OFFLINE=1`).
    pub offline: bool,
    /// Hub endpoint; `None` uses `HF_ENDPOINT`, else `https://huggingface.co`.
    pub endpoint: Option<String>,
    /// Hub cache folder (the `hub` folder); `None` uses `HF_HUB_CACHE`, else `$HF_HOME/hub`,
    /// else `~/.cache/huggingface/hub`, like the Python client.
    pub cache_dir: Option<PathBuf>,
    /// Training images of the built-in `shapes` set (its test split has a sixth of that).
    pub shapes_count: usize,
    /// Seed of the built-in set.
    pub seed: u64,
    /// Give up on the Hub when it has not answered (or sent a byte) for this long.
    pub network_timeout: Duration,
    /// Retries per Hub request after a transient failure (hf-hub's default of 5 costs seconds).
    pub retries: usize,
    /// Hub token; `None` lets hf-hub find one (`HF_TOKEN`, `HF_TOKEN_PATH`, `$HF_HOME/token`).
    pub token: Option<String>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            image_size: None,
            channels: None,
            offline: false,
            endpoint: None,
            cache_dir: None,
            shapes_count: 12_000,
            seed: 0,
            network_timeout: Duration::from_secs(8),
            retries: 1,
            token: None,
        }
    }
}

impl LoadOptions {
    /// Whether the network is off: `offline` or `HF_HUB_OFFLINE` set to a true value.
    pub fn is_offline(&self) -> bool {
        self.offline || offline_env_value(std::env::var("HF_HUB_OFFLINE").ok().as_deref())
    }

    /// Checks `image_size` and `channels`.
    pub fn validate(&self) -> Result<(), DataError> {
        if let Some(c) = self.channels {
            if c != 1 && c != 3 {
                return Err(DataError::InvalidOption(format!(
                    "channels must be 1 (grey) or 3 (RGB), not {c}"
                )));
            }
        }
        if let Some(s) = self.image_size {
            if !(4..=MAX_IMAGE_SIZE).contains(&s) {
                return Err(DataError::InvalidOption(format!(
                    "image size must be between 4 and {MAX_IMAGE_SIZE} pixels, not {s}"
                )));
            }
        }
        Ok(())
    }
}

/// Whether a value of `HF_HUB_OFFLINE` means "offline" (`1`, `true`, `yes`, `on`), as in the
/// Python client.
pub fn offline_env_value(value: Option<&str>) -> bool {
    matches!(
        value.map(|v| v.trim().to_ascii_lowercase()).as_deref(),
        Some("1" | "true" | "yes" | "on")
    )
}

/// Progress of [`super::load_dataset`], for a gauge in the TUI or a bar on the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadProgress {
    /// Looking something up (cache, repository listing).
    Resolving {
        /// What is being resolved.
        what: String,
    },
    /// Bytes of one file arriving from the Hub.
    Downloading {
        /// File within the repository.
        file: String,
        /// Bytes received.
        done: u64,
        /// Bytes expected (0 when the server did not say).
        total: u64,
    },
    /// Decoding the images of a split.
    Decoding {
        /// "train" or "test".
        split: String,
    },
    /// Something the user should know that does not stop the load (a corrupt cached file
    /// removed and fetched again); one line.
    Notice {
        /// The line to show.
        text: String,
    },
    /// The dataset is in memory.
    Ready,
}
