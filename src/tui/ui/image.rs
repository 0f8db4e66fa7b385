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

/// How an image is drawn: every source pixel as `k`×`k` screen pixels (`Up(1)` is 1:1), or
/// every `k`×`k` block of source pixels averaged into one screen pixel. Only integer factors,
/// so every source pixel keeps the same size and a reduced image can say by how much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Enlarged by an integer factor (1: one screen pixel per image pixel).
    Up(usize),
    /// Reduced by an integer factor.
    Down(usize),
}

impl Scale {
    /// Screen pixels per image pixel.
    pub fn ratio(self) -> f64 {
        match self {
            Scale::Up(k) => k as f64,
            Scale::Down(k) => 1.0 / k as f64,
        }
    }

    /// Length of `n` image pixels on screen.
    pub fn apply(self, n: usize) -> usize {
        match self {
            Scale::Up(k) => n * k,
            Scale::Down(k) => n.div_ceil(k),
        }
    }

    /// What a title says of an image drawn below 1:1 (`½ scale`); `None` at 1:1 or above.
    pub fn note(self) -> Option<String> {
        match self {
            Scale::Up(_) | Scale::Down(0 | 1) => None,
            Scale::Down(2) => Some("½ scale".into()),
            Scale::Down(3) => Some("⅓ scale".into()),
            Scale::Down(4) => Some("¼ scale".into()),
            Scale::Down(k) => Some(format!("1/{k} scale")),
        }
    }

    /// The smaller of two scales (the one to report for a panel of several images).
    pub fn min(self, other: Scale) -> Scale {
        if other.ratio() < self.ratio() {
            other
        } else {
            self
        }
    }

    /// Candidate scales from large to small: ×`max_up` … ×1, then ½, ⅓, … down to 1/`max_down`.
    pub fn descending(max_up: usize, max_down: usize) -> impl Iterator<Item = Scale> {
        (1..=max_up.max(1))
            .rev()
            .map(Scale::Up)
            .chain((2..=max_down.max(1)).map(Scale::Down))
    }
}

/// The largest [`Scale`] at which an `iw`×`ih` image fits in `w`×`h` pixels (`None`: nothing
/// fits, or an empty image).
pub fn fit_scale(iw: usize, ih: usize, w: usize, h: usize) -> Option<Scale> {
    if iw == 0 || ih == 0 || w == 0 || h == 0 {
        return None;
    }
    let up = (w / iw).min(h / ih);
    if up >= 1 {
        return Some(Scale::Up(up));
    }
    // The smallest k with ceil(iw / k) <= w and ceil(ih / k) <= h.
    let k = iw.div_ceil(w).max(ih.div_ceil(h));
    Some(Scale::Down(k))
}

/// Size of `img` scaled to fit `(w, h)` pixels by [`fit_scale`].
pub fn fit_size(iw: usize, ih: usize, w: usize, h: usize) -> (usize, usize) {
    match fit_scale(iw, ih, w, h) {
        Some(s) => (s.apply(iw), s.apply(ih)),
        None => (0, 0),
    }
}

