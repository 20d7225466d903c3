//! A full data directory: producers get KAFKA_STORAGE_ERROR (not an error
//! they retry forever), consumers keep reading, nothing stored is damaged,
//! the broker keeps running, and writes resume once space is freed. The data
//! directory is a 4 MiB tmpfs mounted for the test (needs root; skipped with
//! a message otherwise).

mod common;

use common::*;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOPIC: &str = "full";

/// A tmpfs of `size` mounted on `path`; unmounted (lazily) on drop.
struct SmallFs {
    path: PathBuf,
}

impl SmallFs {
    fn mount(path: &Path, size: &str) -> Option<SmallFs> {
        std::fs::create_dir_all(path).expect("mount point");
        let status =
            Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(path).status();
        match status {
            Ok(s) if s.success() => Some(SmallFs { path: path.to_path_buf() }),
            other => {
                eprintln!("SKIPPED: cannot mount a tmpfs ({other:?}); the full-disk test needs root");
                None
            }
        }
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

struct ServeProcess(Child);

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(data_dir: &Path, port: u16, log: &Path) -> ServeProcess {
    let log = std::fs::File::create(log).expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("serve")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--shards", "2"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start weir");
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(30), "broker did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    ServeProcess(child)
}

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
    let port = free_port();
    let bootstrap = format!("127.0.0.1:{port}");
    let log = dir.path().join("broker.log");
    let mut broker = serve(&data_dir, port, &log);
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
        assert_eq!(error, &expected, "a full disk is KAFKA_STORAGE_ERROR\n{}", std::fs::read_to_string(&log).unwrap());
    }
    assert!(broker.0.try_wait().expect("try_wait").is_none(), "the broker keeps running");
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
    let _ = broker.0.kill();
    let _ = broker.0.wait();
    drop(fs);
}
