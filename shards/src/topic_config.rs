//! Topic configs as Kafka 4.x has them: every name, its type, the values it
//! takes, its default and the broker config it defaults to (its synonym);
//! and the dynamic broker configs (KIP-226) that change those defaults and a
//! few limits at runtime. `BrokerConfig` (config.rs) resolves a value
//! through the layers: topic, dynamic per-broker, dynamic cluster default,
//! static (the config file), Kafka's default.

use crate::config::BrokerConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use weir_engine::{CleanupPolicy, LogConfig, TimestampType};

/// The one list-valued topic config Weir acts on (IncrementalAlterConfigs
/// APPEND/SUBTRACT start from its default).
pub const CLEANUP_POLICY: &str = "cleanup.policy";

/// DescribeConfigs `config_type` codes (KIP-569).
pub mod config_type {
    pub const BOOLEAN: i8 = 1;
    pub const STRING: i8 = 2;
    pub const INT: i8 = 3;
    pub const SHORT: i8 = 4;
    pub const LONG: i8 = 5;
    pub const DOUBLE: i8 = 6;
    pub const LIST: i8 = 7;
}

/// DescribeConfigs `config_source` codes (KIP-226).
pub mod source {
    pub const TOPIC: i8 = 1;
    pub const DYNAMIC_BROKER: i8 = 2;
    pub const DYNAMIC_DEFAULT_BROKER: i8 = 3;
    pub const STATIC_BROKER: i8 = 4;
    pub const DEFAULT: i8 = 5;
    /// Set on a consumer group (KIP-848).
    pub const GROUP: i8 = 8;
}

/// What values a topic config takes.
#[derive(Clone, Copy, Debug)]
enum Valid {
    /// An integer in the range (the type's own bounds apply too).
    Range(i64, i64),
    /// `true` or `false`, any case.
    Boolean,
    /// A floating-point number in [0, 1].
    Ratio,
    /// One of these strings.
    OneOf(&'static [&'static str]),
    /// `compact`, `delete` or both.
    CleanupPolicy,
    /// Empty, `*`, or `partition:broker` pairs (Kafka's ThrottledReplicaListValidator).
    ThrottledReplicas,
    /// gzip: -1 (the codec's default) or 1..=9.
    GzipLevel,
    /// Any text.
    Any,
}

/// One config (a topic's, or a dynamic broker config) as Kafka defines it.
#[derive(Debug)]
pub struct ConfigDef {
    pub name: &'static str,
    pub config_type: i8,
    valid: Valid,
    /// Kafka's default (some are the broker's, see `BrokerConfig::static_value`).
    pub default: &'static str,
    /// The broker config it defaults to (Kafka's `ServerTopicConfigSynonyms`).
    pub synonym: Option<&'static str>,
    /// What it means here, for DescribeConfigs' documentation.
    pub doc: &'static str,
}

const MAX: i64 = i64::MAX;
const INT_MAX: i64 = i32::MAX as i64;
/// Kafka's "never" for `flush.messages`, `flush.ms` and the timestamp bounds.
const NEVER: &str = "9223372036854775807";

const fn def(
    name: &'static str,
    config_type: i8,
    valid: Valid,
    default: &'static str,
    synonym: Option<&'static str>,
    doc: &'static str,
) -> ConfigDef {
    ConfigDef { name, config_type, valid, default, synonym, doc }
}

use config_type::{BOOLEAN, DOUBLE, INT, LIST, LONG, STRING};

