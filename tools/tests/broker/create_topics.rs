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

#[test]
fn a_replication_factor_the_brokers_cannot_meet_is_refused_and_metadata_names_each_partitions_replicas() {
    let broker = Broker::start(&[]);
    let mut client = client(&broker.bootstrap());
    let topic = |topic: &str, partitions: i32, rf: i16| {
        CreatableTopic::default().with_name(name(topic)).with_num_partitions(partitions).with_replication_factor(rf)
    };
    let request = CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![
        topic("rf2", 1, 2),
        topic("rf0", 1, 0),
        topic("rf1", 2, 1),
        topic("defaulted", 1, -1),
    ]);
    let response = client.send(&request, 7).unwrap();
    let answers: Vec<(i16, String, i16)> = response
        .topics
        .iter()
        .map(|t| (t.error_code, t.error_message.as_deref().unwrap_or("").to_string(), t.replication_factor))
        .collect();
    let invalid = ResponseError::InvalidReplicationFactor.code();
    assert_eq!(
        answers,
        [
            (
                invalid,
                "Unable to replicate the partition 2 time(s): The target replication factor of 2 cannot be reached \
                 because only 1 broker(s) are registered."
                    .to_string(),
                -1
            ),
            (invalid, "Replication factor must be larger than 0, or -1 to use the default value.".to_string(), -1),
            (0, String::new(), 1),
            (0, String::new(), 1),
        ]
    );

    let asked = vec![MetadataRequestTopic::default().with_name(Some(name("rf1")))];
    let request = MetadataRequest::default().with_topics(Some(asked)).with_allow_auto_topic_creation(false);
    let metadata = client.send(&request, 12).unwrap();
    // (index, leader, leader epoch, replicas, in-sync replicas)
    type Described = (i32, i32, i32, Vec<i32>, Vec<i32>);
    let partitions: Vec<Described> = metadata.topics[0]
        .partitions
        .iter()
        .map(|p| {
            let ids = |b: &[BrokerId]| b.iter().map(|b| b.0).collect();
            (p.partition_index, p.leader_id.0, p.leader_epoch, ids(&p.replica_nodes), ids(&p.isr_nodes))
        })
        .collect();
    assert_eq!(partitions, [(0, 0, 0, vec![0], vec![0]), (1, 0, 0, vec![0], vec![0])]);
}
