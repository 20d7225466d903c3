//! DeleteRecords: moves each partition's log start offset (its low watermark)
//! up to the given offset on the owning shard; -1 means the high watermark.
//! With ACLs a topic needs DELETE (else TOPIC_AUTHORIZATION_FAILED).

use super::ClientInfo;
use crate::errors::partition_error_code;
use futures::future::join_all;
use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use weir_shards::metadata::acl::Operation;
use weir_shards::Shard;

pub async fn handle(shard: &Shard, client: &ClientInfo, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let topics = join_all(request.topics.into_iter().map(|topic| async move {
        let refused = client.refused_topic_operation(shard, Operation::Delete, &topic.name.0);
        let partitions = join_all(topic.partitions.iter().map(|p| {
            let name = &topic.name.0;
            async move {
                let mut result = DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
                if let Some(code) = refused {
                    return result.with_error_code(code).with_low_watermark(-1);
                }
                match shard.delete_records(name, p.partition_index, p.offset).await {
                    Ok(low_watermark) => result.low_watermark = low_watermark,
                    Err(e) => {
                        result.error_code = partition_error_code(&e);
                        result.low_watermark = -1;
                    }
                }
                result
            }
        }))
        .await;
        DeleteRecordsTopicResult::default().with_name(topic.name.clone()).with_partitions(partitions)
    }))
    .await;
    DeleteRecordsResponse::default().with_topics(topics)
}
