//! librdkafka (through the rdkafka crate) against a real `weir` process.

use crate::common;

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
    let consumer = consumer(&broker.bootstrap());
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
    let producer = producer(&broker.bootstrap(), "1");
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

/// librdkafka's all-topics Metadata (what `fetch_metadata(None, ..)`, `kcat -L`
/// and every regex subscription send) lists every topic, and a consumer
/// subscribed to a regex reads the topics that match and only those. Weir
/// once closed the connection on that request (bytes after the body), and a
/// regex subscription then silently read nothing.
#[test]
fn all_topics_metadata_and_a_regex_subscription() {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message;
    use std::collections::HashSet;
    use std::time::{Duration, Instant};
    let broker = Broker::start(&[]);
    let topics = ["regex-a", "regex-b", "other"];
    let producer = producer(&broker.bootstrap(), "all");
    for topic in topics {
        create_topic(&broker.bootstrap(), topic, 2);
        produce_range(&producer, topic, 0..100);
    }
    assert!(producer.context().failed.lock().unwrap().is_empty());
    drop(producer);

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "regex")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    let metadata = consumer.fetch_metadata(None, Duration::from_secs(10)).expect("all-topics metadata");
    for topic in topics {
        let t = metadata.topics().iter().find(|t| t.name() == topic);
        let t = t.unwrap_or_else(|| panic!("all-topics metadata lacks {topic}"));
        assert!(t.error().is_none(), "{topic}: {:?}", t.error());
        assert_eq!(t.partitions().len(), 2, "partitions of {topic}");
    }
    assert_eq!(metadata.brokers().len(), 1);

    consumer.subscribe(&["^regex-.*"]).expect("subscribe");
    let mut seen = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 200 {
        assert!(Instant::now() < deadline, "the regex subscription read {} of 200 messages", seen.len());
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                assert!(m.topic().starts_with("regex-"), "read {} through ^regex-.*", m.topic());
                assert!(seen.insert((m.topic().to_string(), m.partition(), m.offset())), "read twice");
            }
            Some(Err(e)) => panic!("{e}"),
            None => {}
        }
    }
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            panic!("a message past the 200: {:?}", m.map(|m| (m.topic().to_string(), m.offset())));
        }
    }
}
