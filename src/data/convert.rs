//! Pixel plumbing shared by the loaders: decode PNG/JPEG, convert channels, resize/crop to a
//! square, CHW packing, and a small parallel map over images.

use image::imageops::FilterType;
use image::{DynamicImage, GrayImage, RgbImage};

/// Decodes PNG/JPEG bytes (format guessed from the content).
pub(crate) fn decode(bytes: &[u8]) -> Result<DynamicImage, String> {
    image::load_from_memory(bytes).map_err(|e| format!("image does not decode: {e}"))
}

/// 1 for images without colour, 3 otherwise.
pub(crate) fn native_channels(img: &DynamicImage) -> usize {
    if img.color().has_color() {
        3
    } else {
        1
    }
}

/// `img` as CHW bytes with `channels` (1 or 3), resized and centre-cropped to `size`×`size`
/// when `size` is given and differs. Returns the bytes and (height, width).
pub(crate) fn dynamic_to_chw(
    img: &DynamicImage,
    channels: usize,
    size: Option<usize>,
) -> (Vec<u8>, usize, usize) {
    let resized;
    let img = match size {
        Some(s) if img.width() as usize != s || img.height() as usize != s => {
            resized = img.resize_to_fill(s as u32, s as u32, FilterType::Triangle);
            &resized
        }
        _ => img,
    };
    let (w, h) = (img.width() as usize, img.height() as usize);
    if channels == 1 {
        (img.to_luma8().into_raw(), h, w)
    } else {
        let rgb = img.to_rgb8().into_raw();
        let mut out = vec![0u8; 3 * h * w];
        for p in 0..h * w {
            for c in 0..3 {
                out[c * h * w + p] = rgb[p * 3 + c];
            }
        }
        (out, h, w)
    }
}

/// CHW bytes back into an `image` buffer (grey for 1 channel, RGB for 3).
pub(crate) fn chw_to_dynamic(
    chw: &[u8],
    channels: usize,
    height: usize,
    width: usize,
) -> DynamicImage {
    if channels == 1 {
        let buf = GrayImage::from_raw(width as u32, height as u32, chw.to_vec())
            .expect("CHW buffer has height*width bytes");
        DynamicImage::ImageLuma8(buf)
    } else {
        let mut hwc = vec![0u8; 3 * height * width];
        for p in 0..height * width {
            for c in 0..3 {
                hwc[p * 3 + c] = chw[c * height * width + p];
            }
        }
        let buf = RgbImage::from_raw(width as u32, height as u32, hwc)
            .expect("CHW buffer has 3*height*width bytes");
        DynamicImage::ImageRgb8(buf)
    }
}

/// Threads to use for CPU-bound decoding.
fn threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 16)
}

/// `f(0..n)` computed on several threads, in order.
pub(crate) fn par_map<R: Send>(n: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let t = threads().min(n.max(1));
    if t <= 1 {
        return (0..n).map(f).collect();
    }
    let chunk = n.div_ceil(t);
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..t)
            .map(|k| {
                s.spawn(move || {
                    (k * chunk..((k + 1) * chunk).min(n))
                        .map(f)
                        .collect::<Vec<R>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("decoder thread panicked"))
            .collect()
    })
}

/// A decoding failure: which image, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodeFailure {
    /// Index of the image in the input.
    pub index: usize,
    /// What went wrong.
    pub reason: String,
}

/// Decodes encoded images into one CHW buffer with a common geometry; returns
/// (pixels, channels, height, width).
///
/// `channels`/`size` of `None` take the first image's; without `size`, every image must have the
/// first image's size.
pub(crate) fn decode_all(
    encoded: &[&[u8]],
    channels: Option<usize>,
    size: Option<usize>,
) -> Result<(Vec<u8>, usize, usize, usize), DecodeFailure> {
    let fail = |index: usize, reason: String| DecodeFailure { index, reason };
    let Some(first) = encoded.first() else {
        return Err(fail(0, "no image".to_string()));
    };
    let first = decode(first).map_err(|e| fail(0, e))?;
    let c = channels.unwrap_or_else(|| native_channels(&first));
    let (_, h, w) = dynamic_to_chw(&first, c, size);
    let parts = par_map(encoded.len(), |i| -> Result<Vec<u8>, DecodeFailure> {
        let img = decode(encoded[i]).map_err(|e| fail(i, e))?;
        if size.is_none() && (img.height() as usize != h || img.width() as usize != w) {
            return Err(fail(
                i,
                format!(
                    "image is {}×{} but the first one is {w}×{h}; pass --image-size to resize \
                     all images to one size",
                    img.width(),
                    img.height()
                ),
            ));
        }
        Ok(dynamic_to_chw(&img, c, size).0)
    });
    let mut out = Vec::with_capacity(encoded.len() * c * h * w);
    for p in parts {
        out.extend_from_slice(&p?);
    }
    Ok((out, c, h, w))
}
