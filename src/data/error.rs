//! The errors of the data layer: one-line messages that name the file and say what to do.

use std::path::PathBuf;

/// What to try when the Hub cannot be used (appended to network and offline errors).
pub const OFFLINE_ADVICE: &str = "connect to the internet, set HF_ENDPOINT to a reachable \
Hugging Face mirror, pass a local copy with --dataset PATH, or use the built-in set with \
--dataset shapes";

/// Everything that can go wrong while finding, downloading or decoding a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A name that is neither a built-in dataset nor an existing path.
    #[error(
        "unknown dataset '{0}': not one of fashion_mnist, mnist, cifar10, shapes, and no file or \
         folder of that name exists"
    )]
    UnknownDataset(String),

    /// An option out of range (channels other than 1 or 3, image size 0, ...).
    #[error("invalid option: {0}")]
    InvalidOption(String),

    /// A file or folder could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// A file was read but its content is wrong (bad magic, truncated, undecodable, ...).
    #[error("{}: {reason}", path.display())]
    Format {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it, and what to do where that is not obvious.
        reason: String,
    },

    /// A folder holds nothing this loader understands.
    #[error(
        "{} holds no dataset: expected IDX files (train-images-idx3-ubyte[.gz] and \
         train-labels-idx1-ubyte[.gz]), parquet files, or PNG/JPEG images (optionally in one \
         sub-folder per class)",
        path.display()
    )]
    EmptyFolder {
        /// The folder.
        path: PathBuf,
    },

    /// Offline (HF_HUB_OFFLINE=1 or --offline) and the dataset is not in the cache.
    #[error(
        "{repo} ({file}) is not in the Hugging Face cache at {} and offline mode is on \
         (HF_HUB_OFFLINE=1 or --offline): turn offline mode off and {OFFLINE_ADVICE}",
        cache_dir.display()
    )]
    NotCached {
        /// The Hub repository.
        repo: String,
        /// The first missing file.
        file: String,
        /// The cache that was searched.
        cache_dir: PathBuf,
    },

    /// The Hub could not be reached or did not answer in time.
    #[error("cannot download {repo} from {endpoint}: {detail}; {OFFLINE_ADVICE}")]
    Network {
        /// The Hub repository.
        repo: String,
        /// The endpoint that was tried.
        endpoint: String,
        /// The underlying failure.
        detail: String,
    },

    /// The Hub answered, but with an error (missing file, no access, ...).
    #[error("the Hub at {endpoint} refused {repo} ({file}): {detail}")]
    Hub {
        /// The Hub repository.
        repo: String,
        /// The file (or revision) asked for.
        file: String,
        /// The endpoint that was used.
        endpoint: String,
        /// The Hub's answer.
        detail: String,
    },

    /// A downloaded (or cached) file was not the dataset file; it was removed from the cache.
    #[error(
        "{file} of {repo} {origin} is not a valid dataset file ({reason}); the bad copy was \
         removed from the cache ({}), so running again will download it afresh",
        removed.display()
    )]
    BadDownload {
        /// The Hub repository.
        repo: String,
        /// The file in the repository.
        file: String,
        /// "downloaded from <endpoint>" or "found in the cache".
        origin: String,
        /// Why it was rejected.
        reason: String,
        /// The cache path that was removed.
        removed: PathBuf,
    },
}

impl DataError {
    /// Shorthand for [`DataError::Format`].
    pub fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        DataError::Format {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// Whether the Hub could not be reached at all (no network, no answer in time, or offline
    /// mode without a cached copy), as opposed to a Hub that answered or a bad file: the cases
    /// where the built-in set may stand in.
    pub fn hub_unreachable(&self) -> bool {
        matches!(
            self,
            DataError::Network { .. } | DataError::NotCached { .. }
        )
    }

    /// Shorthand for [`DataError::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}
