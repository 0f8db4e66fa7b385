//! A convolution over a whole batch as one im2col matrix and three cuBLAS-style GEMMs: the plan
//! that the CUDA conv ([`crate::ops::cuda::conv`]) runs, with a CPU reference of its GEMMs so
//! that the tests here check every leading dimension and batch stride against candle's conv.
//!
//! With `K = C·k²` rows and `P = Ho·Wo` output positions per image, the batch's im2col matrix is
//! `col (K, N·P)` (row-major; image `n`'s columns start at `n·P`, as [`ConvGeom::im2col_ld`]
//! lays them out with `ld = N·P`). Then, with `W (Co, K)` the weight and `y, dy (N, Co, P)`:
//!
//! - forward: `y[n] = W · col[:, n·P..]`, a batch of `N` products sharing `W` (batch stride 0);
//!   the result lands in NCHW order, with no transpose after it;
//! - input gradient: `dcol[:, n·P..] = Wᵀ · dy[n]`, then col2im gives `dx`;
//! - weight gradient: `dW = dyᶜ · colᵀ` in one product over all `N·P` columns, where `dyᶜ`
//!   is `dy` with its batch and channel axes swapped (`(Co, N·P)`).
//!
//! A `ConvTranspose2d` is the input gradient of the conv it transposes, so the same three
//! products give its forward pass and both its gradients.

use crate::ops::geometry::ConvGeom;

/// One strided batched GEMM as cuBLAS takes it, column-major:
/// `C_i = op(A_i) · op(B_i) + β·C_i` for `i < batch`, with `op(A_i)` `m × k`, `op(B_i)` `k × n`
/// and `X_i` starting `i·stride_x` elements into `X`. A row-major `r × c` matrix with row stride
/// `ld` is the column-major `c × r` matrix with leading dimension `ld`, which is how the plan
/// below states its row-major products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gemm {
    /// Whether `op(A)` is `Aᵀ`.
    pub trans_a: bool,
    /// Whether `op(B)` is `Bᵀ`.
    pub trans_b: bool,
    /// Rows of `op(A)` and `C`.
    pub m: usize,
    /// Columns of `op(B)` and `C`.
    pub n: usize,
    /// Columns of `op(A)`, rows of `op(B)`.
    pub k: usize,
    /// Leading dimension of `A`.
    pub lda: usize,
    /// Leading dimension of `B`.
    pub ldb: usize,
    /// Leading dimension of `C`.
    pub ldc: usize,
    /// Elements between consecutive `A_i` (0: one `A` for all).
    pub stride_a: usize,
    /// Elements between consecutive `B_i` (0: one `B` for all).
    pub stride_b: usize,
    /// Elements between consecutive `C_i`.
    pub stride_c: usize,
    /// Number of products.
    pub batch: usize,
}

impl Gemm {
    /// The elements of `A` the product reads: one past the last index.
    pub fn extent_a(&self) -> usize {
        let (rows, cols) = if self.trans_a {
            (self.k, self.m)
        } else {
            (self.m, self.k)
        };
        extent(rows, cols, self.lda, self.stride_a, self.batch)
    }

    /// The elements of `B` the product reads: one past the last index.
    pub fn extent_b(&self) -> usize {
        let (rows, cols) = if self.trans_b {
            (self.n, self.k)
        } else {
            (self.k, self.n)
        };
        extent(rows, cols, self.ldb, self.stride_b, self.batch)
    }

    /// The elements of `C` the product writes: one past the last index.
    pub fn extent_c(&self) -> usize {
        extent(self.m, self.n, self.ldc, self.stride_c, self.batch)
    }

    /// The product on the CPU, exactly as specified (`β` 0 or 1): the reference the tests hold
    /// the plan's GEMMs to.
    pub fn reference(&self, a: &[f32], b: &[f32], c: &mut [f32], beta: f32) {
        assert!(a.len() >= self.extent_a() && b.len() >= self.extent_b());
        assert!(c.len() >= self.extent_c());
        for i in 0..self.batch {
            let (a, b) = (&a[i * self.stride_a..], &b[i * self.stride_b..]);
            let c = &mut c[i * self.stride_c..];
            for col in 0..self.n {
                for row in 0..self.m {
                    let mut acc = 0f64;
                    for l in 0..self.k {
                        let av = if self.trans_a {
                            a[l + row * self.lda]
                        } else {
                            a[row + l * self.lda]
                        };
                        let bv = if self.trans_b {
                            b[col + l * self.ldb]
                        } else {
                            b[l + col * self.ldb]
                        };
                        acc += av as f64 * bv as f64;
                    }
                    let out = &mut c[row + col * self.ldc];
                    // As cuBLAS: β = 0 never reads C (which may hold anything, NaN included).
                    *out = if beta == 0.0 {
                        acc as f32
                    } else {
                        acc as f32 + beta * *out
                    };
                }
            }
        }
    }
}

