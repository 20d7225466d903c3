//! Topic metadata: what topics exist, their ids, partition counts and the
//! topic configs set on them (validated by `topic_config`), the dynamic
//! broker configs, and the users' SCRAM credentials (salted and hashed).
//!
//! The controller shard owns the one mutable [`MetadataStore`]; every shard
//! reads an immutable [`MetadataSnapshot`] that the controller replaces after
//! each change. The store is persisted as TOML in `<data_dir>/metadata.toml`,
//! replaced atomically (write, fsync, rename, fsync dir).

use crate::error::TopicError;
use crate::placement::{assign_replicas, BrokerSlot};
use crate::topic_config::{
    config_type, dynamic_broker_config_info, group_config, is_dynamic_broker_config, is_topic_config_name, list_items,
    topic_config, validate_combination, validate_dynamic_broker_config, validate_group_config, validate_topic_config,
    DynamicBrokerConfigs,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use uuid::Uuid;
use weir_engine::durable;

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
    /// them once loaded: a file written before Weir kept them gets this
    /// broker alone, see [`MetadataStore::load`]).
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

/// What a topic gets when CreateTopics leaves it to the broker (-1).
#[derive(Clone, Copy, Debug)]
pub struct TopicDefaults {
    /// `num.partitions`.
    pub partitions: i32,
    /// `default.replication.factor`.
    pub replication_factor: i16,
}

/// Checks a topic to create against `snapshot` and places its replicas on
/// `brokers`: the topic as it would be created (with a new id).
pub fn plan_topic(
    snapshot: &MetadataSnapshot,
    topic: &NewTopic,
    configs: &TopicConfigs,
    defaults: TopicDefaults,
    brokers: &[BrokerSlot],
) -> Result<TopicMetadata, TopicError> {
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
            assign_replicas(0, partitions, rf, brokers, start)?
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
#[derive(Clone, Debug)]
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
#[derive(Clone, Debug)]
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
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct MetadataSnapshot {
    /// Increases with every change; shards ignore a snapshot older than theirs.
    #[serde(skip)]
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
#[derive(Clone, Debug)]
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
}

/// Whose configs an alteration changes.
#[derive(Clone, Debug, PartialEq, Eq)]
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
#[derive(Clone, Debug)]
pub enum ConfigAlteration {
    /// AlterConfigs: the new explicit set (a `None` value leaves a config unset).
    Replace(Vec<(String, Option<String>)>),
    /// IncrementalAlterConfigs: operations applied in order.
    Incremental(Vec<ConfigOp>),
}

/// One IncrementalAlterConfigs operation (KIP-339).
#[derive(Clone, Debug, PartialEq, Eq)]
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

/// The controller's mutable copy of the metadata and where it is persisted.
pub struct MetadataStore {
    path: PathBuf,
    current: Arc<MetadataSnapshot>,
    /// The next producer id of the current block, which ends at
    /// `current.next_producer_id`.
    next_producer_id: i64,
}

/// Producer ids are persisted a block at a time, as Kafka hands them out, so
/// InitProducerId rewrites and fsyncs `metadata.toml` once per block rather
/// than once per producer. A restart abandons the rest of a block.
const PRODUCER_ID_BLOCK: i64 = 1000;

impl MetadataStore {
    /// Loads `<data_dir>/metadata.toml`, or starts empty with a fresh
    /// cluster id. Partitions the file has no assignment for (it was written
    /// before Weir kept them) are this broker's, `node_id`, alone, in leader
    /// epoch 0, as they were; with no `node_id` (a tool editing a stopped
    /// broker's store) they stay without one, for the broker to fill in.
    pub fn load(data_dir: &Path, node_id: Option<i32>) -> Result<MetadataStore, String> {
        let path = data_dir.join("metadata.toml");
        let mut snapshot = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str::<MetadataSnapshot>(&text)
                .map_err(|e| format!("corrupt metadata file {}: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                MetadataSnapshot { cluster_id: Uuid::new_v4().simple().to_string(), ..MetadataSnapshot::default() }
            }
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        for topic in snapshot.topics.values_mut().filter(|_| node_id.is_some()) {
            let missing = (topic.partitions as usize).saturating_sub(topic.assignment.len());
            let alone = PartitionState::new(vec![node_id.expect("filtered")]);
            topic.assignment.extend(std::iter::repeat_n(alone, missing));
        }
        Ok(MetadataStore { path, next_producer_id: snapshot.next_producer_id, current: Arc::new(snapshot) })
    }

    pub fn snapshot(&self) -> Arc<MetadataSnapshot> {
        self.current.clone()
    }

    /// Validates and records a new topic with its (validated) configs,
    /// persisted before it returns.
    pub fn create_topic(
        &mut self,
        topic: &NewTopic,
        configs: &TopicConfigs,
        defaults: TopicDefaults,
        brokers: &[BrokerSlot],
    ) -> Result<TopicMetadata, TopicError> {
        let created = plan_topic(&self.current, topic, configs, defaults, brokers)?;
        let mut next = self.clone_current();
        next.topics.insert(created.name.clone(), created.clone());
        self.persist(next)?;
        Ok(created)
    }

    /// Replaces the explicit configs of a topic (already validated).
    pub fn set_topic_configs(&mut self, name: &str, configs: TopicConfigs) -> Result<TopicMetadata, TopicError> {
        let mut next = self.clone_current();
        let topic = next.topics.get_mut(name).ok_or(TopicError::Unknown)?;
        topic.configs = configs;
        let changed = topic.clone();
        self.persist(next)?;
        Ok(changed)
    }

    /// Raises a topic's partition count (checked with
    /// [`PartitionIncrease::check`]); with `validate_only`, returns the topic
    /// as it would be and changes nothing.
    pub fn add_partitions(
        &mut self,
        increase: &PartitionIncrease,
        brokers: &[BrokerSlot],
        validate_only: bool,
    ) -> Result<TopicMetadata, TopicError> {
        let current = self.current.topic(&increase.name).ok_or(TopicError::Unknown)?;
        let ids: Vec<i32> = brokers.iter().map(|b| b.id).collect();
        increase.check(current, &ids)?;
        let added = increase.count - current.partitions;
        let replicas = match &increase.assignments {
            Some(given) => given.clone(),
            None => {
                let rf = i16::try_from(current.replication_factor()).unwrap_or(i16::MAX);
                assign_replicas(current.partitions, added, rf, brokers, current.partitions as usize)?
            }
        };
        let mut grown = TopicMetadata { partitions: increase.count, ..current.clone() };
        grown.assignment.extend(replicas.into_iter().map(PartitionState::new));
        if !validate_only {
            let mut next = self.clone_current();
            next.topics.insert(grown.name.clone(), grown.clone());
            self.persist(next)?;
        }
        Ok(grown)
    }

    /// Replaces the dynamic broker configs of this broker (`cluster_default`
    /// false) or of the whole cluster (already validated).
    pub fn set_dynamic_broker_configs(
        &mut self,
        cluster_default: bool,
        configs: TopicConfigs,
    ) -> Result<(), TopicError> {
        let mut next = self.clone_current();
        let dynamic = &mut next.dynamic_broker_configs;
        *(if cluster_default { &mut dynamic.cluster_default } else { &mut dynamic.broker }) = configs;
        self.persist(next)
    }

    /// Replaces the configs set on consumer group `group` (already validated).
    pub fn set_group_configs(&mut self, group: &str, configs: TopicConfigs) -> Result<(), TopicError> {
        let mut next = self.clone_current();
        if configs.is_empty() {
            next.group_configs.remove(group);
        } else {
            next.group_configs.insert(group.to_string(), configs);
        }
        self.persist(next)
    }

    /// Applies each user's SCRAM changes (checked by the caller: known
    /// mechanisms, acceptable iterations, no duplicates), all of a user's or
    /// none: deleting a credential the user does not have is
    /// `TopicError::Unknown` for that user. One write for all; results in
    /// the order of `users`.
    pub fn alter_scram_credentials(&mut self, users: &[(String, Vec<ScramChange>)]) -> Vec<Result<(), TopicError>> {
        let mut next = self.clone_current();
        let mut results: Vec<Result<(), TopicError>> = users
            .iter()
            .map(|(user, changes)| {
                let mut credentials = next.scram_credentials.get(user).cloned().unwrap_or_default();
                for change in changes {
                    match change {
                        ScramChange::Delete { mechanism } => {
                            credentials.remove(mechanism).ok_or(TopicError::Unknown)?;
                        }
                        ScramChange::Upsert { mechanism, credential } => {
                            credentials.insert(mechanism.clone(), credential.clone());
                        }
                    }
                }
                if credentials.is_empty() {
                    next.scram_credentials.remove(user);
                } else {
                    next.scram_credentials.insert(user.clone(), credentials);
                }
                Ok(())
            })
            .collect();
        if results.iter().any(Result::is_ok) {
            if let Err(e) = self.persist(next) {
                results.iter_mut().filter(|r| r.is_ok()).for_each(|r| *r = Err(e.clone()));
            }
        }
        results
    }

    /// Removes a topic; returns what it was.
    pub fn delete_topic(&mut self, name: &str) -> Result<TopicMetadata, TopicError> {
        let mut next = self.clone_current();
        let removed = next.topics.remove(name).ok_or(TopicError::Unknown)?;
        self.persist(next)?;
        Ok(removed)
    }

    fn clone_current(&self) -> MetadataSnapshot {
        MetadataSnapshot {
            version: self.current.version + 1,
            cluster_id: self.current.cluster_id.clone(),
            next_producer_id: self.current.next_producer_id,
            topics: self.current.topics.clone(),
            dynamic_broker_configs: self.current.dynamic_broker_configs.clone(),
            group_configs: self.current.group_configs.clone(),
            scram_credentials: self.current.scram_credentials.clone(),
        }
    }

    /// A new producer id, its block persisted as used before it is returned.
    pub fn allocate_producer_id(&mut self) -> Result<i64, TopicError> {
        if self.next_producer_id == self.current.next_producer_id {
            let mut next = self.clone_current();
            next.next_producer_id += PRODUCER_ID_BLOCK;
            self.persist(next)?;
        }
        let id = self.next_producer_id;
        self.next_producer_id += 1;
        Ok(id)
    }

    /// Atomically replaces the file, then the in-memory snapshot.
    fn persist(&mut self, next: MetadataSnapshot) -> Result<(), TopicError> {
        let storage = |e: std::io::Error| TopicError::Storage(e.to_string());
        let text = toml::to_string(&next).map_err(|e| TopicError::Storage(e.to_string()))?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(storage)?;
        durable::replace_file(&self.path, &self.path.with_extension("toml.tmp"), text.as_bytes()).map_err(storage)?;
        self.current = Arc::new(next);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults(partitions: i32) -> TopicDefaults {
        TopicDefaults { partitions, replication_factor: 1 }
    }

    fn brokers(ids: &[i32]) -> Vec<BrokerSlot> {
        ids.iter().map(|&id| BrokerSlot { id, rack: None }).collect()
    }

    fn new_topic(name: &str, partitions: i32) -> NewTopic {
        NewTopic::with_partitions(name, partitions)
    }

    #[test]
    fn topics_survive_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MetadataStore::load(dir.path(), Some(1)).unwrap();
        let created =
            store.create_topic(&new_topic("clicks", 3), &TopicConfigs::new(), defaults(1), &brokers(&[1])).unwrap();
        store.create_topic(&new_topic("defaulted", -1), &TopicConfigs::new(), defaults(5), &brokers(&[1])).unwrap();
        let reloaded = MetadataStore::load(dir.path(), Some(1)).unwrap().snapshot();
        assert_eq!(reloaded.cluster_id, store.snapshot().cluster_id);
        assert_eq!(reloaded.topic("clicks"), Some(&created));
        assert_eq!(reloaded.topic("defaulted").unwrap().partitions, 5);
        store.delete_topic("clicks").unwrap();
        assert!(MetadataStore::load(dir.path(), Some(1)).unwrap().snapshot().topic("clicks").is_none());
    }

    #[test]
    fn bad_topics_are_refused() {
        let none = TopicConfigs::new();
        let dir = tempfile::tempdir().unwrap();
        let mut store = MetadataStore::load(dir.path(), Some(1)).unwrap();
        store.create_topic(&new_topic("a", 1), &none, defaults(1), &brokers(&[1])).unwrap();
        assert_eq!(
            store.create_topic(&new_topic("a", 1), &none, defaults(1), &brokers(&[1])),
            Err(TopicError::AlreadyExists)
        );
        for name in ["", ".", "..", "a/b", "spaces no", &"x".repeat(250)] {
            assert!(matches!(
                store.create_topic(&new_topic(name, 1), &none, defaults(1), &brokers(&[1])),
                Err(TopicError::InvalidName(_))
            ));
        }
        assert_eq!(
            store.create_topic(&new_topic("z", 0), &none, defaults(1), &brokers(&[1])),
            Err(TopicError::InvalidPartitions(0))
        );
        let rf3 = NewTopic { replication_factor: 3, ..new_topic("r", 1) };
        assert_eq!(
            store.create_topic(&rf3, &none, defaults(1), &brokers(&[1])),
            Err(TopicError::InvalidReplicationFactor { asked: 3, brokers: 1 })
        );
        assert_eq!(store.delete_topic("nope"), Err(TopicError::Unknown));
    }

    #[test]
    fn configs_are_validated_persisted_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MetadataStore::load(dir.path(), Some(1)).unwrap();
        let bad = validate_topic_configs([("retention.ms", Some("soon"))]);
        assert!(matches!(bad, Err(TopicError::InvalidConfig(_))));
        let unknown = validate_topic_configs([("retention.forever", None)]);
        assert!(matches!(unknown, Err(TopicError::InvalidConfig(_))));
        let configs = validate_topic_configs([("segment.bytes", Some("4096")), ("retention.ms", None)]).unwrap();
        assert_eq!(configs.len(), 1);
        store.create_topic(&new_topic("c", 1), &configs, defaults(1), &brokers(&[1])).unwrap();
        let reloaded = MetadataStore::load(dir.path(), Some(1)).unwrap().snapshot();
        assert_eq!(reloaded.topic("c").unwrap().configs.get("segment.bytes").map(String::as_str), Some("4096"));
        let replaced = validate_topic_configs([("cleanup.policy", Some("compact"))]).unwrap();
        store.set_topic_configs("c", replaced.clone()).unwrap();
        assert_eq!(MetadataStore::load(dir.path(), Some(1)).unwrap().snapshot().topic("c").unwrap().configs, replaced);
        assert_eq!(store.set_topic_configs("nope", replaced), Err(TopicError::Unknown));
    }

    #[test]
    fn incremental_alterations() {
        let default = |name: &str| if name == "cleanup.policy" { "delete".to_string() } else { "0".to_string() };
        let current: TopicConfigs = [("retention.ms".to_string(), "1000".to_string())].into();
        let ops = ConfigAlteration::Incremental(vec![
            ConfigOp::Append("cleanup.policy".into(), "compact".into()),
            ConfigOp::Delete("retention.ms".into()),
            ConfigOp::Set("segment.bytes".into(), "2048".into()),
        ]);
        let next = ops.apply(ConfigScope::Topic, &current, default).unwrap();
        assert_eq!(next.get("cleanup.policy").map(String::as_str), Some("delete,compact"));
        assert_eq!(next.get("segment.bytes").map(String::as_str), Some("2048"));
        assert!(!next.contains_key("retention.ms"));
        let subtract =
            ConfigAlteration::Incremental(vec![ConfigOp::Subtract("cleanup.policy".into(), "delete".into())]);
        assert_eq!(
            subtract.apply(ConfigScope::Topic, &next, default).unwrap().get("cleanup.policy").map(String::as_str),
            Some("compact")
        );
        let emptied = ConfigAlteration::Incremental(vec![ConfigOp::Subtract("cleanup.policy".into(), "delete".into())]);
        assert!(matches!(emptied.apply(ConfigScope::Topic, &current, default), Err(TopicError::InvalidConfig(_))));
        let not_list = ConfigAlteration::Incremental(vec![ConfigOp::Append("retention.ms".into(), "1".into())]);
        assert!(matches!(not_list.apply(ConfigScope::Topic, &current, default), Err(TopicError::InvalidConfig(_))));
        let replace = ConfigAlteration::Replace(vec![("segment.ms".into(), Some("5".into()))]);
        assert_eq!(replace.apply(ConfigScope::Topic, &current, default).unwrap().len(), 1);
        let ignored = ConfigAlteration::Replace(vec![("message.format.version".into(), Some("2.8".into()))]);
        assert!(ignored.apply(ConfigScope::Topic, &current, default).unwrap().is_empty());
        let lags = ConfigAlteration::Incremental(vec![ConfigOp::Set("min.compaction.lag.ms".into(), "10".into())]);
        let conflicting = TopicConfigs::from([("max.compaction.lag.ms".to_string(), "5".to_string())]);
        assert!(matches!(lags.apply(ConfigScope::Topic, &conflicting, default), Err(TopicError::InvalidConfig(_))));

        // Broker scope: Kafka's broker names; a static one is an invalid request.
        let broker = ConfigAlteration::Incremental(vec![
            ConfigOp::Set("log.retention.ms".into(), "5000".into()),
            ConfigOp::Append("log.cleanup.policy".into(), "compact".into()),
        ]);
        let next = broker.apply(ConfigScope::Broker, &TopicConfigs::new(), |_| "delete".into()).unwrap();
        assert_eq!(next.get("log.cleanup.policy").map(String::as_str), Some("delete,compact"));
        let static_one = ConfigAlteration::Incremental(vec![ConfigOp::Set("log.dirs".into(), "/tmp".into())]);
        let refused = static_one.apply(ConfigScope::Broker, &TopicConfigs::new(), default);
        assert!(matches!(refused, Err(TopicError::InvalidRequest(_))));
        let bad = ConfigAlteration::Replace(vec![("log.retention.ms".into(), Some("soon".into()))]);
        assert!(matches!(bad.apply(ConfigScope::Broker, &current, default), Err(TopicError::InvalidConfig(_))));
    }

    #[test]
    fn partitions_are_added_as_kafka_checks_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MetadataStore::load(dir.path(), Some(1)).unwrap();
        let created =
            store.create_topic(&new_topic("t", 2), &TopicConfigs::new(), defaults(1), &brokers(&[1])).unwrap();
        let increase = |count, assignments| PartitionIncrease { name: "t".into(), count, assignments };
        let message = |r: Result<TopicMetadata, TopicError>| r.unwrap_err().to_string();
        assert_eq!(
            message(store.add_partitions(&increase(2, None), &brokers(&[1]), false)),
            "Topic already has 2 partition(s)."
        );
        assert_eq!(
            message(store.add_partitions(&increase(1, None), &brokers(&[1]), false)),
            "The topic t currently has 2 partition(s); 1 would not be an increase."
        );
        assert_eq!(
            store.add_partitions(&increase(MAX_PARTITIONS + 1, None), &brokers(&[1]), false),
            Err(TopicError::InvalidPartitions(MAX_PARTITIONS + 1))
        );
        let unknown = PartitionIncrease { name: "nope".into(), ..increase(3, None) };
        assert_eq!(store.add_partitions(&unknown, &brokers(&[1]), false), Err(TopicError::Unknown));
        for (assignments, why) in [
            (vec![vec![1]], "Attempted to add 2 additional partition(s), but only 1 assignment(s) were specified."),
            (vec![vec![1], vec![]], "The manual partition assignment includes an empty replica list."),
            (
                vec![vec![1], vec![2]],
                "The manual partition assignment includes broker 2, but no such broker is registered.",
            ),
            (vec![vec![1], vec![1, 1]], "The manual partition assignment includes the broker 1 more than once."),
        ] {
            let result = store.add_partitions(&increase(4, Some(assignments)), &brokers(&[1]), false);
            assert_eq!(result, Err(TopicError::InvalidReplicaAssignment(why.into())));
        }
        let two_replicas = store.add_partitions(&increase(3, Some(vec![vec![1, 2]])), &brokers(&[1, 2]), false);
        assert!(message(two_replicas).contains("a partition with 2 replica(s)"));

        let checked = store.add_partitions(&increase(4, Some(vec![vec![1], vec![1]])), &brokers(&[1]), true).unwrap();
        assert_eq!(checked.partitions, 4);
        assert_eq!(store.snapshot().topic("t").unwrap().partitions, 2, "validate_only changed the topic");
        let grown = store.add_partitions(&increase(5, None), &brokers(&[1]), false).unwrap();
        assert_eq!(grown.assignment.len(), 5);
        assert_eq!(grown, TopicMetadata { partitions: 5, assignment: grown.assignment.clone(), ..created });
        assert_eq!(MetadataStore::load(dir.path(), Some(1)).unwrap().snapshot().topic("t"), Some(&grown));
    }

    #[test]
    fn scram_credentials_are_altered_per_user_and_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MetadataStore::load(dir.path(), Some(1)).unwrap();
        let credential =
            ScramCredential { salt: vec![1, 2], stored_key: vec![3; 32], server_key: vec![4; 32], iterations: 4096 };
        let upsert = |m: &str| ScramChange::Upsert { mechanism: m.into(), credential: credential.clone() };
        let delete = |m: &str| ScramChange::Delete { mechanism: m.into() };
        let results = store.alter_scram_credentials(&[
            ("alice".into(), vec![upsert("SCRAM-SHA-256"), upsert("SCRAM-SHA-512")]),
            ("bob".into(), vec![upsert("SCRAM-SHA-256"), delete("SCRAM-SHA-512")]),
        ]);
        assert_eq!(results, vec![Ok(()), Err(TopicError::Unknown)]);
        let reloaded = MetadataStore::load(dir.path(), Some(1)).unwrap().snapshot();
        assert_eq!(reloaded.scram_credential("alice", "SCRAM-SHA-512"), Some(&credential));
        assert!(!reloaded.scram_credentials.contains_key("bob"), "bob's changes were all or none");
        let text = std::fs::read_to_string(dir.path().join("metadata.toml")).unwrap();
        assert!(text.contains("stored_key = \"AwMD"), "keys are base64 text: {text}");
        assert_eq!(format!("{credential:?}"), "ScramCredential { iterations: 4096, .. }");

        store.alter_scram_credentials(&[("alice".into(), vec![delete("SCRAM-SHA-256"), delete("SCRAM-SHA-512")])]);
        assert!(MetadataStore::load(dir.path(), Some(1)).unwrap().snapshot().scram_credentials.is_empty());
    }

    #[test]
    fn a_metadata_file_without_configs_loads() {
        let dir = tempfile::tempdir().unwrap();
        let old = "cluster_id = \"abc\"\n[topics.t]\nname = \"t\"\nid = \"67e55044-10b1-426f-9247-bb680e5fe0c8\"\npartitions = 2\n";
        std::fs::write(dir.path().join("metadata.toml"), old).unwrap();
        let snapshot = MetadataStore::load(dir.path(), Some(7)).unwrap().snapshot();
        assert!(snapshot.topic("t").unwrap().configs.is_empty());
        // Nor assignments: each partition is this broker's alone, as it was.
        assert_eq!(snapshot.topic("t").unwrap().assignment, vec![PartitionState::new(vec![7]); 2]);
        assert_eq!(snapshot.partition("t", 1).map(|p| (p.leader, p.leader_epoch)), Some((7, 0)));
        assert!(snapshot.partition("t", 2).is_none() && snapshot.partition("t", -1).is_none());
    }

    #[test]
    fn replicas_are_placed_on_the_brokers_persisted_and_checked_when_given() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MetadataStore::load(dir.path(), Some(1)).unwrap();
        let three = brokers(&[1, 2, 3]);
        let rf3 = NewTopic { replication_factor: 3, ..new_topic("r", 6) };
        let created = store.create_topic(&rf3, &TopicConfigs::new(), defaults(1), &three).unwrap();
        assert_eq!(created.replication_factor(), 3);
        let leaders: std::collections::BTreeSet<i32> = created.assignment.iter().map(|p| p.leader).collect();
        assert_eq!(leaders.len(), 3, "leaders spread: {:?}", created.assignment);
        assert!(created.assignment.iter().all(|p| p.isr == p.replicas && p.leader == p.replicas[0]));
        assert_eq!(
            MetadataStore::load(dir.path(), Some(1)).unwrap().snapshot().topic("r"),
            Some(&created),
            "persisted"
        );
        let defaulted = NewTopic { replication_factor: -1, ..new_topic("d", 1) };
        let two = TopicDefaults { partitions: 1, replication_factor: 2 };
        assert_eq!(store.create_topic(&defaulted, &TopicConfigs::new(), two, &three).unwrap().replication_factor(), 2);

        let given = |lists: Vec<Vec<i32>>| NewTopic { assignments: Some(lists), ..new_topic("g", -1) };
        let mut refused =
            |lists| store.create_topic(&given(lists), &TopicConfigs::new(), defaults(1), &three).unwrap_err();
        assert!(refused(vec![vec![1, 4]]).to_string().contains("includes broker 4, but no such broker is registered"));
        assert!(refused(vec![vec![2, 2]]).to_string().contains("the broker 2 more than once"));
        assert!(refused(vec![vec![1, 2], vec![3]]).to_string().contains("a partition with 1 replica(s)"));
        let placed =
            store.create_topic(&given(vec![vec![3, 1], vec![2, 3]]), &TopicConfigs::new(), defaults(1), &three);
        let placed = placed.unwrap();
        assert_eq!((placed.partitions, placed.assignment[0].leader, placed.assignment[1].leader), (2, 3, 2));
        // New partitions keep the topic's replication factor.
        let grown = PartitionIncrease { name: "r".into(), count: 8, assignments: None };
        let grown = store.add_partitions(&grown, &three, false).unwrap();
        assert!(grown.assignment[6..].iter().all(|p| p.replicas.len() == 3));
    }

    #[test]
    fn producer_ids_are_persisted_by_the_block_and_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("metadata.toml");
        let mut store = MetadataStore::load(dir.path(), Some(1)).unwrap();
        assert_eq!(store.allocate_producer_id(), Ok(0));
        std::fs::remove_file(&file).unwrap();
        let ids: Vec<i64> = (1..PRODUCER_ID_BLOCK).map(|_| store.allocate_producer_id().unwrap()).collect();
        assert_eq!(ids, (1..PRODUCER_ID_BLOCK).collect::<Vec<_>>());
        assert!(!file.exists(), "an id inside the block rewrote the file");
        assert_eq!(store.allocate_producer_id(), Ok(PRODUCER_ID_BLOCK));
        assert!(file.exists(), "a new block was not persisted");

        // A restart starts after the last persisted block, whatever of it was used.
        store.allocate_producer_id().unwrap();
        let mut restarted = MetadataStore::load(dir.path(), Some(1)).unwrap();
        assert_eq!(restarted.allocate_producer_id(), Ok(2 * PRODUCER_ID_BLOCK));
        let mut again = MetadataStore::load(dir.path(), Some(1)).unwrap();
        assert_eq!(again.allocate_producer_id(), Ok(3 * PRODUCER_ID_BLOCK));
    }
}
