//! Idempotent producers: retried batches are stored once, gaps and stale
//! epochs are refused, producer ids are never reused.

use crate::common;

use common::*;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir_client::Client;

const CORRUPT_MESSAGE: i16 = 2;
const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;

fn batch(id: i64, epoch: i16, first_seq: i32, count: usize) -> bytes::Bytes {
    producer_batch((id, epoch), first_seq, count, false, 1)
}

fn produce(client: &mut Client, records: bytes::Bytes) -> (i16, i64) {
    produce_batch(client, "idem", None, records)
}

#[test]
fn sequences_deduplicate_and_fence() {
    let mut broker = Broker::start(&[]);
    create_topic(&broker.bootstrap(), "idem", 1);
    let mut client = client(&broker.bootstrap());
    let (id, epoch) = init_producer_id(&mut client);
    let (other, _) = init_producer_id(&mut client);
    assert_ne!(id, other, "producer ids are unique");

    assert_eq!(produce(&mut client, batch(id, epoch, 0, 3)), (0, 0));
    assert_eq!(produce(&mut client, batch(id, epoch, 3, 2)), (0, 3));
    assert_eq!(produce(&mut client, batch(id, epoch, 0, 3)), (0, 0), "a retry gets its first offsets back");
    assert_eq!(produce(&mut client, batch(id, epoch, 3, 2)), (0, 3));
    assert_eq!(produce(&mut client, batch(id, epoch, 9, 1)).0, OUT_OF_ORDER_SEQUENCE_NUMBER);
    let mut corrupt_gap = batch(id, epoch, 9, 1).to_vec();
    *corrupt_gap.last_mut().unwrap() ^= 0xff;
    let corrupt_gap = bytes::Bytes::from(corrupt_gap);
    assert_eq!(produce(&mut client, corrupt_gap).0, CORRUPT_MESSAGE, "the bytes are checked before the sequence");
    assert_eq!(produce(&mut client, batch(other, 0, 4, 1)), (0, 5), "no state yet: any sequence (as Kafka 2.5+)");
    assert_eq!(produce(&mut client, batch(id, epoch + 1, 0, 1)), (0, 6), "a new epoch starts again at 0");
    assert_eq!(produce(&mut client, batch(id, epoch, 5, 1)).0, INVALID_PRODUCER_EPOCH);
    assert_eq!(produce(&mut client, batch(-1, -1, -1, 2)), (0, 7), "plain batches are untouched");

    // The state is rebuilt from the log after a crash: the retry is still a duplicate.
    broker.kill();
    broker.restart();
    let mut client = common::client(&broker.bootstrap());
    assert_eq!(produce(&mut client, batch(id, epoch + 1, 0, 1)), (0, 6));
    assert_eq!(produce(&mut client, batch(id, epoch + 1, 1, 1)), (0, 9));
    let (after_restart, _) = init_producer_id(&mut client);
    assert!(after_restart > other, "ids are not reused after a restart");
}

#[test]
fn an_idempotent_librdkafka_producer_writes_each_message_once_across_a_broker_sigkill() {
    let mut broker = Broker::start(&[]);
    let topic = "exactly-once";
    create_topic(&broker.bootstrap(), topic, 3);
    let (producing, acked) = produce_idempotently(broker.bootstrap(), topic, 30_000);
    while acked.load(Ordering::SeqCst) < 8_000 {
        std::thread::sleep(Duration::from_millis(5));
    }
    broker.kill();
    broker.restart();
    check_exactly_once(&broker.bootstrap(), topic, 3, 30_000, producing.join().unwrap());
}

#[test]
fn produce_answers_lost_after_the_write_are_retried_without_duplicates() {
    // Clients reach the broker only through a proxy that cuts the connection
    // instead of passing on every 5th Produce answer: the batch is written,
    // the producer never hears of it and retries.
    let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
    let advertised = proxy.local_addr().unwrap();
    let broker = Broker::start(&["--advertise", &advertised.to_string()]);
    let cuts = Arc::new(AtomicUsize::new(0));
    let broker_addr: SocketAddr = broker.bootstrap().parse().unwrap();
    std::thread::spawn({
        let cuts = cuts.clone();
        move || cut_produce_answers(proxy, broker_addr, 5, &cuts)
    });
    let topic = "answers-lost";
    create_topic(&broker.bootstrap(), topic, 3);
    let (producing, _) = produce_idempotently(advertised.to_string(), topic, 20_000);
    let result = producing.join().unwrap();
    assert!(cuts.load(Ordering::SeqCst) >= 3, "too few answers were cut to prove anything");
    check_exactly_once(&advertised.to_string(), topic, 3, 20_000, result);
}

/// Proxies each client connection to `broker`, except that every `every`-th
/// Produce answer (over all connections) is dropped along with the connection.
fn cut_produce_answers(proxy: TcpListener, broker: SocketAddr, every: usize, cuts: &AtomicUsize) {
    let answers = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|scope| {
        for client in proxy.incoming() {
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(broker) else { continue };
            let produce_ids = Arc::new(Mutex::new(HashSet::new()));
            let (to_server, from_client) = (server.try_clone().unwrap(), client.try_clone().unwrap());
            let ids = produce_ids.clone();
            scope.spawn(move || {
                // Requests pass as they are; Produce correlation ids are noted.
                forward_frames(from_client, to_server, |frame| {
                    if frame.len() >= 8 && i16::from_be_bytes([frame[0], frame[1]]) == 0 {
                        ids.lock().unwrap().insert(i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]));
                    }
                    true
                })
            });
            let answers = answers.clone();
            scope.spawn(move || {
                forward_frames(server, client, |frame| {
                    let id = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
                    let is_produce = produce_ids.lock().unwrap().remove(&id);
                    let cut = is_produce && answers.fetch_add(1, Ordering::SeqCst) % every == every - 1;
                    if cut {
                        cuts.fetch_add(1, Ordering::SeqCst);
                    }
                    !cut
                })
            });
        }
    });
}

/// Copies size-prefixed frames from `from` to `to` while `pass(frame)` says
/// so; then shuts both connections down.
fn forward_frames(mut from: TcpStream, mut to: TcpStream, mut pass: impl FnMut(&[u8]) -> bool) {
    let mut size = [0u8; 4];
    while from.read_exact(&mut size).is_ok() {
        let mut frame = vec![0u8; i32::from_be_bytes(size).max(0) as usize];
        if from.read_exact(&mut frame).is_err() || !pass(&frame) {
            break;
        }
        if to.write_all(&size).and_then(|_| to.write_all(&frame)).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
