//! `DDPM_LAB_CONV_ALGO=auto`: for each conv shape and each of its products (the forward
//! product, the input gradient, the weight gradient), the CUDA conv times its algorithms on the
//! shape's first use and keeps the fastest for the rest of the process, as PyTorch's
//! `torch.backends.cudnn.benchmark` does for cuDNN. The choice is made here, without a device,
//! so that the CPU tests check it with made-up timings; the CUDA conv (`ops::cuda::conv`) gives
//! the timer (CUDA events around a few runs of each candidate).
//!
//! Every candidate computes the same product (the plans' tests and `check-device` check each),
//! so the choice changes the speed and the order of the float sums, not the maths: two
//! processes may choose differently and so differ in the last bits, as with cuDNN's benchmark
//! mode. A fixed algorithm (`im2col`, `implicit`, ...) keeps a run bit for bit repeatable.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

use crate::ops::implicit_conv::{ConvAlgo, ImplicitConv, CHANNEL_TILES};

/// The products of a conv that have more than one algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Product {
    /// `y` from `x` and `w` (with its bias).
    Forward,
    /// `dx` from `dy` and `w`: for a stride-1 conv keyed by the flipped conv of `dy`
    /// ([`ImplicitConv::input_grad`]), for a strided one by its forward conv (unflipped).
    InputGrad,
    /// `dw` from `x` and `dy`.
    WeightGrad,
}

impl Product {
    /// Its name in reports: `forward`, `input_grad`, `weight_grad`.
    pub fn name(self) -> &'static str {
        match self {
            Product::Forward => "forward",
            Product::InputGrad => "input_grad",
            Product::WeightGrad => "weight_grad",
        }
    }
}

/// The algorithms that can compute `product` of the implicit conv `conv` (for the input
/// gradient, see [`Product::InputGrad`]): im2col first, which a tie keeps, then each channel
/// tile that the implicit kernels plan a launch for (for the input gradient only a stride-1
/// conv's, the flipped conv), then `cudnn`: cuDNN's candidates for the shape (none where it
/// does not load; [`ConvAlgo::Cudnn`], its heuristics' first, and [`ConvAlgo::CudnnAlgo`]s).
pub fn candidates(product: Product, conv: &ImplicitConv, cudnn: &[ConvAlgo]) -> Vec<ConvAlgo> {
    let mut out = vec![ConvAlgo::Im2col];
    let implicit = product != Product::InputGrad || conv.flip;
    for tile in CHANNEL_TILES.into_iter().filter(|_| implicit) {
        let algo = ConvAlgo::Implicit {
            tile: Some(tile),
            weight_grad: true,
        };
        let planned = match product {
            Product::WeightGrad => conv.weight_grad_plan(algo).is_some(),
            Product::Forward | Product::InputGrad => conv.forward_plan(algo).is_some(),
        };
        if planned {
            out.push(algo);
        }
    }
    out.extend_from_slice(cudnn);
    out
}

/// One shape's timings and choice.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    product: Product,
    conv: ImplicitConv,
    tf32: bool,
    /// Milliseconds of the fastest run of each candidate that ran, in [`candidates`] order.
    times_ms: Vec<(ConvAlgo, f64)>,
    /// The candidates whose run failed.
    failed: Vec<ConvAlgo>,
    chosen: ConvAlgo,
}

/// A shape's timings as `ddpm-lab bench --json` reports them (`conv_tuning`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TuneRecord {
    /// `forward`, `input_grad` or `weight_grad`.
    pub product: &'static str,
    /// The conv the product computes (for a stride-1 conv's input gradient, the flipped conv of
    /// `dy`, `flip` true: its input channels `c` are the forward conv's output channels; for a
    /// strided conv's, the forward conv itself, `flip` false), its fields at the top level
    /// of the record (`n`, `c`, `h`, `w`, `m`, `k`, `stride`, `pad`, `ho`, `wo`, `flip`).
    #[serde(flatten)]
    pub conv: ImplicitConv,
    /// Whether cuBLAS could use TF32 (`--tf32`): im2col's products then run on tensor cores.
    pub tf32: bool,
    /// Milliseconds of the fastest run of each candidate that ran, by [`ConvAlgo::name`].
    pub times_ms: BTreeMap<&'static str, f64>,
    /// The candidates whose run failed (left out of the choice).
    pub failed: Vec<&'static str>,
    /// The candidate kept.
    pub chosen: &'static str,
}

