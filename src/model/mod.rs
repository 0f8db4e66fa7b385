//! The blog's UNets (its first one and today's, see [`config::Arch`]), layer by layer, with
//! PyTorch parameter names so `state_dict`s map one to one.

pub mod attention;
pub mod blocks;
pub mod config;
pub mod current;
pub mod embedding;
pub mod init;
pub mod layers;
pub mod lucidrains;
pub mod state_dict;
pub mod unet;

use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};

pub use config::{Arch, BlockKind, UnetConfig};
pub use embedding::timesteps_tensor;
pub use unet::Unet;

/// A freshly initialised, trainable UNet and the variables it owns.
pub fn new_trainable(
    config: &UnetConfig,
    seed: u64,
    device: &Device,
) -> anyhow::Result<(Unet, VarMap)> {
    config.validate()?;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
    let model = Unet::new(config, vb)?;
    init::pytorch_default_init(&varmap, seed)?;
    Ok((model, varmap))
}

/// Number of scalar parameters in `varmap`.
pub fn num_params(varmap: &VarMap) -> usize {
    varmap.all_vars().iter().map(|v| v.elem_count()).sum()
}

/// Loads a UNet for inference from a `safetensors` file with PyTorch names, as strictly as
/// PyTorch's `load_state_dict` (see [`state_dict::read_state_dict`]).
pub fn load_weights(path: &Path, config: &UnetConfig, device: &Device) -> anyhow::Result<Unet> {
    let state = state_dict::read_state_dict(path, config, device)?;
    state_dict::unet_from(state, config, device)
}

/// Copies the current values of trainable variables into a detached UNet (no autograd graph),
/// for sampling during training.
pub fn detached_copy(
    varmap: &VarMap,
    config: &UnetConfig,
    device: &Device,
) -> anyhow::Result<Unet> {
    let data = varmap.data().lock().expect("varmap lock poisoned");
    let tensors = data
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.as_tensor().detach().copy()?)))
        .collect::<candle_core::Result<_>>()?;
    drop(data);
    let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
    Ok(Unet::new(config, vb)?)
}
