//! Stopping the broker in the middle of acks=all production loses nothing
//! acknowledged: SIGKILL, SIGTERM (a clean shutdown, which leaves every
//! partition's clean-shutdown marker) and two stop signals (exit at once).

use crate::common;

use common::*;
use rdkafka::producer::Producer;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const PARTITIONS: i32 = 3;

#[test]
fn every_acknowledged_message_survives_sigkill() {
    let mut broker = Broker::start(&[]);
    let topic = "durable";
    create_topic(&broker.bootstrap(), topic, PARTITIONS);
    let (producing, acked_count) = produce_in_background(&broker, topic, 0);
    wait_for_acks(&broker, &acked_count, 20_000);
    broker.kill();
    let acked = producing.join().expect("producer thread");
    broker.restart();
    check_survivors(&broker, topic, &acked);
}

#[test]
fn sigterm_shuts_down_cleanly_and_a_second_signal_exits_at_once() {
    let mut broker = Broker::start(&[]);
    let topic = "stopping";
    create_topic(&broker.bootstrap(), topic, PARTITIONS);

    let (producing, acked_count) = produce_in_background(&broker, topic, 0);
    wait_for_acks(&broker, &acked_count, 5_000);
    broker.stop();
    let mut acked = producing.join().expect("producer thread");
    assert!(broker.log().contains("stopped cleanly"), "{}", broker.log());
    for p in 0..PARTITIONS {
        let marker = broker.data_dir.join(format!("{topic}-{p}")).join("clean-shutdown");
        assert!(marker.exists(), "partition {p} has no clean-shutdown marker\n{}", broker.log());
    }
    broker.restart();
    check_survivors(&broker, topic, &acked);

    let (producing, acked_count) = produce_in_background(&broker, topic, 1_000_000);
    wait_for_acks(&broker, &acked_count, 5_000);
    let status = broker.signal_twice();
    assert_eq!(status.code(), Some(130), "a second signal exits at once\n{}", broker.log());
    acked.extend(producing.join().expect("producer thread"));
    broker.restart();
    check_survivors(&broker, topic, &acked);
}

type Acked = HashMap<u64, (i32, i64)>;

/// Produces acks=all messages numbered from `first` until the broker goes away;
/// returns what was acknowledged, and a live count of it.
fn produce_in_background(broker: &Broker, topic: &'static str, first: u64) -> (JoinHandle<Acked>, Arc<AtomicUsize>) {
    let bootstrap = broker.bootstrap();
    let context = Acks::default();
    let acked_count = context.acked_count.clone();
    let producing = std::thread::spawn(move || {
        // A short message timeout: after the broker stops, outstanding messages fail fast.
        let producer = producer_with(&bootstrap, "all", context, 5_000);
        produce_range_until_error(&producer, topic, first..first + 1_000_000);
        let acked = producer.context().acked.lock().unwrap().clone();
        acked
    });
    (producing, acked_count)
}

fn wait_for_acks(broker: &Broker, acked_count: &AtomicUsize, at_least: usize) {
    let waiting = Instant::now();
    while acked_count.load(Ordering::SeqCst) < at_least {
        assert!(waiting.elapsed() < Duration::from_secs(60), "producer made no progress\n{}", broker.log());
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Every acknowledged message is readable, undamaged, at the offset it was
/// acknowledged with; offsets are contiguous; the log takes new writes.
fn check_survivors(broker: &Broker, topic: &str, acked: &Acked) {
    assert!(!acked.is_empty(), "nothing was acknowledged before the stop; the test proves nothing");
    let consumed = consume_all(&broker.bootstrap(), topic, PARTITIONS);
    let mut by_position = HashMap::new();
    for c in &consumed {
        let index: u64 = std::str::from_utf8(&c.headers[0].1).unwrap().parse().unwrap();
        let expected = test_message(index);
        assert_eq!(c.value, expected.value, "message {index} damaged");
        by_position.insert((c.partition, c.offset), index);
    }
    for (index, position) in acked {
        assert_eq!(by_position.get(position), Some(index), "acknowledged message {index} at {position:?} lost");
    }
    for p in 0..PARTITIONS {
        let offsets: Vec<i64> = consumed.iter().filter(|c| c.partition == p).map(|c| c.offset).collect();
        assert!(offsets.iter().enumerate().all(|(i, &o)| o == i as i64), "partition {p} has gaps");
    }
    let producer = producer(&broker.bootstrap(), "all");
    produce_range(&producer, topic, 5_000_000..5_000_100);
    assert_eq!(producer.context().acked.lock().unwrap().len(), 100);
}

/// Like `produce_range`, but tolerates the broker disappearing.
fn produce_range_until_error(
    producer: &rdkafka::producer::BaseProducer<Acks>,
    topic: &str,
    range: std::ops::Range<u64>,
) {
    use rdkafka::producer::{BaseRecord, Producer};
    for i in range {
        let m = test_message(i);
        let mut headers = rdkafka::message::OwnedHeaders::new();
        for (k, v) in &m.headers {
            headers = headers.insert(rdkafka::message::Header { key: k, value: Some(v) });
        }
        let record = BaseRecord::with_opaque_to(topic, Box::new(i)).key(&m.key).payload(&m.value).headers(headers);
        if producer.send(record).is_err() {
            producer.poll(Duration::from_millis(50));
        }
        producer.poll(Duration::ZERO);
        if !producer.context().failed.lock().unwrap().is_empty() {
            break;
        }
    }
    let _ = producer.flush(Duration::from_secs(40));
}