/// `img` at `scale`: enlarged by nearest neighbour (never blurred), or reduced by averaging
/// each block of source pixels (a block cut by the edge averages the pixels it has).
pub fn rescale(img: &Image8, scale: Scale) -> Image8 {
    match scale {
        Scale::Up(1) | Scale::Down(0 | 1) => img.clone(),
        Scale::Up(k) => resize_nearest(img, img.width * k, img.height * k),
        Scale::Down(k) => {
            let (w, h, ch) = (img.width.div_ceil(k), img.height.div_ceil(k), img.channels);
            let mut pixels = Vec::with_capacity(w * h * ch);
            for y in 0..h {
                for x in 0..w {
                    for c in 0..ch {
                        let (mut sum, mut n) = (0u32, 0u32);
                        for sy in y * k..((y + 1) * k).min(img.height) {
                            for sx in x * k..((x + 1) * k).min(img.width) {
                                sum += img.get(sx, sy, c) as u32;
                                n += 1;
                            }
                        }
                        pixels.push(((sum + n / 2) / n.max(1)) as u8);
                    }
                }
            }
            Image8 {
                width: w,
                height: h,
                channels: ch,
                pixels,
            }
        }
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

/// How a grid of tiles fits an area: its columns and the scale of every tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridFit {
    /// Tiles per row.
    pub cols: usize,
    /// Scale of each tile.
    pub scale: Scale,
}

/// Size in pixels of `n` tiles of `tw`×`th` in `cols` columns at `scale`, with one-pixel gaps
/// at screen resolution when reduced (the gap is enlarged with the tiles).
fn grid_pixels(n: usize, cols: usize, tw: usize, th: usize, scale: Scale) -> (usize, usize) {
    let rows = n.div_ceil(cols);
    match scale {
        Scale::Up(k) => ((cols * tw + cols - 1) * k, (rows * th + rows - 1) * k),
        Scale::Down(_) => (
            cols * scale.apply(tw) + cols - 1,
            rows * scale.apply(th) + rows - 1,
        ),
    }
}

/// The arrangement of `n` tiles of `tw`×`th` that shows them largest in `w`×`h` pixels (among
/// equal scales, the one closest to a square grid).
pub fn fit_grid(n: usize, tw: usize, th: usize, w: usize, h: usize) -> Option<GridFit> {
    if n == 0 || tw == 0 || th == 0 || w == 0 || h == 0 {
        return None;
    }
    let square = grid_cols(n) as i64;
    let max_up = (w / tw).min(h / th).max(1);
    let max_down = tw.max(th);
    let mut best: Option<(GridFit, i64)> = None;
    for scale in Scale::descending(max_up, max_down) {
        for cols in 1..=n {
            let (gw, gh) = grid_pixels(n, cols, tw, th, scale);
            if gw <= w && gh <= h {
                let off = (cols as i64 - square).abs();
                if best.is_none_or(|(_, o)| off < o) {
                    best = Some((GridFit { cols, scale }, off));
                }
            }
        }
        if best.is_some() {
            return best.map(|(g, _)| g);
        }
    }
    None
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
        let Some(scale) = fit_scale(
            self.img.width,
            self.img.height,
            area.width as usize,
            area.height as usize * 2,
        ) else {
            return;
        };
        let scaled = rescale(self.img, scale);
        let (w, h) = (scaled.width, scaled.height);
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

    /// Screen pixels of one cell: 1×2 with half-blocks, the font's size with a protocol.
    pub fn cell_pixels(&self) -> (usize, usize) {
        match &self.picker {
            None => (1, 2),
            Some(p) => {
                let fs = p.font_size();
                (fs.width.max(1) as usize, fs.height.max(1) as usize)
            }
        }
    }

    /// Screen pixels of `area`.
    pub fn pixels(&self, area: Rect) -> (usize, usize) {
        let (cw, ch) = self.cell_pixels();
        (area.width as usize * cw, area.height as usize * ch)
    }

    /// Cells `w`×`h` screen pixels take (rounded up).
    pub fn cells(&self, w: usize, h: usize) -> (u16, u16) {
        let (cw, ch) = self.cell_pixels();
        (w.div_ceil(cw) as u16, h.div_ceil(ch) as u16)
    }

    /// The scale `img` is drawn at in `area` (`None`: the area is empty).
    pub fn scale_in(&self, area: Rect, img: &Image8) -> Option<Scale> {
        let (w, h) = self.pixels(area);
        fit_scale(img.width, img.height, w, h)
    }

    /// Draws `img` centred in `area` at the largest [`Scale`] that fits; returns that scale.
    pub fn render(&self, frame: &mut Frame, area: Rect, img: &Image8) -> Option<Scale> {
        let scale = self.scale_in(area, img)?;
        let Some(picker) = &self.picker else {
            frame.render_widget(HalfBlocks::new(img), area);
            return Some(scale);
        };
        let key = (hash_image(img), area.width, area.height);
        let mut cache = self.cache.borrow_mut();
        if !cache.contains_key(&key) {
            if cache.len() > 256 {
                cache.clear();
            }
            // Scale ourselves (integer factors) to the pixels of the area, so the protocol
            // never resizes and never interpolates.
            let dynimg = image::DynamicImage::ImageRgb8(rescale(img, scale).to_rgb_image());
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
                    return fit_scale(
                        img.width,
                        img.height,
                        area.width as usize,
                        area.height as usize * 2,
                    );
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
        Some(scale)
    }

    /// How `imgs` (tiles of one size) fit `area` as a grid.
    pub fn grid_fit(&self, area: Rect, imgs: &[Image8]) -> Option<GridFit> {
        let first = imgs.first()?;
        let (w, h) = self.pixels(area);
        fit_grid(imgs.len(), first.width, first.height, w, h)
    }

    /// How many of `all` to draw in `area` (the first ones): per `(ratio, counts)` of `tries`
    /// in turn, the first of `counts` (at most `all.len()`) whose grid shows at `ratio` or
    /// larger; one where none does. Fewer images, larger, say more than many at 1/7.
    pub fn shown_count(&self, area: Rect, all: &[Image8], tries: &[(f64, &[usize])]) -> usize {
        let fits = |k: usize, ratio: f64| {
            k <= all.len()
                && self
                    .grid_fit(area, &all[..k])
                    .is_some_and(|g| g.scale.ratio() >= ratio)
        };
        tries
            .iter()
            .find_map(|(ratio, counts)| counts.iter().copied().find(|&k| fits(k, *ratio)))
            .unwrap_or(all.len().min(1))
    }

    /// Draws `imgs` as a grid in `area`, each tile as large as the grid allows (reduced tiles
    /// keep one-pixel gaps); returns the scale of the tiles.
    pub fn render_grid(&self, frame: &mut Frame, area: Rect, imgs: &[Image8]) -> Option<Scale> {
        let fit = self.grid_fit(area, imgs)?;
        let grid = match fit.scale {
            Scale::Up(_) => compose_grid(imgs, fit.cols, 1)?,
            Scale::Down(_) => {
                let small: Vec<Image8> = imgs.iter().map(|i| rescale(i, fit.scale)).collect();
                compose_grid(&small, fit.cols, 1)?
            }
        };
        self.render(frame, area, &grid)?;
        Some(fit.scale)
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
    fn scales_are_integer_factors_and_say_when_reduced() {
        assert_eq!(fit_scale(28, 28, 28, 28), Some(Scale::Up(1)));
        assert_eq!(fit_scale(28, 28, 85, 60), Some(Scale::Up(2)));
        assert_eq!(fit_scale(28, 28, 27, 100), Some(Scale::Down(2)));
        assert_eq!(fit_scale(28, 28, 14, 14), Some(Scale::Down(2)));
        assert_eq!(fit_scale(28, 28, 13, 14), Some(Scale::Down(3)));
        assert_eq!(fit_scale(28, 28, 0, 14), None);
        assert_eq!(Scale::Up(1).note(), None);
        assert_eq!(Scale::Down(2).note().as_deref(), Some("½ scale"));
        assert_eq!(Scale::Down(6).note().as_deref(), Some("1/6 scale"));
        // Reducing averages blocks (a cut block averages what it has).
        let i = img(3, 1);
        let half = rescale(&i, Scale::Down(2));
        assert_eq!((half.width, half.height), (2, 1));
        let avg = (i.get(0, 0, 0) as u32 + i.get(1, 0, 0) as u32).div_ceil(2);
        assert_eq!(half.get(0, 0, 0) as u32, avg);
        assert_eq!(half.get(1, 0, 0), i.get(2, 0, 0));
    }

    #[test]
    fn grids_pick_the_largest_scale_then_the_squarest() {
        // 16 tiles of 28×28 in 59×76 pixels (a Sample panel at 160×48): 4×4 at ½.
        let g = fit_grid(16, 28, 28, 59, 76).unwrap();
        assert_eq!(
            g,
            GridFit {
                cols: 4,
                scale: Scale::Down(2)
            }
        );
        // One tile of 28×28 in 60×60: twice its size.
        assert_eq!(fit_grid(1, 28, 28, 60, 60).unwrap().scale, Scale::Up(2));
        // Eight previews in a wide strip: one row at 1:1.
        let g = fit_grid(8, 28, 28, 240, 30).unwrap();
        assert_eq!(
            g,
            GridFit {
                cols: 8,
                scale: Scale::Up(1)
            }
        );
        assert_eq!(fit_grid(4, 28, 28, 0, 10), None);
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