/// Every topic config of Kafka 4.x, sorted by name.
pub const TOPIC_CONFIGS: &[ConfigDef] = &[
    def(
        CLEANUP_POLICY,
        LIST,
        Valid::CleanupPolicy,
        "delete",
        Some("log.cleanup.policy"),
        "delete: retention removes old segments; compact: the newest record per key is kept (records need a key).",
    ),
    def(
        "compression.gzip.level",
        INT,
        Valid::GzipLevel,
        "-1",
        Some("compression.gzip.level"),
        "Level of compression.type=gzip, used when the broker recompresses.",
    ),
    def(
        "compression.lz4.level",
        INT,
        Valid::Range(1, 17),
        "9",
        Some("compression.lz4.level"),
        "Level of compression.type=lz4, used when the broker recompresses.",
    ),
    def(
        "compression.type",
        STRING,
        Valid::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
        "producer",
        Some("compression.type"),
        "Codec of stored batches: producer keeps the producer's; any other is what the broker recompresses to.",
    ),
    def(
        "compression.zstd.level",
        INT,
        Valid::Range(-131_072, 22),
        "3",
        Some("compression.zstd.level"),
        "Level of compression.type=zstd, used when the broker recompresses.",
    ),
    def(
        "delete.retention.ms",
        LONG,
        Valid::Range(0, MAX),
        "86400000",
        Some("log.cleaner.delete.retention.ms"),
        "How long compaction keeps a tombstone.",
    ),
    def(
        "file.delete.delay.ms",
        LONG,
        Valid::Range(0, MAX),
        "60000",
        Some("log.segment.delete.delay.ms"),
        "Stored; Weir deletes a segment's files at once (readers hold them open).",
    ),
    def(
        "flush.messages",
        LONG,
        Valid::Range(1, MAX),
        NEVER,
        Some("log.flush.interval.messages"),
        "fdatasync once this many records were written since the last sync.",
    ),
    def(
        "flush.ms",
        LONG,
        Valid::Range(0, MAX),
        NEVER,
        Some("log.flush.interval.ms"),
        "fdatasync when the oldest unsynced write is this old.",
    ),
    def(
        "follower.replication.throttled.replicas",
        LIST,
        Valid::ThrottledReplicas,
        "",
        None,
        "Stored; a single broker replicates nothing.",
    ),
    def(
        "index.interval.bytes",
        INT,
        Valid::Range(0, INT_MAX),
        "4096",
        Some("log.index.interval.bytes"),
        "One offset index entry per this many bytes of batches (for logs opened after the change).",
    ),
    def(
        "leader.replication.throttled.replicas",
        LIST,
        Valid::ThrottledReplicas,
        "",
        None,
        "Stored; a single broker replicates nothing.",
    ),
    def(
        "local.retention.bytes",
        LONG,
        Valid::Range(-2, MAX),
        "-2",
        Some("log.local.retention.bytes"),
        "Tiered storage; stored, not used (no remote storage).",
    ),
    def(
        "local.retention.ms",
        LONG,
        Valid::Range(-2, MAX),
        "-2",
        Some("log.local.retention.ms"),
        "Tiered storage; stored, not used (no remote storage).",
    ),
    def(
        "max.compaction.lag.ms",
        LONG,
        Valid::Range(1, MAX),
        NEVER,
        Some("log.cleaner.max.compaction.lag.ms"),
        "A compacted topic's active segment rolls at least this often, so compaction reaches its records.",
    ),
    def(
        "max.message.bytes",
        INT,
        Valid::Range(0, INT_MAX),
        "1048588",
        Some("message.max.bytes"),
        "Largest record batch accepted.",
    ),
    def(
        "message.timestamp.after.max.ms",
        LONG,
        Valid::Range(0, MAX),
        "3600000",
        Some("log.message.timestamp.after.max.ms"),
        "With CreateTime, a record more than this far ahead of the broker's clock is refused (INVALID_TIMESTAMP).",
    ),
    def(
        "message.timestamp.before.max.ms",
        LONG,
        Valid::Range(0, MAX),
        NEVER,
        Some("log.message.timestamp.before.max.ms"),
        "With CreateTime, a record more than this far behind the broker's clock is refused (INVALID_TIMESTAMP).",
    ),
    def(
        "message.timestamp.type",
        STRING,
        Valid::OneOf(&["CreateTime", "LogAppendTime"]),
        "CreateTime",
        Some("log.message.timestamp.type"),
        "CreateTime keeps the producer's timestamps; LogAppendTime stamps the append time.",
    ),
    def(
        "min.cleanable.dirty.ratio",
        DOUBLE,
        Valid::Ratio,
        "0.5",
        Some("log.cleaner.min.cleanable.ratio"),
        "Stored; Weir compacts every sealed segment each cleaner pass, whatever the ratio.",
    ),
    def(
        "min.compaction.lag.ms",
        LONG,
        Valid::Range(0, MAX),
        "0",
        Some("log.cleaner.min.compaction.lag.ms"),
        "Compaction leaves segments with records younger than this.",
    ),
    def(
        "min.insync.replicas",
        INT,
        Valid::Range(1, INT_MAX),
        "1",
        Some("min.insync.replicas"),
        "acks=all needs this many in-sync replicas (a single broker has one: above 1, NOT_ENOUGH_REPLICAS).",
    ),
    def(
        "preallocate",
        BOOLEAN,
        Valid::Boolean,
        "false",
        Some("log.preallocate"),
        "Stored; Weir does not preallocate segment files.",
    ),
    def(
        "remote.log.copy.disable",
        BOOLEAN,
        Valid::Boolean,
        "false",
        None,
        "Tiered storage; stored, not used (no remote storage).",
    ),
    def(
        "remote.log.delete.on.disable",
        BOOLEAN,
        Valid::Boolean,
        "false",
        None,
        "Tiered storage; stored, not used (no remote storage).",
    ),
    def(
        "remote.storage.enable",
        BOOLEAN,
        Valid::OneOf(&["false"]),
        "false",
        None,
        "Tiered storage is not available: only false.",
    ),
    def(
        "retention.bytes",
        LONG,
        Valid::Range(i64::MIN, MAX),
        "-1",
        Some("log.retention.bytes"),
        "Sealed segments are deleted while the log stays above this size; negative: no limit.",
    ),
    def(
        "retention.ms",
        LONG,
        Valid::Range(-1, MAX),
        "604800000",
        Some("log.retention.ms"),
        "Sealed segments whose newest record is older than this are deleted; -1: no limit.",
    ),
    def(
        "segment.bytes",
        INT,
        Valid::Range(14, INT_MAX),
        "1073741824",
        Some("log.segment.bytes"),
        "Roll a new segment at this size (Weir allows below Kafka's 1 MiB minimum).",
    ),
    def(
        "segment.index.bytes",
        INT,
        Valid::Range(4, INT_MAX),
        "10485760",
        Some("log.index.size.max.bytes"),
        "Stored; Weir's indexes grow with their segment.",
    ),
    def(
        "segment.jitter.ms",
        LONG,
        Valid::Range(0, MAX),
        "0",
        Some("log.roll.jitter.ms"),
        "A random amount up to this is taken off segment.ms for each segment.",
    ),
    def(
        "segment.ms",
        LONG,
        Valid::Range(1, MAX),
        "604800000",
        Some("log.roll.ms"),
        "Roll the active segment once its first write is this old.",
    ),
    def(
        "unclean.leader.election.enable",
        BOOLEAN,
        Valid::Boolean,
        "false",
        Some("unclean.leader.election.enable"),
        "Stored; a single broker has no other replica to elect.",
    ),
];

