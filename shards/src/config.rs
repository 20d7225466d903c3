//! Broker configuration: embedded defaults, overridable by a TOML file and flags.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use weir_engine::{CleanupPolicy, LogConfig, TimestampType};

/// Everything a broker process needs to start. Field names follow Kafka's
/// settings where Kafka has one (e.g. `num_partitions` is `num.partitions`).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// This broker's id in Metadata responses (`node.id`).
    pub node_id: i32,
    /// Address every shard listens on (SO_REUSEPORT).
    pub listen: String,
    /// host:port clients are told to connect to (`advertised.listeners`);
    /// unset, the listen address.
    pub advertise: Option<String>,
    /// Root of all partition logs and broker metadata.
    pub data_dir: PathBuf,
    /// Number of shards (executors pinned to cores); 0 means one per online core.
    pub shards: usize,
    /// Partitions of an auto-created topic, or of CreateTopics with -1 (`num.partitions`).
    pub default_partitions: i32,
    /// Create unknown topics on first Metadata/Produce (`auto.create.topics.enable`).
    pub auto_create_topics: bool,
    /// Largest record batch accepted (`message.max.bytes`).
    pub message_max_bytes: usize,
    /// Largest request frame accepted (`socket.request.max.bytes`).
    pub socket_request_max_bytes: usize,
    /// Most record bytes one Fetch response carries, whatever the client
    /// asks for (`fetch.max.bytes`; the first batch still goes whole, KIP-74).
    /// Partitions are read against this budget, so it also bounds what one
    /// fetch holds in memory.
    pub fetch_max_bytes: usize,
    /// Roll a new segment at this size (`log.segment.bytes`).
    pub segment_bytes: u64,
    /// fdatasync after every write, not only for acks=all (`log.flush.interval.messages=1`).
    pub fsync_every_write: bool,
    /// Requests a connection may have in flight before the broker stops reading from it.
    pub max_in_flight_per_connection: usize,
    /// Sum of the frame sizes of one connection's in-flight requests before the
    /// broker stops reading from it (Kafka's `queued.max.request.bytes`, here
    /// per connection). A single larger frame is still served, alone.
    pub queued_max_request_bytes: usize,
    /// Most client connections the broker holds at once, all shards together
    /// (`max.connections`); a new connection over it is closed at once.
    pub max_connections: usize,
    /// Most connections from one IP address (`max.connections.per.ip`); a new
    /// connection over it is closed at once.
    pub max_connections_per_ip: usize,
    /// A connection that sends no request for this long is closed
    /// (`connections.max.idle.ms`).
    pub connections_max_idle_ms: u64,
    /// A connection whose responses cannot be written for this long (the
    /// client stopped reading them) is closed, so it holds neither memory nor
    /// a task forever. Kafka's clients give up on a request after
    /// `request.timeout.ms`, 30 s by default; this is the same.
    pub response_write_timeout_ms: u64,
    /// host:port of the admin HTTP endpoint (`GET /health`, `GET /metrics`);
    /// empty: no admin endpoint.
    pub admin_listen: String,
    /// A new group waits this long for more members before its first generation
    /// (`group.initial.rebalance.delay.ms`).
    pub group_initial_rebalance_delay_ms: u64,
    /// Allowed consumer session timeouts (`group.min/max.session.timeout.ms`).
    pub group_min_session_timeout_ms: u64,
    pub group_max_session_timeout_ms: u64,
    /// Most members one group may have (`group.max.size`).
    pub group_max_size: usize,
    /// How often each shard applies `retention.ms` / `retention.bytes` to its
    /// logs (`log.retention.check.interval.ms`).
    pub log_retention_check_interval_ms: u64,
    /// How often each shard compacts the logs of compacted topics
    /// (`log.cleaner.backoff.ms`).
    pub log_cleaner_backoff_ms: u64,
    /// A partition forgets the state of a producer id that wrote nothing to
    /// it for this long (`producer.id.expiration.ms`; by the batches'
    /// maxTimestamp, as Kafka), unless it has a transaction open there. Its
    /// next batch must then start a sequence again.
    pub producer_id_expiration_ms: u64,
    /// How often each shard looks for expired producer ids
    /// (`producer.id.expiration.check.interval.ms`).
    pub producer_id_expiration_check_interval_ms: u64,
    /// The transaction coordinator forgets a transactional id with no
    /// transaction in progress after this long without a state change
    /// (`transactional.id.expiration.ms`), writing a tombstone for it.
    pub transactional_id_expiration_ms: u64,
    /// How often the coordinator looks for expired transactional ids
    /// (`transaction.remove.expired.transaction.cleanup.interval.ms`).
    pub transaction_remove_expired_transaction_cleanup_interval_ms: u64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            node_id: 0,
            listen: "127.0.0.1:9092".into(),
            advertise: None,
            data_dir: PathBuf::from("weir-data"),
            shards: 0,
            default_partitions: 1,
            auto_create_topics: true,
            message_max_bytes: 1_048_588,
            socket_request_max_bytes: 104_857_600,
            fetch_max_bytes: 57_671_680,
            segment_bytes: 1 << 30,
            fsync_every_write: false,
            max_in_flight_per_connection: 64,
            queued_max_request_bytes: 104_857_600,
            max_connections: i32::MAX as usize,
            max_connections_per_ip: i32::MAX as usize,
            connections_max_idle_ms: 600_000,
            response_write_timeout_ms: 30_000,
            admin_listen: "127.0.0.1:9644".into(),
            group_initial_rebalance_delay_ms: 3000,
            group_min_session_timeout_ms: 6000,
            group_max_session_timeout_ms: 1_800_000,
            group_max_size: 10_000,
            log_retention_check_interval_ms: 300_000,
            log_cleaner_backoff_ms: 15_000,
            producer_id_expiration_ms: 86_400_000,
            producer_id_expiration_check_interval_ms: 600_000,
            transactional_id_expiration_ms: 604_800_000,
            transaction_remove_expired_transaction_cleanup_interval_ms: 3_600_000,
        }
    }
}

