//! Connection limits (max_connections, max_connections_per_ip,
//! connections_max_idle_ms, queued_max_request_bytes,
//! response_write_timeout_ms) and Produce's timeout_ms, each against a real
//! broker configured with a small limit.

use crate::common;

use common::*;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::FromRawFd;
use std::time::{Duration, Instant};
use weir_engine::now_ms;
use weir_engine::records::RecordsBuilder;

/// A broker whose config file holds `toml` (and no admin endpoint).
fn broker_with(toml: &str) -> (Broker, tempfile::NamedTempFile) {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "admin_listen = \"\"\n{toml}").unwrap();
    let broker = Broker::start(&["--config", file.path().to_str().unwrap()]);
    (broker, file)
}

/// ApiVersions v0, correlation id 7, no client id.
const API_VERSIONS_V0: [u8; 14] = [0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 7, 0xff, 0xff];

/// Reads one response frame; `None` if the broker closed the connection.
fn read_response(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).ok()?;
    Some(body)
}

/// Sends ApiVersions; whether the broker answered it.
fn answers(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(&API_VERSIONS_V0).is_ok() && read_response(stream).is_some()
}

/// A connection the broker admitted and answers on. Retries for a while:
/// the broker's start probe can hold a place for a moment.
fn admitted(port: u16, from: Ipv4Addr) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut stream = connect_from(from, port);
        if answers(&mut stream) {
            return stream;
        }
        assert!(Instant::now() < deadline, "no connection from {from} admitted");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A TCP connection to 127.0.0.1:`port` from the local address `from`
/// (any 127.x.y.z works on Linux loopback).
fn connect_from(from: Ipv4Addr, port: u16) -> TcpStream {
    let sockaddr = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(ip).to_be() },
        sin_zero: [0; 8],
    };
    let len = size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor we create and then hand to TcpStream.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let stream = TcpStream::from_raw_fd(fd);
        let local = sockaddr(from, 0);
        let bound = libc::bind(fd, std::ptr::addr_of!(local).cast(), len);
        assert_eq!(bound, 0, "bind {from}: {}", std::io::Error::last_os_error());
        let remote = sockaddr(Ipv4Addr::LOCALHOST, port);
        let connected = libc::connect(fd, std::ptr::addr_of!(remote).cast(), len);
        assert_eq!(connected, 0, "connect: {}", std::io::Error::last_os_error());
        stream
    }
}

fn local(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

#[test]
fn max_connections_closes_new_connections_over_the_limit() {
    let (broker, _config) = broker_with("max_connections = 3");
    // Two shards: the limit holds for the broker, not per shard.
    let held: Vec<TcpStream> = (1..=3).map(|i| admitted(broker.port, local(i))).collect();
    for attempt in 0..5 {
        let mut extra = connect_from(local(10 + attempt), broker.port);
        assert!(!answers(&mut extra), "connection {} over max_connections was answered", 4 + attempt);
    }
    // A freed place is given to the next connection.
    drop(held);
    let _again: Vec<TcpStream> = (1..=3).map(|i| admitted(broker.port, local(20 + i))).collect();
}

#[test]
fn max_connections_per_ip_closes_new_connections_from_that_ip() {
    let (broker, _config) = broker_with("max_connections_per_ip = 2");
    let _a: Vec<TcpStream> = (0..2).map(|_| admitted(broker.port, local(1))).collect();
    for _ in 0..5 {
        let mut extra = connect_from(local(1), broker.port);
        assert!(!answers(&mut extra), "a third connection from 127.0.0.1 was answered");
    }
    // Other addresses are not held back.
    let _b: Vec<TcpStream> = (0..2).map(|_| admitted(broker.port, local(2))).collect();
}

#[test]
fn connections_max_idle_ms_closes_idle_connections_only() {
    let (broker, clock, _config) = broker_on_test_clock("connections_max_idle_ms = 3600000");
    let mut idle = admitted(broker.port, local(1));
    let mut busy = admitted(broker.port, local(1));
    // 80 minutes pass on the broker's clock; the busy connection sends a
    // request every 20 of them.
    for _ in 0..4 {
        advance_clock(&clock, Duration::from_secs(20 * 60));
        assert!(answers(&mut busy), "a connection sending requests was closed");
    }
    idle.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut rest = Vec::new();
    assert!(matches!(idle.read_to_end(&mut rest), Ok(0)), "the idle connection is still open");
    assert!(!answers(&mut idle));
}

/// A Fetch v12 frame that long-polls an empty partition for `max_wait_ms`.
fn long_poll_fetch(topic: &str, correlation_id: i32, max_wait_ms: i32) -> Vec<u8> {
    weir_bench::crowd::fetch_frame(topic, correlation_id, max_wait_ms, 1 << 20).unwrap().to_vec()
}

/// A JoinGroup v2 frame: the first member of `group`, answered once the
/// group's initial rebalance delay has passed.
fn first_join(group: &str, correlation_id: i32) -> Vec<u8> {
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::{ApiKey, GroupId, JoinGroupRequest};
    let request = JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(StrBytes::from_static_str("range"))
            .with_metadata(bytes::Bytes::from_static(&[0, 0, 0, 0, 0, 0]))]);
    frame(ApiKey::JoinGroup, 2, correlation_id, &request)
}

