//! Integration tests of aisle by capability. One test binary: the real server is started once
//! (see `harness`) and shared by the tests that can share it.

mod harness;

mod architecture;
mod assistant;
mod chat;
mod cluster;
mod console;
mod contract;
mod durability;
mod embed;
mod errors;
mod experiments;
mod import;
mod migrate;
mod privacy;
mod products;
mod qdrant;
mod ranker;
mod recommend;
mod remote;
mod replicas;
mod rules;
mod search;
mod sim;
mod store;
mod train;
