//! Export layer end to end: grids, GIFs and charts are written, decodable, of the expected
//! size and content; bad input gives errors that name the file.

use std::fs;
use std::io::BufReader;
use std::path::Path;

use ddpm_lab::export::grid::{GridError, GRID_GAP, GRID_GAP_VALUE};
use ddpm_lab::export::{
    gif::{hold_repeats, DENOISING_GIF_FRAMES},
    grid_image, pick_frames, save_denoise_gif, save_denoising_gif, save_grid_png, save_loss_chart,
    save_loss_chart_with, save_schedule_chart, ExportError, LossChartOptions, SCHEDULE_COLORS,
};
use ddpm_lab::imaging::Image8;
use ddpm_lab::schedule::{BetaSchedule, ScheduleTables};
use image::AnimationDecoder;

/// A grey image whose pixel (x, y) is `seed + 10 y + x`.
fn ramp(w: usize, h: usize, seed: u8) -> Image8 {
    let pixels = (0..h)
        .flat_map(|y| (0..w).map(move |x| seed.wrapping_add((10 * y + x) as u8)))
        .collect();
    Image8 {
        width: w,
        height: h,
        channels: 1,
        pixels,
    }
}

fn rgb(w: usize, h: usize, color: [u8; 3]) -> Image8 {
    Image8 {
        width: w,
        height: h,
        channels: 3,
        pixels: color.repeat(w * h),
    }
}

fn all_tables(t: usize) -> Vec<ScheduleTables> {
    BetaSchedule::ALL
        .into_iter()
        .map(|s| ScheduleTables::new(s, t).unwrap())
        .collect()
}

#[test]
fn grid_upscales_with_nearest_neighbour_exactly() {
    let images: Vec<Image8> = (0..5).map(|i| ramp(4, 3, 40 * i as u8)).collect();
    let (cols, scale) = (3, 4);
    let g = grid_image(&images, cols, scale).unwrap();
    assert_eq!(g.channels, 1);
    assert_eq!(g.width, 3 * 4 * 4 + 2 * GRID_GAP);
    assert_eq!(g.height, 2 * 3 * 4 + GRID_GAP);
    // Every pixel of every tile lands in its own scale×scale block.
    for (i, img) in images.iter().enumerate() {
        let (ox, oy) = (
            (i % cols) * (4 * scale + GRID_GAP),
            (i / cols) * (3 * scale + GRID_GAP),
        );
        for y in 0..3 {
            for x in 0..4 {
                for dy in 0..scale {
                    for dx in 0..scale {
                        assert_eq!(
                            g.get(ox + x * scale + dx, oy + y * scale + dy, 0),
                            img.get(x, y, 0),
                            "image {i} pixel ({x},{y}) sub ({dx},{dy})"
                        );
                    }
                }
            }
        }
    }
    // Pixel (2, 1) of image 4 (row 1, col 1): value 160 + 12.
    let (x0, y0) = (4 * scale + GRID_GAP, 3 * scale + GRID_GAP);
    assert_eq!(g.get(x0 + 2 * scale, y0 + scale, 0), 172);
    assert_eq!(g.get(x0 + 2 * scale - 1, y0 + scale, 0), 171);
    // The empty sixth cell and the gaps are gap grey.
    assert_eq!(g.get(g.width - 1, g.height - 1, 0), GRID_GAP_VALUE);
    assert_eq!(g.get(4 * scale, 0, 0), GRID_GAP_VALUE);
}

#[test]
fn grid_errors_are_clear() {
    assert_eq!(grid_image(&[], 4, 1), Err(GridError::Empty));
    let err = grid_image(&[ramp(4, 4, 0), ramp(4, 5, 0)], 2, 1).unwrap_err();
    assert_eq!(
        err,
        GridError::SizeMismatch {
            index: 1,
            want_w: 4,
            want_h: 4,
            got_w: 4,
            got_h: 5
        }
    );
    assert_eq!(
        grid_image(&[ramp(4, 4, 0)], 0, 1),
        Err(GridError::ZeroColumns)
    );
    assert_eq!(
        grid_image(&[ramp(4, 4, 0)], 1, 0),
        Err(GridError::ZeroScale)
    );
}