/// A request frame as a client sends it.
fn frame<T: kafka_protocol::protocol::Encodable>(
    key: kafka_protocol::messages::ApiKey,
    version: i16,
    correlation_id: i32,
    request: &T,
) -> Vec<u8> {
    let header = kafka_protocol::messages::RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id);
    weir_client::codec::encode_request(&header, key, request).unwrap().to_vec()
}

#[test]
fn queued_max_request_bytes_stops_reading_until_answers_free_the_budget() {
    // Room for two in-flight JoinGroup frames, not three.
    let frame_bytes = first_join("group-1", 1).len();
    let (broker, _config) = broker_with(&format!(
        "queued_max_request_bytes = {}\ngroup_initial_rebalance_delay_ms = 1000",
        frame_bytes * 5 / 2
    ));
    let mut stream = admitted(broker.port, local(1));
    stream.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    // The coordinator's partitions exist before the clock starts.
    let find = kafka_protocol::messages::FindCoordinatorRequest::default()
        .with_key(StrBytes::from_static_str("group-0"))
        .with_key_type(0);
    assert_eq!(client(&broker.bootstrap()).send(&find, 3).unwrap().error_code, 0);
    let start = Instant::now();
    // Four pipelined joins of four new groups, each answered after 1 s. With
    // every frame read at once they would all be answered after about 1 s;
    // with room for two, the last two are read only when the first two are
    // answered: about 2 s.
    let frames: Vec<u8> = (1..=4).flat_map(|id| first_join(&format!("group-{id}"), id)).collect();
    stream.write_all(&frames).unwrap();
    let mut answered_at = Vec::new();
    for id in 1..=4 {
        let response = read_response(&mut stream).expect("join answered");
        assert_eq!(i32::from_be_bytes(response[..4].try_into().unwrap()), id, "answers in request order");
        answered_at.push(start.elapsed());
    }
    assert!(answered_at[1] < Duration::from_millis(1900), "the first two were held back: {answered_at:?}");
    assert!(answered_at[3] >= Duration::from_millis(1900), "all four were read at once: {answered_at:?}");
    // The connection still works afterwards.
    assert!(answers(&mut stream));
}

