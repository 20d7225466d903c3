//! Shard-layer errors as Kafka error codes: the protocol edge's one mapping.

use kafka_protocol::error::ResponseError;
use weir_engine::EngineError;
use weir_shards::{PartitionError, TopicError};

pub fn partition_error_code(e: &PartitionError) -> i16 {
    let error = match e {
        PartitionError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
        PartitionError::ShardUnavailable => ResponseError::NotLeaderOrFollower,
        PartitionError::Engine(EngineError::CorruptMessage(_)) => ResponseError::CorruptMessage,
        PartitionError::Engine(EngineError::MessageTooLarge(_)) => ResponseError::MessageTooLarge,
        PartitionError::Engine(EngineError::OffsetOutOfRange { .. }) => ResponseError::OffsetOutOfRange,
        PartitionError::Engine(EngineError::Io(_)) => ResponseError::KafkaStorageError,
        PartitionError::Engine(EngineError::Closed) => ResponseError::NotLeaderOrFollower,
    };
    error.code()
}

pub fn topic_error_code(e: &TopicError) -> i16 {
    let error = match e {
        TopicError::AlreadyExists => ResponseError::TopicAlreadyExists,
        TopicError::Unknown => ResponseError::UnknownTopicOrPartition,
        TopicError::InvalidName(_) => ResponseError::InvalidTopicException,
        TopicError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        TopicError::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
        TopicError::Storage(_) => ResponseError::KafkaStorageError,
        TopicError::ControllerUnavailable => ResponseError::NotController,
    };
    error.code()
}