impl BrokerConfig {
    /// Reads a TOML file; keys missing from it keep their defaults.
    pub fn from_toml_file(path: &std::path::Path) -> Result<Self, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("invalid config file {}: {e}", path.display()))
    }

    /// Refuses limits that would make the broker unusable.
    pub fn validate(&self) -> Result<(), String> {
        let at_least_one = [
            ("max_connections", self.max_connections as u64),
            ("max_connections_per_ip", self.max_connections_per_ip as u64),
            ("max_in_flight_per_connection", self.max_in_flight_per_connection as u64),
            ("queued_max_request_bytes", self.queued_max_request_bytes as u64),
            ("connections_max_idle_ms", self.connections_max_idle_ms),
            ("response_write_timeout_ms", self.response_write_timeout_ms),
            ("producer_id_expiration_ms", self.producer_id_expiration_ms),
            ("producer_id_expiration_check_interval_ms", self.producer_id_expiration_check_interval_ms),
            ("transactional_id_expiration_ms", self.transactional_id_expiration_ms),
            (
                "transaction_remove_expired_transaction_cleanup_interval_ms",
                self.transaction_remove_expired_transaction_cleanup_interval_ms,
            ),
        ];
        for (name, value) in at_least_one {
            if value == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        if self.fetch_max_bytes < 1024 {
            return Err("fetch_max_bytes must be at least 1024".into());
        }
        self.advertised_host_port().map(drop)
    }

    /// The number of shards to run: the configured count, or one per online core.
    pub fn shard_count(&self) -> usize {
        if self.shards > 0 {
            self.shards
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }

    /// The address clients are told to connect to.
    pub fn advertised(&self) -> &str {
        self.advertise.as_deref().unwrap_or(&self.listen)
    }

    /// The advertised address split into host and port.
    pub fn advertised_host_port(&self) -> Result<(String, i32), String> {
        let advertise = self.advertised();
        let (host, port) =
            advertise.rsplit_once(':').ok_or_else(|| format!("advertise address '{advertise}' has no port"))?;
        let port = port.parse::<u16>().map_err(|_| format!("advertise address '{advertise}' has a bad port"))?;
        Ok((host.trim_matches(['[', ']']).to_string(), i32::from(port)))
    }
}

/// The topic configs Weir knows (Kafka's names), sorted. Any other name is
/// refused with INVALID_CONFIG.
pub const TOPIC_CONFIG_NAMES: &[&str] = &[
    CLEANUP_POLICY,
    "delete.retention.ms",
    "flush.messages",
    "flush.ms",
    "max.message.bytes",
    "message.timestamp.type",
    "min.insync.replicas",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.ms",
];

/// The one list-valued topic config (IncrementalAlterConfigs APPEND/SUBTRACT).
pub const CLEANUP_POLICY: &str = "cleanup.policy";

/// Kafka's "never" for `flush.messages` and `flush.ms`.
const NEVER: i64 = i64::MAX;

/// DescribeConfigs `config_type` codes (KIP-569).
pub mod config_type {
    pub const BOOLEAN: i8 = 1;
    pub const STRING: i8 = 2;
    pub const INT: i8 = 3;
    pub const LONG: i8 = 5;
    pub const LIST: i8 = 7;
}

/// The DescribeConfigs type of a topic config.
pub fn topic_config_type(name: &str) -> i8 {
    match name {
        "max.message.bytes" | "min.insync.replicas" | "segment.bytes" => config_type::INT,
        "message.timestamp.type" => config_type::STRING,
        CLEANUP_POLICY => config_type::LIST,
        _ => config_type::LONG,
    }
}

/// Checks one topic config; returns the value to store (trimmed, lists
/// normalised) or why it is refused.
pub fn validate_topic_config(name: &str, value: &str) -> Result<String, String> {
    let value = value.trim();
    let number = |min: i64, max: i64| -> Result<String, String> {
        match value.parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n.to_string()),
            Ok(n) => Err(format!("{name}: {n} is outside [{min}, {max}]")),
            Err(_) => Err(format!("{name}: '{value}' is not an integer")),
        }
    };
    let int = i64::from(i32::MAX);
    match name {
        "segment.bytes" => number(14, int),
        "max.message.bytes" => number(0, int),
        "segment.ms" | "flush.messages" => number(1, i64::MAX),
        "delete.retention.ms" | "flush.ms" => number(0, i64::MAX),
        "retention.ms" | "retention.bytes" => number(-1, i64::MAX),
        "min.insync.replicas" => number(1, 1).map_err(|_| format!("{name}: a single broker has one replica; only 1")),
        "message.timestamp.type" => match value {
            "CreateTime" | "LogAppendTime" => Ok(value.to_string()),
            _ => Err(format!("{name}: '{value}' is not CreateTime or LogAppendTime")),
        },
        CLEANUP_POLICY => parse_cleanup_policy(value).map(|_| normalise_list(value)),
        _ => Err(format!("unknown topic config '{name}'")),
    }
}

