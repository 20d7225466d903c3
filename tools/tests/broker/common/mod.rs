//! A real `weir` broker process for integration tests, and the message set
//! they produce and check.

pub mod groups;

use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The broker binary the tests start: this build's `weir`, or the one
/// `WEIR_TEST_BROKER` names (say, a build with a sanitizer).
pub fn broker_binary() -> std::ffi::OsString {
    std::env::var_os("WEIR_TEST_BROKER").unwrap_or_else(|| env!("CARGO_BIN_EXE_weir").into())
}

/// A broker child process with its own data directory, on a port it bound
/// itself (`--listen 127.0.0.1:0`), read from the address it reports.
pub struct Broker {
    child: Option<Child>,
    /// The port it listens on (0 until the first start has reported it):
    /// its first listener's.
    pub port: u16,
    /// Every listener's address, in the order of `--listeners`.
    pub addresses: Vec<std::net::SocketAddr>,
    pub data_dir: PathBuf,
    extra_args: Vec<String>,
    _dir: Option<tempfile::TempDir>,
}

impl Broker {
    pub fn start(extra_args: &[&str]) -> Broker {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut broker = Broker::start_in(dir.path().join("data"), extra_args);
        broker._dir = Some(dir);
        broker
    }

    /// A broker with its data in `data_dir` (its log beside it, in `<data_dir>.log`).
    pub fn start_in(data_dir: PathBuf, extra_args: &[&str]) -> Broker {
        let mut broker = Broker::launch_in(data_dir, extra_args);
        broker.wait_listening();
        broker
    }

    /// Starts a broker without waiting for it to listen (a voter of a
    /// metadata quorum listens once a quorum of voters runs); see
    /// [`wait_listening`](Self::wait_listening).
    pub fn launch_in(data_dir: PathBuf, extra_args: &[&str]) -> Broker {
        let mut broker = Broker {
            child: None,
            port: 0,
            addresses: Vec::new(),
            data_dir,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            _dir: None,
        };
        broker.launch();
        broker
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the broker on `self.port` (0: any free port) and waits until
    /// every shard listens.
    fn spawn(&mut self) {
        self.launch();
        self.wait_listening();
    }

    /// Starts the broker on `self.port` (0: any free port).
    fn launch(&mut self) {
        let _ = std::fs::remove_file(self.data_dir.join("listen.addr")); // a previous run's
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.with_extension("log"))
            .expect("broker log file");
        let child = Command::new(broker_binary())
            .arg("serve")
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--shards", "2"])
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start weir");
        self.child = Some(child);
    }

    /// Waits until every shard listens, as the address file the broker
    /// writes then says.
    pub fn wait_listening(&mut self) {
        let address_file = self.data_dir.join("listen.addr");
        let start = Instant::now();
        let reported = loop {
            if let Ok(address) = std::fs::read_to_string(&address_file) {
                break address;
            }
            assert!(self.is_running(), "broker exited at start; its log:\n{}", self.log());
            let waited = start.elapsed();
            assert!(waited < Duration::from_secs(30), "broker did not listen within 30 s; its log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        };
        self.addresses = reported.lines().map(|line| line.parse().expect("listen.addr holds addresses")).collect();
        let address = self.addresses[0];
        assert!(self.port == 0 || self.port == address.port(), "restarted on another port: {address}");
        self.port = address.port();
    }

    /// The broker's log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.with_extension("log")).unwrap_or_default()
    }

    /// SIGKILL: no chance to flush or close anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill broker");
            child.wait().expect("reap broker");
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        if self.child.is_some() {
            self.terminate();
            let status = self.wait_exit(Duration::from_secs(30));
            assert!(status.success(), "broker exited with {status} after SIGTERM\n{}", self.log());
        }
    }

