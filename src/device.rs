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

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn missing_feature_is_named() {
        let err = DeviceSpec::Cuda(0).open().unwrap_err().to_string();
        assert!(err.contains("`cuda` cargo feature"), "{err}");
    }
}
