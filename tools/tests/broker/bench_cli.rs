//! `weir bench` against a real `weir serve`: each mode runs briefly, writes
//! its JSON with the figures and an SVG plot. Nothing here asserts speed.

use crate::common;

use common::Broker;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bench(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_weir")).arg("bench").args(args).output().expect("run weir bench");
    output
}

fn ok(args: &[&str]) -> String {
    let out = bench(args);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "weir bench {args:?} failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    stdout.into_owned()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("json written")).expect("valid json")
}

fn assert_svg(path: &Path) {
    let svg = std::fs::read_to_string(path).expect("plot written");
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "not SVG: {}", &svg[..svg.len().min(80)]);
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("<polyline"), "the plot has no lines");
}

fn assert_latency(v: &serde_json::Value) {
    for key in ["p50_ms", "p90_ms", "p99_ms", "p99.9_ms", "p99.99_ms", "max_ms"] {
        assert!(v[key].as_f64().is_some_and(|x| x >= 0.0), "{key} missing in {v}");
    }
    assert!(v["count"].as_u64().unwrap() > 0);
}

#[test]
fn produce_consume_and_e2e_write_figures_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&[]);
    let addr = broker.bootstrap();
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let common = ["-b", &addr, "--topic", "bench-test", "--partitions", "2", "--message-size", "200"];
    let short = ["--duration", "1.5", "--warmup", "0.5", "--batch-size", "20"];

    let (j, p) = (path("produce.json"), path("produce.svg"));
    let summary = ok(&[&["produce"], &common[..], &short[..], &["--acks", "all", "--json", &j, "--plot", &p]].concat());
    assert!(summary.contains("produced") && summary.contains("produce latency"), "{summary}");
    let v = json(Path::new(&j));
    assert_eq!(v["mode"], "produce");
    assert_eq!(v["params"]["acks"], "all");
    assert_eq!(v["generator"]["partitions"], 2);
    assert!(v["produce"]["messages"].as_u64().unwrap() > 0);
    assert!(v["produce"]["mb_per_s"].as_f64().unwrap() > 0.0);
    assert_latency(&v["produce_latency"]);
    assert_svg(Path::new(&p));

    let (j, p) = (path("consume.json"), path("consume.svg"));
    let summary = ok(&[
        &["consume"],
        &common[..],
        &["--duration", "5", "--warmup", "0", "--consumers", "2"],
        &["--json", &j, "--plot", &p],
    ]
    .concat());
    assert!(summary.contains("consumed"), "{summary}");
    let v = json(Path::new(&j));
    assert!(v["consume"]["messages"].as_u64().unwrap() > 0);
    assert!(v["consume"]["bytes"].as_u64().unwrap() >= 200 * v["consume"]["messages"].as_u64().unwrap());
    assert_svg(Path::new(&p));

    let (j, p) = (path("e2e.json"), path("e2e.svg"));
    let args = [&["e2e"], &common[..], &short[..], &["--rate", "2000", "--compression", "lz4", "--keys", "sequential"]]
        .concat();
    ok(&[&args[..], &["--json", &j, "--plot", &p]].concat());
    let v = json(Path::new(&j));
    assert!(v["consume"]["messages"].as_u64().unwrap() > 0);
    assert_latency(&v["produce_latency"]);
    assert_latency(&v["e2e_latency"]);
    assert!(v["timeline"].as_array().unwrap().len() >= 2);
    assert_svg(Path::new(&p));

    let (j, p) = (path("sweep.json"), path("sweep.svg"));
    let table = ok(&[&["sweep"], &common[..], &["--duration", "1", "--warmup", "0.2", "--rates", "500,1000"]]
        .concat()
        .into_iter()
        .chain(["--p99-max-ms", "1000", "--json", &j, "--plot", &p])
        .collect::<Vec<_>>());
    assert!(table.contains("best with p99"), "{table}");
    assert_eq!(json(Path::new(&j))["steps"].as_array().unwrap().len(), 2);
    assert_svg(Path::new(&p));
}

#[test]
fn dry_run_measures_the_generator_alone() {
    let dir = tempfile::tempdir().unwrap();
    let j = dir.path().join("dry.json");
    ok(&["produce", "--dry-run", "--duration", "1", "--warmup", "0.2", "--json", j.to_str().unwrap()]);
    let v = json(&j);
    assert_eq!(v["params"]["dry_run"], true);
    assert!(v["produce"]["messages"].as_u64().unwrap() > 0);
    assert!(v["generator"]["cpu_seconds_per_gb"].as_f64().is_some());
}

#[test]
fn bad_input_fails_fast_with_a_message() {
    let dead = format!("127.0.0.1:{}", common::free_port()); // nothing listens there
    let cases: &[(&[&str], &str)] = &[
        (&["produce", "--message-size", "abc"], "invalid value"),
        (&["produce", "--partitions", "0"], "--partitions"),
        (&["e2e", "--message-size", "4"], "--message-size"),
        (&["produce", "--rate=-5"], "--rate"),
        (&["produce", "-b", &dead, "--timeout", "2"], "cannot connect"),
        (&["sweep", "--rates", "0"], "--rates"),
    ];
    for (args, needle) in cases {
        let start = Instant::now();
        let out = bench(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(stderr.contains(needle), "{args:?}: stderr lacks '{needle}':\n{stderr}");
        assert!(start.elapsed() < Duration::from_secs(20), "{args:?} took {:?}", start.elapsed());
    }
}

#[test]
fn a_broker_that_dies_mid_run_fails_the_run() {
    let mut broker = Broker::start(&[]);
    let addr = broker.bootstrap();
    let mut run = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["bench", "produce", "-b", &addr, "--duration", "30", "--timeout", "5", "--rate", "1000"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    broker.kill();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = run.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "weir bench did not notice the broker died");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(run.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("127.0.0.1"), "{stderr}");
}
