//! DescribeConfigs: a topic's configs (those set on it and the broker
//! defaults for the rest), and the broker's own settings, which come from its
//! config file and so are read-only.

use super::{message, str_bytes};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use weir_shards::config::{config_type, topic_config_type, TOPIC_CONFIG_NAMES};
use weir_shards::{BrokerConfig, Shard, TopicMetadata};

/// Config resource types (`ConfigResource.Type`).
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

/// `config_source` values (KIP-226).
pub const SOURCE_TOPIC: i8 = 1;
pub const SOURCE_STATIC_BROKER: i8 = 4;
pub const SOURCE_DEFAULT: i8 = 5;

/// One config as DescribeConfigs and CreateTopics report it.
pub struct ConfigEntry {
    pub name: &'static str,
    pub value: String,
    pub source: i8,
    pub config_type: i8,
    pub read_only: bool,
    /// Where the value would come from without the topic's own setting.
    pub synonyms: Vec<(&'static str, String, i8)>,
}

/// The broker setting a topic config defaults to (Kafka's synonym).
fn broker_synonym(topic_config: &str) -> &'static str {
    match topic_config {
        "cleanup.policy" => "log.cleanup.policy",
        "delete.retention.ms" => "log.cleaner.delete.retention.ms",
        "flush.messages" => "log.flush.interval.messages",
        "flush.ms" => "log.flush.interval.ms",
        "max.message.bytes" => "message.max.bytes",
        "message.timestamp.type" => "log.message.timestamp.type",
        "min.insync.replicas" => "min.insync.replicas",
        "retention.bytes" => "log.retention.bytes",
        "retention.ms" => "log.retention.ms",
        "segment.bytes" => "log.segment.bytes",
        "segment.ms" => "log.roll.ms",
        _ => "",
    }
}

/// Whether the broker's config file sets what a topic config defaults to.
fn from_broker_file(topic_config: &str) -> bool {
    matches!(topic_config, "segment.bytes" | "max.message.bytes")
}

/// Every topic config of `topic`: set ones with source DYNAMIC_TOPIC_CONFIG,
/// the others with the broker default's source.
pub fn topic_entries(config: &BrokerConfig, topic: &TopicMetadata) -> Vec<ConfigEntry> {
    config
        .effective_topic_configs(&topic.name, &topic.configs)
        .into_iter()
        .map(|(name, value, set)| {
            let default = config.topic_config_default(&topic.name, name);
            let default_source = if from_broker_file(name) { SOURCE_STATIC_BROKER } else { SOURCE_DEFAULT };
            let mut synonyms = Vec::new();
            if set {
                synonyms.push((name, value.clone(), SOURCE_TOPIC));
            }
            synonyms.push((broker_synonym(name), default, default_source));
            ConfigEntry {
                name,
                value,
                source: if set { SOURCE_TOPIC } else { default_source },
                config_type: topic_config_type(name),
                read_only: false,
                synonyms,
            }
        })
        .collect()
}

/// The broker's settings under Kafka's names, all read-only.
fn broker_entries(config: &BrokerConfig) -> Vec<ConfigEntry> {
    let fixed = |name, value: String, config_type| ConfigEntry {
        name,
        value,
        source: SOURCE_STATIC_BROKER,
        config_type,
        read_only: true,
        synonyms: Vec::new(),
    };
    let mut entries = vec![
        fixed("node.id", config.node_id.to_string(), config_type::INT),
        fixed("num.partitions", config.default_partitions.to_string(), config_type::INT),
        fixed("auto.create.topics.enable", config.auto_create_topics.to_string(), config_type::BOOLEAN),
        fixed("socket.request.max.bytes", config.socket_request_max_bytes.to_string(), config_type::INT),
        fixed("log.retention.check.interval.ms", config.log_retention_check_interval_ms.to_string(), config_type::LONG),
        fixed("log.cleaner.backoff.ms", config.log_cleaner_backoff_ms.to_string(), config_type::LONG),
        fixed("producer.id.expiration.ms", config.producer_id_expiration_ms.to_string(), config_type::INT),
        fixed(
            "producer.id.expiration.check.interval.ms",
            config.producer_id_expiration_check_interval_ms.to_string(),
            config_type::INT,
        ),
        fixed("transactional.id.expiration.ms", config.transactional_id_expiration_ms.to_string(), config_type::INT),
        fixed(
            "transaction.remove.expired.transaction.cleanup.interval.ms",
            config.transaction_remove_expired_transaction_cleanup_interval_ms.to_string(),
            config_type::INT,
        ),
    ];
    for &name in TOPIC_CONFIG_NAMES {
        let source = if from_broker_file(name) { SOURCE_STATIC_BROKER } else { SOURCE_DEFAULT };
        entries.push(ConfigEntry {
            source,
            ..fixed(broker_synonym(name), config.topic_config_default("", name), topic_config_type(name))
        });
    }
    entries.sort_by_key(|e| e.name);
    entries
}

pub fn handle(shard: &Shard, version: i16, request: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let results = request
        .resources
        .into_iter()
        .map(|resource| describe(shard, version, resource, request.include_synonyms))
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn describe(
    shard: &Shard,
    version: i16,
    resource: DescribeConfigsResource,
    include_synonyms: bool,
) -> DescribeConfigsResult {
    let mut result = DescribeConfigsResult::default()
        .with_resource_type(resource.resource_type)
        .with_resource_name(resource.resource_name.clone());
    let name = &*resource.resource_name;
    let entries = match resource.resource_type {
        RESOURCE_TOPIC => match shard.metadata().topic(name) {
            Some(topic) => topic_entries(shard.config(), topic),
            None => {
                result.error_code = ResponseError::UnknownTopicOrPartition.code();
                result.error_message = message(format!("unknown topic '{name}'"));
                return result;
            }
        },
        RESOURCE_BROKER if name.is_empty() || name == shard.config().node_id.to_string() => {
            broker_entries(shard.config())
        }
        RESOURCE_BROKER => {
            result.error_code = ResponseError::InvalidRequest.code();
            result.error_message = message(format!("this is broker {}, not '{name}'", shard.config().node_id));
            return result;
        }
        other => {
            result.error_code = ResponseError::InvalidRequest.code();
            result.error_message = message(format!("resource type {other} is not supported"));
            return result;
        }
    };
    // No keys (null or empty, as Kafka reads it): every config.
    let keys = resource.configuration_keys.as_ref().filter(|keys| !keys.is_empty());
    let wanted = |entry: &ConfigEntry| keys.is_none_or(|keys| keys.iter().any(|k| &**k == entry.name));
    result.configs = entries
        .into_iter()
        .filter(wanted)
        .map(|entry| {
            let mut config = DescribeConfigsResourceResult::default()
                .with_name(str_bytes(entry.name))
                .with_value(Some(str_bytes(entry.value)))
                .with_read_only(entry.read_only)
                .with_config_source(entry.source);
            if include_synonyms {
                config.synonyms = entry
                    .synonyms
                    .into_iter()
                    .map(|(name, value, source)| {
                        DescribeConfigsSynonym::default()
                            .with_name(str_bytes(name))
                            .with_value(Some(str_bytes(value)))
                            .with_source(source)
                    })
                    .collect();
            }
            if version >= 3 {
                config.config_type = entry.config_type;
            }
            config
        })
        .collect();
    result
}
