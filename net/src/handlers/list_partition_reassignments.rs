//! ListPartitionReassignments (KIP-455): the partitions moving, of those
//! named or of every topic, with their replicas (the target, then those
//! being removed) and the replicas being added and removed. Answered from
//! this broker's image, which follows the controller's within the
//! replication delay; partitions not moving, and unknown ones, are left
//! out, as Kafka's controller answers. With ACLs it needs DESCRIBE on the
//! cluster (else CLUSTER_AUTHORIZATION_FAILED).

use super::{str_bytes, ClientInfo};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use weir_shards::metadata::acl::Operation;
use weir_shards::Shard;

pub fn handle(
    shard: &Shard,
    client: &ClientInfo,
    request: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    if !client.may_on_cluster(shard, Operation::Describe) {
        return ListPartitionReassignmentsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(str_bytes("Cluster authorization failed.")));
    }
    let image = shard.metadata();
    let named: Vec<(String, Option<Vec<i32>>)> = match request.topics {
        Some(topics) => topics.into_iter().map(|t| (t.name.0.to_string(), Some(t.partition_indexes))).collect(),
        None => image.reassignments.keys().map(|name| (name.clone(), None)).collect(),
    };
    let ids = |ids: &[i32]| ids.iter().copied().map(BrokerId).collect::<Vec<_>>();
    let topics = (named.into_iter())
        .filter_map(|(name, indexes)| {
            let moving = image.reassignments.get(&name)?;
            let partitions: Vec<OngoingPartitionReassignment> = (moving.iter())
                .filter(|(index, _)| indexes.as_ref().is_none_or(|named| named.contains(index)))
                .filter_map(|(&index, reassignment)| {
                    let state = image.partition(&name, index)?;
                    Some(
                        OngoingPartitionReassignment::default()
                            .with_partition_index(index)
                            .with_replicas(ids(&state.replicas))
                            .with_adding_replicas(ids(&reassignment.adding))
                            .with_removing_replicas(ids(&reassignment.removing)),
                    )
                })
                .collect();
            let topic = OngoingTopicReassignment::default().with_name(TopicName(str_bytes(name)));
            (!partitions.is_empty()).then(|| topic.with_partitions(partitions))
        })
        .collect();
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}
