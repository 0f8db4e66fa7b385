//! Parsing `--device cpu|cuda[:N]|metal` into a candle device, with clear errors when the binary
//! was built without the needed cargo feature.

use std::fmt;
use std::str::FromStr;

use candle_core::Device;
use serde::{Deserialize, Serialize};

/// A device named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(into = "String", try_from = "String")]
pub enum DeviceSpec {
    /// The CPU (always available).
    #[default]
    Cpu,
    /// CUDA GPU number N (needs the `cuda` cargo feature).
    Cuda(usize),
    /// Apple GPU (needs the `metal` cargo feature).
    Metal,
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(0) => f.write_str("cuda"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
            DeviceSpec::Metal => f.write_str("metal"),
        }
    }
}

impl From<DeviceSpec> for String {
    fn from(d: DeviceSpec) -> String {
        d.to_string()
    }
}

impl TryFrom<String> for DeviceSpec {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl FromStr for DeviceSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" | "gpu" => Ok(DeviceSpec::Cuda(0)),
            "metal" | "mps" => Ok(DeviceSpec::Metal),
            _ => {
                if let Some(n) = s.strip_prefix("cuda:") {
                    n.parse::<usize>().map(DeviceSpec::Cuda).map_err(|_| {
                        format!("invalid CUDA ordinal in '{s}' (expected cuda or cuda:N)")
                    })
                } else {
                    Err(format!(
                        "unknown device '{s}' (expected cpu, cuda, cuda:N or metal)"
                    ))
                }
            }
        }
    }
}

impl DeviceSpec {
    /// Opens the device, or says which cargo feature the binary lacks.
    pub fn open(self) -> anyhow::Result<Device> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(n) => {
                if !cfg!(feature = "cuda") {
                    anyhow::bail!(
                        "device '{self}' needs a binary built with the `cuda` cargo feature \
                         (cargo install ddpm-lab --features cuda)"
                    );
                }
                #[cfg(feature = "cuda")]
                if let Some(why) = cuda::unavailable(n) {
                    anyhow::bail!("CUDA device {n} is not available: {why}");
                }
                #[cfg(feature = "cuda")]
                if let Some(why) = crate::ops::cuda::settings_error() {
                    anyhow::bail!("{why}");
                }
                Device::new_cuda(n).map_err(|e| anyhow::anyhow!("cannot open {self}: {e}"))
            }
            DeviceSpec::Metal => {
                if !cfg!(feature = "metal") {
                    anyhow::bail!(
                        "device 'metal' needs a binary built with the `metal` cargo feature \
                         (cargo install ddpm-lab --features metal)"
                    );
                }
                Device::new_metal(0).map_err(|e| anyhow::anyhow!("cannot open metal: {e}"))
            }
        }
    }
}

/// Whether CUDA device 0 can be opened: the binary was built with the `cuda` feature, and the
/// NVIDIA driver, the CUDA libraries and at least one GPU are there. Cheap enough to ask once at
/// start-up (it does not create a CUDA context).
pub fn cuda_available() -> bool {
    #[cfg(feature = "cuda")]
    {
        cuda::unavailable(0).is_none()
    }
    #[cfg(not(feature = "cuda"))]
    {
        false
    }
}

/// Whether TF32 (`on`) may be asked for on `device`: only on CUDA.
pub fn check_tf32(device: DeviceSpec, on: bool) -> anyhow::Result<()> {
    if on && !matches!(device, DeviceSpec::Cuda(_)) {
        anyhow::bail!(
            "--tf32 is for CUDA devices (it lets cuBLAS round float32 products to TF32); this \
             run is on {device}"
        );
    }
    Ok(())
}

/// Lets CUDA's float32 matrix products (cuBLAS: candle's matmuls and ddpm-lab's convs) use
/// TF32 tensor cores for the rest of the process when `on` (faster on Ampere and newer GPUs,
/// about 1e-3 relative error; off by default, as PyTorch's matmuls). An error for another
/// device, where it would silently do nothing.
pub fn use_tf32(device: DeviceSpec, on: bool) -> anyhow::Result<()> {
    check_tf32(device, on)?;
    if on {
        candle_core::cuda::set_gemm_reduced_precision_f32(true);
    }
    Ok(())
}