/// Topic configs Kafka 4.0 removed; older clients and tools still send them.
/// Kafka 3.x ignored them (with inter.broker.protocol 3.0+); so does Weir:
/// accepted (the value checked), neither stored nor described.
const IGNORED_TOPIC_CONFIGS: &[(&str, Valid)] = &[
    ("message.downconversion.enable", Valid::Boolean),
    ("message.format.version", Valid::OneOf(&[])),
    ("message.timestamp.difference.max.ms", Valid::Range(0, MAX)),
];

/// Kafka's dynamic broker configs (KIP-226, `DynamicBrokerConfig`) that are
/// not topic defaults. Weir enforces the connection limits. The thread pool,
/// log cleaner and Kerberos login settings are accepted, checked, stored and
/// described as Kafka does, because admin tools and client test suites set
/// them, but change nothing here: Weir runs one thread per core, compacts on
/// the shard that owns the partition, and has no SASL/GSSAPI.
const OTHER_DYNAMIC_BROKER_CONFIGS: &[ConfigDef] = &[
    def("background.threads", INT, Valid::Range(1, INT_MAX), "10", None, INERT),
    def("log.cleaner.backoff.ms", LONG, Valid::Range(0, MAX), "15000", None, INERT),
    def("log.cleaner.dedupe.buffer.size", LONG, Valid::Range(0, MAX), "134217728", None, INERT),
    def("log.cleaner.io.buffer.load.factor", DOUBLE, Valid::Ratio, "0.9", None, INERT),
    def("log.cleaner.io.buffer.size", INT, Valid::Range(0, INT_MAX), "524288", None, INERT),
    def("log.cleaner.threads", INT, Valid::Range(0, INT_MAX), "1", None, INERT),
    def(
        "max.connections",
        INT,
        Valid::Range(0, INT_MAX),
        "2147483647",
        None,
        "Most client connections in all; over it a new one is closed.",
    ),
    def(
        "max.connections.per.ip",
        INT,
        Valid::Range(0, INT_MAX),
        "2147483647",
        None,
        "Most client connections from one IP address; over it a new one is closed.",
    ),
    def("num.io.threads", INT, Valid::Range(1, INT_MAX), "8", None, INERT),
    def("num.network.threads", INT, Valid::Range(1, INT_MAX), "3", None, INERT),
    def("num.recovery.threads.per.data.dir", INT, Valid::Range(1, INT_MAX), "2", None, INERT),
    def("num.replica.fetchers", INT, Valid::Range(1, INT_MAX), "1", None, INERT),
    def("sasl.kerberos.kinit.cmd", STRING, Valid::Any, "/usr/bin/kinit", None, INERT),
    def("sasl.kerberos.min.time.before.relogin", LONG, Valid::Range(0, MAX), "60000", None, INERT),
    def("sasl.kerberos.principal.to.local.rules", LIST, Valid::Any, "DEFAULT", None, INERT),
    def("sasl.kerberos.service.name", STRING, Valid::Any, "", None, INERT),
    def("sasl.kerberos.ticket.renew.jitter", DOUBLE, Valid::Ratio, "0.05", None, INERT),
    def("sasl.kerberos.ticket.renew.window.factor", DOUBLE, Valid::Ratio, "0.8", None, INERT),
];

const INERT: &str = "Accepted and stored as Kafka does; no effect in Weir (one thread per core, no SASL/GSSAPI yet).";

fn other_dynamic_broker_config(name: &str) -> Option<&'static ConfigDef> {
    OTHER_DYNAMIC_BROKER_CONFIGS.iter().find(|d| d.name == name)
}

