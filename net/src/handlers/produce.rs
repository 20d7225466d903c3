//! Produce: validate and append each partition's batches on its owning shard.

use super::{auto_create_topics, message};
use crate::errors::partition_error_code;
use futures::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use weir_engine::Durability;
use weir_shards::shard::ProducedPartition;
use weir_shards::Shard;

/// Returns `None` for acks=0: the client expects no response at all.
pub async fn handle(shard: &Shard, version: i16, request: ProduceRequest) -> Option<ProduceResponse> {
    let durability = match request.acks {
        0 | 1 => Ok(Durability::Written),
        -1 => Ok(Durability::Synced),
        _ => Err(ResponseError::InvalidRequiredAcks.code()),
    };
    if durability.is_ok() {
        auto_create_topics(shard, request.topic_data.iter().map(|t| &*t.name.0)).await;
    }
    let transactional_id = request.transactional_id.as_ref().map(|id| id.0.to_string());
    let transactional_id = transactional_id.as_deref();
    let topics = join_all(request.topic_data.into_iter().map(|topic| async move {
        let partitions = join_all(topic.partition_data.into_iter().map(|data| {
            let name = topic.name.0.clone();
            async move {
                let result = match (durability, data.records) {
                    (Err(code), _) => Err((code, None)),
                    (Ok(_), None) => Err((ResponseError::CorruptMessage.code(), Some("no records".to_string()))),
                    (Ok(durability), Some(records)) => shard
                        .produce(&name, data.index, records, durability, transactional_id)
                        .await
                        .map_err(|e| (partition_error_code(&e), Some(e.to_string()))),
                };
                partition_response(version, data.index, result)
            }
        }))
        .await;
        TopicProduceResponse::default().with_name(topic.name).with_partition_responses(partitions)
    }))
    .await;
    (request.acks != 0).then(|| ProduceResponse::default().with_responses(topics))
}

fn partition_response(
    version: i16,
    index: i32,
    result: Result<ProducedPartition, (i16, Option<String>)>,
) -> PartitionProduceResponse {
    let mut response = PartitionProduceResponse::default().with_index(index);
    match result {
        Ok(produced) => {
            response.base_offset = produced.info.base_offset;
            // -1 unless the topic uses LogAppendTime.
            response.log_append_time_ms = produced.info.log_append_time;
            if version >= 5 {
                response.log_start_offset = produced.log_start_offset;
            }
        }
        Err((code, text)) => {
            response.error_code = code;
            response.base_offset = -1;
            if version >= 8 {
                response.error_message = text.and_then(message);
            }
        }
    }
    response
}
