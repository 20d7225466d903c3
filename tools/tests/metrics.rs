//! The admin endpoint: /health and /metrics of a broker that serves traffic.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One HTTP/1.1 request to the admin endpoint: (status code, body).
fn http(admin: &str, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(admin).expect("connect to the admin endpoint");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: {admin}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read the whole response (Connection: close)");
    let (head, body) = response.split_once("\r\n\r\n").expect("a response head");
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status code");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|l| l.trim().parse().ok())
        .expect("Content-Length");
    assert_eq!(body.len(), length, "body length");
    (status, body.to_string())
}

/// Sum of the samples of `name` whose labels contain every one of `labels`.
fn sum(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .map(|l| l.rsplit_once(' ').expect("a value").1.parse::<f64>().expect("a number"))
        .sum()
}

#[test]
fn metrics_follow_produce_and_fetch() {
    let admin = format!("127.0.0.1:{}", free_port());
    let broker = Broker::start(&["--admin-listen", &admin]);
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
    let admin = format!("127.0.0.1:{}", free_port());
    let broker = Broker::start(&["--admin-listen", &admin, "--auto-create-topics", "false"]);
    // Deleting a topic that does not exist: UNKNOWN_TOPIC_OR_PARTITION (3).
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["topics", "delete", "missing", "--bootstrap", &broker.bootstrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let (_, metrics) = http(&admin, "GET", "/metrics");
    assert_eq!(sum(&metrics, "weir_requests_total", &["api=\"DeleteTopics\"", "error_code=\"3\""]), 1.0, "{metrics}");
}

#[test]
fn a_request_head_too_large_is_refused() {
    let admin = format!("127.0.0.1:{}", free_port());
    let _broker = Broker::start(&["--admin-listen", &admin]);
    // The Kafka port opens before the admin endpoint and the other shard are
    // up: wait for health first, so the check after the huge request means something.
    let started = std::time::Instant::now();
    while TcpStream::connect(&admin).is_err() || http(&admin, "GET", "/health").0 != 200 {
        assert!(started.elapsed() < Duration::from_secs(30), "the broker never became healthy");
        std::thread::sleep(Duration::from_millis(20));
    }
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