#[test]
fn png_grid_decodes_to_the_same_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grid.png");
    let images = vec![ramp(5, 4, 0), ramp(5, 4, 100), ramp(5, 4, 200)];
    save_grid_png(&images, 2, 3, &path).unwrap();
    let decoded = image::open(&path).unwrap().to_rgb8();
    let expected = grid_image(&images, 2, 3).unwrap();
    assert_eq!(
        (decoded.width() as usize, decoded.height() as usize),
        (expected.width, expected.height)
    );
    assert_eq!(decoded.width() as usize, 2 * 15 + GRID_GAP);
    for y in 0..expected.height {
        for x in 0..expected.width {
            assert_eq!(decoded.get_pixel(x as u32, y as u32).0, expected.rgb(x, y));
        }
    }
    // Only the target is left in the directory (no temporary files).
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn png_grid_keeps_rgb_colours() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rgb.png");
    save_grid_png(
        &[rgb(2, 2, [200, 10, 30]), rgb(2, 2, [0, 90, 255])],
        2,
        2,
        &path,
    )
    .unwrap();
    let decoded = image::open(&path).unwrap().to_rgb8();
    assert_eq!(
        (decoded.width(), decoded.height()),
        (8 + GRID_GAP as u32, 4)
    );
    assert_eq!(decoded.get_pixel(3, 3).0, [200, 10, 30]);
    assert_eq!(decoded.get_pixel(4 + GRID_GAP as u32, 0).0, [0, 90, 255]);
}

#[test]
fn png_errors_name_the_path_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.png");
    let err = save_grid_png(&[], 4, 1, &path).unwrap_err();
    assert!(matches!(
        err,
        ExportError::Grid {
            error: GridError::Empty,
            ..
        }
    ));
    assert!(err.to_string().contains("out.png"), "{err}");

    let err = save_grid_png(&[ramp(3, 3, 0), ramp(4, 3, 0)], 2, 1, &path).unwrap_err();
    assert!(err.to_string().contains("image 1 is 4x3 px"), "{err}");

    let missing = dir.path().join("no/such/dir/out.png");
    let err = save_grid_png(&[ramp(3, 3, 0)], 1, 1, &missing).unwrap_err();
    assert!(matches!(err, ExportError::NoSuchDirectory { .. }), "{err}");
    assert!(err.to_string().contains("does not exist"), "{err}");

    let err = save_grid_png(&[ramp(3, 3, 0)], 1, 1, dir.path()).unwrap_err();
    assert!(matches!(err, ExportError::IsADirectory { .. }), "{err}");

    // A regular file where the directory should be.
    let file = dir.path().join("file");
    fs::write(&file, b"x").unwrap();
    let err = save_grid_png(&[ramp(3, 3, 0)], 1, 1, &file.join("out.png")).unwrap_err();
    assert!(matches!(err, ExportError::NoSuchDirectory { .. }), "{err}");

    let err = save_grid_png(&[ramp(3, 3, 0)], 1, 1, &dir.path().join("out.jpg")).unwrap_err();
    assert!(
        matches!(err, ExportError::UnsupportedFormat { .. }),
        "{err}"
    );

    assert!(!path.exists());
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1); // just "file"

    // The checks that commands make before any work agree with the writer's.
    use ddpm_lab::export::{check_gif_target, check_png_target};
    assert!(check_png_target(&path).is_ok());
    assert!(check_png_target(&dir.path().join("OUT.PNG")).is_ok());
    for bad in [
        dir.path().join("out.jpg"),
        missing.clone(),
        dir.path().to_path_buf(),
        file.join("out.png"),
    ] {
        let early = check_png_target(&bad).unwrap_err().to_string();
        let late = save_grid_png(&[ramp(3, 3, 0)], 1, 1, &bad)
            .unwrap_err()
            .to_string();
        assert_eq!(early, late);
    }
    assert!(check_gif_target(&dir.path().join("a.gif")).is_ok());
    assert!(check_gif_target(&dir.path().join("a.png")).is_err());
    assert!(check_gif_target(&dir.path().join("no/a.gif")).is_err());
}

