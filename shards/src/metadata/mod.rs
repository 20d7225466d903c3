//! Topic metadata: what topics exist, their ids, partition counts and the
//! topic configs set on them (validated by `topic_config`), the dynamic
//! broker configs, the users' SCRAM credentials (salted and hashed) and the
//! ACLs.
//!
//! The controller plans each change against the current image as
//! [`MetadataRecord`]s ([`MetadataChanges`]) and commits them: to the
//! [`MetadataStore`] (`metadata.toml`) of a broker that is its own
//! controller. Every shard reads an immutable [`MetadataSnapshot`] that the
//! controller replaces after each change.

use crate::error::TopicError;
use crate::placement::assign_replicas;
use crate::topic_config::{
    config_type, dynamic_broker_config_info, group_config, is_dynamic_broker_config, is_topic_config_name, list_items,
    topic_config, validate_combination, validate_dynamic_broker_config, validate_group_config, validate_topic_config,
    DynamicBrokerConfigs,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

pub mod acl;
mod changes;
pub mod quota;
mod store;
#[cfg(test)]
mod tests;

pub use changes::{
    AlterPartition, BrokerRegistration, Election, ElectionResults, Endpoint, LegacyBrokerRegistration, MetadataChanges,
    MetadataRecord, ProducerIdBlock, TopicPartition, PRODUCER_ID_BLOCK,
};
pub use store::MetadataStore;

/// Kafka's limit on topic name length.
const MAX_TOPIC_NAME_LEN: usize = 249;
/// Upper bound on partitions per topic, so one request cannot ask for millions.
pub const MAX_PARTITIONS: i32 = 10_000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMetadata {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    /// Topic configs set explicitly (validated, normalised); the rest are the
    /// broker's defaults (`BrokerConfig::topic_config_chain`).
    #[serde(default)]
    pub configs: TopicConfigs,
    /// Each partition's replicas and leadership, by index (`partitions` of
    /// them once a broker registered: a file written before Weir kept them
    /// gets that broker alone, see [`MetadataChanges::register_broker`]).
    #[serde(default)]
    pub assignment: Vec<PartitionState>,
}

impl TopicMetadata {
    /// Replicas per partition (Kafka keeps it the same across a topic's
    /// partitions unless assignments are given).
    pub fn replication_factor(&self) -> usize {
        self.assignment.first().map_or(1, |p| p.replicas.len())
    }
}

/// One partition's replicas and leadership as the controller decided them
/// (Kafka's PartitionRecord and PartitionChangeRecord).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// Brokers holding a replica, the preferred leader first.
    pub replicas: Vec<i32>,
    /// The in-sync replicas: those that hold every acknowledged record and
    /// may become leader.
    pub isr: Vec<i32>,
    /// The leader's broker id; -1 when no replica can lead.
    pub leader: i32,
    /// Raised with each new leader: stamped into its batches (KIP-101),
    /// checked against the epoch clients send (KIP-320).
    pub leader_epoch: i32,
    /// Raised with every change (leader or ISR): AlterPartition's
    /// compare-and-set.
    pub partition_epoch: i32,
}

impl PartitionState {
    /// A new partition on `replicas`, all in sync, led by the first.
    pub fn new(replicas: Vec<i32>) -> Self {
        PartitionState { leader: replicas[0], isr: replicas.clone(), replicas, leader_epoch: 0, partition_epoch: 0 }
    }
}

/// A partition on its way to other replicas (KIP-455): while it moves,
/// its `PartitionState::replicas` are the target followed by `removing`.
/// Kept beside the partition's state rather than in it, so that records
/// committed before reassignment existed still decode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reassignment {
    /// Target replicas that were not replicas before: the move completes
    /// once all of them are in the ISR.
    pub adding: Vec<i32>,
    /// Replicas that are not in the target: dropped when the move completes.
    pub removing: Vec<i32>,
}

/// What a topic gets when CreateTopics leaves it to the broker (-1).
#[derive(Clone, Copy, Debug)]
pub struct TopicDefaults {
    /// `num.partitions`.
    pub partitions: i32,
    /// `default.replication.factor`.
    pub replication_factor: i16,
}

