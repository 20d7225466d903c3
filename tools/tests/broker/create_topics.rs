//! CreateTopics as Kafka answers it: explicit replica assignments give the
//! partition count (librdkafka's own admin test, 0081, creates topics so).

use crate::common;

use common::*;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{BrokerId, CreateTopicsRequest, MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

fn assigned(topic: &str, replicas: &[&[i32]]) -> CreatableTopic {
    let assignments = replicas
        .iter()
        .enumerate()
        .map(|(partition, brokers)| {
            CreatableReplicaAssignment::default()
                .with_partition_index(partition as i32)
                .with_broker_ids(brokers.iter().map(|&b| BrokerId(b)).collect())
        })
        .collect();
    CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
        .with_assignments(assignments)
}

#[test]
fn replica_assignments_give_the_partition_count_and_are_validated() {
    let broker = Broker::start(&["--default-partitions", "4"]);
    let mut client = client(&broker.bootstrap());
    let mut misnumbered = assigned("misnumbered", &[&[0], &[0]]);
    misnumbered.assignments[1].partition_index = 5;
    let mut with_count = assigned("with-count", &[&[0]]);
    with_count.num_partitions = 1;
    let request = CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![
        assigned("one", &[&[0]]),
        assigned("three", &[&[0], &[0], &[0]]),
        assigned("unknown-broker", &[&[0], &[7]]),
        assigned("twice", &[&[0, 0]]),
        assigned("empty", &[&[]]),
        misnumbered,
        with_count,
    ]);
    let response = client.send(&request, 7).unwrap();
    let codes: Vec<(String, i16)> = response.topics.iter().map(|t| (t.name.0.to_string(), t.error_code)).collect();
    let replica_assignment = ResponseError::InvalidReplicaAssignment.code();
    assert_eq!(
        codes,
        [
            ("one".to_string(), 0),
            ("three".to_string(), 0),
            ("unknown-broker".to_string(), replica_assignment),
            ("twice".to_string(), replica_assignment),
            ("empty".to_string(), replica_assignment),
            ("misnumbered".to_string(), replica_assignment),
            ("with-count".to_string(), ResponseError::InvalidRequest.code()),
        ]
    );
    assert_eq!(response.topics[1].num_partitions, 3);

    let topics = ["one", "three", "twice"].map(|t| MetadataRequestTopic::default().with_name(Some(name(t))));
    let metadata = client
        .send(&MetadataRequest::default().with_topics(Some(topics.to_vec())).with_allow_auto_topic_creation(false), 12)
        .unwrap();
    let partitions: Vec<(String, i16, usize)> = metadata
        .topics
        .iter()
        .map(|t| (t.name.as_ref().unwrap().0.to_string(), t.error_code, t.partitions.len()))
        .collect();
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    assert_eq!(partitions, [("one".to_string(), 0, 1), ("three".to_string(), 0, 3), ("twice".to_string(), unknown, 0)]);
}
