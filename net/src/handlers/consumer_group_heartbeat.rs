//! ConsumerGroupHeartbeat (KIP-848): joins, heartbeats and leaves of
//! consumer-protocol members; the answer carries the member's epoch and,
//! when it changed, its assignment. With ACLs the group needs READ (else
//! GROUP_AUTHORIZATION_FAILED) and each subscribed topic DESCRIBE (else
//! TOPIC_AUTHORIZATION_FAILED), as Kafka.

use super::{str_bytes, ClientInfo};
use crate::errors::group_error_code;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use weir_shards::groups::consumer::{self, ConsumerHeartbeat};
use weir_shards::metadata::acl::Operation;
use weir_shards::Shard;

pub async fn handle(
    shard: &Shard,
    client: &ClientInfo,
    request: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let group_id = request.group_id.0.to_string();
    let subscribed = request.subscribed_topic_names.iter().flatten().map(|name| &*name.0);
    let refused = client.refused_on_group(shard, &group_id).or_else(|| {
        let hidden = !client.refused_topics(shard, Operation::Describe, subscribed).is_empty();
        hidden.then(|| ResponseError::TopicAuthorizationFailed.code())
    });
    if let Some(code) = refused {
        return ConsumerGroupHeartbeatResponse::default().with_error_code(code);
    }
    let owned = request.topic_partitions.map(|topics| {
        let mut owned = consumer::Assignment::new();
        for t in topics {
            owned.entry(t.topic_id).or_default().extend(t.partitions);
        }
        owned.retain(|_, parts| !parts.is_empty());
        owned
    });
    let heartbeat = ConsumerHeartbeat {
        group_id: group_id.clone(),
        member_id: request.member_id.to_string(),
        member_epoch: request.member_epoch,
        instance_id: request.instance_id.map(|i| i.to_string()),
        rack_id: request.rack_id.map(|r| r.to_string()),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed_topic_names: request
            .subscribed_topic_names
            .map(|names| names.into_iter().map(|n| n.0.to_string()).collect()),
        subscribed_topic_regex: request.subscribed_topic_regex.map(|r| r.to_string()),
        server_assignor: request.server_assignor.map(|a| a.to_string()),
        owned,
        client_id: client.client_id.clone(),
        client_host: client.host.clone(),
    };
    let answer = shard.consumer_group_heartbeat(heartbeat).await;
    let assignment = answer.assignment.map(|a| {
        Assignment::default().with_topic_partitions(
            a.into_iter()
                .map(|(id, parts)| {
                    TopicPartitions::default().with_topic_id(id).with_partitions(parts.into_iter().collect())
                })
                .collect(),
        )
    });
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(group_error_code(answer.error))
        .with_error_message(answer.error_message.map(str_bytes))
        .with_member_id((!answer.member_id.is_empty()).then(|| str_bytes(answer.member_id)))
        .with_member_epoch(answer.member_epoch)
        .with_heartbeat_interval_ms(answer.heartbeat_interval_ms)
        .with_assignment(assignment)
}
