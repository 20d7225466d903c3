//! Topic configs and log management through Kafka clients: CreateTopics with
//! configs, DescribeConfigs, AlterConfigs, IncrementalAlterConfigs, the `weir
//! topics` commands, and each config changing what the broker does
//! (segment.bytes, segment.ms, retention.ms, retention.bytes,
//! max.message.bytes, message.timestamp.type, cleanup.policy=compact), plus
//! DeleteRecords and ListOffsets by timestamp.

use crate::common;

use common::*;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_configs_request;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AlterConfigsRequest, CreateTopicsRequest, DescribeConfigsRequest, IncrementalAlterConfigsRequest,
    ListOffsetsRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigSource, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::Consumer;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Message, Timestamp};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use weir_client::Client;
use weir_engine::compression::Codec;
use weir_engine::records::RecordsBuilder;

const TIMEOUT: Duration = Duration::from_secs(30);

/// A broker whose retention and compaction passes run every 200 ms.
fn broker() -> (Broker, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("weir.toml");
    std::fs::write(&config, "log_retention_check_interval_ms = 200\nlog_cleaner_backoff_ms = 200\n").unwrap();
    let broker = Broker::start(&["--config", config.to_str().unwrap()]);
    (broker, dir)
}

fn options() -> AdminOptions {
    AdminOptions::new().request_timeout(Some(TIMEOUT))
}

/// Creates a one-partition topic with `configs`; the broker's error code on failure.
fn create(
    admin: &AdminClient<DefaultClientContext>,
    name: &str,
    configs: &[(&str, &str)],
) -> Result<(), RDKafkaErrorCode> {
    let mut topic = NewTopic::new(name, 1, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let results = block_on(admin.create_topics([&topic], &options())).expect("create_topics");
    results.into_iter().next().expect("one result").map(drop).map_err(|(_, code)| code)
}

/// name -> (value, set on the topic) of every config DescribeConfigs reports.
fn describe(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
) -> std::collections::HashMap<String, (String, bool)> {
    let results = block_on(admin.describe_configs([&ResourceSpecifier::Topic(topic)], &options())).expect("describe");
    let resource = results.into_iter().next().expect("one result").expect("describe ok");
    resource
        .entries
        .into_iter()
        .map(|e| (e.name, (e.value.unwrap_or_default(), e.source == ConfigSource::DynamicTopic)))
        .collect()
}

/// Sends one record to partition 0 (opaque `index`) without waiting.
fn send(producer: &BaseProducer<Acks>, topic: &str, index: u64, key: &str, value: &[u8], timestamp: Option<i64>) {
    let mut record = BaseRecord::with_opaque_to(topic, Box::new(index)).partition(0).key(key).payload(value);
    if let Some(ts) = timestamp {
        record = record.timestamp(ts);
    }
    producer.send(record).map_err(|(e, _)| e).expect("send");
    producer.poll(Duration::ZERO);
}

fn flush(producer: &BaseProducer<Acks>) {
    producer.flush(TIMEOUT).expect("flush");
    let failed = producer.context().failed.lock().unwrap();
    assert!(failed.is_empty(), "deliveries failed: {:?}", &failed[..failed.len().min(3)]);
}

/// The `.log` segment files of partition 0 of `topic`.
fn log_files(data_dir: &Path, topic: &str) -> usize {
    std::fs::read_dir(data_dir.join(format!("{topic}-0")))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .count()
}

/// (earliest, latest) offsets of partition 0, by ListOffsets.
fn watermarks(bootstrap: &str, topic: &str) -> (i64, i64) {
    consumer(bootstrap).fetch_watermarks(topic, 0, TIMEOUT).expect("watermarks")
}

fn weir(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_weir")).args(args).output().expect("run weir");
    assert!(
        output.status.success(),
        "weir {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

#[test]
fn configs_are_created_described_altered_and_persisted() {
    let (mut broker, _dir) = broker();
    let bootstrap = broker.bootstrap();
    let admin = admin(&bootstrap);

    create(&admin, "configured", &[("segment.bytes", "4096"), ("cleanup.policy", "compact")]).unwrap();
    assert_eq!(create(&admin, "bad-name", &[("retention.forever", "1")]), Err(RDKafkaErrorCode::InvalidConfig));
    assert_eq!(create(&admin, "bad-value", &[("retention.ms", "soon")]), Err(RDKafkaErrorCode::InvalidConfig));
    assert_eq!(create(&admin, "bad-policy", &[("cleanup.policy", "archive")]), Err(RDKafkaErrorCode::InvalidConfig));

    let configs = describe(&admin, "configured");
    assert_eq!(configs["segment.bytes"], ("4096".to_string(), true));
    assert_eq!(configs["cleanup.policy"], ("compact".to_string(), true));
    assert_eq!(configs["retention.ms"], ("604800000".to_string(), false));
    assert_eq!(configs["message.timestamp.type"], ("CreateTime".to_string(), false));
    assert_eq!(configs["max.message.bytes"], ("1048588".to_string(), false));

    // The broker's own settings: read-only, from its config file.
    let results = block_on(admin.describe_configs([&ResourceSpecifier::Broker(0)], &options())).expect("describe");
    let broker_configs = results.into_iter().next().unwrap().expect("broker configs");
    let interval = broker_configs.get("log.retention.check.interval.ms").expect("listed");
    assert_eq!((interval.value.as_deref(), interval.is_read_only), (Some("200"), true));
    assert_eq!(broker_configs.get("log.segment.bytes").and_then(|e| e.value.as_deref()), Some("1073741824"));

    // AlterConfigs replaces the whole set.
    let alter = AlterConfig::new(ResourceSpecifier::Topic("configured")).set("retention.ms", "3600000");
    let results = block_on(admin.alter_configs([&alter], &options())).expect("alter_configs");
    assert!(results[0].is_ok(), "{results:?}");
    let configs = describe(&admin, "configured");
    assert_eq!(configs["retention.ms"], ("3600000".to_string(), true));
    assert_eq!(configs["segment.bytes"], ("1073741824".to_string(), false));
    assert_eq!(configs["cleanup.policy"], ("delete".to_string(), false));
    // (rdkafka 0.39 does not report per-resource AlterConfigs errors: ask directly.)
    let mut client = Client::connect(&bootstrap).unwrap();
    let bad =
        AlterConfigsRequest::default().with_resources(vec![alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("configured"))
            .with_configs(vec![alter_configs_request::AlterableConfig::default()
                .with_name(s("segment.bytes"))
                .with_value(Some(s("-5")))])]);
    let response = client.send(&bad, 2).unwrap();
    assert_eq!(response.responses[0].error_code, ResponseError::InvalidConfig.code());
    assert_eq!(describe(&admin, "configured")["retention.ms"], ("3600000".to_string(), true));

    // IncrementalAlterConfigs: APPEND and SUBTRACT on the list config, SET, DELETE.
    let op = |name: &str, operation: i8, value: Option<&str>| {
        AlterableConfig::default().with_name(s(name)).with_config_operation(operation).with_value(value.map(s))
    };
    let incremental = |configs: Vec<AlterableConfig>| {
        IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("configured"))
            .with_configs(configs)])
    };
    let response = client
        .send(&incremental(vec![op("cleanup.policy", 2, Some("compact")), op("retention.ms", 1, None)]), 1)
        .unwrap();
    assert_eq!(response.responses[0].error_code, 0, "{:?}", response.responses[0].error_message);
    let configs = describe(&admin, "configured");
    assert_eq!(configs["cleanup.policy"], ("delete,compact".to_string(), true));
    assert_eq!(configs["retention.ms"], ("604800000".to_string(), false));
    let response = client.send(&incremental(vec![op("cleanup.policy", 3, Some("delete"))]), 1).unwrap();
    assert_eq!(response.responses[0].error_code, 0);
    assert_eq!(describe(&admin, "configured")["cleanup.policy"].0, "compact");
    let response = client.send(&incremental(vec![op("no.such.config", 0, Some("1"))]), 1).unwrap();
    assert_eq!(response.responses[0].error_code, ResponseError::InvalidConfig.code());

    // CreateTopics v5+ answers with every config and its source.
    let request = CreateTopicsRequest::default().with_timeout_ms(30_000).with_topics(vec![CreatableTopic::default()
        .with_name(TopicName(s("answered")))
        .with_num_partitions(1)
        .with_replication_factor(-1)
        .with_configs(vec![CreatableTopicConfig::default()
            .with_name(s("retention.bytes"))
            .with_value(Some(s("1000")))])]);
    let response = client.send(&request, 7).unwrap();
    let returned = response.topics[0].configs.clone().expect("configs in a v7 response");
    let find = |name: &str| {
        returned.iter().find(|c| &*c.name == name).map(|c| (c.value.as_deref().map(str::to_string), c.config_source))
    };
    assert_eq!(find("retention.bytes"), Some((Some("1000".to_string()), 1)));
    assert_eq!(find("retention.ms"), Some((Some("604800000".to_string()), 5)));

    // The CLI: create with --config, alter with --config / --delete-config, describe.
    weir(&[
        "topics",
        "create",
        "cli",
        "--config",
        "segment.ms=60000",
        "--config",
        "retention.bytes=99999",
        "-b",
        &bootstrap,
    ]);
    weir(&[
        "topics",
        "alter",
        "cli",
        "--config",
        "max.message.bytes=5000",
        "--delete-config",
        "segment.ms",
        "-b",
        &bootstrap,
    ]);
    let described = weir(&["topics", "describe", "cli", "-b", &bootstrap]);
    assert!(described.contains(" *max.message.bytes=5000"), "{described}");
    assert!(described.contains(" *retention.bytes=99999"), "{described}");
    assert!(described.contains(" segment.ms=604800000"), "{described}");
    let refused = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["topics", "alter", "cli", "--config", "flush.messages=0", "-b", &bootstrap])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("InvalidConfig"), "{refused:?}");

    // Configs survive a restart.
    drop(admin);
    broker.stop();
    broker.restart();
    let admin = self::admin(&bootstrap);
    assert_eq!(describe(&admin, "configured")["cleanup.policy"], ("compact".to_string(), true));
    assert_eq!(describe(&admin, "cli")["max.message.bytes"], ("5000".to_string(), true));
}

