//! DescribeProducers: the active producers of partitions, with the start
//! of each one's open transaction. With ACLs a topic needs READ (else
//! TOPIC_AUTHORIZATION_FAILED), as Kafka.

use super::ClientInfo;
use crate::errors::partition_error_code;
use futures::future::join_all;
use kafka_protocol::messages::describe_producers_response::{PartitionResponse, ProducerState, TopicResponse};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};
use weir_shards::metadata::acl::Operation;
use weir_shards::Shard;

pub async fn handle(
    shard: &Shard,
    client: &ClientInfo,
    request: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let topics = join_all(request.topics.into_iter().map(|topic| async move {
        let refused = client.refused_topic_operation(shard, Operation::Read, &topic.name.0);
        let partitions = join_all(topic.partition_indexes.iter().map(|&p| {
            let name = &topic.name.0;
            async move {
                let response = PartitionResponse::default().with_partition_index(p);
                if let Some(code) = refused {
                    return response.with_error_code(code);
                }
                match shard.describe_producers(name, p).await {
                    Ok(producers) => response.with_active_producers(
                        producers
                            .into_iter()
                            .map(|d| {
                                ProducerState::default()
                                    .with_producer_id(ProducerId(d.producer_id))
                                    .with_producer_epoch(i32::from(d.epoch))
                                    .with_last_sequence(d.last_sequence)
                                    .with_last_timestamp(-1)
                                    .with_coordinator_epoch(-1)
                                    .with_current_txn_start_offset(d.current_txn_start_offset)
                            })
                            .collect(),
                    ),
                    Err(e) => response.with_error_code(partition_error_code(&e)),
                }
            }
        }))
        .await;
        TopicResponse::default().with_name(topic.name.clone()).with_partitions(partitions)
    }))
    .await;
    DescribeProducersResponse::default().with_topics(topics)
}
