//! The admin endpoint: /health and /metrics of a broker that serves traffic.

use crate::common;

use common::*;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn metrics_follow_produce_and_fetch() {
    let (broker, admin) = broker_with_admin(&[]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "watched", 2);

    assert_eq!(http(&admin, "GET", "/health"), (200, "ok\n".to_string()));
    let (status, before) = http(&admin, "GET", "/metrics");
    assert_eq!(status, 200);
    assert_eq!(sum(&before, "weir_shard_up", &[]), 2.0, "{before}");
    assert_eq!(sum(&before, "weir_requests_total", &["api=\"Produce\""]), 0.0);
    assert!(before.contains("# TYPE weir_produce_latency_seconds histogram"));

    // Scrape while a producer is sending.
    let producing = {
        let bootstrap = bootstrap.clone();
        std::thread::spawn(move || {
            let producer = producer(&bootstrap, "all");
            produce_range(&producer, "watched", 0..2000);
            producer
        })
    };
    let mut during = String::new();
    for _ in 0..20 {
        let (status, text) = http(&admin, "GET", "/metrics");
        assert_eq!(status, 200);
        during = text;
        if sum(&during, "weir_requests_total", &["api=\"Produce\""]) > 0.0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let producer = producing.join().unwrap();
    assert!(sum(&during, "weir_connections_open", &[]) >= 1.0, "{during}");

    let consumed = consume_all(&bootstrap, "watched", 2);
    assert_eq!(consumed.len(), 2000);
    let (_, after) = http(&admin, "GET", "/metrics");
    let produces = sum(&after, "weir_requests_total", &["api=\"Produce\"", "error_code=\"0\""]);
    assert!(produces > 0.0, "{after}");
    assert!(sum(&after, "weir_requests_total", &["api=\"Fetch\""]) > 0.0);
    assert!(sum(&after, "weir_requests_total", &["api=\"Metadata\""]) > 0.0);
    assert_eq!(sum(&after, "weir_produce_latency_seconds_count", &[]), produces, "one latency per produce");
    assert!(sum(&after, "weir_produce_latency_seconds_bucket", &["le=\"+Inf\""]) == produces);
    assert!(sum(&after, "weir_fetch_latency_seconds_count", &[]) > 0.0);
    let value_bytes: usize = (0..2000).map(|i| test_message(i).value.len()).sum();
    assert!(sum(&after, "weir_bytes_in_total", &[]) > value_bytes as f64);
    assert!(sum(&after, "weir_bytes_out_total", &[]) > value_bytes as f64, "the consumer read them back");
    assert_eq!(sum(&after, "weir_partition_log_end_offset", &["topic=\"watched\""]), 2000.0, "{after}");
    assert!(sum(&after, "weir_partition_size_bytes", &["topic=\"watched\""]) > value_bytes as f64);
    assert_eq!(sum(&after, "weir_partition_log_start_offset", &["topic=\"watched\""]), 0.0);

    // Counters only move forward.
    produce_range(&producer, "watched", 2000..2010);
    let (_, later) = http(&admin, "GET", "/metrics");
    assert!(sum(&later, "weir_requests_total", &["api=\"Produce\""]) > produces);
    assert_eq!(sum(&later, "weir_partition_log_end_offset", &["topic=\"watched\""]), 2010.0);

    assert_eq!(http(&admin, "GET", "/nope").0, 404);
    assert_eq!(http(&admin, "POST", "/metrics").0, 405);
}

#[test]
fn errors_are_counted_by_error_code() {
    let (broker, admin) = broker_with_admin(&["--auto-create-topics", "false"]);
    // Deleting a topic that does not exist: UNKNOWN_TOPIC_OR_PARTITION (3).
    let output = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["topics", "delete", "missing", "--bootstrap", &broker.bootstrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let (_, metrics) = http(&admin, "GET", "/metrics");
    assert_eq!(sum(&metrics, "weir_requests_total", &["api=\"DeleteTopics\"", "error_code=\"3\""]), 1.0, "{metrics}");
}

#[test]
fn a_request_head_too_large_is_refused() {
    let (_broker, admin) = broker_with_admin(&[]);
    let mut stream = TcpStream::connect(&admin).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(64 * 1024));
    let _ = stream.write_all(huge.as_bytes());
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    assert!(!String::from_utf8_lossy(&response).contains("weir_"), "a huge request was answered");
    // The endpoint still serves.
    assert_eq!(http(&admin, "GET", "/health").0, 200);
}

/// `GET /metrics`, asserting it answers.
fn scrape(admin: &str) -> String {
    let (status, text) = http(admin, "GET", "/metrics");
    assert_eq!(status, 200);
    text
}

/// Scrapes until `done` holds for the figures, or panics after `within`.
fn scrape_until(admin: &str, within: Duration, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + within;
    loop {
        let text = scrape(admin);
        if done(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "no {what} within {within:?}:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn shard_busy_time_and_queues_follow_a_bench_run() {
    let (broker, admin) = broker_with_admin(&[]);
    let shards = ["shard=\"0\"", "shard=\"1\""];
    let idle = scrape(&admin);
    for shard in shards {
        for family in
            ["weir_shard_requests_in_flight", "weir_shard_peer_requests_in_flight", "weir_shard_appends_queued"]
        {
            assert!(idle.contains(&format!("{family}{{{shard}}} 0")), "{family} of an idle {shard}:\n{idle}");
        }
    }

    let bench = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["bench", "produce", "-b", &broker.bootstrap(), "--topic", "loaded", "--partitions", "2"])
        .args(["--duration", "4", "--warmup", "0", "--message-size", "200", "--timeout", "10"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start weir bench");
    scrape_until(&admin, Duration::from_secs(20), "produce", |m| {
        sum(m, "weir_requests_total", &["api=\"Produce\""]) > 0.0
    });
    // Both scrapes read every shard's figures within `elapsed`.
    let since = Instant::now();
    let started = scrape(&admin);
    std::thread::sleep(Duration::from_secs(1));
    let later = scrape(&admin);
    let elapsed = since.elapsed().as_secs_f64();
    let mut busy_total = 0.0;
    for shard in shards {
        let cpu = |m: &str| sum(m, "weir_shard_cpu_seconds_total", &[shard]);
        let busy = cpu(&later) - cpu(&started);
        // A shard's thread runs on at most one core: at most `elapsed` seconds.
        assert!(busy >= 0.0 && busy <= elapsed + 0.01, "{shard} busy {busy} s in {elapsed} s\n{later}");
        busy_total += busy;
        for mode in ["mode=\"user\"", "mode=\"system\""] {
            assert!(sum(&later, "weir_shard_cpu_seconds_total", &[shard, mode]) > 0.0, "{shard} {mode}\n{later}");
        }
        // The probe runs every 100 ms, and each run is counted.
        let probes = |m: &str| sum(m, "weir_shard_scheduling_delay_seconds_count", &[shard]);
        let ran = probes(&later) - probes(&started);
        assert!(ran >= 3.0 && ran <= elapsed * 10.0 + 2.0, "{shard}: {ran} probes in {elapsed} s\n{later}");
        assert_eq!(sum(&later, "weir_shard_scheduling_delay_seconds_bucket", &[shard, "le=\"+Inf\""]), probes(&later));
    }
    assert!(busy_total > 0.05, "the shards were busy serving the bench: {busy_total} s in {elapsed} s\n{later}");
    let status = wait_for(bench, Duration::from_secs(30));
    assert!(status.success(), "weir bench failed");

    // Once the bench is gone, nothing is in flight or queued any more.
    let quiet = scrape_until(&admin, Duration::from_secs(10), "quiet shards", |m| {
        sum(m, "weir_shard_requests_in_flight", &[]) == 0.0
    });
    assert_eq!(sum(&quiet, "weir_shard_peer_requests_in_flight", &[]), 0.0, "{quiet}");
    assert_eq!(sum(&quiet, "weir_shard_appends_queued", &[]), 0.0, "{quiet}");

    // A long-poll fetch of both partitions (one on each shard) stays in
    // flight: one Kafka request, and one wait on the other shard.
    let log_end =
        |p: i32| sum(&quiet, "weir_partition_log_end_offset", &["topic=\"loaded\"", &format!("partition=\"{p}\"")]);
    let (end0, end1) = (log_end(0) as i64, log_end(1) as i64);
    assert!(end0 > 0 && end1 > 0, "{quiet}");
    let served_before = sum(&quiet, "weir_shard_mesh_messages_served_total", &[]);
    let bootstrap = broker.bootstrap();
    let polling = std::thread::spawn(move || {
        let mut client = client(&bootstrap);
        let partition = |p, offset| FetchPartition::default().with_partition(p).with_fetch_offset(offset);
        let request = FetchRequest::default()
            .with_replica_id((-1).into())
            .with_max_wait_ms(3_000)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("loaded")))
                .with_partitions(vec![partition(0, end0), partition(1, end1)])]);
        client.send(&request, 12).expect("the long poll is answered")
    });
    // The wait on the other shard is sent a moment after the request arrives.
    scrape_until(&admin, Duration::from_secs(3), "long poll in flight", |m| {
        sum(m, "weir_shard_requests_in_flight", &[]) == 1.0 && sum(m, "weir_shard_peer_requests_in_flight", &[]) == 1.0
    });
    let answered = polling.join().unwrap();
    assert!(answered.responses[0].partitions.iter().all(|p| p.error_code == 0));
    let after = scrape(&admin);
    assert_eq!(sum(&after, "weir_shard_requests_in_flight", &[]), 0.0, "{after}");
    assert_eq!(sum(&after, "weir_shard_peer_requests_in_flight", &[]), 0.0, "{after}");
    // The remote partition cost one message: its shard read it, then waited
    // on it until the fetch was answered.
    let served = sum(&after, "weir_shard_mesh_messages_served_total", &[]) - served_before;
    assert_eq!(served, 1.0, "mesh messages of a long poll with one remote partition\n{after}");
}

