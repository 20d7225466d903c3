//! DescribeConfigs: a topic's configs (set on it, or where its default comes
//! from), and the broker's: the dynamic ones (KIP-226) with their layers, and
//! the settings of its config file, read-only; a consumer group's (KIP-848).
//! With ACLs each resource needs DESCRIBE_CONFIGS (on the cluster for a
//! broker's), as Kafka.

use super::{message, str_bytes, ClientInfo};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use weir_shards::groups::OFFSETS_TOPIC_PARTITIONS;
use weir_shards::metadata::acl::Operation;
use weir_shards::topic_config::{
    config_type, dynamic_broker_config_info, dynamic_broker_config_name, dynamic_broker_config_names, source,
    ConfigValue, DynamicBrokerConfigs, GROUP_CONFIGS, TOPIC_CONFIGS,
};
use weir_shards::transactions::TRANSACTION_STATE_PARTITIONS;
use weir_shards::{BrokerConfig, Listener, Shard, TopicMetadata};

/// Config resource types (`ConfigResource.Type`).
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
pub const RESOURCE_GROUP: i8 = 32;

/// One config as DescribeConfigs and CreateTopics report it.
pub struct ConfigEntry {
    pub name: &'static str,
    pub value: String,
    pub source: i8,
    pub config_type: i8,
    pub read_only: bool,
    pub doc: &'static str,
    /// Every value it has, the one in force first (Kafka's synonyms).
    pub synonyms: Vec<ConfigValue>,
}

impl ConfigEntry {
    fn from_chain(name: &'static str, chain: Vec<ConfigValue>, config_type: i8, doc: &'static str) -> ConfigEntry {
        let head =
            chain.first().cloned().unwrap_or(ConfigValue { name, value: String::new(), source: source::DEFAULT });
        ConfigEntry {
            name,
            value: head.value,
            source: head.source,
            config_type,
            read_only: false,
            doc,
            synonyms: chain,
        }
    }
}

/// Every topic config of `topic` with where its value comes from.
pub fn topic_entries(config: &BrokerConfig, dynamic: &DynamicBrokerConfigs, topic: &TopicMetadata) -> Vec<ConfigEntry> {
    TOPIC_CONFIGS
        .iter()
        .map(|def| {
            let chain = config.topic_config_chain(dynamic, &topic.name, &topic.configs, def);
            ConfigEntry::from_chain(def.name, chain, def.config_type, def.doc)
        })
        .collect()
}

/// Every config of consumer group `group` (known or not, as in Kafka).
fn group_entries(config: &BrokerConfig, metadata: &weir_shards::MetadataSnapshot, group: &str) -> Vec<ConfigEntry> {
    let unset = Default::default();
    let explicit = metadata.group_configs.get(group).unwrap_or(&unset);
    GROUP_CONFIGS
        .iter()
        .map(|def| {
            ConfigEntry::from_chain(def.name, config.group_config_chain(explicit, def), def.config_type, def.doc)
        })
        .collect()
}

