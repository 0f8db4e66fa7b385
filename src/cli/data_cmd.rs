//! `ddpm-lab data`: load (downloading if needed) a dataset and print a summary, as text or
//! JSON, optionally with a few example images drawn in the terminal.

use std::io::IsTerminal as _;
use std::time::Duration;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};

use crate::data::{load_dataset, summarize, Dataset, DatasetSpec, LoadOptions, LoadProgress};

/// Options of `ddpm-lab data`.
#[derive(clap::Args, Debug, Clone)]
pub struct DataArgs {
    /// fashion_mnist, mnist, cifar10, shapes (built-in, offline), or a local path (IDX files,
    /// parquet files, or a folder of images).
    #[arg(long, default_value = "fashion_mnist", value_parser = super::dataset_arg())]
    pub dataset: String,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Draw N training examples in the terminal (text mode only; at most 256).
    #[arg(long, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=256))]
    pub show: Option<usize>,
    /// Resize (and centre-crop) the images to this square side.
    #[arg(long)]
    pub image_size: Option<usize>,
    /// Convert the images to 1 (grey) or 3 (RGB) channels.
    #[arg(long)]
    pub channels: Option<usize>,
    /// Never use the network (also on with HF_HUB_OFFLINE=1).
    #[arg(long)]
    pub offline: bool,
    /// Seed of the built-in shapes set.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl DataArgs {
    /// The load options these arguments ask for.
    pub fn load_options(&self) -> LoadOptions {
        LoadOptions {
            image_size: self.image_size,
            channels: self.channels,
            offline: self.offline,
            seed: self.seed,
            ..LoadOptions::default()
        }
    }
}

/// A console progress reporter for [`load_dataset`]: a byte bar while downloading, a spinner
/// otherwise (indicatif draws nothing when stderr is not a terminal).
pub fn console_progress() -> (ProgressBar, impl FnMut(LoadProgress)) {
    let bar = ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(120));
    let spinner = ProgressStyle::with_template("{spinner} {msg}").expect("valid template");
    let bytes = ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
    )
    .expect("valid template")
    .progress_chars("=> ");
    bar.set_style(spinner.clone());
    let handle = bar.clone();
    let mut downloading = false;
    let report = move |p: LoadProgress| match p {
        LoadProgress::Resolving { what } => {
            handle.set_style(spinner.clone());
            downloading = false;
            handle.set_message(format!("looking up {what}"));
        }
        LoadProgress::Downloading { file, done, total } => {
            if !downloading {
                handle.set_style(bytes.clone());
                downloading = true;
            }
            handle.set_message(format!("downloading {file}"));
            handle.set_length(total.max(done));
            handle.set_position(done);
        }
        LoadProgress::Decoding { split } => {
            handle.set_style(spinner.clone());
            downloading = false;
            handle.set_message(format!("decoding the {split} split"));
        }
        LoadProgress::Notice { text } => handle.suspend(|| eprintln!("note: {text}")),
        LoadProgress::Ready => handle.finish_and_clear(),
    };
    (bar, report)
}

/// A grid of the first `n` training images (upscaled 4×), for terminal display.
pub fn examples_grid(ds: &Dataset, n: usize) -> image::RgbImage {
    let n = n.min(ds.train.len()).max(1);
    let cols = n.min(8);
    let rows = n.div_ceil(cols);
    let (h, w) = (ds.train.height, ds.train.width);
    let (scale, pad) = (4usize, 2usize);
    let cw = w * scale + pad;
    let ch = h * scale + pad;
    let mut grid = image::RgbImage::new((cols * cw) as u32, (rows * ch) as u32);
    for k in 0..n.min(ds.train.len()) {
        let img = ds.train.image(k);
        let (ox, oy) = ((k % cols) * cw, (k / cols) * ch);
        for y in 0..h * scale {
            for x in 0..w * scale {
                let p = img.rgb(x / scale, y / scale);
                grid.put_pixel((ox + x) as u32, (oy + y) as u32, image::Rgb(p));
            }
        }
    }
    grid
}

/// Runs `ddpm-lab data`.
pub fn run(args: DataArgs) -> anyhow::Result<()> {
    // Parsed here, not by the command line's parser: a path that is not there is bad input
    // (exit status 1, as `train` says it), not a command line that does not parse (2).
    let spec: DatasetSpec = args.dataset.parse()?;
    let opts = args.load_options();
    let (bar, mut report) = console_progress();
    let loaded = load_dataset(&spec, &opts, &mut report);
    bar.finish_and_clear();
    let ds = loaded.with_context(|| format!("cannot load dataset {spec}"))?;
    let summary = summarize(&ds);
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
        return Ok(());
    }
    print!("{}", summary.to_text());
    if let Some(n) = args.show.filter(|&n| n > 0) {
        let n = n.min(ds.train.len());
        let names: Vec<String> = (0..n).map(|i| ds.label_name(ds.train.labels[i])).collect();
        println!("first {n} training images: {}", names.join(", "));
        if !std::io::stdout().is_terminal() {
            // viuer would write its terminal queries and escape codes into the file or pipe.
            eprintln!("note: --show draws in a terminal and stdout is not one: no images drawn");
            return Ok(());
        }
        let grid = image::DynamicImage::ImageRgb8(examples_grid(&ds, n));
        crate::export::show::print_image(&grid, Some((n.min(8) * 10) as u32), None)
            .context("cannot draw the examples in this terminal")?;
    }
    Ok(())
}
