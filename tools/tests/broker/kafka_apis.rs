//! The APIs and versions clients call beyond produce, fetch and groups:
//! topic auto-creation (Metadata only, as Kafka), CreatePartitions through
//! librdkafka's admin client and `weir topics alter --partitions`,
//! OffsetForLeaderEpoch (KIP-320), with Kafka's answers to bad requests.

use crate::common;

use common::*;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_request::{CreatePartitionsAssignment, CreatePartitionsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId, CreatePartitionsRequest, CreatePartitionsResponse, DescribeClusterRequest, MetadataRequest,
    MetadataResponse, OffsetForLeaderEpochRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminOptions, NewPartitions};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};
use weir_client::Client;

const TIMEOUT: Duration = Duration::from_secs(30);

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

fn code(error: ResponseError) -> i16 {
    error.code()
}

/// Metadata v12 for `topic`: (error code, partition count).
fn metadata(client: &mut Client, topic: &str, allow_auto_create: bool) -> (i16, usize) {
    let response = metadata_at(client, topic, allow_auto_create, 12);
    let t = &response.topics[0];
    (t.error_code, t.partitions.len())
}

fn metadata_at(client: &mut Client, topic: &str, allow_auto_create: bool, version: i16) -> MetadataResponse {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name(topic)))]))
        .with_allow_auto_topic_creation(allow_auto_create);
    client.send(&request, version).expect("metadata answered")
}

/// A one-record batch to partition `partition` of `topic`, acks=1: the partition's error code.
fn produce(client: &mut Client, topic: &str, partition: i32) -> i16 {
    let records = weir_engine::records::RecordsBuilder::new().push(None, Some(b"x"), &[], 1).finish();
    let request =
        ProduceRequest::default().with_acks(1).with_timeout_ms(5000).with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])]);
    let response = client.send(&request, 9).expect("produce answered");
    response.responses[0].partition_responses[0].error_code
}

#[test]
fn only_metadata_creates_topics_and_only_when_both_sides_allow_it() {
    let broker = Broker::start(&["--default-partitions", "3"]);
    let mut client = client(&broker.bootstrap());
    // Produce never creates a topic, whatever the broker allows (as Kafka).
    assert_eq!(produce(&mut client, "produced", 0), code(ResponseError::UnknownTopicOrPartition));
    assert_eq!(metadata(&mut client, "produced", false), (code(ResponseError::UnknownTopicOrPartition), 0));
    // Metadata creates it when the request allows it, with the default count.
    assert_eq!(metadata(&mut client, "asked", true), (0, 3));
    assert_eq!(produce(&mut client, "asked", 2), 0);
    // Before v4 there is no flag on the wire: those versions always ask for it.
    assert_eq!(metadata_at(&mut client, "old", true, 3).topics[0].partitions.len(), 3);

    let off = Broker::start(&["--auto-create-topics", "false"]);
    let mut client = Client::connect(&off.bootstrap()).unwrap();
    assert_eq!(metadata(&mut client, "asked", true), (code(ResponseError::UnknownTopicOrPartition), 0));
    assert_eq!(produce(&mut client, "asked", 0), code(ResponseError::UnknownTopicOrPartition));
}

fn create_partitions(
    client: &mut Client,
    topics: Vec<CreatePartitionsTopic>,
    validate_only: bool,
) -> Vec<(String, i16)> {
    let request = CreatePartitionsRequest::default()
        .with_topics(topics)
        .with_timeout_ms(30_000)
        .with_validate_only(validate_only);
    let response: CreatePartitionsResponse = client.send(&request, 3).expect("create partitions answered");
    response.results.iter().map(|r| (r.name.0.to_string(), r.error_code)).collect()
}

fn increase(topic: &str, count: i32, assignments: Option<Vec<Vec<i32>>>) -> CreatePartitionsTopic {
    let assignments = assignments.map(|a| {
        a.into_iter()
            .map(|brokers| {
                CreatePartitionsAssignment::default().with_broker_ids(brokers.into_iter().map(BrokerId).collect())
            })
            .collect()
    });
    CreatePartitionsTopic::default().with_name(name(topic)).with_count(count).with_assignments(assignments)
}

