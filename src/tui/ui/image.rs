//! Images inside the layout: unicode half-blocks (`▀`, top pixel in the foreground colour,
//! bottom pixel in the background) everywhere, and real pixels through ratatui-image where the
//! terminal speaks a graphics protocol. Scaling is always nearest-neighbour, never blurred.

use std::cell::RefCell;
use std::collections::HashMap;

use ratatui::buffer::Buffer;
use ratatui::layout::{Rect, Size};
use ratatui::style::Color;
use ratatui::widgets::Widget;
use ratatui::Frame;
use ratatui_image::picker::{Picker, ProtocolType};
use ratatui_image::protocol::Protocol;
use ratatui_image::Resize;

use crate::imaging::Image8;

/// Colour of the gaps between tiles of a grid.
pub const GAP_GREY: u8 = 40;

/// Size of `img` scaled by nearest neighbour to fit `(w, h)` pixels: an integer factor when
/// enlarging (every source pixel the same size), a fraction when shrinking.
pub fn fit_size(iw: usize, ih: usize, w: usize, h: usize) -> (usize, usize) {
    if iw == 0 || ih == 0 || w == 0 || h == 0 {
        return (0, 0);
    }
    let s = (w as f64 / iw as f64).min(h as f64 / ih as f64);
    if s >= 1.0 {
        let k = s.floor() as usize;
        (iw * k, ih * k)
    } else {
        (
            ((iw as f64 * s).floor() as usize).max(1),
            ((ih as f64 * s).floor() as usize).max(1),
        )
    }
}

/// `img` resized to `(w, h)` by nearest neighbour.
pub fn resize_nearest(img: &Image8, w: usize, h: usize) -> Image8 {
    let mut pixels = Vec::with_capacity(w * h * img.channels);
    for y in 0..h {
        let sy = y * img.height / h;
        for x in 0..w {
            let sx = x * img.width / w;
            for c in 0..img.channels {
                pixels.push(img.get(sx, sy, c));
            }
        }
    }
    Image8 {
        width: w,
        height: h,
        channels: img.channels,
        pixels,
    }
}

/// Tiles images of one size into a grid of `cols` columns separated by `gap` grey pixels.
pub fn compose_grid(images: &[Image8], cols: usize, gap: usize) -> Option<Image8> {
    let first = images.first()?;
    let cols = cols.clamp(1, images.len());
    let rows = images.len().div_ceil(cols);
    let (tw, th, ch) = (first.width, first.height, first.channels);
    let w = cols * tw + (cols - 1) * gap;
    let h = rows * th + (rows - 1) * gap;
    let mut out = Image8 {
        width: w,
        height: h,
        channels: ch,
        pixels: vec![GAP_GREY; w * h * ch],
    };
    for (i, img) in images.iter().enumerate() {
        let (ox, oy) = ((i % cols) * (tw + gap), (i / cols) * (th + gap));
        for y in 0..th.min(img.height) {
            for x in 0..tw.min(img.width) {
                for c in 0..ch {
                    let v = img.get(x, y, c.min(img.channels - 1));
                    out.pixels[((oy + y) * w + ox + x) * ch + c] = v;
                }
            }
        }
    }
    Some(out)
}

/// Columns of a near-square grid of `n` tiles.
pub fn grid_cols(n: usize) -> usize {
    ((n as f64).sqrt().ceil() as usize).max(1)
}

/// A widget drawing an [`Image8`] with half-blocks, centred and fitted to its area.
pub struct HalfBlocks<'a> {
    img: &'a Image8,
}

impl<'a> HalfBlocks<'a> {
    /// Wraps an image.
    pub fn new(img: &'a Image8) -> Self {
        Self { img }
    }
}

fn rgb(c: [u8; 3]) -> Color {
    Color::Rgb(c[0], c[1], c[2])
}

impl Widget for HalfBlocks<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let (w, h) = fit_size(
            self.img.width,
            self.img.height,
            area.width as usize,
            area.height as usize * 2,
        );
        if w == 0 || h == 0 {
            return;
        }
        let scaled = resize_nearest(self.img, w, h);
        let cells_h = h.div_ceil(2);
        let ox = area.x + (area.width - w as u16) / 2;
        let oy = area.y + (area.height - cells_h as u16) / 2;
        for cy in 0..cells_h {
            for x in 0..w {
                let top = scaled.rgb(x, cy * 2);
                let cell = &mut buf[(ox + x as u16, oy + cy as u16)];
                if cy * 2 + 1 < h {
                    let bottom = scaled.rgb(x, cy * 2 + 1);
                    cell.set_char('▀').set_fg(rgb(top)).set_bg(rgb(bottom));
                } else {
                    cell.set_char('▀').set_fg(rgb(top)).set_bg(Color::Reset);
                }
            }
        }
    }
}

/// Draws images either with half-blocks or with a terminal graphics protocol.
pub struct ImageRenderer {
    picker: Option<Picker>,
    cache: RefCell<HashMap<(u64, u16, u16), Protocol>>,
}

