//! Writes seed inputs for every fuzz target into `<out>/<target>/`: request
//! frames of every implemented API and version encoded by kafka-protocol,
//! record batches as clients send them, and partition directories written by
//! the engine itself. tools/fuzz.sh merges them into the committed corpus.
//!
//! Usage: `fuzz_seeds <out dir>`

use std::path::{Path, PathBuf};

// Built with the targets' coverage flags, it needs libFuzzer's coverage
// callbacks linked in (not its `main`: this binary has its own).
extern crate libfuzzer_sys;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::describe_topic_partitions_request::{
    Cursor as DescribeTopicPartitionsCursor, TopicRequest,
};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use weir_engine::records::RecordsBuilder;
use weir_engine::{batch, Durability, LogConfig, PartitionLog};
use weir_fuzz::PartitionFiles;
use weir_net::apis::SUPPORTED_APIS;

fn main() {
    let out = PathBuf::from(std::env::args().nth(1).expect("usage: fuzz_seeds <out dir>"));
    let mut frames = Vec::new();
    let mut decode = Vec::new();
    for (index, api) in SUPPORTED_APIS.iter().enumerate() {
        for version in api.min..=api.max {
            for body in request_bodies(api.key, version) {
                let header_version = api.key.request_header_version(version);
                let header = RequestHeader::default()
                    .with_request_api_key(api.key as i16)
                    .with_request_api_version(version)
                    .with_correlation_id(7)
                    .with_client_id(Some(StrBytes::from_static_str("fuzz-seed")));
                let mut frame = BytesMut::new();
                if header.encode(&mut frame, header_version).is_err() {
                    continue;
                }
                frame.extend_from_slice(&body);
                let mut whole = (frame.len() as u32).to_be_bytes().to_vec();
                whole.extend_from_slice(&frame);
                frames.push(whole);
                // request_decode: API index, version from one below the range, body.
                let mut input = vec![index as u8, (version - api.min + 1) as u8];
                input.extend_from_slice(&body);
                decode.push(input);
            }
        }
    }
    // Two frames in one stream, as pipelining clients send them.
    let pipelined = [frames[0].clone(), frames[frames.len() - 1].clone()].concat();
    frames.push(pipelined);
    write_all(&out.join("request_frame"), &frames);
    write_all(&out.join("request_decode"), &decode);
    let batches = client_batches();
    let batch_inputs: Vec<Vec<u8>> =
        batches.iter().flat_map(|b| [0u8, 2].map(|flags| [&[flags][..], b].concat())).collect();
    write_all(&out.join("record_batch"), &batch_inputs);
    let segments = weir_fuzz::block_on(partition_directories());
    let segment_inputs: Vec<Vec<u8>> = segments.iter().map(PartitionFiles::encode).collect();
    for (files, input) in segments.iter().zip(&segment_inputs) {
        assert_eq!(&PartitionFiles::decode(input), files, "the input layout round-trips");
    }
    write_all(&out.join("segment_recovery"), &segment_inputs);
    write_all(&out.join("sasl_exchange"), &sasl_exchanges());
}

/// sasl_exchange inputs: a mechanism byte, then length-prefixed tokens: a
/// PLAIN token (SaslAuthenticate and bare after a v0 handshake), SCRAM's
/// first and final messages (RFC 7677's, for user `user`), a mechanism not
/// offered.
fn sasl_exchanges() -> Vec<Vec<u8>> {
    let input = |pick: u8, tokens: &[&[u8]]| {
        let mut input = vec![pick];
        for token in tokens {
            input.push(token.len() as u8);
            input.extend_from_slice(token);
        }
        input
    };
    let first: &[u8] = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    let last: &[u8] = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    vec![
        input(0, &[b"\0user\0pencil"]),
        input(4, &[b"\0user\0pencil"]),
        input(8, &[b"user\0user\0wrong"]),
        input(1, &[first, last]),
        input(2, &[first, last]),
        input(5, &[first, last]),
        input(3, &[]),
    ]
}

fn write_all(dir: &Path, inputs: &[Vec<u8>]) {
    std::fs::create_dir_all(dir).expect("seed directory");
    for (i, input) in inputs.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:04}")), input).expect("write a seed");
    }
    println!("{}: {} seeds", dir.display(), inputs.len());
}