/// The choices of one process: one entry per (product, conv), in the order first met.
#[derive(Debug, Default)]
pub struct Tuner {
    entries: Mutex<Vec<Entry>>,
    /// Held while a shape is timed.
    timing: Mutex<()>,
}

impl Tuner {
    /// An empty table.
    pub const fn new() -> Self {
        Tuner {
            entries: Mutex::new(Vec::new()),
            timing: Mutex::new(()),
        }
    }

    /// The algorithm for `product` of `conv` with TF32 products allowed or not (`tf32`: it
    /// changes im2col's speed, so it is part of the shape): the one chosen before, or, on the
    /// first call for this shape, the [`candidates`] (with cuDNN's that `cudnn` gives, asked
    /// only then) that `time` (milliseconds per run of an algorithm) finds fastest; a timing that is not a number counts as the slowest. With one
    /// candidate nothing is timed. A candidate whose run fails (say, im2col's column matrix
    /// does not fit in memory where the implicit kernel needs none) is left out and named in
    /// the record; if every candidate fails, the first error is returned and nothing is kept,
    /// so the next call times again.
    pub fn choose<E>(
        &self,
        product: Product,
        conv: &ImplicitConv,
        tf32: bool,
        cudnn: impl FnOnce() -> Vec<ConvAlgo>,
        mut time: impl FnMut(ConvAlgo) -> Result<f64, E>,
    ) -> Result<ConvAlgo, E> {
        if let Some(algo) = self.lookup(product, conv, tf32) {
            return Ok(algo);
        }
        let candidates = candidates(product, conv, &cudnn());
        if candidates.len() == 1 {
            return Ok(candidates[0]);
        }
        // One shape is timed at a time, so that two threads' timings do not run side by side
        // and disturb each other; the table's lock is not held meanwhile, so lookups and
        // other threads' convs of known shapes go on.
        let _timing = self.timing.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(algo) = self.lookup(product, conv, tf32) {
            return Ok(algo);
        }
        let mut times_ms = Vec::with_capacity(candidates.len());
        let mut failed = Vec::new();
        let mut first_error = None;
        for &algo in &candidates {
            match time(algo) {
                Ok(t) => times_ms.push((algo, t)),
                Err(e) => {
                    failed.push(algo);
                    first_error.get_or_insert(e);
                }
            }
        }
        let Some(chosen) = fastest(&times_ms) else {
            return Err(first_error.expect("every candidate failed, so one error was kept"));
        };
        // Entries are only added under the timing lock, held since the lookup above found
        // none: no other thread can have added this shape meanwhile.
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.push(Entry {
            product,
            conv: *conv,
            tf32,
            times_ms,
            failed,
            chosen,
        });
        Ok(chosen)
    }

    /// The algorithm chosen for this shape, if it has been timed.
    fn lookup(&self, product: Product, conv: &ImplicitConv, tf32: bool) -> Option<ConvAlgo> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .iter()
            .find(|e| e.is(product, conv, tf32))
            .map(|e| e.chosen)
    }

    /// Every shape timed so far, in the order first met.
    pub fn records(&self) -> Vec<TuneRecord> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .iter()
            .map(|e| TuneRecord {
                product: e.product.name(),
                conv: e.conv,
                tf32: e.tf32,
                times_ms: e.times_ms.iter().map(|&(a, t)| (a.name(), t)).collect(),
                failed: e.failed.iter().map(|a| a.name()).collect(),
                chosen: e.chosen.name(),
            })
            .collect()
    }
}

impl Entry {
    /// Whether this entry is the shape `(product, conv, tf32)`.
    fn is(&self, product: Product, conv: &ImplicitConv, tf32: bool) -> bool {
        self.product == product && self.conv == *conv && self.tf32 == tf32
    }
}

/// The candidate with the smallest time; the first of equals; NaN as the slowest; `None`
/// for no candidate.
fn fastest(times_ms: &[(ConvAlgo, f64)]) -> Option<ConvAlgo> {
    let key = |t: f64| if t.is_nan() { f64::INFINITY } else { t };
    let (&first, rest) = times_ms.split_first()?;
    let mut best = first;
    for &(algo, t) in rest {
        if key(t) < key(best.1) {
            best = (algo, t);
        }
    }
    Some(best.0)
}

/// How many of `records` kept each algorithm, by name.
pub fn chosen_counts(records: &[TuneRecord]) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for r in records {
        *counts.entry(r.chosen).or_default() += 1;
    }
    counts
}

/// The process's table, which the CUDA conv fills and `bench` reports.
pub static TUNER: Tuner = Tuner::new();

