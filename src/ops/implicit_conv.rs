//! The dense conv as an implicit GEMM (`src/ops/cuda/implicit_conv.cu`): the plan of each launch
//! (which kernel, its grid, the conv it computes for a pass of a [`BatchedConv`]) and a CPU
//! reference of exactly the kernel's sums, so that the tests here check the plan against the
//! im2col route's maths on any machine. The kernels themselves are checked against plain loops
//! under emulation (`tests/cuda_emulation.rs`).
//!
//! Which algorithm the CUDA conv uses is a setting ([`ALGO_VAR`]): im2col + cuBLAS until the
//! implicit kernels or cuDNN are measured faster on a GPU, either of those, or `auto`, which
//! times the candidates of each conv shape on its first use ([`crate::ops::conv_tuner`]).

use crate::ops::batched_conv::BatchedConv;

/// The environment variable that picks the CUDA conv's algorithm ([`ConvAlgo::parse`]).
pub const ALGO_VAR: &str = "DDPM_LAB_CONV_ALGO";

/// Threads per block of the implicit kernels (`IC_THREADS` in implicit_conv.cu).
pub const THREADS: u32 = 128;
/// Output columns (image positions) per block (`IC_BN`).
pub const COLS_PER_BLOCK: usize = 128;
/// The channel tiles (`BM`) the kernels are built for.
pub const CHANNEL_TILES: [usize; 2] = [32, 64];
/// The kernel sizes they are built for.
pub const KERNEL_SIZES: [usize; 2] = [3, 4];
/// The fewest blocks a forward launch takes in one pass over the input channels: two per SM of
/// an H200. With fewer (small maps at small batches, e.g. 7×7 at batch 128: 49 column tiles),
/// most SMs would hold one block of four warps or none, too few to hide memory latency, so the
/// channels are cut into slices (grid z) whose partial sums a second kernel adds. A conv with
/// fewer than two slices' worth of input channels ([`MIN_SLICE_CHANNELS`]) runs in one pass,
/// however few its blocks.
pub const MIN_BLOCKS: usize = 264;
/// Blocks a forward launch in channel slices aims for: four per SM of an H200.
pub const SPLIT_TARGET_BLOCKS: usize = 528;
/// The fewest input channels in a slice (72 rows of the product for a 3×3 kernel).
pub const MIN_SLICE_CHANNELS: usize = 8;

/// One launch of the forward (or input-gradient) kernel: its channel tile, grid (column tiles,
/// channel tiles, channel slices) and input channels per slice. With more than one slice, the
/// kernel writes partial sums that `conv_implicit_sum_splits` adds, with the bias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardPlan {
    /// The channel tile (32 or 64).
    pub tile: usize,
    /// The grid: (column tiles, channel tiles, channel slices).
    pub grid: (usize, usize, usize),
    /// Input channels per slice (all of them with one slice).
    pub c_slice: usize,
}

/// Blocks the weight gradient's slices aim for: four per SM of an H200.
pub const WGRAD_TARGET_BLOCKS: usize = 528;
/// The fewest columns a slice of the weight gradient takes (fewer slices otherwise).
pub const WGRAD_MIN_SLICE: usize = 128;

/// One launch of the implicit weight gradient: its channel tile, grid (tiles of 128 weight
/// columns, tiles of channels, slices) and columns per slice. With more than one slice,
/// `conv_implicit_sum_splits` adds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WgradPlan {
    /// The channel tile (32 or 64).
    pub tile: usize,
    /// The grid: (column tiles, channel tiles, slices).
    pub grid: (usize, usize, usize),
    /// Output columns per slice (a multiple of 8).
    pub slice: usize,
}

