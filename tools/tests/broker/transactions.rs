//! Transactions with librdkafka: read_committed sees committed transactions
//! only, a second producer of a transactional id fences the first, open
//! transactions time out, a consume-transform-produce loop killed again and
//! again (and the broker with it) yields each output exactly once, and all of
//! it survives a broker SIGKILL.

use crate::common;

use common::*;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    FindCoordinatorRequest, InitProducerIdRequest, ListOffsetsRequest, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) fn txn_producer(bootstrap: &str, transactional_id: &str, timeout_ms: u32) -> BaseProducer {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", transactional_id)
        .set("transaction.timeout.ms", timeout_ms.to_string())
        .set("linger.ms", "5")
        .create()
        .expect("transactional producer");
    producer.init_transactions(TIMEOUT).expect("init_transactions");
    producer
}

pub(crate) fn send(producer: &BaseProducer, topic: &str, partition: i32, values: impl IntoIterator<Item = String>) {
    for value in values {
        let record = BaseRecord::<(), String>::to(topic).partition(partition).payload(&value);
        producer.send(record).map_err(|(e, _)| e).expect("send");
        producer.poll(Duration::ZERO);
    }
    producer.flush(TIMEOUT).expect("flush");
}

fn reader(bootstrap: &str, isolation: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "readers")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", isolation)
        .create()
        .expect("consumer")
}

/// Every value of the topic's partitions `0..partitions`, read from the
/// beginning until each partition reports EOF.
pub(crate) fn read_values(bootstrap: &str, topic: &str, partitions: i32, isolation: &str) -> Vec<String> {
    let consumer = reader(bootstrap, isolation);
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut eof = vec![false; partitions as usize];
    let mut values = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while !eof.iter().all(|e| *e) {
        assert!(Instant::now() < deadline, "reading {topic} timed out with {} values", values.len());
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                eof[m.partition() as usize] = false;
                values.push(String::from_utf8(m.payload().unwrap_or_default().to_vec()).unwrap());
            }
            Some(Err(KafkaError::PartitionEOF(p))) => eof[p as usize] = true,
            Some(Err(e)) => panic!("consume: {e}"),
            None => {}
        }
    }
    values
}

pub(crate) fn labels(prefix: &str, range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("{prefix}-{i}")).collect()
}

/// ListOffsets latest for partition 0: (read_uncommitted, read_committed).
fn latest_offsets(bootstrap: &str, topic: &str) -> (i64, i64) {
    let mut client = client(bootstrap);
    let mut latest = |isolation: i8| {
        let request =
            ListOffsetsRequest::default().with_isolation_level(isolation).with_topics(vec![ListOffsetsTopic::default(
            )
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-1)])]);
        let response = client.send(&request, 5).unwrap();
        let p = &response.topics[0].partitions[0];
        assert_eq!(p.error_code, 0);
        p.offset
    };
    (latest(0), latest(1))
}

#[test]
fn read_committed_sees_committed_transactions_only() {
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "txn", 1);
    let producer = txn_producer(&bootstrap, "basic", 60_000);

    producer.begin_transaction().unwrap();
    send(&producer, "txn", 0, labels("committed", 0..10));
    producer.commit_transaction(TIMEOUT).unwrap();

    producer.begin_transaction().unwrap();
    send(&producer, "txn", 0, labels("aborted", 0..10));
    producer.abort_transaction(TIMEOUT).unwrap();

    producer.begin_transaction().unwrap();
    send(&producer, "txn", 0, labels("open", 0..5));
    // 10 + marker + 10 + marker + 5 open: the last stable offset stays at the open transaction's start.
    assert_eq!(latest_offsets(&bootstrap, "txn"), (27, 22));
    assert_eq!(read_values(&bootstrap, "txn", 1, "read_committed"), labels("committed", 0..10));
    producer.commit_transaction(TIMEOUT).unwrap();
    assert_eq!(latest_offsets(&bootstrap, "txn"), (28, 28));

    let committed = [labels("committed", 0..10), labels("open", 0..5)].concat();
    assert_eq!(read_values(&bootstrap, "txn", 1, "read_committed"), committed);
    let everything = [labels("committed", 0..10), labels("aborted", 0..10), labels("open", 0..5)].concat();
    assert_eq!(read_values(&bootstrap, "txn", 1, "read_uncommitted"), everything);
}