/// What a device is, for people: a GPU's name and memory ("NVIDIA H200 · 140 GiB"), asked
/// of the driver without opening the device (no CUDA context); `None` for the CPU, for Metal,
/// and for a CUDA device this machine cannot open.
pub fn describe(spec: DeviceSpec) -> Option<String> {
    match spec {
        #[cfg(feature = "cuda")]
        DeviceSpec::Cuda(n) => {
            if cuda::unavailable(n).is_some() {
                return None;
            }
            let (name, bytes) = cuda::name_and_memory(n)?;
            Some(gpu_label(&name, bytes))
        }
        _ => None,
    }
}

/// A GPU's used memory, device-wide (what `nvidia-smi` shows: every process's allocations and
/// contexts), read as often as a caller likes: the benchmark samples it for each workload's
/// peak. Only CUDA devices have one.
pub struct MemoryProbe {
    #[cfg(feature = "cuda")]
    ctx: std::sync::Arc<candle_core::cuda::cudarc::driver::CudaContext>,
}

impl MemoryProbe {
    /// The probe of `spec`'s memory; `None` off CUDA or when the device cannot be opened.
    pub fn new(spec: DeviceSpec) -> Option<Self> {
        match spec {
            #[cfg(feature = "cuda")]
            DeviceSpec::Cuda(n) => {
                if cuda::unavailable(n).is_some() {
                    return None;
                }
                // The device's primary context: the one candle's CudaDevice works in.
                let ctx = candle_core::cuda::cudarc::driver::CudaContext::new(n).ok()?;
                Some(Self { ctx })
            }
            _ => None,
        }
    }

    /// Bytes of the device's memory in use now (total minus free); `None` if the driver does
    /// not say.
    pub fn used_bytes(&self) -> Option<usize> {
        #[cfg(feature = "cuda")]
        {
            let (free, total) = self.ctx.mem_get_info().ok()?;
            Some(total.saturating_sub(free))
        }
        #[cfg(not(feature = "cuda"))]
        None
    }
}

/// "NAME · N GiB" (memory rounded down to whole GiB).
pub fn gpu_label(name: &str, bytes: usize) -> String {
    format!("{} · {} GiB", name.trim(), bytes >> 30)
}

/// Checks made before opening a CUDA device.
///
/// The CUDA backend loads the driver (`libcuda`) and the CUDA libraries with `dlopen` the first
/// time it needs them (cudarc's `dynamic-loading`, see `vendor/candle-core/VENDORED.md`), so one
/// binary starts on every machine. cudarc panics when a library it needs is missing; asking
/// first turns that into an ordinary error that names the library.
#[cfg(feature = "cuda")]
mod cuda {
    use candle_core::cuda::cudarc;

    /// cudarc's `is_culib_present` of one library: tries to dlopen each name it knows and
    /// closes what it opened.
    type Probe = unsafe fn() -> bool;