    /// SIGTERM, without waiting for the broker to exit.
    pub fn terminate(&self) {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid() as i32, libc::SIGTERM) };
    }

    /// Waits up to `timeout` for the broker to exit; returns its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("broker running");
        wait_with_timeout(&mut child, timeout)
    }

    /// SIGTERM then SIGINT at once (the second stop signal forces an exit;
    /// two different signals cannot merge into one pending signal); returns
    /// the exit status.
    pub fn signal_twice(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("broker running");
        for signal in [libc::SIGTERM, libc::SIGINT] {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as i32, signal) };
        }
        wait_with_timeout(&mut child, Duration::from_secs(30))
    }

    /// Starts again on the same port and data directory, without waiting
    /// for it to listen.
    pub fn relaunch(&mut self) {
        assert!(self.child.is_none(), "stop or kill the broker first");
        self.launch();
    }

    /// Starts again on the same port and data directory.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or kill the broker first");
        self.spawn();
    }

    /// Starts again on the same data directory and a fresh port (one the
    /// broker binds itself).
    pub fn restart_on_a_new_port(&mut self) {
        assert!(self.child.is_none(), "stop or kill the broker first");
        self.port = 0;
        self.spawn();
    }

    /// The broker's process id (it must be running).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("broker running").id()
    }

    /// The broker's resident memory now (`VmRSS`), in bytes.
    pub fn rss_bytes(&self) -> u64 {
        weir_bench::crowd::rss_bytes(self.pid()).expect("broker VmRSS")
    }

    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().expect("try_wait").is_none())
    }
}

impl Drop for Broker {
    /// When the test failed, says how the broker was doing (still running
    /// or dead, and its log) and keeps its data directory to look at.
    fn drop(&mut self) {
        if std::thread::panicking() {
            let state = match self.child.as_mut().map(|c| c.try_wait()) {
                Some(Ok(None)) => "still running".to_string(),
                Some(Ok(Some(status))) => format!("dead: {status}"),
                _ => "not running".to_string(),
            };
            let kept = self._dir.take().map(|d| d.keep());
            eprintln!("broker {state}; data kept in {kept:?}; its log:\n{}", self.log());
        }
        self.kill();
    }
}

fn wait_with_timeout(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(start.elapsed() < timeout, "broker did not exit within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A port nothing listens on now and no other test of this process got (the
/// kernel hands the port it just freed to the next bind of port 0). For tests
/// that need an address before a broker runs; `Broker` binds port 0 itself.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut handed_out = HANDED_OUT.lock().unwrap();
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return port;
        }
    }
}

/// The i-th test message: a key shared by every 1,000th message, a value of
/// 1 to 4,000 bytes derived from i, and two headers.
pub struct TestMessage {
    pub key: String,
    pub value: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

pub fn test_message(i: u64) -> TestMessage {
    let len = (i.wrapping_mul(7919) % 4000 + 1) as usize;
    let value = (0..len).map(|j| (i as usize).wrapping_mul(31).wrapping_add(j) as u8).collect();
    TestMessage {
        key: format!("key-{}", i % 1000),
        value,
        headers: vec![("index".into(), i.to_string().into_bytes()), ("kind".into(), b"test".to_vec())],
    }
}

/// Collects what the broker acknowledged: message index -> (partition, offset).
#[derive(Default)]
pub struct Acks {
    pub acked: Mutex<HashMap<u64, (i32, i64)>>,
    /// How many were acknowledged, readable from other threads.
    pub acked_count: Arc<AtomicUsize>,
    pub failed: Mutex<Vec<(u64, String)>>,
}

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = Box<u64>;
    fn delivery(&self, result: &DeliveryResult<'_>, index: Box<u64>) {
        match result {
            Ok(m) => {
                self.acked.lock().unwrap().insert(*index, (m.partition(), m.offset()));
                self.acked_count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            Err((e, _)) => self.failed.lock().unwrap().push((*index, e.to_string())),
        }
    }
}

pub fn producer(bootstrap: &str, acks: &str) -> BaseProducer<Acks> {
    producer_with(bootstrap, acks, Acks::default(), 30_000)
}

pub fn producer_with(bootstrap: &str, acks: &str, context: Acks, message_timeout_ms: u64) -> BaseProducer<Acks> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", acks)
        .set("enable.idempotence", "false")
        .set("linger.ms", "5")
        .set("message.timeout.ms", message_timeout_ms.to_string())
        .create_with_context(context)
        .expect("producer")
}

