//! The UNet's hyper-parameters, named as in the blog's `Unet(...)` constructor, and their
//! validation.

use serde::{Deserialize, Serialize};

/// Which residual block the UNet is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BlockKind {
    /// `ConvNextBlock(dim, dim_out, time_emb_dim, mult)` (the blog's default).
    #[default]
    Convnext,
    /// `ResnetBlock(dim, dim_out, time_emb_dim, groups)`.
    Resnet,
}

impl std::str::FromStr for BlockKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "convnext" => Ok(BlockKind::Convnext),
            "resnet" => Ok(BlockKind::Resnet),
            other => Err(format!(
                "unknown block '{other}' (expected convnext or resnet)"
            )),
        }
    }
}

/// Which UNet: the blog's first version (seeds 000/004), today's blog (seed 001, the notebook,
/// and seed 002's constructor), or lucidrains' `denoising-diffusion-pytorch` as released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// The first version: one ConvNeXt or ResNet block kind, strided 4×4 down convs, transposed
    /// 4×4 up convs, `init_dim = dim / 3 * 2`, a 7×7 init conv.
    #[default]
    Blog,
    /// Today's: weight-standardised ResNet blocks with scale-shift time conditioning, two
    /// blocks and two skips per stage, pixel-unshuffle downsampling, nearest upsampling,
    /// `init_dim = dim`, a final ResNet block on `cat(x, init)`.
    Current,
    /// lucidrains' released `Unet` (denoising-diffusion-pytorch 2.x): today's wiring with
    /// RMSNorm, plain convs, attention with memory key/values and its own input norm, full
    /// attention in the lowest stage, a 7×7 init conv.
    Lucidrains,
}

impl Arch {
    /// Every UNet, in the order help texts list them.
    pub const ALL: [Arch; 3] = [Arch::Blog, Arch::Current, Arch::Lucidrains];
}

impl std::str::FromStr for Arch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "blog" => Ok(Arch::Blog),
            "current" => Ok(Arch::Current),
            "lucidrains" => Ok(Arch::Lucidrains),
            other => Err(format!(
                "unknown UNet '{other}' (expected blog, current or lucidrains)"
            )),
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Arch::Blog => "blog",
            Arch::Current => "current",
            Arch::Lucidrains => "lucidrains",
        })
    }
}

impl std::fmt::Display for BlockKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BlockKind::Convnext => "convnext",
            BlockKind::Resnet => "resnet",
        })
    }
}

/// `Unet(dim, init_dim, out_dim, dim_mults, channels, with_time_emb, resnet_block_groups,
/// use_convnext, convnext_mult)` of the blog, or (with `arch: current`) `Unet(dim, init_dim,
/// out_dim, dim_mults, channels, self_condition, resnet_block_groups, learned_variance)` of
/// today's blog and `denoising-diffusion-pytorch`. Fields added after the first version default
/// so that older run configs load as the blog's model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UnetConfig {
    /// Which UNet (absent in old configs: the blog's first one).
    pub arch: Arch,
    /// Base width `dim` (also the time-embedding width).
    pub dim: usize,
    /// Width after `init_conv`; `None` means `dim / 3 * 2` (blog) or `dim` (current).
    pub init_dim: Option<usize>,
    /// Output channels; `None` means `channels` (twice that with `learned_variance`).
    pub out_dim: Option<usize>,
    /// Width multipliers of the stages.
    pub dim_mults: Vec<usize>,
    /// Image channels (1 for Fashion-MNIST, 3 for CIFAR-10).
    pub channels: usize,
    /// Whether the blocks are conditioned on the timestep.
    pub with_time_emb: bool,
    /// GroupNorm groups of the ResNet blocks (`current`: 4 in seed 001, 8 in seed 002).
    pub resnet_block_groups: usize,
    /// ConvNeXt or ResNet blocks (`use_convnext`; the blog arch only).
    pub block: BlockKind,
    /// Width multiplier inside ConvNeXt blocks.
    pub convnext_mult: usize,
    /// Kernel of `init_conv`; `None` means 7 (blog, seed 002) or 1 (current, seed 001).
    pub init_conv_kernel: Option<usize>,
    /// `self_condition`: the input is `cat(x_self_cond or zeros, x)`, twice the channels.
    pub self_condition: bool,
    /// `learned_variance`: twice the output channels (the second half interpolates the
    /// variance, as in improved DDPM); training and sampling here use the first half only.
    pub learned_variance: bool,
    /// Linear attention in every down and up stage (the blog's model); `false` keeps attention
    /// to the middle (lowest resolution) only, which is cheaper at 28×28. Parameter names are
    /// unchanged; the stages' `.2` attention entries are simply absent.
    pub stage_attention: bool,
    /// `full_attn` of the `lucidrains` UNet: per stage, full attention instead of linear;
    /// `None` is the package's default, full attention in the last (lowest) stage only.
    pub full_attn: Option<Vec<bool>>,
    /// `attn_heads` of the `lucidrains` UNet: per stage (or one for all), the heads of its
    /// attention; the middle attention takes the last stage's. `None`: 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attn_heads: Option<Vec<usize>>,
    /// `attn_dim_head` of the `lucidrains` UNet: per stage (or one for all), the width of each
    /// head. `None`: 32.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attn_dim_head: Option<Vec<usize>>,
}

