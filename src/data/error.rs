//! The errors of the data layer: one-line messages that name the file and say what to do.

use std::path::PathBuf;

/// What to try when the Hub cannot be used (appended to network and offline errors).
pub const OFFLINE_ADVICE: &str = "connect to the internet, set HF_ENDPOINT to a reachable \
Hugging Face mirror, pass a local copy with --dataset PATH, or use the built-in set with \
--dataset shapes";

/// The same for a caller that needs the real images (scoring samples against them), where the
/// built-in set is no way out.
pub const REAL_IMAGES_ADVICE: &str = "connect to the internet, set HF_ENDPOINT to a reachable \
Hugging Face mirror, or pass a local copy of the real images with --dataset PATH";

/// Which advice an unreachable-Hub error ends with: the caller knows whether the built-in set
/// would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Advice {
    /// Any data will do: the built-in set is offered too ([`OFFLINE_ADVICE`]).
    #[default]
    AnyData,
    /// Only the real images will do ([`REAL_IMAGES_ADVICE`]).
    RealImages,
}

impl std::fmt::Display for Advice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Advice::AnyData => OFFLINE_ADVICE,
            Advice::RealImages => REAL_IMAGES_ADVICE,
        })
    }
}

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

    /// Offline (HF_HUB_OFFLINE=1, or `data --offline`) and the dataset is not in the cache.
    #[error(
        "{repo} ({file}) is not in the Hugging Face cache at {} and offline mode is on \
         (HF_HUB_OFFLINE=1, or `data --offline`): turn offline mode off and {advice}",
        cache_dir.display()
    )]
    NotCached {
        /// The Hub repository.
        repo: String,
        /// The first missing file.
        file: String,
        /// The cache that was searched.
        cache_dir: PathBuf,
        /// What the message suggests.
        advice: Advice,
    },

    /// The Hub could not be reached or did not answer in time.
    #[error("cannot download {repo} from {endpoint}: {detail}; {advice}")]
    Network {
        /// The Hub repository.
        repo: String,
        /// The endpoint that was tried.
        endpoint: String,
        /// The underlying failure.
        detail: String,
        /// What the message suggests.
        advice: Advice,
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

    /// Why the Hub could not be reached, in a few words (the failure's own, without the
    /// advice), where [`Self::hub_unreachable`].
    pub fn unreachable_why(&self) -> Option<String> {
        match self {
            DataError::Network { detail, .. } => Some(detail.clone()),
            DataError::NotCached { file, .. } => Some(format!("offline, {file} not cached")),
            _ => None,
        }
    }

    /// [`Self::for_real_images`] of `e` where it is a data error; any other error as it is.
    pub fn for_real_images_in(e: anyhow::Error) -> anyhow::Error {
        match e.downcast::<DataError>() {
            Ok(data) => anyhow::Error::from(data.for_real_images()),
            Err(other) => other,
        }
    }

    /// The error for a caller that needs the real images: an unreachable Hub's message
    /// leaves the built-in set out of its advice. Other errors are unchanged.
    pub fn for_real_images(mut self) -> Self {
        if let DataError::Network { advice, .. } | DataError::NotCached { advice, .. } = &mut self {
            *advice = Advice::RealImages;
        }
        self
    }

    /// Shorthand for [`DataError::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unreachable Hub's message offers the built-in set, unless the caller needs the real
    /// images; other errors are left as they are.
    #[test]
    fn the_advice_is_the_callers() {
        let offline = DataError::NotCached {
            repo: "zalando-datasets/fashion_mnist".into(),
            file: "train/0000.parquet".into(),
            cache_dir: "/hf".into(),
            advice: Advice::default(),
        };
        assert!(
            offline.to_string().ends_with("--dataset shapes"),
            "{offline}"
        );
        let real = offline.for_real_images().to_string();
        assert!(
            real.ends_with("a local copy of the real images with --dataset PATH"),
            "{real}"
        );
        assert!(!real.contains("shapes"), "{real}");
        let network = DataError::Network {
            repo: "r".into(),
            endpoint: "e".into(),
            detail: "timed out".into(),
            advice: Advice::default(),
        }
        .for_real_images();
        assert!(
            network.to_string().ends_with(REAL_IMAGES_ADVICE),
            "{network}"
        );
        let other = DataError::UnknownDataset("x".into()).for_real_images();
        assert!(matches!(other, DataError::UnknownDataset(_)));
    }
}
