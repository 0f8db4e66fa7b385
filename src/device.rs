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

impl DeviceSpec {
    /// The spec naming an opened device (`cpu`, `cuda:1`, `metal`), as the flags spell it.
    pub fn of(device: &candle_core::Device) -> Self {
        match device.location() {
            candle_core::DeviceLocation::Cpu => DeviceSpec::Cpu,
            candle_core::DeviceLocation::Cuda { gpu_id } => DeviceSpec::Cuda(gpu_id),
            candle_core::DeviceLocation::Metal { .. } => DeviceSpec::Metal,
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
    /// The devices this binary is built for: the CPU, then CUDA and Metal where their cargo
    /// features are on (whether the machine has them is for [`Self::open`] to say).
    pub fn built_for() -> Vec<DeviceSpec> {
        let mut all = vec![DeviceSpec::Cpu];
        if cfg!(feature = "cuda") {
            all.push(DeviceSpec::Cuda(0));
        }
        if cfg!(feature = "metal") {
            all.push(DeviceSpec::Metal);
        }
        all
    }

    /// Says which cargo feature the binary lacks for this device, if it lacks one (without
    /// opening anything: whether the machine has the device is for [`Self::open`] to say).
    pub fn check_built(self) -> anyhow::Result<()> {
        let feature = match self {
            DeviceSpec::Cpu => return Ok(()),
            DeviceSpec::Cuda(_) if cfg!(feature = "cuda") => return Ok(()),
            DeviceSpec::Metal if cfg!(feature = "metal") => return Ok(()),
            DeviceSpec::Cuda(_) => "cuda",
            DeviceSpec::Metal => "metal",
        };
        anyhow::bail!(
            "device '{self}' needs a binary built with the `{feature}` cargo feature \
             (cargo install --path . --features {feature}, in the source tree)"
        )
    }

    /// Opens the device, or says which cargo feature the binary lacks.
    pub fn open(self) -> anyhow::Result<Device> {
        self.check_built()?;
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(n) => open_cuda(n),
            DeviceSpec::Metal => {
                Device::new_metal(0).map_err(|e| anyhow::anyhow!("cannot open metal: {e}"))
            }
        }
    }
}

/// Opens CUDA device `n` (the one this process opened before, if any), or says why it cannot.
#[cfg(feature = "cuda")]
fn open_cuda(n: usize) -> anyhow::Result<Device> {
    if let Some(why) = cuda::unavailable(n) {
        anyhow::bail!("CUDA device {n} is not available: {why}");
    }
    if let Some(why) = crate::ops::cuda::settings_error() {
        anyhow::bail!("{why}");
    }
    let setup = CudaSetup::from_env().map_err(anyhow::Error::msg)?;
    let open = || {
        cuda::open(n, setup)
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", DeviceSpec::Cuda(n)))
    };
    if setup.shared_stream {
        opened_once(&cuda::OPENED, n, open)
    } else {
        // candle's way throughout: a device of its own per opening, so that no two threads
        // share a cuBLAS handle whose per-thread stream is a different stream in each.
        open()
    }
}

/// In a binary built without the `cuda` feature, [`DeviceSpec::check_built`] has refused
/// CUDA before this is reached.
#[cfg(not(feature = "cuda"))]
fn open_cuda(n: usize) -> anyhow::Result<Device> {
    DeviceSpec::Cuda(n).check_built()?;
    unreachable!("check_built refuses CUDA in a build without it")
}

/// The value kept for `key` in `cache`, or, the first time, what `open` makes of it (kept only
/// when it succeeds, so a failed opening is tried again). One lock for all keys: openings are
/// rare, and two threads never open the same key twice.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
fn opened_once<K: PartialEq + Copy, V: Clone, E>(
    cache: &std::sync::Mutex<Vec<(K, V)>>,
    key: K,
    open: impl FnOnce() -> Result<V, E>,
) -> Result<V, E> {
    let mut kept = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, v)) = kept.iter().find(|(k, _)| *k == key) {
        return Ok(v.clone());
    }
    let v = open()?;
    kept.push((key, v.clone()));
    Ok(v)
}

/// The environment variable that says what CUDA's memory pool does with the memory a run
/// frees: `keep` (the default) holds it for the next allocations, as PyTorch's caching
/// allocator does; `release` gives it back to the driver at every synchronisation, CUDA's own
/// default (the pool's release threshold is 0), so a training step, which reads its loss back,
/// maps its memory again each time.
pub const CUDA_POOL_VAR: &str = "DDPM_LAB_CUDA_POOL";