#[test]
fn segment_bytes_rolls_and_retention_bytes_deletes_old_segments() {
    let (broker, _dir) = broker();
    let bootstrap = broker.bootstrap();
    let admin = admin(&bootstrap);
    create(&admin, "rolled", &[("segment.bytes", "4096")]).unwrap();
    let producer = producer(&bootstrap, "all");
    for i in 0..200 {
        send(&producer, "rolled", i, &format!("k{i}"), &[b'x'; 200], None);
        if i % 10 == 9 {
            flush(&producer);
        }
    }
    flush(&producer);
    let segments = log_files(&broker.data_dir, "rolled");
    assert!(segments >= 8, "200 records of ~270 bytes in 4 KiB segments make many segments, got {segments}");
    assert_eq!(watermarks(&bootstrap, "rolled"), (0, 200));

    // Changing retention.bytes on the live topic: old segments go, the log start advances.
    let alter = AlterConfig::new(ResourceSpecifier::Topic("rolled"))
        .set("segment.bytes", "4096")
        .set("retention.bytes", "10000");
    assert!(block_on(admin.alter_configs([&alter], &options())).unwrap()[0].is_ok());
    wait_until("retention.bytes deleted old segments", TIMEOUT, || watermarks(&bootstrap, "rolled").0 > 0);
    // Batches of 10 records (~2.7 KB) fill a segment each: 4 sealed ones reach 10 KB, plus the active one.
    wait_until("only a few segments are left", TIMEOUT, || log_files(&broker.data_dir, "rolled") <= 6);
    let (earliest, latest) = watermarks(&bootstrap, "rolled");
    assert_eq!(latest, 200);
    assert!(earliest >= 140, "about 10 KB (~40 records) are kept, earliest is {earliest}");
    let consumed = consume_all(&bootstrap, "rolled", 1);
    assert_eq!(consumed.first().map(|c| c.offset), Some(earliest));
    assert_eq!(consumed.len() as i64, latest - earliest);
}