#[test]
fn create_partitions_answers_bad_requests_as_kafka() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("weir.toml");
    std::fs::write(&config, "node_id = 7\n").unwrap();
    let broker = Broker::start(&["--config", config.to_str().unwrap()]);
    create_topic(&broker.bootstrap(), "t", 2);
    create_topic(&broker.bootstrap(), "u", 1);
    let mut c = client(&broker.bootstrap());
    let invalid_partitions = code(ResponseError::InvalidPartitions);
    let invalid_assignment = code(ResponseError::InvalidReplicaAssignment);
    let results = create_partitions(
        &mut c,
        vec![
            increase("t", 2, None),
            increase("t", 1, None),
            increase("u", 1, None),
            increase("missing", 3, None),
            increase("u", 3, Some(vec![vec![7]])),
            increase("__consumer_offsets", 60, None),
        ],
        false,
    );
    // A topic named twice is refused (first, once), the others answered in order.
    let t = ("t".to_string(), code(ResponseError::InvalidRequest));
    let u = ("u".to_string(), code(ResponseError::InvalidRequest));
    assert_eq!(results[..2], [t, u]);
    let missing = ("missing".to_string(), code(ResponseError::UnknownTopicOrPartition));
    let internal = ("__consumer_offsets".to_string(), code(ResponseError::InvalidTopicException));
    assert_eq!(results[2..], [missing, internal]);
    c.send(&MetadataRequest::default(), 12).unwrap(); // still serving

    let alone = |c: &mut Client, topic| create_partitions(c, vec![topic], false)[0].1;
    assert_eq!(alone(&mut c, increase("t", 2, None)), invalid_partitions, "not an increase");
    assert_eq!(alone(&mut c, increase("t", 1, None)), invalid_partitions, "a decrease");
    assert_eq!(alone(&mut c, increase("t", 4, Some(vec![vec![7]]))), invalid_assignment, "one assignment for two");
    assert_eq!(alone(&mut c, increase("t", 3, Some(vec![vec![1]]))), invalid_assignment, "no broker 1");
    assert_eq!(alone(&mut c, increase("t", 3, Some(vec![vec![7, 7]]))), invalid_assignment, "broker twice");
    assert_eq!(alone(&mut c, increase("__consumer_offsets", 60, None)), code(ResponseError::InvalidTopicException));
    assert_eq!(metadata(&mut c, "t", false), (0, 2), "a refused request changed the topic");

    // validate_only checks and changes nothing.
    assert_eq!(create_partitions(&mut c, vec![increase("t", 5, None)], true), [("t".into(), 0)]);
    assert_eq!(create_partitions(&mut c, vec![increase("t", 1, None)], true), [("t".into(), invalid_partitions)]);
    assert_eq!(metadata(&mut c, "t", false), (0, 2));
    // Assignments naming this broker are what Kafka takes from a one-broker cluster.
    assert_eq!(alone(&mut c, increase("t", 4, Some(vec![vec![7], vec![7]]))), 0);
    assert_eq!(metadata(&mut c, "t", false), (0, 4));
    assert_eq!(produce(&mut c, "t", 3), 0);
    assert_eq!(produce(&mut c, "t", 4), code(ResponseError::UnknownTopicOrPartition));
}

/// A group consumer of `topic` that refreshes its metadata every 500 ms, so
/// it notices new partitions soon.
fn group_consumer(bootstrap: &str, group: &str, topic: &str) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("topic.metadata.refresh.interval.ms", "500")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    consumer
}

/// Polls `consumer` until it has received every value of `expected`.
fn receive(consumer: &BaseConsumer, expected: &[&str]) -> Vec<(i32, String)> {
    let mut got = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while !expected.iter().all(|e| got.iter().any(|(_, v)| v == e)) {
        assert!(Instant::now() < deadline, "received only {got:?} of {expected:?}");
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("consume");
            got.push((m.partition(), String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string()));
        }
    }
    got
}

fn send_to(bootstrap: &str, topic: &str, values: &[(i32, &str)]) {
    let producer = producer(bootstrap, "all");
    for (partition, value) in values {
        producer
            .send(BaseRecord::<(), _, _>::with_opaque_to(topic, Box::new(0)).partition(*partition).payload(*value))
            .unwrap();
    }
    producer.flush(TIMEOUT).expect("flush");
    assert!(producer.context().failed.lock().unwrap().is_empty(), "{:?}", producer.context().failed);
}