/// Bodies of `key` at `version`: the default request and a filled-in one,
/// those that this version can encode (fields newer than it cannot be set).
fn request_bodies(key: ApiKey, version: i16) -> Vec<Bytes> {
    let topic = || TopicName(StrBytes::from_static_str("clicks"));
    let v = version;
    let bodies = match key {
        ApiKey::Produce => {
            let records = RecordsBuilder::new().push(Some(b"k"), Some(b"v"), &[], 1_700_000_000_000).finish();
            let partition = PartitionProduceData::default().with_index(0).with_records(Some(records));
            let data = TopicProduceData::default().with_name(topic()).with_partition_data(vec![partition]);
            let filled = ProduceRequest::default().with_acks(-1).with_topic_data(vec![data]);
            vec![encoded(ProduceRequest::default(), v), encoded(filled, v)]
        }
        ApiKey::Fetch => {
            let partition = FetchPartition::default().with_partition(1).with_fetch_offset(5);
            // By name before v13; from it by id (the nil id: no topic's).
            let fetched = FetchTopic::default().with_partitions(vec![partition]);
            let fetched = if v >= 13 { fetched } else { fetched.with_topic(topic()) };
            let filled = FetchRequest::default().with_max_wait_ms(500).with_topics(vec![fetched]);
            vec![encoded(FetchRequest::default(), v), encoded(filled, v)]
        }
        ApiKey::ListOffsets => {
            let partition = ListOffsetsPartition::default().with_timestamp(-1);
            let topic = ListOffsetsTopic::default().with_name(topic()).with_partitions(vec![partition]);
            vec![
                encoded(ListOffsetsRequest::default(), v),
                encoded(ListOffsetsRequest::default().with_topics(vec![topic]), v),
            ]
        }
        ApiKey::Metadata => {
            let topics = vec![MetadataRequestTopic::default().with_name(Some(topic()))];
            vec![
                encoded(MetadataRequest::default(), v),
                encoded(MetadataRequest::default().with_topics(Some(topics)), v),
            ]
        }
        ApiKey::CreateTopics => {
            let config = CreatableTopicConfig::default()
                .with_name(StrBytes::from_static_str("retention.ms"))
                .with_value(Some(StrBytes::from_static_str("60000")));
            let topic = CreatableTopic::default().with_name(topic()).with_num_partitions(3).with_configs(vec![config]);
            let filled = CreateTopicsRequest::default().with_topics(vec![topic]);
            vec![encoded(CreateTopicsRequest::default(), v), encoded(filled, v)]
        }
        ApiKey::JoinGroup => {
            let protocol = JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str("range"))
                .with_metadata(Bytes::from_static(&[0, 1, 0, 0, 0, 1, 0, 6, b'c', b'l', b'i', b'c', b'k', b's']));
            let filled = JoinGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("group")))
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(vec![protocol]);
            vec![encoded(JoinGroupRequest::default(), v), encoded(filled, v)]
        }
        ApiKey::ApiVersions => vec![encoded(ApiVersionsRequest::default(), v)],
        ApiKey::DeleteTopics => vec![encoded(DeleteTopicsRequest::default(), v)],
        ApiKey::FindCoordinator => vec![encoded(FindCoordinatorRequest::default(), v)],
        ApiKey::InitProducerId => vec![encoded(InitProducerIdRequest::default(), v)],
        ApiKey::SyncGroup => vec![encoded(SyncGroupRequest::default(), v)],
        ApiKey::Heartbeat => vec![encoded(HeartbeatRequest::default(), v)],
        ApiKey::LeaveGroup => vec![encoded(LeaveGroupRequest::default(), v)],
        ApiKey::OffsetCommit => vec![encoded(OffsetCommitRequest::default(), v)],
        ApiKey::OffsetFetch => vec![encoded(OffsetFetchRequest::default(), v)],
        ApiKey::ListGroups => vec![encoded(ListGroupsRequest::default(), v)],
        ApiKey::DescribeGroups => vec![encoded(DescribeGroupsRequest::default(), v)],
        ApiKey::DeleteGroups => vec![encoded(DeleteGroupsRequest::default(), v)],
        ApiKey::OffsetDelete => vec![encoded(OffsetDeleteRequest::default(), v)],
        ApiKey::DeleteRecords => vec![encoded(DeleteRecordsRequest::default(), v)],
        ApiKey::DescribeConfigs => vec![encoded(DescribeConfigsRequest::default(), v)],
        ApiKey::AlterConfigs => vec![encoded(AlterConfigsRequest::default(), v)],
        ApiKey::IncrementalAlterConfigs => vec![encoded(IncrementalAlterConfigsRequest::default(), v)],
        ApiKey::OffsetForLeaderEpoch => vec![encoded(OffsetForLeaderEpochRequest::default(), v)],
        ApiKey::CreatePartitions => vec![encoded(CreatePartitionsRequest::default(), v)],
        ApiKey::DescribeCluster => vec![encoded(DescribeClusterRequest::default(), v)],
        ApiKey::AddPartitionsToTxn => vec![encoded(AddPartitionsToTxnRequest::default(), v)],
        ApiKey::AddOffsetsToTxn => vec![encoded(AddOffsetsToTxnRequest::default(), v)],
        ApiKey::EndTxn => vec![encoded(EndTxnRequest::default(), v)],
        ApiKey::TxnOffsetCommit => vec![encoded(TxnOffsetCommitRequest::default(), v)],
        ApiKey::DescribeProducers => vec![encoded(DescribeProducersRequest::default(), v)],
        ApiKey::DescribeTransactions => vec![encoded(DescribeTransactionsRequest::default(), v)],
        ApiKey::ListTransactions => vec![encoded(ListTransactionsRequest::default(), v)],
        ApiKey::DescribeLogDirs => {
            let topic = DescribableLogDirTopic::default().with_topic(topic()).with_partitions(vec![0, 1]);
            let filled = DescribeLogDirsRequest::default().with_topics(Some(vec![topic]));
            vec![encoded(DescribeLogDirsRequest::default(), v), encoded(filled, v)]
        }
        ApiKey::DescribeTopicPartitions => {
            let cursor = DescribeTopicPartitionsCursor::default().with_topic_name(topic()).with_partition_index(2);
            let filled = DescribeTopicPartitionsRequest::default()
                .with_topics(vec![TopicRequest::default().with_name(topic())])
                .with_response_partition_limit(10)
                .with_cursor(Some(cursor));
            vec![encoded(DescribeTopicPartitionsRequest::default(), v), encoded(filled, v)]
        }
        other => panic!("{other:?} is in SUPPORTED_APIS but has no seed"),
    };
    bodies.into_iter().flatten().collect()
}

