//! The newest versions of the APIs Kafka 4.1 serves, each request sent at
//! exactly the version under test: Fetch v13-v17 (topics by id), Metadata
//! v13, ListOffsets v8-v10, Produce v10-v11, DescribeLogDirs v1-v4 and
//! DescribeTopicPartitions v0 (paginated).

use crate::common;

use common::*;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Request, StrBytes};
use uuid::Uuid;
use weir_client::Client;

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

fn code(error: ResponseError) -> i16 {
    error.code()
}

/// Sends `request` at exactly `version`, after checking the broker
/// advertises it (the client would otherwise pick a lower one).
fn send_at<R: Request>(client: &mut Client, request: &R, version: i16) -> R::Response {
    assert_eq!(client.version_for::<R>(version).unwrap(), version, "the broker advertises v{version}");
    client.send(request, version).unwrap_or_else(|e| panic!("v{version} answered: {e:#}"))
}

/// Metadata for `topics` by name at `version`.
fn metadata(client: &mut Client, topics: &[&str], version: i16) -> MetadataResponse {
    let topics = topics.iter().map(|t| MetadataRequestTopic::default().with_name(Some(name(t)))).collect();
    let request = MetadataRequest::default().with_topics(Some(topics)).with_allow_auto_topic_creation(false);
    send_at(client, &request, version)
}

/// Produces `count` one-record batches to `partition` at `version`: the base offsets.
fn produce(client: &mut Client, topic: &str, partition: i32, count: usize, version: i16) -> Vec<(i16, i64)> {
    (0..count)
        .map(|_| {
            let records = weir_engine::records::RecordsBuilder::new().push(None, Some(b"x"), &[], 1).finish();
            let data = PartitionProduceData::default().with_index(partition).with_records(Some(records));
            let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(5000).with_topic_data(vec![
                TopicProduceData::default().with_name(name(topic)).with_partition_data(vec![data]),
            ]);
            let response = send_at(client, &request, version);
            assert!(response.node_endpoints.is_empty(), "no NOT_LEADER_OR_FOLLOWER, no leader endpoints");
            let p = &response.responses[0].partition_responses[0];
            (p.error_code, p.base_offset)
        })
        .collect()
}

fn fetch_by_id(client: &mut Client, id: Uuid, partition: i32, version: i16) -> FetchResponse {
    let topic = FetchTopic::default().with_topic_id(id).with_partitions(vec![FetchPartition::default()
        .with_partition(partition)
        .with_fetch_offset(0)
        .with_partition_max_bytes(1 << 20)]);
    let mut request = FetchRequest::default().with_max_wait_ms(0).with_max_bytes(1 << 20).with_topics(vec![topic]);
    if version >= 15 {
        // A consumer's replica state: no replica.
        request.replica_state = ReplicaState::default().with_replica_id(BrokerId(-1)).with_replica_epoch(-1);
    } else {
        request.replica_id = BrokerId(-1);
    }
    send_at(client, &request, version)
}