#[test]
fn partitions_added_through_librdkafka_are_real_and_survive_a_restart() {
    let mut broker = Broker::start(&[]);
    let b = broker.bootstrap();
    create_topic(&b, "grow", 1);
    let consumer = group_consumer(&b, "growers", "grow");
    send_to(&b, "grow", &[(0, "before")]);
    assert_eq!(receive(&consumer, &["before"]), [(0, "before".to_string())]);
    consumer.commit_consumer_state(CommitMode::Sync).expect("commit");

    let admin = admin(&b);
    let options = AdminOptions::new().request_timeout(Some(TIMEOUT));
    let results = block_on(admin.create_partitions([&NewPartitions::new("grow", 4)], &options)).expect("admin");
    assert_eq!(results.len(), 1);
    assert!(results[0].is_ok(), "{:?}", results[0]);
    let again = block_on(admin.create_partitions([&NewPartitions::new("grow", 2)], &options)).expect("admin");
    let Err((_, error)) = &again[0] else { panic!("a decrease was accepted") };
    assert_eq!(*error, rdkafka::types::RDKafkaErrorCode::InvalidPartitions);

    let mut c = client(&b);
    assert_eq!(metadata(&mut c, "grow", false), (0, 4));
    // The group's member is given the new partitions and reads them.
    send_to(&b, "grow", &[(1, "one"), (2, "two"), (3, "three")]);
    let got: HashSet<_> = receive(&consumer, &["one", "two", "three"]).into_iter().collect();
    let expected: HashSet<_> = [(1, "one"), (2, "two"), (3, "three")].map(|(p, v)| (p, v.to_string())).into();
    assert_eq!(got, expected);
    drop(consumer);

    broker.kill(); // unclean: the new count was durable when it was answered
    broker.restart();
    let mut c = client(&b);
    assert_eq!(metadata(&mut c, "grow", false), (0, 4));
    let consumed = consume_all(&b, "grow", 4);
    let mut values: Vec<_> =
        consumed.iter().map(|m| (m.partition, String::from_utf8_lossy(&m.value).to_string())).collect();
    values.sort();
    assert_eq!(values, [(0, "before"), (1, "one"), (2, "two"), (3, "three")].map(|(p, v)| (p, v.to_string())));
}

#[test]
fn weir_topics_alter_adds_partitions() {
    let broker = Broker::start(&[]);
    let b = broker.bootstrap();
    create_topic(&b, "cli", 1);
    let alter = |count: &str| {
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["topics", "alter", "cli", "--partitions", count, "--bootstrap", &b])
            .output()
            .expect("run weir topics alter")
    };
    let grown = alter("3");
    assert!(grown.status.success(), "{}", String::from_utf8_lossy(&grown.stderr));
    assert_eq!(metadata(&mut client(&b), "cli", false), (0, 3));
    let shrunk = alter("2");
    assert!(!shrunk.status.success());
    let stderr = String::from_utf8_lossy(&shrunk.stderr);
    assert!(stderr.contains("The topic cli currently has 3 partition(s); 2 would not be an increase."), "{stderr}");
}

/// OffsetForLeaderEpoch of partitions 0 and 1 of `topic`, asking for
/// `epoch` with `current` as the client's current leader epoch, at `version`:
/// (error code, leader epoch, end offset) of each.
fn epoch_end_offsets(client: &mut Client, topic: &str, current: i32, epoch: i32, version: i16) -> Vec<(i16, i32, i64)> {
    let partitions = (0..2)
        .map(|p| {
            OffsetForLeaderPartition::default()
                .with_partition(p)
                .with_current_leader_epoch(current)
                .with_leader_epoch(epoch)
        })
        .collect();
    let mut request = OffsetForLeaderEpochRequest::default()
        .with_topics(vec![OffsetForLeaderTopic::default().with_topic(name(topic)).with_partitions(partitions)]);
    if version >= 3 {
        request.replica_id = BrokerId(-1);
    }
    let response = client.send(&request, version).expect("offset for leader epoch answered");
    response.topics[0].partitions.iter().map(|p| (p.error_code, p.leader_epoch, p.end_offset)).collect()
}

#[test]
fn offset_for_leader_epoch_answers_as_a_one_broker_kafka() {
    let broker = Broker::start(&[]);
    create_topic(&broker.bootstrap(), "epochs", 1);
    let mut c = client(&broker.bootstrap());
    for _ in 0..3 {
        assert_eq!(produce(&mut c, "epochs", 0), 0);
    }
    let unknown = code(ResponseError::UnknownTopicOrPartition);
    for version in 2..=4 {
        // Epoch 0, the only one, ends at the log end offset; partition 1 does not exist.
        assert_eq!(epoch_end_offsets(&mut c, "epochs", -1, 0, version), [(0, 0, 3), (unknown, -1, -1)]);
        assert_eq!(epoch_end_offsets(&mut c, "epochs", 0, 0, version)[0], (0, 0, 3));
        // An epoch above the current one, or none, has no end offset.
        assert_eq!(epoch_end_offsets(&mut c, "epochs", 0, 5, version)[0], (0, -1, -1));
        assert_eq!(epoch_end_offsets(&mut c, "epochs", -1, -1, version)[0], (0, -1, -1));
        // The client's view of the current epoch is checked first.
        let unknown_epoch = code(ResponseError::UnknownLeaderEpoch);
        assert_eq!(epoch_end_offsets(&mut c, "epochs", 1, 0, version)[0], (unknown_epoch, -1, -1));
        assert_eq!(epoch_end_offsets(&mut c, "missing", 0, 0, version), [(unknown, -1, -1), (unknown, -1, -1)]);
    }
    // A follower (replica id 3, v3+) is answered the same.
    let request = OffsetForLeaderEpochRequest::default().with_replica_id(BrokerId(3)).with_topics(vec![
        OffsetForLeaderTopic::default()
            .with_topic(name("epochs"))
            .with_partitions(vec![OffsetForLeaderPartition::default().with_partition(0).with_leader_epoch(0)]),
    ]);
    let p = &c.send(&request, 4).unwrap().topics[0].partitions[0];
    assert_eq!((p.error_code, p.leader_epoch, p.end_offset), (0, 0, 3));
}