/// `compact,delete` (any order, spaces allowed; duplicates ignored).
fn parse_cleanup_policy(value: &str) -> Result<CleanupPolicy, String> {
    let (mut compact, mut delete) = (false, false);
    for item in value.split(',').map(str::trim) {
        match item {
            "compact" => compact = true,
            "delete" => delete = true,
            _ => return Err(format!("{CLEANUP_POLICY}: '{item}' is not compact or delete")),
        }
    }
    match (compact, delete) {
        (true, true) => Ok(CleanupPolicy::CompactDelete),
        (true, false) => Ok(CleanupPolicy::Compact),
        (false, true) => Ok(CleanupPolicy::Delete),
        (false, false) => Err(format!("{CLEANUP_POLICY}: empty")),
    }
}

/// The items of a list value, trimmed, deduplicated, in first-seen order.
pub fn list_items(value: &str) -> Vec<String> {
    let mut items: Vec<String> = Vec::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        if !items.iter().any(|i| i == item) {
            items.push(item.to_string());
        }
    }
    items
}

fn normalise_list(value: &str) -> String {
    list_items(value).join(",")
}

impl BrokerConfig {
    /// A topic config's value when the topic does not set it. Internal
    /// topics (`__consumer_offsets`) are compacted, as in Kafka.
    pub fn topic_config_default(&self, topic: &str, name: &str) -> String {
        match name {
            CLEANUP_POLICY if topic.starts_with("__") => "compact".into(),
            CLEANUP_POLICY => "delete".into(),
            "segment.bytes" => self.segment_bytes.min(i32::MAX as u64).to_string(),
            "max.message.bytes" => self.message_max_bytes.min(i32::MAX as usize).to_string(),
            "segment.ms" | "retention.ms" => "604800000".into(),
            "retention.bytes" => "-1".into(),
            "delete.retention.ms" => "86400000".into(),
            "flush.messages" | "flush.ms" => NEVER.to_string(),
            "min.insync.replicas" => "1".into(),
            "message.timestamp.type" => "CreateTime".into(),
            _ => String::new(),
        }
    }