impl Default for UnetConfig {
    /// The blog's `Unet(dim=28, channels=1, dim_mults=(1, 2, 4))`.
    fn default() -> Self {
        Self {
            arch: Arch::Blog,
            dim: 28,
            init_dim: None,
            out_dim: None,
            dim_mults: vec![1, 2, 4],
            channels: 1,
            with_time_emb: true,
            resnet_block_groups: 8,
            block: BlockKind::Convnext,
            convnext_mult: 2,
            init_conv_kernel: None,
            self_condition: false,
            learned_variance: false,
            stage_attention: true,
            full_attn: None,
            attn_heads: None,
            attn_dim_head: None,
        }
    }
}

/// Largest base width `dim`: 8× the 128 of Ho et al.'s CIFAR-10 UNet; at 1024 the blog's
/// three stages already hold about 4 G parameters (16 GB of weights).
pub const MAX_DIM: usize = 1024;
/// Most stages (`dim_mults` entries): 7 halvings take a 1024-pixel image down to 8 pixels.
pub const MAX_STAGES: usize = 8;
/// Largest `attn_heads` and `attn_dim_head` entry (the package's defaults are 4 and 32).
pub const MAX_ATTN_HEADS_OR_WIDTH: usize = 256;
/// Largest entry of `dim_mults` and largest `convnext_mult` (published UNets use up to 8).
pub const MAX_MULT: usize = 64;
/// Largest `channels` and `out_dim`: images have 1 or 3 channels (an output may double them,
/// for a learned variance); 64 leaves room without letting a typo size a layer.
pub const MAX_CHANNELS: usize = 64;

/// A configuration that cannot build a working UNet.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    /// Some value is out of range; the message says which.
    #[error("invalid model config: {0}")]
    Invalid(String),
}

impl UnetConfig {
    /// The blog's configuration for 28×28 grey images.
    pub fn blog() -> Self {
        Self::default()
    }

    /// A small, fast configuration for tests and quick CPU runs.
    pub fn tiny() -> Self {
        Self {
            dim: 8,
            dim_mults: vec![1, 2],
            resnet_block_groups: 2,
            ..Self::default()
        }
    }

    /// Seed 001's `Unet(dim=28, channels=1, dim_mults=(1, 2, 4))` (today's blog: 1×1 init
    /// conv, 4 groups).
    pub fn current() -> Self {
        Self {
            arch: Arch::Current,
            resnet_block_groups: 4,
            block: BlockKind::Resnet,
            ..Self::default()
        }
    }

    /// lucidrains' `Unet(dim=28, channels=1, dim_mults=(1, 2, 4))` as released.
    pub fn lucidrains() -> Self {
        Self {
            arch: Arch::Lucidrains,
            block: BlockKind::Resnet,
            ..Self::default()
        }
    }