#[test]
fn segment_ms_rolls_and_retention_ms_deletes_old_segments() {
    let (broker, clock, _config) =
        broker_on_test_clock("log_retention_check_interval_ms = 200\nlog_cleaner_backoff_ms = 200\n");
    let bootstrap = broker.bootstrap();
    let admin = admin(&bootstrap);
    let producer = producer(&bootstrap, "all");

    // Records an hour old in sealed segments, then fresh ones.
    create(&admin, "expiring", &[("segment.bytes", "2048"), ("retention.ms", "60000")]).unwrap();
    let an_hour_ago = rdkafka::util::millis_to_epoch(std::time::SystemTime::now()) - 3_600_000;
    for i in 0..50 {
        send(&producer, "expiring", i, &format!("old{i}"), &[b'o'; 100], Some(an_hour_ago + i as i64));
    }
    flush(&producer);
    for i in 50..100 {
        send(&producer, "expiring", i, &format!("new{i}"), &[b'n'; 100], None);
    }
    flush(&producer);
    wait_until("retention.ms deleted the hour-old segments", TIMEOUT, || watermarks(&bootstrap, "expiring").0 > 0);
    let (earliest, latest) = watermarks(&bootstrap, "expiring");
    assert!(earliest <= 50 && latest == 100, "only old records go: earliest {earliest}, latest {latest}");

    // The broker's clock moves an hour between appends (after the part
    // above: its fresh records would be old by then).
    create(&admin, "timed", &[("segment.ms", "3600000")]).unwrap();
    for i in 0..3 {
        send(&producer, "timed", i, "k", b"v", None);
        flush(&producer);
        assert_eq!(log_files(&broker.data_dir, "timed"), i as usize + 1, "no roll within the hour");
        advance_clock(&clock, Duration::from_millis(3_600_001));
    }
    assert_eq!(log_files(&broker.data_dir, "timed"), 3, "segment.ms=1h rolls before each append an hour later");
}

#[test]
fn max_message_bytes_is_per_topic_and_follows_alter() {
    let (broker, _dir) = broker();
    let bootstrap = broker.bootstrap();
    let admin = admin(&bootstrap);
    create(&admin, "small", &[("max.message.bytes", "1000")]).unwrap();
    create(&admin, "large", &[]).unwrap();

    let try_send = |topic: &str, size: usize| -> Result<(), String> {
        let producer = producer_with(&bootstrap, "all", Acks::default(), 10_000);
        send(&producer, topic, 0, "k", &vec![b'x'; size], None);
        producer.flush(TIMEOUT).expect("flush");
        let failed = producer.context().failed.lock().unwrap();
        failed.first().map_or(Ok(()), |(_, e)| Err(e.clone()))
    };
    let too_large = try_send("small", 5000).unwrap_err();
    assert!(too_large.contains("too large"), "{too_large}");
    try_send("small", 500).unwrap();
    try_send("large", 5000).unwrap();

    let alter = AlterConfig::new(ResourceSpecifier::Topic("large")).set("max.message.bytes", "1000");
    assert!(block_on(admin.alter_configs([&alter], &options())).unwrap()[0].is_ok());
    let too_large = try_send("large", 5000).unwrap_err();
    assert!(too_large.contains("too large"), "{too_large}");
}

#[test]
fn log_append_time_replaces_producer_timestamps() {
    let (broker, _dir) = broker();
    let bootstrap = broker.bootstrap();
    let admin = admin(&bootstrap);
    create(&admin, "appended", &[("message.timestamp.type", "LogAppendTime")]).unwrap();
    create(&admin, "created", &[]).unwrap();
    let producer = producer(&bootstrap, "all");
    let before = rdkafka::util::millis_to_epoch(std::time::SystemTime::now());
    for topic in ["appended", "created"] {
        send(&producer, topic, 0, "k", b"v", Some(1_000_000));
    }
    flush(&producer);
    let after = rdkafka::util::millis_to_epoch(std::time::SystemTime::now());

    let timestamp_of = |topic: &str| {
        let consumer = consumer(&bootstrap);
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(topic, 0, Offset::Beginning).unwrap();
        consumer.assign(&assignment).unwrap();
        let start = Instant::now();
        loop {
            assert!(start.elapsed() < TIMEOUT, "no message in {topic}");
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                return m.timestamp();
            }
        }
    };
    match timestamp_of("appended") {
        Timestamp::LogAppendTime(ts) => assert!((before..=after).contains(&ts), "{ts} not in [{before}, {after}]"),
        other => panic!("expected a LogAppendTime timestamp, got {other:?}"),
    }
    assert_eq!(timestamp_of("created"), Timestamp::CreateTime(1_000_000));

    // The Produce response carries the append time and the log start offset.
    let mut client = Client::connect(&bootstrap).unwrap();
    let batch = RecordsBuilder::new().push(Some(b"k"), Some(b"v"), &[], 1_000_000).finish();
    let produce = ProduceRequest::default().with_acks(-1).with_timeout_ms(10_000).with_topic_data(vec![
        TopicProduceData::default()
            .with_name(TopicName(s("appended")))
            .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(batch))]),
    ]);
    let response = client.send(&produce, 9).unwrap();
    let partition = &response.responses[0].partition_responses[0];
    assert_eq!(partition.error_code, 0);
    assert_eq!(partition.base_offset, 1);
    assert!(partition.log_append_time_ms >= before, "log_append_time_ms {}", partition.log_append_time_ms);
    assert_eq!(partition.log_start_offset, 0);
}