/// `request` at `version`, unless it sets a field this version lacks.
fn encoded<T: Encodable>(request: T, version: i16) -> Option<Bytes> {
    let mut buf = BytesMut::new();
    request.encode(&mut buf, version).ok()?;
    Some(buf.freeze())
}

/// Record payloads as clients send them: plain batches with keys, nulls and
/// tombstones, one with headers, an idempotent one,
/// compressed and control ones (opaque to the engine), two batches in a row.
fn client_batches() -> Vec<Vec<u8>> {
    let ts = 1_700_000_000_000;
    let plain = RecordsBuilder::new()
        .push(Some(b"a"), Some(b"1"), &[], ts)
        .push(None, Some(b"2"), &[], ts + 1)
        .push(Some(b"a"), None, &[], ts + 2)
        .finish();
    let idempotent =
        RecordsBuilder::new().producer(42, 0, 0).push(None, Some(b"x"), &[], 5).push(None, Some(b"y"), &[], 6).finish();
    let with_attributes = |attributes: i16| {
        let h = batch::RawHeader::of(&plain).expect("a whole batch");
        h.build(attributes, h.records_count(), &plain[batch::HEADER_LEN..]).expect("a small batch")
    };
    let with_headers = RecordsBuilder::new().push(Some(b"key"), None, &[("h", Some(b"v"))], ts).finish();
    vec![
        plain.to_vec(),
        idempotent.to_vec(),
        with_attributes(batch::ATTR_COMPRESSION_MASK & 1),
        with_attributes(batch::ATTR_CONTROL),
        with_headers.to_vec(),
        [plain, RecordsBuilder::new().finish()].concat(),
    ]
}

/// Partition directories the engine wrote: one active segment; a sealed
/// segment with its indexes before it; the same after DeleteRecords (a log
/// start checkpoint).
async fn partition_directories() -> Vec<PartitionFiles> {
    let scratch = tempfile::tempdir().expect("temporary directory");
    let mut inputs = Vec::new();
    for (name, appends, delete_before) in [("active", 3, None), ("sealed", 12, None), ("deleted", 12, Some(4))] {
        let dir = std::path::absolute(scratch.path().join(name)).expect("absolute path");
        let config = LogConfig { segment_bytes: 1000, index_interval_bytes: 128, ..LogConfig::default() };
        let log = PartitionLog::open(dir.clone(), config).await.expect("open a log");
        for i in 0..appends {
            let value = vec![b'v'; 40 + i * 7];
            let key = format!("key-{}", i % 4);
            let ts = 1_700_000_000_000 + i as i64;
            let batch = RecordsBuilder::new().push(Some(key.as_bytes()), Some(&value), &[], ts).finish();
            log.append(batch, Durability::Synced).await.expect("append");
        }
        if let Some(offset) = delete_before {
            log.delete_records(offset).await.expect("delete records");
        }
        log.close().await.expect("close");
        inputs.push(read_partition(&dir));
    }
    inputs
}

/// The files of a partition directory with at most two segments.
fn read_partition(dir: &Path) -> PartitionFiles {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list the partition")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    assert!(logs.len() <= 2, "the seeds hold at most a sealed and an active segment: {logs:?}");
    let active = logs.pop().expect("an active segment");
    let read = |path: PathBuf| std::fs::read(path).ok();
    let sealed = logs.pop();
    PartitionFiles {
        sealed_index: sealed.as_ref().and_then(|p| read(p.with_extension("index"))),
        sealed_time_index: sealed.as_ref().and_then(|p| read(p.with_extension("timeindex"))),
        sealed_log: sealed.and_then(read),
        active_log: std::fs::read(active).expect("the active segment"),
        log_start_offset: read(dir.join("log-start-offset")),
        active_base: None,
        fix_crcs: false,
    }
}
