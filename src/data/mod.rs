//! The data layer: datasets from the Hugging Face Hub (Fashion-MNIST, MNIST, CIFAR-10; cached
//! and offline-first), local folders (IDX, parquet, images), the built-in `shapes` set, and the
//! batches the trainer consumes.
//!
//! ```no_run
//! use ddpm_lab::data::{load_dataset, DatasetSpec, LoadOptions};
//! let ds = load_dataset(&DatasetSpec::FashionMnist, &LoadOptions::default(), &mut |_| {})?;
//! println!("{} training images from {}", ds.train.len(), ds.source);
//! # Ok::<(), ddpm_lab::data::DataError>(())
//! ```

pub mod batcher;
mod convert;
pub mod error;
pub mod folder;
pub mod hub;
pub mod idx;
pub mod imageset;
pub mod parquet;
pub mod shapes;
pub mod spec;
pub mod summary;

pub use batcher::{epoch_steps, epochs_suffix, Batch, Batcher, Prefetcher};
pub use error::DataError;
pub use folder::names_fashion_mnist;
pub use imageset::{DataFingerprint, DataSource, Dataset, ImageSet};
pub use spec::{DatasetSpec, HubDataset, LoadOptions, LoadProgress, MAX_IMAGE_SIZE};
pub use summary::{summarize, DataSummary};

/// Loads a dataset: a Hub dataset (from the cache when it is there), a local path, or the
/// built-in set. `progress` receives [`LoadProgress`] reports on the calling thread.
///
/// Blocking; do not call it from inside an async runtime (it runs its own for hf-hub).
pub fn load_dataset(
    spec: &DatasetSpec,
    opts: &LoadOptions,
    progress: &mut dyn FnMut(LoadProgress),
) -> Result<Dataset, DataError> {
    opts.validate()?;
    match spec {
        DatasetSpec::Shapes => shapes::generate(opts, progress),
        DatasetSpec::Path(p) => folder::load_path(p, opts, progress),
        hub_spec => {
            let ds = hub_spec.hub().expect("every other spec is a Hub dataset");
            hub::load_hub(ds, opts, progress)
        }
    }
}

/// Loads `spec`, or else the built-in `shapes` set, returning the error that forced the
/// fallback (the TUI shows it and labels the data as built-in).
pub fn load_or_builtin(
    spec: &DatasetSpec,
    opts: &LoadOptions,
    progress: &mut dyn FnMut(LoadProgress),
) -> Result<(Dataset, Option<DataError>), DataError> {
    match load_dataset(spec, opts, progress) {
        Ok(d) => Ok((d, None)),
        Err(e) if *spec != DatasetSpec::Shapes => {
            let d = shapes::generate(opts, progress)?;
            Ok((d, Some(e)))
        }
        Err(e) => Err(e),
    }
}
