//! The broker under a crowd: thousands of idle connections, garbage senders
//! and slow readers, while a real client (rdkafka) produces and consumes.
//! Sized for CI (2 cores, under a minute); `weir bench crowd` reports the
//! figures at larger sizes.

use crate::common;

use common::*;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use weir_bench::crowd::{raise_open_files_limit, Crowd, CrowdSize, RssPeak};
use weir_engine::now_ms;
use weir_engine::records::RecordsBuilder;

const MESSAGES: u64 = 5_000;
const CROWD: CrowdSize = CrowdSize { idle: 3000, garbage: 200, slow: 200 };
/// Slow readers are closed after this.
const RESPONSE_WRITE_TIMEOUT_MS: u64 = 3000;
/// Answers a slow reader can make the broker hold: each of its Fetch
/// answers carries 64 KiB.
const MAX_IN_FLIGHT: u64 = 16;

/// 2 MiB in batches of 8 KiB for the slow readers' fetches: each answer then
/// holds about the 64 KiB they ask for (a fetch returns at least one whole
/// batch, so large batches would make larger answers).
fn fill_for_slow_readers(bootstrap: &str, topic: &str) {
    let mut client = client(bootstrap);
    let value = [b'x'; 1024];
    for _ in 0..256 {
        let mut batch = RecordsBuilder::new();
        for _ in 0..8 {
            batch.push(None, Some(&value), &[], now_ms());
        }
        let request = ProduceRequest::default().with_acks(1).with_timeout_ms(30_000).with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch.finish()))]),
        ]);
        let response = client.send(&request, 9).unwrap();
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    }
}

#[test]
fn a_real_client_is_served_through_a_hostile_crowd() {
    let connections = (CROWD.idle + CROWD.garbage + CROWD.slow) as u64;
    let open_files = raise_open_files_limit(); // the broker inherits it
    assert!(
        open_files > 2 * connections + 1000,
        "open-file limit {open_files} is too low for {connections} connections"
    );
    let mut config = tempfile::NamedTempFile::new().unwrap();
    writeln!(config, "admin_listen = \"\"\nresponse_write_timeout_ms = {RESPONSE_WRITE_TIMEOUT_MS}").unwrap();
    writeln!(config, "max_in_flight_per_connection = {MAX_IN_FLIGHT}").unwrap();
    let mut broker = Broker::start(&["--config", config.path().to_str().unwrap()]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "real", 2);
    create_topic(&bootstrap, "crowd", 1);
    fill_for_slow_readers(&bootstrap, "crowd");
    let rss_before = broker.rss_bytes();
    let sampler = RssPeak::sample(broker.pid());

    let started = Instant::now();
    let addr: SocketAddr = bootstrap.parse().unwrap();
    let crowd = Crowd::gather(addr, CROWD, "crowd").expect("the crowd connects");
    let gathered = started.elapsed();
    assert_eq!(crowd.garbage_closed, CROWD.garbage, "every garbage connection is closed");

    produce_range(&producer(&bootstrap, "all"), "real", 0..MESSAGES);
    check_consumed(&consume_all(&bootstrap, "real", 2), MESSAGES, 2);

    // The slow readers are closed once their answers stall for the timeout;
    // the idle connections are still held.
    let deadline = Instant::now() + Duration::from_millis(RESPONSE_WRITE_TIMEOUT_MS) * 4;
    while crowd.slow_closed() < CROWD.slow && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = broker.log();
    let stalled = log.lines().filter(|l| l.contains("could not be written")).count();
    assert_eq!(crowd.slow_closed(), CROWD.slow, "slow readers still open after the write timeout ({stalled} stalled)");
    assert_eq!(crowd.idle_open(), CROWD.idle, "idle connections were dropped");
    let peak = sampler.stop();
    assert!(broker.is_running(), "the broker died; its log:\n{}", broker.log());
    eprintln!(
        "crowd of {connections} gathered in {gathered:?}; broker RSS {} MiB before, peak {} MiB",
        rss_before >> 20,
        peak >> 20
    );
    // What the limits allow: per connection its state and read buffer, per
    // slow reader MAX_IN_FLIGHT answers (64 KiB read, then encoded again).
    let bound = rss_before + connections * (64 << 10) + CROWD.slow as u64 * MAX_IN_FLIGHT * (128 << 10);
    assert!(peak < bound, "broker RSS peaked at {} MiB, over the {} MiB the limits allow", peak >> 20, bound >> 20);
}