/// Checks a topic to create against `snapshot` and places its replicas on
/// its registered brokers: the topic as it would be created (with a new id).
pub fn plan_topic(
    snapshot: &MetadataSnapshot,
    topic: &NewTopic,
    configs: &TopicConfigs,
    defaults: TopicDefaults,
) -> Result<TopicMetadata, TopicError> {
    let brokers = snapshot.broker_slots();
    validate_topic_name(&topic.name)?;
    if snapshot.topics.contains_key(&topic.name) {
        return Err(TopicError::AlreadyExists);
    }
    let id = Uuid::new_v4();
    let replicas = match &topic.assignments {
        Some(lists) => {
            if lists.len() > MAX_PARTITIONS as usize {
                return Err(TopicError::InvalidPartitions(lists.len() as i32));
            }
            let ids: Vec<i32> = brokers.iter().map(|b| b.id).collect();
            check_assignments(lists, &ids, None)?;
            lists.clone()
        }
        None => {
            let partitions = if topic.partitions < 1 { defaults.partitions } else { topic.partitions };
            if !(1..=MAX_PARTITIONS).contains(&partitions) || topic.partitions == 0 {
                return Err(TopicError::InvalidPartitions(topic.partitions));
            }
            let rf =
                if topic.replication_factor == -1 { defaults.replication_factor } else { topic.replication_factor };
            // Topics created one after another start their leaders on different brokers.
            let start = (id.as_u128() % brokers.len().max(1) as u128) as usize;
            assign_replicas(0, partitions, rf, &brokers, start)?
        }
    };
    let partitions = replicas.len() as i32;
    let assignment = replicas.into_iter().map(PartitionState::new).collect();
    Ok(TopicMetadata { name: topic.name.clone(), id, partitions, configs: configs.clone(), assignment })
}

/// Explicitly set topic configs by name.
pub type TopicConfigs = BTreeMap<String, String>;

/// Validates every (name, value) pair of a topic; a `None` value leaves the
/// config unset, as does a name Kafka 4.0 removed (accepted, ignored).
pub fn validate_topic_configs<'a>(
    configs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<TopicConfigs, TopicError> {
    let valid = ConfigScope::Topic.validate_all(configs)?;
    ConfigScope::Topic.check_combination(&valid)?;
    Ok(valid)
}

/// Which configs an alteration changes: a topic's, the dynamic broker
/// configs or a consumer group's (their names, values and errors differ).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigScope {
    Topic,
    Broker,
    Group,
}

impl ConfigScope {
    /// The value to store, `None` for one accepted and ignored, or the error.
    fn check(self, name: &str, value: &str) -> Result<Option<String>, TopicError> {
        match self {
            ConfigScope::Topic => validate_topic_config(name, value).map_err(TopicError::InvalidConfig),
            ConfigScope::Broker => self.check_name(name).and_then(|()| {
                validate_dynamic_broker_config(name, value).map(Some).map_err(TopicError::InvalidConfig)
            }),
            ConfigScope::Group => validate_group_config(name, value).map(Some).map_err(TopicError::InvalidConfig),
        }
    }

    fn check_name(self, name: &str) -> Result<(), TopicError> {
        match self {
            ConfigScope::Topic if is_topic_config_name(name) => Ok(()),
            ConfigScope::Topic => Err(TopicError::InvalidConfig(format!("unknown topic config '{name}'"))),
            ConfigScope::Broker if is_dynamic_broker_config(name) => Ok(()),
            // Kafka's answer for a static or unknown broker config.
            ConfigScope::Broker => {
                Err(TopicError::InvalidRequest(format!("Cannot update these configs dynamically: [{name}]")))
            }
            ConfigScope::Group if group_config(name).is_some() => Ok(()),
            ConfigScope::Group => Err(TopicError::InvalidConfig(format!("Unknown group config name: {name}"))),
        }
    }