#[test]
fn fetch_v13_to_v17_names_topics_by_the_id_metadata_reports_and_the_id_is_stable() {
    let mut broker = Broker::start(&[]);
    create_topic(&broker.bootstrap(), "by-id", 2);
    let mut c = client(&broker.bootstrap());
    assert_eq!(produce(&mut c, "by-id", 0, 2, 11), [(0, 0), (0, 1)]);

    let response = metadata(&mut c, &["by-id"], 13);
    assert_eq!(response.error_code, 0, "Metadata v13's top-level error");
    let topic = &response.topics[0];
    assert_eq!((topic.error_code, topic.partitions.len()), (0, 2));
    let id = topic.topic_id;
    assert!(!id.is_nil(), "a topic has an id");
    for version in 10..=12 {
        assert_eq!(metadata(&mut c, &["by-id"], version).topics[0].topic_id, id, "Metadata v{version}");
    }
    // Metadata v10+ by id alone: the topic's name; an unknown id is UNKNOWN_TOPIC_ID.
    let unknown = Uuid::from_u128(0x1234);
    let by_id = [id, unknown].map(|id| MetadataRequestTopic::default().with_name(None).with_topic_id(id));
    let request = MetadataRequest::default().with_topics(Some(by_id.to_vec()));
    let response = send_at(&mut c, &request, 13);
    let answers: Vec<_> = response.topics.iter().map(|t| (t.error_code, t.name.clone(), t.topic_id)).collect();
    assert_eq!(answers, [(0, Some(name("by-id")), id), (code(ResponseError::UnknownTopicId), None, unknown)]);

    for version in 13..=17 {
        let response = fetch_by_id(&mut c, id, 0, version);
        assert_eq!(response.error_code, 0);
        assert_eq!(response.responses.len(), 1);
        let topic = &response.responses[0];
        assert_eq!(topic.topic_id, id, "v{version} answers by id");
        let p = &topic.partitions[0];
        assert_eq!((p.error_code, p.high_watermark, p.log_start_offset), (0, 2, 0), "v{version}");
        let mut records = p.records.clone().expect("records");
        let batches =
            kafka_protocol::records::RecordBatchDecoder::decode_all(&mut records).expect("the stored batches");
        let offsets: Vec<i64> = batches.iter().flat_map(|b| b.records.iter().map(|r| r.offset)).collect();
        assert_eq!(offsets, [0, 1], "v{version}: both records");
        assert!(response.node_endpoints.is_empty(), "v{version}: no leader hint without NOT_LEADER_OR_FOLLOWER");

        let response = fetch_by_id(&mut c, unknown, 0, version);
        let topic = &response.responses[0];
        assert_eq!(topic.topic_id, unknown);
        let p = &topic.partitions[0];
        assert_eq!((p.error_code, p.high_watermark), (code(ResponseError::UnknownTopicId), -1), "v{version}");

        let response = fetch_by_id(&mut c, id, 7, version);
        let p = &response.responses[0].partitions[0];
        assert_eq!(p.error_code, code(ResponseError::UnknownTopicOrPartition), "v{version}: a partition it lacks");
    }

    // The id survives a restart: the same topic, the same id, found by it.
    drop(c);
    broker.stop();
    broker.restart();
    let mut c = client(&broker.bootstrap());
    assert_eq!(metadata(&mut c, &["by-id"], 13).topics[0].topic_id, id);
    let response = fetch_by_id(&mut c, id, 0, 17);
    assert_eq!(
        (response.responses[0].partitions[0].error_code, response.responses[0].partitions[0].high_watermark),
        (0, 2)
    );
}

/// ListOffsets for partition 0 of `topic` at `timestamp`: (error, offset, timestamp, leader epoch).
fn list_offset(client: &mut Client, topic: &str, timestamp: i64, version: i16) -> (i16, i64, i64, i32) {
    let partition = ListOffsetsPartition::default().with_partition_index(0).with_timestamp(timestamp);
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default().with_name(name(topic)).with_partitions(vec![partition])]);
    let request = if version >= 10 { request.with_timeout_ms(1000) } else { request };
    let response = send_at(client, &request, version);
    let p = &response.topics[0].partitions[0];
    (p.error_code, p.offset, p.timestamp, p.leader_epoch)
}

