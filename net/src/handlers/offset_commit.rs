//! OffsetCommit: persisted in `__consumer_offsets` before it is acknowledged.
//! With ACLs it needs READ on the group (else every partition has
//! GROUP_AUTHORIZATION_FAILED) and on each topic.

use super::authorize::codes_with_refused;
use super::{answer_partition_codes, ClientInfo};
use crate::errors::group_result_code;
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use weir_shards::metadata::acl::Operation;
use weir_shards::Shard;

/// The offsets of an OffsetCommit or TxnOffsetCommit request (the same
/// fields in different generated types), committed at `$now_ms`.
macro_rules! offsets_to_commit {
    ($topics:expr, $now_ms:expr) => {{
        let now_ms: i64 = $now_ms;
        $topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(move |p| weir_shards::messages::OffsetToCommit {
                    topic: t.name.0.to_string(),
                    partition: p.partition_index,
                    offset: weir_shards::groups::CommittedOffset {
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                        commit_timestamp_ms: now_ms,
                    },
                })
            })
            .collect::<Vec<_>>()
    }};
}
pub(super) use offsets_to_commit;

pub async fn handle(shard: &Shard, client: &ClientInfo, request: OffsetCommitRequest) -> OffsetCommitResponse {
    let group_id = request.group_id.0.to_string();
    if let Some(code) = client.refused_on_group(shard, &group_id) {
        let codes = std::iter::repeat(code);
        let topics =
            answer_partition_codes!(request.topics, codes, OffsetCommitResponseTopic, OffsetCommitResponsePartition);
        return OffsetCommitResponse::default().with_topics(topics);
    }
    let refused = client.refused_topics(shard, Operation::Read, request.topics.iter().map(|t| &*t.name.0));
    let mut offsets = offsets_to_commit!(request.topics, weir_engine::now_ms());
    offsets.retain(|o| !refused.contains(&o.topic));
    let member_id = request.member_id.to_string();
    let instance_id = request.group_instance_id.map(|i| i.to_string());
    let generation = request.generation_id_or_member_epoch;
    let results = shard.offset_commit(&group_id, member_id, instance_id, generation, offsets).await;
    let partitions = request.topics.iter().flat_map(|t| t.partitions.iter().map(|_| &*t.name.0));
    let codes = codes_with_refused(partitions, &refused, results.iter().map(group_result_code)).into_iter();
    let topics =
        answer_partition_codes!(request.topics, codes, OffsetCommitResponseTopic, OffsetCommitResponsePartition);
    OffsetCommitResponse::default().with_topics(topics)
}