#[test]
fn queued_max_request_bytes_is_taken_before_a_frame_is_read() {
    // Room for one long poll only: a big frame behind it must stay unread
    // (in the client's and the kernel's buffers, not the broker's memory)
    // until the long poll is answered.
    let long_poll = long_poll_fetch("empty", 1, 3000);
    let (broker, _config) = broker_with(&format!("queued_max_request_bytes = {}", long_poll.len()));
    create_topic(&broker.bootstrap(), "empty", 1);
    let mut stream = admitted(broker.port, local(1));
    stream.write_all(&long_poll).unwrap();
    let big = 64 << 20;
    stream.write_all(&(big as i32).to_be_bytes()).unwrap();
    let rss_before = broker.rss_bytes();
    stream.set_write_timeout(Some(Duration::from_millis(100))).unwrap();
    let chunk = vec![0u8; 64 << 10];
    let mut written = 0;
    let start = Instant::now();
    while written < big && start.elapsed() < Duration::from_millis(2000) {
        match stream.write(&chunk[..chunk.len().min(big - written)]) {
            Ok(n) => written += n,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("write failed: {e}"),
        }
    }
    let rss_grown = broker.rss_bytes().saturating_sub(rss_before);
    assert!(written < big / 2, "the broker read {written} bytes of a frame it had no budget for");
    assert!(rss_grown < big as u64 / 2, "the broker grew by {rss_grown} bytes while it had no budget");
    // Once the long poll is answered the budget is free and the frame is read.
    stream.set_write_timeout(Some(Duration::from_secs(15))).unwrap();
    while written < big {
        let n = chunk.len().min(big - written);
        stream.write_all(&chunk[..n]).expect("the rest of the frame is read after the long poll");
        written += n;
    }
    let answer = read_response(&mut stream).expect("long poll answered");
    assert_eq!(i32::from_be_bytes(answer[..4].try_into().unwrap()), 1);
}

#[test]
fn response_write_timeout_ms_closes_a_connection_that_does_not_read() {
    let (broker, clock, _config) = broker_on_test_clock("response_write_timeout_ms = 3600000");
    create_topic(&broker.bootstrap(), "full", 1);
    produce_range(&producer(&broker.bootstrap(), "1"), "full", 0..600); // about 1.2 MB
    let mut stream = admitted(broker.port, local(1));
    // 64 fetches of up to 1 MiB each: more than the socket buffers hold.
    let fetches = 64;
    let requests: Vec<u8> = (1..=fetches).flat_map(|id| long_poll_fetch("full", id, 0)).collect();
    stream.write_all(&requests).unwrap();
    // Not reading stalls the broker's writes. Over a second, ten hours pass
    // on the broker's clock, an hour at a time: all but the first few steps
    // come after the writer has stalled, and each of those exceeds the timeout.
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(100));
        advance_clock(&clock, Duration::from_secs(61 * 60));
    }
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answered = 0;
    let mut len = [0u8; 4];
    let ended = loop {
        if let Err(e) = stream.read_exact(&mut len) {
            break e.kind();
        }
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        if let Err(e) = stream.read_exact(&mut body) {
            break e.kind();
        }
        answered += 1;
    };
    assert!(answered < fetches, "all {fetches} answers came: the stalled connection was kept open");
    use std::io::ErrorKind::{ConnectionReset, UnexpectedEof};
    assert!(matches!(ended, ConnectionReset | UnexpectedEof), "the connection was not closed: {ended:?}");
    // Other connections are served.
    assert!(answers(&mut admitted(broker.port, local(2))));
}

/// Produces one batch of `records` 1 MiB records at acks=-1; (error code, base offset).
fn produce_durably(client: &mut weir_client::Client, records: usize, timeout_ms: i32) -> (i16, i64) {
    let value = vec![7u8; 1 << 20];
    let mut batch = RecordsBuilder::new();
    for _ in 0..records {
        batch.push(None, Some(&value), &[], now_ms());
    }
    let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(timeout_ms).with_topic_data(vec![
        TopicProduceData::default().with_name(TopicName(StrBytes::from_static_str("durable"))).with_partition_data(
            vec![PartitionProduceData::default().with_index(0).with_records(Some(batch.finish()))],
        ),
    ]);
    let response = client.send(&request, 9).unwrap();
    let partition = &response.responses[0].partition_responses[0];
    (partition.error_code, partition.base_offset)
}

#[test]
fn produce_timeout_ms_bounds_the_wait_for_a_durable_write() {
    const REQUEST_TIMED_OUT: i16 = 7;
    let (broker, _config) = broker_with("message_max_bytes = 67108864");
    create_topic(&broker.bootstrap(), "durable", 1);
    let mut client = client(&broker.bootstrap());
    // 16 MiB written and synced cannot be done in 1 ms.
    assert_eq!(produce_durably(&mut client, 16, 1).0, REQUEST_TIMED_OUT);
    // The timed-out write still completes: the next batch comes after it.
    assert_eq!(produce_durably(&mut client, 1, 30_000), (0, 16));
}

