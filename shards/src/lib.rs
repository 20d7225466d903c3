//! The thread-per-core layer: one shard per core, each owning its partitions.
//!
//! A [`Shard`] is the state of one glommio executor. Every partition is owned by
//! exactly one shard ([`ownership::owner_of`]); a shard that needs a partition it
//! does not own sends a [`messages::ShardMessage`] to the owner over the glommio
//! channel mesh and awaits the reply. Topic metadata is owned by the controller
//! shard (shard 0), which persists it and pushes an immutable snapshot to every
//! shard after each change.

mod broker_client;
pub mod config;
mod controller;
mod coordinator_partitions;
pub mod deleted_dirs;
pub mod error;
pub mod groups;
pub mod listen;
pub mod messages;
pub mod metadata;
pub mod ownership;
pub mod placement;
pub mod producers;
mod replication;
pub mod reply;
pub mod runtime;
pub mod shard;
pub mod throttle;
pub mod topic_config;
pub mod transactions;

pub use config::{BrokerConfig, Listener, SecurityProtocol, SslClientAuth};
pub use controller::QuorumUnknown;
pub use error::{PartitionError, TopicError};
pub use metadata::{MetadataSnapshot, NewTopic, TopicMetadata};
pub use runtime::{run, ConnectionLimits, ConnectionPermit, ConnectionRefused, RuntimeError, ShutdownSignal};
pub use shard::{
    answers_at_once, FetchedPartition, GroupOffsetStats, HistogramSnapshot, InFlight, InFlightGuard, LongPoll,
    PartitionOffsets, PartitionRead, PartitionReads, PartitionStats, ReadResult, Shard, ShardMetrics, ShardStats,
    LATENCY_BUCKETS_US,
};
pub use weir_quorum::{QuorumStatus, ReplicaProgress};
