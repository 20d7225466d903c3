//! Every knob of a run, as command-line flags and as the `params` object of
//! the JSON report, and the checks that refuse nonsense before anything starts.

use clap::ValueEnum;
use serde::Serialize;
use std::path::PathBuf;

/// Largest message the generator builds (the broker's batch limit is about 1 MiB).
pub const MAX_MESSAGE_SIZE: usize = 16 << 20;
/// Largest number of records per batch.
pub const MAX_BATCH_RECORDS: usize = 100_000;
/// Upper bounds on workers, so a typo cannot start a million threads.
pub const MAX_PRODUCERS: usize = 256;
pub const MAX_CONSUMERS: usize = 256;
pub const MAX_IN_FLIGHT: usize = 1024;
/// A run never lasts longer than this (duration plus warm-up).
pub const MAX_RUN_SECONDS: f64 = 24.0 * 3600.0;
/// End-to-end latency needs the send time in the first 8 bytes of each value.
pub const TIMESTAMP_BYTES: usize = 8;

/// What the broker must do before it answers a produce request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
pub enum Acks {
    /// No answer at all.
    #[value(name = "0")]
    #[serde(rename = "0")]
    None,
    /// The leader wrote it.
    #[value(name = "1")]
    #[serde(rename = "1")]
    Leader,
    /// All in-sync replicas have it (on Weir: fdatasynced).
    #[value(name = "all")]
    #[serde(rename = "all")]
    All,
}

impl Acks {
    pub fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CompressionKind {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl CompressionKind {
    pub fn codec(self) -> weir_engine::compression::Codec {
        use weir_engine::compression::Codec;
        match self {
            CompressionKind::None => Codec::None,
            CompressionKind::Gzip => Codec::Gzip,
            CompressionKind::Snappy => Codec::Snappy,
            CompressionKind::Lz4 => Codec::Lz4,
            CompressionKind::Zstd => Codec::Zstd,
        }
    }
}

/// Keys written into each record (8 bytes when present). Batches go to the
/// producer's partitions in turn whatever the key: the key shapes the bytes
/// sent, not the placement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyDistribution {
    /// Null keys.
    None,
    /// A random u64 per record.
    Random,
    /// The message sequence number of its producer.
    Sequential,
}

/// Where consumers start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    Earliest,
    Latest,
}

/// The workload and its measurement; shared by produce, consume, e2e and sweep.
#[derive(clap::Args, Clone, Debug, Serialize)]
pub struct Params {
    /// host:port of a broker of the cluster under test.
    #[arg(long, short = 'b', default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// Topic to use; created with --partitions if it does not exist.
    #[arg(long, short = 't', default_value = "weir-bench")]
    pub topic: String,
    /// Partitions of the topic when it is created.
    #[arg(long, short = 'p', default_value_t = 1)]
    pub partitions: i32,
    /// Producer connections, each with a sender and a receiver thread; partitions are shared out among them.
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Consumers, each fetching an equal share of the partitions (or, with --group, what the group assigns).
    #[arg(long, default_value_t = 1)]
    pub consumers: usize,
    /// Consumers join this consumer group, which splits the partitions among them; they start at the
    /// group's committed offsets and commit as they go.
    #[arg(long)]
    pub group: Option<String>,
    /// Bytes of each message value.
    #[arg(long, short = 's', default_value_t = 1024)]
    pub message_size: usize,
    /// Records per batch (one batch per produce request).
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// With --rate: a batch is sent once it is full or its first message waited this long.
    #[arg(long, default_value_t = 5.0)]
    pub linger_ms: f64,
    /// 0, 1 or all.
    #[arg(long, value_enum, default_value = "1")]
    pub acks: Acks,
    #[arg(long, value_enum, default_value = "none")]
    pub compression: CompressionKind,
    /// Keys of the records.
    #[arg(long, value_enum, default_value = "none")]
    pub keys: KeyDistribution,
    /// Offered load in messages per second over all producers [default: as fast as possible].
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds measured, after the warm-up.
    #[arg(long, short = 'd', default_value_t = 10.0)]
    pub duration: f64,
    /// Stop after this many messages in all (warm-up included) instead of after --duration.
    #[arg(long, short = 'n')]
    pub messages: Option<u64>,
    /// Seconds at the start whose results are not counted.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Produce requests awaiting an answer per connection.
    #[arg(long, default_value_t = 5)]
    pub max_in_flight: usize,
    /// Seconds to wait for connecting, for any answer, or for a socket write; a broker that
    /// stops answering fails the run after this.
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
    /// Where consumers start [default: earliest for consume, latest for e2e].
    #[arg(long, value_enum)]
    pub from: Option<StartAt>,
    /// Long-poll time of a fetch.
    #[arg(long, default_value_t = 500)]
    pub fetch_max_wait_ms: i32,
    /// Bytes one fetch may return per partition.
    #[arg(long, default_value_t = 1 << 20)]
    pub fetch_partition_max_bytes: i32,
    /// Do not contact --bootstrap: produce into an in-process fake broker that answers at once,
    /// to measure the generator's own ceiling.
    #[arg(long)]
    pub dry_run: bool,
    /// Write every parameter and figure to this JSON file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Draw the latency-percentile and throughput-over-time charts to this SVG file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

/// Which sides of the workload run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Produce,
    Consume,
    E2e,
}