/// An I/O error is said once in an error chain (it was both the message's end and its source).
#[test]
fn an_io_error_is_said_once() {
    let err = ExportError::Io {
        path: "ro/s.png".into(),
        error: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
    };
    let chain = format!("{:#}", anyhow::Error::new(err));
    assert_eq!(chain.matches("permission denied").count(), 1, "{chain}");
}

fn gif_frames(path: &Path) -> Vec<image::Frame> {
    let file = BufReader::new(fs::File::open(path).unwrap());
    image::codecs::gif::GifDecoder::new(file)
        .unwrap()
        .into_frames()
        .collect_frames()
        .unwrap()
}

#[test]
fn gif_has_one_frame_per_step_plus_the_hold() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("denoise.gif");
    // 6 steps of 4 images; brightness grows with the step so frames differ.
    let frames: Vec<Vec<Image8>> = (0..6)
        .map(|s| (0..4).map(|i| ramp(6, 6, 40 * s as u8 + i as u8)).collect())
        .collect();
    let delay = 100;
    save_denoise_gif(&frames, 2, 2, delay, &path).unwrap();
    let decoded = gif_frames(&path);
    assert_eq!(decoded.len(), 6 + hold_repeats(delay));
    let grid = grid_image(&frames[0], 2, 2).unwrap();
    for f in &decoded {
        let buf = f.buffer();
        assert_eq!(
            (buf.width() as usize, buf.height() as usize),
            (grid.width, grid.height)
        );
        let (num, den) = f.delay().numer_denom_ms();
        assert_eq!(num / den, delay);
    }
    // The held frames repeat the last step exactly.
    let last = decoded.last().unwrap().buffer();
    assert_eq!(decoded[5].buffer(), last);
    assert_ne!(decoded[0].buffer(), last);
    // The gap is exactly grey (it is a frequent colour, so the quantizer keeps it).
    assert_eq!(
        last.get_pixel(12, 0).0,
        [GRID_GAP_VALUE, GRID_GAP_VALUE, GRID_GAP_VALUE, 255]
    );
}

#[test]
fn gif_with_subsampled_frames() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub.gif");
    let all: Vec<Vec<Image8>> = (0..50).map(|s| vec![ramp(4, 4, s as u8)]).collect();
    let picked: Vec<Vec<Image8>> = pick_frames(all.len(), 8)
        .into_iter()
        .map(|i| all[i].clone())
        .collect();
    save_denoise_gif(&picked, 1, 1, 1500, &path).unwrap();
    assert_eq!(gif_frames(&path).len(), 8);
}

#[test]
fn a_1000_step_denoising_gif_keeps_60_frames_from_noise_to_the_samples() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ddpm.gif");
    let all: Vec<Vec<Image8>> = (0..1001).map(|s| vec![ramp(4, 4, (s / 4) as u8)]).collect();
    save_denoising_gif(&all, 1, &path).unwrap();
    let decoded = gif_frames(&path);
    assert_eq!(decoded.len(), DENOISING_GIF_FRAMES + hold_repeats(80));
    let (first, last) = (
        grid_image(&all[0], 1, 4).unwrap(),
        grid_image(&all[1000], 1, 4).unwrap(),
    );
    let size = |g: &Image8| (g.width as u32, g.height as u32);
    assert_eq!(decoded[0].buffer().dimensions(), size(&first), "4× scale");
    assert_ne!(decoded[0].buffer(), decoded.last().unwrap().buffer());
    assert_eq!(size(&first), size(&last));
}