#[test]
fn compaction_keeps_the_newest_value_of_each_key() {
    let (broker, _dir) = broker();
    let bootstrap = broker.bootstrap();
    let admin = admin(&bootstrap);
    create(&admin, "table", &[("cleanup.policy", "compact"), ("segment.bytes", "1024")]).unwrap();
    let producer = producer(&bootstrap, "all");
    let mut index = 0;
    for round in 0..5 {
        for key in 0..10 {
            send(&producer, "table", index, &format!("key{key}"), format!("round{round}").as_bytes(), None);
            index += 1;
        }
        flush(&producer);
    }
    // Enough records with unique keys behind them that every round is in a sealed segment.
    for i in 0..60 {
        send(&producer, "table", index, &format!("filler{i}"), &[b'f'; 100], None);
        index += 1;
    }
    flush(&producer);
    let acked = producer.context().acked.lock().unwrap().clone();

    let mut consumed = Vec::new();
    wait_until("compaction removed the old rounds", TIMEOUT, || {
        consumed = consume_all(&bootstrap, "table", 1);
        consumed.iter().filter(|c| c.key.starts_with(b"key")).count() == 10
    });
    for c in consumed.iter().filter(|c| c.key.starts_with(b"key")) {
        assert_eq!(c.value, b"round4", "key {} kept an old value", String::from_utf8_lossy(&c.key));
    }
    // Offsets are unchanged: every survivor is where it was acknowledged.
    let by_offset: std::collections::HashMap<i64, u64> = acked.iter().map(|(i, (_, o))| (*o, *i)).collect();
    for c in &consumed {
        let i = by_offset[&c.offset];
        let expected_key = if i < 50 { format!("key{}", i % 10) } else { format!("filler{}", i - 50) };
        assert_eq!(c.key, expected_key.as_bytes(), "record at offset {} moved", c.offset);
    }
    assert_eq!(consumed.iter().filter(|c| c.key.starts_with(b"filler")).count(), 60);
    assert_eq!(watermarks(&bootstrap, "table"), (0, 110));
}

#[test]
fn list_offsets_by_timestamp_and_delete_records() {
    let (broker, _dir) = broker();
    let bootstrap = broker.bootstrap();
    let admin = admin(&bootstrap);
    // Timestamps from 1970: without retention.ms=-1 the default 7 days would delete them.
    create(&admin, "history", &[("segment.bytes", "1024"), ("retention.ms", "-1")]).unwrap();
    let producer = producer(&bootstrap, "all");
    for i in 0..20u64 {
        // Timestamps 1000, 2000, ... with one out-of-order maximum at offset 7.
        let ts = if i == 7 { 1_000_000 } else { (i as i64 + 1) * 1000 };
        send(&producer, "history", i, &format!("k{i}"), &[b'h'; 100], Some(ts));
        flush(&producer);
    }

    let consumer = consumer(&bootstrap);
    let lookup = |ts: i64| {
        let mut query = TopicPartitionList::new();
        query.add_partition_offset("history", 0, Offset::Offset(ts)).unwrap();
        let answer = consumer.offsets_for_times(query, TIMEOUT).expect("offsets_for_times");
        answer.find_partition("history", 0).unwrap().offset()
    };
    assert_eq!(lookup(0), Offset::Offset(0));
    assert_eq!(lookup(3500), Offset::Offset(3));
    assert_eq!(lookup(9000), Offset::Offset(7), "offset 7's timestamp is the first >= 9000");
    assert_eq!(lookup(20_000), Offset::Offset(7));
    assert_eq!(lookup(2_000_000), Offset::End, "no record is that new");

    // MAX_TIMESTAMP (-3, ListOffsets v7).
    let mut client = Client::connect(&bootstrap).unwrap();
    let request =
        ListOffsetsRequest::default().with_replica_id((-1).into()).with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(s("history")))
            .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-3)])]);
    let response = client.send(&request, 7).unwrap();
    let max = &response.topics[0].partitions[0];
    assert_eq!((max.error_code, max.offset, max.timestamp), (0, 7, 1_000_000));

    // DeleteRecords moves the low watermark; reads and ListOffsets follow.
    let mut delete = TopicPartitionList::new();
    delete.add_partition_offset("history", 0, Offset::Offset(12)).unwrap();
    let result = block_on(admin.delete_records(&delete, &options())).expect("delete_records");
    let partition = result.find_partition("history", 0).unwrap();
    assert!(partition.error().is_ok(), "{:?}", partition.error());
    assert_eq!(partition.offset(), Offset::Offset(12));
    assert_eq!(watermarks(&bootstrap, "history"), (12, 20));
    let consumed = consume_all(&bootstrap, "history", 1);
    assert_eq!(consumed.iter().map(|c| c.offset).collect::<Vec<_>>(), (12..20).collect::<Vec<_>>());
    assert_eq!(lookup(0), Offset::Offset(12), "lookups start at the new log start");

    let mut beyond = TopicPartitionList::new();
    beyond.add_partition_offset("history", 0, Offset::Offset(100)).unwrap();
    let result = block_on(admin.delete_records(&beyond, &options()));
    let refused = match result {
        Ok(list) => list.find_partition("history", 0).unwrap().error().is_err(),
        Err(_) => true,
    };
    assert!(refused, "deleting beyond the high watermark is OFFSET_OUT_OF_RANGE");
    assert_eq!(watermarks(&bootstrap, "history"), (12, 20));
}

/// A batch of records with these keys, stamped `timestamp_ms`, in `compression`.
fn keyed_batch(keys: &[Option<&str>], timestamp_ms: i64, compression: Codec) -> bytes::Bytes {
    let mut batch = RecordsBuilder::new().compression(compression);
    for key in keys {
        batch.push(key.map(str::as_bytes), Some(b"v"), &[], timestamp_ms);
    }
    batch.finish()
}