    /// The configuration of `arch` with its own defaults (widths, kernel, norms) otherwise the
    /// blog's.
    pub fn of_arch(arch: Arch) -> Self {
        match arch {
            Arch::Blog => Self::blog(),
            Arch::Current => Self::current(),
            Arch::Lucidrains => Self::lucidrains(),
        }
    }

    /// `init_dim` resolved.
    pub fn init_dim(&self) -> usize {
        self.init_dim.unwrap_or(match self.arch {
            Arch::Blog => self.dim / 3 * 2,
            Arch::Current | Arch::Lucidrains => self.dim,
        })
    }

    /// Per stage, whether the `lucidrains` UNet's attention there is full (`full_attn`
    /// resolved: the last stage's only by default).
    pub fn full_attention(&self) -> Vec<bool> {
        let n = self.dim_mults.len();
        match &self.full_attn {
            // One value for every stage, as the package's `cast_tuple(full_attn, stages)`.
            Some(f) if f.len() == 1 => vec![f[0]; n],
            Some(f) => f.clone(),
            None => (0..n).map(|i| i + 1 == n).collect(),
        }
    }

    /// Per stage, the heads of the `lucidrains` UNet's attention (`attn_heads` and
    /// `attn_dim_head` resolved, one value for all stages as the package's `cast_tuple`); the
    /// middle attention has the last stage's.
    pub fn attention_heads(&self) -> Vec<super::lucidrains::Heads> {
        let n = self.dim_mults.len();
        let per_stage = |v: &Option<Vec<usize>>, default: usize, i: usize| match v {
            Some(v) if v.len() == 1 => v[0],
            Some(v) => v.get(i).copied().unwrap_or(default),
            None => default,
        };
        (0..n)
            .map(|i| super::lucidrains::Heads {
                heads: per_stage(&self.attn_heads, super::attention::HEADS, i),
                dim_head: per_stage(&self.attn_dim_head, super::attention::DIM_HEAD, i),
            })
            .collect()
    }

    /// `out_dim` resolved.
    pub fn out_dim(&self) -> usize {
        self.out_dim
            .unwrap_or(self.channels * if self.learned_variance { 2 } else { 1 })
    }

    /// Channels `init_conv` reads: `channels`, twice that with `self_condition`.
    pub fn input_channels(&self) -> usize {
        self.channels * if self.self_condition { 2 } else { 1 }
    }

    /// Kernel of `init_conv` resolved (padding is `kernel / 2`).
    pub fn init_kernel(&self) -> usize {
        self.init_conv_kernel.unwrap_or(match self.arch {
            Arch::Blog | Arch::Lucidrains => 7,
            Arch::Current => 1,
        })
    }

    /// Width of the time embedding (`4 · dim`), or `None` without time conditioning.
    pub fn time_dim(&self) -> Option<usize> {
        self.with_time_emb.then_some(self.dim * 4)
    }

    /// `[init_dim, dim·m for m in dim_mults]`.
    pub fn dims(&self) -> Vec<usize> {
        let mut d = vec![self.init_dim()];
        d.extend(self.dim_mults.iter().map(|m| self.dim * m));
        d
    }

    /// Consecutive pairs of [`Self::dims`].
    pub fn in_out(&self) -> Vec<(usize, usize)> {
        let d = self.dims();
        d.windows(2).map(|w| (w[0], w[1])).collect()
    }

    /// How many times the image is halved on the way down.
    pub fn downsamplings(&self) -> usize {
        self.dim_mults.len().saturating_sub(1)
    }