#[test]
fn a_second_producer_fences_the_first_and_aborts_its_transaction() {
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "fence", 1);
    let first = txn_producer(&bootstrap, "zombie", 60_000);
    first.begin_transaction().unwrap();
    send(&first, "fence", 0, labels("zombie", 0..5));

    let second = txn_producer(&bootstrap, "zombie", 60_000);
    let err = first.commit_transaction(TIMEOUT).expect_err("the fenced producer cannot commit");
    let fenced = matches!(&err, KafkaError::Transaction(e) if e.is_fatal());
    assert!(fenced, "expected a fatal fencing error, got {err}");

    second.begin_transaction().unwrap();
    send(&second, "fence", 0, labels("second", 0..3));
    second.commit_transaction(TIMEOUT).unwrap();
    assert_eq!(read_values(&bootstrap, "fence", 1, "read_committed"), labels("second", 0..3));
}

#[test]
fn the_coordinator_aborts_a_transaction_past_its_timeout() {
    let (broker, clock, _config) = broker_on_test_clock("");
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "slow", 1);
    let producer = txn_producer(&bootstrap, "slow", 60_000);
    producer.begin_transaction().unwrap();
    send(&producer, "slow", 0, labels("late", 0..3));
    assert_eq!(latest_offsets(&bootstrap, "slow"), (3, 0), "open, within its timeout");
    advance_clock(&clock, Duration::from_secs(61));
    let deadline = Instant::now() + Duration::from_secs(10);
    while latest_offsets(&bootstrap, "slow").1 == 0 {
        assert!(Instant::now() < deadline, "the transaction was not aborted");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(latest_offsets(&bootstrap, "slow"), (4, 4), "aborted with a marker");
    assert!(producer.commit_transaction(TIMEOUT).is_err(), "the timed-out producer is fenced");
    assert!(read_values(&bootstrap, "slow", 1, "read_committed").is_empty());
}

/// InitProducerId for a transactional id over the raw protocol: (id, epoch).
fn init_raw(bootstrap: &str, transactional_id: &str) -> (i64, i16) {
    let mut client = client(bootstrap);
    // As clients do: find the coordinator first (which creates __transaction_state).
    let find =
        FindCoordinatorRequest::default().with_key_type(1).with_key(StrBytes::from_string(transactional_id.into()));
    assert_eq!(client.send(&find, 3).unwrap().error_code, 0);
    let request = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(StrBytes::from_string(transactional_id.into()))))
        .with_transaction_timeout_ms(60_000);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let response = client.send(&request, 4).unwrap();
        // COORDINATOR_NOT_AVAILABLE / CONCURRENT_TRANSACTIONS right after a start: retry.
        if response.error_code == 0 {
            return (response.producer_id.0, response.producer_epoch);
        }
        assert!(Instant::now() < deadline, "InitProducerId kept failing with {}", response.error_code);
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn transaction_state_survives_a_broker_sigkill() {
    let mut broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "durable", 1);
    let producer = txn_producer(&bootstrap, "durable", 60_000);
    producer.begin_transaction().unwrap();
    send(&producer, "durable", 0, labels("kept", 0..4));
    producer.commit_transaction(TIMEOUT).unwrap();
    producer.begin_transaction().unwrap();
    send(&producer, "durable", 0, labels("dropped", 0..4));
    producer.abort_transaction(TIMEOUT).unwrap();
    producer.begin_transaction().unwrap();
    send(&producer, "durable", 0, labels("open", 0..4));
    let (id, epoch) = init_raw(&bootstrap, "other");
    drop(producer);

    broker.kill();
    broker.restart();
    // The open transaction is still open after the restart: it holds the last stable offset.
    assert_eq!(latest_offsets(&bootstrap, "durable"), (14, 10));
    // Same producer id, next epoch: the state came back from __transaction_state.
    assert_eq!(init_raw(&bootstrap, "other"), (id, epoch + 1));
    // A new producer of "durable" aborts the open transaction.
    let _new = txn_producer(&bootstrap, "durable", 60_000);
    assert_eq!(latest_offsets(&bootstrap, "durable"), (15, 15));
    assert_eq!(read_values(&bootstrap, "durable", 1, "read_committed"), labels("kept", 0..4));
    assert_eq!(read_values(&bootstrap, "durable", 1, "read_uncommitted").len(), 12);
}