/// The environment variable that picks the stream a CUDA device's work goes to: `shared` (the
/// default), one stream of its own that every thread of the process queues to, in order, so a
/// tensor made on one thread is ready when another uses it, on the one device each GPU is
/// opened as for the whole process; or `per-thread`, candle's default, CUDA's per-thread
/// default stream, where cudarc makes two CUDA events for every allocation and destroys them
/// at its free, to order streams it never has to order here, on a new device at each opening
/// (as ddpm-lab did before).
pub const CUDA_STREAM_VAR: &str = "DDPM_LAB_CUDA_STREAM";

/// How a CUDA device is set up when it is opened: [`CUDA_POOL_VAR`] and [`CUDA_STREAM_VAR`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CudaSetup {
    /// The memory pool keeps what is freed (release threshold: all of it).
    pub keep_pool: bool,
    /// One stream shared by every thread, without cudarc's per-allocation events, and one
    /// device per GPU for the process.
    pub shared_stream: bool,
}

impl Default for CudaSetup {
    fn default() -> Self {
        Self {
            keep_pool: true,
            shared_stream: true,
        }
    }
}

impl fmt::Display for CudaSetup {
    /// `stream=shared pool=keep`: the two settings, as the variables name them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stream = if self.shared_stream {
            "shared"
        } else {
            "per-thread"
        };
        let pool = if self.keep_pool { "keep" } else { "release" };
        write!(f, "stream={stream} pool={pool}")
    }
}

impl CudaSetup {
    /// The setup the two variables ask for (`None`: unset, the default), or what is wrong with
    /// a value.
    pub fn parse(pool: Option<&str>, stream: Option<&str>) -> Result<Self, String> {
        Ok(Self {
            keep_pool: !picks_other(CUDA_POOL_VAR, pool, "keep", "release")?,
            shared_stream: !picks_other(CUDA_STREAM_VAR, stream, "shared", "per-thread")?,
        })
    }

    /// The setup of this process's environment.
    pub fn from_env() -> Result<Self, String> {
        let pool = std::env::var(CUDA_POOL_VAR).ok();
        let stream = std::env::var(CUDA_STREAM_VAR).ok();
        Self::parse(pool.as_deref(), stream.as_deref())
    }
}

/// Whether `value` of variable `var` (`None`: unset) picks `other` rather than `default`, or
/// what is wrong with it (any case, spaces around it ignored).
fn picks_other(var: &str, value: Option<&str>, default: &str, other: &str) -> Result<bool, String> {
    let Some(value) = value else {
        return Ok(false);
    };
    match value.trim().to_ascii_lowercase() {
        v if v == default => Ok(false),
        v if v == other => Ok(true),
        _ => Err(format!(
            "{var}={value}: expected {default} (the default) or {other}"
        )),
    }
}

