//! AlterPartitionReassignments (KIP-455; v1 adds KIP-860's
//! `allow_replication_factor_change`): each partition named moves to its
//! target replicas, or (replicas null) its move in progress is cancelled,
//! decided by the active controller (`MetadataChanges::reassign`). The
//! answer comes once the move began, not when it completes: the new
//! replicas catch up, then the controller drops the old ones
//! (ListPartitionReassignments shows what still moves). Per partition
//! Kafka's UNKNOWN_TOPIC_OR_PARTITION, INVALID_REPLICA_ASSIGNMENT,
//! NO_REASSIGNMENT_IN_PROGRESS or INVALID_REPLICATION_FACTOR. With ACLs it
//! needs ALTER on the cluster (else CLUSTER_AUTHORIZATION_FAILED, on every
//! partition named too).

use super::{message, str_bytes, ClientInfo};
use crate::errors::topic_error_code;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, TopicName};
use weir_shards::metadata::acl::Operation;
use weir_shards::metadata::TopicPartition;
use weir_shards::{Shard, TopicError};

pub async fn handle(
    shard: &Shard,
    client: &ClientInfo,
    request: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let allow = request.allow_replication_factor_change;
    if !client.may_on_cluster(shard, Operation::Alter) {
        let code = ResponseError::ClusterAuthorizationFailed.code();
        let responses = (request.topics.into_iter())
            .map(|topic| {
                let partitions = (topic.partitions.iter())
                    .map(|p| ReassignablePartitionResponse::default().with_partition_index(p.partition_index))
                    .map(|answer| answer.with_error_code(code))
                    .collect();
                ReassignableTopicResponse::default().with_name(topic.name).with_partitions(partitions)
            })
            .collect();
        return AlterPartitionReassignmentsResponse::default()
            .with_allow_replication_factor_change(allow)
            .with_error_code(code)
            .with_error_message(Some(str_bytes("Cluster authorization failed.")))
            .with_responses(responses);
    }
    let reassignments: Vec<(TopicPartition, Option<Vec<i32>>)> = (request.topics.iter())
        .flat_map(|topic| {
            topic.partitions.iter().map(|p| {
                let target = p.replicas.as_ref().map(|ids| ids.iter().map(|id| id.0).collect());
                ((topic.name.0.to_string(), p.partition_index), target)
            })
        })
        .collect();
    let mut results = shard.alter_reassignments(reassignments, allow).await.into_iter();
    let responses = (request.topics.into_iter())
        .map(|topic| {
            let partitions = (topic.partitions.iter())
                .map(|p| {
                    let answer = ReassignablePartitionResponse::default().with_partition_index(p.partition_index);
                    match results.next().unwrap_or(Err(TopicError::ControllerUnavailable)) {
                        Ok(()) => answer,
                        Err(e) => answer.with_error_code(topic_error_code(&e)).with_error_message(message(&e)),
                    }
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(TopicName(str_bytes(topic.name.0.to_string())))
                .with_partitions(partitions)
        })
        .collect();
    AlterPartitionReassignmentsResponse::default().with_allow_replication_factor_change(allow).with_responses(responses)
}
