//! DescribeQuorum (KIP-595, v0-v1): the metadata quorum as its leader sees
//! it, what `kafka-metadata-quorum.sh describe` prints: the leader and its
//! epoch (the Raft term), the high watermark (one past the last committed
//! index), and each voter's and observer's log end with when the leader
//! last heard from it. Asked of the leader through this broker's controller
//! where this voter does not lead. Raft indexes stand for Kafka's offsets of
//! `__cluster_metadata`. Partition errors as Kafka's KafkaRaftClient: a
//! partition other than `__cluster_metadata`-0 is UNKNOWN_TOPIC_OR_PARTITION,
//! and so is every partition on a broker that is its own controller (no
//! quorum); no reachable leader is NOT_LEADER_OR_FOLLOWER. With ACLs it
//! needs DESCRIBE on the cluster (else CLUSTER_AUTHORIZATION_FAILED). v2
//! (voters' directory ids and listeners, KIP-853) is not served.

use super::{message, ClientInfo};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_quorum_response::{PartitionData, ReplicaState, TopicData};
use kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use weir_shards::metadata::acl::Operation;
use weir_shards::{QuorumStatus, QuorumUnknown, ReplicaProgress, Shard};

const METADATA_TOPIC: &str = "__cluster_metadata";

pub async fn handle(shard: &Shard, client: &ClientInfo, request: DescribeQuorumRequest) -> DescribeQuorumResponse {
    if !client.may_on_cluster(shard, Operation::Describe) {
        return DescribeQuorumResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(message("Cluster authorization failed."));
    }
    let asks_for_the_quorum = request.topics.len() == 1
        && &*request.topics[0].topic_name.0 == METADATA_TOPIC
        && request.topics[0].partitions.len() == 1
        && request.topics[0].partitions[0].partition_index == 0;
    let answer = if asks_for_the_quorum {
        match shard.quorum_status().await {
            Ok(status) => Ok(status),
            Err(QuorumUnknown::NoQuorum) => {
                Err((ResponseError::UnknownTopicOrPartition, "this broker is its own controller: no quorum".into()))
            }
            Err(QuorumUnknown::Unavailable(e)) => {
                Err((ResponseError::NotLeaderOrFollower, format!("the quorum's leader did not answer: {e:?}")))
            }
        }
    } else {
        Err((ResponseError::UnknownTopicOrPartition, format!("only {METADATA_TOPIC}-0 is the quorum's partition")))
    };
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = (topic.partitions.iter())
                .map(|p| match &answer {
                    Ok(status) => partition(status, SystemTime::now()),
                    Err((error, why)) => PartitionData::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(error.code())
                        .with_error_message(message(why.clone()))
                        .with_leader_id(BrokerId(-1))
                        .with_leader_epoch(-1),
                })
                .collect();
            TopicData::default().with_topic_name(topic.topic_name).with_partitions(partitions)
        })
        .collect();
    DescribeQuorumResponse::default().with_topics(topics)
}

fn partition(status: &QuorumStatus, now: SystemTime) -> PartitionData {
    let leader_end = status.voters.iter().find(|v| v.id == status.leader).and_then(|v| v.log_end);
    let replicas =
        |replicas: &[ReplicaProgress]| replicas.iter().map(|r| replica(r, status.leader, leader_end, now)).collect();
    PartitionData::default()
        .with_leader_id(BrokerId(status.leader as i32))
        .with_leader_epoch(status.term as i32)
        .with_high_watermark(status.committed_end as i64)
        .with_current_voters(replicas(&status.voters))
        .with_observers(replicas(&status.observers))
}

/// A replica's state: the leader's own fetch time is now; a follower is
/// caught up when it was last heard from if it then held the leader's log
/// end (-1: not known).
fn replica(r: &ReplicaProgress, leader: u64, leader_end: Option<u64>, now: SystemTime) -> ReplicaState {
    let millis = |ago: Duration| {
        now.checked_sub(ago).and_then(|at| at.duration_since(UNIX_EPOCH).ok()).map_or(-1, |d| d.as_millis() as i64)
    };
    let heard = if r.id == leader { Some(millis(Duration::ZERO)) } else { r.last_heard.map(millis) };
    let caught_up = heard.filter(|_| r.log_end.is_some() && r.log_end >= leader_end);
    ReplicaState::default()
        .with_replica_id(BrokerId(r.id as i32))
        .with_log_end_offset(r.log_end.map_or(-1, |end| end as i64))
        .with_last_fetch_timestamp(heard.unwrap_or(-1))
        .with_last_caught_up_timestamp(caught_up.unwrap_or(-1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leader_is_caught_up_now_and_a_follower_when_it_held_the_leaders_log_end() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let progress =
            |id, log_end, ago: Option<u64>| ReplicaProgress { id, log_end, last_heard: ago.map(Duration::from_millis) };
        let status = QuorumStatus {
            leader: 2,
            term: 7,
            committed_end: 41,
            voters: vec![progress(1, Some(42), Some(30)), progress(2, Some(42), None), progress(3, Some(40), Some(5))],
            observers: vec![progress(4, None, None)],
        };
        let p = partition(&status, now);
        assert_eq!((p.leader_id, p.leader_epoch, p.high_watermark), (BrokerId(2), 7, 41));
        let state =
            |r: &ReplicaState| (r.replica_id.0, r.log_end_offset, r.last_fetch_timestamp, r.last_caught_up_timestamp);
        let voters: Vec<_> = p.current_voters.iter().map(state).collect();
        assert_eq!(voters, [(1, 42, 999_970, 999_970), (2, 42, 1_000_000, 1_000_000), (3, 40, 999_995, -1)]);
        assert_eq!(p.observers.iter().map(state).collect::<Vec<_>>(), [(4, -1, -1, -1)]);
    }
}
