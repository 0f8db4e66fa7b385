//! SiLU (`x·σ(x)`, PyTorch's `nn.SiLU()` / `F.silu`) in one vectorised pass, with a fused
//! backward `dy · σ(x)·(1 + x·(1 − σ(x)))`; candle's stock op calls the scalar `expf` per element
//! and builds its backward from several element-wise ops.

use candle_core::{Result, Tensor};

use super::elementwise::ElementwiseOp;
use super::simd::{silu_bwd, silu_fwd};

/// The custom op: `silu(x)` for any shape.
pub const SILU: ElementwiseOp = ElementwiseOp::new("ddpm-silu", silu_fwd, silu_bwd);

/// `silu(x)` through [`SILU`]. CPU `f32` only.
pub fn silu(x: &Tensor) -> Result<Tensor> {
    SILU.apply(x)
}