/// One run of a consume-transform-produce loop: reads `input` from the
/// group's committed offsets, writes each value with a suffix to `output`
/// and commits the input offsets in the same transaction, `batch` messages
/// per transaction. Stops in the middle of a transaction (without ending it)
/// once `crash.after` messages were processed, before or after the offsets
/// joined the transaction, or returns true when the input is exhausted.
/// `on_crash` runs at that point (to kill the broker too).
pub(crate) fn transform_run(bootstrap: &str, crash: Option<Crash>, batch: usize, on_crash: &mut dyn FnMut()) -> bool {
    let producer = txn_producer(bootstrap, "transformer", 60_000);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "transformers")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for p in 0..2 {
        assignment.add_partition_offset("input", p, Offset::Stored).unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut processed = 0;
    let mut eof = [false; 2];
    loop {
        let mut taken = Vec::new();
        let deadline = Instant::now() + TIMEOUT;
        while taken.len() < batch && !eof.iter().all(|e| *e) {
            assert!(Instant::now() < deadline, "input stalled");
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    eof[m.partition() as usize] = false;
                    let value = String::from_utf8(m.payload().unwrap().to_vec()).unwrap();
                    taken.push((m.partition(), m.offset(), value));
                }
                Some(Err(KafkaError::PartitionEOF(p))) => eof[p as usize] = true,
                Some(Err(e)) => panic!("consume: {e}"),
                None => {}
            }
        }
        if taken.is_empty() {
            return true;
        }
        producer.begin_transaction().unwrap();
        send(&producer, "output", 0, taken.iter().map(|(_, _, v)| format!("{v}-out")));
        processed += taken.len();
        let crashing = crash.filter(|c| processed >= c.after);
        if crashing.is_some_and(|c| !c.offsets_sent) {
            on_crash();
            return false; // dropped mid-transaction, like a killed process
        }
        let mut offsets = TopicPartitionList::new();
        let mut next: HashMap<i32, i64> = HashMap::new();
        for (p, offset, _) in &taken {
            next.insert(*p, offset + 1);
        }
        for (p, offset) in next {
            offsets.add_partition_offset("input", p, Offset::Offset(offset)).unwrap();
        }
        let group = consumer.group_metadata().unwrap();
        producer.send_offsets_to_transaction(&offsets, &group, TIMEOUT).unwrap();
        if crashing.is_some() {
            on_crash();
            return false;
        }
        producer.commit_transaction(TIMEOUT).unwrap();
    }
}

#[derive(Clone, Copy)]
pub(crate) struct Crash {
    pub after: usize,
    pub offsets_sent: bool,
}

/// Writes `total` values to `input`'s two partitions, then runs the
/// transform loop once per `crashes` (each processing that many messages and
/// dropped mid-transaction, alternately before and after its offsets joined).
pub(crate) fn write_input_and_crash_transforms(bootstrap: &str, total: u32, crashes: &[usize]) {
    let plain: BaseProducer = ClientConfig::new().set("bootstrap.servers", bootstrap).create().unwrap();
    for p in 0..2 {
        send(&plain, "input", p, (0..total).filter(|i| i % 2 == p as u32).map(|i| format!("in-{i}")));
    }
    for (run, &after) in crashes.iter().enumerate() {
        let crash = Crash { after, offsets_sent: run % 2 == 1 };
        assert!(!transform_run(bootstrap, Some(crash), 7 + run, &mut || {}), "run {run} ended early");
    }
}

/// Runs the transform loop to the end of the input, then checks that
/// `output` holds each of the `total` outputs exactly once (read_committed).
pub(crate) fn finish_transform_and_check_outputs(bootstrap: &str, total: u32) {
    assert!(transform_run(bootstrap, None, 25, &mut || {}), "the last run reads the input to its end");
    let mut outputs = read_values(bootstrap, "output", 1, "read_committed");
    outputs.sort();
    let mut expected: Vec<String> = (0..total).map(|i| format!("in-{i}-out")).collect();
    expected.sort();
    assert_eq!(outputs.len(), expected.len(), "each output exactly once");
    assert_eq!(outputs, expected);
}

