//! Producer state across restarts and time: a clean shutdown snapshots it,
//! a restart loads the snapshot and replays only the log after it (also
//! after a SIGKILL), a damaged snapshot or one beyond the log end is
//! ignored, and idle producer ids expire.

use crate::common;

use common::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use weir_client::Client;
use weir_engine::now_ms;

const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;

/// Produces `count` records of `producer` from sequence `first_seq` to partition 0 of `topic`.
fn produce(c: &mut Client, topic: &str, producer: (i64, i16), first_seq: i32, count: usize) -> (i16, i64) {
    produce_batch(c, topic, None, producer_batch(producer, first_seq, count, false, now_ms()))
}

fn metric(admin: &str, name: &str, labels: &[&str]) -> f64 {
    let (status, text) = http(admin, "GET", "/metrics");
    assert_eq!(status, 200);
    sum(&text, name, labels)
}

fn replayed_bytes(admin: &str) -> f64 {
    metric(admin, "weir_producer_state_replayed_bytes_total", &[])
}

fn partition_size(admin: &str, topic: &str) -> f64 {
    metric(admin, "weir_partition_size_bytes", &[&format!("topic=\"{topic}\"")])
}

fn partition_dir(broker: &Broker, topic: &str) -> PathBuf {
    broker.data_dir.join(format!("{topic}-0"))
}

/// The snapshot file names of partition 0 of `topic`, sorted.
fn snapshots(broker: &Broker, topic: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(partition_dir(broker, topic))
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter(|n| n.ends_with(".snapshot"))
        .collect();
    names.sort();
    names
}

fn snapshot_name(offset: i64) -> String {
    format!("{offset:020}.snapshot")
}

/// A broker with its admin endpoint, and partition 0 of `topic` holding
/// `batches` batches of 10 records from one idempotent producer, returned.
fn broker_with_batches(extra_args: &[&str], topic: &str, batches: i32) -> (Broker, String, (i64, i16)) {
    let (broker, admin) = broker_with_admin(extra_args);
    let b = broker.bootstrap();
    create_topic(&b, topic, 1);
    let mut c = client(&b);
    let p = init_producer_id(&mut c);
    for i in 0..batches {
        assert_eq!(produce(&mut c, topic, p, i * 10, 10), (0, i64::from(i) * 10));
    }
    (broker, admin, p)
}

#[test]
fn a_restart_loads_the_snapshot_and_replays_only_the_log_after_it() {
    let (mut broker, admin, p) = broker_with_batches(&[], "snap", 20);
    let b = broker.bootstrap();
    broker.stop();
    assert_eq!(snapshots(&broker, "snap"), vec![snapshot_name(200)], "a clean shutdown snapshots the producers");

    broker.restart();
    wait_until_healthy(&broker, &admin);
    let mut c = client(&b);
    assert_eq!(produce(&mut c, "snap", p, 190, 10), (0, 190), "the retried last batch is still a duplicate");
    assert_eq!(replayed_bytes(&admin), 0.0, "the snapshot covers the whole log");
    let size_at_snapshot = partition_size(&admin, "snap");
    assert_eq!(produce(&mut c, "snap", p, 200, 10), (0, 200), "the sequence goes on");
    let q = init_producer_id(&mut c);
    assert_eq!(produce(&mut c, "snap", q, 0, 5), (0, 210));
    let size_at_kill = partition_size(&admin, "snap");

    broker.kill();
    broker.restart();
    wait_until_healthy(&broker, &admin);
    let described = describe_producers(&b, "snap");
    assert_eq!(described, vec![(p.0, i32::from(p.1), 209, -1), (q.0, i32::from(q.1), 4, -1)]);
    assert_eq!(replayed_bytes(&admin), size_at_kill - size_at_snapshot, "only the log after the snapshot is read");
    let mut c = client(&b);
    assert_eq!(produce(&mut c, "snap", p, 200, 10), (0, 200), "still a duplicate after the crash");
    assert_eq!(produce(&mut c, "snap", p, 210, 1), (0, 215));
    assert_eq!(produce(&mut c, "snap", q, 5, 1), (0, 216));
}

