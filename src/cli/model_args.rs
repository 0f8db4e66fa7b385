//! Model flags shared by `train`, `forward` and the lab (`--unet --dim --dim-mults --channels
//! --block --convnext-mult --resnet-groups --init-conv --full-attn --attn-heads --attn-dim-head
//! --self-condition --learned-variance`).

use clap::Args;

use crate::model::{Arch, BlockKind, UnetConfig};

/// UNet hyper-parameters on the command line (defaults: the blog's model).
#[derive(Debug, Clone, Args, Default)]
pub struct ModelArgs {
    /// Which UNet: blog (the post's first one), current (today's post: 1×1 init conv and 4
    /// groups unless --init-conv/--resnet-groups) or lucidrains (denoising-diffusion-pytorch's
    /// Unet as released: RMSNorm, attention memory, a 7×7 init conv)
    #[arg(long)]
    pub unet: Option<Arch>,
    /// Base width of the UNet [default: 28]
    #[arg(long)]
    pub dim: Option<usize>,
    /// Width after the init conv (`init_dim`) [default: dim / 3 · 2 for the blog's UNet, dim for
    /// the others]
    #[arg(long)]
    pub init_dim: Option<usize>,
    /// Width multipliers of the stages, comma-separated [default: 1,2,4]
    // Set, not clap's default Append for a list: given twice, it is an error like any other
    // flag, not the two lists joined.
    #[arg(long, value_delimiter = ',', action = clap::ArgAction::Set)]
    pub dim_mults: Option<Vec<usize>>,
    /// Image channels [default: from the data, else 1]
    #[arg(long)]
    pub channels: Option<usize>,
    /// Residual block type: convnext or resnet [default: convnext]
    #[arg(long)]
    pub block: Option<BlockKind>,
    /// Width multiplier inside ConvNeXt blocks [default: 2]
    #[arg(long)]
    pub convnext_mult: Option<usize>,
    /// GroupNorm groups of ResNet blocks [default: 8, or 4 when 8 does not divide the widths]
    #[arg(long)]
    pub resnet_groups: Option<usize>,
    /// Attention only in the middle of the UNet, not in every stage (cheaper; not the blog's)
    #[arg(long)]
    pub mid_attention_only: bool,
    /// Kernel of the init conv (7: the first blog and lucidrains' Unet; 1: today's blog)
    #[arg(long)]
    pub init_conv: Option<usize>,
    /// Per stage, full attention instead of linear, comma-separated (`--unet lucidrains`'s
    /// `full_attn`, e.g. false,false,true; one value for every stage) [default: the last stage
    /// only]
    #[arg(long, value_delimiter = ',', action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub full_attn: Option<Vec<bool>>,
    /// Per stage, the heads of the attention, comma-separated (`--unet lucidrains`'s
    /// `attn_heads`; one value for every stage; the middle takes the last) [default: 4]
    #[arg(long, value_delimiter = ',', action = clap::ArgAction::Set)]
    pub attn_heads: Option<Vec<usize>>,
    /// Per stage, the width of each attention head, comma-separated (`--unet lucidrains`'s
    /// `attn_dim_head`; one value for every stage) [default: 32]
    #[arg(long, value_delimiter = ',', action = clap::ArgAction::Set)]
    pub attn_dim_head: Option<Vec<usize>>,
    /// Self-conditioning: the UNet also sees its previous x̂0 (trained on half the steps; the
    /// quick preset has it)
    #[arg(long, overrides_with = "no_self_condition")]
    pub self_condition: bool,
    /// Without self-conditioning (for the quick preset, which has it)
    #[arg(long, overrides_with = "self_condition")]
    pub no_self_condition: bool,
    /// Twice the output channels for a learned variance (`forward` only: training, sampling
    /// and `import` refuse it)
    #[arg(long)]
    pub learned_variance: bool,
}

