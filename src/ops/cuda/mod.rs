//! ddpm-lab's own CUDA kernels (the `.cu` files beside this module, compiled to PTX by
//! `build.rs` and loaded by candle's device on first use), each behind a custom op with its
//! backward, as the CPU kernels are: the dense conv and conv-transpose as im2col + cuBLAS
//! ([`conv`]), the depthwise conv of the blog UNet's ConvNeXt blocks ([`depthwise`]) and
//! GroupNorm ([`group_norm`]). `ddpm-lab check-device` compares the model's
//! gradients through them with the CPU's.

use std::sync::OnceLock;

use candle_core::cuda_backend::cudarc::driver::{CudaSlice, CudaView, LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::WrapErr;
use candle_core::{CudaDevice, CudaStorage, Layout, Result, Tensor};

/// The environment variable that picks which of these kernels run ([`KERNEL_NAMES`]): a
/// comma-separated list of the ones to run (`none`: none of them), or of `-name`s to leave out
/// of all of them (unset: all). The others fall back to candle's ops (an escape hatch, should a
/// kernel misbehave on some GPU: `check-device` tells).
pub const KERNELS_VAR: &str = "DDPM_LAB_CUDA_KERNELS";

/// Every kernel name that [`KERNELS_VAR`] lists.
pub const KERNEL_NAMES: &[&str] = &[
    "conv",
    "bias",
    "softmax",
    "linear_attention",
    "gelu",
    "depthwise",
    "depthwise_bias",
    "group_norm",
    "multi_tensor",
];

/// Kernels that run another's kernels too, each with the one it needs: the depthwise conv with a
/// bias per image and channel is the depthwise kernels with a bias, and the linear attention's
/// core runs the softmax kernels. Each is on only while the one it needs is, so that leaving
/// `depthwise` or `softmax` out (`-depthwise`, as `gpu-check.sh` does with a faulty kernel)
/// leaves all of that kernel's code out.
pub const KERNEL_NEEDS: &[(&str, &str)] = &[
    ("depthwise_bias", "depthwise"),
    ("linear_attention", "softmax"),
];

/// The kernels of [`KERNEL_NAMES`] switched on by [`KERNELS_VAR`].
pub fn enabled_kernels() -> Vec<&'static str> {
    KERNEL_NAMES
        .iter()
        .copied()
        .filter(|k| enabled(k))
        .collect()
}

/// What is wrong with this process's settings of the CUDA kernels ([`KERNELS_VAR`] and
/// [`crate::ops::implicit_conv::ALGO_VAR`]), if anything: a kernel name that is not one of
/// [`KERNEL_NAMES`], or an unknown conv algorithm. Checked when a CUDA device is opened, so a
/// typo is an error rather than a setting silently ignored.
pub fn settings_error() -> Option<String> {
    let kernels = std::env::var(KERNELS_VAR).ok();
    let algo = std::env::var(crate::ops::implicit_conv::ALGO_VAR).ok();
    settings_problem(kernels.as_deref(), algo.as_deref()).or_else(|| {
        use crate::ops::implicit_conv::ConvAlgo;
        let wants_cudnn = ConvAlgo::parse(algo.as_deref()) == Ok(ConvAlgo::Cudnn);
        (wants_cudnn && !cudnn::available()).then(|| {
            format!(
                "{}=cudnn: {}",
                crate::ops::implicit_conv::ALGO_VAR,
                cudnn::unavailable_message()
            )
        })
    })
}

/// [`settings_error`] for these values of the two variables (`None`: unset).
fn settings_problem(kernels: Option<&str>, algo: Option<&str>) -> Option<String> {
    if let Some(value) = kernels {
        let unknown: Vec<&str> = listed(value)
            .filter(|k| !k.eq_ignore_ascii_case("none"))
            .filter(|k| {
                let name = k.strip_prefix('-').unwrap_or(k);
                !KERNEL_NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
            })
            .collect();
        if !unknown.is_empty() {
            return Some(format!(
                "{KERNELS_VAR}={value}: unknown kernel {} (the kernels: none, {})",
                unknown.join(", "),
                KERNEL_NAMES.join(", ")
            ));
        }
    }
    crate::ops::implicit_conv::ConvAlgo::parse(algo).err()
}

/// Whether kernel `name` is switched on by [`KERNELS_VAR`] (read once per process), and the
/// kernel it needs ([`KERNEL_NEEDS`]) too.
pub fn enabled(name: &str) -> bool {
    static CHOSEN: OnceLock<Option<String>> = OnceLock::new();
    chosen(
        CHOSEN
            .get_or_init(|| std::env::var(KERNELS_VAR).ok())
            .as_deref(),
        name,
    )
}