/// The definition of topic config `name`.
pub fn topic_config(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// True for every name CreateTopics and AlterConfigs accept.
pub fn is_topic_config_name(name: &str) -> bool {
    topic_config(name).is_some() || IGNORED_TOPIC_CONFIGS.iter().any(|(n, _)| *n == name)
}

/// Checks one topic config: the value to store (trimmed, normalised),
/// `None` for a config accepted and ignored, or why it is refused.
pub fn validate_topic_config(name: &str, value: &str) -> Result<Option<String>, String> {
    if let Some(def) = topic_config(name) {
        return check(name, def.config_type, def.valid, value).map(Some);
    }
    match IGNORED_TOPIC_CONFIGS.iter().find(|(n, _)| *n == name) {
        Some((_, Valid::OneOf(&[]))) => Ok(None),
        Some((_, valid)) => check(name, LONG, *valid, value).map(|_| None),
        None => Err(format!("unknown topic config '{name}'")),
    }
}

/// Checks the configs a topic would have together (Kafka's
/// `LogConfig.validateValues`); `value` gives any config's value in force.
pub fn validate_combination(value: impl Fn(&str) -> String) -> Result<(), String> {
    let long = |name: &str| value(name).parse::<i64>().unwrap_or(0);
    let (min_lag, max_lag) = (long("min.compaction.lag.ms"), long("max.compaction.lag.ms"));
    if min_lag > max_lag {
        return Err(format!("min.compaction.lag.ms ({min_lag}) > max.compaction.lag.ms ({max_lag})"));
    }
    Ok(())
}

fn check(name: &str, config_type: i8, valid: Valid, value: &str) -> Result<String, String> {
    let value = value.trim();
    match valid {
        Valid::Range(min, max) => {
            let (min, max) =
                if config_type == INT { (min.max(i64::from(i32::MIN)), max.min(INT_MAX)) } else { (min, max) };
            match value.parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n.to_string()),
                Ok(n) => Err(format!("{name}: {n} is outside [{min}, {max}]")),
                Err(_) => Err(format!("{name}: '{value}' is not an integer")),
            }
        }
        Valid::GzipLevel => match value.parse::<i32>() {
            Ok(n) if n == -1 || (1..=9).contains(&n) => Ok(n.to_string()),
            _ => Err(format!("{name}: '{value}' is not -1 or in [1, 9]")),
        },
        Valid::Boolean => match value.to_ascii_lowercase().as_str() {
            b @ ("true" | "false") => Ok(b.to_string()),
            _ => Err(format!("{name}: '{value}' is not true or false")),
        },
        Valid::Ratio => match value.parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => Ok(value.to_string()),
            _ => Err(format!("{name}: '{value}' is not a number in [0, 1]")),
        },
        Valid::OneOf(allowed) => match allowed.iter().find(|a| a.eq_ignore_ascii_case(value)) {
            Some(a) => Ok(a.to_string()),
            None => Err(format!("{name}: '{value}' is not one of {}", allowed.join(", "))),
        },
        Valid::CleanupPolicy => parse_cleanup_policy(value).map(|_| list_items(value).join(",")),
        Valid::Any => Ok(value.to_string()),
        Valid::ThrottledReplicas => {
            let items = list_items(value);
            let pair = |item: &str| {
                item.split_once(':').is_some_and(|(p, b)| p.parse::<u32>().is_ok() && b.parse::<u32>().is_ok())
            };
            if items == ["*"] || items.iter().all(|i| pair(i)) {
                Ok(items.join(","))
            } else {
                Err(format!("{name}: '{value}' is not * or a list of partition:broker"))
            }
        }
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

/// The topic config a broker config is the default of.
fn topic_config_of_synonym(broker_name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.synonym == Some(broker_name))
}

/// The configs a consumer group may set (KIP-848, Kafka 4's `GroupConfig`),
/// each over the broker config it defaults to. Kafka bounds them by the
/// broker's `group.consumer.min/max.*` settings, here Kafka's defaults (so
/// the heartbeat interval is always below the session timeout, as Kafka
/// requires).
/// (Share and streams groups are not built, so neither are their configs.)
pub const GROUP_CONFIGS: &[ConfigDef] = &[
    def(
        "consumer.heartbeat.interval.ms",
        INT,
        Valid::Range(5000, 15000),
        "5000",
        Some("group.consumer.heartbeat.interval.ms"),
        "How often a member of this consumer group heartbeats (group.protocol=consumer).",
    ),
    def(
        "consumer.session.timeout.ms",
        INT,
        Valid::Range(45000, 60000),
        "45000",
        Some("group.consumer.session.timeout.ms"),
        "A member of this consumer group without a heartbeat for this long is removed (group.protocol=consumer).",
    ),
];

/// The definition of group config `name`.
pub fn group_config(name: &str) -> Option<&'static ConfigDef> {
    GROUP_CONFIGS.iter().find(|d| d.name == name)
}

/// Checks one group config: the value to store or why it is refused.
pub fn validate_group_config(name: &str, value: &str) -> Result<String, String> {
    match group_config(name) {
        Some(def) => check(name, def.config_type, def.valid, value),
        None => Err(format!("Unknown group config name: {name}")),
    }
}