    /// Why CUDA device `ordinal` cannot be opened, or `None` when it can be tried.
    pub(super) fn unavailable(ordinal: usize) -> Option<String> {
        // SAFETY: these only try to dlopen each candidate name of the library and close it.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Some("no NVIDIA driver found (libcuda.so.1 could not be loaded)".into());
        }
        // What CudaDevice::new loads (cuBLAS, cuBLASLt and cuRAND handles) and what compiling
        // a kernel at run time would (NVRTC): the name cudarc looks for, and the usual file.
        let libraries: [(&str, &str, Probe); 4] = [
            (
                "cuBLAS",
                "libcublas.so.13",
                cudarc::cublas::sys::is_culib_present,
            ),
            (
                "cuBLASLt",
                "libcublasLt.so.13",
                cudarc::cublaslt::sys::is_culib_present,
            ),
            (
                "cuRAND",
                "libcurand.so.10",
                cudarc::curand::sys::is_culib_present,
            ),
            (
                "NVRTC",
                "libnvrtc.so.13",
                cudarc::nvrtc::sys::is_culib_present,
            ),
        ];
        let missing: Vec<String> = libraries
            .iter()
            // SAFETY: as above, dlopen and close.
            .filter(|(_, _, present)| !unsafe { present() })
            .map(|(name, file, _)| format!("{name} ({file})"))
            .collect();
        if !missing.is_empty() {
            return Some(format!(
                "the CUDA libraries {} were not found; add their folder to LD_LIBRARY_PATH \
                 (e.g. the nvidia/cu13/lib folder of a CUDA 13 PyTorch install)",
                missing.join(", ")
            ));
        }
        // The driver is there: it says whether it sees a GPU (no GPU, or a driver too old for
        // the CUDA version this binary was built against, gives an error here).
        if let Err(e) = cudarc::driver::result::init() {
            return Some(format!("the NVIDIA driver did not start: {}", describe(&e)));
        }
        match cudarc::driver::result::device::get_count() {
            Ok(count) if ordinal < count.max(0) as usize => None,
            Ok(count) => Some(format!("this machine has {count} CUDA device(s)")),
            Err(e) => Some(format!(
                "the driver cannot count its devices: {}",
                describe(&e)
            )),
        }
    }

    /// The name and total memory (bytes) of device `ordinal`, after [`unavailable`] said it
    /// can be tried.
    pub(super) fn name_and_memory(ordinal: usize) -> Option<(String, usize)> {
        use cudarc::driver::result::device;
        let dev = device::get(ordinal as std::ffi::c_int).ok()?;
        let name = device::get_name(dev).ok()?;
        // SAFETY: `dev` comes from `device::get`.
        let bytes = unsafe { device::total_mem(dev) }.ok()?;
        Some((name, bytes))
    }

    /// "no CUDA-capable device is detected (CUDA_ERROR_NO_DEVICE)": the driver's own words.
    fn describe(e: &cudarc::driver::DriverError) -> String {
        match e.error_string() {
            Ok(s) => format!("{} ({:?})", s.to_string_lossy(), e.0),
            Err(_) => format!("{:?}", e.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert_eq!("cpu".parse::<DeviceSpec>(), Ok(DeviceSpec::Cpu));
        assert_eq!("cuda".parse::<DeviceSpec>(), Ok(DeviceSpec::Cuda(0)));
        assert_eq!("cuda:2".parse::<DeviceSpec>(), Ok(DeviceSpec::Cuda(2)));
        assert_eq!("metal".parse::<DeviceSpec>(), Ok(DeviceSpec::Metal));
        assert!("tpu".parse::<DeviceSpec>().is_err());
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
    }

    #[test]
    fn gpus_are_described_by_name_and_memory() {
        assert_eq!(
            gpu_label("NVIDIA H200 ", 150_754_820_096),
            "NVIDIA H200 · 140 GiB"
        );
        assert_eq!(describe(DeviceSpec::Cpu), None);
        assert_eq!(describe(DeviceSpec::Metal), None);
        // A GPU this machine cannot open is not described (CI, a laptop without CUDA).
        if !cuda_available() {
            assert_eq!(describe(DeviceSpec::Cuda(0)), None);
        }
        assert_eq!(describe(DeviceSpec::Cuda(999)), None);
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn missing_feature_is_named() {
        let err = DeviceSpec::Cuda(0).open().unwrap_err().to_string();
        assert!(err.contains("`cuda` cargo feature"), "{err}");
        assert!(!cuda_available());
    }

    /// A cuda build on a machine without a usable GPU (CI, a laptop) must answer "not available"
    /// with an error, not panic inside the CUDA loader. Where a GPU is present it must open.
    /// Run with `cargo test --features cuda --lib device`.
    #[cfg(feature = "cuda")]
    #[test]
    fn cuda_open_fails_cleanly_or_opens() {
        match DeviceSpec::Cuda(0).open() {
            Ok(device) => {
                assert!(device.is_cuda());
                assert!(cuda_available());
            }
            Err(e) => {
                let err = format!("{e:#}");
                assert!(err.starts_with("CUDA device 0 is not available: "), "{err}");
                assert!(!err.contains('\n'), "{err}");
                assert!(!cuda_available());
            }
        }
        // An ordinal past the machine's devices is an error in every case.
        let err = DeviceSpec::Cuda(999).open().unwrap_err().to_string();
        assert!(
            err.starts_with("CUDA device 999 is not available: "),
            "{err}"
        );
    }
}