/// Which of cuDNN's algorithms ran last for one conv shape and product (a refusal or a
/// workspace that did not fit moves on to the next), as `bench --json` reports them with
/// `DDPM_LAB_CONV_ALGO=cudnn` (`cudnn_algos`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CudnnRecord {
    /// `forward`, `input_grad` or `weight_grad`.
    pub product: &'static str,
    /// The forward conv (`flip` false), its fields at the top level of the record.
    #[serde(flatten)]
    pub conv: ImplicitConv,
    /// Whether TF32 was allowed.
    pub tf32: bool,
    /// cuDNN's number of the algorithm (`cudnn-algo-N`).
    pub algo: u32,
    /// Its workspace in bytes.
    pub workspace: usize,
}

/// What cuDNN ran for each shape so far, in the order first run.
static CUDNN_RAN: Mutex<Vec<CudnnRecord>> = Mutex::new(Vec::new());

/// Notes that cuDNN ran `record.algo` for `record`'s shape, product and TF32 setting.
pub fn note_cudnn(record: CudnnRecord) {
    let mut ran = CUDNN_RAN.lock().unwrap_or_else(|e| e.into_inner());
    match ran
        .iter_mut()
        .find(|r| r.product == record.product && r.conv == record.conv && r.tf32 == record.tf32)
    {
        Some(r) => *r = record,
        None => ran.push(record),
    }
}

