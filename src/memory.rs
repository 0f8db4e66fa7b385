//! How much memory this process may still use, and byte counts for people. The one place that
//! reads `/proc/meminfo` and the cgroup limit: the run budgets (`runs::budget`) and the data
//! loaders' resize check use it.

/// Bytes of memory available to this process: `MemAvailable`, lowered to what a cgroup v2
/// limit leaves and to what its address-space limit (`ulimit -v`) leaves; `None` where none
/// can be read (not Linux).
pub fn available_memory() -> Option<u128> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    let host = meminfo.as_deref().and_then(parse_meminfo);
    [host, cgroup_headroom(), address_space_headroom()]
        .into_iter()
        .flatten()
        .min()
}

/// What the address-space limit of this process (`RLIMIT_AS`, `ulimit -v`) still allows past
/// the address space it holds now (`VmSize`), when it has one: an allocation past it fails,
/// whatever memory the machine has free.
fn address_space_headroom() -> Option<u128> {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `getrlimit` writes one `rlimit` into the valid struct passed.
        if unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut lim) } != 0
            || lim.rlim_cur == libc::RLIM_INFINITY
        {
            return None;
        }
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let held = parse_status_kb(&status, "VmSize:").unwrap_or(0);
        Some((lim.rlim_cur as u128).saturating_sub(held))
    }
    #[cfg(not(unix))]
    None
}

/// A `kB` field (`VmSize:`, say) of a `/proc/self/status` text, in bytes.
fn parse_status_kb(text: &str, field: &str) -> Option<u128> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?;
        let kb: u128 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kb.saturating_mul(1024))
    })
}

/// `MemAvailable` of a `/proc/meminfo` text, in bytes.
pub fn parse_meminfo(text: &str) -> Option<u128> {
    parse_status_kb(text, "MemAvailable:")
}

/// What the cgroup v2 memory limit of this process still allows, when it has one.
fn cgroup_headroom() -> Option<u128> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?.trim();
    let dir = std::path::Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/'));
    let max: u128 = std::fs::read_to_string(dir.join("memory.max"))
        .ok()?
        .trim()
        .parse()
        .ok()?; // "max": no limit
    let current: u128 = std::fs::read_to_string(dir.join("memory.current"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    Some(max.saturating_sub(current))
}

/// A byte count for people: `512 MB`, `3.2 GB`, `1.1e6 GB`.
pub fn human_bytes(b: u128) -> String {
    const MB: f64 = 1e6;
    const GB: f64 = 1e9;
    let b = b as f64;
    if b < 1e3 * MB {
        format!("{:.0} MB", (b / MB).ceil())
    } else if b < 1e5 * GB {
        format!("{:.1} GB", b / GB)
    } else {
        format!("{:.1e} GB", b / GB)
    }
}

/// Refuses `needed` bytes when more than `available` (`None`: unknown, accepted). `what` names
/// the request and the flags or fields that size it.
pub fn check_fits(what: &str, needed: u128, available: Option<u128>) -> anyhow::Result<()> {
    if let Some(avail) = available {
        if needed > avail {
            anyhow::bail!(
                "{what} needs about {} of memory but only {} is available",
                human_bytes(needed),
                human_bytes(avail)
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_meminfo_and_formats_bytes() {
        let text = "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(parse_meminfo(text), Some(20_000_000 * 1024));
        assert_eq!(parse_meminfo("MemTotal: 5 kB\n"), None);
        assert_eq!(human_bytes(1), "1 MB");
        assert_eq!(human_bytes(512_000_000), "512 MB");
        assert_eq!(human_bytes(3_200_000_000), "3.2 GB");
        assert_eq!(human_bytes(u128::MAX), "3.4e29 GB");
        assert!(available_memory().is_none_or(|m| m > 0));
        let status = "Name:\tddpm-lab\nVmPeak:\t  900 kB\nVmSize:\t  800 kB\n";
        assert_eq!(parse_status_kb(status, "VmSize:"), Some(800 * 1024));
    }
}
