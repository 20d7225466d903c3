//! Bad input gets Kafka's error codes, or closes only the offending connection.

use crate::common;

use bytes::{BufMut, BytesMut};
use common::*;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, FetchRequest, ProduceRequest, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Decodable, StrBytes};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use weir_client::Client;
use weir_engine::records::RecordsBuilder;

const CORRUPT_MESSAGE: i16 = 2;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const MESSAGE_TOO_LARGE: i16 = 10;
const UNSUPPORTED_VERSION: i16 = 35;
const INVALID_REQUIRED_ACKS: i16 = 21;
const KAFKA_STORAGE_ERROR: i16 = 56;

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

/// A plain batch of these values (no keys), as a client sends it.
pub(crate) fn batch(values: &[&[u8]]) -> bytes::Bytes {
    let mut batch = RecordsBuilder::new();
    for (i, v) in values.iter().enumerate() {
        batch.push(None, Some(v), &[], 1 + i as i64);
    }
    batch.finish()
}

pub(crate) fn produce(client: &mut Client, topic: &str, acks: i16, records: bytes::Bytes) -> (i16, i64) {
    let request = ProduceRequest::default().with_acks(acks).with_timeout_ms(5000).with_topic_data(vec![
        TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(records))]),
    ]);
    let response = client.send(&request, 9).expect("produce answered");
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

pub(crate) fn fetch(client: &mut Client, topic: &str, offset: i64) -> (i16, Option<bytes::Bytes>) {
    let request = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default().with_topic(name(topic)).with_partitions(vec![
            FetchPartition::default().with_partition(0).with_fetch_offset(offset).with_partition_max_bytes(1 << 20),
        ])]);
    let response = client.send(&request, 12).expect("fetch answered");
    let p = &response.responses[0].partitions[0];
    (p.error_code, p.records.clone())
}

/// The broker still serves: a produce and a fetch of it succeed.
fn assert_healthy(broker: &Broker, topic: &str) {
    let mut client = Client::connect(&broker.bootstrap()).expect("connect");
    let (error, offset) = produce(&mut client, topic, -1, batch(&[b"still alive"]));
    assert_eq!(error, 0, "produce after bad input\n{}", broker.log());
    let (error, records) = fetch(&mut client, topic, offset);
    assert_eq!(error, 0);
    assert!(records.unwrap().windows(11).any(|w| w == b"still alive"));
}

/// Prefixes `payload` with its length.
fn framed(payload: &[u8]) -> Vec<u8> {
    [&(payload.len() as i32).to_be_bytes()[..], payload].concat()
}

/// Writes raw bytes and reports whether the broker closed the connection.
fn closes_connection(broker: &Broker, bytes: &[u8]) -> bool {
    let mut stream = TcpStream::connect(broker.bootstrap()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(bytes).unwrap();
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut rest = Vec::new();
    matches!(stream.read_to_end(&mut rest), Ok(0))
}

#[test]
fn malformed_frames_close_only_their_connection() {
    let broker = Broker::start(&[]);
    create_topic(&broker.bootstrap(), "t", 1);
    // A client that stays connected throughout.
    let mut bystander = Client::connect(&broker.bootstrap()).unwrap();

    assert!(closes_connection(&broker, &(-5i32).to_be_bytes()), "negative length");
    assert!(closes_connection(&broker, &i32::MAX.to_be_bytes()), "length over socket.request.max.bytes");
    assert!(closes_connection(&broker, &[0, 0, 0, 100, 0, 3, 0, 1]), "truncated frame");
    assert!(closes_connection(&broker, &[0, 0, 0, 10, 0x7f, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]), "unknown api key");
    // Array counts far beyond the frame: Metadata v1 claiming 2^31-1 topics,
    // Produce v3 claiming 2^31-1 topics (the decoder preallocates from them).
    let metadata_v1 = [&[0, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xff][..], &[0x7f, 0xff, 0xff, 0xff]].concat();
    assert!(closes_connection(&broker, &framed(&metadata_v1)), "huge Metadata array");
    let produce_v3 =
        [&[0, 0, 0, 3, 0, 0, 0, 2, 0xff, 0xff][..], &[0xff, 0xff, 0, 1, 0, 0, 0x75, 0x30, 0x7f, 0xff, 0xff, 0xff]]
            .concat();
    assert!(closes_connection(&broker, &framed(&produce_v3)), "huge Produce array");
    // A Metadata header followed by garbage for a body.
    assert!(closes_connection(&broker, &[0, 0, 0, 14, 0, 3, 0, 1, 0, 0, 0, 7, 0xff, 0xff, 0xde, 0xad, 0xbe, 0xef]));

    assert_eq!(produce(&mut bystander, "t", 1, batch(&[b"x"])).0, 0, "the other connection was disturbed");
    assert_healthy(&broker, "t");
}

#[test]
fn unsupported_api_versions_version_gets_the_v0_answer() {
    let broker = Broker::start(&[]);
    let mut stream = TcpStream::connect(broker.bootstrap()).unwrap();
    let mut frame = BytesMut::new();
    frame.put_i32(10);
    frame.put_i16(ApiKey::ApiVersions as i16);
    frame.put_i16(99);
    frame.put_i32(7);
    frame.put_i16(-1);
    stream.write_all(&frame).unwrap();
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).unwrap();
    let mut body = bytes::Bytes::from(body);
    let header = ResponseHeader::decode(&mut body, 0).unwrap();
    assert_eq!(header.correlation_id, 7);
    let response = ApiVersionsResponse::decode(&mut body, 0).unwrap();
    assert_eq!(response.error_code, UNSUPPORTED_VERSION);
    assert!(response.api_keys.iter().any(|k| k.api_key == ApiKey::Produce as i16 && k.min_version == 0));
}

