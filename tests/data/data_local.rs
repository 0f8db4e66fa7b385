//! Local datasets: the shared Fashion-MNIST IDX files and their parquet copy, image folders,
//! and bad input (each a clear error naming the file, never a panic).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::common;

use common::idx;
use ddpm_lab::data::{load_dataset, DataError, DataSource, DatasetSpec, LoadOptions};

/// The shared fixture folder, or `None` after skipping the test (see `common::shared_with`).
fn fixture() -> Option<PathBuf> {
    common::shared_with("data/fashion-mnist", &["train-images-idx3-ubyte.gz"])
}

fn load_path(p: &Path, opts: &LoadOptions) -> Result<ddpm_lab::data::Dataset, DataError> {
    load_dataset(&DatasetSpec::Path(p.to_path_buf()), opts, &mut |_| {})
}

fn png(w: u32, h: u32, rgb: bool, seed: u8) -> Vec<u8> {
    let img = if rgb {
        image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x as u8).wrapping_mul(seed), y as u8, seed])
        }))
    } else {
        image::DynamicImage::ImageLuma8(image::GrayImage::from_fn(w, h, |x, y| {
            image::Luma([(x as u8 + y as u8).wrapping_mul(seed)])
        }))
    };
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[test]
fn shared_idx_files_give_the_readme_counts() {
    let Some(dir) = fixture() else { return };
    let ds = load_path(&dir, &LoadOptions::default()).unwrap();
    assert_eq!(ds.train.len(), 8517);
    let test = ds.test.as_ref().unwrap();
    assert_eq!(test.len(), 6978);
    assert_eq!(
        (ds.train.channels, ds.train.height, ds.train.width),
        (1, 28, 28)
    );
    assert_eq!(
        ds.train.label_counts(10),
        vec![794, 894, 865, 860, 817, 841, 866, 870, 851, 859]
    );
    assert_eq!(
        test.label_counts(10),
        vec![688, 677, 724, 708, 710, 700, 690, 691, 707, 683]
    );
    assert!(
        (ds.train.mean_pixel() - 72.8).abs() < 0.05,
        "{}",
        ds.train.mean_pixel()
    );
    assert!(
        (test.mean_pixel() - 73.1).abs() < 0.05,
        "{}",
        test.mean_pixel()
    );
    assert_eq!(
        &ds.train.labels[..20],
        &[9, 0, 0, 3, 0, 2, 7, 2, 5, 5, 0, 9, 5, 5, 7, 9, 1, 0, 6, 4]
    );
    assert_eq!(ds.label_names.len(), 10);
    assert_eq!(ds.label_names[9], "Ankle boot");
    assert_eq!(ds.source, DataSource::Local(dir.clone()));
}

#[test]
fn idx_and_parquet_hold_the_same_pixels() {
    let Some(dir) = fixture() else { return };
    let from_idx = load_path(&dir, &LoadOptions::default()).unwrap();
    let from_parquet = load_path(&dir.join("hub"), &LoadOptions::default()).unwrap();
    assert_eq!(from_parquet.train, from_idx.train);
    assert_eq!(from_parquet.test, from_idx.test);
    // The parquet schema metadata carries the Hub's spelling of the names.
    assert_eq!(from_parquet.label_names.len(), 10);
    assert!(
        from_parquet.label_names[0].contains("shirt"),
        "{:?}",
        from_parquet.label_names
    );
    // A single parquet file is a train split on its own.
    let single = load_path(
        &dir.join("hub/fashion_mnist/test/0000.parquet"),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(Some(&single.train), from_idx.test.as_ref());
    assert!(single.test.is_none());
}

#[test]
fn idx_options_resize_and_convert() {
    let tmp = tempfile::tempdir().unwrap();
    let pixels: Vec<u8> = (0..3 * 28 * 28).map(|i| (i % 251) as u8).collect();
    std::fs::write(
        tmp.path().join("train-images-idx3-ubyte"),
        idx(2051, &[3, 28, 28], &pixels),
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("train-labels-idx1-ubyte"),
        idx(2049, &[3], &[0, 1, 2]),
    )
    .unwrap();
    let plain = load_path(tmp.path(), &LoadOptions::default()).unwrap();
    assert_eq!(plain.train.images, pixels);
    assert!(plain.test.is_none());
    assert_eq!(plain.label_names, vec!["0", "1", "2"]);
    let opts = LoadOptions {
        image_size: Some(32),
        channels: Some(3),
        ..LoadOptions::default()
    };
    let big = load_path(tmp.path(), &opts).unwrap();
    assert_eq!(
        (big.train.channels, big.train.height, big.train.width),
        (3, 32, 32)
    );
    assert_eq!(big.train.images.len(), 3 * 3 * 32 * 32);
    // Grey replicated into RGB: the three planes are equal.
    let one = big.train.pixels(1);
    assert_eq!(&one[..1024], &one[1024..2048]);
}

#[test]
fn wrong_idx_magic_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("train-images-idx3-ubyte");
    std::fs::write(&images, idx(2049, &[1, 28, 28], &[0; 784])).unwrap();
    std::fs::write(
        tmp.path().join("train-labels-idx1-ubyte"),
        idx(2049, &[1], &[0]),
    )
    .unwrap();
    let err = load_path(tmp.path(), &LoadOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::Format { .. }), "{msg}");
    assert!(
        msg.contains("train-images-idx3-ubyte") && msg.contains("magic"),
        "{msg}"
    );
}

