//! Shard-layer errors as Kafka error codes: the protocol edge's one mapping.

use kafka_protocol::error::ResponseError;
use weir_engine::EngineError;
use weir_shards::groups::GroupError;
use weir_shards::producers::ProducerError;
use weir_shards::transactions::TxnError;
use weir_shards::{PartitionError, TopicError};

pub fn partition_error_code(e: &PartitionError) -> i16 {
    let error = match e {
        PartitionError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
        PartitionError::NotLeaderOrFollower => ResponseError::NotLeaderOrFollower,
        PartitionError::NotEnoughReplicas => ResponseError::NotEnoughReplicas,
        PartitionError::ShardUnavailable => ResponseError::NotLeaderOrFollower,
        PartitionError::Offline => ResponseError::KafkaStorageError,
        PartitionError::Engine(EngineError::CorruptMessage(_)) => ResponseError::CorruptMessage,
        PartitionError::Engine(EngineError::InvalidRecord(_)) => ResponseError::InvalidRecord,
        PartitionError::Engine(EngineError::InvalidTimestamp(_)) => ResponseError::InvalidTimestamp,
        PartitionError::Engine(EngineError::MessageTooLarge(_)) => ResponseError::MessageTooLarge,
        PartitionError::Engine(EngineError::OffsetOutOfRange { .. }) => ResponseError::OffsetOutOfRange,
        PartitionError::Engine(EngineError::Io(_)) => ResponseError::KafkaStorageError,
        PartitionError::Engine(EngineError::Closed) => ResponseError::NotLeaderOrFollower,
        PartitionError::Producer(ProducerError::OutOfOrderSequence) => ResponseError::OutOfOrderSequenceNumber,
        PartitionError::Producer(ProducerError::InvalidProducerEpoch) => ResponseError::InvalidProducerEpoch,
        // Clients count this as written: the batch in flight will be stored once.
        PartitionError::DuplicateInFlight => ResponseError::DuplicateSequenceNumber,
        // The verification of a transactional batch could not reach its
        // coordinator: retriable for the producer, as Kafka answers it.
        PartitionError::Txn(
            TxnError::CoordinatorNotAvailable
            | TxnError::CoordinatorLoadInProgress
            | TxnError::NotCoordinator
            | TxnError::ConcurrentTransactions,
        ) => ResponseError::NotEnoughReplicas,
        // A producer fenced by a newer one with its transactional id gets
        // INVALID_PRODUCER_EPOCH from Produce, as from Kafka's verification:
        // librdkafka takes it as fatal (fenced), PRODUCER_FENCED there as an
        // abortable error, so the fenced producer would go on.
        PartitionError::Txn(e) => return txn_error_code(*e, false),
        PartitionError::InvalidRecord => ResponseError::InvalidRecord,
        PartitionError::OffsetNotAvailable => ResponseError::OffsetNotAvailable,
    };
    error.code()
}

pub fn topic_error_code(e: &TopicError) -> i16 {
    let error = match e {
        TopicError::AlreadyExists => ResponseError::TopicAlreadyExists,
        TopicError::Unknown => ResponseError::UnknownTopicOrPartition,
        TopicError::InvalidName(_) => ResponseError::InvalidTopicException,
        TopicError::InvalidPartitions(_) | TopicError::NotAnIncrease(_) => ResponseError::InvalidPartitions,
        TopicError::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
        TopicError::InvalidReplicationFactor { .. } | TopicError::ReplicationFactorChange { .. } => {
            ResponseError::InvalidReplicationFactor
        }
        TopicError::InvalidConfig(_) => ResponseError::InvalidConfig,
        TopicError::InvalidRequest(_) => ResponseError::InvalidRequest,
        TopicError::Storage(_) => ResponseError::KafkaStorageError,
        TopicError::ControllerUnavailable => ResponseError::NotController,
        TopicError::FencedLeaderEpoch => ResponseError::FencedLeaderEpoch,
        TopicError::InvalidUpdateVersion => ResponseError::InvalidUpdateVersion,
        TopicError::IneligibleReplica(_) => ResponseError::IneligibleReplica,
        TopicError::AuthorizationFailed => ResponseError::TopicAuthorizationFailed,
        TopicError::ElectionNotNeeded => ResponseError::ElectionNotNeeded,
        TopicError::PreferredLeaderNotAvailable => ResponseError::PreferredLeaderNotAvailable,
        TopicError::EligibleLeadersNotAvailable => ResponseError::EligibleLeadersNotAvailable,
        TopicError::NoReassignmentInProgress => ResponseError::NoReassignmentInProgress,
    };
    error.code()
}

