//! A full data directory: producers get KAFKA_STORAGE_ERROR (not an error
//! they retry forever), consumers keep reading, nothing stored is damaged,
//! the broker keeps running, and writes resume once space is freed. The data
//! directory is a 4 MiB tmpfs mounted for the test (needs root; skipped with
//! a message otherwise).

use crate::common;
#[path = "../../../engine/tests/common/small_fs.rs"]
mod small_fs;

use common::*;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use small_fs::SmallFs;

use std::time::Duration;

const TOPIC: &str = "full";

/// acks=all without retries, so a storage error reaches the delivery report.
fn strict_producer(bootstrap: &str) -> BaseProducer<Acks> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "false")
        .set("retries", "0")
        .set("linger.ms", "0")
        .set("message.timeout.ms", "10000")
        .create_with_context(Acks::default())
        .expect("producer")
}

/// Sends messages `range` and waits for their delivery reports.
fn send(producer: &BaseProducer<Acks>, range: std::ops::Range<u64>) {
    for i in range {
        let m = test_message(i);
        let mut headers = OwnedHeaders::new();
        for (k, v) in &m.headers {
            headers = headers.insert(Header { key: k, value: Some(v) });
        }
        let record = BaseRecord::with_opaque_to(TOPIC, Box::new(i)).key(&m.key).payload(&m.value).headers(headers);
        producer.send(record).map_err(|(e, _)| e).expect("send");
    }
    producer.flush(Duration::from_secs(15)).expect("flush");
}

/// Every acknowledged message is consumed at its offset, undamaged, and the
/// partition's offsets run contiguously from 0. Returns how many there are.
fn check_acked(bootstrap: &str, acked: &std::collections::HashMap<u64, (i32, i64)>) -> usize {
    let consumed = consume_all(bootstrap, TOPIC, 1);
    let mut at = std::collections::HashMap::new();
    for (n, c) in consumed.iter().enumerate() {
        assert_eq!(c.offset, n as i64, "offsets contiguous");
        let index: u64 = std::str::from_utf8(&c.headers[0].1).unwrap().parse().unwrap();
        assert_eq!(c.value, test_message(index).value, "message {index} damaged");
        at.insert((c.partition, c.offset), index);
    }
    for (index, position) in acked {
        assert_eq!(at.get(position), Some(index), "acknowledged message {index} at {position:?}");
    }
    consumed.len()
}

#[test]
fn full_disk_gives_storage_errors_and_writes_resume_after_freeing_space() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let Some(fs) = SmallFs::mount(&data_dir, "4m") else { return };
    let filler = data_dir.join("filler");
    std::fs::write(&filler, vec![0x5a; 1536 * 1024]).expect("filler");
    let mut broker = Broker::start_in(data_dir.clone(), &[]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, TOPIC, 1);

    let producer = strict_producer(&bootstrap);
    let mut sent = 0u64;
    while producer.context().failed.lock().unwrap().is_empty() {
        assert!(sent < 20_000, "the file system never filled up");
        send(&producer, sent..sent + 25);
        sent += 25;
    }
    let failed = producer.context().failed.lock().unwrap().clone();
    let expected = KafkaError::MessageProduction(RDKafkaErrorCode::KafkaStorageError).to_string();
    for (_, error) in &failed {
        assert_eq!(error, &expected, "a full disk is KAFKA_STORAGE_ERROR\n{}", broker.log());
    }
    assert!(broker.is_running(), "the broker keeps running");
    let acked = producer.context().acked.lock().unwrap().clone();
    assert!(acked.len() > 100, "a good part was stored first");

    // Consumers still read everything stored, undamaged.
    let stored = check_acked(&bootstrap, &acked);
    assert!(stored >= acked.len());

    // Free space: writes resume at the next offset.
    std::fs::remove_file(&filler).expect("free space");
    let producer = strict_producer(&bootstrap);
    send(&producer, sent..sent + 20);
    assert!(producer.context().failed.lock().unwrap().is_empty(), "writes resume after freeing space");
    let resumed = producer.context().acked.lock().unwrap().clone();
    let first = resumed.values().map(|p| p.1).min();
    assert_eq!(first, Some(stored as i64), "no offsets lost to the failed writes");
    let mut all = acked;
    all.extend(resumed);
    assert_eq!(check_acked(&bootstrap, &all), stored + 20);
    broker.kill();
    drop(fs);
}