/// Whether the value of [`KERNELS_VAR`] (`None`: unset) switches kernel `name` on, with the
/// kernel it needs.
fn chosen(value: Option<&str>, name: &str) -> bool {
    let needed = KERNEL_NEEDS
        .iter()
        .find(|(k, _)| *k == name)
        .is_none_or(|&(_, needs)| chosen_alone(value, needs));
    needed && chosen_alone(value, name)
}

/// Whether the value of [`KERNELS_VAR`] names kernel `name` on, whatever it needs.
fn chosen_alone(value: Option<&str>, name: &str) -> bool {
    let Some(value) = value else {
        return true;
    };
    let items: Vec<&str> = listed(value).collect();
    let (left_out, listed): (Vec<&str>, Vec<&str>) = items.iter().partition(|k| k.starts_with('-'));
    if left_out.iter().any(|k| k[1..].eq_ignore_ascii_case(name)) {
        return false;
    }
    // Only `-name`s: every other kernel runs.
    (listed.is_empty() && !left_out.is_empty())
        || listed.iter().any(|k| k.eq_ignore_ascii_case(name))
}

/// The items of a value of [`KERNELS_VAR`]: comma-separated, trimmed, empty ones skipped.
fn listed(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|k| !k.is_empty())
}

/// Whether `t` is an f32 tensor of shape `dims` on `x`'s device (a bias for a kernel on `x`).
fn f32_beside(t: &Tensor, x: &Tensor, dims: &[usize]) -> bool {
    t.dims() == dims && t.dtype() == candle_core::DType::F32 && t.device().same_device(x.device())
}

/// The contiguous f32 data of a storage at a layout.
fn view<'a>(s: &'a CudaStorage, l: &Layout) -> Result<CudaView<'a, f32>> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(s.as_cuda_slice::<f32>()?.slice(a..b)),
        None => candle_core::bail!("a CUDA kernel of ddpm-lab got a non-contiguous operand"),
    }
}

/// The `cpu_fwd` of a custom op that runs on CUDA tensors only (candle's custom-op traits have
/// no default for it): an error naming the op. `op1`, `op2` or `op3` for `CustomOp1/2/3`.
macro_rules! cuda_only_cpu_fwd {
    (op1) => {
        fn cpu_fwd(
            &self,
            _: &candle_core::CpuStorage,
            _: &candle_core::Layout,
        ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
            candle_core::bail!("{} runs on CUDA tensors only", self.name())
        }
    };
    (op2) => {
        fn cpu_fwd(
            &self,
            _: &candle_core::CpuStorage,
            _: &candle_core::Layout,
            _: &candle_core::CpuStorage,
            _: &candle_core::Layout,
        ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
            candle_core::bail!("{} runs on CUDA tensors only", self.name())
        }
    };
    (op3) => {
        fn cpu_fwd(
            &self,
            _: &candle_core::CpuStorage,
            _: &candle_core::Layout,
            _: &candle_core::CpuStorage,
            _: &candle_core::Layout,
            _: &candle_core::CpuStorage,
            _: &candle_core::Layout,
        ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
            candle_core::bail!("{} runs on CUDA tensors only", self.name())
        }
    };
}
// Textually in scope for the modules below.
pub mod conv;
pub mod cudnn;
pub mod depthwise;
pub mod elementwise;
pub mod group_norm;
pub mod multi_tensor;
pub mod softmax;

/// `v` as a kernel's `int` argument, or an error for sizes past it.
fn int(v: usize) -> Result<i32> {
    i32::try_from(v)
        .map_err(|_| candle_core::Error::Msg(format!("{v} is too large for a CUDA kernel's int")))
}

/// `n`, the length a grid-stride loop of a kernel here covers, as its `int`: at most
/// [`crate::ops::DEVICE_LEN_MAX`], so that the loop's index plus one stride (up to 65,535
/// blocks of 1,024 threads) never passes `i32::MAX`.
fn grid_len(n: usize) -> Result<i32> {
    if n > crate::ops::DEVICE_LEN_MAX {
        candle_core::bail!("{n} elements are too many for one CUDA kernel of ddpm-lab");
    }
    int(n)
}

/// [`int`] of each.
fn ints(vs: &[usize]) -> Result<Vec<i32>> {
    vs.iter().map(|&v| int(v)).collect()
}

/// One `.cu` file's kernels: its PTX and the name candle's device caches the loaded module under.
struct Module {
    name: &'static str,
    ptx: &'static str,
}

