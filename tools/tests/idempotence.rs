//! Idempotent producers: retried batches are stored once, gaps and stale
//! epochs are refused, producer ids are never reused.

mod common;

use bytes::BytesMut;
use common::*;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{InitProducerIdRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;
use weir_net::client::Client;
use weir_net::records::plain_record;

const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const UNKNOWN_PRODUCER_ID: i16 = 59;

fn init_producer_id(client: &mut Client) -> (i64, i16) {
    let request = InitProducerIdRequest::default().with_transactional_id(None).with_transaction_timeout_ms(60_000);
    let response = client.send(&request, 4).unwrap();
    assert_eq!(response.error_code, 0);
    (response.producer_id.0, response.producer_epoch)
}

/// One batch of `count` records from producer `id`/`epoch` starting at `first_seq`.
fn batch(id: i64, epoch: i16, first_seq: i32, count: usize) -> bytes::Bytes {
    let records: Vec<Record> = (0..count)
        .map(|i| {
            let mut r = plain_record(i, 1, None, Some(bytes::Bytes::from(format!("{id}-{}", first_seq + i as i32))));
            r.producer_id = id;
            r.producer_epoch = epoch;
            r.sequence = first_seq + i as i32;
            r
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression: Compression::None })
        .unwrap();
    buf.freeze()
}

fn produce(client: &mut Client, records: bytes::Bytes) -> (i16, i64) {
    let request =
        ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("idem")))
                .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(records))])]);
    let response = client.send(&request, 9).unwrap();
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

#[test]
fn sequences_deduplicate_and_fence() {
    let mut broker = Broker::start(&[]);
    create_topic(&broker.bootstrap(), "idem", 1);
    let mut client = common::client(&broker.bootstrap());
    let (id, epoch) = init_producer_id(&mut client);
    let (other, _) = init_producer_id(&mut client);
    assert_ne!(id, other, "producer ids are unique");

    assert_eq!(produce(&mut client, batch(id, epoch, 0, 3)), (0, 0));
    assert_eq!(produce(&mut client, batch(id, epoch, 3, 2)), (0, 3));
    assert_eq!(produce(&mut client, batch(id, epoch, 0, 3)), (0, 0), "a retry gets its first offsets back");
    assert_eq!(produce(&mut client, batch(id, epoch, 3, 2)), (0, 3));
    assert_eq!(produce(&mut client, batch(id, epoch, 9, 1)).0, OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_eq!(produce(&mut client, batch(other, 0, 4, 1)).0, UNKNOWN_PRODUCER_ID);
    assert_eq!(produce(&mut client, batch(id, epoch + 1, 0, 1)), (0, 5), "a new epoch starts again at 0");
    assert_eq!(produce(&mut client, batch(id, epoch, 5, 1)).0, INVALID_PRODUCER_EPOCH);
    assert_eq!(produce(&mut client, batch(-1, -1, -1, 2)), (0, 6), "plain batches are untouched");

    // The state is rebuilt from the log after a crash: the retry is still a duplicate.
    broker.kill();
    broker.restart();
    let mut client = common::client(&broker.bootstrap());
    assert_eq!(produce(&mut client, batch(id, epoch + 1, 0, 1)), (0, 5));
    assert_eq!(produce(&mut client, batch(id, epoch + 1, 1, 1)), (0, 8));
    let (after_restart, _) = init_producer_id(&mut client);
    assert!(after_restart > other, "ids are not reused after a restart");
}

#[test]
fn an_idempotent_librdkafka_producer_writes_each_message_once_across_a_broker_sigkill() {
    let mut broker = Broker::start(&[]);
    let topic = "exactly-once";
    create_topic(&broker.bootstrap(), topic, 3);
    let context = Acks::default();
    let acked = context.acked_count.clone();
    let bootstrap = broker.bootstrap();
    let producing = std::thread::spawn(move || {
        let producer: BaseProducer<Acks> = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "120000")
            .set("reconnect.backoff.ms", "50")
            .create_with_context(context)
            .expect("producer");
        produce_range(&producer, topic, 0..30_000);
        let failed = producer.context().failed.lock().unwrap().clone();
        let acked = producer.context().acked.lock().unwrap().clone();
        (acked, failed)
    });
    while acked.load(Ordering::SeqCst) < 8_000 {
        std::thread::sleep(Duration::from_millis(5));
    }
    broker.kill();
    broker.restart();
    let (acked, failed) = producing.join().unwrap();
    assert!(failed.is_empty(), "delivery failures: {:?}", &failed[..failed.len().min(5)]);
    assert_eq!(acked.len(), 30_000);
    // Each message exactly once, at the offset it was acknowledged with, in order per key.
    let consumed = consume_all(&broker.bootstrap(), topic, 3);
    let placed: HashMap<u64, (i32, i64)> = check_consumed(&consumed, 30_000, 3);
    assert_eq!(placed, acked);
}
