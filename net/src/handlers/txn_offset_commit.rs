//! TxnOffsetCommit: a consumer group's offsets committed as part of a
//! producer's transaction (visible once it commits, dropped if it aborts).
//! With ACLs it needs WRITE on the transactional id and READ on the group
//! (else every partition has that error) and READ on each topic.

use super::authorize::codes_with_refused;
use super::offset_commit::offsets_to_commit;
use super::{answer_partition_codes, ClientInfo};
use crate::errors::{group_error_code, txn_error_code};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use weir_shards::messages::{TxnCommit, TxnOffsetError};
use weir_shards::metadata::acl::Operation;
use weir_shards::Shard;

/// The first version that knows PRODUCER_FENCED.
const PRODUCER_FENCED_VERSION: i16 = 2;

pub async fn handle(
    shard: &Shard,
    client: &ClientInfo,
    version: i16,
    request: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    if let Some(code) = client.refused_transaction_or_group(shard, &request.transactional_id.0, &request.group_id.0) {
        let codes = std::iter::repeat(code);
        let topics = answer_partition_codes!(
            request.topics,
            codes,
            TxnOffsetCommitResponseTopic,
            TxnOffsetCommitResponsePartition
        );
        return TxnOffsetCommitResponse::default().with_topics(topics);
    }
    let refused = client.refused_topics(shard, Operation::Read, request.topics.iter().map(|t| &*t.name.0));
    let mut offsets = offsets_to_commit!(request.topics, weir_engine::now_ms());
    offsets.retain(|o| !refused.contains(&o.topic));
    let commit = TxnCommit {
        transactional_id: request.transactional_id.0.to_string(),
        producer_id: request.producer_id.0,
        epoch: request.producer_epoch,
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.map(|i| i.to_string()),
        generation: request.generation_id,
        offsets,
    };
    let results = shard.txn_offset_commit(&request.group_id.0, commit).await;
    let code = |r: &Result<(), TxnOffsetError>| match r {
        Ok(()) => 0,
        Err(TxnOffsetError::Group(e)) => group_error_code(Some(*e)),
        Err(TxnOffsetError::Txn(e)) => txn_error_code(*e, version >= PRODUCER_FENCED_VERSION),
    };
    let partitions = request.topics.iter().flat_map(|t| t.partitions.iter().map(|_| &*t.name.0));
    let codes = codes_with_refused(partitions, &refused, results.iter().map(code)).into_iter();
    let topics =
        answer_partition_codes!(request.topics, codes, TxnOffsetCommitResponseTopic, TxnOffsetCommitResponsePartition);
    TxnOffsetCommitResponse::default().with_topics(topics)
}