/// How the CUDA conv computes its products: its forward product, a stride-1 conv's input
/// gradient and its weight gradient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvAlgo {
    /// im2col of the batch into one matrix, then cuBLAS (the default).
    Im2col,
    /// Per conv shape and product, the fastest of im2col, the implicit GEMM's channel tiles and
    /// cuDNN (where its library loads), timed on the shape's first use
    /// ([`crate::ops::conv_tuner`]), as PyTorch's `cudnn.benchmark` does.
    Auto,
    /// cuDNN's convolution calls (`src/ops/cuda/cudnn.rs`), each product with the algorithm
    /// cuDNN's heuristics rank first, as PyTorch's convs run with `cudnn.benchmark` off.
    Cudnn,
    /// cuDNN's calls with the algorithm of this number (cuDNN's own numbering of the product's
    /// algorithms, e.g. 6 = `CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD` for the forward product),
    /// where the shape's ranking holds it and cuDNN runs it, else as [`ConvAlgo::Cudnn`]:
    /// `auto`'s candidates beside the heuristics' first, as `cudnn.benchmark` times them. Not a
    /// setting of its own.
    CudnnAlgo(u8),
    /// The implicit GEMM, with its channel tile chosen per conv (`tile` `None`) or fixed; the
    /// weight gradient too when `weight_grad` is set (else im2col + cuBLAS).
    Implicit {
        /// The channel tile (32 or 64) of every launch, or `None`: per conv.
        tile: Option<usize>,
        /// Whether the weight gradient is implicit too.
        weight_grad: bool,
    },
}

/// The names of cuDNN's algorithms by their number (each product numbers its own, 0 to 7).
pub const CUDNN_ALGO_NAMES: [&str; 8] = [
    "cudnn-algo-0",
    "cudnn-algo-1",
    "cudnn-algo-2",
    "cudnn-algo-3",
    "cudnn-algo-4",
    "cudnn-algo-5",
    "cudnn-algo-6",
    "cudnn-algo-7",
];

/// Every algorithm and its name, as [`ALGO_VAR`] takes them.
const ALGOS: [(&str, ConvAlgo); 7] = [
    ("im2col", ConvAlgo::Im2col),
    ("auto", ConvAlgo::Auto),
    ("cudnn", ConvAlgo::Cudnn),
    (
        "implicit",
        ConvAlgo::Implicit {
            tile: None,
            weight_grad: true,
        },
    ),
    (
        "implicit-fwd",
        ConvAlgo::Implicit {
            tile: None,
            weight_grad: false,
        },
    ),
    (
        "implicit-m32",
        ConvAlgo::Implicit {
            tile: Some(32),
            weight_grad: true,
        },
    ),
    (
        "implicit-m64",
        ConvAlgo::Implicit {
            tile: Some(64),
            weight_grad: true,
        },
    ),
];

impl ConvAlgo {
    /// The algorithm [`ALGO_VAR`]'s value names (unset: `im2col`): `im2col`; `auto` (timed per
    /// shape); `cudnn`; `implicit` (every product, tiles per conv); `implicit-fwd` (the forward product
    /// and input gradient only); `implicit-m32`, `implicit-m64` (every product, that channel
    /// tile throughout).
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        let Some(v) = value.map(str::trim) else {
            return Ok(ConvAlgo::Im2col);
        };
        if v.is_empty() {
            return Ok(ConvAlgo::Im2col);
        }
        ALGOS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(v))
            .map(|&(_, algo)| algo)
            .ok_or_else(|| {
                let names: Vec<&str> = ALGOS.iter().map(|(name, _)| *name).collect();
                format!("{ALGO_VAR}={v}: expected one of {}", names.join(", "))
            })
    }

    /// The setting of this process ([`ALGO_VAR`], read once; a value [`Self::parse`] rejects
    /// counts as unset here: opening a CUDA device reports it, see
    /// [`crate::ops::cuda::settings_error`]).
    pub fn current() -> Self {
        static ALGO: std::sync::OnceLock<ConvAlgo> = std::sync::OnceLock::new();
        *ALGO.get_or_init(|| {
            Self::parse(std::env::var(ALGO_VAR).ok().as_deref()).unwrap_or(ConvAlgo::Im2col)
        })
    }

    /// Its name as [`Self::parse`] takes it (`cudnn-algo-0` … `cudnn-algo-7` for
    /// [`ConvAlgo::CudnnAlgo`], which is not a setting).
    pub fn name(self) -> &'static str {
        if let ConvAlgo::CudnnAlgo(id) = self {
            return CUDNN_ALGO_NAMES
                .get(usize::from(id))
                .copied()
                .unwrap_or("cudnn-algo");
        }
        ALGOS
            .iter()
            .find(|(_, algo)| *algo == self)
            .map_or("implicit", |(name, _)| name)
    }
}

