//! Compute thread count from the cgroup CPU quota, not the host's core count.
//!
//! A container limited to 2 CPUs on a 64-core host must not start 64 compute threads: they
//! would fight over 2 CPUs' worth of time slices. We read the quota (cgroup v2 `cpu.max`, or
//! v1 `cpu.cfs_quota_us`/`cpu.cfs_period_us`) and the CPU affinity mask, and take the smaller.

use std::path::Path;

/// Where the thread count came from, for the startup log and `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ThreadSource {
    /// Set in the configuration.
    Config,
    /// From the cgroup CPU quota.
    CgroupQuota,
    /// From the CPUs this process may run on.
    Affinity,
}

/// The CPU quota of the cgroup at `root` in whole CPUs (rounded up), if one is set.
pub fn cgroup_cpu_quota(root: &Path) -> Option<usize> {
    // cgroup v2: "<quota> <period>" or "max <period>".
    if let Ok(s) = std::fs::read_to_string(root.join("cpu.max")) {
        return parse_cpu_max(&s);
    }
    // cgroup v1.
    let quota = std::fs::read_to_string(root.join("cpu/cpu.cfs_quota_us")).ok()?;
    let period = std::fs::read_to_string(root.join("cpu/cpu.cfs_period_us")).ok()?;
    quota_to_cpus(quota.trim().parse().ok()?, period.trim().parse().ok()?)
}

fn parse_cpu_max(s: &str) -> Option<usize> {
    let mut parts = s.split_whitespace();
    let quota = parts.next()?;
    let period: i64 = parts.next()?.parse().ok()?;
    if quota == "max" {
        return None;
    }
    quota_to_cpus(quota.parse().ok()?, period)
}

fn quota_to_cpus(quota: i64, period: i64) -> Option<usize> {
    if quota <= 0 || period <= 0 {
        return None;
    }
    Some(((quota + period - 1) / period).max(1) as usize)
}

/// Decide the compute thread count: `configured` if non-zero, else min(quota, affinity).
pub fn decide(configured: usize) -> (usize, ThreadSource) {
    if configured > 0 {
        return (configured, ThreadSource::Config);
    }
    let affinity = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    match cgroup_cpu_quota(Path::new("/sys/fs/cgroup")) {
        Some(q) if q < affinity => (q, ThreadSource::CgroupQuota),
        _ => (affinity, ThreadSource::Affinity),
    }
}

/// Apply the thread count to candle and rayon. Call once, before any thread pool exists and
/// before the async runtime starts (it sets environment variables that candle reads).
pub fn configure(configured: usize) -> (usize, ThreadSource) {
    let (n, source) = decide(configured);
    // SAFETY: called from `main` before any other thread is started, so nothing reads the
    // environment concurrently.
    unsafe {
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
        std::env::set_var("CANDLE_NUM_THREADS", n.to_string());
    }
    let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
    (n, source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_max_parsing() {
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("200000 100000\n"), Some(2));
        assert_eq!(parse_cpu_max("150000 100000"), Some(2));
        assert_eq!(parse_cpu_max("50000 100000"), Some(1));
        assert_eq!(parse_cpu_max("garbage"), None);
    }

    #[test]
    fn v1_and_v2_files() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(cgroup_cpu_quota(d.path()), None);
        std::fs::create_dir(d.path().join("cpu")).unwrap();
        std::fs::write(d.path().join("cpu/cpu.cfs_quota_us"), "300000\n").unwrap();
        std::fs::write(d.path().join("cpu/cpu.cfs_period_us"), "100000\n").unwrap();
        assert_eq!(cgroup_cpu_quota(d.path()), Some(3));
        std::fs::write(d.path().join("cpu.max"), "400000 100000\n").unwrap();
        assert_eq!(cgroup_cpu_quota(d.path()), Some(4));
    }

    #[test]
    fn configured_wins() {
        assert_eq!(decide(3), (3, ThreadSource::Config));
        assert!(decide(0).0 >= 1);
    }
}