#[test]
fn list_offsets_v8_to_v10_answer_the_tiered_storage_timestamps_as_kafka_without_it() {
    let broker = Broker::start(&[]);
    create_topic(&broker.bootstrap(), "offsets", 1);
    let mut c = client(&broker.bootstrap());
    assert_eq!(produce(&mut c, "offsets", 0, 5, 10).len(), 5);
    // Move the log start to 2, so the earliest offsets differ from 0.
    let delete = DeleteRecordsRequest::default().with_timeout_ms(5000).with_topics(vec![DeleteRecordsTopic::default()
        .with_name(name("offsets"))
        .with_partitions(vec![DeleteRecordsPartition::default().with_partition_index(0).with_offset(2)])]);
    let deleted = c.send(&delete, 2).unwrap();
    assert_eq!(deleted.topics[0].partitions[0].low_watermark, 2);

    for version in 8..=10 {
        assert_eq!(list_offset(&mut c, "offsets", -1, version), (0, 5, -1, 0), "v{version} latest");
        assert_eq!(list_offset(&mut c, "offsets", -2, version), (0, 2, -1, 0), "v{version} earliest");
        // -4: the earliest local offset, the earliest offset without tiered storage.
        assert_eq!(list_offset(&mut c, "offsets", -4, version), (0, 2, -1, 0), "v{version} earliest local");
        // -5: the latest tiered offset: none, and no epoch.
        assert_eq!(list_offset(&mut c, "offsets", -5, version), (0, -1, -1, -1), "v{version} latest tiered");
        let (error, offset, _, epoch) = list_offset(&mut c, "offsets", -3, version);
        // Every record has the same timestamp: the first of them left in the log.
        assert_eq!((error, offset, epoch), (0, 2, 0), "v{version} max timestamp");
        // A timestamp after every record: no offset, no epoch.
        assert_eq!(list_offset(&mut c, "offsets", i64::MAX, version), (0, -1, -1, -1), "v{version} after all");
        let unknown = list_offset(&mut c, "no-such-topic", -4, version);
        assert_eq!(unknown.0, code(ResponseError::UnknownTopicOrPartition), "v{version}");
    }
}

#[test]
fn produce_v10_and_v11_append_and_refuse_as_v9() {
    let broker = Broker::start(&[]);
    create_topic(&broker.bootstrap(), "produced", 1);
    let mut c = client(&broker.bootstrap());
    assert_eq!(produce(&mut c, "produced", 0, 2, 10), [(0, 0), (0, 1)]);
    assert_eq!(produce(&mut c, "produced", 0, 2, 11), [(0, 2), (0, 3)]);
    for version in [10, 11] {
        let [(error, offset)] = produce(&mut c, "produced", 3, 1, version)[..] else { unreachable!() };
        assert_eq!((error, offset), (code(ResponseError::UnknownTopicOrPartition), -1), "v{version}");
    }
}

/// DescribeLogDirs at `version` for `topics` (None: all): (log dir, topics
/// with (partition, size, lag), total, usable).
type LogDir = (String, Vec<(String, Vec<(i32, i64, i64)>)>, i64, i64);

fn describe_log_dirs(client: &mut Client, topics: Option<Vec<DescribableLogDirTopic>>, version: i16) -> Vec<LogDir> {
    let response = send_at(client, &DescribeLogDirsRequest::default().with_topics(topics), version);
    assert_eq!(response.error_code, 0);
    response
        .results
        .iter()
        .map(|d| {
            assert_eq!(d.error_code, 0);
            let topics = d
                .topics
                .iter()
                .map(|t| {
                    let partitions = t.partitions.iter().map(|p| (p.partition_index, p.partition_size, p.offset_lag));
                    (t.name.0.to_string(), partitions.collect())
                })
                .collect();
            (d.log_dir.to_string(), topics, d.total_bytes, d.usable_bytes)
        })
        .collect()
}

#[test]
fn describe_log_dirs_v1_to_v4_lists_the_data_dir_its_partitions_and_its_space() {
    let broker = Broker::start(&[]);
    create_topic(&broker.bootstrap(), "sized", 2);
    let mut c = client(&broker.bootstrap());
    produce(&mut c, "sized", 0, 3, 11);
    let data_dir = std::fs::canonicalize(&broker.data_dir).unwrap();
    for version in 1..=4 {
        let dirs = describe_log_dirs(&mut c, None, version);
        assert_eq!(dirs.len(), 1, "v{version}: one log dir");
        let (dir, topics, total, usable) = &dirs[0];
        assert_eq!(std::fs::canonicalize(dir).unwrap(), data_dir, "v{version}");
        let (_, partitions) = topics.iter().find(|(t, _)| t == "sized").expect("the topic is listed");
        assert_eq!(partitions.len(), 2);
        let (p0, p1) = (partitions[0], partitions[1]);
        assert_eq!((p0.0, p1.0), (0, 1));
        assert!(p0.1 > 0, "v{version}: partition 0 holds three batches: {p0:?}");
        assert_eq!((p1.1, p0.2, p1.2), (0, 0, 0), "v{version}: partition 1 is empty, neither lags");
        if version >= 4 {
            assert!(*total > 0 && (0..=*total).contains(usable), "v{version}: total {total}, usable {usable}");
        } else {
            assert_eq!((*total, *usable), (-1, -1), "v{version} has no space fields");
        }
    }
    // Only what is named: partition 1 of "sized", and a topic that does not exist.
    let named = vec![
        DescribableLogDirTopic::default().with_topic(name("sized")).with_partitions(vec![1]),
        DescribableLogDirTopic::default().with_topic(name("absent")).with_partitions(vec![0]),
    ];
    let dirs = describe_log_dirs(&mut c, Some(named), 4);
    assert_eq!(dirs[0].1, [("sized".to_string(), vec![(1, 0, 0)])]);
}