/// Produces messages `range` to `topic` (partition chosen by key) and waits
/// for every delivery report.
pub fn produce_range(producer: &BaseProducer<Acks>, topic: &str, range: std::ops::Range<u64>) {
    for i in range {
        let m = test_message(i);
        let mut headers = OwnedHeaders::new();
        for (k, v) in &m.headers {
            headers = headers.insert(Header { key: k, value: Some(v) });
        }
        let mut record = BaseRecord::with_opaque_to(topic, Box::new(i)).key(&m.key).payload(&m.value).headers(headers);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                    r,
                )) => {
                    record = r;
                    producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => panic!("send failed: {e}"),
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
}

pub fn consumer(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("group.id", "unused-assign-only")
        .create()
        .expect("consumer")
}

/// A consumed message: partition, offset, key, value, headers.
pub struct Consumed {
    pub partition: i32,
    pub offset: i64,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

fn to_consumed(m: &BorrowedMessage<'_>) -> Consumed {
    let headers = m
        .headers()
        .map(|h| h.iter().map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec())).collect())
        .unwrap_or_default();
    Consumed {
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().unwrap_or_default().to_vec(),
        value: m.payload().unwrap_or_default().to_vec(),
        headers,
    }
}

/// Reads every partition of `topic` from the beginning until each reached EOF.
pub fn consume_all(bootstrap: &str, topic: &str, partitions: i32) -> Vec<Consumed> {
    let consumer = consumer(bootstrap);
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    consumer.assign(&assignment).expect("assign");
    let mut at_eof = vec![false; partitions as usize];
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !at_eof.iter().all(|&e| e) {
        assert!(Instant::now() < deadline, "consuming {topic} took too long; got {}", out.len());
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                at_eof[m.partition() as usize] = false;
                out.push(to_consumed(&m));
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => at_eof[p as usize] = true,
            Some(Err(e)) => panic!("consume error: {e}"),
            None => {}
        }
    }
    out
}

/// Checks that `consumed` holds messages `0..count`, each once, byte-identical,
/// at contiguous offsets from 0 in each partition, with each key's messages in
/// production order. Returns index -> (partition, offset).
pub fn check_consumed(consumed: &[Consumed], count: u64, partitions: i32) -> HashMap<u64, (i32, i64)> {
    let mut seen = HashMap::new();
    let mut next_offset = vec![0i64; partitions as usize];
    let mut last_index_of_key: HashMap<Vec<u8>, u64> = HashMap::new();
    for c in consumed {
        assert_eq!(c.offset, next_offset[c.partition as usize], "offsets of partition {} not contiguous", c.partition);
        next_offset[c.partition as usize] += 1;
        let index: u64 = std::str::from_utf8(&c.headers[0].1).unwrap().parse().unwrap();
        let expected = test_message(index);
        assert_eq!(c.key, expected.key.as_bytes(), "key of message {index}");
        assert_eq!(c.value, expected.value, "value of message {index}");
        assert_eq!(c.headers, expected.headers, "headers of message {index}");
        assert!(seen.insert(index, (c.partition, c.offset)).is_none(), "message {index} consumed twice");
        if let Some(previous) = last_index_of_key.insert(c.key.clone(), index) {
            assert!(previous < index, "key order broken: {previous} after {index}");
        }
    }
    assert_eq!(seen.len() as u64, count, "consumed {} distinct messages, expected {count}", seen.len());
    assert!((0..count).all(|i| seen.contains_key(&i)));
    seen
}

