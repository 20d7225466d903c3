//! DescribeTopicPartitions (KIP-966): Metadata's topic answer, paginated.
//! As Kafka 4.1: topics sorted by name from the cursor's topic (all topics
//! when none are named), at most `response_partition_limit` partitions
//! (1..=2000) per answer, and `next_cursor` naming the first partition left.

use super::ClientInfo;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName};
use std::collections::BTreeSet;
use weir_shards::metadata::acl::{Operation, ResourceType};
use weir_shards::metadata::PartitionState;
use weir_shards::Shard;

/// Kafka's `max.request.partition.size.limit` default: the most partitions
/// one answer holds, whatever the request asks.
const MAX_PARTITIONS_PER_RESPONSE: i32 = 2000;

pub fn handle(
    shard: &Shard,
    client: &ClientInfo,
    request: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let snapshot = shard.metadata();
    let all_topics = request.topics.is_empty();
    let cursor_topic = request.cursor.as_ref().map_or("", |c| c.topic_name.0.as_str());
    let names: BTreeSet<String> = if all_topics {
        // All topics: those the client may describe (Kafka's).
        let describable = |name: &&String| client.may_on_topic(shard, Operation::Describe, name);
        snapshot.topics.keys().filter(|name| name.as_str() >= cursor_topic).filter(describable).cloned().collect()
    } else {
        request.topics.iter().map(|t| t.name.0.to_string()).filter(|name| name.as_str() >= cursor_topic).collect()
    };
    if let Some(cursor) = &request.cursor {
        // Kafka: the cursor's topic must be one of those asked for, its partition valid.
        let outside = !all_topics && !names.contains(cursor.topic_name.0.as_str());
        if outside || cursor.partition_index < 0 {
            return refused(&request);
        }
    }
    let mut remaining = request.response_partition_limit.clamp(1, MAX_PARTITIONS_PER_RESPONSE);
    let mut response = DescribeTopicPartitionsResponse::default();
    for name in names {
        if remaining == 0 {
            // Every partition of the previous topics is answered: go on from this one.
            response.next_cursor = Some(Cursor::default().with_topic_name(topic_name(&name)).with_partition_index(0));
            break;
        }
        let ops = client.authorized_operations(shard, ResourceType::Topic, &name);
        if !all_topics && ops & 1 << Operation::Describe as i32 == 0 {
            let refused = answer(&name, 0).with_error_code(ResponseError::TopicAuthorizationFailed.code());
            response.topics.push(refused);
            continue;
        }
        let Some(topic) = snapshot.topic(&name) else {
            if !all_topics {
                let error = match weir_shards::metadata::validate_topic_name(&name) {
                    Ok(()) => ResponseError::UnknownTopicOrPartition,
                    Err(_) => ResponseError::InvalidTopicException,
                };
                response.topics.push(answer(&name, ops).with_error_code(error.code()));
            }
            continue;
        };
        let start = match &request.cursor {
            Some(cursor) if cursor.topic_name.0.as_str() == name => cursor.partition_index,
            _ => 0,
        };
        let end = topic.partitions.min(start.saturating_add(remaining));
        let partitions: Vec<_> =
            (start..end).zip(&topic.assignment[start.max(0) as usize..]).map(|(i, s)| partition(i, s)).collect();
        remaining -= partitions.len() as i32;
        response.topics.push(answer(&name, ops).with_topic_id(topic.id).with_partitions(partitions));
        if end < topic.partitions {
            response.next_cursor = Some(Cursor::default().with_topic_name(topic_name(&name)).with_partition_index(end));
            break;
        }
    }
    response
}

/// A topic's answer before its id and partitions, with the operations the
/// client may do on it.
fn answer(name: &str, authorized_operations: i32) -> DescribeTopicPartitionsResponseTopic {
    DescribeTopicPartitionsResponseTopic::default()
        .with_name(Some(topic_name(name)))
        .with_is_internal(weir_shards::shard::is_internal_topic(name))
        .with_topic_authorized_operations(authorized_operations)
}

/// One partition's replicas and leadership; no eligible leader replicas
/// (KIP-966: unclean election stays off, so none are kept).
fn partition(index: i32, state: &PartitionState) -> DescribeTopicPartitionsResponsePartition {
    let brokers = |ids: &[i32]| ids.iter().copied().map(BrokerId).collect();
    DescribeTopicPartitionsResponsePartition::default()
        .with_partition_index(index)
        .with_leader_id(BrokerId(state.leader))
        .with_leader_epoch(state.leader_epoch)
        .with_replica_nodes(brokers(&state.replicas))
        .with_isr_nodes(brokers(&state.isr))
        .with_eligible_leader_replicas(Some(Vec::new()))
        .with_last_known_elr(Some(Vec::new()))
}

/// Kafka's answer to a request it refuses whole (INVALID_REQUEST): each
/// topic asked for, with the error and nothing else.
fn refused(request: &DescribeTopicPartitionsRequest) -> DescribeTopicPartitionsResponse {
    let code = ResponseError::InvalidRequest.code();
    let topics = request
        .topics
        .iter()
        .map(|t| DescribeTopicPartitionsResponseTopic::default().with_name(Some(t.name.clone())).with_error_code(code))
        .collect();
    DescribeTopicPartitionsResponse::default().with_topics(topics)
}

fn topic_name(name: &str) -> TopicName {
    TopicName(super::str_bytes(name))
}