#[test]
fn consume_transform_produce_killed_and_restarted_yields_each_output_once() {
    let mut broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "input", 2);
    create_topic(&bootstrap, "output", 1);
    let total = 400u32;
    write_input_and_crash_transforms(&bootstrap, total, &[35, 60, 17, 80, 41, 23]);
    let mut kill_broker = || {
        broker.kill();
        broker.restart();
    };
    let crash = Crash { after: 50, offsets_sent: true };
    assert!(!transform_run(&bootstrap, Some(crash), 10, &mut kill_broker));
    finish_transform_and_check_outputs(&bootstrap, total);
    // The aborted attempts are in the log, seen by read_uncommitted readers.
    assert!(read_values(&bootstrap, "output", 1, "read_uncommitted").len() > total as usize);
}

fn weir(args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_weir")).args(args).output().expect("run weir");
    assert!(output.status.success(), "weir {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn operators_see_transactions_and_producers() {
    let broker = Broker::start(&[]);
    let b = broker.bootstrap();
    create_topic(&b, "watched", 1);
    let producer = txn_producer(&b, "watched-tx", 45_000);
    producer.begin_transaction().unwrap();
    send(&producer, "watched", 0, labels("x", 0..3));

    let listed = weir(&["transactions", "list", "-b", &b]);
    let line = listed.lines().find(|l| l.starts_with("watched-tx")).unwrap_or_else(|| panic!("{listed}"));
    assert!(line.ends_with("Ongoing"), "{listed}");
    let described = weir(&["transactions", "describe", "watched-tx", "-b", &b]);
    assert!(described.contains("state Ongoing") && described.contains("timeout 45000 ms"), "{described}");
    assert!(described.contains("watched  partitions 0"), "{described}");
    let active = describe_producers(&b, "watched");
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].3, 0, "the open transaction starts at offset 0");

    producer.commit_transaction(TIMEOUT).unwrap();
    let listed = weir(&["transactions", "list", "--state", "CompleteCommit", "-b", &b]);
    assert!(listed.lines().any(|l| l.starts_with("watched-tx")), "{listed}");
    assert!(!weir(&["transactions", "list", "--state", "Ongoing", "-b", &b]).contains("watched-tx"));
    assert_eq!(describe_producers(&b, "watched")[0].3, -1, "no open transaction");
}

/// One transactional batch of `count` records from `producer` starting at sequence `first_seq`.
fn txn_batch(producer: (i64, i16), first_seq: i32, count: usize) -> bytes::Bytes {
    producer_batch(producer, first_seq, count, true, 1)
}

