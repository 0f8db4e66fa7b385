//! 8-bit images as the lab shows and exports them, and conversion from model tensors.

use candle_core::{DType, Tensor};

/// One 8-bit image, row-major with interleaved channels (HWC): 1 channel = grey, 3 = RGB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image8 {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
    /// `height * width * channels` bytes, HWC order.
    pub pixels: Vec<u8>,
}

impl Image8 {
    /// Pixel value at (x, y, channel).
    pub fn get(&self, x: usize, y: usize, c: usize) -> u8 {
        self.pixels[(y * self.width + x) * self.channels + c]
    }

    /// The pixel at (x, y) as RGB (grey is repeated).
    pub fn rgb(&self, x: usize, y: usize) -> [u8; 3] {
        if self.channels == 1 {
            let v = self.get(x, y, 0);
            [v, v, v]
        } else {
            [self.get(x, y, 0), self.get(x, y, 1), self.get(x, y, 2)]
        }
    }

    /// Converts to an `image` crate RGB buffer (for export and terminal display).
    pub fn to_rgb_image(&self) -> image::RgbImage {
        image::RgbImage::from_fn(self.width as u32, self.height as u32, |x, y| {
            image::Rgb(self.rgb(x as usize, y as usize))
        })
    }
}

/// Converts a batch tensor `(N, C, H, W)` with values in `[-1, 1]` into 8-bit images
/// (values are clamped first, as the blog's `(x + 1) / 2` display step does).
pub fn tensor_to_images(t: &Tensor) -> candle_core::Result<Vec<Image8>> {
    let (n, c, h, w) = t.dims4()?;
    let data: Vec<f32> = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut pixels = vec![0u8; h * w * c];
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    let v = data[((i * c + ch) * h + y) * w + x];
                    let v = ((v.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8;
                    pixels[(y * w + x) * c + ch] = v;
                }
            }
        }
        out.push(Image8 {
            width: w,
            height: h,
            channels: c,
            pixels,
        });
    }
    Ok(out)
}
