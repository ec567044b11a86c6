//! aisle: self-hosted recommendations, product search and a grounded shopping assistant.
//!
//! The crate is a library with one binary (`src/main.rs`). Each module owns one part of the
//! system and knows nothing of the layers above it; see `DESIGN.md` for the map:
//!
//! - [`config`]: one [`config::Config`], layered file < environment < flags.
//! - [`infer`]: devices, threads, the embedding model and its batching queue.
//! - [`store`]: the vector store (Qdrant, in-process by default) behind one [`store::Store`].
//! - [`catalog`]: the product schema, validation, embedding text, import and search.
//! - [`assistant`]: the grounded shopping assistant (understanding, retrieval, grounding, sessions).
//! - [`api`]: the HTTP edge (axum), problem+json errors.
//! - [`cli`]: the `aisle` command.

pub mod api;
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
pub mod models;
pub mod privacy;
pub mod recommend;
pub mod store;

pub use error::{Error, FieldError, Result};

/// mimalloc keeps freed pages for reuse: candle allocates and frees large activation tensors on
/// every forward pass, which with the system allocator costs page faults and zeroing each time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
