//! The font that labels charts. Plotters' `ab_glyph` text renderer has no access to system
//! fonts, so DejaVu Sans (Bitstream Vera licence, see `assets/fonts/`) is embedded in the
//! binary and registered once, under the family names plotters' defaults ask for.

use std::sync::OnceLock;

use plotters::style::{register_font, FontStyle};

use super::ExportError;

/// The embedded TrueType font.
pub static FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Family names the embedded font is registered under (plotters' labels default to
/// `"sans-serif"`).
pub const FONT_FAMILIES: [&str; 3] = ["sans-serif", "serif", "monospace"];

/// Registers the embedded font with plotters; cheap after the first call. Every chart
/// exporter calls it before drawing text.
pub fn ensure_fonts() -> Result<(), ExportError> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            for family in FONT_FAMILIES {
                register_font(family, FontStyle::Normal, FONT_BYTES).map_err(|_| {
                    "assets/fonts/DejaVuSans.ttf is not a valid TrueType font".to_string()
                })?;
            }
            Ok(())
        })
        .clone()
        .map_err(ExportError::Font)
}

#[cfg(test)]
mod tests {
    use super::*;
    use plotters::style::{FontDesc, FontFamily};

    #[test]
    fn registered_font_measures_greek_text() {
        ensure_fonts().unwrap();
        ensure_fonts().unwrap();
        let font = FontDesc::new(FontFamily::SansSerif, 20.0, FontStyle::Normal);
        let (w, h) = font.box_size("ᾱₜ βₜ").unwrap();
        assert!(w > 20 && h > 5, "{w}x{h}");
    }
}