/// One launch of an implicit-GEMM kernel: the conv of an input `(n, c, h, w)` with a `k × k`
/// kernel to an output `(n, m, ho, wo)`, stride and zero padding as given. With `flip`, the
/// weight is `(c, m, k, k)` and is read flipped (the input gradient of a stride-1 conv).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct ImplicitConv {
    /// Images.
    pub n: usize,
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub m: usize,
    /// Kernel size.
    pub k: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding.
    pub pad: usize,
    /// Output height.
    pub ho: usize,
    /// Output width.
    pub wo: usize,
    /// Whether the weight is read as `w[ci, m, k−1−ky, k−1−kx]`.
    pub flip: bool,
}

impl ImplicitConv {
    /// The forward product of `plan`: `x (N, C, H, W)` → `y (N, Co, Ho, Wo)`.
    pub fn forward(plan: &BatchedConv) -> Self {
        let g = plan.geom;
        ImplicitConv {
            n: plan.n,
            c: g.c,
            h: g.h,
            w: g.w,
            m: plan.c_out,
            k: g.k,
            stride: g.stride,
            pad: g.pad,
            ho: g.ho,
            wo: g.wo,
            flip: false,
        }
    }

    /// The input gradient of `plan` when its stride is 1: `dy (N, Co, Ho, Wo)` → `dx (N, C, H, W)`,
    /// the conv of `dy` with the flipped, transposed weight and padding `k − 1 − p`.
    pub fn input_grad(plan: &BatchedConv) -> Option<Self> {
        let g = plan.geom;
        if g.stride != 1 || g.pad >= g.k {
            return None;
        }
        Some(ImplicitConv {
            n: plan.n,
            c: plan.c_out,
            h: g.ho,
            w: g.wo,
            m: g.c,
            k: g.k,
            stride: 1,
            pad: g.k - 1 - g.pad,
            ho: g.h,
            wo: g.w,
            flip: true,
        })
    }

    /// Output columns: `n·ho·wo`.
    pub fn cols(&self) -> usize {
        self.n * self.ho * self.wo
    }

    /// The launch `algo` takes for this conv, if a kernel is built for it: the channel tile
    /// (for `implicit` 32 when the output channels fit one tile of 32, else 64), and, when the
    /// tiles make fewer than [`MIN_BLOCKS`] blocks, slices of at least [`MIN_SLICE_CHANNELS`]
    /// input channels enough for about [`SPLIT_TARGET_BLOCKS`].
    pub fn forward_plan(&self, algo: ConvAlgo) -> Option<ForwardPlan> {
        let ConvAlgo::Implicit { tile: fixed, .. } = algo else {
            return None;
        };
        if !KERNEL_SIZES.contains(&self.k) || self.c == 0 || self.cols() == 0 || self.m == 0 {
            return None;
        }
        let tile = match fixed {
            Some(tile) => CHANNEL_TILES.contains(&tile).then_some(tile)?,
            None if self.m <= 32 => 32,
            None => 64,
        };
        let (gx, gy) = self.grid(tile);
        let tiles = gx * gy;
        // Slices only where the tiles are few: such an output holds under tiles·128·64
        // elements, so all slices' partial sums (about SPLIT_TARGET_BLOCKS tiles' worth) stay
        // far inside an int; one pass writes just the output, which `fits` bounds.
        let wanted = if tiles < MIN_BLOCKS {
            let most = (self.c / MIN_SLICE_CHANNELS).max(1);
            SPLIT_TARGET_BLOCKS.div_ceil(tiles).min(most)
        } else {
            1
        };
        let c_slice = self.c.div_ceil(wanted);
        // No empty slice: as many as the slices of `c_slice` channels need.
        let splits = self.c.div_ceil(c_slice);
        // The grid's y holds the channel tiles.
        (gy <= 65_535).then_some(ForwardPlan {
            tile,
            grid: (gx, gy, splits),
            c_slice,
        })
    }

    /// Columns of the weight gradient: `c·k²`.
    pub fn kdim(&self) -> usize {
        self.c * self.k * self.k
    }

