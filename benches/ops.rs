//! The custom CPU ops at the blog UNet's real shapes (batch 32), each against candle's stock op:
//! forward alone and forward + backward. Run with `cargo bench --bench ops`.

use candle_core::{Device, Module, Tensor, Var};
use ddpm_lab::ops;

fn main() {
    divan::main();
}

const N: usize = 32;

fn rand(shape: &[usize]) -> Tensor {
    Tensor::randn(0f32, 1.0, shape, &Device::Cpu).unwrap()
}

fn var(shape: &[usize]) -> Var {
    Var::from_tensor(&(rand(shape) * 0.1).unwrap()).unwrap()
}

fn bias4(b: &Tensor) -> Tensor {
    b.reshape((1, b.dim(0).unwrap(), 1, 1)).unwrap()
}

/// The blog UNet's 3×3 conv at input side 28, 14 or 7: `(ci, co, geometry)`.
fn blog_conv3x3(side: usize) -> (usize, usize, ddpm_lab::ops::geometry::ConvGeom) {
    let (ci, co) = match side {
        28 => (56, 28),
        14 => (112, 56),
        _ => (224, 112),
    };
    let g = ddpm_lab::ops::geometry::ConvGeom::new(ci, side, side, 3, 1, 1).unwrap();
    (ci, co, g)
}

