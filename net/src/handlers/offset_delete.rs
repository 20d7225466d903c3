//! OffsetDelete: forget committed offsets of topics the group no longer reads.

use super::answer_partition_codes;
use crate::errors::{group_error_code, group_result_code};
use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};
use weir_shards::Shard;

pub async fn handle(shard: &Shard, request: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let partitions: Vec<(String, i32)> = request
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), p.partition_index)))
        .collect();
    let result = shard.offset_delete(&request.group_id.0, partitions).await;
    let results = match result {
        Ok(results) => results,
        Err(e) => return OffsetDeleteResponse::default().with_error_code(group_error_code(Some(e))),
    };
    let codes = results.iter().map(group_result_code);
    let topics =
        answer_partition_codes!(request.topics, codes, OffsetDeleteResponseTopic, OffsetDeleteResponsePartition);
    OffsetDeleteResponse::default().with_topics(topics)
}