/// Produces messages `0..count` idempotently (acks=all) on another thread;
/// returns it (acknowledged, failed) and a live count of acknowledgements.
pub fn produce_idempotently(
    bootstrap: String,
    topic: &'static str,
    count: u64,
) -> (JoinHandle<Delivered>, Arc<AtomicUsize>) {
    let context = Acks::default();
    let acked = context.acked_count.clone();
    let producing = std::thread::spawn(move || {
        let producer: BaseProducer<Acks> = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "120000")
            .set("reconnect.backoff.ms", "50")
            .create_with_context(context)
            .expect("producer");
        produce_range(&producer, topic, 0..count);
        let failed = producer.context().failed.lock().unwrap().clone();
        let acked = producer.context().acked.lock().unwrap().clone();
        (acked, failed)
    });
    (producing, acked)
}

pub type Acked = HashMap<u64, (i32, i64)>;
/// What a producer thread saw: acknowledged messages, and failed ones with their error.
pub type Delivered = (Acked, Vec<(u64, String)>);

/// Every message acknowledged once, stored exactly once at the offset it was
/// acknowledged with, in order per key.
pub fn check_exactly_once(bootstrap: &str, topic: &str, partitions: i32, count: u64, (acked, failed): Delivered) {
    assert!(failed.is_empty(), "delivery failures: {:?}", &failed[..failed.len().min(5)]);
    assert_eq!(acked.len() as u64, count);
    let consumed = consume_all(bootstrap, topic, partitions);
    let placed: Acked = check_consumed(&consumed, count, partitions);
    assert_eq!(placed, acked);
}

pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let output = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["topics", "create", topic, "--partitions", &partitions.to_string(), "--bootstrap", bootstrap])
        .output()
        .expect("run weir topics create");
    assert!(output.status.success(), "topics create: {}", String::from_utf8_lossy(&output.stderr));
}

/// A protocol client, retrying for a while: right after a restart the old
/// broker's listening sockets can linger (its io_uring is torn down
/// asynchronously) and reset the first connections.
pub fn client(bootstrap: &str) -> weir_client::Client {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match weir_client::Client::connect(bootstrap) {
            Ok(client) => return client,
            Err(e) if Instant::now() < deadline => {
                eprintln!("connecting to {bootstrap}: {e:#}; retrying");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("cannot connect to {bootstrap}: {e:#}"),
        }
    }
}

/// InitProducerId without a transactional id: (producer id, epoch).
pub fn init_producer_id(client: &mut weir_client::Client) -> (i64, i16) {
    let request = kafka_protocol::messages::InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000);
    let response = client.send(&request, 4).unwrap();
    assert_eq!(response.error_code, 0);
    (response.producer_id.0, response.producer_epoch)
}

/// One batch of `count` records from producer `id`/`epoch` starting at
/// sequence `first_seq`, every record stamped `timestamp_ms`.
pub fn producer_batch(
    (id, epoch): (i64, i16),
    first_seq: i32,
    count: usize,
    transactional: bool,
    timestamp_ms: i64,
) -> bytes::Bytes {
    let mut batch = weir_engine::records::RecordsBuilder::new().producer(id, epoch, first_seq);
    if transactional {
        batch = batch.transactional();
    }
    for i in 0..count {
        batch.push(None, Some(format!("{id}-{}", first_seq + i as i32).as_bytes()), &[], timestamp_ms);
    }
    batch.finish()
}

/// Produces `records` (acks=all) to partition 0 of `topic`: (error code, base offset).
pub fn produce_batch(
    client: &mut weir_client::Client,
    topic: &str,
    transactional_id: Option<&str>,
    records: bytes::Bytes,
) -> (i16, i64) {
    let p = produce_answer(client, topic, transactional_id, records);
    (p.error_code, p.base_offset)
}

/// Produce v9 (acks=all) of `records` to partition 0 of `topic`: the
/// partition's whole answer.
pub fn produce_answer(
    client: &mut weir_client::Client,
    topic: &str,
    transactional_id: Option<&str>,
    records: bytes::Bytes,
) -> kafka_protocol::messages::produce_response::PartitionProduceResponse {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, TopicName, TransactionalId};
    use kafka_protocol::protocol::StrBytes;
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_transactional_id(transactional_id.map(|id| TransactionalId(StrBytes::from_string(id.into()))))
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(records))])]);
    let mut response = client.send(&request, 9).unwrap();
    response.responses.remove(0).partition_responses.remove(0)
}