#[test]
fn librdkafka_validates_a_seek_with_a_leader_epoch_through_offset_for_leader_epoch() {
    let (broker, admin) = broker_with_admin(&[]);
    let b = broker.bootstrap();
    create_topic(&b, "validated", 1);
    send_to(&b, "validated", &[(0, "a"), (0, "b")]);
    let consumer = consumer(&b);
    let mut from_start = TopicPartitionList::new();
    from_start.add_partition_offset("validated", 0, Offset::Beginning).unwrap();
    consumer.assign(&from_start).unwrap();
    receive(&consumer, &["a", "b"]);
    // A seek to offset 1 in leader epoch 0 (what a committed position
    // carries; the rdkafka crate has no setter for it) is validated (KIP-320)
    // before fetching resumes.
    let mut seek = TopicPartitionList::new();
    seek.add_partition_offset("validated", 0, Offset::Offset(1)).unwrap();
    let topic = std::ffi::CString::new("validated").unwrap();
    // SAFETY: `seek` owns the list and outlives the element pointer, which
    // `find` returns for the partition added just above.
    unsafe {
        let element = rdkafka::bindings::rd_kafka_topic_partition_list_find(seek.ptr(), topic.as_ptr(), 0);
        assert!(!element.is_null());
        rdkafka::bindings::rd_kafka_topic_partition_set_leader_epoch(element, 0);
    }
    consumer.seek_partitions(seek, TIMEOUT).expect("seek");
    assert_eq!(receive(&consumer, &["b"]), [(0, "b".to_string())], "the validated position was not kept");
    let metrics = http(&admin, "GET", "/metrics").1;
    let validated = sum(&metrics, "weir_requests_total", &["api=\"OffsetForLeaderEpoch\"", "error_code=\"0\""]);
    assert!(validated >= 1.0, "librdkafka did not validate its position:\n{metrics}");
}

#[test]
fn describe_cluster_names_this_broker_as_kafka_does() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("weir.toml");
    std::fs::write(&config, "node_id = 3\n").unwrap();
    let broker = Broker::start(&["--config", config.to_str().unwrap()]);
    let mut c = client(&broker.bootstrap());
    let cluster_id = metadata_at(&mut c, "any", false, 12).cluster_id.unwrap();
    for version in 0..=2 {
        let request = DescribeClusterRequest::default().with_include_cluster_authorized_operations(version == 2);
        let response = c.send(&request, version).unwrap();
        assert_eq!(response.error_code, 0);
        assert_eq!((response.cluster_id.clone(), response.controller_id), (cluster_id.clone(), BrokerId(3)));
        let brokers: Vec<_> = response.brokers.iter().map(|b| (b.broker_id, b.host.to_string(), b.port)).collect();
        assert_eq!(brokers, [(BrokerId(3), "127.0.0.1".to_string(), broker.port as i32)]);
        // Without an authorizer Kafka allows every cluster operation: CREATE,
        // ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE.
        let expected_operations = if version == 2 { 0b1_1111_1010_0000 } else { i32::MIN };
        assert_eq!(response.cluster_authorized_operations, expected_operations);
        if version >= 1 {
            assert_eq!(response.endpoint_type, 1);
        }
    }
    // Brokers do not describe the controllers' endpoints.
    let controllers = c.send(&DescribeClusterRequest::default().with_endpoint_type(2), 1).unwrap();
    assert_eq!(controllers.error_code, code(ResponseError::MismatchedEndpointType));
    assert!(controllers.brokers.is_empty());
    let unknown = c.send(&DescribeClusterRequest::default().with_endpoint_type(9), 2).unwrap();
    assert_eq!(unknown.error_code, code(ResponseError::UnsupportedEndpointType));
}
