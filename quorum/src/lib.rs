//! The metadata quorum (issue 14): a Raft log of broker registrations,
//! topics, configs and partition assignments, run by openraft on shard 0 of
//! each controller voter and applied by the `Controller`
//! (`shards/src/controller.rs`). The plan and what the spike measured are in
//! `shards/METADATA-QUORUM.md`.
//!
//! Built so far:
//! - [`runtime::WeirRuntime`]: openraft's async runtime on Weir's (glommio
//!   through `weir-runtime`, with its test clock); passes openraft's own
//!   runtime test suite.
//! - [`TypeConfig`]: the Raft types. Commands and replies are bytes, so the
//!   crate knows nothing of the metadata; `Raft` is `!Send`.
//! - [`StateMachine`]: the boundary the controller will implement, and
//!   [`MachineStore`], openraft's state machine over it, snapshotted to a
//!   file.
//! - [`LogStore`]: the Raft log, vote and committed log id, durable in a
//!   directory, with torn tails cut at open and mid-file rot refused. Both
//!   stores pass openraft's storage test suite.
//! - The network between voters (`network`): Raft's RPCs and a forwarded
//!   write or question for the leader, as framed postcard records over TCP.
//! - [`QuorumNode`]: a voter whole, as the broker will use it:
//!   [`QuorumNode::start`] with a [`QuorumConfig`] (voters from
//!   [`parse_voters`]), a [`StateMachine`] and an [`AskHandler`];
//!   [`write`](QuorumNode::write), [`ask_leader`](QuorumNode::ask_leader),
//!   [`leader`](QuorumNode::leader), [`leader_changes`](QuorumNode::leader_changes),
//!   [`shutdown`](QuorumNode::shutdown). Failures are [`QuorumError`]s,
//!   most of them retriable.
//!
//! Next: the controller's state machine on it.

pub mod config;
mod frame;
pub mod log_store;
mod network;
mod node;
pub mod runtime;
pub mod state_machine;
pub mod types;

#[cfg(test)]
mod tests;

pub use config::{parse_voters, QuorumConfig, VotersError};
pub use log_store::LogStore;
pub use network::AskHandler;
pub use node::{QuorumError, QuorumNode, QuorumStatus, ReplicaProgress};
pub use state_machine::{MachineStore, SnapshotBuilder, StateMachine};
pub use types::{Command, NodeId, Raft, Reply, TypeConfig};