    /// The launch of the implicit weight gradient of this (forward, unflipped) conv that `algo`
    /// takes, if any: the channel tile as for the forward product, and slices of the columns
    /// enough for about [`WGRAD_TARGET_BLOCKS`] blocks, of at least [`WGRAD_MIN_SLICE`]
    /// columns each (a multiple of 8), so that there is no empty slice.
    pub fn weight_grad_plan(&self, algo: ConvAlgo) -> Option<WgradPlan> {
        let ConvAlgo::Implicit {
            tile,
            weight_grad: true,
        } = algo
        else {
            return None;
        };
        let cols = self.cols();
        if self.flip || !KERNEL_SIZES.contains(&self.k) || self.c == 0 || cols == 0 || self.m == 0 {
            return None;
        }
        let tile = tile.unwrap_or(if self.m <= 32 { 32 } else { 64 });
        if !CHANNEL_TILES.contains(&tile) {
            return None;
        }
        let tiles = self.kdim().div_ceil(COLS_PER_BLOCK) * self.m.div_ceil(tile);
        let wanted = WGRAD_TARGET_BLOCKS.div_ceil(tiles);
        let splits = wanted.clamp(1, (cols / WGRAD_MIN_SLICE).max(1));
        let slice = cols.div_ceil(splits).next_multiple_of(8);
        let splits = cols.div_ceil(slice);
        let plan = WgradPlan {
            tile,
            grid: (
                self.kdim().div_ceil(COLS_PER_BLOCK),
                self.m.div_ceil(tile),
                splits,
            ),
            slice,
        };
        (plan.grid.1 <= 65_535
            && plan.grid.2 <= 65_535
            && splits * self.m * self.kdim() <= crate::ops::DEVICE_LEN_MAX)
            .then_some(plan)
    }

    /// The weight-gradient kernel for a channel tile: `conv_implicit_wgrad_k{k}_m{tile}`.
    pub fn weight_grad_kernel(&self, tile: usize) -> String {
        format!("conv_implicit_wgrad_k{}_m{tile}", self.k)
    }

    /// The `int`s the weight-gradient kernels take after their three pointers, in order:
    /// `n, c, h, w, m, stride, pad, ho, wo, slice`.
    pub fn weight_grad_ints(&self, slice: usize) -> Vec<usize> {
        let mut ints = self.geometry().to_vec();
        ints.push(slice);
        ints
    }

    /// `n, c, h, w, m, stride, pad, ho, wo`: the `int`s every kernel here takes first.
    fn geometry(&self) -> [usize; 9] {
        [
            self.n,
            self.c,
            self.h,
            self.w,
            self.m,
            self.stride,
            self.pad,
            self.ho,
            self.wo,
        ]
    }

    /// The weight-gradient kernels' sums on the CPU, in their order: each slice of `slice`
    /// columns summed in column order, then the slices added in order. `x (n, c, h, w)`,
    /// `dy (n, m, ho, wo)` to `dw (m, c, k, k)`.
    pub fn weight_grad_reference(&self, x: &[f32], dy: &[f32], slice: usize) -> Vec<f32> {
        let (k, kk, kdim, p) = (self.k, self.k * self.k, self.kdim(), self.ho * self.wo);
        let cols = self.cols();
        let mut dw = vec![0f32; self.m * kdim];
        let mut part = vec![0f32; self.m * kdim];
        for start in (0..cols).step_by(slice.max(1)) {
            part.iter_mut().for_each(|v| *v = 0.0);
            for j in start..cols.min(start + slice) {
                let (b, q) = (j / p, j % p);
                let (oy, ox) = (q / self.wo, q % self.wo);
                for mo in 0..self.m {
                    let g = dy[(b * self.m + mo) * p + q];
                    for kc in 0..kdim {
                        let (ci, r) = (kc / kk, kc % kk);
                        let iy = (oy * self.stride + r / k).checked_sub(self.pad);
                        let ix = (ox * self.stride + r % k).checked_sub(self.pad);
                        let (Some(iy), Some(ix)) = (iy, ix) else {
                            continue;
                        };
                        if iy < self.h && ix < self.w {
                            let xv = x[((b * self.c + ci) * self.h + iy) * self.w + ix];
                            let at = &mut part[mo * kdim + kc];
                            *at = g.mul_add(xv, *at);
                        }
                    }
                }
            }
            dw.iter_mut().zip(&part).for_each(|(d, v)| *d += v);
        }
        dw
    }

    /// The kernel for a channel tile: `conv_implicit_k{k}_m{tile}`.
    pub fn kernel(&self, tile: usize) -> String {
        format!("conv_implicit_k{}_m{tile}", self.k)
    }

    /// The grid for a channel tile: (column tiles, channel tiles).
    pub fn grid(&self, tile: usize) -> (usize, usize) {
        (
            self.cols().div_ceil(COLS_PER_BLOCK),
            self.m.div_ceil(tile.max(1)),
        )
    }

