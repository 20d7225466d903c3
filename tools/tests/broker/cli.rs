//! The `weir` command line against a real broker: topics, produce, consume.

use crate::common;

use common::*;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn weir(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run weir");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn ok(args: &[&str], stdin: Option<&str>) -> String {
    let output = weir(args, stdin);
    assert!(output.status.success(), "weir {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn topics_can_be_created_listed_described_deleted_and_recreated() {
    let mut broker = Broker::start(&[]);
    let b = broker.bootstrap();
    for name in ["first", "second", "third"] {
        ok(&["topics", "create", name, "-p", "2", "-b", &b], None);
    }
    assert_eq!(ok(&["topics", "list", "-b", &b], None), "first\nsecond\nthird\n");
    // Several bootstrap servers: the first that answers (nothing listens on port 1).
    let servers = format!("127.0.0.1:1, {b}");
    assert_eq!(ok(&["topics", "list", "-b", &servers], None), "first\nsecond\nthird\n");
    let again = weir(&["topics", "create", "first", "-b", &b], None);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("TopicAlreadyExists"));
    let bad = weir(&["topics", "create", "no/slash", "-b", &b], None);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("InvalidTopicException"));

    ok(&["produce", "-t", "second", "-b", &b], Some("a\nb\nc\n"));
    let described = ok(&["topics", "describe", "second", "-b", &b], None);
    assert!(described.contains("partitions 2"), "{described}");
    let messages: i64 =
        described.lines().skip(2).map(|l| l.split_whitespace().last().unwrap().parse::<i64>().unwrap()).sum();
    assert_eq!(messages, 3, "{described}");

    ok(&["topics", "delete", "second", "-b", &b], None);
    assert_eq!(ok(&["topics", "list", "-b", &b], None), "first\nthird\n");
    assert!(!broker.data_dir.join("second-0").exists(), "deleted topic's data is still on disk");
    let missing = weir(&["topics", "delete", "second", "-b", &b], None);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("UnknownTopicOrPartition"));

    // Its files are removed in the background.
    let second_dirs = |dir: &Path| {
        let entries = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned());
        entries.filter(|name| name.starts_with("second-")).collect::<Vec<_>>()
    };
    wait_until("the deleted topic's files are removed", Duration::from_secs(10), || {
        second_dirs(&broker.data_dir).is_empty()
    });

    // Recreated under the same name, it starts empty.
    ok(&["topics", "create", "second", "-p", "1", "-b", &b], None);
    assert_eq!(ok(&["consume", "-t", "second", "--from-beginning", "--idle-timeout-ms", "300", "-b", &b], None), "");

    // A deleted partition a stop left behind is removed at the next start.
    broker.stop();
    let leftover = broker.data_dir.join("second-1.0123456789abcdef0123456789abcdef-delete");
    std::fs::create_dir(&leftover).unwrap();
    std::fs::write(leftover.join("00000000000000000000.log"), b"old").unwrap();
    broker.restart();
    wait_until("the leftover is removed", Duration::from_secs(10), || !leftover.exists());
    assert_eq!(second_dirs(&broker.data_dir), ["second-0"]);
    assert_eq!(ok(&["topics", "list", "-b", &broker.bootstrap()], None), "first\nsecond\nthird\n");
}

#[test]
fn produce_and_consume_round_trip_keys_and_auto_create_many_topics() {
    let broker = Broker::start(&["--default-partitions", "3"]);
    let b = broker.bootstrap();
    let lines: String = (0..500).map(|i| format!("k{}:value {i}\n", i % 7)).collect();
    for topic in ["auto-a", "auto-b", "auto-c"] {
        ok(&["produce", "-t", topic, "--key-separator", ":", "-b", &b], Some(&lines));
    }
    let out = ok(
        &[
            "consume",
            "-t",
            "auto-b",
            "--from-beginning",
            "--print-keys",
            "--print-offsets",
            "--key-separator",
            ":",
            "-n",
            "500",
            "-b",
            &b,
        ],
        None,
    );
    let mut got: Vec<(String, String)> = Vec::new();
    let mut next_offset = std::collections::HashMap::new();
    for line in out.lines() {
        let mut fields = line.splitn(4, ':');
        let (partition, offset, key, value) =
            (fields.next().unwrap(), fields.next().unwrap(), fields.next().unwrap(), fields.next().unwrap());
        let expected = next_offset.entry(partition.to_string()).or_insert(0i64);
        assert_eq!(offset.parse::<i64>().unwrap(), *expected, "offsets of partition {partition}");
        *expected += 1;
        got.push((key.to_string(), value.to_string()));
    }
    assert_eq!(got.len(), 500);
    // Each key went to one partition, in the order produced.
    for k in 0..7 {
        let key = format!("k{k}");
        let values: Vec<_> = got.iter().filter(|(gk, _)| *gk == key).map(|(_, v)| v.clone()).collect();
        let expected: Vec<_> = (0..500).filter(|i| i % 7 == k).map(|i| format!("value {i}")).collect();
        assert_eq!(values, expected, "messages of {key}");
    }
    let listed = ok(&["topics", "list", "-b", &b], None);
    assert_eq!(listed, "auto-a\nauto-b\nauto-c\n");
}

