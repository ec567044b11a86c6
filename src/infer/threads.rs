//! Compute thread count from the CPUs this process may actually use, not the host's core count.
//!
//! A container limited to 2 CPUs on a 64-core host must not start 64 compute threads: they
//! would fight over 2 CPUs' worth of time slices. [`std::thread::available_parallelism`]
//! already takes the CPU affinity mask and (on Linux) the cgroup CPU quota into account.

/// Where the thread count came from, for the startup log and `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ThreadSource {
    /// Set in the configuration.
    Config,
    /// From the CPUs this process may run on (affinity mask and cgroup CPU quota), as
    /// [`std::thread::available_parallelism`] reports them.
    Affinity,
}

/// Decide the compute thread count: `configured` if non-zero, else the available parallelism.
pub fn decide(configured: usize) -> (usize, ThreadSource) {
    if configured > 0 {
        return (configured, ThreadSource::Config);
    }
    let available = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    (available, ThreadSource::Affinity)
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
    fn configured_wins() {
        assert_eq!(decide(3), (3, ThreadSource::Config));
        assert!(decide(0).0 >= 1);
    }
}
