//! Compute thread count from the CPUs this process may actually use, not the host's core count.
//!
//! A container limited to 2 CPUs on a 64-core host must not start 64 compute threads: they
//! would fight over 2 CPUs' worth of time slices. [`std::thread::available_parallelism`]
//! already takes the CPU affinity mask and (on Linux) the cgroup CPU quota into account.

/// Where the thread count came from, for the startup log and `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
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

/// Run `work` on a compute pool of its own with `threads` threads (0: as many as the global
/// pool): each model's worker runs its whole loop in its own pool, so the rayon tasks of one
/// model's forward pass never queue behind another's (an embedding batch does not wait for a
/// 256-token prompt chunk to finish), and an operator can cap either model. The worker thread
/// itself becomes one of the pool's threads while `work` runs. If the pool cannot be built, the
/// work runs on the global pool.
pub fn run_in_pool<R: Send>(name: &str, threads: usize, work: impl FnOnce() -> R + Send) -> R {
    let n = if threads > 0 { threads } else { rayon::current_num_threads() };
    let prefix = name.to_string();
    match rayon::ThreadPoolBuilder::new().num_threads(n).thread_name(move |i| format!("{prefix}-{i}")).build() {
        Ok(pool) => pool.install(work),
        Err(e) => {
            tracing::warn!(pool = name, error = %e, "cannot start a compute pool; using the shared one");
            work()
        }
    }
}

/// Start a model's worker thread, named `name`, running `work` in a pool of its own (see
/// [`run_in_pool`]).
///
/// # Panics
/// When the operating system refuses a new thread (at startup, where nothing can go on).
pub fn spawn_worker(name: &str, threads: usize, work: impl FnOnce() + Send + 'static) {
    let pool = name.to_string();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || run_in_pool(&pool, threads, work))
        .unwrap_or_else(|e| panic!("cannot start the {name} thread: {e}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_wins() {
        assert_eq!(decide(3), (3, ThreadSource::Config));
        assert!(decide(0).0 >= 1);
    }

    #[test]
    fn a_pool_has_the_threads_asked_for() {
        assert_eq!(run_in_pool("test", 3, rayon::current_num_threads), 3);
        let name = run_in_pool("test", 2, || std::thread::current().name().map(str::to_string));
        assert!(name.is_some_and(|n| n.starts_with("test-")), "the work runs on the pool's own threads");
    }
}