#[test]
fn gif_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.gif");
    let err = save_denoise_gif(&[], 2, 1, 100, &path).unwrap_err();
    assert!(matches!(err, ExportError::NoFrames { .. }), "{err}");
    // 4 images in 2 columns vs 3 images in 2 columns: same grid size, so this is fine…
    let frames = vec![vec![ramp(4, 4, 0); 4], vec![ramp(4, 4, 0); 3]];
    save_denoise_gif(&frames, 2, 1, 100, &path).unwrap();
    // …but 4 vs 2 images is not.
    let frames = vec![vec![ramp(4, 4, 0); 4], vec![ramp(4, 4, 0); 2]];
    let err = save_denoise_gif(&frames, 2, 1, 100, &path).unwrap_err();
    assert!(
        matches!(err, ExportError::FrameSizeMismatch { index: 1, .. }),
        "{err}"
    );
    let frames = vec![vec![ramp(4, 4, 0)], vec![]];
    let err = save_denoise_gif(&frames, 2, 1, 100, &path).unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
    let err =
        save_denoise_gif(&[vec![ramp(4, 4, 0)]], 1, 1, 100, &dir.path().join("x.png")).unwrap_err();
    assert!(
        matches!(err, ExportError::UnsupportedFormat { .. }),
        "{err}"
    );
}

/// The text content of every `<text>` element of an SVG document, trimmed.
fn svg_texts(svg: &str) -> Vec<String> {
    svg.split("</text>")
        .filter_map(|chunk| chunk.rfind('>').map(|i| chunk[i + 1..].trim().to_string()))
        .collect()
}

/// Whether `img` contains a pixel within a small distance of `color`.
fn has_color(img: &image::RgbImage, color: (u8, u8, u8)) -> bool {
    img.pixels().any(|p| {
        let [r, g, b] = p.0;
        (r as i32 - color.0 as i32).abs() <= 8
            && (g as i32 - color.1 as i32).abs() <= 8
            && (b as i32 - color.2 as i32).abs() <= 8
    })
}

#[test]
fn schedule_chart_png_has_the_size_and_every_colour() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("curves.png");
    save_schedule_chart(&all_tables(200), &path).unwrap();
    let img = image::open(&path).unwrap().to_rgb8();
    let (w, h) = ddpm_lab::export::chart::SCHEDULE_CHART_SIZE;
    assert_eq!((img.width(), img.height()), (w, h));
    for c in SCHEDULE_COLORS {
        assert!(has_color(&img, c), "colour {c:?} missing");
    }
    // A white background with dark text on it.
    assert_eq!(img.get_pixel(2, 2).0, [255, 255, 255]);
    assert!(img.pixels().filter(|p| p.0.iter().all(|&v| v < 60)).count() > 500);
}

#[test]
fn schedule_chart_svg_names_every_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("curves.svg");
    save_schedule_chart(&all_tables(100), &path).unwrap();
    let svg = fs::read_to_string(&path).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
    let texts = svg_texts(&svg);
    for s in BetaSchedule::ALL {
        assert!(
            texts.iter().any(|t| t == s.name()),
            "legend lacks {s}: {texts:?}"
        );
    }
    assert!(texts.iter().any(|t| t.contains("T = 100")), "{texts:?}");
}

#[test]
fn chart_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = save_schedule_chart(&[], &dir.path().join("c.png")).unwrap_err();
    assert!(matches!(err, ExportError::NothingToPlot { .. }), "{err}");
    let err = save_schedule_chart(&all_tables(10), &dir.path().join("c.pdf")).unwrap_err();
    assert!(err.to_string().contains(".png or .svg"), "{err}");
    let err = save_loss_chart(&[], &dir.path().join("l.png")).unwrap_err();
    assert!(matches!(err, ExportError::NothingToPlot { .. }), "{err}");
    let missing = dir.path().join("nope").join("c.png");
    let err = save_schedule_chart(&all_tables(10), &missing).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn loss_chart_png_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let curve = |scale: f64| -> Vec<(f64, f64)> {
        (0..300)
            .map(|i| {
                let s = i as f64;
                let noise = 0.01 * ((s * 1.7).sin());
                (s, scale * (0.05 + 0.4 * (-s / 40.0).exp()) + noise)
            })
            .collect()
    };
    let series = vec![
        ("linear".to_string(), curve(1.0)),
        ("cosine".to_string(), curve(1.2)),
    ];
    let png = dir.path().join("loss.png");
    let opts = LossChartOptions {
        ema: Some(0.9),
        size: (800, 400),
        ..Default::default()
    };
    save_loss_chart_with(&series, &png, &opts).unwrap();
    let img = image::open(&png).unwrap().to_rgb8();
    assert_eq!((img.width(), img.height()), (800, 400));
    assert!(has_color(&img, SCHEDULE_COLORS[0]));
    assert!(has_color(&img, SCHEDULE_COLORS[2]));

    let svg = dir.path().join("loss.svg");
    save_loss_chart(&series, &svg).unwrap();
    let texts = svg_texts(&fs::read_to_string(&svg).unwrap());
    for name in ["linear", "cosine", "Training loss"] {
        assert!(texts.iter().any(|t| t == name), "no {name} in {texts:?}");
    }
}

