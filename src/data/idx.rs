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

/// Reads a file, inflating it when it is gzip-compressed (by content, not by name). A gzip
/// stream is inflated only as far as its IDX header says the file goes (see [`idx_len`]): a
/// stream that holds more is refused before the rest is inflated, so a small file cannot
/// expand into gigabytes.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let corrupt = |e: std::io::Error| {
        DataError::format(path, format!("gzip data is corrupt or cut short ({e})"))
    };
    let mut gz = flate2::read::MultiGzDecoder::new(raw.as_slice());
    let mut out = Vec::new();
    // The magic number (its last byte is the number of dimensions), then the dimensions.
    (&mut gz).take(4).read_to_end(&mut out).map_err(corrupt)?;
    if out.len() == 4 {
        let ndim = out[3] as u64;
        (&mut gz)
            .take(4 * ndim)
            .read_to_end(&mut out)
            .map_err(corrupt)?;
    }
    let Some(expected) = idx_len(&out) else {
        // Too short for a header: the parser says so.
        return Ok(out);
    };
    let rest = expected.saturating_sub(out.len() as u64);
    (&mut gz)
        .take(rest.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(corrupt)?;
    if out.len() as u64 > expected {
        return Err(DataError::format(
            path,
            format!(
                "the gzip stream holds more than the {expected} bytes its IDX header announces: \
                 the file is corrupt or not an IDX file (not inflated further)"
            ),
        ));
    }
    Ok(out)
}

/// Bytes of a whole IDX file according to its header (`header` holds at least the magic
/// number and the dimensions): the header plus the product of the dimensions times the size of
/// the data type (`None` when `header` is cut short). Saturates instead of overflowing.
pub fn idx_len(header: &[u8]) -> Option<u64> {
    if header.len() < 4 {
        return None;
    }
    let ndim = header[3] as usize;
    let len = 4 + 4 * ndim;
    if header.len() < len {
        return None;
    }
    let elem: u64 = match header[2] {
        0x0b => 2,        // i16
        0x0c | 0x0d => 4, // i32, f32
        0x0e => 8,        // f64
        _ => 1,           // u8, i8 (and anything the parser will refuse)
    };
    let count = (0..ndim).fold(1u64, |n, k| {
        n.saturating_mul(u64::from(be_u32(header, 4 + 4 * k)))
    });
    Some((len as u64).saturating_add(count.saturating_mul(elem)))
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

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gz(parts: &[&[u8]]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        for p in parts {
            e.write_all(p).unwrap();
        }
        e.finish().unwrap()
    }

    fn header(magic: u32, dims: &[u32]) -> Vec<u8> {
        let mut v = magic.to_be_bytes().to_vec();
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    #[test]
    fn the_header_sizes_the_file() {
        assert_eq!(
            idx_len(&header(IMAGES_MAGIC, &[2, 28, 28])),
            Some(16 + 2 * 784)
        );
        assert_eq!(idx_len(&header(LABELS_MAGIC, &[5])), Some(8 + 5));
        assert_eq!(idx_len(&header(0x0d02, &[3, 4])), Some(12 + 48), "f32");
        assert_eq!(idx_len(&[0, 0, 8]), None);
        assert_eq!(idx_len(&header(IMAGES_MAGIC, &[2, 28])), None, "cut short");
        let huge = header(0x0e04, &[u32::MAX; 4]);
        assert_eq!(idx_len(&huge), Some(u64::MAX));
    }

    #[test]
    fn gzip_is_inflated_only_as_far_as_the_header_says() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train-images-idx3-ubyte.gz");
        let file = header(IMAGES_MAGIC, &[2, 4, 4]);
        let data = [7u8; 32];
        std::fs::write(&path, gz(&[&file, &data])).unwrap();
        let bytes = read_maybe_gz(&path).unwrap();
        assert_eq!(bytes.len(), 16 + 32);
        assert_eq!(parse_images(&bytes, &path).unwrap().1, 2);
        // 64 MB of zeros after two 4×4 images: refused after one byte too many.
        let zeros = vec![0u8; 1 << 20];
        let mut parts: Vec<&[u8]> = vec![&file, &data];
        parts.extend(std::iter::repeat_n(zeros.as_slice(), 64));
        std::fs::write(&path, gz(&parts)).unwrap();
        let err = read_maybe_gz(&path).unwrap_err().to_string();
        assert!(
            err.contains("more than the 48 bytes its IDX header announces"),
            "{err}"
        );
        assert!(err.contains("train-images-idx3-ubyte.gz"), "{err}");
        // Fewer bytes than announced: read whole, then the parser says it is truncated.
        std::fs::write(&path, gz(&[&file, &data[..10]])).unwrap();
        let bytes = read_maybe_gz(&path).unwrap();
        let err = parse_images(&bytes, &path).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
        // A header cut short is left to the parser.
        std::fs::write(&path, gz(&[&file[..6]])).unwrap();
        let bytes = read_maybe_gz(&path).unwrap();
        assert!(parse_images(&bytes, &path).is_err());
    }
}