/// True for the broker configs AlterConfigs may change at runtime: the
/// broker defaults of topic configs and `OTHER_DYNAMIC_BROKER_CONFIGS`.
pub fn is_dynamic_broker_config(name: &str) -> bool {
    dynamic_broker_config_name(name).is_some()
}

/// The name of a dynamic broker config, as stored in the table.
pub fn dynamic_broker_config_name(name: &str) -> Option<&'static str> {
    dynamic_broker_config_def(name).map(|(name, _)| name)
}

/// A dynamic broker config's name and the definition of its values (for a
/// topic default, the topic config's).
fn dynamic_broker_config_def(name: &str) -> Option<(&'static str, &'static ConfigDef)> {
    match topic_config_of_synonym(name) {
        Some(def) => def.synonym.map(|synonym| (synonym, def)),
        None => other_dynamic_broker_config(name).map(|def| (def.name, def)),
    }
}

/// Every dynamic broker config name, sorted.
pub fn dynamic_broker_config_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = TOPIC_CONFIGS
        .iter()
        .filter_map(|d| d.synonym)
        .chain(OTHER_DYNAMIC_BROKER_CONFIGS.iter().map(|d| d.name))
        .collect();
    names.sort_unstable();
    names
}

/// The broker-level type and documentation of a dynamic broker config.
pub fn dynamic_broker_config_info(name: &str) -> (i8, &'static str) {
    dynamic_broker_config_def(name).map_or((STRING, ""), |(_, def)| (def.config_type, def.doc))
}

/// Checks a dynamic broker config: the value to store or why it is refused.
pub fn validate_dynamic_broker_config(name: &str, value: &str) -> Result<String, String> {
    match dynamic_broker_config_def(name) {
        Some((_, def)) => check(name, def.config_type, def.valid, value),
        None => Err(format!("Cannot update these configs dynamically: [{name}]")),
    }
}

/// The broker configs set at runtime (AlterConfigs on a BROKER resource),
/// persisted with the topic metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DynamicBrokerConfigs {
    /// Set for this broker (the resource named by its node id).
    #[serde(default)]
    pub broker: BTreeMap<String, String>,
    /// Set cluster-wide (the resource with the empty name).
    #[serde(default)]
    pub cluster_default: BTreeMap<String, String>,
}

/// One value of a config and where it comes from (a DescribeConfigs synonym).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigValue {
    pub name: &'static str,
    pub value: String,
    pub source: i8,
}

impl BrokerConfig {
    /// The value the config file gives a broker config Weir has a setting
    /// for, when it differs from Kafka's default.
    fn static_value(&self, broker_name: &str) -> Option<String> {
        let value = match broker_name {
            "log.segment.bytes" => self.segment_bytes.min(INT_MAX as u64).to_string(),
            "message.max.bytes" => self.message_max_bytes.min(INT_MAX as usize).to_string(),
            "log.flush.interval.messages" if self.fsync_every_write => "1".into(),
            "max.connections" => self.max_connections.min(INT_MAX as usize).to_string(),
            "max.connections.per.ip" => self.max_connections_per_ip.min(INT_MAX as usize).to_string(),
            "group.consumer.session.timeout.ms" => self.group_consumer_session_timeout_ms.to_string(),
            "group.consumer.heartbeat.interval.ms" => self.group_consumer_heartbeat_interval_ms.to_string(),
            _ => return None,
        };
        let kafka_default = dynamic_broker_config_def(broker_name)
            .or_else(|| GROUP_CONFIGS.iter().find(|d| d.synonym == Some(broker_name)).map(|d| (broker_name, d)))
            .map_or("", |(_, d)| d.default);
        (value != kafka_default).then_some(value)
    }

    /// Group config `def` of a group with `explicit` configs, the value in
    /// force first: set on the group, then its broker config (the config
    /// file's, or Kafka's default).
    pub fn group_config_chain(&self, explicit: &BTreeMap<String, String>, def: &'static ConfigDef) -> Vec<ConfigValue> {
        let synonym = def.synonym.unwrap_or(def.name);
        let set = explicit.get(def.name).map(|value| ConfigValue {
            name: def.name,
            value: value.clone(),
            source: source::GROUP,
        });
        let configured =
            self.static_value(synonym).map(|value| ConfigValue { name: synonym, value, source: source::STATIC_BROKER });
        let default = ConfigValue { name: synonym, value: def.default.to_string(), source: source::DEFAULT };
        set.into_iter().chain(configured).chain([default]).collect()
    }

    /// A broker config's values, the one in force first: dynamic for this
    /// broker, dynamic cluster default, config file, Kafka's default.
    pub fn broker_config_chain(&self, dynamic: &DynamicBrokerConfigs, name: &'static str) -> Vec<ConfigValue> {
        let mut chain = Vec::new();
        let mut push = |value: Option<String>, source| {
            if let Some(value) = value {
                chain.push(ConfigValue { name, value, source });
            }
        };
        push(dynamic.broker.get(name).cloned(), source::DYNAMIC_BROKER);
        push(dynamic.cluster_default.get(name).cloned(), source::DYNAMIC_DEFAULT_BROKER);
        push(self.static_value(name), source::STATIC_BROKER);
        let default = dynamic_broker_config_def(name).map_or("", |(_, def)| def.default);
        push(Some(default.to_string()), source::DEFAULT);
        chain
    }

