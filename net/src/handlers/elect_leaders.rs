//! ElectLeaders (KIP-460): the leadership of the partitions named, or of
//! every partition, moved by the active controller as the election type
//! asks: PREFERRED to each partition's first replica, UNCLEAN to any
//! unfenced replica of a partition without a leader. Per partition Kafka's
//! ELECTION_NOT_NEEDED, PREFERRED_LEADER_NOT_AVAILABLE,
//! ELIGIBLE_LEADERS_NOT_AVAILABLE or UNKNOWN_TOPIC_OR_PARTITION; a request
//! for every partition leaves out those that need no election. A partition
//! named twice is answered once. With ACLs it needs ALTER on the cluster
//! (else CLUSTER_AUTHORIZATION_FAILED, on every partition named too).

use super::{message, str_bytes, ClientInfo};
use crate::errors::topic_error_code;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use std::collections::{BTreeMap, BTreeSet};
use weir_shards::metadata::acl::Operation;
use weir_shards::metadata::{Election, ElectionResults, TopicPartition};
use weir_shards::{Shard, TopicError};

pub async fn handle(
    shard: &Shard,
    client: &ClientInfo,
    version: i16,
    request: ElectLeadersRequest,
) -> ElectLeadersResponse {
    let named: Option<Vec<TopicPartition>> = request.topic_partitions.map(|topics| {
        let unique: BTreeSet<TopicPartition> = (topics.into_iter())
            .flat_map(|t| t.partitions.into_iter().map(move |p| (t.topic.0.to_string(), p)))
            .collect();
        unique.into_iter().collect()
    });
    if !client.may_on_cluster(shard, Operation::Alter) {
        let code = ResponseError::ClusterAuthorizationFailed.code();
        return failed(named, version, code, "Cluster authorization failed.".into());
    }
    let outcome = match election(request.election_type) {
        Ok(election) => shard.elect_leaders(election, named.clone()).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(results) => ElectLeadersResponse::default().with_replica_election_results(by_topic(answers(results))),
        Err(e) => failed(named, version, topic_error_code(&e), e.to_string()),
    }
}

/// The whole request failed: every partition named carries the error too
/// (v0 has no top-level one).
fn failed(named: Option<Vec<TopicPartition>>, version: i16, code: i16, reason: String) -> ElectLeadersResponse {
    let results = named.unwrap_or_default().into_iter().map(|p| (p, Err((code, reason.clone())))).collect();
    let response = ElectLeadersResponse::default().with_replica_election_results(by_topic(results));
    if version >= 1 {
        response.with_error_code(code)
    } else {
        response
    }
}

/// Kafka's ElectionType: 0 PREFERRED, 1 UNCLEAN (v0 always asks 0).
fn election(code: i8) -> Result<Election, TopicError> {
    match code {
        0 => Ok(Election::Preferred),
        1 => Ok(Election::Unclean),
        other => Err(TopicError::InvalidRequest(format!("unknown election type {other}"))),
    }
}

/// Each partition's outcome: done, or an error code and its message.
type Answers = Vec<(TopicPartition, Result<(), (i16, String)>)>;

fn answers(results: ElectionResults) -> Answers {
    let code = |e: TopicError| (topic_error_code(&e), e.to_string());
    results.into_iter().map(|(partition, result)| (partition, result.map_err(code))).collect()
}

fn by_topic(results: Answers) -> Vec<ReplicaElectionResult> {
    let mut topics: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    for ((topic, partition), result) in results {
        let answer = PartitionResult::default().with_partition_id(partition);
        let answer = match result {
            Ok(()) => answer,
            Err((code, reason)) => answer.with_error_code(code).with_error_message(message(&reason)),
        };
        topics.entry(topic).or_default().push(answer);
    }
    (topics.into_iter())
        .map(|(topic, partitions)| {
            ReplicaElectionResult::default().with_topic(TopicName(str_bytes(topic))).with_partition_result(partitions)
        })
        .collect()
}