#[test]
fn a_damaged_snapshot_or_one_beyond_the_log_end_is_ignored() {
    let (mut broker, admin, p) = broker_with_batches(&[], "damaged", 5);
    let b = broker.bootstrap();
    broker.stop();
    let dir = partition_dir(&broker, "damaged");
    let snapshot = dir.join(snapshot_name(50));
    let intact = std::fs::read(&snapshot).unwrap();
    let mut damaged = intact.clone();
    *damaged.last_mut().unwrap() ^= 0xff;
    std::fs::write(&snapshot, damaged).unwrap();
    // As after an unclean stop that lost the end of the log it described.
    let beyond = dir.join(snapshot_name(1000));
    std::fs::write(&beyond, &intact).unwrap();

    broker.restart();
    wait_until_healthy(&broker, &admin);
    assert!(!beyond.exists(), "a snapshot beyond the recovered end is removed at open");
    let mut c = client(&b);
    assert_eq!(produce(&mut c, "damaged", p, 40, 10), (0, 40), "rebuilt from the whole log: still a duplicate");
    assert_eq!(replayed_bytes(&admin), partition_size(&admin, "damaged"), "the whole log was read");
    assert_eq!(produce(&mut c, "damaged", p, 50, 1), (0, 50));
}

#[test]
fn idle_producer_ids_expire() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("weir.toml");
    std::fs::write(&config, "producer_id_expiration_ms = 1000\nproducer_id_expiration_check_interval_ms = 100\n")
        .unwrap();
    let broker = Broker::start(&["--config", config.to_str().unwrap()]);
    let b = broker.bootstrap();
    create_topic(&b, "expiring", 1);
    let mut c = client(&b);
    let p = init_producer_id(&mut c);
    assert_eq!(produce(&mut c, "expiring", p, 0, 3), (0, 0));
    assert_eq!(describe_producers(&b, "expiring"), vec![(p.0, i32::from(p.1), 2, -1)]);
    assert_eq!(produce(&mut c, "expiring", p, 10, 1).0, OUT_OF_ORDER_SEQUENCE_NUMBER, "a gap");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !describe_producers(&b, "expiring").is_empty() {
        assert!(Instant::now() < deadline, "the producer did not expire");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Kafka (2.5+) takes any sequence from a producer it has no state of.
    assert_eq!(produce(&mut c, "expiring", p, 10, 1), (0, 3), "its sequence is forgotten: no gap is seen");
    assert_eq!(describe_producers(&b, "expiring"), vec![(p.0, i32::from(p.1), 10, -1)]);
}

#[test]
fn a_segment_roll_leads_to_a_snapshot_that_a_crash_restart_uses() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("weir.toml");
    std::fs::write(&config, "segment_bytes = 16384\nlog_retention_check_interval_ms = 100\n").unwrap();
    let (mut broker, admin, p) = broker_with_batches(&["--config", config.to_str().unwrap()], "rolling", 100);
    let b = broker.bootstrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while snapshots(&broker, "rolling").is_empty() {
        assert!(Instant::now() < deadline, "no snapshot after segments rolled");
        std::thread::sleep(Duration::from_millis(50));
    }
    let size = partition_size(&admin, "rolling");

    broker.kill();
    broker.restart();
    wait_until_healthy(&broker, &admin);
    assert_eq!(describe_producers(&b, "rolling"), vec![(p.0, i32::from(p.1), 999, -1)]);
    assert!(replayed_bytes(&admin) < size, "the log before the snapshot is not read");
    let mut c = client(&b);
    assert_eq!(produce(&mut c, "rolling", p, 990, 10), (0, 990), "still a duplicate");
}