/// (topic, error, partitions) of one DescribeTopicPartitions answer.
type TopicPartitions = (String, i16, Vec<i32>);

/// DescribeTopicPartitions: each answer, and the next cursor.
fn describe_partitions(
    client: &mut Client,
    topics: &[&str],
    limit: i32,
    cursor: Option<(&str, i32)>,
) -> (Vec<TopicPartitions>, Option<(String, i32)>) {
    let request = DescribeTopicPartitionsRequest::default()
        .with_topics(topics.iter().map(|t| TopicRequest::default().with_name(name(t))).collect())
        .with_response_partition_limit(limit)
        .with_cursor(cursor.map(|(t, p)| Cursor::default().with_topic_name(name(t)).with_partition_index(p)));
    let response = send_at(client, &request, 0);
    let topics = response
        .topics
        .iter()
        .map(|t| {
            let partitions: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
            (t.name.as_ref().map_or(String::new(), |n| n.0.to_string()), t.error_code, partitions)
        })
        .collect();
    (topics, response.next_cursor.map(|c| (c.topic_name.0.to_string(), c.partition_index)))
}

#[test]
fn describe_topic_partitions_pages_by_cursor_and_partition_limit_as_kafka() {
    let broker = Broker::start(&[]);
    for (topic, partitions) in [("a", 3), ("b", 2), ("c", 1)] {
        create_topic(&broker.bootstrap(), topic, partitions);
    }
    let mut c = client(&broker.bootstrap());
    let ok = |t: &str, partitions: &[i32]| (t.to_string(), 0, partitions.to_vec());
    let unknown = code(ResponseError::UnknownTopicOrPartition);

    // Sorted by name, cut after four partitions, in the middle of "b".
    let (topics, next) = describe_partitions(&mut c, &["c", "missing", "a", "b"], 4, None);
    assert_eq!(topics, [ok("a", &[0, 1, 2]), ok("b", &[0])]);
    assert_eq!(next, Some(("b".to_string(), 1)));
    let (topics, next) = describe_partitions(&mut c, &["c", "missing", "a", "b"], 4, Some(("b", 1)));
    assert_eq!(topics, [ok("b", &[1]), ok("c", &[0]), ("missing".to_string(), unknown, vec![])]);
    assert_eq!(next, None);
    // A limit spent exactly at a topic's end: the cursor names the next topic's first partition.
    let (topics, next) = describe_partitions(&mut c, &["a", "b"], 3, None);
    assert_eq!(topics, [ok("a", &[0, 1, 2])]);
    assert_eq!(next, Some(("b".to_string(), 0)));
    // No topics named: all of them, the unknown ones not made up.
    let clients_topics = |(topics, next): (Vec<(String, i16, Vec<i32>)>, _)| {
        (topics.into_iter().filter(|(t, _, _)| !t.starts_with("__")).collect::<Vec<_>>(), next)
    };
    let (topics, next) = clients_topics(describe_partitions(&mut c, &[], 2000, None));
    assert_eq!(topics, [ok("a", &[0, 1, 2]), ok("b", &[0, 1]), ok("c", &[0])]);
    assert_eq!(next, None);
    let (topics, _) = clients_topics(describe_partitions(&mut c, &[], 2000, Some(("b", 1))));
    assert_eq!(topics, [ok("b", &[1]), ok("c", &[0])]);
    // A cursor outside the topics named, or with a negative partition: INVALID_REQUEST.
    let invalid = code(ResponseError::InvalidRequest);
    let (topics, _) = describe_partitions(&mut c, &["a"], 10, Some(("b", 0)));
    assert_eq!(topics, [("a".to_string(), invalid, vec![])]);
    let (topics, _) = describe_partitions(&mut c, &["a"], 10, Some(("a", -1)));
    assert_eq!(topics, [("a".to_string(), invalid, vec![])]);

    // Each topic's id is the one Metadata reports.
    let request = DescribeTopicPartitionsRequest::default()
        .with_topics(vec![TopicRequest::default().with_name(name("a"))])
        .with_response_partition_limit(10);
    let described = send_at(&mut c, &request, 0);
    let metadata = metadata(&mut c, &["a"], 13);
    assert_eq!(described.topics[0].topic_id, metadata.topics[0].topic_id);
    let (p, expected) = (&described.topics[0].partitions[0], &metadata.topics[0].partitions[0]);
    assert_eq!((p.leader_id, p.leader_epoch), (expected.leader_id, expected.leader_epoch));
    assert_eq!((&p.replica_nodes, &p.isr_nodes), (&expected.replica_nodes, &expected.isr_nodes));
}

