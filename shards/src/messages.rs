//! Messages shards send each other over the glommio channel mesh.
//!
//! Every request carries a [`crate::reply::ReplySender`] for its answer,
//! which wakes the awaiting task on the requesting shard. Partition
//! work is a [`ShardTask`], a closure that captures a reply sender of its
//! own answer's type, so no caller matches a reply it cannot get.

use crate::error::TopicError;
use crate::groups::{CommittedOffset, GroupError};
use crate::metadata::{MetadataSnapshot, TopicMetadata};
use crate::reply;
use crate::shard::{Shard, ShardStats};
use crate::transactions::TxnError;
use futures::future::LocalBoxFuture;
use std::sync::Arc;

/// Work for another shard, run there with that shard's state; it answers
/// through a channel of its own type that it captured (see `Shard::on_shard`).
pub type ShardTask = Box<dyn for<'a> FnOnce(&'a Shard) -> LocalBoxFuture<'a, ()> + Send>;

/// ListOffsets' MAX_TIMESTAMP (-3).
pub const MAX_TIMESTAMP: i64 = -3;

/// A producer of a partition, as DescribeProducers shows it.
#[derive(Debug, Clone)]
pub struct ProducerDescription {
    pub producer_id: i64,
    pub epoch: i16,
    pub last_sequence: i32,
    /// The first offset of its open transaction, or -1.
    pub current_txn_start_offset: i64,
}

pub type TopicResults = Vec<Result<TopicMetadata, TopicError>>;

/// TxnOffsetCommit: offsets committed as part of a producer's transaction.
pub struct TxnCommit {
    pub transactional_id: String,
    pub producer_id: i64,
    pub epoch: i16,
    pub member_id: String,
    pub instance_id: Option<String>,
    /// -1 from clients that name no member (before v3).
    pub generation: i32,
    pub offsets: Vec<OffsetToCommit>,
}

/// Why one offset of a TxnOffsetCommit was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnOffsetError {
    Group(GroupError),
    Txn(TxnError),
}

pub struct OffsetToCommit {
    pub topic: String,
    pub partition: i32,
    pub offset: CommittedOffset,
}

pub type GroupResult<T> = Result<T, GroupError>;

/// What an OffsetFetch asks of one group.
pub struct OffsetQuery {
    /// None: every committed offset of the group.
    pub partitions: Option<Vec<(String, i32)>>,
    /// KIP-447: offsets pending in a transaction are refused.
    pub require_stable: bool,
    /// v9+: the consumer-protocol member asking, with its epoch.
    pub member: Option<(String, i32)>,
}

/// OffsetFetch's answer per partition, in request order.
pub type FetchedOffsets = Vec<((String, i32), GroupResult<Option<CommittedOffset>>)>;

pub enum ShardMessage {
    Run(ShardTask),
    /// For the admin endpoint: this shard's counters and partition figures.
    Stats {
        reply: reply::ReplySender<ShardStats>,
    },
    /// From the controller, first of two phases: drop the partitions of
    /// deleted topics and open those the snapshot gives this shard.
    PrepareMetadata {
        snapshot: Arc<MetadataSnapshot>,
        deleted: Vec<TopicMetadata>,
        reply: reply::ReplySender<()>,
    },
    /// Second phase, once every shard has prepared: serve by this snapshot.
    AdoptMetadata {
        snapshot: Arc<MetadataSnapshot>,
        reply: reply::ReplySender<()>,
    },
}