impl Mode {
    pub fn produces(self) -> bool {
        matches!(self, Mode::Produce | Mode::E2e)
    }
    pub fn consumes(self) -> bool {
        matches!(self, Mode::Consume | Mode::E2e)
    }
}

impl Params {
    /// Refuses parameters that cannot describe a run; the message names the flag.
    pub fn validate(&self, mode: Mode) -> Result<(), String> {
        let finite_positive = |v: f64| v.is_finite() && v > 0.0;
        if self.topic.is_empty() || self.topic.len() > 249 {
            return Err("--topic must be 1 to 249 characters".into());
        }
        if self.group.is_some() && (self.dry_run || !mode.consumes()) {
            return Err("--group needs consumers on a real broker (consume or e2e, without --dry-run)".into());
        }
        if !self.topic.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
            return Err(format!("--topic '{}' may only hold ASCII letters, digits, '.', '_' and '-'", self.topic));
        }
        if !(1..=100_000).contains(&self.partitions) {
            return Err(format!("--partitions must be 1 to 100000, not {}", self.partitions));
        }
        if mode.produces() && !(1..=MAX_PRODUCERS).contains(&self.producers) {
            return Err(format!("--producers must be 1 to {MAX_PRODUCERS}, not {}", self.producers));
        }
        if mode.consumes() && !(1..=MAX_CONSUMERS).contains(&self.consumers) {
            return Err(format!("--consumers must be 1 to {MAX_CONSUMERS}, not {}", self.consumers));
        }
        if mode.consumes() && self.consumers > self.partitions as usize {
            return Err(format!(
                "--consumers {} is more than --partitions {}: a consumer would have nothing to read",
                self.consumers, self.partitions
            ));
        }
        if self.message_size > MAX_MESSAGE_SIZE {
            return Err(format!("--message-size must be at most {MAX_MESSAGE_SIZE}, not {}", self.message_size));
        }
        if mode == Mode::E2e && self.message_size < TIMESTAMP_BYTES {
            return Err(format!("e2e needs --message-size of at least {TIMESTAMP_BYTES} to carry the send time"));
        }
        if !(1..=MAX_BATCH_RECORDS).contains(&self.batch_size) {
            return Err(format!("--batch-size must be 1 to {MAX_BATCH_RECORDS} records, not {}", self.batch_size));
        }
        if !(self.linger_ms.is_finite() && self.linger_ms >= 0.0) {
            return Err("--linger-ms must be zero or more".into());
        }
        if let Some(rate) = self.rate {
            if !finite_positive(rate) {
                return Err(format!("--rate must be a positive number of messages per second, not {rate}"));
            }
        }
        if !finite_positive(self.duration) || self.duration + self.warmup > MAX_RUN_SECONDS {
            return Err(format!("--duration must be positive and at most {MAX_RUN_SECONDS} s with the warm-up"));
        }
        if !(self.warmup.is_finite() && self.warmup >= 0.0) {
            return Err("--warmup must be zero or more seconds".into());
        }
        if self.messages == Some(0) {
            return Err("--messages must be at least 1".into());
        }
        if !(1..=MAX_IN_FLIGHT).contains(&self.max_in_flight) {
            return Err(format!("--max-in-flight must be 1 to {MAX_IN_FLIGHT}, not {}", self.max_in_flight));
        }
        if !(self.timeout.is_finite() && (0.1..=3600.0).contains(&self.timeout)) {
            return Err("--timeout must be 0.1 to 3600 seconds".into());
        }
        if !(0..=30_000).contains(&self.fetch_max_wait_ms) {
            return Err("--fetch-max-wait-ms must be 0 to 30000".into());
        }
        if self.fetch_partition_max_bytes < 1024 {
            return Err("--fetch-partition-max-bytes must be at least 1024".into());
        }
        if self.dry_run && mode != Mode::Produce {
            return Err("--dry-run measures producing only; use it with `weir bench produce`".into());
        }
        Ok(())
    }

    /// Where consumers start in `mode`.
    pub fn start_at(&self, mode: Mode) -> StartAt {
        self.from.unwrap_or(if mode == Mode::E2e { StartAt::Latest } else { StartAt::Earliest })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        params: Params,
    }

    pub(crate) fn parse(args: &[&str]) -> Params {
        Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied())).expect("parses").params
    }

    #[test]
    fn defaults_are_valid_for_every_mode() {
        let p = parse(&[]);
        for mode in [Mode::Produce, Mode::Consume, Mode::E2e] {
            p.validate(mode).unwrap();
        }
        assert_eq!(p.acks, Acks::Leader);
        assert_eq!(p.start_at(Mode::Consume), StartAt::Earliest);
        assert_eq!(p.start_at(Mode::E2e), StartAt::Latest);
    }

    #[test]
    fn acks_spellings() {
        assert_eq!(parse(&["--acks", "all"]).acks.wire(), -1);
        assert_eq!(parse(&["--acks", "0"]).acks.wire(), 0);
        let cli = Cli::try_parse_from(["bench", "--acks", "2"]);
        assert!(cli.is_err());
    }

    #[test]
    fn nonsense_is_refused_with_the_flag_named() {
        let cases: &[(&[&str], Mode, &str)] = &[
            (&["--partitions", "0"], Mode::Produce, "--partitions"),
            (&["--producers", "0"], Mode::Produce, "--producers"),
            (&["--consumers", "3", "--partitions", "2"], Mode::Consume, "--consumers"),
            (&["--message-size", "4"], Mode::E2e, "--message-size"),
            (&["--batch-size", "0"], Mode::Produce, "--batch-size"),
            (&["--rate", "0"], Mode::Produce, "--rate"),
            (&["--rate", "NaN"], Mode::Produce, "--rate"),
            (&["--duration", "0"], Mode::Produce, "--duration"),
            (&["--warmup=-1"], Mode::Produce, "--warmup"),
            (&["--messages", "0"], Mode::Produce, "--messages"),
            (&["--max-in-flight", "0"], Mode::Produce, "--max-in-flight"),
            (&["--timeout", "0"], Mode::Produce, "--timeout"),
            (&["--topic", "a b"], Mode::Produce, "--topic"),
            (&["--dry-run"], Mode::E2e, "--dry-run"),
        ];
        for (args, mode, flag) in cases {
            let err = parse(args).validate(*mode).expect_err(&format!("{args:?} should be refused"));
            assert!(err.contains(flag), "{args:?}: '{err}' does not name {flag}");
        }
        // Flags that do not apply to a mode are not checked for it.
        parse(&["--consumers", "0"]).validate(Mode::Produce).unwrap();
        parse(&["--message-size", "0"]).validate(Mode::Produce).unwrap();
    }
}
