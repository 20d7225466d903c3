//! The Kafka wire protocol, the broker's side: framing, one handler per API,
//! the connection loop (the client is the `weir-client` crate).
//!
//! This crate holds no broker state: handlers decode a request, call the
//! [`weir_shards::Shard`] of the connection's core, and encode the answer.

pub mod admin;
pub mod apis;
mod chunked;
pub mod codec;
pub mod errors;
pub mod handlers;
pub mod huge_alloc;
pub mod metrics;
pub mod sasl;
pub mod server;
pub mod throttle;
pub mod tls;

pub use server::serve_shard;