#[test]
fn transactional_batches_need_their_partition_added_to_an_ongoing_transaction() {
    use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    use kafka_protocol::messages::txn_offset_commit_request::{
        TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::{
        AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, EndTxnRequest, GroupId, OffsetFetchRequest, ProducerId,
        TxnOffsetCommitRequest,
    };
    const INVALID_TXN_STATE: i16 = 48;
    const UNSTABLE_OFFSET_COMMIT: i16 = 88;
    const PRODUCER_FENCED: i16 = 90;
    const INVALID_PRODUCER_EPOCH: i16 = 47;

    let broker = Broker::start(&[]);
    let b = broker.bootstrap();
    create_topic(&b, "guarded", 1);
    let producer = init_raw(&b, "guard");
    let txn_id = || TransactionalId(StrBytes::from_static_str("guard"));
    let mut c = client(&b);
    let mut produce = |records: bytes::Bytes| produce_batch(&mut c, "guarded", Some("guard"), records).0;
    assert_eq!(produce(txn_batch(producer, 0, 2)), INVALID_TXN_STATE, "the partition was not added");

    let mut c2 = client(&b);
    let add = |c: &mut weir_client::Client, epoch: i16, version: i16| {
        let request = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(txn_id())
            .with_v3_and_below_producer_id(ProducerId(producer.0))
            .with_v3_and_below_producer_epoch(epoch)
            .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("guarded")))
                .with_partitions(vec![0])]);
        c.send(&request, version).unwrap().results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
    };
    assert_eq!(add(&mut c2, producer.1 - 1, 3), PRODUCER_FENCED, "an older epoch");
    assert_eq!(add(&mut c2, producer.1 - 1, 1), INVALID_PRODUCER_EPOCH, "before v2 there was no PRODUCER_FENCED");
    assert_eq!(add(&mut c2, producer.1, 3), 0);
    assert_eq!(produce(txn_batch(producer, 0, 2)), 0);
    assert_eq!(produce(txn_batch(producer, 2, 2)), 0);

    // Offsets in the transaction: pending (KIP-447's require_stable sees them) until it commits.
    let add_offsets = AddOffsetsToTxnRequest::default()
        .with_transactional_id(txn_id())
        .with_producer_id(ProducerId(producer.0))
        .with_producer_epoch(producer.1)
        .with_group_id(GroupId(StrBytes::from_static_str("guard-group")));
    assert_eq!(c2.send(&add_offsets, 3).unwrap().error_code, 0);
    let commit_offset = TxnOffsetCommitRequest::default()
        .with_transactional_id(txn_id())
        .with_group_id(GroupId(StrBytes::from_static_str("guard-group")))
        .with_producer_id(ProducerId(producer.0))
        .with_producer_epoch(producer.1)
        .with_generation_id(-1)
        .with_topics(vec![TxnOffsetCommitRequestTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("guarded")))
            .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(2)])]);
    assert_eq!(c2.send(&commit_offset, 3).unwrap().topics[0].partitions[0].error_code, 0);
    let fetch_offset = |c: &mut weir_client::Client, require_stable: bool| {
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("guard-group")))
            .with_require_stable(require_stable)
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("guarded")))
                .with_partition_indexes(vec![0])]));
        let response = c.send(&request, 7).unwrap();
        let p = &response.topics[0].partitions[0];
        (p.error_code, p.committed_offset)
    };
    assert_eq!(fetch_offset(&mut c2, true), (UNSTABLE_OFFSET_COMMIT, -1));
    assert_eq!(fetch_offset(&mut c2, false), (0, -1), "not committed yet");

    let end = EndTxnRequest::default()
        .with_transactional_id(txn_id())
        .with_producer_id(ProducerId(producer.0))
        .with_producer_epoch(producer.1)
        .with_committed(true);
    assert_eq!(c2.send(&end, 3).unwrap().error_code, 0);
    assert_eq!(c2.send(&end, 3).unwrap().error_code, 0, "a retried EndTxn is answered the same");
    assert_eq!(fetch_offset(&mut c2, true), (0, 2), "committed with the transaction");
    assert_eq!(produce(txn_batch(producer, 4, 2)), INVALID_TXN_STATE, "the transaction has ended");
    assert_eq!(latest_offsets(&b, "guarded"), (5, 5), "4 records and the commit marker");
}

/// Whether `weir transactions list` shows `transactional_id`, asked again
/// for a while if the broker cannot be reached: right after a restart the old
/// broker's socket may reset connections, or the new one not listen yet.
fn listed(bootstrap: &str, transactional_id: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    let output = loop {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["transactions", "list", "-b", bootstrap])
            .output()
            .expect("run weir");
        if output.status.success() || Instant::now() > deadline {
            break output;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(output.status.success(), "weir transactions list: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().lines().any(|l| l.split_whitespace().next() == Some(transactional_id))
}

#[test]
fn idle_transactional_ids_expire_and_stay_forgotten_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("weir.toml");
    let settings = "transactional_id_expiration_ms = 1000\n\
                    transaction_remove_expired_transaction_cleanup_interval_ms = 100\n";
    std::fs::write(&config, settings).unwrap();
    let mut broker = Broker::start(&["--config", config.to_str().unwrap()]);
    let b = broker.bootstrap();
    create_topic(&b, "expiry", 1);
    let done = txn_producer(&b, "done-tx", 60_000);
    done.begin_transaction().unwrap();
    send(&done, "expiry", 0, labels("done", 0..2));
    done.commit_transaction(TIMEOUT).unwrap();
    let open = txn_producer(&b, "open-tx", 60_000);
    open.begin_transaction().unwrap();
    send(&open, "expiry", 0, labels("open", 0..2));
    assert!(listed(&b, "done-tx") && listed(&b, "open-tx"));

    let deadline = Instant::now() + Duration::from_secs(20);
    while listed(&b, "done-tx") {
        assert!(Instant::now() < deadline, "the idle transactional id was not forgotten");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(listed(&b, "open-tx"), "an id with a transaction in progress stays");

    broker.kill();
    broker.restart();
    assert!(listed(&b, "open-tx"), "the coordinator's state is back");
    assert!(!listed(&b, "done-tx"), "the tombstone keeps it forgotten");
}

#[test]
fn the_commit_marker_wakes_a_read_committed_long_poll() {
    let broker = Broker::start(&[]);
    let b = broker.bootstrap();
    create_topic(&b, "prompt", 1);
    let producer = txn_producer(&b, "prompt-tx", 60_000);
    producer.begin_transaction().unwrap();
    send(&producer, "prompt", 0, labels("p", 0..3));
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &b)
        .set("group.id", "prompt")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "20000")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset("prompt", 0, Offset::Beginning).unwrap();
    consumer.assign(&assignment).unwrap();
    // Its fetch now waits at the broker: the records are written but not stable.
    assert!(consumer.poll(Duration::from_secs(1)).is_none());

    producer.commit_transaction(TIMEOUT).unwrap();
    let committed = Instant::now();
    let mut values = Vec::new();
    while values.len() < 3 {
        assert!(committed.elapsed() < TIMEOUT, "nothing read after the commit");
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            values.push(String::from_utf8(m.unwrap().payload().unwrap().to_vec()).unwrap());
        }
    }
    assert_eq!(values, labels("p", 0..3));
    // Without the wake-up the fetch would end at fetch.wait.max.ms.
    assert!(committed.elapsed() < Duration::from_secs(10), "read {:?} after the commit", committed.elapsed());
}