    /// Every known topic config of `topic`: (name, value, set on the topic).
    pub fn effective_topic_configs(
        &self,
        topic: &str,
        explicit: &BTreeMap<String, String>,
    ) -> Vec<(&'static str, String, bool)> {
        TOPIC_CONFIG_NAMES
            .iter()
            .map(|&name| match explicit.get(name) {
                Some(value) => (name, value.clone(), true),
                None => (name, self.topic_config_default(topic, name), false),
            })
            .collect()
    }

    /// The engine configuration of `topic`'s logs: its explicit configs over
    /// the broker defaults. Stored configs were validated when set; a value
    /// that no longer parses falls back to the default.
    pub fn log_config(&self, topic: &str, explicit: &BTreeMap<String, String>) -> LogConfig {
        let value = |name: &str| explicit.get(name).cloned().unwrap_or_else(|| self.topic_config_default(topic, name));
        let long = |name: &str| {
            value(name).parse::<i64>().unwrap_or_else(|_| self.topic_config_default(topic, name).parse().unwrap_or(-1))
        };
        let at_least_zero = |n: i64| u64::try_from(n).ok();
        let unless_never = |n: i64| if n == NEVER { None } else { at_least_zero(n) };
        LogConfig {
            segment_bytes: at_least_zero(long("segment.bytes")).unwrap_or(self.segment_bytes),
            max_batch_bytes: at_least_zero(long("max.message.bytes")).map_or(self.message_max_bytes, |n| n as usize),
            fsync_every_write: self.fsync_every_write,
            flush_messages: unless_never(long("flush.messages")),
            flush_ms: unless_never(long("flush.ms")),
            segment_ms: at_least_zero(long("segment.ms")),
            retention_ms: at_least_zero(long("retention.ms")),
            retention_bytes: at_least_zero(long("retention.bytes")),
            cleanup_policy: parse_cleanup_policy(&value(CLEANUP_POLICY)).unwrap_or(CleanupPolicy::Delete),
            delete_retention_ms: at_least_zero(long("delete.retention.ms")).unwrap_or(86_400_000),
            timestamp_type: match value("message.timestamp.type").as_str() {
                "LogAppendTime" => TimestampType::LogAppendTime,
                _ => TimestampType::CreateTime,
            },
            ..LogConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_configs_validate_and_map_to_the_log() {
        assert_eq!(validate_topic_config("segment.bytes", " 1024 "), Ok("1024".into()));
        assert!(validate_topic_config("segment.bytes", "10").is_err());
        assert!(validate_topic_config("segment.bytes", "x").is_err());
        assert!(validate_topic_config("no.such.config", "1").is_err());
        assert!(validate_topic_config("message.timestamp.type", "Wallclock").is_err());
        assert!(validate_topic_config("min.insync.replicas", "2").is_err());
        assert_eq!(validate_topic_config(CLEANUP_POLICY, "delete, compact,delete"), Ok("delete,compact".into()));
        assert!(validate_topic_config(CLEANUP_POLICY, "compact,forever").is_err());
        assert!(validate_topic_config(CLEANUP_POLICY, "").is_err());

        let broker = BrokerConfig::default();
        let defaults = broker.log_config("t", &BTreeMap::new());
        assert_eq!(defaults.segment_bytes, 1 << 30);
        assert_eq!(defaults.retention_ms, Some(604_800_000));
        assert_eq!((defaults.retention_bytes, defaults.flush_messages, defaults.flush_ms), (None, None, None));
        assert_eq!(defaults.cleanup_policy, CleanupPolicy::Delete);
        assert_eq!(broker.log_config("__consumer_offsets", &BTreeMap::new()).cleanup_policy, CleanupPolicy::Compact);
        let set: BTreeMap<String, String> = [
            ("segment.bytes", "2048"),
            ("retention.ms", "-1"),
            ("retention.bytes", "4096"),
            ("cleanup.policy", "compact,delete"),
            ("message.timestamp.type", "LogAppendTime"),
            ("flush.messages", "1"),
            ("max.message.bytes", "100"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let log = broker.log_config("t", &set);
        assert_eq!((log.segment_bytes, log.retention_ms, log.retention_bytes), (2048, None, Some(4096)));
        assert_eq!(log.cleanup_policy, CleanupPolicy::CompactDelete);
        assert_eq!(log.timestamp_type, TimestampType::LogAppendTime);
        assert_eq!((log.flush_messages, log.max_batch_bytes), (Some(1), 100));
        let effective = broker.effective_topic_configs("t", &set);
        assert_eq!(effective.len(), TOPIC_CONFIG_NAMES.len());
        assert!(effective.contains(&("segment.bytes", "2048".into(), true)));
        assert!(effective.contains(&("segment.ms", "604800000".into(), false)));
    }

    #[test]
    fn toml_overrides_only_given_keys() {
        let cfg: BrokerConfig = toml::from_str("listen = \"0.0.0.0:9000\"\nshards = 3").unwrap();
        assert_eq!(cfg.listen, "0.0.0.0:9000");
        assert_eq!(cfg.shards, 3);
        assert_eq!(cfg.default_partitions, 1);
        assert_eq!(cfg.connections_max_idle_ms, 600_000);
        let limits: BrokerConfig =
            toml::from_str("max_connections = 10\nmax_connections_per_ip = 2\nadmin_listen = \"\"").unwrap();
        assert_eq!((limits.max_connections, limits.max_connections_per_ip), (10, 2));
        assert!(limits.admin_listen.is_empty());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(toml::from_str::<BrokerConfig>("lissten = \"x\"").is_err());
    }

    #[test]
    fn advertise_splits_host_and_port() {
        let cfg = BrokerConfig { advertise: Some("[::1]:9093".into()), ..Default::default() };
        assert_eq!(cfg.advertised_host_port().unwrap(), ("::1".to_string(), 9093));
        let bad = BrokerConfig { advertise: Some("localhost".into()), ..Default::default() };
        assert!(bad.advertised_host_port().is_err());
        let unset = BrokerConfig { listen: "0.0.0.0:9000".into(), ..Default::default() };
        assert_eq!(unset.advertised_host_port().unwrap(), ("0.0.0.0".to_string(), 9000));
    }
}
