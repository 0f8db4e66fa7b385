//! Local datasets: a folder of IDX files, a folder in the Hub's parquet layout (or a single
//! parquet file), or a folder of PNG/JPEG images (one sub-folder per class, optionally under
//! `train/` and `test/`).

use std::path::{Path, PathBuf};

use super::convert;
use super::error::DataError;
use super::idx;
use super::imageset::{complete_label_names, DataSource, Dataset, ImageSet};
use super::parquet::{self, Columns};
use super::spec::{LoadOptions, LoadProgress, FASHION_MNIST_LABELS};

/// Image file extensions read from image folders.
const IMAGE_EXTS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Whether `p` names a PNG/JPEG file.
fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Sorted entries of a folder.
fn list(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    v.sort();
    Ok(v)
}

/// Name of a dataset from its path.
fn dataset_name(path: &Path) -> String {
    let canon = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    canon
        .file_stem()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "local".to_string())
}

/// Whether the path of a dataset folder (or file) names Fashion-MNIST: a folder on its way (the
/// links resolved) is called so (`fashion-mnist`, `fashion_mnist`, `FashionMNIST`, ...).
pub fn names_fashion_mnist(path: &Path) -> bool {
    let canon = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    canon.components().any(|c| {
        let s = c.as_os_str().to_string_lossy().to_ascii_lowercase();
        s.contains("fashion")
    })
}

/// Class names for IDX data: `labels.txt` (one per line) when present, the Fashion-MNIST names
/// when the folder is called so, else none (the label numbers are used).
fn idx_label_names(dir: &Path) -> Vec<String> {
    if let Ok(text) = std::fs::read_to_string(dir.join("labels.txt")) {
        return text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
    }
    if names_fashion_mnist(dir) {
        FASHION_MNIST_LABELS.iter().map(|s| s.to_string()).collect()
    } else {
        Vec::new()
    }
}

/// Parquet files under `dir` (up to three levels deep), sorted.
fn find_parquet(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<(), DataError> {
    for p in list(dir)? {
        if p.is_dir() && depth > 0 {
            find_parquet(&p, depth - 1, out)?;
        } else if p.extension().is_some_and(|e| e == "parquet") {
            out.push(p);
        }
    }
    Ok(())
}

/// Which split a parquet file belongs to, from its path below the dataset folder.
fn parquet_split(root: &Path, p: &Path) -> &'static str {
    let rel = p
        .strip_prefix(root)
        .unwrap_or(p)
        .to_string_lossy()
        .to_ascii_lowercase();
    if rel.contains("test") {
        "test"
    } else if rel.contains("valid") {
        "validation"
    } else {
        "train"
    }
}

/// Loads a local file or folder.
pub fn load_path(
    path: &Path,
    opts: &LoadOptions,
    progress: &mut dyn FnMut(LoadProgress),
) -> Result<Dataset, DataError> {
    if !path.exists() {
        return Err(DataError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
        ));
    }
    progress(LoadProgress::Resolving {
        what: path.display().to_string(),
    });
    let (train, test, names) = if path.is_file() {
        if path.extension().is_some_and(|e| e == "parquet") {
            load_parquet(&[path.to_path_buf()], &[], opts, progress)?
        } else {
            return Err(DataError::format(
                path,
                "is a file; pass a .parquet file or a folder (of IDX files, parquet files or images)",
            ));
        }
    } else if let Some((train, test)) =
        idx::find_files(path).or_else(|| idx::find_files(&path.join("raw")))
    {
        progress(LoadProgress::Decoding {
            split: "train".into(),
        });
        let tr = idx::load_pair(&train)?.try_converted(opts.channels, opts.image_size)?;
        let te = match test {
            Some(t) => {
                progress(LoadProgress::Decoding {
                    split: "test".into(),
                });
                Some(idx::load_pair(&t)?.try_converted(opts.channels, opts.image_size)?)
            }
            None => None,
        };
        let dir = train.images.parent().unwrap_or(path).to_path_buf();
        (tr, te, idx_label_names(&dir))
    } else {
        let mut pq = Vec::new();
        find_parquet(path, 3, &mut pq)?;
        if !pq.is_empty() {
            let train: Vec<PathBuf> = pq
                .iter()
                .filter(|p| parquet_split(path, p) == "train")
                .cloned()
                .collect();
            let test: Vec<PathBuf> = pq
                .iter()
                .filter(|p| parquet_split(path, p) == "test")
                .cloned()
                .collect();
            if train.is_empty() {
                return Err(DataError::format(
                    path,
                    "holds parquet files but none for a train split (put them in a folder or file \
                     named 'train')",
                ));
            }
            load_parquet(&train, &test, opts, progress)?
        } else {
            load_images(path, opts, progress)?
        }
    };
    let refs: Vec<&ImageSet> = std::iter::once(&train).chain(test.as_ref()).collect();
    if let Some(t) = &test {
        if (t.channels, t.height, t.width) != (train.channels, train.height, train.width) {
            return Err(DataError::format(
                path,
                format!(
                    "test images are {}×{}×{} but train images are {}×{}×{}; pass --image-size",
                    t.channels, t.height, t.width, train.channels, train.height, train.width
                ),
            ));
        }
    }
    let label_names = complete_label_names(names, &refs);
    progress(LoadProgress::Ready);
    Ok(Dataset {
        name: dataset_name(path),
        source: DataSource::Local(path.to_path_buf()),
        train,
        test,
        label_names,
    })
}