#[test]
fn consume_from_the_end_sees_only_new_messages() {
    let broker = Broker::start(&[]);
    let b = broker.bootstrap();
    ok(&["produce", "-t", "tail", "-b", &b], Some("old\n"));
    let consumer = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["consume", "-t", "tail", "-n", "1", "--idle-timeout-ms", "20000", "-b", &b])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Give the consumer time to look up the end before producing.
    std::thread::sleep(Duration::from_millis(700));
    ok(&["produce", "-t", "tail", "-b", &b], Some("new\n"));
    let output = consumer.wait_with_output().unwrap();
    assert_eq!(String::from_utf8(output.stdout).unwrap(), "new\n");
}

#[test]
fn serve_with_its_defaults_keeps_data_in_a_relative_weir_data() {
    // The README's `weir serve`: no --data-dir, so ./weir-data, a relative path.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let b = format!("127.0.0.1:{port}");
    let mut broker = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--listen", &b])
        .current_dir(dir.path())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(&b).is_err() {
        assert!(start.elapsed() < Duration::from_secs(30), "broker did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    ok(&["produce", "-t", "defaults", "-b", &b], Some("one\ntwo\n"));
    let consumed =
        ok(&["consume", "-t", "defaults", "--from-beginning", "-n", "2", "--idle-timeout-ms", "10000", "-b", &b], None);
    broker.kill().unwrap();
    broker.wait().unwrap();
    assert_eq!(consumed, "one\ntwo\n");
    assert!(dir.path().join("weir-data/defaults-0").is_dir());
}

#[test]
fn consume_with_a_group_resumes_after_its_committed_position() {
    let broker = Broker::start(&[]);
    let b = broker.bootstrap();
    ok(&["topics", "create", "grouped", "-p", "3", "-b", &b], None);
    let lines: String = (0..30).map(|i| format!("m{i}\n")).collect();
    ok(&["produce", "-t", "grouped", "-b", &b], Some(&lines));
    let consume = |n: &str| {
        ok(
            &[
                "consume",
                "-t",
                "grouped",
                "--group",
                "readers",
                "--from-beginning",
                "-n",
                n,
                "--idle-timeout-ms",
                "15000",
                "-b",
                &b,
            ],
            None,
        )
    };
    let first = consume("30");
    assert_eq!(first.lines().count(), 30);
    ok(&["produce", "-t", "grouped", "-b", &b], Some("new1\nnew2\n"));
    // --from-beginning only applies where the group has committed nothing.
    let mut second: Vec<String> = consume("2").lines().map(String::from).collect();
    second.sort();
    assert_eq!(second, vec!["new1", "new2"]);
}

/// `weir serve --listen 127.0.0.1:0 --shards 2` in `data_dir`, its stdout piped.
fn serve_on(listen: &str, data_dir: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--listen", listen, "--shards", "2", "--admin-listen", ""])
        .arg("--data-dir")
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The address in the broker's first stdout line, `listening on <address>`.
fn reported_address(broker: &mut std::process::Child) -> String {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(broker.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    let address = line.strip_suffix('\n').and_then(|l| l.strip_prefix("listening on "));
    address.unwrap_or_else(|| panic!("unexpected first line {line:?}")).to_string()
}

#[test]
fn serve_on_port_zero_reports_the_port_it_bound_and_advertises_it() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let dir = tempfile::tempdir().unwrap();
    let mut broker = serve_on("127.0.0.1:0", dir.path());
    let address = reported_address(&mut broker);
    let port: u16 = address.strip_prefix("127.0.0.1:").expect("the listen host").parse().unwrap();
    assert_ne!(port, 0);
    let file = std::fs::read_to_string(dir.path().join("listen.addr")).unwrap();
    assert_eq!(file, format!("{address}\n"));

    ok(&["produce", "-t", "zero", "-b", &address], Some("one\ntwo\n"));
    let consumed = ok(
        &["consume", "-t", "zero", "--from-beginning", "-n", "2", "--idle-timeout-ms", "10000", "-b", &address],
        None,
    );
    assert_eq!(consumed, "one\ntwo\n");
    // Clients are told the bound port, not port 0.
    let client: BaseConsumer = rdkafka::ClientConfig::new().set("bootstrap.servers", &address).create().unwrap();
    let metadata = client.fetch_metadata(Some("zero"), Duration::from_secs(10)).unwrap();
    let brokers: Vec<_> = metadata.brokers().iter().map(|b| (b.host().to_string(), b.port())).collect();
    assert_eq!(brokers, [("127.0.0.1".to_string(), port as i32)]);

    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(broker.id() as i32, libc::SIGTERM) };
    assert!(broker.wait().unwrap().success());
    assert!(!dir.path().join("listen.addr").exists(), "a stopped broker removes its address file");
}

#[test]
fn a_second_broker_on_an_address_already_served_exits_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = serve_on("127.0.0.1:0", &dir.path().join("first"));
    let address = reported_address(&mut first);
    let second = serve_on(&address, &dir.path().join("second")).wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "the second broker started: {stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {address}: another process is already listening there")),
        "{stderr}"
    );
    assert!(second.stdout.is_empty(), "the second broker reported an address");
    // The first still serves every client.
    ok(&["produce", "-t", "first", "-b", &address], Some("still here\n"));
    first.kill().unwrap();
    first.wait().unwrap();
}