    fn is_list(self, name: &str) -> bool {
        match self {
            ConfigScope::Topic => topic_config(name).is_some_and(|d| d.config_type == config_type::LIST),
            ConfigScope::Broker => {
                is_dynamic_broker_config(name) && dynamic_broker_config_info(name).0 == config_type::LIST
            }
            ConfigScope::Group => false,
        }
    }

    fn validate_all<'a>(
        self,
        configs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<TopicConfigs, TopicError> {
        let mut valid = TopicConfigs::new();
        for (name, value) in configs {
            self.check_name(name)?;
            if let Some(value) = value.map(|v| self.check(name, v)).transpose()?.flatten() {
                valid.insert(name.to_string(), value);
            }
        }
        Ok(valid)
    }

    /// Kafka's checks across a topic's configs (the explicit ones over
    /// Kafka's defaults).
    fn check_combination(self, configs: &TopicConfigs) -> Result<(), TopicError> {
        if self != ConfigScope::Topic {
            return Ok(());
        }
        let value = |name: &str| {
            configs
                .get(name)
                .cloned()
                .unwrap_or_else(|| topic_config(name).map_or_else(String::new, |d| d.default.into()))
        };
        validate_combination(value).map_err(TopicError::InvalidConfig)
    }
}

/// A topic to create: partitions or replication factor -1 means the broker
/// default; `assignments` (each partition's brokers, by index) replaces both.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub assignments: Option<Vec<Vec<i32>>>,
}

impl NewTopic {
    /// A topic with `partitions` and the default replication factor.
    pub fn with_partitions(name: impl Into<String>, partitions: i32) -> Self {
        NewTopic { name: name.into(), partitions, replication_factor: -1, assignments: None }
    }
}

/// Kafka's checks of manual replica assignments, in its order: no list
/// empty, every broker registered (in `brokers`), none twice in a list, and
/// every list as long as `replicas` (the topic's replication factor, or the
/// first list's for a new topic).
fn check_assignments(lists: &[Vec<i32>], brokers: &[i32], replicas: Option<usize>) -> Result<(), TopicError> {
    let invalid = |why: String| Err(TopicError::InvalidReplicaAssignment(why));
    let expected = replicas.or(lists.first().map(Vec::len));
    for replicas in lists {
        if replicas.is_empty() {
            return invalid("The manual partition assignment includes an empty replica list.".into());
        }
        let mut sorted = replicas.clone();
        sorted.sort_unstable();
        for (i, broker) in sorted.iter().enumerate() {
            if !brokers.contains(broker) {
                return invalid(format!(
                    "The manual partition assignment includes broker {broker}, but no such broker is registered."
                ));
            }
            if i > 0 && sorted[i - 1] == *broker {
                return invalid(format!(
                    "The manual partition assignment includes the broker {broker} more than once."
                ));
            }
        }
        if let Some(existing) = expected.filter(|&n| n != replicas.len()) {
            return invalid(format!(
                "The manual partition assignment includes a partition with {} replica(s), but this is not \
                 consistent with previous partitions, which have {existing} replica(s).",
                replicas.len()
            ));
        }
    }
    Ok(())
}

/// CreatePartitions of one topic: the new total `count`, and optionally the
/// brokers of each added partition (as many lists as partitions added).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PartitionIncrease {
    pub name: String,
    pub count: i32,
    pub assignments: Option<Vec<Vec<i32>>>,
}

impl PartitionIncrease {
    /// Kafka's controller checks, in its order: the count must add
    /// partitions, and each given assignment must name registered `brokers`,
    /// each once, as many as the topic's replicas.
    pub fn check(&self, topic: &TopicMetadata, brokers: &[i32]) -> Result<(), TopicError> {
        let current = topic.partitions;
        if self.count == current {
            return Err(TopicError::NotAnIncrease(format!("Topic already has {current} partition(s).")));
        }
        if self.count < current {
            return Err(TopicError::NotAnIncrease(format!(
                "The topic {} currently has {current} partition(s); {} would not be an increase.",
                self.name, self.count
            )));
        }
        if self.count > MAX_PARTITIONS {
            return Err(TopicError::InvalidPartitions(self.count));
        }
        let Some(assignments) = &self.assignments else { return Ok(()) };
        let additional = self.count - current;
        if assignments.len() != additional as usize {
            return Err(TopicError::InvalidReplicaAssignment(format!(
                "Attempted to add {additional} additional partition(s), but only {} assignment(s) were specified.",
                assignments.len()
            )));
        }
        check_assignments(assignments, brokers, Some(topic.replication_factor()))
    }
}

