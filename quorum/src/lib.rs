//! The metadata quorum (issue 14): a Raft log of broker registrations,
//! topics, configs and partition assignments, run by openraft on shard 0 of
//! each controller voter and applied by the `Controller`
//! (`shards/src/controller.rs`). The plan and what the spike measured are in
//! `shards/METADATA-QUORUM.md`.
//!
//! Built so far: [`runtime::WeirRuntime`], openraft's async runtime on
//! Weir's (glommio through `weir-runtime`, with its test clock), which
//! passes openraft's own runtime test suite. Storage, network and the
//! controller's state machine come next.

pub mod runtime;