/// One past the last element of `batch` column-major `rows × cols` matrices with leading
/// dimension `ld`, `stride` apart (0 when empty).
fn extent(rows: usize, cols: usize, ld: usize, stride: usize, batch: usize) -> usize {
    if rows == 0 || cols == 0 || batch == 0 {
        return 0;
    }
    (batch - 1) * stride + (cols - 1) * ld + rows
}

/// A conv over a batch of `n` images to `c_out` channels: its per-image geometry and the GEMMs of
/// each pass ([module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchedConv {
    /// Images in the batch.
    pub n: usize,
    /// Output channels.
    pub c_out: usize,
    /// One image's geometry (input channels, sizes, kernel, stride, padding).
    pub geom: ConvGeom,
}

impl BatchedConv {
    /// Rows of the im2col matrix (`C·k²`).
    pub fn rows(&self) -> usize {
        self.geom.rows()
    }

    /// Output positions per image (`Ho·Wo`).
    pub fn positions(&self) -> usize {
        self.geom.cols()
    }

    /// Columns of the batch's im2col matrix (`N·Ho·Wo`).
    pub fn cols(&self) -> usize {
        self.n * self.positions()
    }

    /// Elements of the input `(N, C, H, W)`.
    pub fn input_len(&self) -> usize {
        self.n * self.geom.image_len()
    }

    /// Elements of one output image `(Co, Ho, Wo)`.
    pub fn output_image_len(&self) -> usize {
        self.c_out * self.positions()
    }

    /// Elements of the output `(N, Co, Ho, Wo)`.
    pub fn output_len(&self) -> usize {
        self.n * self.output_image_len()
    }

    /// Elements of the weight `(Co, C, k, k)`.
    pub fn weight_len(&self) -> usize {
        self.c_out * self.rows()
    }

    /// The images per chunk when the batch is processed in chunks whose im2col matrix holds at
    /// most `max_col` elements: at least one image, at most the batch. A chunk is this plan
    /// with `n` set to its size ([`Self::with_batch`]), its operands the chunk's images; the
    /// weight gradient adds the chunks' products (β = 1 after the first).
    pub fn images_per_chunk(&self, max_col: usize) -> usize {
        let per_image = self.rows() * self.positions();
        (max_col / per_image.max(1)).clamp(1, self.n.max(1))
    }

    /// This conv over a batch of `n` images (a chunk of this one).
    pub fn with_batch(&self, n: usize) -> BatchedConv {
        BatchedConv { n, ..*self }
    }

    /// Whether the forward and input-gradient products use the input itself in place of its
    /// im2col matrix: a 1×1 conv with stride 1 and no padding, whose image `n` is already the
    /// `(C, P)` block `x[n]` (row stride `P`, `C·P` apart) and whose `dx[n]` is `dcol`'s.
    pub fn reads_input_directly(&self) -> bool {
        self.geom.is_pointwise()
    }

    /// Row stride of image `n`'s `(K, P)` block of `col` and elements between consecutive
    /// images' blocks: in the batch's im2col matrix, or in `x` itself
    /// ([`Self::reads_input_directly`]).
    fn col_layout(&self) -> (usize, usize) {
        if self.reads_input_directly() {
            (self.positions(), self.geom.image_len())
        } else {
            (self.cols(), self.positions())
        }
    }

    /// `y[n] (Co, P) = W (Co, K) · col[:, n·P..] (K, P)`; `A` = col (or `x`), `B` = W, `C` = y.
    pub fn forward_gemm(&self) -> Gemm {
        let (k, p) = (self.rows(), self.positions());
        let (ld, stride) = self.col_layout();
        Gemm {
            trans_a: false,
            trans_b: false,
            m: p,
            n: self.c_out,
            k,
            lda: ld,
            ldb: k,
            ldc: p,
            stride_a: stride,
            stride_b: 0,
            stride_c: self.c_out * p,
            batch: self.n,
        }
    }

    /// `dcol[:, n·P..] (K, P) = Wᵀ (K, Co) · dy[n] (Co, P)`; `A` = dy, `B` = W, `C` = dcol (or
    /// `dx`).
    pub fn input_grad_gemm(&self) -> Gemm {
        let (k, p) = (self.rows(), self.positions());
        let (ld, stride) = self.col_layout();
        Gemm {
            trans_a: false,
            trans_b: true,
            m: p,
            n: k,
            k: self.c_out,
            lda: p,
            ldb: k,
            ldc: ld,
            stride_a: self.c_out * p,
            stride_b: 0,
            stride_c: stride,
            batch: self.n,
        }
    }

