//! Errors of the shard layer; the protocol edge maps them to Kafka error codes.

use weir_engine::EngineError;

/// Why an operation on one partition failed.
#[derive(thiserror::Error, Debug)]
pub enum PartitionError {
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    /// Another broker leads the partition (or none does).
    #[error("this broker does not lead the partition")]
    NotLeaderOrFollower,
    /// acks=all with fewer in-sync replicas than `min.insync.replicas`.
    #[error("fewer in-sync replicas than min.insync.replicas")]
    NotEnoughReplicas,
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The partition's log could not be opened (damaged or unreadable storage).
    #[error("partition offline: its log could not be opened")]
    Offline,
    /// The owning shard is gone (shutting down).
    #[error("owning shard unavailable")]
    ShardUnavailable,
    /// An idempotent producer's batch out of sequence or from a stale epoch.
    #[error("producer state: {0:?}")]
    Producer(crate::producers::ProducerError),
    /// A retry of a batch that is still being written: it will be stored once.
    #[error("duplicate of a batch still being written")]
    DuplicateInFlight,
    /// A transactional batch the transaction coordinator did not allow.
    #[error("transaction: {0}")]
    Txn(crate::transactions::TxnError),
    /// A leader new in its epoch whose high watermark has not reached the
    /// epoch's start yet (KIP-207): the latest offset it would give may be
    /// below one already given out. Retriable.
    #[error("the high watermark has not reached the start of the leader's epoch")]
    OffsetNotAvailable,
    /// An idempotent produce must carry exactly one batch, and no control batch.
    #[error("an idempotent produce request must carry exactly one batch, not a control batch")]
    InvalidRecord,
}

/// Why a topic could not be created or deleted (travels from the active
/// controller to the broker that asked).
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TopicError {
    #[error("topic already exists")]
    AlreadyExists,
    #[error("unknown topic")]
    Unknown,
    #[error("invalid topic name: {0}")]
    InvalidName(String),
    #[error("invalid partition count {0}")]
    InvalidPartitions(i32),
    /// CreatePartitions with a count that does not add partitions (Kafka's message).
    #[error("{0}")]
    NotAnIncrease(String),
    /// Replica assignments (CreateTopics, CreatePartitions) this cluster
    /// cannot take (Kafka's message).
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    /// Kafka's messages for a replication factor below 1, or above the
    /// number of registered brokers.
    #[error("{}", replication_factor_message(*asked, *brokers))]
    InvalidReplicationFactor { asked: i16, brokers: usize },
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// A request Kafka refuses as a whole (e.g. a static broker config to
    /// change at runtime).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("storage error: {0}")]
    Storage(String),
    #[error("controller shard unavailable")]
    ControllerUnavailable,
    /// AlterPartition from a leader epoch that is not the partition's.
    #[error("the leader epoch in the request is not the partition's")]
    FencedLeaderEpoch,
    /// AlterPartition against a partition epoch another change replaced.
    #[error("the partition epoch in the request is not the partition's")]
    InvalidUpdateVersion,
    /// AlterPartition naming a broker that may not be in the ISR.
    #[error("ineligible replica: {0}")]
    IneligibleReplica(String),
    /// The ACLs refuse the principal the operation on the topic.
    #[error("Authorization failed.")]
    AuthorizationFailed,
    /// ElectLeaders for a partition already led as asked (by its preferred
    /// replica, or by anyone for an unclean election).
    #[error("leader election not needed for the partition")]
    ElectionNotNeeded,
    /// ElectLeaders(PREFERRED) while the preferred replica is fenced or
    /// out of the ISR.
    #[error("the preferred leader is not an unfenced in-sync replica")]
    PreferredLeaderNotAvailable,
    /// ElectLeaders(UNCLEAN) with no unfenced replica at all.
    #[error("no replica of the partition is unfenced")]
    EligibleLeadersNotAvailable,
    /// AlterPartitionReassignments cancelling a partition that is not moving.
    #[error("no partition reassignment is in progress for the partition")]
    NoReassignmentInProgress,
    /// AlterPartitionReassignments v1 changing the number of replicas
    /// without allowing it (KIP-860).
    #[error("the replication factor would change from {from} to {to}, but the request does not allow that")]
    ReplicationFactorChange { from: usize, to: usize },
}

fn replication_factor_message(asked: i16, brokers: usize) -> String {
    if asked < 1 {
        return "Replication factor must be larger than 0, or -1 to use the default value.".into();
    }
    format!(
        "Unable to replicate the partition {asked} time(s): The target replication factor of {asked} cannot be \
         reached because only {brokers} broker(s) are registered."
    )
}