fn wait_for(mut child: std::process::Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("child did not finish within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value of the one sample of `name` for `group`'s `topic` partition `p`, if any.
fn group_figure(metrics: &str, name: &str, group: &str, topic: &str, p: i32) -> Option<i64> {
    let series = format!("{name}{{group=\"{group}\",topic=\"{topic}\",partition=\"{p}\"}} ");
    metrics.lines().find_map(|l| l.strip_prefix(&series)).map(|v| v.parse().expect("a number"))
}

#[test]
fn group_lag_is_what_the_group_has_not_committed() {
    let (broker, admin) = broker_with_admin(&[]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "lagged", 2);
    let producer = producer(&bootstrap, "all");
    produce_range(&producer, "lagged", 0..1000);
    let mut produced = [0i64; 2];
    for m in consume_all(&bootstrap, "lagged", 2) {
        produced[m.partition as usize] += 1;
    }

    // A consumer of group "lagging" reads some 300 messages of each
    // partition's first ones and commits what it read.
    let consumer: rdkafka::consumer::BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "lagging")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for p in 0..2 {
        assignment.add_partition_offset("lagged", p, Offset::Beginning).unwrap();
    }
    consumer.assign(&assignment).expect("assign");
    let mut read: BTreeMap<i32, i64> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while read.values().sum::<i64>() < 300 || read.len() < 2 {
        assert!(Instant::now() < deadline, "consumed only {read:?}");
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.expect("consume");
            use rdkafka::Message;
            read.insert(m.partition(), m.offset() + 1);
        }
    }
    consumer.commit_consumer_state(CommitMode::Sync).expect("commit");
    let committed: BTreeMap<i32, i64> = read;

    let metrics = scrape(&admin);
    for (&p, &offset) in &committed {
        assert_eq!(
            group_figure(&metrics, "weir_group_committed_offset", "lagging", "lagged", p),
            Some(offset),
            "{metrics}"
        );
        let lag = produced[p as usize] - offset;
        assert_eq!(group_figure(&metrics, "weir_group_lag", "lagging", "lagged", p), Some(lag), "{metrics}");
    }
    let committed_total: i64 = committed.values().sum();
    assert!(committed_total < 1000, "the consumer stopped early: there is a lag");
    assert_eq!(sum(&metrics, "weir_group_lag", &["group=\"lagging\""]) as i64, 1000 - committed_total);

    // New messages the group has not read add to its lag; commits take from it.
    produce_range(&producer, "lagged", 1000..1010);
    let grown = scrape(&admin);
    assert_eq!(sum(&grown, "weir_group_lag", &["group=\"lagging\""]) as i64, 1010 - committed_total, "{grown}");
    let mut caught_up = TopicPartitionList::new();
    for p in 0..2 {
        let end = sum(&grown, "weir_partition_log_end_offset", &["topic=\"lagged\"", &format!("partition=\"{p}\"")]);
        caught_up.add_partition_offset("lagged", p, Offset::Offset(end as i64)).unwrap();
    }
    consumer.commit(&caught_up, CommitMode::Sync).expect("commit the log ends");
    let none = scrape(&admin);
    assert_eq!(sum(&none, "weir_group_lag", &["group=\"lagging\""]), 0.0, "{none}");
    assert_eq!(sum(&none, "weir_group_committed_offset", &["group=\"lagging\""]), 1010.0, "{none}");
}

#[test]
fn logs_can_be_json_lines_at_the_level_asked() {
    let mut broker = Broker::start(&["--log-format", "json", "--log", "debug"]);
    broker.stop();
    let log = broker.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let logged = |level: &str, message: &str| {
        lines
            .iter()
            .any(|l| l["level"] == level && l["fields"]["message"].as_str().is_some_and(|m| m.contains(message)))
    };
    assert!(logged("INFO", "starting"), "{log}");
    assert!(logged("DEBUG", "shard ready"), "--log debug shows debug lines\n{log}");
    assert!(logged("INFO", "stopped cleanly"), "{log}");
    assert!(lines.iter().all(|l| l["timestamp"].is_string()), "{log}");
}