/// One launch of a kernel, its parameters in the order every kernel here takes them: input
/// buffers, output buffers, `int`s, `float`s.
struct Launch<'a> {
    kernel: &'a str,
    cfg: LaunchConfig,
    inputs: &'a [CudaView<'a, f32>],
    outputs: &'a [&'a CudaSlice<f32>],
    ints: &'a [usize],
    floats: &'a [f32],
}

impl Module {
    /// Loads the module on `dev` if need be and launches `l` on the device's stream.
    ///
    /// # Safety
    /// The parameters must match the kernel's signature, and the kernel must stay inside the
    /// buffers for the sizes passed: each call site says why it does.
    unsafe fn launch(&self, dev: &CudaDevice, l: Launch<'_>) -> Result<()> {
        let func = dev.get_or_load_custom_func(l.kernel, self.name, self.ptx)?;
        let int_args = ints(l.ints)?;
        let mut b = func.builder();
        for v in l.inputs {
            b.arg(v);
        }
        for &o in l.outputs {
            b.arg(o);
        }
        for i in &int_args {
            b.arg(i);
        }
        for f in l.floats {
            b.arg(f);
        }
        // SAFETY: the caller's contract above.
        unsafe { b.launch(l.cfg) }.w()?;
        Ok(())
    }
}

