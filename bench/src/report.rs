//! What a run found: the JSON shape and the human-readable summary.

use crate::params::{Acks, Mode, Params};
use crate::stats::{ms, Percentiles};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub mode: Mode,
    pub params: Params,
    pub generator: Generator,
    /// Length of the measured window (after the warm-up).
    pub measured_seconds: f64,
    pub produce: Option<Throughput>,
    pub consume: Option<Throughput>,
    /// Per message, from the batch's intended send time to its acknowledgement.
    pub produce_latency: Option<Percentiles>,
    /// Per message, from the batch's intended send time to its arrival at a consumer.
    pub e2e_latency: Option<Percentiles>,
    /// (percentile, ms) points for the latency chart.
    pub produce_latency_curve: Vec<(f64, f64)>,
    pub e2e_latency_curve: Vec<(f64, f64)>,
    /// Throughput in each second of the run, warm-up included.
    pub timeline: Vec<Sample>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Generator {
    pub version: &'static str,
    /// Partitions of the topic as found (or created).
    pub partitions: i32,
    pub producer_connections: usize,
    pub consumer_connections: usize,
    /// Records per produce request (the batch size, or fewer when the linger ends it first).
    pub records_per_batch: Option<usize>,
    /// CPU time of the whole bench process during the run (user + system).
    pub cpu_seconds: f64,
    /// That CPU time per 10^9 payload bytes produced plus consumed.
    pub cpu_seconds_per_gb: Option<f64>,
}

/// Payload throughput over the measured window; MB = 10^6 bytes of message values.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Throughput {
    pub messages: u64,
    pub bytes: u64,
    pub messages_per_s: f64,
    pub mb_per_s: f64,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct Sample {
    /// Seconds since the start (end of this one-second sample).
    pub t_s: f64,
    pub produce_messages_per_s: f64,
    pub produce_mb_per_s: f64,
    pub consume_messages_per_s: f64,
    pub consume_mb_per_s: f64,
}

impl Report {
    /// The summary printed at the end of a run.
    pub fn summary(&self) -> String {
        let p = &self.params;
        let mut out = String::new();
        let target = if p.dry_run { "a loopback fake broker (--dry-run)".to_string() } else { p.bootstrap.clone() };
        let _ = writeln!(
            out,
            "weir bench {}: {target}, topic {} ({} partitions)",
            name(&self.mode),
            p.topic,
            self.generator.partitions
        );
        if self.mode.produces() {
            let acks = match p.acks {
                Acks::None => "0",
                Acks::Leader => "1",
                Acks::All => "all",
            };
            let rate = p.rate.map_or("unthrottled".to_string(), |r| format!("{r:.0} msg/s offered"));
            let _ = writeln!(
                out,
                "  {} producer connection(s), {}-byte messages, {} per request, acks={acks}, compression {}, keys {}, {rate}, {} in flight",
                self.generator.producer_connections,
                p.message_size,
                self.generator.records_per_batch.unwrap_or(p.batch_size),
                name(&p.compression),
                name(&p.keys),
                p.max_in_flight,
            );
        }
        if self.mode.consumes() {
            let _ = writeln!(
                out,
                "  {} consumer connection(s) (assigned partitions, no group)",
                self.generator.consumer_connections
            );
        }
        let _ = writeln!(out, "  measured {:.2} s after a {} s warm-up", self.measured_seconds, p.warmup);
        let line = |out: &mut String, what: &str, t: &Throughput| {
            let _ = writeln!(
                out,
                "{what:<10} {:>12.0} msg/s {:>10.2} MB/s   ({} messages, {} bytes)",
                t.messages_per_s, t.mb_per_s, t.messages, t.bytes
            );
        };
        if let Some(t) = &self.produce {
            line(&mut out, "produced", t);
        }
        if let Some(t) = &self.consume {
            line(&mut out, "consumed", t);
        }
        let lat = |out: &mut String, what: &str, l: &Option<Percentiles>| {
            if let Some(l) = l {
                let _ = writeln!(out, "{what:<17} {}  (mean {}, {} messages)", l.line(), ms(l.mean_ms), l.count);
            }
        };
        lat(&mut out, "produce latency", &self.produce_latency);
        lat(&mut out, "e2e latency", &self.e2e_latency);
        if p.rate.is_some() && (self.produce_latency.is_some() || self.e2e_latency.is_some()) {
            let _ =
                writeln!(out, "  (latency from each batch's intended send time: corrected for coordinated omission)");
        }
        let per_gb = self.generator.cpu_seconds_per_gb.map_or(String::new(), |g| format!(", {g:.2} s per GB moved"));
        let _ = writeln!(out, "generator CPU {:.2} s{per_gb}", self.generator.cpu_seconds);
        out
    }

    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        write_json(path, self)
    }
}