/// DescribeConfigs v4 of one resource, with synonyms and documentation:
/// its error code and its configs by name.
fn describe_v4(
    client: &mut Client,
    resource_type: i8,
    name: &str,
) -> (i16, std::collections::HashMap<String, DescribeConfigsResourceResult>) {
    let request = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_include_documentation(true)
        .with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(s(name))
            .with_configuration_keys(None)]);
    let mut response = client.send(&request, 4).unwrap();
    let result = response.results.remove(0);
    (result.error_code, result.configs.into_iter().map(|c| (c.name.to_string(), c)).collect())
}

/// (name, value, source) of each synonym of a described config.
fn synonyms(config: &DescribeConfigsResourceResult) -> Vec<(String, String, i8)> {
    config
        .synonyms
        .iter()
        .map(|s| (s.name.to_string(), s.value.as_deref().unwrap_or_default().to_string(), s.source))
        .collect()
}

/// IncrementalAlterConfigs of one resource: its error code and message.
fn alter_incrementally(
    client: &mut Client,
    resource_type: i8,
    name: &str,
    ops: &[(&str, i8, Option<&str>)],
) -> (i16, String) {
    let configs = ops
        .iter()
        .map(|(n, op, v)| AlterableConfig::default().with_name(s(n)).with_config_operation(*op).with_value(v.map(s)))
        .collect();
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(s(name))
        .with_configs(configs)]);
    let response = client.send(&request, 1).unwrap();
    let r = &response.responses[0];
    (r.error_code, r.error_message.as_deref().unwrap_or_default().to_string())
}

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const GROUP: i8 = 32;
const SET: i8 = 0;
const DELETE: i8 = 1;

#[test]
fn kafka_topic_configs_are_accepted_described_and_checked() {
    let (broker, _dir) = broker();
    let bootstrap = broker.bootstrap();
    let admin = admin(&bootstrap);
    // What Kafka Streams, Connect and the admin tools create topics with.
    let configs = [
        ("min.compaction.lag.ms", "100"),
        ("max.compaction.lag.ms", "86400000"),
        ("min.cleanable.dirty.ratio", "0.01"),
        ("segment.index.bytes", "1048576"),
        ("index.interval.bytes", "1024"),
        ("preallocate", "true"),
        ("compression.type", "lz4"),
        ("message.timestamp.before.max.ms", "3600000"),
        ("message.timestamp.after.max.ms", "3600000"),
        ("unclean.leader.election.enable", "false"),
        ("file.delete.delay.ms", "1000"),
        ("segment.jitter.ms", "10"),
        ("leader.replication.throttled.replicas", "*"),
        ("follower.replication.throttled.replicas", "0:0"),
        ("min.insync.replicas", "2"),
        // Removed in Kafka 4.0, still sent by older clients: accepted, ignored.
        ("message.format.version", "2.8-IV1"),
        ("message.timestamp.difference.max.ms", "1000"),
    ];
    create(&admin, "streams", &configs).unwrap();
    let bad = [
        ("min.cleanable.dirty.ratio", "2"),
        ("compression.type", "brotli"),
        ("preallocate", "yes"),
        ("message.timestamp.before.max.ms", "-1"),
        ("leader.replication.throttled.replicas", "all"),
        ("remote.storage.enable", "true"),
        ("message.downconversion.enable", "maybe"),
    ];
    for (name, value) in bad {
        assert_eq!(create(&admin, "refused", &[(name, value)]), Err(RDKafkaErrorCode::InvalidConfig), "{name}={value}");
    }
    let lags = [("min.compaction.lag.ms", "1000"), ("max.compaction.lag.ms", "10")];
    assert_eq!(create(&admin, "refused", &lags), Err(RDKafkaErrorCode::InvalidConfig));

    let mut client = Client::connect(&bootstrap).unwrap();
    let (error, described) = describe_v4(&mut client, TOPIC, "streams");
    assert_eq!(error, 0);
    for (name, value) in &configs[..configs.len() - 2] {
        let config = &described[*name];
        assert_eq!((config.value.as_deref(), config.config_source), (Some(*value), 1), "{name}");
    }
    assert!(!described.contains_key("message.format.version"));
    let ratio = &described["min.cleanable.dirty.ratio"];
    assert_eq!(ratio.config_type, 6, "DOUBLE");
    assert!(ratio.documentation.as_deref().is_some_and(|d| !d.is_empty()));
    assert_eq!(described["preallocate"].config_type, 1, "BOOLEAN");
    // Never set: DEFAULT_CONFIG, with the broker config it defaults to.
    let retention = &described["retention.ms"];
    assert_eq!(
        (retention.value.as_deref(), retention.config_source, retention.read_only),
        (Some("604800000"), 5, false)
    );
    assert_eq!(synonyms(retention), [("log.retention.ms".to_string(), "604800000".to_string(), 5)]);
    let ratio_synonyms = synonyms(ratio);
    assert_eq!(ratio_synonyms[0], ("min.cleanable.dirty.ratio".to_string(), "0.01".to_string(), 1));
    assert_eq!(ratio_synonyms[1], ("log.cleaner.min.cleanable.ratio".to_string(), "0.5".to_string(), 5));
    // rdkafka sees the same sources.
    let results = block_on(admin.describe_configs([&ResourceSpecifier::Topic("streams")], &options())).unwrap();
    let resource = results.into_iter().next().unwrap().unwrap();
    let entry = resource.get("segment.ms").unwrap();
    assert!(entry.is_default && entry.source == ConfigSource::Default, "{entry:?}");
    assert_eq!(resource.get("min.compaction.lag.ms").unwrap().source, ConfigSource::DynamicTopic);

    // IncrementalAlterConfigs: a removed name is accepted and stays absent.
    let (error, _) =
        alter_incrementally(&mut client, TOPIC, "streams", &[("message.format.version", SET, Some("3.0"))]);
    assert_eq!(error, 0);
    let (error, _) =
        alter_incrementally(&mut client, TOPIC, "streams", &[("min.compaction.lag.ms", SET, Some("999999999999"))]);
    assert_eq!(error, ResponseError::InvalidConfig.code(), "min lag above max lag");
}