/// An immutable view of all topics, shared by every shard.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MetadataSnapshot {
    /// Raised by each record applied: the same on every broker that applied
    /// the same records, so a broker waits for a version the active
    /// controller names; shards ignore a snapshot older than theirs.
    #[serde(default)]
    pub version: u64,
    pub cluster_id: String,
    /// The end of the last block of producer ids handed to InitProducerId:
    /// ids below it may have been used, so a restart starts a new block here
    /// (ids are never reused).
    #[serde(default)]
    pub next_producer_id: i64,
    #[serde(default)]
    pub topics: BTreeMap<String, TopicMetadata>,
    /// Broker configs set at runtime (KIP-226).
    #[serde(default)]
    pub dynamic_broker_configs: DynamicBrokerConfigs,
    /// Configs set on consumer groups (KIP-848), by group id.
    #[serde(default)]
    pub group_configs: BTreeMap<String, TopicConfigs>,
    /// SCRAM credentials (KIP-554): by user, then by mechanism name
    /// (`SCRAM-SHA-256`); never a password.
    #[serde(default)]
    pub scram_credentials: BTreeMap<String, BTreeMap<String, ScramCredential>>,
    /// The registered brokers, by id.
    #[serde(default)]
    pub brokers: Vec<BrokerRegistration>,
    /// The ACLs (CreateAcls), whatever the authorizer's setting.
    #[serde(default)]
    pub acls: BTreeSet<acl::AclBinding>,
    /// The partitions being reassigned: by topic, then partition.
    #[serde(default)]
    pub reassignments: BTreeMap<String, BTreeMap<i32, Reassignment>>,
    /// The client quotas (AlterClientQuotas), by entity.
    #[serde(default)]
    pub quotas: quota::ClientQuotas,
}

/// What the server keeps of a SCRAM password (RFC 5802): the salt, the
/// iteration count, StoredKey = H(HMAC(SaltedPassword, "Client Key")) and
/// ServerKey = HMAC(SaltedPassword, "Server Key"). Enough to check a
/// client's proof and prove the server knows it, not to act as the client.
/// Stored as base64 text.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    #[serde(with = "base64_bytes")]
    pub salt: Vec<u8>,
    #[serde(with = "base64_bytes")]
    pub stored_key: Vec<u8>,
    #[serde(with = "base64_bytes")]
    pub server_key: Vec<u8>,
    pub iterations: u32,
}

/// Debug names the iterations only: keys stay out of logs.
impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredential").field("iterations", &self.iterations).finish_non_exhaustive()
    }
}

mod base64_bytes {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// One change to a user's SCRAM credentials (AlterUserScramCredentials),
/// its mechanism by SASL name.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ScramChange {
    Delete { mechanism: String },
    Upsert { mechanism: String, credential: ScramCredential },
}

impl MetadataSnapshot {
    pub fn topic(&self, name: &str) -> Option<&TopicMetadata> {
        self.topics.get(name)
    }

    /// The topic with id `id` (Fetch v13+ and Metadata v10+ name topics by
    /// id); the nil id names no topic. A scan of every topic: an index by id
    /// kept beside `topics` is the step when topic counts make it show.
    pub fn topic_by_id(&self, id: Uuid) -> Option<&TopicMetadata> {
        if id.is_nil() {
            return None;
        }
        self.topics.values().find(|t| t.id == id)
    }

    /// `user`'s SCRAM credential for `mechanism` (`SCRAM-SHA-256`).
    pub fn scram_credential(&self, user: &str, mechanism: &str) -> Option<&ScramCredential> {
        self.scram_credentials.get(user)?.get(mechanism)
    }

