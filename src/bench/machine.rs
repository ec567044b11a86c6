//! Facts about the machine a bench report comes from (CPU, SIMD, threads, commit) and its
//! measured f32 matrix-multiply rate, the basis of the compute-bound anchors.
//!
//! Not for: measuring aisle's own engines (the sub-benchmark modules do) or peak memory
//! (`crate::measure`).

use std::path::Path;
use std::time::Instant;

use candle_core::{Device, Tensor};
use serde::Serialize;

use crate::error::Result;

/// The machine the figures come from.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPU model.
    pub cpu: String,
    /// Threads used.
    pub threads: usize,
    /// Logical CPUs the machine has.
    pub cpus: usize,
    /// SIMD the CPU has (of those that matter here) and what this binary was built for.
    pub simd: Vec<String>,
    /// Compiled-in target features.
    pub built_for: Vec<String>,
    /// Device.
    pub device: String,
    /// Git commit of the working tree.
    pub commit: String,
    /// When.
    pub date: String,
}

/// Facts about this machine.
pub fn machine(threads: usize, root: &Path) -> Machine {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = info
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let flags: Vec<&str> = info
        .lines()
        .find(|l| l.starts_with("flags"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.split_whitespace().collect())
        .unwrap_or_default();
    let simd =
        ["sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_tile"]
            .iter()
            .filter(|f| flags.contains(f))
            .map(|f| f.to_string())
            .collect();
    let mut built_for = Vec::new();
    if cfg!(target_feature = "avx2") {
        built_for.push("avx2".to_string());
    }
    if cfg!(target_feature = "fma") {
        built_for.push("fma".to_string());
    }
    if cfg!(target_feature = "f16c") {
        built_for.push("f16c".to_string());
    }
    if cfg!(target_feature = "avx512f") {
        built_for.push("avx512f".to_string());
    }
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let dirty = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .current_dir(root)
        .output()
        .ok()
        .is_some_and(|o| !o.stdout.is_empty());
    Machine {
        cpu,
        threads,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        simd,
        built_for,
        device: "cpu".into(),
        commit: if dirty { format!("{commit}+changes") } else { commit },
        date: chrono::Utc::now().to_rfc3339(),
    }
}

/// The machine's f32 matrix-multiply rate (GFLOP/s) with candle, the library every model
/// here runs on: the best of several runs over square products (512, 1024, 2048) and the
/// shapes of a BERT-small batch (2048 rows times 384x1152 and 384x1536), so that the bound is
/// what the hardware reached, not one shape's weak spot. Each shape runs for at least 0.3 s
/// (1 s without `quick`); a busy neighbour lowers a single run, not the best.
pub fn gemm_gflops(quick: bool) -> Result<f64> {
    let mut best = 0.0f64;
    let budget = if quick { 0.3 } else { 1.0 };
    for (m, k, n) in
        [(512usize, 512usize, 512usize), (1024, 1024, 1024), (2048, 2048, 2048), (2048, 384, 1152), (2048, 384, 1536)]
    {
        let a = Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu)?;
        let b = Tensor::randn(0f32, 1.0, (k, n), &Device::Cpu)?;
        let _ = a.matmul(&b)?; // warm up
        let start = Instant::now();
        while start.elapsed().as_secs_f64() < budget {
            let t = Instant::now();
            let c = a.matmul(&b)?;
            let _ = c.dims();
            let s = t.elapsed().as_secs_f64();
            best = best.max(2.0 * (m * k * n) as f64 / s / 1e9);
        }
    }
    Ok(best)
}

/// The machine's memory read bandwidth (GB/s): every compute thread sums its share of a
/// 512 MiB buffer (larger than any cache here), best of several passes. The bound of
/// generating one token, which reads every weight once.
pub fn memory_gbps(quick: bool) -> f64 {
    use rayon::prelude::*;
    let words = (512usize << 20) / 8;
    let buffer: Vec<u64> = (0..words as u64).collect();
    let mut best = 0.0f64;
    let passes = if quick { 5 } else { 15 };
    for _ in 0..passes {
        let t = Instant::now();
        let sum = buffer
            .par_chunks(1 << 16)
            .map(|c| c.iter().fold(0u64, |a, b| a.wrapping_add(*b)))
            .reduce(|| 0, u64::wrapping_add);
        std::hint::black_box(sum);
        best = best.max((words * 8) as f64 / t.elapsed().as_secs_f64() / 1e9);
    }
    best
}
