//! Messages shards send each other over the glommio channel mesh.
//!
//! Every request carries a oneshot sender for its reply; glommio wakes the
//! awaiting task on the requesting shard when the owner answers.

use crate::error::{PartitionError, TopicError};
use crate::groups::{
    CommittedOffset, GroupDescription, GroupError, GroupListing, JoinRequest, JoinResponse, MemberRef, SyncRequest,
    SyncResponse,
};
use crate::metadata::{ConfigAlteration, MetadataSnapshot, NewTopic, TopicConfigs, TopicMetadata};
use crate::shard::{FetchedPartition, PartitionOffsets, ProducedPartition, ShardStats};
use bytes::Bytes;
use futures::channel::oneshot;
use std::sync::Arc;
use std::time::Duration;
use weir_engine::Durability;

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
    /// ListOffsets by timestamp: the first offset whose record timestamp is
    /// at least `timestamp`; [`MAX_TIMESTAMP`]: the record with the largest.
    OffsetForTimestamp {
        timestamp: i64,
    },
    /// DeleteRecords: move the log start offset up to `before_offset`.
    DeleteRecords {
        before_offset: i64,
    },
    /// Resolve once the high watermark passes `offset`, or after `timeout`.
    WaitBeyond {
        offset: i64,
        timeout: Duration,
    },
}

/// ListOffsets' MAX_TIMESTAMP (-3).
pub const MAX_TIMESTAMP: i64 = -3;

#[derive(Debug)]
pub enum PartitionReply {
    Produced(ProducedPartition),
    Fetched(FetchedPartition),
    Offsets(PartitionOffsets),
    /// (offset, timestamp) of the record found, if any.
    TimestampOffset(Option<(i64, i64)>),
    /// The log start offset after DeleteRecords.
    RecordsDeleted(i64),
    Waited,
}

pub type TopicResults = Vec<Result<TopicMetadata, TopicError>>;

/// Work on one consumer group, run by the shard that owns the group.
pub enum GroupOp {
    Join(JoinRequest),
    Sync(SyncRequest),
    Heartbeat {
        member_id: String,
        instance_id: Option<String>,
        generation: i32,
    },
    Leave(Vec<MemberRef>),
    Commit {
        member_id: String,
        instance_id: Option<String>,
        generation: i32,
        offsets: Vec<OffsetToCommit>,
    },
    /// `None`: every committed offset of the group.
    FetchOffsets(Option<Vec<(String, i32)>>),
    Describe,
    /// Every group of the shard it is sent to (the group id is ignored).
    List,
    Delete,
    DeleteOffsets(Vec<(String, i32)>),
}

pub struct OffsetToCommit {
    pub topic: String,
    pub partition: i32,
    pub offset: CommittedOffset,
}

pub type GroupResult<T> = Result<T, GroupError>;

pub enum GroupReply {
    Join(JoinResponse),
    Sync(SyncResponse),
    Heartbeat(GroupResult<()>),
    /// One result per member, in request order.
    Leave(Vec<GroupResult<()>>),
    /// One result per offset, in request order.
    Commit(Vec<GroupResult<()>>),
    Offsets(Vec<((String, i32), Option<CommittedOffset>)>),
    Describe(GroupDescription),
    List(Vec<GroupListing>),
    Delete(GroupResult<()>),
    DeleteOffsets(GroupResult<Vec<GroupResult<()>>>),
}

pub enum ShardMessage {
    Partition {
        topic: String,
        partition: i32,
        op: PartitionOp,
        reply: oneshot::Sender<Result<PartitionReply, PartitionError>>,
    },
    /// To the controller shard.
    CreateTopics {
        topics: Vec<(NewTopic, TopicConfigs)>,
        reply: oneshot::Sender<TopicResults>,
    },
    /// To the controller shard: change the configs of topics (each result
    /// holds the topic with its new configs).
    AlterTopicConfigs {
        alterations: Vec<(String, ConfigAlteration)>,
        validate_only: bool,
        reply: oneshot::Sender<TopicResults>,
    },
    /// To the controller shard.
    /// To the controller shard: a new producer id (InitProducerId).
    AllocateProducerId {
        reply: oneshot::Sender<Result<i64, TopicError>>,
    },
    DeleteTopics {
        names: Vec<String>,
        reply: oneshot::Sender<TopicResults>,
    },
    Group {
        group_id: String,
        op: GroupOp,
        reply: oneshot::Sender<GroupReply>,
    },
    /// For the admin endpoint: this shard's counters and partition figures.
    Stats {
        reply: oneshot::Sender<ShardStats>,
    },
    /// From the controller, first of two phases: drop the partitions of
    /// deleted topics and open those the snapshot gives this shard.
    PrepareMetadata {
        snapshot: Arc<MetadataSnapshot>,
        deleted: Vec<TopicMetadata>,
        reply: oneshot::Sender<()>,
    },
    /// Second phase, once every shard has prepared: serve by this snapshot.
    AdoptMetadata {
        snapshot: Arc<MetadataSnapshot>,
        reply: oneshot::Sender<()>,
    },
}
