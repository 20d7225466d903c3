//! Messages shards send each other over the glommio channel mesh.
//!
//! Every request carries a oneshot sender for its reply; glommio wakes the
//! awaiting task on the requesting shard when the owner answers.

use crate::error::{PartitionError, TopicError};
use crate::metadata::{MetadataSnapshot, NewTopic, TopicMetadata};
use crate::shard::{FetchedPartition, PartitionOffsets};
use bytes::Bytes;
use futures::channel::oneshot;
use std::sync::Arc;
use std::time::Duration;
use weir_engine::{AppendInfo, Durability};

/// Work on one partition, run by the shard that owns it.
#[derive(Debug)]
pub enum PartitionOp {
    Produce {
        records: Bytes,
        durability: Durability,
    },
    Fetch {
        offset: i64,
        max_bytes: usize,
    },
    Offsets,
    /// Resolve once the high watermark passes `offset`, or after `timeout`.
    WaitBeyond {
        offset: i64,
        timeout: Duration,
    },
}

#[derive(Debug)]
pub enum PartitionReply {
    Produced(AppendInfo),
    Fetched(FetchedPartition),
    Offsets(PartitionOffsets),
    Waited,
}

pub type TopicResults = Vec<Result<TopicMetadata, TopicError>>;

pub enum ShardMessage {
    Partition {
        topic: String,
        partition: i32,
        op: PartitionOp,
        reply: oneshot::Sender<Result<PartitionReply, PartitionError>>,
    },
    /// To the controller shard.
    CreateTopics { topics: Vec<NewTopic>, reply: oneshot::Sender<TopicResults> },
    /// To the controller shard.
    DeleteTopics { names: Vec<String>, reply: oneshot::Sender<TopicResults> },
    /// From the controller: adopt this snapshot, open new and drop deleted partitions.
    MetadataChanged { snapshot: Arc<MetadataSnapshot>, deleted: Vec<TopicMetadata>, reply: oneshot::Sender<()> },
}