#[test]
fn the_inter_broker_transaction_apis_verify_partitions_and_fence_older_coordinators() {
    use kafka_protocol::messages::add_partitions_to_txn_request::{
        AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
    };
    use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
    use kafka_protocol::messages::{AddPartitionsToTxnRequest, ProducerId, WriteTxnMarkersRequest};
    const INVALID_TXN_STATE: i16 = 48;
    const TRANSACTION_COORDINATOR_FENCED: i16 = 52;
    const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

    let mut broker = Broker::start(&[]);
    let b = broker.bootstrap();
    create_topic(&b, "fenced", 1);
    let producer = init_raw(&b, "verified");
    let topic = |name: &'static str| {
        AddPartitionsToTxnTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(name)))
            .with_partitions(vec![0])
    };
    // v4, the brokers' batched form: verify only, then add, then verify.
    let batched = |verify_only: bool| {
        let transaction = AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(StrBytes::from_static_str("verified")))
            .with_producer_id(ProducerId(producer.0))
            .with_producer_epoch(producer.1)
            .with_verify_only(verify_only)
            .with_topics(vec![topic("fenced")]);
        let request = AddPartitionsToTxnRequest::default().with_transactions(vec![transaction]);
        let response = client(&b).send(&request, 4).unwrap();
        assert_eq!(response.error_code, 0);
        response.results_by_transaction[0].topic_results[0].results_by_partition[0].partition_error_code
    };
    assert_eq!(batched(true), INVALID_TXN_STATE, "not in the transaction: a batch would be refused");
    assert_eq!(batched(false), 0, "added");
    assert_eq!(batched(true), 0, "verified");

    // WriteTxnMarkers as another broker's coordinator sends it.
    let marker = |topic: &'static str, coordinator_epoch: i32| {
        let marker = WritableTxnMarker::default()
            .with_producer_id(ProducerId(4242))
            .with_producer_epoch(0)
            .with_transaction_result(false)
            .with_coordinator_epoch(coordinator_epoch)
            .with_topics(vec![WritableTxnMarkerTopic::default()
                .with_name(TopicName(StrBytes::from_static_str(topic)))
                .with_partition_indexes(vec![0])]);
        let response = client(&b).send(&WriteTxnMarkersRequest::default().with_markers(vec![marker]), 1).unwrap();
        response.markers[0].topics[0].partitions[0].error_code
    };
    assert_eq!(marker("fenced", 5), 0);
    assert_eq!(marker("fenced", 4), TRANSACTION_COORDINATOR_FENCED, "an older coordinator");
    assert_eq!(marker("nowhere", 5), UNKNOWN_TOPIC_OR_PARTITION);
    // The coordinator epoch survives a clean stop (producer snapshot) and a
    // SIGKILL (replayed from the markers in the log).
    broker.stop();
    broker.restart();
    assert_eq!(marker("fenced", 4), TRANSACTION_COORDINATOR_FENCED, "after a clean restart");
    assert_eq!(marker("fenced", 6), 0);
    broker.kill();
    broker.restart();
    assert_eq!(marker("fenced", 5), TRANSACTION_COORDINATOR_FENCED, "after a SIGKILL");
    assert_eq!(latest_offsets(&b, "fenced"), (2, 2), "two markers, no open transaction");
}