impl ModelArgs {
    /// Whether any model flag was given.
    pub fn any(&self) -> bool {
        self.dim.is_some()
            || self.dim_mults.is_some()
            || self.channels.is_some()
            || self.block.is_some()
            || self.convnext_mult.is_some()
            || self.resnet_groups.is_some()
            || self.mid_attention_only
            || self.unet.is_some()
            || self.init_conv.is_some()
            || self.full_attn.is_some()
            || self.attn_heads.is_some()
            || self.attn_dim_head.is_some()
            || self.init_dim.is_some()
            || self.self_condition
            || self.no_self_condition
            || self.learned_variance
    }

    /// The UNet these flags make of `base`; refuses flags the UNet they make has no use for
    /// (see [`Self::check_against`]).
    pub fn apply(&self, base: &UnetConfig) -> anyhow::Result<UnetConfig> {
        let mut c = base.clone();
        let switched = self.unet.is_some_and(|a| a != base.arch);
        if let Some(a) = self.unet {
            c.arch = a;
            if switched {
                // The other UNet's own defaults (init width, init kernel, groups, attention in
                // every stage: a preset's `stage_attention: false` is the blog UNet's lever).
                let other = UnetConfig::of_arch(a);
                c.init_dim = other.init_dim;
                c.full_attn = other.full_attn;
                c.attn_heads = other.attn_heads;
                c.attn_dim_head = other.attn_dim_head;
                c.init_conv_kernel = other.init_conv_kernel;
                c.block = other.block;
                c.resnet_block_groups = other.resnet_block_groups;
                c.stage_attention = other.stage_attention;
            }
        }
        if let Some(k) = self.init_conv {
            c.init_conv_kernel = Some(k);
        }
        if let Some(f) = &self.full_attn {
            c.full_attn = Some(f.clone());
        }
        if let Some(h) = &self.attn_heads {
            c.attn_heads = Some(h.clone());
        }
        if let Some(d) = &self.attn_dim_head {
            c.attn_dim_head = Some(d.clone());
        }
        if let Some(d) = self.init_dim {
            c.init_dim = Some(d);
        }
        if self.self_condition {
            c.self_condition = true;
        }
        if self.no_self_condition {
            c.self_condition = false;
        }
        if self.learned_variance {
            c.learned_variance = true;
        }
        if let Some(d) = self.dim {
            c.dim = d;
        }
        if let Some(m) = &self.dim_mults {
            c.dim_mults = m.clone();
        }
        if let Some(ch) = self.channels {
            c.channels = ch;
        }
        if let Some(b) = self.block {
            c.block = b;
        }
        if let Some(m) = self.convnext_mult {
            c.convnext_mult = m;
        }
        if self.mid_attention_only {
            c.stage_attention = false;
        }
        match self.resnet_groups {
            Some(g) => c.resnet_block_groups = g,
            None if c.block == BlockKind::Resnet => {
                // The blog's 8 groups do not divide dim = 28; pick the largest of 8, 4, 2, 1 that
                // fits (starting from the current UNet's 4 on that one).
                let start = c.resnet_block_groups.min(8);
                for g in [8, 4, 2, 1].into_iter().filter(|&g| g <= start) {
                    c.resnet_block_groups = g;
                    if c.validate().is_ok() {
                        break;
                    }
                }
            }
            None => {}
        }
        self.check_against(&c)?;
        Ok(c)
    }