#[test]
fn produce_is_checked_against_the_topic_configs() {
    let (broker, _dir) = broker();
    let bootstrap = broker.bootstrap();
    let admin = admin(&bootstrap);
    create(&admin, "compacted", &[("cleanup.policy", "compact")]).unwrap();
    create(&admin, "recent", &[("message.timestamp.before.max.ms", "3600000")]).unwrap();
    create(&admin, "plain", &[]).unwrap();
    create(&admin, "isr2", &[("min.insync.replicas", "2")]).unwrap();
    let mut client = Client::connect(&bootstrap).unwrap();
    let now = rdkafka::util::millis_to_epoch(std::time::SystemTime::now());

    // A compacted topic refuses a batch with a record without a key, whatever the codec.
    for compression in [Codec::None, Codec::Lz4, Codec::Gzip] {
        let keyless = keyed_batch(&[Some("a"), None], now, compression);
        assert_eq!(produce_batch(&mut client, "compacted", None, keyless).0, ResponseError::InvalidRecord.code());
        let keyed = keyed_batch(&[Some("a"), Some("b")], now, compression);
        assert_eq!(produce_batch(&mut client, "compacted", None, keyed).0, 0);
    }
    assert_eq!(produce_batch(&mut client, "plain", None, keyed_batch(&[None], now, Codec::None)).0, 0);
    // Each keyless record is named in record_errors, for the client to fail
    // those and retry the rest (librdkafka's _INVALID_DIFFERENT_RECORD).
    let mixed = keyed_batch(&[Some("a"), None, Some("b"), None], now, Codec::Lz4);
    let refused = produce_answer(&mut client, "compacted", None, mixed);
    assert_eq!(refused.error_code, ResponseError::InvalidRecord.code());
    assert_eq!(refused.record_errors.iter().map(|e| e.batch_index).collect::<Vec<_>>(), [1, 3]);
    assert!(refused
        .record_errors
        .iter()
        .all(|e| e.batch_index_error_message.as_ref().is_some_and(|m| m.contains("key"))));
    // Through librdkafka too.
    let producer = producer_with(&bootstrap, "all", Acks::default(), 10_000);
    producer
        .send(BaseRecord::<(), [u8], Box<u64>>::with_opaque_to("compacted", Box::new(0)).payload(&b"v"[..]))
        .unwrap();
    producer.flush(TIMEOUT).unwrap();
    let failed = producer.context().failed.lock().unwrap().clone();
    assert!(failed.first().is_some_and(|(_, e)| e.contains("InvalidRecord")), "{failed:?}");

    // Timestamps: before.max.ms on "recent", the default after.max.ms (1 h) everywhere.
    let old = keyed_batch(&[Some("a")], now - 2 * 3_600_000, Codec::None);
    assert_eq!(produce_batch(&mut client, "recent", None, old.clone()).0, ResponseError::InvalidTimestamp.code());
    assert_eq!(produce_batch(&mut client, "plain", None, old).0, 0);
    let ahead = keyed_batch(&[Some("a")], now + 2 * 3_600_000, Codec::Zstd);
    assert_eq!(produce_batch(&mut client, "plain", None, ahead).0, ResponseError::InvalidTimestamp.code());
    assert_eq!(produce_batch(&mut client, "recent", None, keyed_batch(&[Some("a")], now, Codec::None)).0, 0);
    // LogAppendTime topics take any producer timestamp.
    let alter = AlterConfig::new(ResourceSpecifier::Topic("recent")).set("message.timestamp.type", "LogAppendTime");
    assert!(block_on(admin.alter_configs([&alter], &options())).unwrap()[0].is_ok());
    let old = keyed_batch(&[Some("a")], now - 2 * 3_600_000, Codec::None);
    assert_eq!(produce_batch(&mut client, "recent", None, old).0, 0);

    // min.insync.replicas=2: acks=all cannot be met by one broker; acks=1 can.
    let batch = keyed_batch(&[Some("a")], now, Codec::None);
    assert_eq!(produce_batch(&mut client, "isr2", None, batch.clone()).0, ResponseError::NotEnoughReplicas.code());
    let request =
        ProduceRequest::default().with_acks(1).with_timeout_ms(5000).with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(s("isr2")))
            .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(batch))])]);
    assert_eq!(client.send(&request, 9).unwrap().responses[0].partition_responses[0].error_code, 0);
}