/// The first `n` Fashion-MNIST test images, or None after skipping the test when the shared
/// data set is not next to the repository (see `common::shared`).
fn fashion_mnist(n: usize) -> Option<Vec<Image8>> {
    use std::io::Read;
    let path = crate::common::shared("data/fashion-mnist/t10k-images-idx3-ubyte.gz")?;
    let file = fs::File::open(&path).unwrap();
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut bytes)
        .unwrap();
    assert_eq!(&bytes[..4], &[0, 0, 8, 3], "IDX image magic");
    Some(
        (0..n)
            .map(|i| Image8 {
                width: 28,
                height: 28,
                channels: 1,
                pixels: bytes[16 + i * 784..16 + (i + 1) * 784].to_vec(),
            })
            .collect(),
    )
}

#[test]
fn fashion_mnist_grid_and_forward_process_gif() {
    let Some(images) = fashion_mnist(16) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("fashion.png");
    save_grid_png(&images, 8, 2, &png).unwrap();
    let decoded = image::open(&png).unwrap().to_rgb8();
    assert_eq!(
        (decoded.width(), decoded.height()),
        (8 * 56 + 7 * GRID_GAP as u32, 2 * 56 + GRID_GAP as u32)
    );
    // Image 9 (row 1, col 1), pixel (14, 14) lands at its 2×2 block.
    let v = images[9].get(14, 14, 0);
    let (x, y) = (56 + GRID_GAP as u32 + 28, 56 + GRID_GAP as u32 + 28);
    assert_eq!(decoded.get_pixel(x, y).0, [v, v, v]);
    assert_eq!(decoded.get_pixel(x + 1, y + 1).0, [v, v, v]);

    // The forward process q(x_t | x_0) at a few timesteps, as a GIF.
    use rand::{Rng, SeedableRng};
    let tables = ScheduleTables::new(BetaSchedule::Linear, 200).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let noise: Vec<f64> = (0..16 * 784)
        .map(|_| rng.sample::<f64, _>(rand_distr::StandardNormal))
        .collect();
    let steps = pick_frames(200, 10);
    let frames: Vec<Vec<Image8>> = steps
        .iter()
        .map(|&t| {
            let (a, b) = (
                tables.sqrt_alphas_cumprod[t],
                tables.sqrt_one_minus_alphas_cumprod[t],
            );
            images
                .iter()
                .enumerate()
                .map(|(i, img)| Image8 {
                    pixels: img
                        .pixels
                        .iter()
                        .enumerate()
                        .map(|(j, &p)| {
                            let x0 = p as f64 / 127.5 - 1.0;
                            let xt = a * x0 + b * noise[i * 784 + j];
                            ((xt.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8
                        })
                        .collect(),
                    ..img.clone()
                })
                .collect()
        })
        .collect();
    let gif = dir.path().join("forward.gif");
    save_denoise_gif(&frames, 8, 2, 200, &gif).unwrap();
    let decoded = gif_frames(&gif);
    assert_eq!(decoded.len(), 10 + hold_repeats(200));
    assert_eq!(decoded[0].buffer().width(), 8 * 56 + 7 * GRID_GAP as u32);
    if let Ok(dir) = std::env::var("DDPM_LAB_KEEP_EXPORTS") {
        fs::copy(&png, Path::new(&dir).join("fashion.png")).unwrap();
        fs::copy(&gif, Path::new(&dir).join("forward.gif")).unwrap();
    }
}