    /// The `int`s the kernels take after their four pointers, in order:
    /// `n, c, h, w, m, stride, pad, ho, wo, flip, has_bias, c_slice`.
    pub fn ints(&self, has_bias: bool, c_slice: usize) -> Vec<usize> {
        let mut ints = self.geometry().to_vec();
        ints.extend([usize::from(self.flip), usize::from(has_bias), c_slice]);
        ints
    }

    /// The kernels' sums on the CPU, in their order: in each slice of `c_slice` input channels,
    /// channel by channel, the taps row by row; then the slices added in order, then `bias[m]`
    /// when given. `x (n, c, h, w)` and the weight (`(m, c, k, k)`, or with `flip`
    /// `(c, m, k, k)`) to `(n, m, ho, wo)`.
    pub fn reference(
        &self,
        x: &[f32],
        weight: &[f32],
        bias: Option<&[f32]>,
        c_slice: usize,
    ) -> Vec<f32> {
        let (k, kk) = (self.k, self.k * self.k);
        let mut y = vec![0f32; self.n * self.m * self.ho * self.wo];
        let c_slice = c_slice.max(1);
        for b in 0..self.n {
            for mo in 0..self.m {
                for oy in 0..self.ho {
                    for ox in 0..self.wo {
                        let mut total = 0f32;
                        for c0 in (0..self.c).step_by(c_slice) {
                            let mut acc = 0f32;
                            for ci in c0..self.c.min(c0 + c_slice) {
                                for r in 0..kk {
                                    let (ky, kx) = (r / k, r % k);
                                    let iy = (oy * self.stride + ky).checked_sub(self.pad);
                                    let ix = (ox * self.stride + kx).checked_sub(self.pad);
                                    let (Some(iy), Some(ix)) = (iy, ix) else {
                                        continue;
                                    };
                                    if iy >= self.h || ix >= self.w {
                                        continue;
                                    }
                                    let wv = if self.flip {
                                        weight[(ci * self.m + mo) * kk + (kk - 1 - r)]
                                    } else {
                                        weight[(mo * self.c + ci) * kk + r]
                                    };
                                    acc = wv.mul_add(
                                        x[((b * self.c + ci) * self.h + iy) * self.w + ix],
                                        acc,
                                    );
                                }
                            }
                            total += acc;
                        }
                        let out = ((b * self.m + mo) * self.ho + oy) * self.wo + ox;
                        y[out] = total + bias.map_or(0.0, |bs| bs[mo]);
                    }
                }
            }
        }
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::geometry::ConvGeom;

    fn rand(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    fn assert_close(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        for (j, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() < 1e-4, "{what}: element {j}: {x} vs {y}");
        }
    }

    /// `n` images of `(c, h, w)` to `co` channels: `(k, stride, pad)` as given.
    fn plan(n: usize, (c, h, w): (usize, usize, usize), co: usize, ksp: [usize; 3]) -> BatchedConv {
        BatchedConv {
            n,
            c_out: co,
            geom: ConvGeom::new(c, h, w, ksp[0], ksp[1], ksp[2]).unwrap(),
        }
    }

    const PER_CONV: ConvAlgo = ConvAlgo::Implicit {
        tile: None,
        weight_grad: true,
    };

    fn fixed(tile: usize) -> ConvAlgo {
        ConvAlgo::Implicit {
            tile: Some(tile),
            weight_grad: true,
        }
    }

    #[test]
    fn the_algorithm_setting_parses_and_rejects_with_the_choices() {
        assert_eq!(ConvAlgo::parse(None), Ok(ConvAlgo::Im2col));
        assert_eq!(ConvAlgo::parse(Some(" IM2COL ")), Ok(ConvAlgo::Im2col));
        assert_eq!(ConvAlgo::parse(Some("auto")), Ok(ConvAlgo::Auto));
        assert_eq!(ConvAlgo::parse(Some("cuDNN")), Ok(ConvAlgo::Cudnn));
        assert_eq!(ConvAlgo::parse(Some("implicit")), Ok(PER_CONV));
        assert_eq!(
            ConvAlgo::parse(Some("implicit-fwd")),
            Ok(ConvAlgo::Implicit {
                tile: None,
                weight_grad: false
            })
        );
        assert_eq!(ConvAlgo::parse(Some("implicit-m32")), Ok(fixed(32)));
        assert_eq!(ConvAlgo::parse(Some("Implicit-M64")), Ok(fixed(64)));
        let err = ConvAlgo::parse(Some("implicit-m128")).unwrap_err();
        assert!(
            err.contains(ALGO_VAR)
                && err.contains("cudnn")
                && err.contains("implicit-fwd")
                && err.contains("implicit-m64"),
            "{err}"
        );
        for (name, algo) in ALGOS {
            assert_eq!(algo.name(), name);
            assert_eq!(ConvAlgo::parse(Some(name)), Ok(algo));
        }
        // cuDNN's algorithms by number are `auto`'s candidates, named but not settings.
        assert_eq!(ConvAlgo::CudnnAlgo(0).name(), "cudnn-algo-0");
        assert_eq!(ConvAlgo::CudnnAlgo(7).name(), "cudnn-algo-7");
        assert!(ConvAlgo::parse(Some("cudnn-algo-1")).is_err());
    }

    #[test]
    fn the_forward_plan_is_the_im2col_routes_product() {
        for (p, bias) in [
            (plan(2, (3, 6, 5), 4, [3, 1, 1]), true),
            (plan(2, (2, 8, 8), 5, [4, 2, 1]), false),
            (plan(1, (3, 7, 6), 6, [3, 2, 0]), true),
        ] {
            let x = rand(p.input_len(), 1);
            let w = rand(p.weight_len(), 2);
            let b = rand(p.c_out, 3);
            // im2col + the forward GEMM, as the CUDA route runs them, then the bias.
            let col = p.im2col(&x);
            let mut want = vec![0f32; p.output_len()];
            p.forward_gemm().reference(&col, &w, &mut want, 0.0);
            if bias {
                for (i, v) in want.iter_mut().enumerate() {
                    *v += b[(i / p.positions()) % p.c_out];
                }
            }
            let ic = ImplicitConv::forward(&p);
            assert_eq!((ic.ho, ic.wo), (p.geom.ho, p.geom.wo));
            for c_slice in [p.geom.c, 1, 2] {
                let got = ic.reference(&x, &w, bias.then_some(&b[..]), c_slice);
                assert_close(&got, &want, &format!("{p:?} in slices of {c_slice}"));
            }
        }
    }

    #[test]
    fn the_input_gradient_plan_is_the_im2col_routes_product() {
        for p in [
            plan(2, (3, 6, 5), 4, [3, 1, 1]),
            plan(2, (2, 7, 7), 3, [3, 1, 0]),
            plan(1, (2, 6, 6), 5, [4, 1, 2]),
        ] {
            let dy = rand(p.output_len(), 4);
            let w = rand(p.weight_len(), 5);
            // The GEMM into the column gradient, then col2im.
            let mut dcol = vec![0f32; p.rows() * p.cols()];
            p.input_grad_gemm().reference(&dy, &w, &mut dcol, 0.0);
            let want = p.col2im(&dcol);
            let ic = ImplicitConv::input_grad(&p).unwrap();
            assert_eq!(
                (ic.n, ic.m, ic.ho, ic.wo),
                (p.n, p.geom.c, p.geom.h, p.geom.w)
            );
            for c_slice in [ic.c, 1] {
                let got = ic.reference(&dy, &w, None, c_slice);
                assert_close(&got, &want, &format!("{p:?} in slices of {c_slice}"));
            }
        }
        // Stride 2 has no implicit input gradient (col2im keeps it).
        assert_eq!(
            ImplicitConv::input_grad(&plan(1, (2, 8, 8), 3, [4, 2, 1])),
            None
        );
    }

    #[test]
    fn kernels_grids_tiles_and_slices_follow_the_setting() {
        let ic = ImplicitConv::forward(&plan(256, (56, 28, 28), 28, [3, 1, 1]));
        assert_eq!(ic.forward_plan(ConvAlgo::Im2col), None);
        // 256·28·28 columns in tiles of 128; 28 channels in one tile; no slices.
        let fp = ic.forward_plan(PER_CONV).unwrap();
        assert_eq!(
            fp,
            ForwardPlan {
                tile: 32,
                grid: (1568, 1, 1),
                c_slice: 56
            }
        );
        assert_eq!(ic.forward_plan(fixed(64)).unwrap().tile, 64);
        assert_eq!(ic.kernel(32), "conv_implicit_k3_m32");
        assert_eq!(
            ic.ints(true, 56),
            [256, 56, 28, 28, 28, 1, 1, 28, 28, 0, 1, 56]
        );
        // 7×7 maps at batch 128: 49 column tiles × 4 channel tiles, so the 112 input channels
        // go in slices: 3 of 38, 38 and 36 (588 blocks).
        let deep = ImplicitConv::forward(&plan(128, (112, 7, 7), 224, [3, 1, 1]));
        let dp = deep.forward_plan(PER_CONV).unwrap();
        assert_eq!(
            dp,
            ForwardPlan {
                tile: 64,
                grid: (49, 4, 3),
                c_slice: 38
            }
        );
        // Every slice holds channels.
        assert!((dp.grid.2 - 1) * dp.c_slice < deep.c);
        // A tiny conv: slices of at least 8 channels, so none here.
        let wide = ImplicitConv::forward(&plan(8, (7, 7, 7), 224, [3, 1, 1]));
        assert_eq!(wide.forward_plan(fixed(64)).unwrap().grid, (4, 4, 1));
        // No kernel for a 7×7 or 1×1 conv.
        let init = ImplicitConv::forward(&plan(8, (1, 28, 28), 18, [7, 1, 3]));
        assert_eq!(init.forward_plan(PER_CONV), None);
    }

    #[test]
    fn the_weight_gradient_plan_is_the_im2col_routes_product() {
        for p in [
            plan(2, (3, 6, 5), 4, [3, 1, 1]),
            plan(2, (2, 8, 8), 5, [4, 2, 1]),
            plan(3, (2, 7, 6), 40, [3, 2, 0]),
        ] {
            let x = rand(p.input_len(), 6);
            let dy = rand(p.output_len(), 7);
            // im2col, dy with batch and channels swapped, one GEMM.
            let mut want = vec![0f32; p.weight_len()];
            p.weight_grad_gemm()
                .reference(&p.im2col(&x), &p.channels_first(&dy), &mut want, 0.0);
            let ic = ImplicitConv::forward(&p);
            for slice in [8, 16, ic.cols().next_multiple_of(8)] {
                let got = ic.weight_grad_reference(&x, &dy, slice);
                assert_close(&got, &want, &format!("{p:?}, slices of {slice}"));
            }
        }
    }

    #[test]
    fn weight_gradient_slices_fill_the_gpu_without_an_empty_one() {
        // The blog UNet's 28×28 conv from 56 to 28 channels at batch 128: 4 × 1 tiles.
        let ic = ImplicitConv::forward(&plan(128, (56, 28, 28), 28, [3, 1, 1]));
        let w = ic.weight_grad_plan(PER_CONV).unwrap();
        assert_eq!((w.tile, w.grid.0, w.grid.1), (32, 4, 1));
        // About the target (slices rounded up to 8 columns may leave one out).
        let blocks = w.grid.0 * w.grid.1 * w.grid.2;
        assert!(blocks * 10 >= WGRAD_TARGET_BLOCKS * 9, "{w:?}");
        assert_eq!(w.slice % 8, 0);
        assert!(w.slice >= WGRAD_MIN_SLICE);
        // Every slice holds columns: the last starts before the end.
        assert!((w.grid.2 - 1) * w.slice < ic.cols(), "{w:?}");
        assert!(w.grid.2 * w.slice >= ic.cols(), "{w:?}");
        assert_eq!(ic.weight_grad_kernel(w.tile), "conv_implicit_wgrad_k3_m32");
        assert_eq!(
            ic.weight_grad_ints(w.slice),
            [128, 56, 28, 28, 28, 1, 1, 28, 28, w.slice]
        );
        // A small conv: one slice of all its columns.
        let tiny = ImplicitConv::forward(&plan(1, (2, 5, 5), 3, [3, 1, 1]));
        let t = tiny.weight_grad_plan(fixed(64)).unwrap();
        assert_eq!((t.tile, t.grid, t.slice), (64, (1, 1, 1), 32));
        // Not with `implicit-fwd`, nor for kernels without a build, nor flipped.
        let fwd_only = ConvAlgo::Implicit {
            tile: None,
            weight_grad: false,
        };
        assert_eq!(ic.weight_grad_plan(fwd_only), None);
        assert_eq!(ic.weight_grad_plan(ConvAlgo::Im2col), None);
        let init = ImplicitConv::forward(&plan(8, (1, 28, 28), 18, [7, 1, 3]));
        assert_eq!(init.weight_grad_plan(PER_CONV), None);
    }
}