    /// `dW (Co, K) = dyᶜ (Co, N·P) · colᵀ (N·P, K)`; `A` = col, `B` = dyᶜ, `C` = dW.
    pub fn weight_grad_gemm(&self) -> Gemm {
        let (k, np) = (self.rows(), self.cols());
        Gemm {
            trans_a: true,
            trans_b: false,
            m: k,
            n: self.c_out,
            k: np,
            lda: np,
            ldb: np,
            ldc: k,
            stride_a: 0,
            stride_b: 0,
            stride_c: 0,
            batch: 1,
        }
    }

    /// The batch's im2col matrix `(K, N·P)` of `x (N, C, H, W)` on the CPU.
    pub fn im2col(&self, x: &[f32]) -> Vec<f32> {
        let (img, p, np) = (self.geom.image_len(), self.positions(), self.cols());
        let mut col = vec![0f32; self.rows() * np];
        for i in 0..self.n {
            self.geom
                .im2col_ld(&x[i * img..(i + 1) * img], &mut col[i * p..], np);
        }
        col
    }

    /// `x (N, C, H, W)` from the batch's column gradient `dcol (K, N·P)` on the CPU.
    pub fn col2im(&self, dcol: &[f32]) -> Vec<f32> {
        let (img, p, np) = (self.geom.image_len(), self.positions(), self.cols());
        let mut x = vec![0f32; self.input_len()];
        for i in 0..self.n {
            self.geom
                .col2im_add_ld(&dcol[i * p..], np, &mut x[i * img..(i + 1) * img]);
        }
        x
    }