/// A train split, an optional test split, and class names.
type Splits = (ImageSet, Option<ImageSet>, Vec<String>);

/// Parquet train (and test) shards.
fn load_parquet(
    train: &[PathBuf],
    test: &[PathBuf],
    opts: &LoadOptions,
    progress: &mut dyn FnMut(LoadProgress),
) -> Result<Splits, DataError> {
    let cols = Columns::default();
    progress(LoadProgress::Decoding {
        split: "train".into(),
    });
    let tr = parquet::read_split(train, cols, opts.channels, opts.image_size)?;
    let te = if test.is_empty() {
        None
    } else {
        progress(LoadProgress::Decoding {
            split: "test".into(),
        });
        Some(parquet::read_split(
            test,
            cols,
            Some(tr.set.channels),
            opts.image_size,
        )?)
    };
    let names = tr
        .label_names
        .clone()
        .or_else(|| te.as_ref().and_then(|t| t.label_names.clone()))
        .unwrap_or_default();
    Ok((tr.set, te.map(|t| t.set), names))
}

/// The images of one split folder: files directly in it, or in one sub-folder per class.
/// Returns (file, class name) pairs.
fn collect_images(dir: &Path) -> Result<Vec<(PathBuf, String)>, DataError> {
    let mut out = Vec::new();
    let own_class = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "image".to_string());
    for p in list(dir)? {
        if p.is_dir() {
            let class = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            for f in list(&p)? {
                if f.is_file() && is_image(&f) {
                    out.push((f, class.clone()));
                }
            }
        } else if is_image(&p) {
            out.push((p, own_class.clone()));
        }
    }
    Ok(out)
}

/// Decodes image files into a split, labelling by position of the class in `classes`.
fn decode_images(
    files: &[(PathBuf, String)],
    classes: &[String],
    channels: Option<usize>,
    size: Option<usize>,
) -> Result<ImageSet, DataError> {
    let bytes: Vec<Vec<u8>> = files
        .iter()
        .map(|(f, _)| std::fs::read(f).map_err(|e| DataError::io(f, e)))
        .collect::<Result<_, _>>()?;
    if let Some(s) = size {
        // The native channels are known only once decoded: count one (refuse only the sure).
        super::imageset::check_convert_fits(bytes.len(), channels.unwrap_or(1), s, s)?;
    }
    let refs: Vec<&[u8]> = bytes.iter().map(|b| b.as_slice()).collect();
    let (images, c, h, w) = convert::decode_all(&refs, channels, size)
        .map_err(|f| DataError::format(&files[f.index].0, f.reason))?;
    let labels = files
        .iter()
        .map(|(f, class)| {
            classes
                .iter()
                .position(|c| c == class)
                .map(|i| i as u32)
                .ok_or_else(|| {
                    DataError::format(
                        f,
                        format!("class folder '{class}' has no counterpart in the train split"),
                    )
                })
        })
        .collect::<Result<_, _>>()?;
    Ok(ImageSet {
        images,
        labels,
        channels: c,
        height: h,
        width: w,
    })
}

/// An image folder: `train/` and `test/` sub-folders when present, else the folder itself.
fn load_images(
    path: &Path,
    opts: &LoadOptions,
    progress: &mut dyn FnMut(LoadProgress),
) -> Result<Splits, DataError> {
    let (train_dir, test_dir) = if path.join("train").is_dir() {
        let t = path.join("test");
        (path.join("train"), t.is_dir().then_some(t))
    } else {
        (path.to_path_buf(), None)
    };
    let train_files = collect_images(&train_dir)?;
    if train_files.is_empty() {
        return Err(DataError::EmptyFolder {
            path: train_dir.clone(),
        });
    }
    let mut classes: Vec<String> = train_files.iter().map(|(_, c)| c.clone()).collect();
    classes.sort();
    classes.dedup();
    // Decide the geometry once, so both splits agree: the first image's channels, unless asked.
    let channels = match opts.channels {
        Some(c) => Some(c),
        None => {
            let any_colour = train_files.iter().take(64).any(|(f, _)| {
                std::fs::read(f)
                    .ok()
                    .and_then(|b| convert::decode(&b).ok())
                    .is_some_and(|img| convert::native_channels(&img) == 3)
            });
            Some(if any_colour { 3 } else { 1 })
        }
    };
    progress(LoadProgress::Decoding {
        split: "train".into(),
    });
    let train = decode_images(&train_files, &classes, channels, opts.image_size)?;
    let test = match test_dir {
        Some(d) => {
            let files = collect_images(&d)?;
            if files.is_empty() {
                None
            } else {
                progress(LoadProgress::Decoding {
                    split: "test".into(),
                });
                Some(decode_images(&files, &classes, channels, opts.image_size)?)
            }
        }
        None => None,
    };
    Ok((train, test, classes))
}