#[test]
fn fetch_max_bytes_caps_a_response_whatever_the_client_asks() {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::FetchRequest;
    let (broker, _config) = broker_with("fetch_max_bytes = 65536");
    create_topic(&broker.bootstrap(), "capped", 4);
    let mut client = client(&broker.bootstrap());
    let value = vec![3u8; 40 << 10];
    let partitions = (0..4)
        .map(|p| {
            let batch = RecordsBuilder::new().push(None, Some(&value), &[], now_ms()).finish();
            PartitionProduceData::default().with_index(p).with_records(Some(batch))
        })
        .collect();
    let name = TopicName(StrBytes::from_static_str("capped"));
    let produce = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default().with_name(name.clone()).with_partition_data(partitions)]);
    let produced = client.send(&produce, 9).unwrap();
    assert!(produced.responses[0].partition_responses.iter().all(|p| p.error_code == 0));

    // The client allows 100 MiB and 1 MiB per partition: 4 x 40 KiB would fit.
    let fetch = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_max_bytes(100 << 20)
        .with_topics(vec![FetchTopic::default().with_topic(name).with_partitions(
            (0..4)
                .map(|p| {
                    FetchPartition::default().with_partition(p).with_fetch_offset(0).with_partition_max_bytes(1 << 20)
                })
                .collect(),
        )]);
    let fetched = client.send(&fetch, 12).unwrap();
    let partitions = &fetched.responses[0].partitions;
    let sizes: Vec<usize> = partitions.iter().map(|p| p.records.as_ref().map_or(0, |r| r.len())).collect();
    assert!(sizes[0] > 40 << 10, "the first partition goes whole: {sizes:?}");
    assert!(sizes.iter().sum::<usize>() <= 65536, "fetch_max_bytes caps the response: {sizes:?}");
    assert!(partitions.iter().all(|p| p.error_code == 0 && p.high_watermark == 1), "every partition's offsets");
}

/// A Fetch v12 frame for partition 0 of `topic` from offset 0, allowing `max_bytes` in all and per partition.
fn fetch_everything(topic: &str, correlation_id: i32, max_bytes: i32) -> Vec<u8> {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{ApiKey, FetchRequest};
    let request = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_max_bytes(max_bytes)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default().with_partition(0).with_partition_max_bytes(max_bytes)])]);
    frame(ApiKey::Fetch, 12, correlation_id, &request)
}

#[test]
fn a_connection_holds_one_fetch_answer_at_a_time() {
    // 32 MiB in the partition; a client pipelines 16 fetches of all of it and
    // reads nothing. Were every fetch answered at once, the broker would hold
    // 16 x 32 MiB of answers for that one connection.
    let (broker, _config) = broker_with("message_max_bytes = 40000000");
    create_topic(&broker.bootstrap(), "durable", 1);
    assert_eq!(produce_durably(&mut client(&broker.bootstrap()), 32, 30_000), (0, 0));
    let rss_before = broker.rss_bytes();
    let mut stream = admitted(broker.port, local(1));
    let fetches = 16;
    let requests: Vec<u8> = (1..=fetches).flat_map(|id| fetch_everything("durable", id, 64 << 20)).collect();
    stream.write_all(&requests).unwrap();
    std::thread::sleep(Duration::from_millis(3000));
    let rss_grown = broker.rss_bytes().saturating_sub(rss_before);
    assert!(rss_grown < 160 << 20, "the broker grew by {} MiB for one connection that does not read", rss_grown >> 20);
    // Each fetch is answered, whole and in order, once the client reads.
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    for id in 1..=fetches {
        let answer = read_response(&mut stream).expect("fetch answered");
        assert_eq!(i32::from_be_bytes(answer[..4].try_into().unwrap()), id, "answers in request order");
        assert!(answer.len() > 32 << 20, "answer {id} holds the whole partition: {} bytes", answer.len());
    }
}

#[test]
fn limits_are_checked_at_start() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "max_connections = 0").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--config", file.path().to_str().unwrap(), "--listen"])
        .arg(SocketAddrV4::new(Ipv4Addr::LOCALHOST, free_port()).to_string())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("max_connections must be at least 1"));
}