/// KIP-320 on Fetch v12: the fetcher's view of the leader epoch is checked,
/// and a fetcher whose last batch is of an epoch this log does not have is
/// told where to truncate to instead of getting records.
#[test]
fn fetch_checks_the_leader_epoch_and_answers_a_diverged_history_with_the_epoch_to_truncate_to() {
    let broker = Broker::start(&[]);
    create_topic(&broker.bootstrap(), "epochs", 1);
    let mut c = client(&broker.bootstrap());
    assert_eq!(produce(&mut c, "epochs", 0, 3, 9), [(0, 0), (0, 1), (0, 2)]);
    let mut fetch = |offset: i64, current_leader_epoch: i32, last_fetched_epoch: i32| {
        let partition = FetchPartition::default()
            .with_partition(0)
            .with_fetch_offset(offset)
            .with_partition_max_bytes(1 << 20)
            .with_current_leader_epoch(current_leader_epoch)
            .with_last_fetched_epoch(last_fetched_epoch);
        let topic = FetchTopic::default().with_topic(name("epochs")).with_partitions(vec![partition]);
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_topics(vec![topic]);
        let p = send_at(&mut c, &request, 12).responses[0].partitions[0].clone();
        let records = p.records.as_ref().map_or(0, |r| r.len());
        (p.error_code, (p.diverging_epoch.epoch, p.diverging_epoch.end_offset), records > 0)
    };
    let no_divergence = (-1, -1);
    assert_eq!(fetch(1, -1, -1), (0, no_divergence, true), "no epochs given");
    assert_eq!(fetch(1, 0, 0), (0, no_divergence, true), "the leader's epoch, a history it shares");
    assert_eq!(fetch(1, 1, -1), (code(ResponseError::UnknownLeaderEpoch), no_divergence, false));
    // The fetcher asks past where its epoch ends here: it truncates to 3.
    assert_eq!(fetch(5, 0, 0), (0, (0, 3), false));
    // An epoch later than any this log has: Kafka cannot say where it ends.
    assert_eq!(fetch(3, 0, 4), (code(ResponseError::OffsetOutOfRange), no_divergence, false));

    // ListOffsets (v4+) checks the client's view of the epoch the same way.
    let mut list = |current_leader_epoch: i32| {
        let partition = ListOffsetsPartition::default()
            .with_partition_index(0)
            .with_timestamp(-1)
            .with_current_leader_epoch(current_leader_epoch);
        let topic = ListOffsetsTopic::default().with_name(name("epochs")).with_partitions(vec![partition]);
        let request = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![topic]);
        let p = send_at(&mut c, &request, 4).topics[0].partitions[0].clone();
        (p.error_code, p.offset, p.leader_epoch)
    };
    assert_eq!(list(0), (0, 3, 0));
    assert_eq!(list(7), (code(ResponseError::UnknownLeaderEpoch), -1, -1));
}
