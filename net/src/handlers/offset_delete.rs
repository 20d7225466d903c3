//! OffsetDelete: forget committed offsets of topics the group no longer reads.
//! With ACLs it needs DELETE on the group and READ on each topic.

use super::authorize::codes_with_refused;
use super::{answer_partition_codes, ClientInfo};
use crate::errors::{group_error_code, group_result_code};
use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};
use weir_shards::metadata::acl::Operation;
use weir_shards::Shard;

pub async fn handle(shard: &Shard, client: &ClientInfo, request: OffsetDeleteRequest) -> OffsetDeleteResponse {
    if let Some(code) = client.refused_group_operation(shard, Operation::Delete, &request.group_id.0) {
        return OffsetDeleteResponse::default().with_error_code(code);
    }
    let refused = client.refused_topics(shard, Operation::Read, request.topics.iter().map(|t| &*t.name.0));
    let partitions: Vec<(String, i32)> = request
        .topics
        .iter()
        .filter(|t| !refused.contains(&*t.name.0))
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), p.partition_index)))
        .collect();
    let result = shard.offset_delete(&request.group_id.0, partitions).await;
    let results = match result {
        Ok(results) => results,
        Err(e) => return OffsetDeleteResponse::default().with_error_code(group_error_code(Some(e))),
    };
    let partitions = request.topics.iter().flat_map(|t| t.partitions.iter().map(|_| &*t.name.0));
    let codes = codes_with_refused(partitions, &refused, results.iter().map(group_result_code)).into_iter();
    let topics =
        answer_partition_codes!(request.topics, codes, OffsetDeleteResponseTopic, OffsetDeleteResponsePartition);
    OffsetDeleteResponse::default().with_topics(topics)
}
