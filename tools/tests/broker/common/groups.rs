//! What the consumer-group tests share: a broker with short group timeouts,
//! a rebalance log, polling helpers and the consumer run as a child process
//! (so that it can be SIGKILLed).

use super::Broker;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::producer::Producer;
use rdkafka::ClientContext;
use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A broker started with `config` as its TOML config file.
pub fn broker_with_config(config: &str) -> Broker {
    let dir = tempfile::tempdir().unwrap().keep();
    let path = dir.join("weir.toml");
    std::fs::write(&path, config).unwrap();
    Broker::start(&["--config", path.to_str().unwrap()])
}

/// Records which partitions were revoked and assigned, in order.
#[derive(Default, Clone)]
pub struct RebalanceLog(pub Arc<Mutex<Vec<RebalanceEvent>>>);

/// (true for a revocation, the partitions it named).
pub type RebalanceEvent = (bool, BTreeSet<i32>);

impl ClientContext for RebalanceLog {}

impl ConsumerContext for RebalanceLog {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            self.0.lock().unwrap().push((false, tpl.elements().iter().map(|e| e.partition()).collect()));
        }
    }
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            self.0.lock().unwrap().push((true, tpl.elements().iter().map(|e| e.partition()).collect()));
        }
    }
}

pub type GroupConsumer = BaseConsumer<RebalanceLog>;

/// The partitions a consumer has now.
pub fn assigned(consumer: &GroupConsumer) -> BTreeSet<i32> {
    consumer.assignment().unwrap().elements().iter().map(|e| e.partition()).collect()
}

/// One consumed message: (consumer index, partition, offset, index header).
pub type Seen = (usize, i32, i64, u64);

/// Polls every consumer until `done` holds (or fails after `timeout`); each
/// message seen is recorded and committed after it is recorded
/// (asynchronously: the order of commits per partition is kept, and the test
/// does not wait for each).
pub fn poll_until(
    consumers: &[&GroupConsumer],
    seen: &mut Vec<Seen>,
    timeout: Duration,
    done: impl FnMut(&[Seen]) -> bool,
) {
    let reached = poll_for(consumers, seen, timeout, done);
    assert!(reached, "condition not reached in {timeout:?}; saw {} messages", seen.len());
}

/// `poll_until` that says whether `done` held in time instead of failing.
pub fn poll_for(
    consumers: &[&GroupConsumer],
    seen: &mut Vec<Seen>,
    timeout: Duration,
    mut done: impl FnMut(&[Seen]) -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    while !done(seen) {
        if Instant::now() >= deadline {
            return false;
        }
        for (i, consumer) in consumers.iter().enumerate() {
            if let Some(result) = consumer.poll(Duration::from_millis(20)) {
                // Errors here are librdkafka's transient reports (a broker restarting);
                // what the test checks is which messages arrive.
                let Ok(m) = result else { continue };
                let headers = rdkafka::message::Headers::get(m.headers().unwrap(), 0);
                let index = std::str::from_utf8(headers.value.unwrap()).unwrap().parse().unwrap();
                seen.push((i, m.partition(), m.offset(), index));
                consumer.commit_message(&m, CommitMode::Async).expect("commit");
            }
        }
    }
    true
}

/// Produces `range` and returns where each message landed: index -> (partition, offset).
pub fn produce(bootstrap: &str, topic: &str, range: std::ops::Range<u64>) -> HashMap<u64, (i32, i64)> {
    let producer = super::producer(bootstrap, "all");
    super::produce_range(&producer, topic, range.clone());
    let acked = producer.context().acked.lock().unwrap().clone();
    assert_eq!(acked.len(), range.count());
    acked
}

/// This test binary's ignored test `name` (its full path, `module::test`)
/// run as a child process with `env`, its stdout lines gathered as they come.
pub struct ChildTest {
    pub child: Child,
    pub lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
}

impl ChildTest {
    pub fn spawn(name: &str, env: (&str, String)) -> ChildTest {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", name, "--nocapture", "--test-threads", "1"])
            .env(env.0, env.1)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let reader = {
            let lines = lines.clone();
            let stdout = child.stdout.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            })
        };
        ChildTest { child, lines, reader: Some(reader) }
    }

    /// The partitions of the child's last "assigned ..." line (the harness
    /// prints "test name ... " before the first line, hence `split_once`).
    pub fn last_assigned(&self) -> Option<BTreeSet<i32>> {
        let lines = self.lines.lock().unwrap();
        lines
            .iter()
            .rev()
            .find_map(|l| l.split_once("assigned ").map(|(_, p)| p.split(' ').filter_map(|x| x.parse().ok()).collect()))
    }

    /// SIGKILL: no goodbye to the group, only its session timeout tells.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
    }
}

impl Drop for ChildTest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body of a child consumer: prints its assignment when it changes and
/// every message before committing it, until killed.
pub fn run_child_consumer(consumer: &GroupConsumer) -> ! {
    let mut last = BTreeSet::new();
    loop {
        let now = assigned(consumer);
        if now != last {
            println!("assigned {}", now.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(" "));
            last = now;
        }
        if let Some(result) = consumer.poll(Duration::from_millis(50)) {
            let Ok(m) = result else { continue };
            let header = rdkafka::message::Headers::get(m.headers().unwrap(), 0);
            let index = std::str::from_utf8(header.value.unwrap()).unwrap();
            // Recorded before it is committed: killed in between, the
            // message is read again by its next owner (a duplicate the test
            // allows) rather than committed but never recorded.
            println!("message {} {} {index}", m.partition(), m.offset());
            consumer.commit_message(&m, CommitMode::Sync).expect("commit");
        }
    }
}