#[test]
fn dynamic_broker_configs_change_the_defaults_at_once_and_persist() {
    let (mut broker, _dir) = broker();
    let bootstrap = broker.bootstrap();
    let admin = admin(&bootstrap);
    create(&admin, "defaulted", &[]).unwrap();
    create(&admin, "overridden", &[("max.message.bytes", "100000")]).unwrap();
    let mut client = Client::connect(&bootstrap).unwrap();
    let now = rdkafka::util::millis_to_epoch(std::time::SystemTime::now());
    let big = || keyed_batch(&[Some(&"x".repeat(5000))], now, Codec::None);
    assert_eq!(produce_batch(&mut client, "defaulted", None, big()).0, 0);

    // This broker's message.max.bytes: in force at once for topics without their own.
    let (error, why) = alter_incrementally(&mut client, BROKER, "0", &[("message.max.bytes", SET, Some("1000"))]);
    assert_eq!(error, 0, "{why}");
    assert_eq!(produce_batch(&mut client, "defaulted", None, big()).0, ResponseError::MessageTooLarge.code());
    assert_eq!(produce_batch(&mut client, "overridden", None, big()).0, 0);

    // The cluster-wide default is below this broker's setting.
    let (error, _) = alter_incrementally(&mut client, BROKER, "", &[("log.retention.ms", SET, Some("5000"))]);
    assert_eq!(error, 0);
    let (error, _) = alter_incrementally(&mut client, BROKER, "0", &[("log.retention.ms", SET, Some("7000"))]);
    assert_eq!(error, 0);
    let (_, topic) = describe_v4(&mut client, TOPIC, "defaulted");
    let retention = &topic["retention.ms"];
    assert_eq!((retention.value.as_deref(), retention.config_source), (Some("7000"), 2));
    let expected = [("7000", 2), ("5000", 3), ("604800000", 5)]
        .map(|(v, source)| ("log.retention.ms".to_string(), v.to_string(), source));
    assert_eq!(synonyms(retention), expected);
    let (_, broker_configs) = describe_v4(&mut client, BROKER, "0");
    let max_bytes = &broker_configs["message.max.bytes"];
    assert_eq!((max_bytes.value.as_deref(), max_bytes.config_source, max_bytes.read_only), (Some("1000"), 2, false));
    for name in [
        "log.retention.ms",
        "num.partitions",
        "auto.create.topics.enable",
        "default.replication.factor",
        "min.insync.replicas",
        "offsets.topic.replication.factor",
        "log.segment.bytes",
        "log.cleanup.policy",
        "max.connections",
        "max.connections.per.ip",
        "log.dirs",
        "broker.id",
    ] {
        assert!(broker_configs.contains_key(name), "{name} not listed");
    }
    assert!(broker_configs["log.dirs"].read_only && !broker_configs["log.cleanup.policy"].read_only);
    assert_eq!(broker_configs["num.partitions"].config_source, 5);
    let (_, cluster) = describe_v4(&mut client, BROKER, "");
    assert_eq!(cluster.len(), 1);
    assert_eq!(
        (cluster["log.retention.ms"].value.as_deref(), cluster["log.retention.ms"].config_source),
        (Some("5000"), 3)
    );

    // Static, unknown, badly valued or another broker's: refused as Kafka does.
    let (error, why) = alter_incrementally(&mut client, BROKER, "0", &[("log.dirs", SET, Some("/tmp"))]);
    assert_eq!(error, ResponseError::InvalidRequest.code());
    assert!(why.contains("Cannot update these configs dynamically"), "{why}");
    let (error, _) = alter_incrementally(&mut client, BROKER, "0", &[("log.retention.ms", SET, Some("soon"))]);
    assert_eq!(error, ResponseError::InvalidConfig.code());
    let (error, _) = alter_incrementally(&mut client, BROKER, "7", &[("log.retention.ms", SET, Some("1"))]);
    assert_eq!(error, ResponseError::InvalidRequest.code());
    // Kafka's per-broker thread and Kerberos settings: accepted and described (inert here).
    let kerberos =
        [("sasl.kerberos.min.time.before.relogin", SET, Some("58000")), ("background.threads", SET, Some("9"))];
    assert_eq!(alter_incrementally(&mut client, BROKER, "0", &kerberos).0, 0);
    let (_, broker_configs) = describe_v4(&mut client, BROKER, "0");
    let relogin = &broker_configs["sasl.kerberos.min.time.before.relogin"];
    assert_eq!((relogin.value.as_deref(), relogin.config_source, relogin.config_type), (Some("58000"), 2, 5));
    assert_eq!(broker_configs["background.threads"].value.as_deref(), Some("9"));
    let (error, _) = alter_incrementally(&mut client, BROKER, "0", &[("background.threads", SET, Some("0"))]);
    assert_eq!(error, ResponseError::InvalidConfig.code());
    assert_eq!(alter_incrementally(&mut client, BROKER, "0", &[("background.threads", DELETE, None)]).0, 0);
    let threads = &describe_v4(&mut client, BROKER, "0").1["background.threads"];
    assert_eq!((threads.value.as_deref(), threads.config_source), (Some("10"), 5));

    // Persisted: the same after a restart.
    drop(admin);
    broker.stop();
    broker.restart();
    let mut client = Client::connect(&bootstrap).unwrap();
    assert_eq!(produce_batch(&mut client, "defaulted", None, big()).0, ResponseError::MessageTooLarge.code());
    let (_, topic) = describe_v4(&mut client, TOPIC, "defaulted");
    assert_eq!(topic["retention.ms"].value.as_deref(), Some("7000"));

    // DELETE goes back to the layer below; AlterConfigs through rdkafka replaces the set.
    let (error, _) = alter_incrementally(&mut client, BROKER, "0", &[("log.retention.ms", DELETE, None)]);
    assert_eq!(error, 0);
    assert_eq!(describe_v4(&mut client, TOPIC, "defaulted").1["retention.ms"].value.as_deref(), Some("5000"));
    let admin = self::admin(&bootstrap);
    let reset = AlterConfig::new(ResourceSpecifier::Broker(0)).set("log.segment.bytes", "2000000");
    assert!(block_on(admin.alter_configs([&reset], &options())).unwrap()[0].is_ok());
    assert_eq!(produce_batch(&mut client, "defaulted", None, big()).0, 0, "message.max.bytes is unset again");
    let segment = &describe_v4(&mut client, TOPIC, "defaulted").1["segment.bytes"];
    assert_eq!((segment.value.as_deref(), segment.config_source), (Some("2000000"), 2));

    // max.connections: new connections over it are closed; open ones stay.
    let (error, _) = alter_incrementally(&mut client, BROKER, "0", &[("max.connections", SET, Some("1"))]);
    assert_eq!(error, 0);
    assert!(Client::connect(&bootstrap).is_err(), "a connection over max.connections is closed");
    let (error, _) = alter_incrementally(&mut client, BROKER, "0", &[("max.connections", DELETE, None)]);
    assert_eq!(error, 0);
    Client::connect(&bootstrap).expect("back to the config file's limit");
}