    /// `(N, Co, P)` with its first two axes swapped: `(Co, N, P)`, on the CPU.
    pub fn channels_first(&self, dy: &[f32]) -> Vec<f32> {
        let p = self.positions();
        let mut out = vec![0f32; dy.len()];
        for i in 0..self.n {
            for c in 0..self.c_out {
                let src = &dy[(i * self.c_out + c) * p..][..p];
                out[(c * self.n + i) * p..][..p].copy_from_slice(src);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    use super::*;

    fn rand(shape: &[usize], seed: u64) -> Tensor {
        let n: usize = shape.iter().product();
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let v: Vec<f32> = (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn flat(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    fn assert_close(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        for (j, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() < 1e-4, "{what}: element {j}: {x} vs {y}");
        }
    }

    /// Runs `gemm` on the CPU after checking that the buffers hold exactly its extents.
    fn run(gemm: Gemm, a: &[f32], b: &[f32], c_len: usize) -> Vec<f32> {
        assert!(gemm.extent_a() <= a.len() && gemm.extent_b() <= b.len());
        assert_eq!(gemm.extent_c(), c_len, "the product covers its output");
        let mut c = vec![f32::NAN; c_len];
        gemm.reference(a, b, &mut c, 0.0);
        c
    }

    /// The plan's three passes against candle's conv and its gradients, for several geometries
    /// (1×1, 3×3, the UNet's stride-2 4×4 down-sampling, a 7×7 with odd sizes).
    #[test]
    fn batched_conv_gemms_match_candles_conv_and_its_gradients() {
        for (i, &(n, c, co, h, w, k, s, p)) in [
            (2, 3, 4, 5, 5, 1, 1, 0),
            (3, 2, 5, 6, 7, 3, 1, 1),
            (2, 4, 3, 8, 8, 4, 2, 1),
            (2, 1, 3, 9, 7, 7, 1, 3),
            (1, 2, 2, 7, 6, 3, 2, 0),
        ]
        .iter()
        .enumerate()
        {
            let plan = BatchedConv {
                n,
                c_out: co,
                geom: ConvGeom::new(c, h, w, k, s, p).unwrap(),
            };
            let x = Var::from_tensor(&rand(&[n, c, h, w], 3 * i as u64 + 1)).unwrap();
            let wt = Var::from_tensor(&rand(&[co, c, k, k], 3 * i as u64 + 2)).unwrap();
            let y = x.conv2d(&wt, p, s, 1, 1).unwrap();
            let dy = rand(y.dims(), 3 * i as u64 + 3);
            let grads = (&y * &dy).unwrap().sum_all().unwrap().backward().unwrap();

            let (xv, wv, dyv) = (flat(&x), flat(&wt), flat(&dy));
            let col = plan.im2col(&xv);
            let direct = plan.reads_input_directly();
            assert_eq!(
                direct,
                i == 0,
                "case {i}: only the 1×1 conv reads x directly"
            );
            let a = if direct { &xv } else { &col };
            let ours = run(plan.forward_gemm(), a, &wv, plan.output_len());
            assert_close(&ours, &flat(&y), &format!("case {i}: forward"));

            let dcol = run(plan.input_grad_gemm(), &dyv, &wv, a.len());
            let dx = if direct { dcol } else { plan.col2im(&dcol) };
            // dx is the adjoint of the (linear) conv: ⟨conv(x), dy⟩ = ⟨x, dx⟩.
            let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(u, v)| (u * v) as f64).sum();
            let (lhs, rhs): (f64, f64) = (dot(&ours, &dyv), dot(&xv, &dx));
            assert!((lhs - rhs).abs() < 1e-3, "case {i}: adjoint {lhs} vs {rhs}");
            // candle's own dx is short of the input when a strided conv leaves its last columns
            // unused (case 4); compare where it has the input's shape.
            let candle_dx = flat(grads.get(&x).unwrap());
            if candle_dx.len() == dx.len() {
                assert_close(&dx, &candle_dx, &format!("case {i}: dx"));
            }

            let dyc = plan.channels_first(&dyv);
            let dw = run(plan.weight_grad_gemm(), &col, &dyc, plan.weight_len());
            assert_close(
                &dw,
                &flat(grads.get(&wt).unwrap()),
                &format!("case {i}: dw"),
            );
        }
    }

    /// `ConvTranspose2d` as the input gradient of the conv it transposes, and its gradients as
    /// that conv's forward pass and weight gradient, against candle's `conv_transpose2d`.
    #[test]
    fn batched_conv_gemms_give_the_transposed_conv() {
        let (n, ci, co, h, w, k, s, p, op) = (2, 3, 4, 4, 5, 4, 2, 1, 1);
        let x = Var::from_tensor(&rand(&[n, ci, h, w], 11)).unwrap();
        let wt = Var::from_tensor(&rand(&[ci, co, k, k], 12)).unwrap();
        let y = x.conv_transpose2d(&wt, p, op, s, 1).unwrap();
        let (_, _, ht, wt_) = y.dims4().unwrap();
        // The conv whose input gradient this is: input (co, ht, wt), output (ci, h, w).
        let plan = BatchedConv {
            n,
            c_out: ci,
            geom: ConvGeom::new(co, ht, wt_, k, s, p).unwrap(),
        };
        assert_eq!((plan.geom.ho, plan.geom.wo), (h, w));
        let dy = rand(y.dims(), 13);
        let grads = (&y * &dy).unwrap().sum_all().unwrap().backward().unwrap();
        let (xv, wv, dyv) = (flat(&x), flat(&wt), flat(&dy));

        let ycol = run(plan.input_grad_gemm(), &xv, &wv, plan.rows() * plan.cols());
        assert_close(&plan.col2im(&ycol), &flat(&y), "forward");

        let dycol = plan.im2col(&dyv);
        let dx = run(plan.forward_gemm(), &dycol, &wv, plan.output_len());
        assert_close(&dx, &flat(grads.get(&x).unwrap()), "dx");

        let xc = plan.channels_first(&xv);
        let dw = run(plan.weight_grad_gemm(), &dycol, &xc, plan.weight_len());
        assert_close(&dw, &flat(grads.get(&wt).unwrap()), "dw");
    }

    /// The three passes over chunks of the batch (as the CUDA conv runs them when the im2col
    /// matrix would be large) give what the whole batch gives.
    #[test]
    fn batched_conv_in_chunks_matches_the_whole_batch() {
        let (n, c, co, h, w, k, s, p) = (5, 3, 4, 6, 7, 3, 1, 1);
        let plan = BatchedConv {
            n,
            c_out: co,
            geom: ConvGeom::new(c, h, w, k, s, p).unwrap(),
        };
        let (img, out) = (plan.geom.image_len(), plan.output_image_len());
        let (x, wt) = (rand(&[n, c, h, w], 21), rand(&[co, c, k, k], 22));
        let dy = rand(&[n, co, plan.geom.ho, plan.geom.wo], 23);
        let (xv, wv, dyv) = (flat(&x), flat(&wt), flat(&dy));
        let whole_y = run(
            plan.forward_gemm(),
            &plan.im2col(&xv),
            &wv,
            plan.output_len(),
        );
        let whole_dx = plan.col2im(&run(
            plan.input_grad_gemm(),
            &dyv,
            &wv,
            plan.rows() * plan.cols(),
        ));
        let whole_dw = run(
            plan.weight_grad_gemm(),
            &plan.im2col(&xv),
            &plan.channels_first(&dyv),
            plan.weight_len(),
        );
        // Two images per chunk: chunks of 2, 2 and 1.
        let per = plan.images_per_chunk(2 * plan.rows() * plan.positions() + 1);
        assert_eq!(per, 2);
        assert_eq!(plan.images_per_chunk(0), 1);
        assert_eq!(plan.images_per_chunk(usize::MAX), n);
        let (mut y, mut dx, mut dw) = (Vec::new(), Vec::new(), vec![0f32; plan.weight_len()]);
        for n0 in (0..n).step_by(per) {
            let chunk = plan.with_batch(per.min(n - n0));
            let xs = &xv[n0 * img..(n0 + chunk.n) * img];
            let dys = &dyv[n0 * out..(n0 + chunk.n) * out];
            let col = chunk.im2col(xs);
            y.extend(run(chunk.forward_gemm(), &col, &wv, chunk.output_len()));
            let dcol = run(chunk.input_grad_gemm(), dys, &wv, col.len());
            dx.extend(chunk.col2im(&dcol));
            let beta = if n0 == 0 { 0.0 } else { 1.0 };
            chunk
                .weight_grad_gemm()
                .reference(&col, &chunk.channels_first(dys), &mut dw, beta);
        }
        assert_close(&y, &whole_y, "forward");
        assert_close(&dx, &whole_dx, "dx");
        assert_close(&dw, &whole_dw, "dw");
    }

    /// The CUDA conv with a bias fills the output with it (`conv_bias_fill`) and runs the
    /// forward products with β = 1, chunk by chunk: conv + bias, for the 1×1 conv that reads
    /// its input directly and for an im2col one in chunks of 2, 2 and 1 images.
    #[test]
    fn forward_products_over_a_bias_filled_output_add_the_conv_to_it() {
        for (n, c, co, h, w, k, s, p) in [(2, 3, 4, 5, 5, 1, 1, 0), (5, 2, 3, 6, 5, 3, 1, 1)] {
            let plan = BatchedConv {
                n,
                c_out: co,
                geom: ConvGeom::new(c, h, w, k, s, p).unwrap(),
            };
            let (x, wt, b) = (
                rand(&[n, c, h, w], 31),
                rand(&[co, c, k, k], 32),
                rand(&[co], 33),
            );
            let want = x
                .conv2d(&wt, p, s, 1, 1)
                .unwrap()
                .broadcast_add(&b.reshape((1, co, 1, 1)).unwrap())
                .unwrap();
            let (xv, wv, bv) = (flat(&x), flat(&wt), flat(&b));
            // As conv_bias_fill: y[n, c, p] = b[c].
            let positions = plan.positions();
            let mut y: Vec<f32> = (0..plan.output_len())
                .map(|i| bv[(i / positions) % co])
                .collect();
            if plan.reads_input_directly() {
                plan.forward_gemm().reference(&xv, &wv, &mut y, 1.0);
            } else {
                let (img, out) = (plan.geom.image_len(), plan.output_image_len());
                let per = plan.images_per_chunk(2 * plan.rows() * positions + 1);
                for n0 in (0..n).step_by(per) {
                    let chunk = plan.with_batch(per.min(n - n0));
                    let col = chunk.im2col(&xv[n0 * img..(n0 + chunk.n) * img]);
                    let part = &mut y[n0 * out..(n0 + chunk.n) * out];
                    chunk.forward_gemm().reference(&col, &wv, part, 1.0);
                }
            }
            assert_close(&y, &flat(&want), &format!("{k}×{k} conv + bias"));
        }
    }

    #[test]
    fn gemm_extents_cover_exactly_the_last_element() {
        let g = Gemm {
            trans_a: true,
            trans_b: false,
            m: 2,
            n: 3,
            k: 4,
            lda: 5,
            ldb: 4,
            ldc: 2,
            stride_a: 0,
            stride_b: 12,
            stride_c: 6,
            batch: 2,
        };
        // A is k×m stored: last element (row 3, col 1) at 3 + 1·5.
        assert_eq!(g.extent_a(), 9);
        assert_eq!(g.extent_b(), 12 + 2 * 4 + 4);
        assert_eq!(g.extent_c(), 6 + 2 * 2 + 2);
        assert_eq!(Gemm { batch: 0, ..g }.extent_c(), 0);
    }
}