/// The broker's settings that only its config file sets (read-only), under
/// Kafka's names.
fn static_settings(c: &BrokerConfig) -> Vec<(&'static str, String, i8, &'static str)> {
    use config_type::{BOOLEAN, INT, LIST, LONG, SHORT, STRING};
    let listeners =
        |show: &dyn Fn(&Listener) -> String| c.bound_listeners.iter().map(show).collect::<Vec<_>>().join(",");
    let advertised = |l: &Listener| {
        let (host, port) = l.advertised_host_port().unwrap_or_default();
        format!("{}://{host}:{port}", l.name)
    };
    vec![
        ("advertised.listeners", listeners(&advertised), STRING, "The addresses each listener's clients are told."),
        ("auto.create.topics.enable", c.auto_create_topics.to_string(), BOOLEAN, "Create unknown topics on use."),
        (
            "auto.leader.rebalance.enable",
            c.auto_leader_rebalance_enable.to_string(),
            BOOLEAN,
            "The active controller moves leadership back to the preferred replicas.",
        ),
        ("broker.id", c.node_id.to_string(), INT, "This broker's id."),
        ("connections.max.idle.ms", c.connections_max_idle_ms.to_string(), LONG, "Idle connections are closed."),
        (
            "connections.max.reauth.ms",
            c.connections_max_reauth_ms.to_string(),
            LONG,
            "A SASL connection must re-authenticate within this long (0: never).",
        ),
        ("default.replication.factor", "1".into(), INT, "A single broker: one replica."),
        ("fetch.max.bytes", c.fetch_max_bytes.to_string(), INT, "Most record bytes of one Fetch answer."),
        (
            "group.consumer.heartbeat.interval.ms",
            c.group_consumer_heartbeat_interval_ms.to_string(),
            INT,
            "Heartbeat interval the coordinator gives consumer-protocol members.",
        ),
        (
            "group.consumer.session.timeout.ms",
            c.group_consumer_session_timeout_ms.to_string(),
            INT,
            "Session timeout of consumer-protocol (KIP-848) members.",
        ),
        (
            "group.initial.rebalance.delay.ms",
            c.group_initial_rebalance_delay_ms.to_string(),
            INT,
            "First rebalance delay.",
        ),
        ("group.max.session.timeout.ms", c.group_max_session_timeout_ms.to_string(), INT, "Largest session timeout."),
        ("group.max.size", c.group_max_size.to_string(), INT, "Most members of one group."),
        ("group.min.session.timeout.ms", c.group_min_session_timeout_ms.to_string(), INT, "Smallest session timeout."),
        (
            "inter.broker.listener.name",
            c.inter_broker_listener().map_or_else(String::new, |l| l.name.clone()),
            STRING,
            "The listener other brokers connect to.",
        ),
        (
            "listener.security.protocol.map",
            listeners(&|l| format!("{}:{}", l.name, l.protocol.name())),
            STRING,
            "Each listener's security protocol.",
        ),
        (
            "listeners",
            listeners(&|l| format!("{}://{}", l.name, l.address)),
            STRING,
            "The addresses the broker listens on.",
        ),
        (
            "leader.imbalance.check.interval.seconds",
            c.leader_imbalance_check_interval_seconds.to_string(),
            LONG,
            "How often the active controller looks for imbalanced leadership.",
        ),
        (
            "leader.imbalance.per.broker.percentage",
            c.leader_imbalance_per_broker_percentage.to_string(),
            INT,
            "The share of a broker's preferred partitions led elsewhere that it tolerates.",
        ),
        ("log.cleaner.backoff.ms", c.log_cleaner_backoff_ms.to_string(), LONG, "Compaction pass interval."),
        ("log.dirs", c.data_dir.display().to_string(), LIST, "The data directory."),
        (
            "log.retention.check.interval.ms",
            c.log_retention_check_interval_ms.to_string(),
            LONG,
            "Retention pass interval.",
        ),
        ("node.id", c.node_id.to_string(), INT, "This broker's id."),
        ("num.partitions", c.default_partitions.to_string(), INT, "Partitions of an auto-created topic."),
        (
            "offsets.topic.num.partitions",
            OFFSETS_TOPIC_PARTITIONS.to_string(),
            INT,
            "Partitions of __consumer_offsets.",
        ),
        ("offsets.topic.replication.factor", "1".into(), SHORT, "A single broker: one replica."),
        (
            "producer.id.expiration.check.interval.ms",
            c.producer_id_expiration_check_interval_ms.to_string(),
            INT,
            "Producer id expiry pass.",
        ),
        ("producer.id.expiration.ms", c.producer_id_expiration_ms.to_string(), INT, "Idle producer ids are forgotten."),
        (
            "queued.max.request.bytes",
            c.queued_max_request_bytes.to_string(),
            LONG,
            "Unanswered request bytes per connection.",
        ),
        ("sasl.enabled.mechanisms", c.sasl_enabled_mechanisms.join(","), LIST, "The SASL mechanisms offered."),
        ("socket.request.max.bytes", c.socket_request_max_bytes.to_string(), INT, "Largest request frame."),
        (
            "transaction.remove.expired.transaction.cleanup.interval.ms",
            c.transaction_remove_expired_transaction_cleanup_interval_ms.to_string(),
            INT,
            "Transactional id expiry pass.",
        ),
        ("transaction.state.log.min.isr", "1".into(), INT, "A single broker: one replica."),
        (
            "transaction.state.log.num.partitions",
            TRANSACTION_STATE_PARTITIONS.to_string(),
            INT,
            "Partitions of __transaction_state.",
        ),
        ("transaction.state.log.replication.factor", "1".into(), SHORT, "A single broker: one replica."),
        (
            "transactional.id.expiration.ms",
            c.transactional_id_expiration_ms.to_string(),
            INT,
            "Idle transactional ids are forgotten.",
        ),
    ]
}