    /// Topic config `name` of `topic`, the value in force first: set on the
    /// topic, then its broker synonym's chain (or Kafka's default when it has
    /// none). Internal topics (`__consumer_offsets`) are compacted, as if set
    /// on them, as in Kafka.
    pub fn topic_config_chain(
        &self,
        dynamic: &DynamicBrokerConfigs,
        topic: &str,
        explicit: &BTreeMap<String, String>,
        def: &'static ConfigDef,
    ) -> Vec<ConfigValue> {
        let mut chain = Vec::new();
        let set = explicit
            .get(def.name)
            .cloned()
            .or_else(|| (def.name == CLEANUP_POLICY && topic.starts_with("__")).then(|| "compact".to_string()));
        if let Some(value) = set {
            chain.push(ConfigValue { name: def.name, value, source: source::TOPIC });
        }
        match def.synonym {
            Some(synonym) => chain.extend(self.broker_config_chain(dynamic, synonym)),
            None => chain.push(ConfigValue { name: def.name, value: def.default.to_string(), source: source::DEFAULT }),
        }
        chain
    }

    /// The value in force of topic config `name` of `topic` (empty for a name
    /// that is not a topic config).
    pub fn topic_config_value(
        &self,
        dynamic: &DynamicBrokerConfigs,
        topic: &str,
        explicit: &BTreeMap<String, String>,
        name: &str,
    ) -> String {
        topic_config(name)
            .map_or_else(String::new, |def| self.topic_config_chain(dynamic, topic, explicit, def).swap_remove(0).value)
    }

    /// The engine configuration of `topic`'s logs. Stored configs were
    /// validated when set; a value that no longer parses counts as unset.
    pub fn log_config(
        &self,
        dynamic: &DynamicBrokerConfigs,
        topic: &str,
        explicit: &BTreeMap<String, String>,
    ) -> LogConfig {
        let value = |name: &str| self.topic_config_value(dynamic, topic, explicit, name);
        let long = |name: &str| {
            value(name)
                .parse::<i64>()
                .unwrap_or_else(|_| topic_config(name).map_or(0, |d| d.default.parse().unwrap_or(0)))
        };
        let at_least_zero = |n: i64| u64::try_from(n).ok();
        let unless_never = |n: i64| if n == i64::MAX { None } else { at_least_zero(n) };
        let cleanup_policy = parse_cleanup_policy(&value(CLEANUP_POLICY)).unwrap_or(CleanupPolicy::Delete);
        // Kafka's maxSegmentMs: a compacted log rolls by max.compaction.lag.ms too.
        let mut segment_ms = long("segment.ms");
        if cleanup_policy.compacts() {
            segment_ms = segment_ms.min(long("max.compaction.lag.ms"));
        }
        LogConfig {
            segment_bytes: at_least_zero(long("segment.bytes")).unwrap_or(self.segment_bytes),
            index_interval_bytes: at_least_zero(long("index.interval.bytes")).unwrap_or(4096),
            max_batch_bytes: at_least_zero(long("max.message.bytes")).map_or(self.message_max_bytes, |n| n as usize),
            fsync_every_write: self.fsync_every_write,
            flush_messages: unless_never(long("flush.messages")),
            flush_ms: unless_never(long("flush.ms")),
            segment_ms: at_least_zero(segment_ms),
            segment_jitter_ms: at_least_zero(long("segment.jitter.ms")).unwrap_or(0),
            retention_ms: at_least_zero(long("retention.ms")),
            retention_bytes: at_least_zero(long("retention.bytes")),
            cleanup_policy,
            delete_retention_ms: at_least_zero(long("delete.retention.ms")).unwrap_or(86_400_000),
            min_compaction_lag_ms: at_least_zero(long("min.compaction.lag.ms")).unwrap_or(0),
            timestamp_type: match value("message.timestamp.type").as_str() {
                "LogAppendTime" => TimestampType::LogAppendTime,
                _ => TimestampType::CreateTime,
            },
            timestamp_before_max_ms: unless_never(long("message.timestamp.before.max.ms")),
            timestamp_after_max_ms: unless_never(long("message.timestamp.after.max.ms")),
            ..LogConfig::default()
        }
    }

