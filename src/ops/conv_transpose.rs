//! `conv_transpose2d` (square kernel, stride, padding, no output padding, with bias) as
//! GEMM + col2im; its backward is im2col + GEMM. It is the adjoint of [`super::conv`]'s
//! geometry: the output `(Co, Ho, Wo)` plays the conv input, the input `(Ci, H, W)` its output.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use super::geometry::ConvGeom;
use super::reduce::par_chunk_sum;
use super::scratch::{par_build_overwrite, with_scratch};
use super::sgemm::{sgemm, MatRef};
use super::storage::{contiguous, cpu_tensor, input_weight_bias, with_f32_3};

/// The custom op: `(x (N, Ci, H, W), w (Ci, Co, k, k), b (Co)) → (N, Co, Ho, Wo)` with
/// `Ho = (H − 1)·stride − 2·pad + k`.
#[derive(Debug, Clone, Copy)]
pub struct ConvTranspose2dOp {
    /// Stride on both axes.
    pub stride: usize,
    /// Padding removed on each side.
    pub pad: usize,
}

/// `conv_transpose2d(x, w) + b` through [`ConvTranspose2dOp`]. CPU `f32` only.
pub fn conv_transpose2d(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    stride: usize,
    pad: usize,
) -> Result<Tensor> {
    contiguous(x)?.apply_op3(
        &contiguous(w)?,
        &contiguous(b)?,
        ConvTranspose2dOp { stride, pad },
    )
}

impl ConvTranspose2dOp {
    /// `(n, ci, geometry of the equivalent conv from the output back to the input)`.
    fn geometry(&self, x: &[usize], w: &[usize]) -> Result<(usize, usize, ConvGeom)> {
        let (&[n, ci, h, wd], &[wci, co, k, k2]) = (x, w) else {
            candle_core::bail!("conv_transpose2d: expected 4-d input and weight, got {x:?}, {w:?}");
        };
        if wci != ci || k != k2 || self.stride == 0 {
            candle_core::bail!("conv_transpose2d: weight {w:?} does not fit input {x:?}");
        }
        let full_h = (h - 1) * self.stride + k;
        let full_w = (wd - 1) * self.stride + k;
        if h == 0 || wd == 0 || full_h < 2 * self.pad + 1 || full_w < 2 * self.pad + 1 {
            candle_core::bail!("conv_transpose2d: padding {} too large for {x:?}", self.pad);
        }
        let g = ConvGeom::new(
            co,
            full_h - 2 * self.pad,
            full_w - 2 * self.pad,
            k,
            self.stride,
            self.pad,
        )?;
        if g.ho != h || g.wo != wd {
            candle_core::bail!("conv_transpose2d: inconsistent geometry for {x:?}");
        }
        Ok((n, ci, g))
    }
}

fn forward(x: &[f32], w: &[f32], b: &[f32], n: usize, ci: usize, g: ConvGeom) -> Vec<f32> {
    let (rows, hw, out_img) = (g.rows(), g.cols(), g.image_len());
    let plane = g.h * g.w;
    // SAFETY: the bias fill writes all `co` planes of the image before col2im adds onto them.
    unsafe {
        par_build_overwrite(n * out_img, out_img, |i, o| {
            let xi = &x[i * ci * hw..][..ci * hw];
            for (c, &bc) in b.iter().enumerate() {
                o[c * plane..(c + 1) * plane].fill(bc);
            }
            with_scratch(0, rows * hw, |cols| {
                sgemm(
                    rows,
                    hw,
                    ci,
                    cols,
                    hw,
                    false,
                    MatRef::rows_t(w, rows),
                    MatRef::rows(xi, hw),
                    false,
                );
                g.col2im_add(cols, o);
            });
        })
    }
}

/// `(dx, dw, db)`.
fn backward(x: &[f32], w: &[f32], gy: &[f32], n: usize, ci: usize, g: ConvGeom) -> [Vec<f32>; 3] {
    let (rows, hw, out_img) = (g.rows(), g.cols(), g.image_len());
    let plane = g.h * g.w;
    let mut dx = vec![0f32; n * ci * hw];
    // dW and dB, summed over chunks of images; each chunk writes its images' dx.
    let mut dw = par_chunk_sum(n, ci * rows + g.c, &mut dx, |images, dxc, partial| {
        let (pw, pb) = partial.split_at_mut(ci * rows);
        for (i, dxi) in images.zip(dxc.chunks_mut(ci * hw)) {
            let xi = &x[i * ci * hw..(i + 1) * ci * hw];
            let gi = &gy[i * out_img..(i + 1) * out_img];
            for (c, acc) in pb.iter_mut().enumerate() {
                *acc += gi[c * plane..(c + 1) * plane].iter().sum::<f32>();
            }
            with_scratch(0, rows * hw, |gcols| {
                g.im2col(gi, gcols);
                // dx_i (Ci × HW) = W (Ci × rows) · gcols (rows × HW)
                sgemm(
                    ci,
                    hw,
                    rows,
                    dxi,
                    hw,
                    false,
                    MatRef::rows(w, rows),
                    MatRef::rows(gcols, hw),
                    false,
                );
                // dW (Ci × rows) += x_i (Ci × HW) · gcolsᵀ
                sgemm(
                    ci,
                    rows,
                    hw,
                    pw,
                    rows,
                    true,
                    MatRef::rows(xi, hw),
                    MatRef::rows_t(gcols, hw),
                    false,
                );
            });
        }
    });
    let db = dw.split_off(ci * rows);
    [dx, dw, db]
}

impl CustomOp3 for ConvTranspose2dOp {
    fn name(&self) -> &'static str {
        "ddpm-conv-transpose2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, ci, g) = self.geometry(l1.dims(), l2.dims())?;
        let [x, w, b] = input_weight_bias("conv_transpose2d", (s1, l1), (s2, l2), (s3, l3), g.c)?;
        let out = forward(x, w, b, n, ci, g);
        Ok((CpuStorage::F32(out), Shape::from((n, g.c, g.h, g.w))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, ci, g) = self.geometry(x.dims(), w.dims())?;
        let [dx, dw, db] = with_f32_3(x, w, grad, |xs, ws, gs| Ok(backward(xs, ws, gs, n, ci, g)))?;
        Ok((
            Some(cpu_tensor(dx, x.dims())?),
            Some(cpu_tensor(dw, w.dims())?),
            Some(cpu_tensor(db, b.dims())?),
        ))
    }
}