/// DescribeProducers for partition 0 of `topic`: (producer id, epoch, last
/// sequence, current transaction start offset) of each.
pub fn describe_producers(bootstrap: &str, topic: &str) -> Vec<(i64, i32, i32, i64)> {
    use kafka_protocol::messages::describe_producers_request::TopicRequest;
    use kafka_protocol::messages::{DescribeProducersRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let request = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(TopicName(StrBytes::from_string(topic.into())))
        .with_partition_indexes(vec![0])]);
    let response = client(bootstrap).send(&request, 0).unwrap();
    let p = &response.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    p.active_producers
        .iter()
        .map(|s| (s.producer_id.0, s.producer_epoch, s.last_sequence, s.current_txn_start_offset))
        .collect()
}

/// A broker with its admin endpoint on a free port, once that endpoint accepts
/// connections (the controller shard binds it after the Kafka port, which
/// another shard may already answer on).
pub fn broker_with_admin(extra_args: &[&str]) -> (Broker, String) {
    let admin = format!("127.0.0.1:{}", free_port());
    let broker = Broker::start(&[&["--admin-listen", admin.as_str()], extra_args].concat());
    wait_until_healthy(&broker, &admin);
    (broker, admin)
}

/// A broker on a test clock (`test_clock = true`, and `toml` in its config
/// file): the test makes time pass with [`advance_clock`] instead of
/// sleeping. Returns the broker, its admin address and its config's directory.
pub fn broker_on_test_clock(toml: &str) -> (Broker, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("weir.toml");
    std::fs::write(&config, format!("test_clock = true\n{toml}")).expect("write the config");
    let (broker, admin) = broker_with_admin(&["--config", config.to_str().expect("a UTF-8 path")]);
    (broker, admin, dir)
}

/// Moves the clock of a broker from [`broker_on_test_clock`] forward.
pub fn advance_clock(admin: &str, by: Duration) {
    let (status, body) = http(admin, "POST", &format!("/test/clock?advance_ms={}", by.as_millis()));
    assert_eq!(status, 200, "advancing the broker's clock: {body}");
}

/// Waits until the broker says it is healthy on its admin endpoint: the
/// Kafka port opens before the admin endpoint and the other shard are up,
/// and right after a restart the old broker's socket may still reset connections.
pub fn wait_until_healthy(broker: &Broker, admin: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while try_http(admin, "GET", "/health").map(|r| r.0).ok() != Some(200) {
        assert!(Instant::now() < deadline, "the admin endpoint did not become healthy on {admin}\n{}", broker.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One HTTP/1.1 request to the admin endpoint: (status code, body).
pub fn http(admin: &str, method: &str, path: &str) -> (u16, String) {
    try_http(admin, method, path).expect("an answer from the admin endpoint")
}

/// `http`, with the connection's errors returned.
fn try_http(admin: &str, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(admin)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: {admin}\r\n\r\n")?;
    let mut response = String::new();
    // Connection: close, so the answer ends where the stream does.
    stream.read_to_string(&mut response)?;
    // A connection closed before a whole answer (an endpoint still starting,
    // or another process on the port) is an error the caller may retry.
    let incomplete =
        || std::io::Error::new(std::io::ErrorKind::InvalidData, format!("an incomplete answer: {response:?}"));
    let (head, body) = response.split_once("\r\n\r\n").ok_or_else(incomplete)?;
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(incomplete)?;
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(incomplete)?;
    if body.len() != length {
        return Err(incomplete());
    }
    Ok((status, body.to_string()))
}

/// Sum of the samples of `name` whose labels contain every one of `labels`.
pub fn sum(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .map(|l| l.rsplit_once(' ').expect("a value").1.parse::<f64>().expect("a number"))
        .sum()
}

/// Runs an rdkafka admin future to completion (the admin client polls on its own thread).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

pub fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("admin client")
}

/// Polls `done` until it holds; fails the test after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