#[test]
fn corrupt_and_oversized_batches_are_refused_and_nothing_is_stored() {
    let broker = Broker::start(&[]);
    create_topic(&broker.bootstrap(), "t", 1);
    let mut client = Client::connect(&broker.bootstrap()).unwrap();

    let good = batch(&[b"one", b"two"]);
    let mut bad_crc = BytesMut::from(&good[..]);
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0xff;
    assert_eq!(produce(&mut client, "t", 1, bad_crc.freeze()).0, CORRUPT_MESSAGE);
    let mut bad_magic = BytesMut::from(&good[..]);
    bad_magic[16] = 1;
    assert_eq!(produce(&mut client, "t", 1, bad_magic.freeze()).0, CORRUPT_MESSAGE);
    assert_eq!(produce(&mut client, "t", 1, good.slice(..good.len() - 3)).0, CORRUPT_MESSAGE, "truncated batch");
    let big = vec![7u8; 2 << 20];
    assert_eq!(produce(&mut client, "t", 1, batch(&[&big])).0, MESSAGE_TOO_LARGE);
    assert_eq!(produce(&mut client, "t", 5, good.clone()).0, INVALID_REQUIRED_ACKS);

    // Nothing of the refused batches was stored: the first good one lands at offset 0.
    assert_eq!(produce(&mut client, "t", -1, good), (0, 0));
    assert_healthy(&broker, "t");
}

#[test]
fn unknown_topics_and_offsets_out_of_range_get_their_error_codes() {
    let broker = Broker::start(&["--auto-create-topics", "false"]);
    let mut client = Client::connect(&broker.bootstrap()).unwrap();
    assert_eq!(produce(&mut client, "missing", 1, batch(&[b"x"])).0, UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(fetch(&mut client, "missing", 0).0, UNKNOWN_TOPIC_OR_PARTITION);

    create_topic(&broker.bootstrap(), "t", 1);
    assert_eq!(produce(&mut client, "t", 1, batch(&[b"a", b"b"])).0, 0);
    assert_eq!(fetch(&mut client, "t", 3).0, OFFSET_OUT_OF_RANGE);
    assert_eq!(fetch(&mut client, "t", -1).0, OFFSET_OUT_OF_RANGE);
    let (error, records) = fetch(&mut client, "t", 2);
    assert_eq!((error, records.map(|r| r.len())), (0, Some(0)), "fetching at the end is empty, not an error");
    assert_healthy(&broker, "t");
}

#[test]
fn a_partition_whose_log_cannot_open_answers_kafka_storage_error() {
    let mut broker = Broker::start(&["--auto-create-topics", "false"]);
    create_topic(&broker.bootstrap(), "broken", 1);
    create_topic(&broker.bootstrap(), "t", 1);
    let mut before = client(&broker.bootstrap());
    assert_eq!(produce(&mut before, "broken", -1, batch(&[b"a", b"b"])).0, 0);
    broker.stop();
    // A segment that does not follow the one before it: the log refuses to open.
    std::fs::write(broker.data_dir.join("broken-0").join("00000000000000000099.log"), b"").expect("write");
    broker.restart();

    // Not UNKNOWN_TOPIC_OR_PARTITION, which clients would retry for ever.
    let mut client = client(&broker.bootstrap());
    assert_eq!(produce(&mut client, "broken", -1, batch(&[b"c"])).0, KAFKA_STORAGE_ERROR);
    assert_eq!(fetch(&mut client, "broken", 0).0, KAFKA_STORAGE_ERROR);
    assert!(broker.log().contains("stays offline"), "{}", broker.log());
    assert_healthy(&broker, "t");
}