/// A launch of `threads`-thread blocks for a grid-stride loop over `n` elements.
fn grid_stride(n: usize, threads: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (blocks_for(n, threads), 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// A launch of one `threads`-thread block per `(x, y)` of `grid`.
fn blocks(grid: (usize, usize), threads: u32) -> Result<LaunchConfig> {
    blocks3((grid.0, grid.1, 1), threads)
}

/// A launch of one `threads`-thread block per `(x, y, z)` of `grid`.
fn blocks3(grid: (usize, usize, usize), threads: u32) -> Result<LaunchConfig> {
    Ok(LaunchConfig {
        grid_dim: (
            int(grid.0)? as u32,
            int(grid.1)? as u32,
            int(grid.2)? as u32,
        ),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    })
}

/// Blocks of `threads` for a grid-stride loop over `n` elements: one per `threads` elements, at
/// most 65,535 (plenty to fill any GPU; the loop covers the rest).
fn blocks_for(n: usize, threads: u32) -> u32 {
    n.div_ceil(threads as usize).clamp(1, 65_535) as u32
}

#[cfg(test)]
mod tests {
    use super::chosen;

    #[test]
    fn device_settings_with_a_typo_are_an_error_that_names_the_choices() {
        use super::settings_problem;
        assert_eq!(settings_problem(None, None), None);
        assert_eq!(settings_problem(Some("none"), Some("implicit")), None);
        assert_eq!(
            settings_problem(Some(" -GELU, conv "), Some("im2col")),
            None
        );
        let err = settings_problem(Some("-gleu,conv"), None).unwrap();
        assert!(err.contains("-gleu") && err.contains("group_norm"), "{err}");
        let err = settings_problem(None, Some("implict")).unwrap();
        assert!(err.contains("DDPM_LAB_CONV_ALGO=implict"), "{err}");
    }

    /// The rest of the line of `scripts/gpu-check.sh` that starts with `prefix`.
    fn gpu_check_line(prefix: &str) -> String {
        let script =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/gpu-check.sh"))
                .unwrap();
        script
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("gpu-check.sh has no line starting {prefix}"))
            .to_string()
    }

    /// `scripts/gpu-check.sh` searches these kernels, one at a time, when the first check of a
    /// visit fails: its list is this one.
    #[test]
    fn device_kernels_searched_by_the_gpu_check_script_are_every_kernel() {
        let line = gpu_check_line("KERNEL_NAMES=${KERNEL_NAMES:-");
        let names: Vec<&str> = line.trim_end_matches('}').split_whitespace().collect();
        assert_eq!(names, super::KERNEL_NAMES);
    }

    #[test]
    fn device_kernels_are_all_on_unless_the_variable_lists_them() {
        assert!(super::KERNEL_NAMES.iter().all(|k| chosen(None, k)));
        assert!(chosen(Some("depthwise"), "depthwise"));
        assert!(!chosen(Some("depthwise"), "group_norm"));
        assert!(chosen(Some(" Group_Norm , depthwise"), "group_norm"));
        assert!(!chosen(Some("none"), "depthwise") && !chosen(Some(""), "group_norm"));
        // `-name`s leave those out of all of them.
        assert!(!chosen(Some("-bias"), "bias") && !chosen(Some(" -Bias "), "bias"));
        assert!(chosen(Some("-bias"), "conv") && chosen(Some("-bias,-gelu"), "softmax"));
        assert!(!chosen(Some("-bias,-gelu"), "gelu"));
    }

    /// A kernel that runs another's is off with that one: `-depthwise` leaves the depthwise
    /// conv with a bias out too, and `depthwise_bias` alone runs nothing.
    #[test]
    fn device_kernels_are_off_with_the_kernel_they_need() {
        for &(kernel, needs) in super::KERNEL_NEEDS {
            assert!(super::KERNEL_NAMES.contains(&kernel) && super::KERNEL_NAMES.contains(&needs));
            assert!(chosen(None, kernel));
            assert!(
                !chosen(Some(&format!("-{needs}")), kernel),
                "{kernel} without {needs}"
            );
            assert!(chosen(Some(&format!("-{needs}")), "conv"));
            assert!(!chosen(Some(kernel), kernel), "{kernel} listed alone");
            assert!(chosen(Some(&format!("{needs},{kernel}")), kernel));
            assert!(chosen(Some(&format!("{needs},{kernel}")), needs));
            assert!(!chosen(Some(&format!("-{kernel}")), kernel));
            assert!(chosen(Some(&format!("-{kernel}")), needs));
        }
    }

    /// `scripts/gpu-check.sh` checks each kernel with the kernel it needs (`with_needs`): its
    /// table is [`super::KERNEL_NEEDS`].
    #[test]
    fn device_kernel_needs_in_the_gpu_check_script_are_the_crates() {
        let line = gpu_check_line("KERNEL_NEEDS=\"");
        let pairs: Vec<(&str, &str)> = line
            .trim_end_matches('"')
            .split_whitespace()
            .map(|p| p.split_once(':').expect("kernel:needs"))
            .collect();
        assert_eq!(pairs, super::KERNEL_NEEDS);
    }

    /// Every kernel assembles for the H200 (sm_90) with `ptxas`, nvcc's assembler (beside it
    /// in CUDA's `bin`), without spilling registers to local memory: a kernel whose registers
    /// or shared memory do not fit its launch bounds, or that spills in its inner loop, shows
    /// here rather than on a GPU visit.
    #[test]
    fn device_kernels_assemble_for_sm_90_without_spills() {
        let ptxas = ["CUDA_ROOT", "CUDA_PATH"]
            .iter()
            .filter_map(std::env::var_os)
            .map(|root| std::path::PathBuf::from(root).join("bin").join("ptxas"))
            .find(|p| p.is_file())
            .unwrap_or_else(|| "ptxas".into());
        let dir = tempfile::tempdir().unwrap();
        for (name, ptx) in [
            ("conv", super::conv::PTX),
            ("depthwise", super::depthwise::PTX),
            ("elementwise", super::elementwise::PTX),
            ("group_norm", super::group_norm::PTX),
            ("implicit_conv", super::conv::IMPLICIT_PTX),
            ("multi_tensor", super::multi_tensor::PTX),
            ("softmax", super::softmax::PTX),
        ] {
            let path = dir.path().join(format!("{name}.ptx"));
            std::fs::write(&path, ptx).unwrap();
            let out = std::process::Command::new(&ptxas)
                .args(["-arch=sm_90", "-v", "-o"])
                .arg(dir.path().join(format!("{name}.cubin")))
                .arg(&path)
                .output()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot run {} (CUDA's ptxas, installed with nvcc by \
                         scripts/cuda-toolkit.sh): {e}",
                        ptxas.display()
                    )
                });
            let report = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success(),
                "ptxas failed on {name}.ptx:\n{report}"
            );
            let entries = report.matches("Compiling entry function").count();
            assert!(entries > 0, "{name}.ptx: no kernels in\n{report}");
            assert_eq!(
                report
                    .matches(" 0 bytes spill stores, 0 bytes spill loads")
                    .count(),
                entries,
                "{name}.ptx spills registers:\n{report}"
            );
        }
    }

    /// Kernels compiled with `__launch_bounds__` for a block size are launched with that size.
    #[test]
    fn device_block_sizes_match_the_launch_bounds() {
        for (cu, define) in [
            (
                include_str!("group_norm.cu"),
                format!(
                    "#define GN_GROUP_THREADS {}\n",
                    super::group_norm::GROUP_THREADS
                ),
            ),
            (
                include_str!("depthwise.cu"),
                format!("#define WGRAD_THREADS {}\n", super::depthwise::THREADS),
            ),
            (
                include_str!("implicit_conv.cu"),
                format!(
                    "#define IC_THREADS {}\n",
                    crate::ops::implicit_conv::THREADS
                ),
            ),
            (
                include_str!("implicit_conv.cu"),
                format!(
                    "#define IC_BN {}\n",
                    crate::ops::implicit_conv::COLS_PER_BLOCK
                ),
            ),
        ] {
            assert!(cu.contains(&define), "{define}");
        }
    }

    /// The table Rust passes by value is the size of the kernels' first parameter.
    #[test]
    fn device_multi_tensor_table_is_the_kernels_parameter() {
        let bytes = std::mem::size_of::<super::multi_tensor::TensorTable>();
        for kernel in [
            "multi_tensor_gather",
            "multi_tensor_sub",
            "multi_tensor_lerp",
        ] {
            let param = format!(".param .align 8 .b8 {kernel}_param_0[{bytes}]");
            assert!(super::multi_tensor::PTX.contains(&param), "{param}");
        }
    }

    /// The number of parameters of kernel `name` in `ptx`.
    fn ptx_params(ptx: &str, name: &str) -> usize {
        let start = ptx
            .find(&format!(".entry {name}("))
            .unwrap_or_else(|| panic!("no kernel {name} in the PTX"));
        let list = &ptx[start..];
        let end = list.find(')').expect("a parameter list");
        list[..end].matches(".param").count()
    }

    /// The depthwise launches pass the kernels' parameters: x, w, the plane bias (or the
    /// weight in its place), y and 13 ints; x, dy, the partial sums and 9 ints.
    #[test]
    fn device_depthwise_launches_match_the_kernels_parameters() {
        for k in [3, 5, 7] {
            let fwd = ptx_params(super::depthwise::PTX, &format!("depthwise_fwd_k{k}"));
            assert_eq!(fwd, 3 + 1 + 13, "depthwise_fwd_k{k}");
            let wgrad = ptx_params(super::depthwise::PTX, &format!("depthwise_wgrad_k{k}"));
            assert_eq!(wgrad, 2 + 1 + 9, "depthwise_wgrad_k{k}");
        }
    }

    #[test]
    fn device_kernels_ptx_has_every_entry_the_ops_load() {
        // The names the custom ops pass to `get_or_load_custom_func`, against nvcc's output.
        let depthwise = [3, 5, 7].iter().flat_map(|k| {
            [
                format!("depthwise_fwd_k{k}"),
                format!("depthwise_wgrad_k{k}"),
            ]
        });
        let conv = [
            "conv_im2col",
            "conv_col2im",
            "conv_channels_first",
            "conv_bias_fill",
        ]
        .map(String::from);
        let group_norm =
            ["group_norm_fwd", "group_norm_stats", "group_norm_backward"].map(String::from);
        // Every kernel the implicit conv's plan can name.
        let implicit = crate::ops::implicit_conv::KERNEL_SIZES
            .iter()
            .flat_map(|&k| {
                crate::ops::implicit_conv::CHANNEL_TILES
                    .iter()
                    .flat_map(move |&m| {
                        [
                            format!("conv_implicit_k{k}_m{m}"),
                            format!("conv_implicit_wgrad_k{k}_m{m}"),
                        ]
                    })
            })
            .chain(["conv_implicit_sum_splits".to_string()]);
        for (ptx, names) in [
            (super::conv::PTX, conv.to_vec()),
            (
                super::elementwise::PTX,
                ["channel_bias_add", "sub_in_place", "gelu_fwd", "gelu_bwd"]
                    .map(String::from)
                    .to_vec(),
            ),
            (super::depthwise::PTX, depthwise.collect::<Vec<_>>()),
            (super::group_norm::PTX, group_norm.to_vec()),
            (super::conv::IMPLICIT_PTX, implicit.collect::<Vec<_>>()),
            (
                super::multi_tensor::PTX,
                [
                    "multi_tensor_gather",
                    "multi_tensor_sub",
                    "multi_tensor_lerp",
                ]
                .map(String::from)
                .to_vec(),
            ),
            (
                super::softmax::PTX,
                ["softmax_inner_fwd", "softmax_inner_bwd", "softmax_rows_bwd"]
                    .map(String::from)
                    .to_vec(),
            ),
        ] {
            assert!(
                ptx.contains(".target sm_75"),
                "PTX for compute capability 7.5"
            );
            for name in names {
                assert!(
                    ptx.contains(&format!(".entry {name}(")),
                    "no kernel {name} in the PTX"
                );
            }
        }
    }
}
