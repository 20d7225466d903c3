//! Consumer groups: the classic rebalance protocol, the consumer protocol
//! (KIP-848, `consumer`) and committed offsets.
//!
//! Each group is owned by one shard: the owner of its `__consumer_offsets`
//! partition (Kafka's rule: `abs(java_hash(group_id)) % partitions`). The
//! owner's [`GroupService`] keeps a [`GroupCoordinator`], a plain state
//! machine fed requests and ticks; it persists offsets and group metadata as
//! records in that partition (`log_records`) and replays them when it loads
//! the partition.

pub mod consumer;
mod coordinator;
mod group;
pub mod log_records;
#[cfg(test)]
mod mixed_tests;
mod service;

pub use coordinator::{GroupConfig, GroupCoordinator, GroupMetadata, MemberMetadata, MigrationPolicy};
pub use group::GroupState;
pub(crate) use service::GroupService;

use bytes::Bytes;
use futures::channel::oneshot;

/// Kafka's `offsets.topic.num.partitions` default.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
pub const OFFSETS_TOPIC_PARTITIONS: i32 = 50;

/// The `__consumer_offsets` partition that holds `group_id` (Java's String.hashCode).
pub fn offsets_partition_of(group_id: &str) -> i32 {
    java_hash_partition(group_id, OFFSETS_TOPIC_PARTITIONS)
}

/// Kafka's placement of a key in an internal topic: `abs(key.hashCode()) % partitions`.
pub fn java_hash_partition(key: &str, partitions: i32) -> i32 {
    let hash = key.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
    // Kafka's Utils.abs maps i32::MIN to 0.
    (if hash == i32::MIN { 0 } else { hash.abs() }) % partitions
}

/// How the coordinator answers a request that must wait (JoinGroup, SyncGroup).
pub type Responder<T> = oneshot::Sender<T>;

/// Group errors, each one Kafka error code at the protocol edge.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupError {
    #[error("the coordinator is not available")]
    CoordinatorNotAvailable,
    #[error("the coordinator is loading the group's state")]
    CoordinatorLoadInProgress,
    #[error("this broker does not coordinate the group")]
    NotCoordinator,
    #[error("invalid group id")]
    InvalidGroupId,
    #[error("unknown member id")]
    UnknownMemberId,
    #[error("illegal generation")]
    IllegalGeneration,
    #[error("rebalance in progress")]
    RebalanceInProgress,
    #[error("session timeout outside the broker's allowed range")]
    InvalidSessionTimeout,
    #[error("inconsistent group protocol")]
    InconsistentGroupProtocol,
    #[error("member id required")]
    MemberIdRequired,
    #[error("fenced instance id")]
    FencedInstanceId,
    #[error("group id not found")]
    GroupIdNotFound,
    #[error("the group is not empty")]
    NonEmptyGroup,
    #[error("the group is subscribed to the topic")]
    GroupSubscribedToTopic,
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    #[error("offset metadata too large")]
    OffsetMetadataTooLarge,
    #[error("the group has reached its maximum size")]
    GroupMaxSizeReached,
    #[error("the offset is pending in a transaction")]
    UnstableOffsetCommit,
    #[error("the member epoch is fenced")]
    FencedMemberEpoch,
    #[error("the member epoch is stale")]
    StaleMemberEpoch,
    #[error("the instance id is still used by another member")]
    UnreleasedInstanceId,
    #[error("unsupported assignor")]
    UnsupportedAssignor,
    #[error("invalid regular expression")]
    InvalidRegularExpression,
    #[error("invalid request")]
    InvalidRequest,
}

pub struct JoinRequest {
    pub group_id: String,
    /// Empty for a member joining for the first time.
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    /// JoinGroup v0 has none: the session timeout stands in for it.
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// v4+: a new dynamic member first gets MEMBER_ID_REQUIRED and its id (KIP-394).
    pub require_known_member_id: bool,
}

#[derive(Debug, Clone, Default)]
pub struct JoinResponse {
    pub error: Option<GroupError>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Only for the leader: every member and its metadata for the chosen protocol.
    pub members: Vec<JoinedMember>,
}

impl JoinResponse {
    /// The answer when the group's coordinator cannot serve it (yet).
    pub fn failed(error: GroupError) -> JoinResponse {
        JoinResponse { error: Some(error), ..Default::default() }
    }
}

#[derive(Debug, Clone)]
pub struct JoinedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

pub struct SyncRequest {
    pub group_id: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    /// From the leader: (member id, assignment).
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, Default)]
pub struct SyncResponse {
    pub error: Option<GroupError>,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub assignment: Bytes,
}

impl SyncResponse {
    /// The answer when the group's coordinator cannot serve it (yet).
    pub fn failed(error: GroupError) -> SyncResponse {
        SyncResponse { error: Some(error), ..Default::default() }
    }
}

pub struct MemberRef {
    pub member_id: String,
    pub instance_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_timestamp_ms: i64,
}

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    /// GROUP_ID_NOT_FOUND for a consumer (KIP-848) group, as Kafka answers.
    pub error: Option<GroupError>,
    pub group_id: String,
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

impl GroupDescription {
    /// The answer when the group's coordinator cannot serve it (yet).
    pub fn failed(group_id: &str, error: GroupError) -> GroupDescription {
        GroupDescription {
            error: Some(error),
            group_id: group_id.to_string(),
            state: GroupState::Dead,
            protocol_type: String::new(),
            protocol: String::new(),
            members: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct MemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A group as ListGroups shows it.
#[derive(Debug, Clone)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    /// Kafka's state name.
    pub state: &'static str,
    /// "classic" or "consumer" (ListGroups v5).
    pub group_type: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_partition_matches_kafka() {
        // abs(String.hashCode()) % 50: "my-group" hashes to -1906497762.
        assert_eq!(offsets_partition_of(""), 0);
        assert_eq!(offsets_partition_of("my-group"), 12);
        assert_eq!(offsets_partition_of("test-consumer-group"), 31);
    }
}