/// Gives the memory that CUDA's pool keeps for reuse (see [`CUDA_POOL_VAR`]) back to the
/// driver, once `device` has finished its queued work, as `torch.cuda.empty_cache()` does: the
/// benchmark calls it between workloads so that each one's peak memory is its own. Nothing to
/// do off CUDA.
pub fn release_cached_memory(device: &Device) -> anyhow::Result<()> {
    match device {
        #[cfg(feature = "cuda")]
        Device::Cuda(_) => {
            device.synchronize()?;
            cuda::trim_pool(device)
        }
        _ => Ok(()),
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
    use candle_core::Device;

    use super::CudaSetup;

    /// The CUDA devices this process has opened with a shared stream, by ordinal. candle makes
    /// a device of its own at each `Device::new_cuda*` (its own stream, cuBLAS and cuRAND
    /// handles and loaded modules, whose tensors cannot be mixed with another's), so the
    /// trainer, the sampler, the benchmark's workloads and the lab's workers share the one
    /// opened first.
    pub(super) static OPENED: std::sync::Mutex<Vec<(usize, Device)>> =
        std::sync::Mutex::new(Vec::new());

    /// Opens CUDA device `ordinal` as `setup` says (see [`super::CUDA_POOL_VAR`] and
    /// [`super::CUDA_STREAM_VAR`]).
    pub(super) fn open(ordinal: usize, setup: CudaSetup) -> candle_core::Result<Device> {
        let device = if setup.shared_stream {
            let device = Device::new_cuda_with_stream(ordinal)?;
            // SAFETY: cudarc's events order the uses of an allocation across its streams; this
            // device has one stream, which every thread queues to, and ddpm-lab makes no other.
            unsafe { device.as_cuda_device()?.disable_event_tracking() };
            device
        } else {
            Device::new_cuda(ordinal)?
        };
        if setup.keep_pool {
            if let Some(pool) = pool_of(&device)? {
                let mut keep_all = u64::MAX;
                // SAFETY: a valid pool, and this attribute's value is a cuuint64_t.
                unsafe {
                    cudarc::driver::result::mem_pool::set_attribute(
                        pool,
                        cudarc::driver::sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                        (&mut keep_all as *mut u64).cast(),
                    )
                }
                .map_err(candle_core::Error::wrap)?;
            }
        }
        Ok(device)
    }

    /// The memory pool that the allocations on `device` come from (`cuMemAllocAsync`), or
    /// `None` where the GPU has no memory pools (cudarc then allocates synchronously).
    fn pool_of(device: &Device) -> candle_core::Result<Option<cudarc::driver::sys::CUmemoryPool>> {
        use cudarc::driver::{result, sys};
        let ctx = device.as_cuda_device()?.cuda_stream().context().clone();
        let dev = ctx.cu_device();
        // SAFETY: `dev` is the device of a context cudarc opened.
        let pools = unsafe {
            result::device::get_attribute(
                dev,
                sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED,
            )
        }
        .map_err(candle_core::Error::wrap)?;
        if pools == 0 {
            return Ok(None);
        }
        // SAFETY: as above.
        let pool =
            unsafe { result::device::get_mem_pool(dev) }.map_err(candle_core::Error::wrap)?;
        Ok(Some(pool))
    }

    /// Gives the unused memory of `device`'s pool back to the driver.
    pub(super) fn trim_pool(device: &Device) -> anyhow::Result<()> {
        if let Some(pool) = pool_of(device)? {
            // SAFETY: a valid pool.
            unsafe { cudarc::driver::result::mem_pool::trim_to(pool, 0) }
                .map_err(|e| anyhow::anyhow!("cannot release the CUDA pool's memory: {e}"))?;
        }
        Ok(())
    }

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

    /// Each key is opened once, by one thread even when several ask at once, and every caller
    /// gets what that opening made; a failed opening is not kept, so the next call tries again.
    #[test]
    fn each_key_is_opened_once_and_failures_are_retried() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Mutex;
        let cache: Mutex<Vec<(usize, String)>> = Mutex::new(Vec::new());
        let openings = AtomicUsize::new(0);
        let open = |key: usize| {
            opened_once(&cache, key, || {
                let n = openings.fetch_add(1, Ordering::SeqCst);
                Ok::<_, String>(format!("device {key}, opening {n}"))
            })
        };
        let got: Vec<String> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..8).map(|_| s.spawn(|| open(0).unwrap())).collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        assert_eq!(openings.load(Ordering::SeqCst), 1);
        assert!(got.iter().all(|g| g == "device 0, opening 0"), "{got:?}");
        assert_eq!(open(1).unwrap(), "device 1, opening 1");
        assert_eq!(open(0).unwrap(), "device 0, opening 0");

        let failed = opened_once(&cache, 2, || Err::<String, _>("no such GPU"));
        assert_eq!(failed, Err("no such GPU"));
        assert_eq!(open(2).unwrap(), "device 2, opening 2");
        assert_eq!(openings.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn cuda_setup_defaults_and_errors() {
        let default = CudaSetup::parse(None, None).unwrap();
        assert_eq!(
            default,
            CudaSetup {
                keep_pool: true,
                shared_stream: true
            }
        );
        assert_eq!(CudaSetup::parse(Some("keep"), Some("shared")), Ok(default));
        assert_eq!(
            CudaSetup::parse(Some(" Release "), Some("per-thread")),
            Ok(CudaSetup {
                keep_pool: false,
                shared_stream: false
            })
        );
        assert_eq!(default.to_string(), "stream=shared pool=keep");
        assert_eq!(
            CudaSetup::parse(Some("release"), Some("per-thread"))
                .unwrap()
                .to_string(),
            "stream=per-thread pool=release"
        );
        let err = CudaSetup::parse(Some("Free"), None).unwrap_err();
        assert!(
            err.contains("DDPM_LAB_CUDA_POOL=Free") && err.contains("release"),
            "{err}"
        );
        let err = CudaSetup::parse(None, Some("thread")).unwrap_err();
        assert!(
            err.contains("DDPM_LAB_CUDA_STREAM=thread") && err.contains("per-thread"),
            "{err}"
        );
    }

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