    /// Most connections, all shards together and from one IP address, with
    /// the dynamic configs over the config file.
    pub fn connection_limits(&self, dynamic: &DynamicBrokerConfigs) -> (usize, usize) {
        let limit = |name: &'static str| {
            self.broker_config_chain(dynamic, name)[0].value.parse::<usize>().unwrap_or(INT_MAX as usize)
        };
        (limit("max.connections"), limit("max.connections.per.ip"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_table_is_sorted_and_every_default_is_valid() {
        assert!(TOPIC_CONFIGS.windows(2).all(|w| w[0].name < w[1].name));
        for def in TOPIC_CONFIGS {
            assert_eq!(validate_topic_config(def.name, def.default), Ok(Some(def.default.to_string())), "{}", def.name);
            assert!(!def.doc.is_empty());
        }
        // Kafka 4.x's names, every one accepted.
        for name in [
            "cleanup.policy",
            "compression.gzip.level",
            "compression.lz4.level",
            "compression.type",
            "compression.zstd.level",
            "delete.retention.ms",
            "file.delete.delay.ms",
            "flush.messages",
            "flush.ms",
            "follower.replication.throttled.replicas",
            "index.interval.bytes",
            "leader.replication.throttled.replicas",
            "local.retention.bytes",
            "local.retention.ms",
            "max.compaction.lag.ms",
            "max.message.bytes",
            "message.timestamp.after.max.ms",
            "message.timestamp.before.max.ms",
            "message.timestamp.type",
            "min.cleanable.dirty.ratio",
            "min.compaction.lag.ms",
            "min.insync.replicas",
            "preallocate",
            "remote.log.copy.disable",
            "remote.log.delete.on.disable",
            "remote.storage.enable",
            "retention.bytes",
            "retention.ms",
            "segment.bytes",
            "segment.index.bytes",
            "segment.jitter.ms",
            "segment.ms",
            "unclean.leader.election.enable",
        ] {
            assert!(topic_config(name).is_some(), "{name}");
        }
    }

    #[test]
    fn values_are_checked_by_type_and_range() {
        let ok = |n: &str, v: &str, stored: &str| assert_eq!(validate_topic_config(n, v), Ok(Some(stored.into())));
        let bad = |n: &str, v: &str| assert!(validate_topic_config(n, v).is_err(), "{n}={v} accepted");
        ok("segment.bytes", " 1024 ", "1024");
        bad("segment.bytes", "10");
        bad("segment.bytes", "x");
        bad("segment.bytes", "4294967296");
        ok("min.cleanable.dirty.ratio", "0.01", "0.01");
        bad("min.cleanable.dirty.ratio", "1.5");
        bad("min.cleanable.dirty.ratio", "half");
        ok("preallocate", "TRUE", "true");
        bad("preallocate", "yes");
        ok("compression.type", "zstd", "zstd");
        bad("compression.type", "brotli");
        ok("compression.gzip.level", "-1", "-1");
        bad("compression.gzip.level", "0");
        ok("compression.zstd.level", "-5", "-5");
        bad("compression.lz4.level", "18");
        ok("message.timestamp.type", "LogAppendTime", "LogAppendTime");
        bad("message.timestamp.type", "Wallclock");
        ok("min.insync.replicas", "2", "2");
        bad("min.insync.replicas", "0");
        ok("leader.replication.throttled.replicas", "0:1, 1:2", "0:1,1:2");
        ok("follower.replication.throttled.replicas", "*", "*");
        ok("follower.replication.throttled.replicas", "", "");
        bad("leader.replication.throttled.replicas", "0:x");
        bad("remote.storage.enable", "true");
        ok(CLEANUP_POLICY, "delete, compact,delete", "delete,compact");
        bad(CLEANUP_POLICY, "compact,forever");
        bad(CLEANUP_POLICY, "");
        bad("max.compaction.lag.ms", "0");
        bad("no.such.config", "1");
        // Removed in Kafka 4.0: accepted, checked, ignored.
        assert_eq!(validate_topic_config("message.format.version", "2.8-IV1"), Ok(None));
        assert_eq!(validate_topic_config("message.timestamp.difference.max.ms", "1000"), Ok(None));
        bad("message.timestamp.difference.max.ms", "-5");
        bad("message.downconversion.enable", "maybe");
        let lags = configs(&[("min.compaction.lag.ms", "10"), ("max.compaction.lag.ms", "5")]);
        assert!(validate_combination(|n| lags[n].clone()).is_err());
    }

    #[test]
    fn values_resolve_through_the_layers() {
        let broker = BrokerConfig::default();
        let mut dynamic = DynamicBrokerConfigs::default();
        let none = BTreeMap::new();
        let retention = topic_config("retention.ms").unwrap();
        let chain = broker.topic_config_chain(&dynamic, "t", &none, retention);
        assert_eq!(
            chain,
            vec![ConfigValue { name: "log.retention.ms", value: "604800000".into(), source: source::DEFAULT }]
        );
        dynamic.cluster_default.insert("log.retention.ms".into(), "1000".into());
        dynamic.broker.insert("log.retention.ms".into(), "2000".into());
        let set = configs(&[("retention.ms", "3000")]);
        let chain = broker.topic_config_chain(&dynamic, "t", &set, retention);
        let sources: Vec<(&str, &str, i8)> = chain.iter().map(|c| (c.name, c.value.as_str(), c.source)).collect();
        assert_eq!(
            sources,
            [
                ("retention.ms", "3000", source::TOPIC),
                ("log.retention.ms", "2000", source::DYNAMIC_BROKER),
                ("log.retention.ms", "1000", source::DYNAMIC_DEFAULT_BROKER),
                ("log.retention.ms", "604800000", source::DEFAULT),
            ]
        );
        assert_eq!(broker.log_config(&dynamic, "t", &none).retention_ms, Some(2000));
        assert_eq!(broker.log_config(&dynamic, "t", &set).retention_ms, Some(3000));
        let small = BrokerConfig { segment_bytes: 4096, ..BrokerConfig::default() };
        let chain = small.topic_config_chain(&dynamic, "t", &none, topic_config("segment.bytes").unwrap());
        assert_eq!((chain[0].value.as_str(), chain[0].source), ("4096", source::STATIC_BROKER));
        assert_eq!(chain.len(), 2);
        assert_eq!(broker.topic_config_value(&dynamic, "__consumer_offsets", &none, CLEANUP_POLICY), "compact");
        dynamic.broker.insert("max.connections".into(), "7".into());
        assert_eq!(broker.connection_limits(&dynamic), (7, i32::MAX as usize));
    }

    #[test]
    fn topic_configs_map_to_the_log() {
        let broker = BrokerConfig::default();
        let dynamic = DynamicBrokerConfigs::default();
        let defaults = broker.log_config(&dynamic, "t", &BTreeMap::new());
        assert_eq!(defaults.segment_bytes, 1 << 30);
        assert_eq!(defaults.retention_ms, Some(604_800_000));
        assert_eq!((defaults.retention_bytes, defaults.flush_messages, defaults.flush_ms), (None, None, None));
        assert_eq!(defaults.cleanup_policy, CleanupPolicy::Delete);
        assert_eq!((defaults.timestamp_before_max_ms, defaults.timestamp_after_max_ms), (None, Some(3_600_000)));
        let offsets = broker.log_config(&dynamic, "__consumer_offsets", &BTreeMap::new());
        assert_eq!(offsets.cleanup_policy, CleanupPolicy::Compact);
        let set = configs(&[
            ("segment.bytes", "2048"),
            ("retention.ms", "-1"),
            ("retention.bytes", "4096"),
            ("cleanup.policy", "compact,delete"),
            ("message.timestamp.type", "LogAppendTime"),
            ("flush.messages", "1"),
            ("max.message.bytes", "100"),
            ("max.compaction.lag.ms", "60000"),
            ("min.compaction.lag.ms", "500"),
            ("segment.jitter.ms", "7"),
            ("index.interval.bytes", "100"),
            ("message.timestamp.before.max.ms", "1000"),
        ]);
        let log = broker.log_config(&dynamic, "t", &set);
        assert_eq!((log.segment_bytes, log.retention_ms, log.retention_bytes), (2048, None, Some(4096)));
        assert_eq!(log.cleanup_policy, CleanupPolicy::CompactDelete);
        assert_eq!(log.timestamp_type, TimestampType::LogAppendTime);
        assert_eq!((log.flush_messages, log.max_batch_bytes), (Some(1), 100));
        assert_eq!((log.segment_ms, log.min_compaction_lag_ms, log.segment_jitter_ms), (Some(60_000), 500, 7));
        assert_eq!((log.index_interval_bytes, log.timestamp_before_max_ms), (100, Some(1000)));
    }

    #[test]
    fn dynamic_broker_configs_are_the_topic_defaults_and_limits() {
        let names = dynamic_broker_config_names();
        for name in
            ["log.retention.ms", "log.segment.bytes", "log.cleanup.policy", "message.max.bytes", "max.connections"]
        {
            assert!(names.contains(&name) && is_dynamic_broker_config(name), "{name}");
        }
        assert!(!is_dynamic_broker_config("log.dirs") && !is_dynamic_broker_config("broker.id"));
        assert_eq!(validate_dynamic_broker_config("log.retention.ms", "5000"), Ok("5000".into()));
        assert!(validate_dynamic_broker_config("log.retention.ms", "soon").is_err());
        assert!(validate_dynamic_broker_config("log.cleanup.policy", "forever").is_err());
        assert!(validate_dynamic_broker_config("max.connections", "-1").is_err());
        let refused = validate_dynamic_broker_config("log.dirs", "/tmp").unwrap_err();
        assert!(refused.contains("Cannot update these configs dynamically"), "{refused}");
        // Kafka's thread and Kerberos settings are accepted (and checked) though inert here.
        assert_eq!(
            validate_dynamic_broker_config("sasl.kerberos.min.time.before.relogin", "58000"),
            Ok("58000".into())
        );
        assert_eq!(validate_dynamic_broker_config("background.threads", " 9"), Ok("9".into()));
        assert!(validate_dynamic_broker_config("background.threads", "0").is_err());
        assert_eq!(dynamic_broker_config_info("background.threads").0, INT);
    }
}
