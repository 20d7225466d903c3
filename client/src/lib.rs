//! A small blocking Kafka client for the `weir` tools, the bench and the
//! integration tests: one connection ([`Client`]), a consumer-group member
//! ([`group_member`]), and the request and response framing they use
//! ([`codec`]). Independent of the broker crates.

mod client;
pub mod codec;
pub mod group_member;

pub use client::Client;
