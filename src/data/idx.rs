//! IDX files (the MNIST/Fashion-MNIST distribution format), plain or gzip-compressed. The
//! header's counts are respected: a file cut to fewer images than 60000 loads as such.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::error::DataError;
use super::imageset::ImageSet;

/// Magic number of an IDX image file (u8 data, 3 dimensions).
pub const IMAGES_MAGIC: u32 = 0x0803;
/// Magic number of an IDX label file (u8 data, 1 dimension).
pub const LABELS_MAGIC: u32 = 0x0801;

/// Reads a file, inflating it when it is gzip-compressed (by content, not by name).
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len() * 4);
        flate2::read::MultiGzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| {
                DataError::format(path, format!("gzip data is corrupt or cut short ({e})"))
            })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Big-endian u32 at `at`.
fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parses the header: checks the magic, returns the dimensions and the data after the header.
fn parse<'a>(
    bytes: &'a [u8],
    path: &Path,
    magic: u32,
    what: &str,
) -> Result<(Vec<usize>, &'a [u8]), DataError> {
    let ndim = (magic & 0xff) as usize;
    let header = 4 + 4 * ndim;
    if bytes.len() < 4 {
        return Err(DataError::format(
            path,
            format!("too short for an IDX {what} file"),
        ));
    }
    let found = be_u32(bytes, 0);
    if found != magic {
        return Err(DataError::format(
            path,
            format!(
                "not an IDX {what} file: magic number is {found} (0x{found:08x}), expected {magic} \
                 (0x{magic:08x})"
            ),
        ));
    }
    if bytes.len() < header {
        return Err(DataError::format(
            path,
            format!("IDX {what} header is cut short"),
        ));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|k| be_u32(bytes, 4 + 4 * k) as usize)
        .collect();
    Ok((dims, &bytes[header..]))
}

/// Decodes IDX image bytes: returns (pixels N×H×W, n, height, width).
pub fn parse_images(
    bytes: &[u8],
    path: &Path,
) -> Result<(Vec<u8>, usize, usize, usize), DataError> {
    let (dims, data) = parse(bytes, path, IMAGES_MAGIC, "image")?;
    let (n, h, w) = (dims[0], dims[1], dims[2]);
    if h == 0 || w == 0 {
        return Err(DataError::format(
            path,
            format!("IDX header gives an image size of {h}×{w}"),
        ));
    }
    let need = n.saturating_mul(h.saturating_mul(w));
    if data.len() < need {
        return Err(DataError::format(
            path,
            format!(
                "header says {n} images of {h}×{w} ({need} bytes) but only {} bytes follow: the \
                 file is truncated",
                data.len()
            ),
        ));
    }
    Ok((data[..need].to_vec(), n, h, w))
}

/// Decodes IDX label bytes.
pub fn parse_labels(bytes: &[u8], path: &Path) -> Result<Vec<u32>, DataError> {
    let (dims, data) = parse(bytes, path, LABELS_MAGIC, "label")?;
    let n = dims[0];
    if data.len() < n {
        return Err(DataError::format(
            path,
            format!(
                "header says {n} labels but only {} bytes follow: the file is truncated",
                data.len()
            ),
        ));
    }
    Ok(data[..n].iter().map(|&b| b as u32).collect())
}

/// Loads one split from an image file and a label file (counts must agree).
pub fn load_split(images: &Path, labels: &Path) -> Result<ImageSet, DataError> {
    let (pixels, n, h, w) = parse_images(&read_maybe_gz(images)?, images)?;
    let labels_v = parse_labels(&read_maybe_gz(labels)?, labels)?;
    if labels_v.len() != n {
        return Err(DataError::format(
            labels,
            format!(
                "holds {} labels but {} holds {n} images",
                labels_v.len(),
                images.display()
            ),
        ));
    }
    if n == 0 {
        return Err(DataError::format(
            images,
            "holds no image (its header count is 0)",
        ));
    }
    Ok(ImageSet {
        images: pixels,
        labels: labels_v,
        channels: 1,
        height: h,
        width: w,
    })
}

/// The IDX files of one split found in a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxPair {
    /// The image file.
    pub images: PathBuf,
    /// The label file, if present.
    pub labels: Option<PathBuf>,
}

/// File stems tried for each split (MNIST mirrors use `-idx3-` or `.idx3-`).
const TRAIN_STEMS: [&str; 2] = ["train-images-idx3-ubyte", "train-images.idx3-ubyte"];
const TEST_STEMS: [&str; 4] = [
    "t10k-images-idx3-ubyte",
    "t10k-images.idx3-ubyte",
    "test-images-idx3-ubyte",
    "test-images.idx3-ubyte",
];

/// The first existing `stem` or `stem.gz` in `dir`.
fn find(dir: &Path, stems: &[String]) -> Option<PathBuf> {
    stems.iter().find_map(|s| {
        [dir.join(s), dir.join(format!("{s}.gz"))]
            .into_iter()
            .find(|p| p.is_file())
    })
}

/// Finds the (train, test) IDX files in `dir`; `None` when there is no training image file.
pub fn find_files(dir: &Path) -> Option<(IdxPair, Option<IdxPair>)> {
    let pair = |stems: &[&str]| {
        let img: Vec<String> = stems.iter().map(|s| s.to_string()).collect();
        let lab: Vec<String> = stems
            .iter()
            .map(|s| s.replace("images", "labels").replace("idx3", "idx1"))
            .collect();
        find(dir, &img).map(|images| IdxPair {
            images,
            labels: find(dir, &lab),
        })
    };
    let train = pair(&TRAIN_STEMS)?;
    Some((train, pair(&TEST_STEMS)))
}

/// Loads a split from a found pair, failing with the missing label file's name.
pub fn load_pair(pair: &IdxPair) -> Result<ImageSet, DataError> {
    let labels = pair.labels.clone().ok_or_else(|| {
        let name = pair
            .images
            .file_name()
            .unwrap_or_default()
            .to_string_lossy();
        let want = name.replace("images", "labels").replace("idx3", "idx1");
        DataError::format(
            &pair.images,
            format!("has no label file beside it (expected {want})"),
        )
    })?;
    load_split(&pair.images, &labels)
}
