//! Exact (erf-based) GELU, PyTorch's default `nn.GELU()`, with a one-pass fused backward
//! `dy · (Φ(x) + x·φ(x))` (candle's stock backward builds ten element-wise ops). `erf` is a
//! vectorised rational approximation (error ≈ 1e-7, like PyTorch's own vectorised GELU).

use candle_core::{Result, Tensor};

use super::elementwise::ElementwiseOp;
use super::simd::{gelu_bwd, gelu_fwd};

/// The custom op: `gelu_erf(x)` for any shape.
pub const GELU: ElementwiseOp = ElementwiseOp::new("ddpm-gelu-erf", gelu_fwd, gelu_bwd);

/// `gelu_erf(x)` through [`GELU`]. CPU `f32` only.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    GELU.apply(x)
}