/// The cores each thread of process `pid` whose name starts with `prefix`
/// may run on, as /proc shows them ("1", "0-1").
fn thread_cores(pid: u32, prefix: &str) -> Vec<String> {
    let mut cores = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        let name = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        if !name.starts_with(prefix) {
            continue;
        }
        let status = std::fs::read_to_string(task.join("status")).unwrap();
        let line = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).expect("Cpus_allowed_list");
        cores.push(line.trim().to_string());
    }
    cores
}

#[test]
fn cpuset_pins_every_shard_to_its_cores_and_refuses_cores_that_are_not_online() {
    // The last online core, so that the test means something on any machine.
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    let last = online.trim().rsplit([',', '-']).next().unwrap().to_string();
    let broker = Broker::start(&["--cpuset", &last]);
    // `Broker` runs two shards: they (and glommio's helper thread of each)
    // all run on that one core.
    let cores = thread_cores(broker.pid(), "weir-shard");
    assert!(cores.len() >= 2 && cores.iter().all(|c| *c == last), "{cores:?}\n{}", broker.log());
    ok(&["produce", "-t", "pinned", "-b", &broker.bootstrap()], Some("on one core\n"));

    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let refused = weir(&["serve", "--cpuset", "0,4095", "--listen", "127.0.0.1:0", "--data-dir", data_dir], None);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("cpuset [0, 4095] names cores that are not online"), "{stderr}");
    let malformed = weir(&["serve", "--cpuset", "2-1", "--data-dir", data_dir], None);
    let stderr = String::from_utf8_lossy(&malformed.stderr);
    assert!(stderr.contains("cpuset '2-1': '2-1' is not a core or a range of cores"), "{stderr}");
}

#[test]
fn users_are_added_listed_and_deleted_over_the_protocol_and_survive_a_restart() {
    use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
    let mut broker = Broker::start(&[]);
    let b = broker.bootstrap();
    ok(&["users", "add", "alice", "-b", &b], Some("alice-secret\n"));
    ok(&["users", "add", "bob", "-m", "SCRAM-SHA-512", "--iterations", "4096", "-b", &b], Some("bob-secret\n"));
    let listed = ok(&["users", "list", "-b", &b], None);
    for row in ["alice", "SCRAM-SHA-256  8192", "SCRAM-SHA-512  8192", "bob", "SCRAM-SHA-512  4096"] {
        assert!(listed.contains(row), "{row} not in {listed}");
    }
    let few = weir(&["users", "add", "carol", "--iterations", "100", "-b", &b], Some("pw\n"));
    assert!(String::from_utf8_lossy(&few.stderr).contains("--iterations must be within 4096..=16384"));
    let no_password = weir(&["users", "add", "carol", "-b", &b], Some(""));
    assert!(String::from_utf8_lossy(&no_password.stderr).contains("no password"));

    ok(&["users", "delete", "alice", "-m", "SCRAM-SHA-512", "-b", &b], None);
    let missing = weir(&["users", "delete", "alice", "-m", "SCRAM-SHA-512", "-b", &b], None);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("does not exist"), "{missing:?}");
    let nobody = weir(&["users", "delete", "nobody", "-b", &b], None);
    assert!(String::from_utf8_lossy(&nobody.stderr).contains("no SCRAM credentials"), "{nobody:?}");

    broker.stop();
    broker.restart();
    let listed = ok(&["users", "list", "-b", &broker.bootstrap()], None);
    assert!(listed.contains("SCRAM-SHA-256  8192") && !listed.contains("SCRAM-SHA-512  8192"), "{listed}");
    assert!(listed.contains("SCRAM-SHA-512  4096"), "{listed}");
    let on_disk = std::fs::read_to_string(broker.data_dir.join("metadata.toml")).unwrap();
    assert!(!on_disk.contains("secret"), "a password reached metadata.toml");

    // A PLAINTEXT listener answers the SASL APIs as Kafka does: ILLEGAL_SASL_STATE.
    let mut client = client(&broker.bootstrap());
    let handshake = SaslHandshakeRequest::default().with_mechanism("PLAIN".into());
    assert_eq!(client.send(&handshake, 1).unwrap().error_code, 34);
    let authenticate = SaslAuthenticateRequest::default().with_auth_bytes(b"\0alice\0alice-secret"[..].into());
    assert_eq!(client.send(&authenticate, 2).unwrap().error_code, 34);
}
