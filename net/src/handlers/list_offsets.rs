//! ListOffsets: the earliest (-2) and latest (-1) offsets of partitions.

use crate::errors::partition_error_code;
use futures::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use weir_shards::Shard;

const LATEST_TIMESTAMP: i64 = -1;
const EARLIEST_TIMESTAMP: i64 = -2;

pub async fn handle(shard: &Shard, version: i16, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let topics = join_all(request.topics.into_iter().map(|topic| async move {
        let partitions = join_all(topic.partitions.iter().map(|p| {
            let name = &topic.name.0;
            async move {
                let mut response = ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
                // Lookups by timestamp need the time index, which does not exist yet.
                if p.timestamp != LATEST_TIMESTAMP && p.timestamp != EARLIEST_TIMESTAMP {
                    response.error_code = ResponseError::InvalidRequest.code();
                    response.offset = -1;
                    return response;
                }
                match shard.offsets(name, p.partition_index).await {
                    Ok(offsets) => {
                        response.offset = if p.timestamp == EARLIEST_TIMESTAMP {
                            offsets.log_start_offset
                        } else {
                            offsets.high_watermark
                        };
                        if version >= 4 {
                            response.leader_epoch = 0;
                        }
                    }
                    Err(e) => {
                        response.error_code = partition_error_code(&e);
                        response.offset = -1;
                    }
                }
                response
            }
        }))
        .await;
        ListOffsetsTopicResponse::default().with_name(topic.name.clone()).with_partitions(partitions)
    }))
    .await;
    ListOffsetsResponse::default().with_topics(topics)
}