pub fn group_error_code(e: Option<GroupError>) -> i16 {
    let Some(e) = e else { return 0 };
    let error = match e {
        GroupError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
        GroupError::CoordinatorLoadInProgress => ResponseError::CoordinatorLoadInProgress,
        GroupError::NotCoordinator => ResponseError::NotCoordinator,
        GroupError::InvalidGroupId => ResponseError::InvalidGroupId,
        GroupError::UnknownMemberId => ResponseError::UnknownMemberId,
        GroupError::IllegalGeneration => ResponseError::IllegalGeneration,
        GroupError::RebalanceInProgress => ResponseError::RebalanceInProgress,
        GroupError::InvalidSessionTimeout => ResponseError::InvalidSessionTimeout,
        GroupError::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol,
        GroupError::MemberIdRequired => ResponseError::MemberIdRequired,
        GroupError::FencedInstanceId => ResponseError::FencedInstanceId,
        GroupError::GroupIdNotFound => ResponseError::GroupIdNotFound,
        GroupError::NonEmptyGroup => ResponseError::NonEmptyGroup,
        GroupError::GroupSubscribedToTopic => ResponseError::GroupSubscribedToTopic,
        GroupError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
        GroupError::OffsetMetadataTooLarge => ResponseError::OffsetMetadataTooLarge,
        GroupError::GroupMaxSizeReached => ResponseError::GroupMaxSizeReached,
        GroupError::UnstableOffsetCommit => ResponseError::UnstableOffsetCommit,
        GroupError::FencedMemberEpoch => ResponseError::FencedMemberEpoch,
        GroupError::StaleMemberEpoch => ResponseError::StaleMemberEpoch,
        GroupError::UnreleasedInstanceId => ResponseError::UnreleasedInstanceId,
        GroupError::UnsupportedAssignor => ResponseError::UnsupportedAssignor,
        GroupError::InvalidRegularExpression => ResponseError::InvalidRegularExpression,
        GroupError::InvalidRequest => ResponseError::InvalidRequest,
    };
    error.code()
}

/// `group_error_code` of a result.
pub fn group_result_code<T>(result: &Result<T, GroupError>) -> i16 {
    group_error_code(result.as_ref().err().copied())
}

/// A transaction error as the request's version knows it: PRODUCER_FENCED
/// (KIP-588) only where `fenced_known`, INVALID_PRODUCER_EPOCH before.
pub fn txn_error_code(e: TxnError, fenced_known: bool) -> i16 {
    let error = match e {
        TxnError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
        TxnError::CoordinatorLoadInProgress => ResponseError::CoordinatorLoadInProgress,
        TxnError::NotCoordinator => ResponseError::NotCoordinator,
        TxnError::InvalidProducerIdMapping => ResponseError::InvalidProducerIdMapping,
        TxnError::ProducerFenced if fenced_known => ResponseError::ProducerFenced,
        TxnError::ProducerFenced => ResponseError::InvalidProducerEpoch,
        TxnError::ConcurrentTransactions => ResponseError::ConcurrentTransactions,
        TxnError::InvalidTxnState => ResponseError::InvalidTxnState,
        TxnError::InvalidTransactionTimeout => ResponseError::InvalidTransactionTimeout,
        TxnError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
        TxnError::OperationNotAttempted => ResponseError::OperationNotAttempted,
        TxnError::InvalidTransactionalId => ResponseError::InvalidRequest,
        TxnError::CoordinatorFenced => ResponseError::TransactionCoordinatorFenced,
    };
    error.code()
}

/// `txn_error_code` of a result.
pub fn txn_result_code<T>(result: &Result<T, TxnError>, fenced_known: bool) -> i16 {
    result.as_ref().err().map_or(0, |e| txn_error_code(*e, fenced_known))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fenced_transactional_produce_is_an_invalid_epoch() {
        let fenced = PartitionError::Txn(TxnError::ProducerFenced);
        assert_eq!(partition_error_code(&fenced), ResponseError::InvalidProducerEpoch.code());
        assert_eq!(txn_error_code(TxnError::ProducerFenced, true), ResponseError::ProducerFenced.code());
    }
}
