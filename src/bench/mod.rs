//! Benchmarks that run against the real engines: synthetic shops written through the real
//! write paths, a server in the same process, and load over loopback HTTP. Used by
//! `benches/` (and by `aisle bench`).

pub mod load;
pub mod shop;
pub mod suite;