/// This broker's configs: the dynamic ones with their layers, then the
/// static ones (STATIC_BROKER_CONFIG where the config file differs from
/// Weir's default), sorted by name.
fn broker_entries(config: &BrokerConfig, dynamic: &DynamicBrokerConfigs) -> Vec<ConfigEntry> {
    let mut entries: Vec<ConfigEntry> = dynamic_broker_config_names()
        .into_iter()
        .map(|name| {
            let (config_type, doc) = dynamic_broker_config_info(name);
            ConfigEntry::from_chain(name, config.broker_config_chain(dynamic, name), config_type, doc)
        })
        .collect();
    let defaults = static_settings(&BrokerConfig::default());
    for ((name, value, config_type, doc), (_, default, _, _)) in static_settings(config).into_iter().zip(defaults) {
        let source = if value == default { source::DEFAULT } else { source::STATIC_BROKER };
        let synonyms = vec![ConfigValue { name, value: value.clone(), source }];
        entries.push(ConfigEntry { name, value, source, config_type, read_only: true, doc, synonyms });
    }
    entries.sort_by_key(|e| e.name);
    entries
}

/// The cluster-wide default resource: the dynamic defaults set, only.
fn cluster_default_entries(dynamic: &DynamicBrokerConfigs) -> Vec<ConfigEntry> {
    dynamic
        .cluster_default
        .iter()
        .filter_map(|(name, value)| {
            let name = dynamic_broker_config_name(name)?;
            let (config_type, doc) = dynamic_broker_config_info(name);
            let chain = vec![ConfigValue { name, value: value.clone(), source: source::DYNAMIC_DEFAULT_BROKER }];
            Some(ConfigEntry::from_chain(name, chain, config_type, doc))
        })
        .collect()
}

pub fn handle(
    shard: &Shard,
    client: &ClientInfo,
    version: i16,
    mut request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let resources = std::mem::take(&mut request.resources);
    let results = resources.into_iter().map(|resource| describe(shard, client, version, resource, &request)).collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// One resource's configs; with ACLs DESCRIBE_CONFIGS on it first
/// ([`ClientInfo::refused_configs`]).
fn describe(
    shard: &Shard,
    client: &ClientInfo,
    version: i16,
    resource: DescribeConfigsResource,
    request: &DescribeConfigsRequest,
) -> DescribeConfigsResult {
    let mut result = DescribeConfigsResult::default()
        .with_resource_type(resource.resource_type)
        .with_resource_name(resource.resource_name.clone());
    let name = &*resource.resource_name;
    if let Some(refused) = client.refused_configs(shard, Operation::DescribeConfigs, resource.resource_type, name) {
        result.error_code = refused.code();
        result.error_message = message(refused);
        return result;
    }
    let metadata = shard.metadata();
    let dynamic = &metadata.dynamic_broker_configs;
    let entries = match resource.resource_type {
        RESOURCE_TOPIC => match metadata.topic(name) {
            Some(topic) => topic_entries(shard.config(), dynamic, topic),
            None => {
                result.error_code = ResponseError::UnknownTopicOrPartition.code();
                result.error_message = message(format!("unknown topic '{name}'"));
                return result;
            }
        },
        RESOURCE_GROUP => group_entries(shard.config(), &metadata, name),
        RESOURCE_BROKER if name.is_empty() => cluster_default_entries(dynamic),
        RESOURCE_BROKER if name == shard.config().node_id.to_string() => broker_entries(shard.config(), dynamic),
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
    result.configs = entries.into_iter().filter(wanted).map(|entry| entry_result(version, request, entry)).collect();
    result
}

fn entry_result(version: i16, request: &DescribeConfigsRequest, entry: ConfigEntry) -> DescribeConfigsResourceResult {
    let mut config = DescribeConfigsResourceResult::default()
        .with_name(str_bytes(entry.name))
        .with_value(Some(str_bytes(entry.value)))
        .with_read_only(entry.read_only)
        .with_is_sensitive(false)
        .with_config_source(entry.source);
    if request.include_synonyms {
        config.synonyms = entry
            .synonyms
            .into_iter()
            .map(|s| {
                DescribeConfigsSynonym::default()
                    .with_name(str_bytes(s.name))
                    .with_value(Some(str_bytes(s.value)))
                    .with_source(s.source)
            })
            .collect();
    }
    if version >= 3 {
        config.config_type = entry.config_type;
        if request.include_documentation {
            config.documentation = Some(str_bytes(entry.doc));
        }
    }
    config
}