#[test]
fn group_configs_are_set_described_checked_and_persisted() {
    let (mut broker, _dir) = broker();
    let bootstrap = broker.bootstrap();
    let mut client = Client::connect(&bootstrap).unwrap();
    // Any group id, existing or not, as in Kafka 4: every group config with its default.
    let (error, configs) = describe_v4(&mut client, GROUP, "no-such-group");
    assert_eq!(error, 0);
    let session = &configs["consumer.session.timeout.ms"];
    assert_eq!((session.value.as_deref(), session.config_source), (Some("45000"), 5));
    assert!(configs.contains_key("consumer.heartbeat.interval.ms"));

    let set = [("consumer.session.timeout.ms", SET, Some("50000"))];
    assert_eq!(alter_incrementally(&mut client, GROUP, "clicks", &set), (0, String::new()));
    for (ops, error) in [
        (vec![("consumer.session.timeout.ms", SET, Some("1000"))], ResponseError::InvalidConfig),
        (vec![("consumer.heartbeat.interval.ms", SET, Some("20000"))], ResponseError::InvalidConfig),
        (vec![("no.such.config", SET, Some("1"))], ResponseError::InvalidConfig),
    ] {
        assert_eq!(alter_incrementally(&mut client, GROUP, "clicks", &ops).0, error.code(), "{ops:?}");
    }
    broker.stop();
    broker.restart();
    let mut client = Client::connect(&bootstrap).unwrap();
    let (_, configs) = describe_v4(&mut client, GROUP, "clicks");
    let session = &configs["consumer.session.timeout.ms"];
    assert_eq!((session.value.as_deref(), session.config_source), (Some("50000"), 8));
    let expected = [("consumer.session.timeout.ms", "50000", 8), ("group.consumer.session.timeout.ms", "45000", 5)]
        .map(|(n, v, source)| (n.to_string(), v.to_string(), source));
    assert_eq!(synonyms(session), expected);
    assert_eq!(
        describe_v4(&mut client, GROUP, "other").1["consumer.session.timeout.ms"].value.as_deref(),
        Some("45000")
    );
    let delete = [("consumer.session.timeout.ms", DELETE, None)];
    assert_eq!(alter_incrementally(&mut client, GROUP, "clicks", &delete).0, 0);
    assert_eq!(describe_v4(&mut client, GROUP, "clicks").1["consumer.session.timeout.ms"].config_source, 5);
}

/// The codec bits of each batch stored in partition 0 of `topic`, by a raw Fetch.
fn stored_codecs(client: &mut Client, topic: &str) -> Vec<i16> {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::FetchRequest;
    let fetch = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default().with_topic(TopicName(s(topic))).with_partitions(vec![
            FetchPartition::default().with_partition(0).with_fetch_offset(0).with_partition_max_bytes(1 << 20),
        ])]);
    let fetched = client.send(&fetch, 12).unwrap();
    let mut records = fetched.responses[0].partitions[0].records.clone().unwrap_or_default();
    // Every record reads back whole (kafka-protocol decodes every codec).
    let decoded = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut records.clone()).expect("decodes");
    for record in decoded.iter().flat_map(|set| &set.records) {
        assert_eq!(record.value.as_deref(), Some(&b"v"[..]));
    }
    let mut codecs = Vec::new();
    while records.len() >= 61 {
        let length = i32::from_be_bytes(records[8..12].try_into().unwrap()) as usize;
        codecs.push(i16::from_be_bytes(records[21..23].try_into().unwrap()) & 7);
        let _ = records.split_to(12 + length);
    }
    codecs
}

#[test]
fn compression_type_recompresses_as_kafka_does() {
    let (broker, _dir) = broker();
    let bootstrap = broker.bootstrap();
    let admin = admin(&bootstrap);
    create(&admin, "zstd", &[("compression.type", "zstd"), ("compression.zstd.level", "1")]).unwrap();
    create(&admin, "uncompressed", &[("compression.type", "uncompressed")]).unwrap();
    create(&admin, "as-sent", &[]).unwrap();
    create(&admin, "snappy-compacted", &[("compression.type", "snappy"), ("cleanup.policy", "compact")]).unwrap();
    let mut client = Client::connect(&bootstrap).unwrap();
    let now = rdkafka::util::millis_to_epoch(std::time::SystemTime::now());
    for topic in ["zstd", "uncompressed", "as-sent", "snappy-compacted"] {
        for compression in [Codec::None, Codec::Gzip, Codec::Lz4] {
            let batch = keyed_batch(&[Some("a"), Some("b"), Some("c")], now, compression);
            assert_eq!(produce_batch(&mut client, topic, None, batch).0, 0, "{topic} {compression:?}");
        }
    }
    assert_eq!(stored_codecs(&mut client, "zstd"), [4, 4, 4]);
    assert_eq!(stored_codecs(&mut client, "uncompressed"), [0, 0, 0]);
    assert_eq!(stored_codecs(&mut client, "as-sent"), [0, 1, 3]);
    assert_eq!(stored_codecs(&mut client, "snappy-compacted"), [2, 2, 2]);
    // The records read back whole through librdkafka (built without zstd here).
    for topic in ["uncompressed", "snappy-compacted"] {
        let consumer = consumer(&bootstrap);
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(topic, 0, Offset::Beginning).unwrap();
        consumer.assign(&assignment).unwrap();
        let mut keys = Vec::new();
        let start = Instant::now();
        while keys.len() < 9 && start.elapsed() < TIMEOUT {
            if let Some(message) = consumer.poll(Duration::from_millis(200)) {
                let message = message.expect("message");
                assert_eq!(message.payload(), Some(&b"v"[..]));
                keys.push(String::from_utf8(message.key().unwrap().to_vec()).unwrap());
            }
        }
        assert_eq!(keys, ["a", "b", "c"].repeat(3), "{topic}");
    }
    // Changed at runtime: the next batches follow.
    let alter = AlterConfig::new(ResourceSpecifier::Topic("as-sent")).set("compression.type", "gzip");
    assert!(block_on(admin.alter_configs([&alter], &options())).unwrap()[0].is_ok());
    let batch = keyed_batch(&[Some("d")], now, Codec::Lz4);
    assert_eq!(produce_batch(&mut client, "as-sent", None, batch).0, 0);
    assert_eq!(stored_codecs(&mut client, "as-sent"), [0, 1, 3, 1]);
}