    /// Whether `partition` exists in `topic`.
    pub fn has_partition(&self, topic: &str, partition: i32) -> bool {
        self.partition(topic, partition).is_some()
    }

    /// The replicas and leadership of `partition` of `topic`, if it exists.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionState> {
        let index = usize::try_from(partition).ok()?;
        self.topic(topic)?.assignment.get(index)
    }

    /// The reassignment of `partition` of `topic` in progress, if any.
    pub fn reassignment(&self, topic: &str, partition: i32) -> Option<&Reassignment> {
        self.reassignments.get(topic)?.get(&partition)
    }

    /// How many partitions broker `id` leads.
    pub fn partitions_led_by(&self, id: i32) -> usize {
        self.topics.values().flat_map(|t| &t.assignment).filter(|p| p.leader == id).count()
    }
}

/// Whose configs an alteration changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigTarget {
    Topic(String),
    /// The dynamic configs of this broker (the resource named by its node id).
    Broker,
    /// The dynamic cluster-wide broker defaults (the resource with the empty name).
    ClusterDefault,
    /// A consumer group's configs (it need not exist yet, as in Kafka).
    Group(String),
}

/// A change to a topic's configs, applied by the controller to the current set.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ConfigAlteration {
    /// AlterConfigs: the new explicit set (a `None` value leaves a config unset).
    Replace(Vec<(String, Option<String>)>),
    /// IncrementalAlterConfigs: operations applied in order.
    Incremental(Vec<ConfigOp>),
}

/// One IncrementalAlterConfigs operation (KIP-339).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigOp {
    Set(String, String),
    /// Back to the broker default.
    Delete(String),
    /// Add items to a list config (`cleanup.policy`).
    Append(String, String),
    /// Remove items from a list config.
    Subtract(String, String),
}

impl ConfigAlteration {
    /// The explicit configs of `scope` after this change, validated.
    /// `default` gives a config's value without them (APPEND and SUBTRACT
    /// start from it when unset).
    pub fn apply(
        &self,
        scope: ConfigScope,
        current: &TopicConfigs,
        default: impl Fn(&str) -> String,
    ) -> Result<TopicConfigs, TopicError> {
        let ops = match self {
            ConfigAlteration::Replace(pairs) => {
                let next = scope.validate_all(pairs.iter().map(|(k, v)| (k.as_str(), v.as_deref())))?;
                scope.check_combination(&next)?;
                return Ok(next);
            }
            ConfigAlteration::Incremental(ops) => ops,
        };
        let mut next = current.clone();
        for op in ops {
            match op {
                ConfigOp::Set(name, value) => {
                    if let Some(value) = scope.check(name, value)? {
                        next.insert(name.clone(), value);
                    }
                }
                ConfigOp::Delete(name) => {
                    scope.check_name(name)?;
                    next.remove(name);
                }
                ConfigOp::Append(name, value) | ConfigOp::Subtract(name, value) => {
                    scope.check_name(name)?;
                    if !scope.is_list(name) {
                        let why = format!("{name} is not a list config; APPEND and SUBTRACT apply to lists");
                        return Err(TopicError::InvalidConfig(why));
                    }
                    let base = next.get(name).cloned().unwrap_or_else(|| default(name));
                    let mut items = list_items(&base);
                    for item in list_items(value) {
                        if matches!(op, ConfigOp::Append(..)) {
                            if !items.contains(&item) {
                                items.push(item);
                            }
                        } else {
                            items.retain(|i| *i != item);
                        }
                    }
                    if let Some(value) = scope.check(name, &items.join(","))? {
                        next.insert(name.clone(), value);
                    }
                }
            }
        }
        scope.check_combination(&next)?;
        Ok(next)
    }
}

/// Kafka's rule: 1..=249 chars of [a-zA-Z0-9._-], and not "." or "..".
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    let bad = |why: &str| Err(TopicError::InvalidName(format!("'{name}': {why}")));
    if name.is_empty() {
        return bad("empty");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are not allowed");
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return bad("longer than 249 characters");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-') {
        return bad("only ASCII alphanumerics, '.', '_' and '-' are allowed");
    }
    Ok(())
}