    /// Refuses flags that `cfg` (these flags applied) has no use for: the blog UNet's block
    /// kinds and GroupNorm groups, and an init conv other than 7×7, given to lucidrains' UNet,
    /// whose weights the package could then not load (it would train and say nothing).
    fn check_against(&self, cfg: &UnetConfig) -> anyhow::Result<()> {
        if cfg.arch != Arch::Lucidrains {
            return Ok(());
        }
        let why = "the lucidrains UNet has ResNet blocks with RMSNorm";
        if let Some(b) = self.block.filter(|&b| b != BlockKind::Resnet) {
            anyhow::bail!("--block {b} is not the lucidrains UNet's ({why})");
        }
        if self.convnext_mult.is_some() {
            anyhow::bail!("--convnext-mult is not the lucidrains UNet's ({why})");
        }
        if self.resnet_groups.is_some() {
            anyhow::bail!("--resnet-groups is not the lucidrains UNet's ({why}, no GroupNorm)");
        }
        if let Some(k) = self.init_conv.filter(|&k| k != 7) {
            anyhow::bail!(
                "--init-conv {k} is not the lucidrains UNet's (the package's init conv is 7×7)"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unet_current_takes_the_seeds_defaults_and_back() {
        let cur = ModelArgs {
            unet: Some(Arch::Current),
            ..ModelArgs::default()
        };
        assert!(cur.any());
        assert_eq!(
            cur.apply(&UnetConfig::blog()).unwrap(),
            UnetConfig::current()
        );
        let lucidrains = ModelArgs {
            dim: Some(32),
            init_conv: Some(7),
            resnet_groups: Some(8),
            self_condition: true,
            ..cur.clone()
        }
        .apply(&UnetConfig::blog())
        .unwrap();
        assert_eq!(
            (lucidrains.init_kernel(), lucidrains.resnet_block_groups),
            (7, 8)
        );
        assert!(lucidrains.self_condition && lucidrains.validate().is_ok());
        let blog = ModelArgs {
            unet: Some(Arch::Blog),
            ..ModelArgs::default()
        };
        assert_eq!(
            blog.apply(&UnetConfig::current()).unwrap(),
            UnetConfig::blog()
        );
        // A width 4 groups do not divide falls back to the largest that does.
        let odd = ModelArgs {
            dim: Some(6),
            ..cur
        }
        .apply(&UnetConfig::blog())
        .unwrap();
        assert_eq!(odd.resnet_block_groups, 2);
    }

    #[test]
    fn unet_lucidrains_takes_the_packages_defaults_and_full_attn_per_stage() {
        use clap::Parser;
        #[derive(Debug, Parser)]
        struct Cli {
            #[command(flatten)]
            model: ModelArgs,
        }
        let l = Cli::parse_from(["x", "--unet", "lucidrains"]).model;
        assert_eq!(
            l.apply(&UnetConfig::blog()).unwrap(),
            UnetConfig::lucidrains()
        );
        let c = Cli::parse_from(["x", "--unet", "lucidrains", "--full-attn", "true,false,1"])
            .model
            .apply(&UnetConfig::current())
            .unwrap();
        assert_eq!(c.full_attention(), vec![true, false, true]);
        assert_eq!((c.arch, c.init_kernel()), (Arch::Lucidrains, 7));
        // Back to another UNet, the package's attention pattern goes with it.
        let blog = ModelArgs {
            unet: Some(Arch::Blog),
            ..ModelArgs::default()
        }
        .apply(&c)
        .unwrap();
        assert_eq!(blog.full_attn, None);
        // One value stands for every stage (the package's `cast_tuple`); --init-dim sets it.
        let one = Cli::parse_from([
            "x",
            "--unet",
            "lucidrains",
            "--full-attn",
            "true",
            "--init-dim",
            "24",
        ])
        .model
        .apply(&UnetConfig::blog())
        .unwrap();
        assert_eq!(one.full_attention(), vec![true, true, true]);
        assert_eq!(one.init_dim(), 24);
        assert!(one.validate().is_ok(), "{:?}", one.validate());
        assert!(Cli::try_parse_from(["x", "--full-attn", "maybe"]).is_err());
        // Heads per stage, or one value for all; the middle attention has the last stage's.
        let heads = Cli::parse_from([
            "x",
            "--unet",
            "lucidrains",
            "--attn-heads",
            "2,4,8",
            "--attn-dim-head",
            "16",
        ])
        .model
        .apply(&UnetConfig::blog())
        .unwrap();
        let h: Vec<_> = heads
            .attention_heads()
            .iter()
            .map(|h| (h.heads, h.dim_head))
            .collect();
        assert_eq!(h, vec![(2, 16), (4, 16), (8, 16)]);
        assert!(heads.validate().is_ok(), "{:?}", heads.validate());
        let defaults = UnetConfig::lucidrains().attention_heads();
        assert!(defaults.iter().all(|h| (h.heads, h.dim_head) == (4, 32)));
        // Given to another UNet, or one per stage short, they are refused.
        let blog = ModelArgs {
            attn_heads: Some(vec![2]),
            ..ModelArgs::default()
        }
        .apply(&UnetConfig::blog())
        .unwrap();
        let err = blog.validate().unwrap_err().to_string();
        assert!(err.contains("attn_heads is the lucidrains UNet's"), "{err}");
        let short = ModelArgs {
            attn_dim_head: Some(vec![16, 16]),
            ..ModelArgs::default()
        }
        .apply(&UnetConfig::lucidrains())
        .unwrap();
        let err = short.validate().unwrap_err().to_string();
        assert!(
            err.contains("attn_dim_head must have one entry per stage (3)"),
            "{err}"
        );
        let zero = ModelArgs {
            attn_heads: Some(vec![0]),
            ..ModelArgs::default()
        }
        .apply(&UnetConfig::lucidrains())
        .unwrap();
        let err = zero.validate().unwrap_err().to_string();
        assert!(err.contains("between 1 and 256, got 0"), "{err}");
        // The blog UNet's levers, given to lucidrains', are refused, each by name.
        let lucidrains = || ModelArgs {
            unet: Some(Arch::Lucidrains),
            ..ModelArgs::default()
        };
        for (args, says) in [
            (
                ModelArgs {
                    block: Some(BlockKind::Convnext),
                    ..lucidrains()
                },
                "--block convnext is not the lucidrains UNet's",
            ),
            (
                ModelArgs {
                    convnext_mult: Some(3),
                    ..lucidrains()
                },
                "--convnext-mult",
            ),
            (
                ModelArgs {
                    resnet_groups: Some(2),
                    ..lucidrains()
                },
                "--resnet-groups",
            ),
            (
                ModelArgs {
                    init_conv: Some(3),
                    ..lucidrains()
                },
                "--init-conv 3 is not the lucidrains UNet's (the package's init conv is 7×7)",
            ),
        ] {
            let err = args.apply(&UnetConfig::blog()).unwrap_err();
            assert!(err.to_string().contains(says), "{err}");
            // The same flags for the blog's UNet are its own.
            let blog = ModelArgs {
                unet: Some(Arch::Blog),
                ..args
            };
            blog.apply(&UnetConfig::blog()).unwrap();
        }
        let seven = ModelArgs {
            init_conv: Some(7),
            block: Some(BlockKind::Resnet),
            ..lucidrains()
        };
        seven.apply(&UnetConfig::blog()).unwrap();
    }

    #[test]
    fn self_conditioning_can_be_turned_off_and_the_last_flag_wins() {
        use clap::Parser;
        #[derive(Debug, Parser)]
        struct Cli {
            #[command(flatten)]
            model: ModelArgs,
        }
        let quick = crate::presets::Preset::Quick.unet();
        assert!(quick.self_condition, "the quick preset self-conditions");
        let off = Cli::parse_from(["x", "--no-self-condition"]).model;
        assert!(off.any());
        assert!(!off.apply(&quick).unwrap().self_condition);
        let on_again = Cli::parse_from(["x", "--no-self-condition", "--self-condition"]).model;
        assert!(on_again.apply(&UnetConfig::blog()).unwrap().self_condition);
        let off_again = Cli::parse_from(["x", "--self-condition", "--no-self-condition"]).model;
        assert!(!off_again.apply(&quick).unwrap().self_condition);
    }

    #[test]
    fn unet_current_over_the_quick_preset_is_a_valid_current_unet_of_its_width() {
        let quick = crate::presets::Preset::Quick.unet();
        assert!(
            !quick.stage_attention,
            "the preset keeps attention to the middle"
        );
        let c = ModelArgs {
            unet: Some(Arch::Current),
            ..ModelArgs::default()
        }
        .apply(&quick)
        .unwrap();
        assert_eq!(
            (c.arch, c.dim, c.dim_mults.clone()),
            (Arch::Current, 16, vec![1, 2, 4])
        );
        assert!(
            c.stage_attention,
            "the current UNet has attention in every stage"
        );
        assert!(c.validate().is_ok(), "{:?}", c.validate());
    }
}