/// What cuDNN ran for each shape so far ([`note_cudnn`]).
pub fn cudnn_records() -> Vec<CudnnRecord> {
    CUDNN_RAN.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(n: usize, c: usize, hw: usize, m: usize, k: usize) -> ImplicitConv {
        ImplicitConv {
            n,
            c,
            h: hw,
            w: hw,
            m,
            k,
            stride: 1,
            pad: 1,
            ho: hw + 2 - k + 1,
            wo: hw + 2 - k + 1,
            flip: false,
        }
    }

    /// No cuDNN: none of its algorithms to time.
    fn none() -> Vec<ConvAlgo> {
        Vec::new()
    }

    /// cuDNN loaded: its heuristics' first and two algorithms by number.
    const CUDNN_3: [ConvAlgo; 3] = [
        ConvAlgo::Cudnn,
        ConvAlgo::CudnnAlgo(1),
        ConvAlgo::CudnnAlgo(6),
    ];

    const M32: ConvAlgo = ConvAlgo::Implicit {
        tile: Some(32),
        weight_grad: true,
    };
    const M64: ConvAlgo = ConvAlgo::Implicit {
        tile: Some(64),
        weight_grad: true,
    };

    #[test]
    fn candidates_are_im2col_then_the_tiles_that_have_a_plan_then_cudnn() {
        let c = conv(8, 56, 28, 56, 3);
        assert_eq!(
            candidates(Product::Forward, &c, &[]),
            [ConvAlgo::Im2col, M32, M64]
        );
        assert_eq!(
            candidates(Product::WeightGrad, &c, &[]),
            [ConvAlgo::Im2col, M32, M64]
        );
        assert_eq!(
            candidates(Product::WeightGrad, &c, &[ConvAlgo::Cudnn]),
            [ConvAlgo::Im2col, M32, M64, ConvAlgo::Cudnn]
        );
        assert_eq!(
            candidates(Product::Forward, &c, &CUDNN_3),
            [
                ConvAlgo::Im2col,
                M32,
                M64,
                ConvAlgo::Cudnn,
                ConvAlgo::CudnnAlgo(1),
                ConvAlgo::CudnnAlgo(6)
            ]
        );
        // A 7×7 kernel has no implicit kernel; neither has a flipped conv's weight gradient.
        assert_eq!(
            candidates(Product::Forward, &conv(8, 1, 28, 28, 7), &[]),
            [ConvAlgo::Im2col]
        );
        assert_eq!(
            candidates(Product::Forward, &conv(8, 1, 28, 28, 7), &[ConvAlgo::Cudnn]),
            [ConvAlgo::Im2col, ConvAlgo::Cudnn]
        );
        let flipped = ImplicitConv { flip: true, ..c };
        assert_eq!(
            candidates(Product::WeightGrad, &flipped, &[]),
            [ConvAlgo::Im2col]
        );
        // The input gradient: the implicit kernels compute a stride-1 conv's (keyed by the
        // flipped conv), not a strided conv's (keyed by its forward conv); cuDNN both.
        assert_eq!(
            candidates(Product::InputGrad, &flipped, &[ConvAlgo::Cudnn]),
            [ConvAlgo::Im2col, M32, M64, ConvAlgo::Cudnn]
        );
        let strided = ImplicitConv {
            stride: 2,
            ho: 14,
            wo: 14,
            ..c
        };
        assert!(strided.forward_plan(M32).is_some());
        assert_eq!(
            candidates(Product::InputGrad, &strided, &[]),
            [ConvAlgo::Im2col]
        );
        assert_eq!(
            candidates(Product::InputGrad, &strided, &[ConvAlgo::Cudnn]),
            [ConvAlgo::Im2col, ConvAlgo::Cudnn]
        );
        // The plans never launch for `auto` itself: the conv resolves it first.
        assert_eq!(c.forward_plan(ConvAlgo::Auto), None);
        assert_eq!(c.weight_grad_plan(ConvAlgo::Auto), None);
    }

    #[test]
    fn the_fastest_is_chosen_once_per_shape_and_product() {
        let tuner = Tuner::new();
        let c = conv(8, 56, 28, 56, 3);
        let calls = std::cell::RefCell::new(Vec::new());
        let timer = |algo: ConvAlgo| -> Result<f64, String> {
            calls.borrow_mut().push(algo);
            Ok(match algo {
                ConvAlgo::Im2col => 2.0,
                a if a == M32 => 1.5,
                _ => 1.0,
            })
        };
        assert_eq!(
            tuner.choose(Product::Forward, &c, false, none, timer),
            Ok(M64)
        );
        assert_eq!(*calls.borrow(), [ConvAlgo::Im2col, M32, M64]);
        // Remembered: no timing the second time.
        assert_eq!(
            tuner.choose(Product::Forward, &c, false, none, timer),
            Ok(M64)
        );
        assert_eq!(calls.borrow().len(), 3);
        // Another product, or another batch, is another shape.
        let other = ImplicitConv { n: 16, ..c };
        let slow_tiles = |algo: ConvAlgo| -> Result<f64, String> {
            Ok(if algo == ConvAlgo::Im2col { 1.0 } else { 3.0 })
        };
        assert_eq!(
            tuner.choose(Product::WeightGrad, &c, false, none, slow_tiles),
            Ok(ConvAlgo::Im2col)
        );
        assert_eq!(
            tuner.choose(Product::Forward, &other, false, none, slow_tiles),
            Ok(ConvAlgo::Im2col)
        );
        let records = tuner.records();
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].product, "forward");
        assert_eq!(records[0].chosen, "implicit-m64");
        assert_eq!(
            records[0].times_ms,
            BTreeMap::from([
                ("im2col", 2.0),
                ("implicit-m32", 1.5),
                ("implicit-m64", 1.0)
            ])
        );
        assert_eq!(records[0].conv, c);
        let json = serde_json::to_value(&records[0]).unwrap();
        assert_eq!(
            [&json["n"], &json["c"], &json["h"], &json["m"], &json["k"]],
            [8, 56, 28, 56, 3].map(serde_json::Value::from).each_ref()
        );
        assert_eq!(records[1].product, "weight_grad");
        assert_eq!(records[1].chosen, "im2col");
        assert_eq!(records[2].conv.n, 16);
        assert!(records.iter().all(|r| !r.tf32));
        // TF32 products make it another shape, timed anew.
        assert_eq!(
            tuner.choose(Product::Forward, &c, true, none, slow_tiles),
            Ok(ConvAlgo::Im2col)
        );
        assert_eq!(tuner.records().len(), 4);
        assert!(tuner.records()[3].tf32);
        assert_eq!(
            chosen_counts(&records),
            BTreeMap::from([("im2col", 2), ("implicit-m64", 1)])
        );
        // With cuDNN loaded, its candidates are timed last, its heuristics' first and its
        // other algorithms alike, and the fastest kept.
        let third_fastest = |algo: ConvAlgo| -> Result<f64, String> {
            Ok(match algo {
                ConvAlgo::CudnnAlgo(6) => 0.25,
                ConvAlgo::Cudnn => 0.5,
                _ => 1.0,
            })
        };
        let wide = ImplicitConv { m: 128, ..c };
        assert_eq!(
            tuner.choose(
                Product::Forward,
                &wide,
                false,
                || CUDNN_3.to_vec(),
                third_fastest
            ),
            Ok(ConvAlgo::CudnnAlgo(6))
        );
        let last = tuner.records().pop().unwrap();
        assert_eq!(last.chosen, "cudnn-algo-6");
        assert_eq!(
            last.times_ms,
            BTreeMap::from([
                ("im2col", 1.0),
                ("implicit-m32", 1.0),
                ("implicit-m64", 1.0),
                ("cudnn", 0.5),
                ("cudnn-algo-1", 1.0),
                ("cudnn-algo-6", 0.25)
            ])
        );
        // The ranking is asked only for a shape not timed yet.
        let asked = std::cell::Cell::new(false);
        let ranks = || {
            asked.set(true);
            vec![ConvAlgo::Cudnn]
        };
        assert_eq!(
            tuner.choose(Product::Forward, &wide, false, ranks, third_fastest),
            Ok(ConvAlgo::CudnnAlgo(6))
        );
        assert!(!asked.get());
    }

    #[test]
    fn what_cudnn_ran_is_kept_once_per_shape_product_and_tf32_the_last_algorithm() {
        let c = conv(8, 56, 28, 56, 3);
        let record = |product, tf32, algo| CudnnRecord {
            product,
            conv: c,
            tf32,
            algo,
            workspace: 0,
        };
        let before = cudnn_records().len();
        note_cudnn(record("forward", false, 1));
        note_cudnn(record("forward", false, 6));
        note_cudnn(record("forward", true, 1));
        note_cudnn(record("weight_grad", false, 1));
        let ran = cudnn_records();
        assert_eq!(ran.len(), before + 3);
        let mine = |product, tf32| {
            ran.iter()
                .filter(|r| r.conv == c && r.product == product && r.tf32 == tf32)
                .map(|r| r.algo)
                .collect::<Vec<_>>()
        };
        assert_eq!(mine("forward", false), [6]);
        assert_eq!(mine("forward", true), [1]);
        assert_eq!(mine("weight_grad", false), [1]);
        let json = serde_json::to_value(&ran[before]).unwrap();
        assert_eq!(json["algo"], 6);
        assert_eq!(json["c"], 56);
    }

    #[test]
    fn ties_keep_im2col_and_nan_counts_as_slowest() {
        let tuner = Tuner::new();
        let c = conv(4, 28, 14, 28, 3);
        let flat = |_: ConvAlgo| -> Result<f64, String> { Ok(1.0) };
        assert_eq!(
            tuner.choose(Product::Forward, &c, false, none, flat),
            Ok(ConvAlgo::Im2col)
        );
        let nan_first = |algo: ConvAlgo| -> Result<f64, String> {
            Ok(if algo == ConvAlgo::Im2col {
                f64::NAN
            } else {
                5.0
            })
        };
        assert_eq!(
            tuner.choose(
                Product::InputGrad,
                &ImplicitConv { flip: true, ..c },
                false,
                none,
                nan_first
            ),
            Ok(M32)
        );
    }

    #[test]
    fn a_single_candidate_is_not_timed_and_failed_candidates_are_left_out() {
        let tuner = Tuner::new();
        let never = |_: ConvAlgo| -> Result<f64, String> { panic!("timed a single candidate") };
        assert_eq!(
            tuner.choose(Product::Forward, &conv(4, 1, 28, 28, 7), false, none, never),
            Ok(ConvAlgo::Im2col)
        );
        let c = conv(4, 28, 14, 28, 3);
        // A candidate that fails is left out: here im2col, as when its column matrix does not
        // fit in memory.
        let im2col_fails = |algo: ConvAlgo| -> Result<f64, String> {
            match algo {
                ConvAlgo::Im2col => Err("out of memory".into()),
                a if a == M32 => Ok(2.0),
                _ => Ok(1.0),
            }
        };
        assert_eq!(
            tuner.choose(Product::WeightGrad, &c, false, none, im2col_fails),
            Ok(M64)
        );
        let records = tuner.records();
        assert_eq!(records[0].failed, ["im2col"]);
        assert_eq!(
            records[0].times_ms,
            BTreeMap::from([("implicit-m32", 2.0), ("implicit-m64", 1.0)])
        );
        // When every candidate fails, the first error comes back and nothing is kept.
        let all_fail =
            |algo: ConvAlgo| -> Result<f64, String> { Err(format!("{} failed", algo.name())) };
        assert_eq!(
            tuner.choose(Product::Forward, &c, false, none, all_fail),
            Err("im2col failed".to_string())
        );
        assert_eq!(tuner.records().len(), 1);
        // The next call times again.
        let fine =
            |algo: ConvAlgo| -> Result<f64, String> { Ok(if algo == M32 { 0.5 } else { 1.0 }) };
        assert_eq!(
            tuner.choose(Product::Forward, &c, false, none, fine),
            Ok(M32)
        );
        assert_eq!(tuner.records()[1].failed, Vec::<&str>::new());
    }
}