impl ImageRenderer {
    /// Half-blocks only (tests, terminals without a graphics protocol).
    pub fn halfblocks() -> Self {
        Self {
            picker: None,
            cache: RefCell::new(HashMap::new()),
        }
    }

    /// Uses `picker`'s protocol when it is a real graphics protocol.
    pub fn with_picker(picker: Picker) -> Self {
        let picker = (picker.protocol_type() != ProtocolType::Halfblocks).then_some(picker);
        Self {
            picker,
            cache: RefCell::new(HashMap::new()),
        }
    }

    /// Name of the protocol in use.
    pub fn protocol_name(&self) -> &'static str {
        match self.picker.as_ref().map(|p| p.protocol_type()) {
            None | Some(ProtocolType::Halfblocks) => "half-blocks",
            Some(ProtocolType::Sixel) => "sixel",
            Some(ProtocolType::Kitty) => "kitty",
            Some(ProtocolType::Iterm2) => "iterm2",
        }
    }

    /// Draws `img` fitted into `area`.
    pub fn render(&self, frame: &mut Frame, area: Rect, img: &Image8) {
        if area.width == 0 || area.height == 0 {
            return;
        }
        let Some(picker) = &self.picker else {
            frame.render_widget(HalfBlocks::new(img), area);
            return;
        };
        let key = (hash_image(img), area.width, area.height);
        let mut cache = self.cache.borrow_mut();
        if !cache.contains_key(&key) {
            if cache.len() > 256 {
                cache.clear();
            }
            // Upscale ourselves (nearest) to the pixel size of the area, so the protocol only
            // ever shrinks by at most a cell and never interpolates.
            let fs = picker.font_size();
            let (pw, ph) = (
                area.width as usize * fs.width as usize,
                area.height as usize * fs.height as usize,
            );
            let (w, h) = fit_size(img.width, img.height, pw, ph);
            let big = resize_nearest(img, w.max(1), h.max(1));
            let dynimg = image::DynamicImage::ImageRgb8(big.to_rgb_image());
            match picker.new_protocol(
                dynimg,
                Size::new(area.width, area.height),
                Resize::Fit(None),
            ) {
                Ok(p) => {
                    cache.insert(key, p);
                }
                Err(_) => {
                    drop(cache);
                    frame.render_widget(HalfBlocks::new(img), area);
                    return;
                }
            }
        }
        let proto = &cache[&key];
        let size = proto.size();
        let x = area.x + area.width.saturating_sub(size.width) / 2;
        let y = area.y + area.height.saturating_sub(size.height) / 2;
        let target = Rect::new(
            x,
            y,
            size.width.min(area.width),
            size.height.min(area.height),
        );
        frame.render_widget(ratatui_image::Image::new(proto), target);
    }
}

fn hash_image(img: &Image8) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (img.width, img.height, img.channels).hash(&mut h);
    img.pixels.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(w: usize, h: usize) -> Image8 {
        Image8 {
            width: w,
            height: h,
            channels: 1,
            pixels: (0..w * h).map(|i| (i * 37 % 256) as u8).collect(),
        }
    }

    #[test]
    fn fits_with_integer_upscale_and_nearest_downscale() {
        assert_eq!(fit_size(28, 28, 100, 60), (56, 56));
        assert_eq!(fit_size(28, 28, 14, 100), (14, 14));
        let i = img(2, 2);
        let big = resize_nearest(&i, 4, 4);
        assert_eq!(big.get(0, 0, 0), i.get(0, 0, 0));
        assert_eq!(big.get(1, 1, 0), i.get(0, 0, 0));
        assert_eq!(big.get(3, 3, 0), i.get(1, 1, 0));
    }

    #[test]
    fn grid_places_tiles_with_gaps() {
        let tiles = vec![img(3, 3), img(3, 3), img(3, 3)];
        let g = compose_grid(&tiles, 2, 1).unwrap();
        assert_eq!((g.width, g.height), (7, 7));
        assert_eq!(g.get(3, 0, 0), GAP_GREY);
        assert_eq!(g.get(4, 0, 0), tiles[1].get(0, 0, 0));
        assert_eq!(g.get(4, 4, 0), GAP_GREY);
        assert_eq!(grid_cols(16), 4);
        assert_eq!(grid_cols(5), 3);
    }

    #[test]
    fn half_blocks_pack_two_rows_per_cell() {
        let i = img(2, 2);
        let mut buf = Buffer::empty(Rect::new(0, 0, 2, 1));
        HalfBlocks::new(&i).render(buf.area, &mut buf);
        let c = &buf[(1, 0)];
        assert_eq!(c.symbol(), "▀");
        let v = i.get(1, 0, 0);
        assert_eq!(c.fg, Color::Rgb(v, v, v));
        let v = i.get(1, 1, 0);
        assert_eq!(c.bg, Color::Rgb(v, v, v));
    }
}
