//! SIGKILL in the middle of acks=all production loses nothing acknowledged.

mod common;

use common::*;
use rdkafka::producer::Producer;
use std::time::Duration;

#[test]
fn every_acknowledged_message_survives_sigkill() {
    let mut broker = Broker::start(&[]);
    let topic = "durable";
    create_topic(&broker.bootstrap(), topic, 3);
    let bootstrap = broker.bootstrap();

    // Produce on another thread; kill the broker once some messages are
    // acknowledged and more are in flight.
    let context = Acks::default();
    let acked_count = context.acked_count.clone();
    let producing = std::thread::spawn(move || {
        // A short message timeout: after the kill, outstanding messages fail fast.
        let producer = producer_with(&bootstrap, "all", context, 5_000);
        produce_range_until_error(&producer, topic, 0..1_000_000);
        let acked = producer.context().acked.lock().unwrap().clone();
        acked
    });
    let waiting = std::time::Instant::now();
    while acked_count.load(std::sync::atomic::Ordering::SeqCst) < 20_000 {
        assert!(waiting.elapsed() < Duration::from_secs(60), "producer made no progress\n{}", broker.log());
        std::thread::sleep(Duration::from_millis(5));
    }
    broker.kill();
    let acked = producing.join().expect("producer thread");
    assert!(!acked.is_empty(), "nothing was acknowledged before the kill; the test proves nothing");

    broker.restart();
    let consumed = consume_all(&broker.bootstrap(), topic, 3);
    let mut by_position = std::collections::HashMap::new();
    for c in &consumed {
        let index: u64 = std::str::from_utf8(&c.headers[0].1).unwrap().parse().unwrap();
        let expected = test_message(index);
        assert_eq!(c.value, expected.value, "message {index} damaged");
        by_position.insert((c.partition, c.offset), index);
    }
    for (index, position) in &acked {
        assert_eq!(by_position.get(position), Some(index), "acknowledged message {index} at {position:?} lost");
    }
    // Offsets are contiguous from 0 in every partition.
    for p in 0..3 {
        let offsets: Vec<i64> = consumed.iter().filter(|c| c.partition == p).map(|c| c.offset).collect();
        assert!(offsets.iter().enumerate().all(|(i, &o)| o == i as i64), "partition {p} has gaps");
    }
    // And the log takes new writes at the right offsets.
    let producer = producer(&broker.bootstrap(), "all");
    produce_range(&producer, topic, 1_000_000..1_000_100);
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
