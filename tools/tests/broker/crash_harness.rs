//! The crash harness: many times over, SIGKILL the broker at a random moment
//! of acks=all load, restart it, and check that every acknowledged message is
//! readable at the offset it was acknowledged with, that offsets are
//! contiguous, and that the log accepts new writes.
//!
//! `WEIR_CRASH_KILLS` sets the number of kills (default 200, about four
//! minutes); `WEIR_CRASH_SEED` replays a run (the seed is printed).

use crate::common;

use common::*;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, PurgeConfig};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOPIC: &str = "crash";
const PARTITIONS: i32 = 2;
/// Messages produced per round at most (bounds the data directory).
const ROUND_MESSAGES: u64 = 1_500;

/// xorshift64*: small, seedable, good enough to pick kill points.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| v.parse().unwrap_or_else(|_| panic!("{name} must be a number")))
}

/// Produces messages `start..start + ROUND_MESSAGES` with acks=all until
/// `stop`, then purges what is still queued or in flight. Returns what was
/// acknowledged: message index -> (partition, offset).
fn produce_until_stopped(bootstrap: &str, start: u64, stop: &AtomicBool) -> HashMap<u64, (i32, i64)> {
    let producer = producer_with(bootstrap, "all", Acks::default(), 10_000);
    let mut i = start;
    while !stop.load(Ordering::SeqCst) && i < start + ROUND_MESSAGES {
        let m = test_message(i);
        let mut headers = OwnedHeaders::new();
        for (k, v) in &m.headers {
            headers = headers.insert(Header { key: k, value: Some(v) });
        }
        let record = BaseRecord::with_opaque_to(TOPIC, Box::new(i)).key(&m.key).payload(&m.value).headers(headers);
        match producer.send(record) {
            Ok(()) => i += 1,
            Err((e, _)) => {
                // Queue full or the broker gone: let delivery reports drain.
                let _ = e;
                producer.poll(Duration::from_millis(5));
            }
        }
        producer.poll(Duration::ZERO);
    }
    while !stop.load(Ordering::SeqCst) {
        producer.poll(Duration::from_millis(5));
    }
    // Acks the broker sent before it died may still be in the socket: poll a
    // little before purging so they are counted (they must be durable too).
    producer.poll(Duration::from_millis(50));
    producer.purge(PurgeConfig::default().queue().inflight());
    producer.poll(Duration::from_millis(100));
    let acked = producer.context().acked.lock().unwrap().clone();
    acked
}

/// Reads each partition from the given offset to its end: offset -> message
/// index, checking contents and that offsets are contiguous.
fn read_from(bootstrap: &str, from: &BTreeMap<i32, i64>) -> HashMap<(i32, i64), u64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("group.id", "crash-harness-assign-only")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for (&p, &o) in from {
        assignment.add_partition_offset(TOPIC, p, Offset::Offset(o)).unwrap();
    }
    consumer.assign(&assignment).expect("assign");
    let mut next: BTreeMap<i32, i64> = from.clone();
    let mut at_eof: BTreeMap<i32, bool> = from.keys().map(|&p| (p, false)).collect();
    let mut out = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !at_eof.values().all(|&e| e) {
        assert!(Instant::now() < deadline, "reading back took too long; got {}", out.len());
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let p = m.partition();
                at_eof.insert(p, false);
                assert_eq!(m.offset(), next[&p], "partition {p}: offsets not contiguous");
                next.insert(p, m.offset() + 1);
                let headers = m.headers().expect("headers");
                let index_header = rdkafka::message::Headers::get(headers, 0);
                let index: u64 =
                    std::str::from_utf8(index_header.value.expect("index")).unwrap().parse().expect("index header");
                assert_eq!(m.payload().unwrap_or_default(), &test_message(index).value[..], "message {index} damaged");
                out.insert((p, m.offset()), index);
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                at_eof.insert(p, true);
            }
            Some(Err(e)) => panic!("consume error: {e}"),
            None => {}
        }
    }
    out
}

#[test]
fn acknowledged_messages_survive_hundreds_of_sigkills() {
    let kills = env_u64("WEIR_CRASH_KILLS").unwrap_or(200);
    let seed = env_u64("WEIR_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    eprintln!("crash harness: {kills} kills, WEIR_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let mut broker = Broker::start(&[]);
    create_topic(&broker.bootstrap(), TOPIC, PARTITIONS);
    let started = Instant::now();
    let mut all_acked: HashMap<u64, (i32, i64)> = HashMap::new();
    let mut next_index = 0u64;
    let mut rounds_with_acks = 0;
    for round in 0..kills {
        let stop = Arc::new(AtomicBool::new(false));
        let producing = {
            let stop = stop.clone();
            let bootstrap = broker.bootstrap();
            let start = next_index;
            std::thread::spawn(move || produce_until_stopped(&bootstrap, start, &stop))
        };
        // Kill at a random moment: sometimes before the first ack, mostly in
        // the middle of the load.
        std::thread::sleep(Duration::from_millis(5 + rng.below(250)));
        assert!(broker.is_running(), "round {round}: the broker died by itself\n{}", broker.log());
        broker.kill();
        stop.store(true, Ordering::SeqCst);
        let acked = producing.join().expect("producer thread");
        next_index += ROUND_MESSAGES;
        broker.restart_on_a_new_port();

        // This round's acks, read back from the lowest acked offset of each
        // partition (earlier rounds are checked again at the end).
        let mut from: BTreeMap<i32, i64> = BTreeMap::new();
        for &(p, o) in acked.values() {
            let e = from.entry(p).or_insert(o);
            *e = (*e).min(o);
        }
        if !from.is_empty() {
            rounds_with_acks += 1;
            let found = read_from(&broker.bootstrap(), &from);
            for (index, position) in &acked {
                assert_eq!(
                    found.get(position),
                    Some(index),
                    "round {round} (seed {seed}): acknowledged message {index} at {position:?} lost"
                );
            }
        }
        for (index, position) in acked {
            assert!(all_acked.insert(index, position).is_none());
        }
    }
    eprintln!(
        "crash harness: {kills} kills in {:?}, {} messages acknowledged, {rounds_with_acks} rounds with acks",
        started.elapsed(),
        all_acked.len()
    );
    assert!(rounds_with_acks * 2 >= kills, "most kills must hit acknowledged load to prove anything");

    // Everything ever acknowledged, from offset 0, contiguous.
    let from: BTreeMap<i32, i64> = (0..PARTITIONS).map(|p| (p, 0)).collect();
    let found = read_from(&broker.bootstrap(), &from);
    for (index, position) in &all_acked {
        assert_eq!(found.get(position), Some(index), "acknowledged message {index} at {position:?} lost");
    }
    // And the log still takes writes.
    let producer = producer(&broker.bootstrap(), "all");
    produce_range(&producer, TOPIC, next_index..next_index + 100);
    assert_eq!(producer.context().acked.lock().unwrap().len(), 100);
}