#[test]
fn header_count_beyond_the_data_is_a_truncation_error() {
    let tmp = tempfile::tempdir().unwrap();
    // Says 60000 images, holds 2 (gzip-compressed, like the distribution files).
    let images = tmp.path().join("train-images-idx3-ubyte.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&idx(2051, &[60000, 28, 28], &[7; 2 * 784]))
        .unwrap();
    std::fs::write(&images, gz.finish().unwrap()).unwrap();
    std::fs::write(
        tmp.path().join("train-labels-idx1-ubyte"),
        idx(2049, &[2], &[0, 1]),
    )
    .unwrap();
    let msg = load_path(tmp.path(), &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("train-images-idx3-ubyte.gz")
            && msg.contains("60000")
            && msg.contains("truncated"),
        "{msg}"
    );
}

#[test]
fn idx_label_problems_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("train-images-idx3-ubyte"),
        idx(2051, &[2, 28, 28], &[0; 2 * 784]),
    )
    .unwrap();
    let msg = load_path(tmp.path(), &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("train-labels-idx1-ubyte"),
        "missing label file not named: {msg}"
    );
    std::fs::write(
        tmp.path().join("train-labels-idx1-ubyte"),
        idx(2049, &[3], &[0, 1, 2]),
    )
    .unwrap();
    let msg = load_path(tmp.path(), &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("3 labels") && msg.contains("2 images"),
        "{msg}"
    );
    // A gzip file cut in the middle.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&idx(2049, &[2], &[0, 1])).unwrap();
    let mut bytes = gz.finish().unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::remove_file(tmp.path().join("train-labels-idx1-ubyte")).unwrap();
    std::fs::write(tmp.path().join("train-labels-idx1-ubyte.gz"), bytes).unwrap();
    let msg = load_path(tmp.path(), &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("train-labels-idx1-ubyte.gz") && msg.contains("gzip"),
        "{msg}"
    );
}

#[test]
fn image_folder_with_class_folders_and_splits() {
    let tmp = tempfile::tempdir().unwrap();
    for (split, n) in [("train", 3u8), ("test", 1)] {
        for class in ["cat", "dog"] {
            let d = tmp.path().join(split).join(class);
            std::fs::create_dir_all(&d).unwrap();
            for k in 0..n {
                std::fs::write(d.join(format!("{k}.png")), png(16, 16, true, k + 1)).unwrap();
            }
            std::fs::write(d.join("notes.txt"), "not an image").unwrap();
        }
    }
    let ds = load_path(tmp.path(), &LoadOptions::default()).unwrap();
    assert_eq!(ds.label_names, vec!["cat", "dog"]);
    assert_eq!(
        (ds.train.len(), ds.train.channels, ds.train.height),
        (6, 3, 16)
    );
    assert_eq!(ds.train.label_counts(2), vec![3, 3]);
    assert_eq!(ds.test.as_ref().unwrap().len(), 2);
    // Pixel check: image 0 is cat/0.png, R = x * 1, G = y, B = 1 (CHW).
    let p = ds.train.pixels(0);
    assert_eq!((p[5], p[256 + 16 * 7], p[512]), (5, 7, 1));
    let grey = load_path(
        tmp.path(),
        &LoadOptions {
            channels: Some(1),
            image_size: Some(8),
            ..LoadOptions::default()
        },
    )
    .unwrap();
    assert_eq!(
        (grey.train.channels, grey.train.height, grey.train.width),
        (1, 8, 8)
    );
}

#[test]
fn undecodable_png_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("a.png"), png(8, 8, false, 1)).unwrap();
    std::fs::write(
        tmp.path().join("b.png"),
        b"\x89PNG\r\n\x1a\nthis is not really a png",
    )
    .unwrap();
    let err = load_path(tmp.path(), &LoadOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::Format { .. }), "{msg}");
    assert!(msg.contains("b.png") && msg.contains("decode"), "{msg}");
}

#[test]
fn image_of_the_wrong_size_is_named_unless_resizing() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("a.png"), png(28, 28, false, 1)).unwrap();
    std::fs::write(tmp.path().join("b.png"), png(30, 20, false, 2)).unwrap();
    let msg = load_path(tmp.path(), &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("b.png") && msg.contains("30×20") && msg.contains("--image-size"),
        "{msg}"
    );
    let ds = load_path(
        tmp.path(),
        &LoadOptions {
            image_size: Some(28),
            ..LoadOptions::default()
        },
    )
    .unwrap();
    assert_eq!(
        (ds.train.len(), ds.train.height, ds.train.width),
        (2, 28, 28)
    );
}

#[test]
fn empty_folder_and_missing_path() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("readme.txt"), "nothing here").unwrap();
    let err = load_path(tmp.path(), &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, DataError::EmptyFolder { .. }), "{err}");
    assert!(
        err.to_string().contains(&*tmp.path().to_string_lossy()),
        "{err}"
    );
    let gone = tmp.path().join("no-such-folder");
    let err = load_path(&gone, &LoadOptions::default()).unwrap_err();
    assert!(err.to_string().contains("no-such-folder"), "{err}");
    let err = gone.to_str().unwrap().parse::<DatasetSpec>().unwrap_err();
    assert!(matches!(err, DataError::UnknownDataset(_)), "{err}");
}

#[test]
fn a_file_that_is_not_parquet_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("train.parquet");
    std::fs::write(&f, b"<html>500 Internal Server Error</html>").unwrap();
    let err = load_path(&f, &LoadOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::Format { .. }), "{msg}");
    assert!(
        msg.contains("train.parquet") && msg.contains("parquet"),
        "{msg}"
    );
}

#[test]
fn invalid_options_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    for opts in [
        LoadOptions {
            channels: Some(2),
            ..LoadOptions::default()
        },
        LoadOptions {
            image_size: Some(0),
            ..LoadOptions::default()
        },
    ] {
        let err = load_path(tmp.path(), &opts).unwrap_err();
        assert!(matches!(err, DataError::InvalidOption(_)), "{err}");
    }
}
