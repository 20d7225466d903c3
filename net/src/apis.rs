//! The APIs and versions this broker implements. ApiVersions advertises exactly
//! this table and the dispatcher refuses anything outside it, so what clients
//! are told is what is implemented.

use kafka_protocol::messages::ApiKey;

pub struct SupportedApi {
    pub key: ApiKey,
    pub min: i16,
    pub max: i16,
}

/// Produce starts at 0 because librdkafka disables features on a broker whose
/// Produce range does not (KAFKA-18659); v0-v2 (pre-v2 message formats) are
/// answered by closing the connection, as they cannot carry RecordBatch v2.
/// Fetch stops at 17 and Produce at 11, Metadata at 13 and ListOffsets at 10,
/// the newest Kafka 4.1 serves (Produce v12 is KIP-890 part 2's implicit
/// AddPartitionsToTxn, v13 and Fetch v18 not yet served by 4.1). The
/// KIP-848 consumer protocol is served: ConsumerGroupHeartbeat and
/// ConsumerGroupDescribe, OffsetCommit/OffsetFetch v9 (member epochs),
/// ListGroups v5 (group types), DescribeGroups v6; OffsetCommit and
/// OffsetFetch stop before v10 (topic ids).
/// DescribeConfigs starts at 1 (v0 was removed from Kafka 4 and from the
/// protocol crate); librdkafka and kafka-python speak v1 or v2.
/// AddPartitionsToTxn stops at 3 (v4+ is the brokers' batched form), and the
/// transaction APIs before the versions of KIP-890 part 2 (epoch bump per
/// transaction, TRANSACTION_ABORTABLE).
pub const SUPPORTED_APIS: &[SupportedApi] = &[
    SupportedApi { key: ApiKey::Produce, min: 0, max: 11 },
    SupportedApi { key: ApiKey::Fetch, min: 4, max: 17 },
    SupportedApi { key: ApiKey::ListOffsets, min: 1, max: 10 },
    SupportedApi { key: ApiKey::OffsetForLeaderEpoch, min: 2, max: 4 },
    SupportedApi { key: ApiKey::Metadata, min: 0, max: 13 },
    SupportedApi { key: ApiKey::ApiVersions, min: 0, max: 3 },
    SupportedApi { key: ApiKey::CreateTopics, min: 2, max: 7 },
    SupportedApi { key: ApiKey::DeleteTopics, min: 1, max: 6 },
    SupportedApi { key: ApiKey::CreatePartitions, min: 0, max: 3 },
    SupportedApi { key: ApiKey::FindCoordinator, min: 0, max: 4 },
    SupportedApi { key: ApiKey::InitProducerId, min: 0, max: 4 },
    SupportedApi { key: ApiKey::JoinGroup, min: 0, max: 9 },
    SupportedApi { key: ApiKey::SyncGroup, min: 0, max: 5 },
    SupportedApi { key: ApiKey::Heartbeat, min: 0, max: 4 },
    SupportedApi { key: ApiKey::LeaveGroup, min: 0, max: 5 },
    SupportedApi { key: ApiKey::OffsetCommit, min: 2, max: 9 },
    SupportedApi { key: ApiKey::OffsetFetch, min: 1, max: 9 },
    SupportedApi { key: ApiKey::ListGroups, min: 0, max: 5 },
    SupportedApi { key: ApiKey::DescribeGroups, min: 0, max: 6 },
    SupportedApi { key: ApiKey::ConsumerGroupHeartbeat, min: 0, max: 1 },
    SupportedApi { key: ApiKey::ConsumerGroupDescribe, min: 0, max: 1 },
    SupportedApi { key: ApiKey::DeleteGroups, min: 0, max: 2 },
    SupportedApi { key: ApiKey::OffsetDelete, min: 0, max: 0 },
    SupportedApi { key: ApiKey::DeleteRecords, min: 0, max: 2 },
    SupportedApi { key: ApiKey::DescribeConfigs, min: 1, max: 4 },
    SupportedApi { key: ApiKey::DescribeCluster, min: 0, max: 2 },
    SupportedApi { key: ApiKey::AlterConfigs, min: 0, max: 2 },
    SupportedApi { key: ApiKey::IncrementalAlterConfigs, min: 0, max: 1 },
    SupportedApi { key: ApiKey::AddPartitionsToTxn, min: 0, max: 3 },
    SupportedApi { key: ApiKey::AddOffsetsToTxn, min: 0, max: 3 },
    SupportedApi { key: ApiKey::EndTxn, min: 0, max: 3 },
    SupportedApi { key: ApiKey::TxnOffsetCommit, min: 0, max: 3 },
    SupportedApi { key: ApiKey::DescribeProducers, min: 0, max: 0 },
    SupportedApi { key: ApiKey::DescribeTransactions, min: 0, max: 0 },
    SupportedApi { key: ApiKey::ListTransactions, min: 0, max: 1 },
    SupportedApi { key: ApiKey::DescribeLogDirs, min: 1, max: 4 },
    SupportedApi { key: ApiKey::DescribeTopicPartitions, min: 0, max: 0 },
];

/// The version range of `key`, if it is implemented.
pub fn supported_range(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED_APIS.iter().find(|a| a.key == key).map(|a| (a.min, a.max))
}

/// The lowest Produce version that carries RecordBatch v2.
pub const PRODUCE_RECORD_BATCH_MIN_VERSION: i16 = 3;
