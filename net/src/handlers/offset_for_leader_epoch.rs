//! OffsetForLeaderEpoch: the end offset of a leader epoch, with which
//! consumers validate their positions after a leader change (KIP-320) and
//! followers find where to truncate, answered from the log's leader epoch
//! cache (`weir_engine::leader_epochs`): the current epoch ends at the log
//! end offset, an older one where the next starts; -1 and epochs above the
//! current have no end offset (-1, -1, no error). The replica id (v3+, a
//! follower's broker id) does not change the answer. With ACLs a replica
//! needs CLUSTER_ACTION on the cluster, a consumer DESCRIBE on the topic.

use super::{current_leader_epoch_error, ClientInfo};
use crate::errors::partition_error_code;
use futures::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use weir_shards::metadata::acl::Operation;
use weir_shards::Shard;

/// The replica id of a consumer (any other is a follower's broker id).
const CONSUMER_REPLICA_ID: i32 = -1;

pub async fn handle(
    shard: &Shard,
    client: &ClientInfo,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let replica_refused = (request.replica_id != CONSUMER_REPLICA_ID
        && !client.may_on_cluster(shard, Operation::ClusterAction))
    .then(|| ResponseError::ClusterAuthorizationFailed.code());
    let topics = join_all(request.topics.into_iter().map(|topic| async move {
        let refused = replica_refused.or_else(|| {
            let consumer = request.replica_id == CONSUMER_REPLICA_ID;
            consumer.then(|| client.refused_topic_operation(shard, Operation::Describe, &topic.topic.0)).flatten()
        });
        let partitions = join_all(topic.partitions.iter().map(|p| {
            let name = &topic.topic.0;
            async move {
                let answer = EpochEndOffset::default().with_partition(p.partition);
                if let Some(code) = refused {
                    return answer.with_error_code(code);
                }
                // Kafka checks the partition, then the client's view of the leader.
                let (epoch, end_offset) = match shard.end_offset_for_epoch(name, p.partition, p.leader_epoch).await {
                    Ok(end) => end,
                    Err(e) => return answer.with_error_code(partition_error_code(&e)),
                };
                let (_, leader_epoch) = super::leader_of(shard, name, p.partition);
                if let Some(code) = current_leader_epoch_error(p.current_leader_epoch, leader_epoch) {
                    return answer.with_error_code(code);
                }
                answer.with_leader_epoch(epoch).with_end_offset(end_offset)
            }
        }))
        .await;
        OffsetForLeaderTopicResult::default().with_topic(topic.topic.clone()).with_partitions(partitions)
    }))
    .await;
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