    /// Checks the configuration on its own (widths, groups).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        // The sinusoidal embedding has dim/2 frequencies and divides by dim/2 − 1: one rule,
        // said whole, so that a second try is not refused for the other half of it.
        if self.dim < 4 || !self.dim.is_multiple_of(2) {
            return bad(format!(
                "dim must be an even number ≥ 4 (the sinusoidal embedding has dim/2 frequencies and divides by dim/2 − 1), got {}",
                self.dim
            ));
        }
        if self.dim > MAX_DIM {
            return bad(format!("dim must be at most {MAX_DIM}, got {}", self.dim));
        }
        if self.dim_mults.is_empty() || self.dim_mults.contains(&0) {
            return bad(format!(
                "dim_mults must be a non-empty list of positive integers, got {:?}",
                self.dim_mults
            ));
        }
        if self.dim_mults.len() > MAX_STAGES || self.dim_mults.iter().any(|&m| m > MAX_MULT) {
            return bad(format!(
                "dim_mults must have at most {MAX_STAGES} entries of at most {MAX_MULT}, got {:?}",
                self.dim_mults
            ));
        }
        if self.convnext_mult > MAX_MULT {
            return bad(format!(
                "convnext_mult must be at most {MAX_MULT}, got {}",
                self.convnext_mult
            ));
        }
        if self.channels == 0 {
            return bad("channels must be at least 1".into());
        }
        if self.channels > MAX_CHANNELS || self.out_dim() > MAX_CHANNELS {
            return bad(format!(
                "channels and out_dim must be at most {MAX_CHANNELS}, got {} and {}",
                self.channels,
                self.out_dim()
            ));
        }
        if self.init_dim() > MAX_DIM * MAX_MULT {
            return bad(format!(
                "init_dim must be at most {}, got {}",
                MAX_DIM * MAX_MULT,
                self.init_dim()
            ));
        }
        if self.init_dim() == 0 {
            return bad(format!(
                "init_dim resolves to 0 (dim {} is too small)",
                self.dim
            ));
        }
        if self.out_dim() == 0 {
            return bad("out_dim must be at least 1".into());
        }
        let k = self.init_kernel();
        if k == 0 || k.is_multiple_of(2) || k > 15 {
            return bad(format!(
                "init_conv_kernel must be odd and at most 15 (1 or 7 in the seeds), got {k}"
            ));
        }
        for (name, v) in [
            ("attn_heads", &self.attn_heads),
            ("attn_dim_head", &self.attn_dim_head),
        ] {
            let Some(v) = v else { continue };
            if self.arch != Arch::Lucidrains {
                return bad(format!("{name} is the lucidrains UNet's"));
            }
            if v.len() != self.dim_mults.len() && v.len() != 1 {
                return bad(format!(
                    "{name} must have one entry per stage ({}), or one for all, got {}",
                    self.dim_mults.len(),
                    v.len()
                ));
            }
            if let Some(bad_value) = v.iter().find(|&&x| x == 0 || x > MAX_ATTN_HEADS_OR_WIDTH) {
                return bad(format!(
                    "{name} entries must be between 1 and {MAX_ATTN_HEADS_OR_WIDTH}, got {bad_value}"
                ));
            }
        }
        if let Some(f) = &self.full_attn {
            if self.arch != Arch::Lucidrains {
                return bad("full_attn is the lucidrains UNet's".into());
            }
            if f.len() != self.dim_mults.len() && f.len() != 1 {
                return bad(format!(
                    "full_attn must have one entry per stage ({}), or one for all, got {}",
                    self.dim_mults.len(),
                    f.len()
                ));
            }
        }
        // Today's UNet and lucidrains' always embed the time and attend in every stage.
        if matches!(self.arch, Arch::Current | Arch::Lucidrains) {
            let arch = self.arch;
            if !self.with_time_emb {
                return bad(format!("the {arch} UNet always has a time embedding"));
            }
            if !self.stage_attention {
                return bad(format!(
                    "the {arch} UNet has attention in every stage (--mid-attention-only is the blog UNet's)"
                ));
            }
        }
        if self.arch == Arch::Lucidrains {
            // RMSNorm: no groups to check.
            return Ok(());
        }
        if self.arch == Arch::Current {
            let g = self.resnet_block_groups;
            if g == 0 {
                return bad("resnet_block_groups must be at least 1".into());
            }
            // GroupNorm(groups, C) runs on every width of `dims` and on `dim` (final block).
            let mut widths = self.dims();
            widths.push(self.dim);
            if let Some(w) = widths.into_iter().find(|w| w % g != 0) {
                return bad(format!(
                    "resnet_block_groups = {g} does not divide the block width {w} \
                     (GroupNorm({g}, {w}) is invalid)"
                ));
            }
            return Ok(());
        }
        match self.block {
            BlockKind::Convnext => {
                if self.convnext_mult == 0 {
                    return bad("convnext_mult must be at least 1".into());
                }
            }
            BlockKind::Resnet => {
                let g = self.resnet_block_groups;
                if g == 0 {
                    return bad("resnet_block_groups must be at least 1".into());
                }
                // GroupNorm(groups, C) runs on every block's output width.
                let mut widths: Vec<usize> = self.dims()[1..].to_vec();
                widths.push(self.dim);
                if let Some(w) = widths.iter().find(|&&w| w % g != 0) {
                    // The most groups up to `g` that divide every width: a divisor of their gcd.
                    let gcd = widths.iter().fold(0, |a, &b| {
                        let (mut a, mut b) = (a, b);
                        while b != 0 {
                            (a, b) = (b, a % b);
                        }
                        a
                    });
                    let fits = (1..=g.min(gcd)).rev().find(|d| gcd % d == 0).unwrap_or(1);
                    return bad(format!(
                        "resnet_block_groups = {g} does not divide the block width {w} \
                         (GroupNorm({g}, {w}) is invalid; {fits} groups divide every block width of this model)"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Checks that images of `channels × size × size` fit this configuration.
    pub fn validate_for_images(
        &self,
        channels: usize,
        height: usize,
        width: usize,
    ) -> Result<(), ConfigError> {
        self.validate()?;
        if channels != self.channels {
            return Err(ConfigError::Invalid(format!(
                "the data has {channels} channel(s) but the model expects {} (set --channels {channels})",
                self.channels
            )));
        }
        if height == 0 || width == 0 {
            return Err(ConfigError::Invalid(format!(
                "image size {height}×{width}: images need at least one pixel a side"
            )));
        }
        let f = 1usize << self.downsamplings();
        if !height.is_multiple_of(f) || !width.is_multiple_of(f) {
            return Err(ConfigError::Invalid(format!(
                "image size {height}×{width} must be divisible by 2^{} = {f} ({} downsamplings for dim_mults {:?})",
                self.downsamplings(),
                self.downsamplings(),
                self.dim_mults
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Groups that do not divide a ResNet block's width are refused with a count that does,
    /// for this model's widths.
    #[test]
    fn resnet_groups_that_do_not_divide_a_width_name_ones_that_do() {
        let c = UnetConfig {
            block: BlockKind::Resnet,
            resnet_block_groups: 3,
            dim: 8,
            dim_mults: vec![1, 2],
            ..UnetConfig::tiny()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("does not divide the block width"), "{e}");
        assert!(e.contains("2 groups divide every block width"), "{e}");
        let blog = UnetConfig {
            block: BlockKind::Resnet,
            resnet_block_groups: 8,
            ..UnetConfig::blog()
        };
        let e = blog.validate().unwrap_err().to_string();
        assert!(e.contains("7 groups divide every block width"), "{e}");
    }

    #[test]
    fn blog_dims() {
        let c = UnetConfig::blog();
        assert_eq!(c.init_dim(), 18);
        assert_eq!(c.dims(), vec![18, 28, 56, 112]);
        assert_eq!(c.in_out(), vec![(18, 28), (28, 56), (56, 112)]);
        assert_eq!(c.downsamplings(), 2);
        c.validate_for_images(1, 28, 28).unwrap();
    }

    #[test]
    fn rejects_bad_configs() {
        let mut c = UnetConfig::blog();
        assert!(c
            .validate_for_images(3, 28, 28)
            .unwrap_err()
            .to_string()
            .contains("channel"));
        assert!(c
            .validate_for_images(1, 30, 30)
            .unwrap_err()
            .to_string()
            .contains("divisible"));
        c.block = BlockKind::Resnet;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("GroupNorm(8, 28)"));
        c.resnet_block_groups = 4;
        c.validate().unwrap();
        c.dim = 7;
        assert!(c.validate().is_err());
        c = UnetConfig::blog();
        c.dim_mults = vec![];
        assert!(c.validate().is_err());
    }
}
