//! Local inference: devices, compute threads, the embedding model and its batching queue, and
//! chat models with their scheduler.
//!
//! This module knows nothing of Qdrant, HTTP or retail: it turns text into vectors.

pub mod chat;
pub mod embed;
mod encoder;
pub mod queue;
pub mod threads;

pub use embed::{EmbeddingModel, Pooling};
pub use queue::{Embedder, EmbedderInfo};

use crate::error::{Error, Result};

/// Parse `auto|cpu|cuda:N` into a candle device.
///
/// `auto` picks the first CUDA device when the binary was built with the `cuda` feature and
/// a GPU is present, else the CPU.
pub fn select_device(spec: &str) -> Result<candle_core::Device> {
    let spec = spec.trim();
    match spec {
        "cpu" => Ok(candle_core::Device::Cpu),
        "auto" => {
            if cfg!(feature = "cuda")
                && let Ok(d) = candle_core::Device::new_cuda(0)
            {
                return Ok(d);
            }
            Ok(candle_core::Device::Cpu)
        }
        s if s.starts_with("cuda") => {
            let n = match s.strip_prefix("cuda:") {
                Some(n) => n.parse::<usize>().map_err(|_| Error::Config(format!("device '{s}': expected cuda:N")))?,
                None if s == "cuda" => 0,
                None => return Err(Error::Config(format!("unknown device '{s}': use auto, cpu or cuda:N"))),
            };
            if !cfg!(feature = "cuda") {
                return Err(Error::Config(format!(
                    "device '{s}' asked for, but this binary was built without CUDA (cargo build --features cuda)"
                )));
            }
            candle_core::Device::new_cuda(n).map_err(|e| Error::Config(format!("cannot open {s}: {e}")))
        }
        other => Err(Error::Config(format!("unknown device '{other}': use auto, cpu or cuda:N"))),
    }
}

/// A short human name of a device, for logs and reports.
pub fn device_name(device: &candle_core::Device) -> String {
    match device {
        candle_core::Device::Cpu => "cpu".into(),
        candle_core::Device::Cuda(_) => "cuda".into(),
        candle_core::Device::Metal(_) => "metal".into(),
    }
}
