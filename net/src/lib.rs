//! The Kafka wire protocol: framing, one handler per API, the connection loop,
//! and a small blocking client for the `weir` tools and the bench.
//!
//! This crate holds no broker state: handlers decode a request, call the
//! [`weir_shards::Shard`] of the connection's core, and encode the answer.

pub mod admin;
pub mod apis;
mod chunked;
pub mod client;
pub mod codec;
pub mod errors;
pub mod group_member;
pub mod handlers;
pub mod huge_alloc;
pub mod metrics;
pub mod server;

pub use server::serve_shard;