/// A random tensor of `shape` as a flat vector.
fn values(shape: &[usize]) -> Vec<f32> {
    rand(shape).flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Runs `f` forward, and backward through `Σ f(..)` when `train` is set.
fn run(train: bool, f: impl Fn() -> Tensor) {
    let y = f();
    if train {
        divan::black_box(y.sum_all().unwrap().backward().unwrap());
    } else {
        divan::black_box(y);
    }
}

/// ConvNeXt `net.4`: 3×3 conv 56 → 28 at 28×28.
mod conv3x3_56_to_28_at_28 {
    use super::*;

    fn args() -> (Var, Var, Var) {
        (var(&[N, 56, 28, 28]), var(&[28, 56, 3, 3]), var(&[28]))
    }

    #[divan::bench(args = [false, true])]
    fn ours(b: divan::Bencher, train: bool) {
        let (x, w, bi) = args();
        b.bench(|| {
            run(train, || {
                ops::conv::conv2d(&x, &w, Some(&bi), 1, 1).unwrap()
            })
        });
    }

    #[divan::bench(args = [false, true])]
    fn stock(b: divan::Bencher, train: bool) {
        let (x, w, bi) = args();
        b.bench(|| {
            run(train, || {
                x.conv2d(&w, 1, 1, 1, 1)
                    .unwrap()
                    .broadcast_add(&bias4(&bi))
                    .unwrap()
            })
        });
    }
}

/// `to_qkv` of a linear attention: 1×1 conv 28 → 384 at 28×28 (no bias).
mod conv1x1_28_to_384_at_28 {
    use super::*;

    #[divan::bench(args = [false, true])]
    fn ours(b: divan::Bencher, train: bool) {
        let (x, w) = (var(&[N, 28, 28, 28]), var(&[384, 28, 1, 1]));
        b.bench(|| run(train, || ops::conv::conv2d(&x, &w, None, 1, 0).unwrap()));
    }

    #[divan::bench(args = [false, true])]
    fn stock(b: divan::Bencher, train: bool) {
        let (x, w) = (var(&[N, 28, 28, 28]), var(&[384, 28, 1, 1]));
        b.bench(|| run(train, || x.conv2d(&w, 0, 1, 1, 1).unwrap()));
    }
}

/// ConvNeXt `ds_conv`: depthwise 7×7 over 28 channels at 28×28.
mod depthwise7x7_28_at_28 {
    use super::*;

    fn args() -> (Var, Var, Var) {
        (var(&[N, 28, 28, 28]), var(&[28, 1, 7, 7]), var(&[28]))
    }

    #[divan::bench(args = [false, true])]
    fn ours(b: divan::Bencher, train: bool) {
        let (x, w, bi) = args();
        b.bench(|| {
            run(train, || {
                ops::depthwise::depthwise_conv2d(&x, &w, &bi, 3).unwrap()
            })
        });
    }

    #[divan::bench(args = [false, true])]
    fn stock(b: divan::Bencher, train: bool) {
        let (x, w, bi) = args();
        b.bench(|| {
            run(train, || {
                x.conv2d(&w, 3, 1, 1, 28)
                    .unwrap()
                    .broadcast_add(&bias4(&bi))
                    .unwrap()
            })
        });
    }
}

/// ConvNeXt `net.3`: GroupNorm(1, 56) at 28×28.
mod group_norm_1_56_at_28 {
    use super::*;

    fn args() -> (Var, Var, Var) {
        (var(&[N, 56, 28, 28]), var(&[56]), var(&[56]))
    }

    #[divan::bench(args = [false, true])]
    fn ours(b: divan::Bencher, train: bool) {
        let (x, g, bi) = args();
        b.bench(|| {
            run(train, || {
                ops::group_norm::group_norm(&x, &g, &bi, 1, 1e-5).unwrap()
            })
        });
    }

    #[divan::bench(args = [false, true])]
    fn stock(b: divan::Bencher, train: bool) {
        let (x, g, bi) = args();
        let gn =
            candle_nn::GroupNorm::new(g.as_tensor().clone(), bi.as_tensor().clone(), 56, 1, 1e-5)
                .unwrap();
        b.bench(|| run(train, || gn.forward(&x).unwrap()));
    }
}

/// `downs.0.3`: Downsample, 4×4 stride-2 conv 28 → 28 from 28×28 to 14×14.
mod downsample_28_at_28 {
    use super::*;

    fn args() -> (Var, Var, Var) {
        (var(&[N, 28, 28, 28]), var(&[28, 28, 4, 4]), var(&[28]))
    }

    #[divan::bench(args = [false, true])]
    fn ours(b: divan::Bencher, train: bool) {
        let (x, w, bi) = args();
        b.bench(|| {
            run(train, || {
                ops::conv::conv2d(&x, &w, Some(&bi), 2, 1).unwrap()
            })
        });
    }

    #[divan::bench(args = [false, true])]
    fn stock(b: divan::Bencher, train: bool) {
        let (x, w, bi) = args();
        b.bench(|| {
            run(train, || {
                x.conv2d(&w, 1, 2, 1, 1)
                    .unwrap()
                    .broadcast_add(&bias4(&bi))
                    .unwrap()
            })
        });
    }
}

/// `ups.0.3`: Upsample, 4×4 stride-2 transposed conv 56 → 56 from 7×7 to 14×14.
mod upsample_56_at_7 {
    use super::*;

    fn args() -> (Var, Var, Var) {
        (var(&[N, 56, 7, 7]), var(&[56, 56, 4, 4]), var(&[56]))
    }

    #[divan::bench(args = [false, true])]
    fn ours(b: divan::Bencher, train: bool) {
        let (x, w, bi) = args();
        b.bench(|| {
            run(train, || {
                ops::conv_transpose::conv_transpose2d(&x, &w, &bi, 2, 1).unwrap()
            })
        });
    }

    #[divan::bench(args = [false, true])]
    fn stock(b: divan::Bencher, train: bool) {
        let (x, w, bi) = args();
        b.bench(|| {
            run(train, || {
                x.conv_transpose2d(&w, 1, 0, 2, 1)
                    .unwrap()
                    .broadcast_add(&bias4(&bi))
                    .unwrap()
            })
        });
    }
}

/// ConvNeXt `net.2`: GELU over 56 channels at 28×28.
mod gelu_56_at_28 {
    use super::*;

    #[divan::bench(args = [false, true])]
    fn ours(b: divan::Bencher, train: bool) {
        let x = var(&[N, 56, 28, 28]);
        b.bench(|| run(train, || ops::gelu::gelu(&x).unwrap()));
    }

    #[divan::bench(args = [false, true])]
    fn stock(b: divan::Bencher, train: bool) {
        let x = var(&[N, 56, 28, 28]);
        b.bench(|| run(train, || x.gelu_erf().unwrap()));
    }
}

/// ResNet `block1`: SiLU over 28 channels at 28×28.
mod silu_28_at_28 {
    use super::*;

    #[divan::bench(args = [false, true])]
    fn ours(b: divan::Bencher, train: bool) {
        let x = var(&[N, 28, 28, 28]);
        b.bench(|| run(train, || ops::silu::silu(&x).unwrap()));
    }

    #[divan::bench(args = [false, true])]
    fn stock(b: divan::Bencher, train: bool) {
        let x = var(&[N, 28, 28, 28]);
        b.bench(|| run(train, || x.silu().unwrap()));
    }
}

/// The 3×3 convs at each resolution of the blog UNet, 16 images (a sampling step's batch), on
/// raw slices: `forward` (the direct kernel where the CPU has AVX-512F) against
/// `forward_im2col` (im2col + GEMM). Args: input side 28, 14 or 7.
mod conv3x3_direct_vs_im2col {
    use super::*;
    use ddpm_lab::ops::geometry::ConvGeom;

    type Args = (Vec<f32>, Vec<f32>, Vec<f32>, ConvGeom, usize);

    fn args(side: usize) -> Args {
        let (ci, co, g) = blog_conv3x3(side);
        (
            values(&[16, ci, side, side]),
            values(&[co, ci, 3, 3]),
            values(&[co]),
            g,
            co,
        )
    }

    #[divan::bench(args = [28, 14, 7])]
    fn direct(b: divan::Bencher, side: usize) {
        let (x, w, bi, g, co) = args(side);
        b.bench(|| ops::on_pool(&Device::Cpu, || ops::conv::forward(&x, &w, &bi, 16, g, co)));
    }

    #[divan::bench(args = [28, 14, 7])]
    fn im2col(b: divan::Bencher, side: usize) {
        let (x, w, bi, g, co) = args(side);
        b.bench(|| {
            ops::on_pool(&Device::Cpu, || {
                ops::conv::forward_im2col(&x, &w, &bi, 16, g, co)
            })
        });
    }
}

/// The weight gradient of the same 3×3 convs at batch 32, on one thread: the direct kernel
/// (`direct_conv::weight_grad_images`, AVX-512F) against im2col + GEMM per image, the path it
/// replaces on maps of 10×10 and more (`direct_conv::weight_grad_pays`). Args: input side.
mod conv_weight_grad {
    use super::*;
    use ddpm_lab::ops::direct_conv;
    use ddpm_lab::ops::geometry::ConvGeom;
    use ddpm_lab::ops::sgemm::{sgemm, MatRef};

    type Args = (Vec<f32>, Vec<f32>, ConvGeom, usize);

    fn args(side: usize) -> Args {
        let (ci, co, g) = blog_conv3x3(side);
        (
            values(&[N, ci, side, side]),
            values(&[N, co, side, side]),
            g,
            co,
        )
    }

    #[divan::bench(args = [28, 14, 7])]
    fn direct(b: divan::Bencher, side: usize) {
        let (x, gy, g, co) = args(side);
        if !direct_conv::supports_weight_grad(&g) {
            return;
        }
        let mut dw = vec![0f32; co * g.rows()];
        b.bench_local(|| direct_conv::weight_grad_images(&x, &gy, N, &g, co, &mut dw));
    }

    #[divan::bench(args = [28, 14, 7])]
    fn im2col(b: divan::Bencher, side: usize) {
        let (x, gy, g, co) = args(side);
        let (rows, hw, img) = (g.rows(), g.cols(), g.image_len());
        let mut dw = vec![0f32; co * rows];
        let mut cols = vec![0f32; rows * hw];
        b.bench_local(|| {
            for i in 0..N {
                g.im2col(&x[i * img..][..img], &mut cols);
                let gi = &gy[i * co * hw..][..co * hw];
                let (lhs, rhs) = (MatRef::rows(gi, hw), MatRef::rows_t(&cols, hw));
                sgemm(co, rows, hw, &mut dw, rows, true, lhs, rhs, false);
            }
        });
    }
}
