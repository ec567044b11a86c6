//! aisle: self-hosted recommendations, product search and a grounded shopping assistant.
//!
//! The crate is a library with one binary (`src/main.rs`). Modules are layered: each imports
//! only modules below it (ARCHITECTURE.md has the map and the order; a test keeps it true).
//! From the bottom up:
//!
//! - [`error`], [`fault`]: the one error type; crash-test fault points.
//! - [`config`]: one [`config::Config`], layered file < environment < flags, a file per section.
//! - [`measure`]: percentiles and peak memory for the reports.
//! - [`infer`]: devices, threads, the embedding and chat models and their queues.
//! - [`store`]: the vector store (Qdrant, in-process by default) behind one [`store::Store`].
//! - [`privacy`]: pseudonymous keys, PII redaction, API keys, per-key limits, the audit log.
//! - [`catalog`]: products (schema, embedding text, import, search) and the product signals.
//! - [`events`]: events, live customer profiles, popularity and co-occurrence.
//! - [`recommend`]: fused multi-source recommendations, statistics, collaborative training.
//! - [`assistant`]: the grounded shopping assistant (understanding, retrieval, answers, sessions).
//! - [`eval`]: offline evaluation of recommenders.
//! - [`app`]: the composition root (services, background work, erasure and export).
//! - [`api`]: the HTTP edge (axum), problem+json errors.
//! - [`bench`]: `aisle bench`.
//! - [`cli`]: the `aisle` command.

#![warn(missing_docs)]

pub mod api;
pub mod app;
pub mod assistant;
pub mod bench;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod error;
pub mod eval;
pub mod events;
pub mod fault;
pub mod infer;
pub mod measure;
pub mod privacy;
pub mod recommend;
pub mod store;

pub use error::{Error, FieldError, Result};

/// mimalloc keeps freed pages for reuse: candle allocates and frees large activation tensors on
/// every forward pass, which with the system allocator costs page faults and zeroing each time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