/// The name a value has in the JSON report ("none", "e2e", ...).
pub fn name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// Writes `value` as pretty JSON to `path`.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text + "\n").map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::params::tests::parse;
    use crate::stats::Latency;
    use std::time::Duration;

    pub(crate) fn sample_report() -> Report {
        let mut l = Latency::new();
        for us in 1..=1000 {
            l.record(Duration::from_micros(us));
        }
        Report {
            mode: Mode::E2e,
            params: parse(&["--rate", "1000"]),
            generator: Generator {
                version: "0",
                partitions: 1,
                producer_connections: 1,
                consumer_connections: 1,
                records_per_batch: Some(5),
                cpu_seconds: 1.0,
                cpu_seconds_per_gb: Some(2.0),
            },
            measured_seconds: 10.0,
            produce: Some(Throughput { messages: 10_000, bytes: 10_240_000, messages_per_s: 1000.0, mb_per_s: 1.024 }),
            consume: Some(Throughput { messages: 10_000, bytes: 10_240_000, messages_per_s: 1000.0, mb_per_s: 1.024 }),
            produce_latency: l.summary(),
            e2e_latency: l.summary(),
            produce_latency_curve: l.curve(),
            e2e_latency_curve: l.curve(),
            timeline: vec![Sample {
                t_s: 1.0,
                produce_messages_per_s: 1000.0,
                produce_mb_per_s: 1.0,
                consume_messages_per_s: 1000.0,
                consume_mb_per_s: 1.0,
            }],
        }
    }

    #[test]
    fn json_has_every_parameter_and_figure() {
        let v = serde_json::to_value(sample_report()).unwrap();
        assert_eq!(v["mode"], "e2e");
        for key in
            ["bootstrap", "topic", "partitions", "producers", "consumers", "message_size", "batch_size", "linger_ms"]
        {
            assert!(v["params"].get(key).is_some(), "params.{key} missing");
        }
        for key in
            ["acks", "compression", "keys", "rate", "duration", "messages", "warmup", "max_in_flight", "json", "plot"]
        {
            assert!(v["params"].get(key).is_some(), "params.{key} missing");
        }
        assert_eq!(v["params"]["acks"], "1");
        assert_eq!(v["params"]["compression"], "none");
        for key in ["p50_ms", "p90_ms", "p99_ms", "p99.9_ms", "p99.99_ms", "max_ms", "mean_ms", "count"] {
            assert!(v["produce_latency"][key].is_number(), "produce_latency.{key}");
            assert!(v["e2e_latency"][key].is_number(), "e2e_latency.{key}");
        }
        for key in ["messages", "bytes", "messages_per_s", "mb_per_s"] {
            assert!(v["produce"][key].is_number() && v["consume"][key].is_number(), "{key}");
        }
        assert!(v["generator"]["cpu_seconds_per_gb"].is_number());
        assert!(v["timeline"][0]["produce_mb_per_s"].is_number());
        assert!(v["produce_latency_curve"][0][1].is_number());
    }

    #[test]
    fn summary_names_the_figures() {
        let s = sample_report().summary();
        for needle in
            ["produced", "consumed", "MB/s", "produce latency", "e2e latency", "p99.99", "coordinated omission"]
        {
            assert!(s.contains(needle), "summary lacks '{needle}':\n{s}");
        }
    }
}
