//! librdkafka (through the rdkafka crate) against a real `weir` process.

mod common;

use common::*;
use rdkafka::producer::Producer;

const MESSAGES: u64 = 100_000;
const PARTITIONS: i32 = 3;

#[test]
fn keyed_messages_round_trip_before_and_after_a_clean_restart() {
    let mut broker = Broker::start(&[]);
    let topic = "clicks";
    create_topic(&broker.bootstrap(), topic, PARTITIONS);

    let producer = producer(&broker.bootstrap(), "all");
    produce_range(&producer, topic, 0..MESSAGES);
    assert!(
        producer.context().failed.lock().unwrap().is_empty(),
        "delivery failures: {:?}",
        &producer.context().failed.lock().unwrap()[..5.min(producer.context().failed.lock().unwrap().len())]
    );
    let acked = producer.context().acked.lock().unwrap().clone();
    drop(producer);

    let consumed = consume_all(&broker.bootstrap(), topic, PARTITIONS);
    let placed = check_consumed(&consumed, MESSAGES, PARTITIONS);
    assert_eq!(placed, acked, "consumed offsets differ from acknowledged ones");

    broker.stop();
    broker.restart();
    let consumed = consume_all(&broker.bootstrap(), topic, PARTITIONS);
    assert_eq!(check_consumed(&consumed, MESSAGES, PARTITIONS), acked, "offsets changed across a restart");

    // The log keeps accepting writes after the restart, at the next offsets.
    let producer = common::producer(&broker.bootstrap(), "1");
    produce_range(&producer, topic, MESSAGES..MESSAGES + 1000);
    let consumed = consume_all(&broker.bootstrap(), topic, PARTITIONS);
    check_consumed(&consumed, MESSAGES + 1000, PARTITIONS);
}

#[test]
fn acks_zero_and_auto_created_topics_work() {
    let broker = Broker::start(&["--default-partitions", "2"]);
    let producer = producer(&broker.bootstrap(), "0");
    produce_range(&producer, "auto-created", 0..2000);
    drop(producer);
    // acks=0 has no answer to wait for; the messages are still all stored.
    let start = std::time::Instant::now();
    loop {
        let consumed = consume_all(&broker.bootstrap(), "auto-created", 2);
        if consumed.len() == 2000 || start.elapsed() > std::time::Duration::from_secs(10) {
            check_consumed(&consumed, 2000, 2);
            break;
        }
    }
}

#[test]
fn a_waiting_consumer_gets_a_new_message_immediately() {
    use rdkafka::consumer::Consumer;
    use rdkafka::Message;
    use std::time::{Duration, Instant};
    let broker = Broker::start(&[]);
    create_topic(&broker.bootstrap(), "live", 1);
    let consumer = common::consumer(&broker.bootstrap());
    consumer
        .assign(&{
            let mut tpl = rdkafka::TopicPartitionList::new();
            tpl.add_partition_offset("live", 0, rdkafka::Offset::End).unwrap();
            tpl
        })
        .unwrap();
    // Let the consumer settle into its long poll at the end of the log.
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        consumer.poll(Duration::from_millis(100));
    }
    let producer = common::producer(&broker.bootstrap(), "1");
    produce_range(&producer, "live", 0..1);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "the new message never arrived");
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                assert_eq!(m.payload().unwrap(), test_message(0).value.as_slice());
                break;
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) | None => {}
            Some(Err(e)) => panic!("{e}"),
        }
    }
}
