//! Model-level tests in one binary: parity with the PyTorch fixtures, training, sampling, the
//! schedule tables, the ResNet variant and sample quality (eval).

#[path = "../common/mod.rs"]
mod common;

mod current_unet;
mod eval;
mod lucidrains_unet;
mod parity;
mod reliability_props;
mod resnet_variant;
mod sampling;
mod schedules;
mod self_conditioning;
mod training;
