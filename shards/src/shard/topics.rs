//! Topic changes: asked of the controller shard, which persists them and
//! publishes a new metadata snapshot; and every shard's side of a snapshot
//! (deleted topics' logs closed, new partitions opened, configs applied).

use super::Shard;
use crate::deleted_dirs;
use crate::error::TopicError;
use crate::groups::OFFSETS_TOPIC;
use crate::messages::{ShardMessage, TopicResults};
use crate::metadata::{
    ConfigAlteration, ConfigScope, ConfigTarget, MetadataSnapshot, MetadataStore, NewTopic, PartitionIncrease,
    TopicConfigs, TopicMetadata,
};
use crate::ownership::CONTROLLER_SHARD;
use crate::reply;
use crate::topic_config::{dynamic_broker_config_name, DynamicBrokerConfigs};
use crate::transactions::TRANSACTION_STATE_TOPIC;
use futures::future::join_all;
use std::cell::RefCell;
use std::sync::Arc;

/// Topics only the broker writes: clients may neither create nor delete them.
pub fn is_internal_topic(name: &str) -> bool {
    name == OFFSETS_TOPIC || name == TRANSACTION_STATE_TOPIC
}

/// A request that names an internal topic among others is refused whole:
/// the internal ones as reserved, the others as not attempted.
fn refuse_internal_topics<'a>(names: impl Iterator<Item = &'a str> + Clone) -> Option<TopicResults> {
    if !names.clone().any(is_internal_topic) {
        return None;
    }
    let refuse = |n: &str| match is_internal_topic(n) {
        true => TopicError::InvalidName(format!("'{n}' is reserved for the broker")),
        false => TopicError::ControllerUnavailable,
    };
    Some(names.map(|n| Err(refuse(n))).collect())
}

impl Shard {
    /// Creates topics through the controller; results in request order.
    /// Internal topics (`__consumer_offsets`) are the broker's to create.
    pub async fn create_topics(&self, topics: Vec<NewTopic>) -> TopicResults {
        self.create_topics_with_configs(topics.into_iter().map(|t| (t, TopicConfigs::new())).collect()).await
    }

    /// Creates topics with their topic configs (validated by the caller with
    /// `metadata::validate_topic_configs`); results in request order.
    pub async fn create_topics_with_configs(&self, topics: Vec<(NewTopic, TopicConfigs)>) -> TopicResults {
        if let Some(refused) = refuse_internal_topics(topics.iter().map(|(t, _)| t.name.as_str())) {
            return refused;
        }
        self.create_configured_topics_unchecked(topics).await
    }

    pub(super) async fn create_topics_unchecked(&self, topics: Vec<NewTopic>) -> TopicResults {
        self.create_configured_topics_unchecked(topics.into_iter().map(|t| (t, TopicConfigs::new())).collect()).await
    }

    async fn create_configured_topics_unchecked(&self, topics: Vec<(NewTopic, TopicConfigs)>) -> TopicResults {
        if self.id == CONTROLLER_SHARD {
            return self.controller_create_topics(topics).await;
        }
        let count = topics.len();
        let (reply, answer) = reply::channel();
        self.ask_controller(ShardMessage::CreateTopics { topics, reply }, answer, count).await
    }

    /// Changes topic configs or the dynamic broker configs through the
    /// controller; results in request order. With `validate_only`, nothing
    /// changes.
    pub async fn alter_configs(
        &self,
        alterations: Vec<(ConfigTarget, ConfigAlteration)>,
        validate_only: bool,
    ) -> Vec<Result<(), TopicError>> {
        if self.id == CONTROLLER_SHARD {
            return self.controller_alter_configs(alterations, validate_only).await;
        }
        let count = alterations.len();
        let (reply, answer) = reply::channel();
        self.ask_controller(ShardMessage::AlterConfigs { alterations, validate_only, reply }, answer, count).await
    }

    /// Raises topics' partition counts through the controller (CreatePartitions);
    /// results in request order. Every shard opens the partitions it gains
    /// before the new count is served. The partition count of an internal topic
    /// is the broker's (groups and transactional ids are hashed over it).
    pub async fn create_partitions(&self, increases: Vec<PartitionIncrease>, validate_only: bool) -> TopicResults {
        if self.id == CONTROLLER_SHARD {
            return self.controller_create_partitions(increases, validate_only).await;
        }
        let count = increases.len();
        let (reply, answer) = reply::channel();
        self.ask_controller(ShardMessage::CreatePartitions { increases, validate_only, reply }, answer, count).await
    }

    /// Deletes topics through the controller; results in request order.
    /// Internal topics cannot be deleted.
    pub async fn delete_topics(&self, names: Vec<String>) -> TopicResults {
        if let Some(refused) = refuse_internal_topics(names.iter().map(String::as_str)) {
            return refused;
        }
        if self.id == CONTROLLER_SHARD {
            return self.controller_delete_topics(names).await;
        }
        let count = names.len();
        let (reply, answer) = reply::channel();
        self.ask_controller(ShardMessage::DeleteTopics { names, reply }, answer, count).await
    }

    async fn ask_controller<T: Clone>(
        &self,
        msg: ShardMessage,
        answer: reply::ReplyReceiver<Vec<Result<T, TopicError>>>,
        count: usize,
    ) -> Vec<Result<T, TopicError>> {
        let unavailable = || vec![Err(TopicError::ControllerUnavailable); count];
        if self.peers.send_to(CONTROLLER_SHARD, msg).await.is_err() {
            return unavailable();
        }
        answer.await.unwrap_or_else(|_| unavailable())
    }

    pub(super) async fn controller_create_topics(&self, topics: Vec<(NewTopic, TopicConfigs)>) -> TopicResults {
        let _serial = self.topic_changes.acquire_permit(1).await.expect("the topic-change semaphore is never closed");
        let results: TopicResults = {
            let mut store = self.controller_store().borrow_mut();
            topics.iter().map(|(t, configs)| store.create_topic(t, configs, self.config.default_partitions)).collect()
        };
        if results.iter().any(Result::is_ok) {
            self.publish_metadata(Vec::new()).await;
        }
        results
    }

    pub(super) async fn controller_alter_configs(
        &self,
        alterations: Vec<(ConfigTarget, ConfigAlteration)>,
        validate_only: bool,
    ) -> Vec<Result<(), TopicError>> {
        let _serial = self.topic_changes.acquire_permit(1).await.expect("the topic-change semaphore is never closed");
        let results: Vec<Result<(), TopicError>> = {
            let mut store = self.controller_store().borrow_mut();
            alterations
                .iter()
                .map(|(target, alteration)| {
                    let snapshot = store.snapshot();
                    let dynamic = &snapshot.dynamic_broker_configs;
                    match target {
                        ConfigTarget::Topic(name) => {
                            let current = snapshot.topic(name).ok_or(TopicError::Unknown)?;
                            let unset = TopicConfigs::new();
                            let default = |config: &str| self.config.topic_config_value(dynamic, name, &unset, config);
                            let configs = alteration.apply(ConfigScope::Topic, &current.configs, default)?;
                            if validate_only {
                                return Ok(());
                            }
                            store.set_topic_configs(name, configs).map(drop)
                        }
                        ConfigTarget::Broker | ConfigTarget::ClusterDefault => {
                            let cluster_default = *target == ConfigTarget::ClusterDefault;
                            let current = if cluster_default { &dynamic.cluster_default } else { &dynamic.broker };
                            let static_layers = DynamicBrokerConfigs::default();
                            let default = |config: &str| {
                                dynamic_broker_config_name(config).map_or_else(String::new, |name| {
                                    self.config.broker_config_chain(&static_layers, name).swap_remove(0).value
                                })
                            };
                            let configs = alteration.apply(ConfigScope::Broker, current, default)?;
                            if validate_only {
                                return Ok(());
                            }
                            store.set_dynamic_broker_configs(cluster_default, configs)
                        }
                        ConfigTarget::Group(group) => {
                            let unset = TopicConfigs::new();
                            let current = snapshot.group_configs.get(group).unwrap_or(&unset);
                            let configs = alteration.apply(ConfigScope::Group, current, |_| String::new())?;
                            if validate_only {
                                return Ok(());
                            }
                            store.set_group_configs(group, configs)
                        }
                    }
                })
                .collect()
        };
        if !validate_only && results.iter().any(Result::is_ok) {
            self.publish_metadata(Vec::new()).await;
        }
        results
    }

    pub(super) async fn controller_create_partitions(
        &self,
        increases: Vec<PartitionIncrease>,
        validate_only: bool,
    ) -> TopicResults {
        let _serial = self.topic_changes.acquire_permit(1).await.expect("the topic-change semaphore is never closed");
        let brokers = [self.config.node_id];
        let results: TopicResults = {
            let mut store = self.controller_store().borrow_mut();
            let add = |increase: &PartitionIncrease| match is_internal_topic(&increase.name) {
                true => Err(TopicError::InvalidName(format!("'{}' is reserved for the broker", increase.name))),
                false => store.add_partitions(increase, &brokers, validate_only),
            };
            increases.iter().map(add).collect()
        };
        if !validate_only && results.iter().any(Result::is_ok) {
            self.publish_metadata(Vec::new()).await;
        }
        results
    }

    pub(super) async fn controller_delete_topics(&self, names: Vec<String>) -> TopicResults {
        let _serial = self.topic_changes.acquire_permit(1).await.expect("the topic-change semaphore is never closed");
        let results: TopicResults = {
            let mut store = self.controller_store().borrow_mut();
            names.iter().map(|name| store.delete_topic(name)).collect()
        };
        let deleted: Vec<TopicMetadata> = results.iter().filter_map(|r| r.as_ref().ok().cloned()).collect();
        if !deleted.is_empty() {
            self.publish_metadata(deleted).await;
        }
        results
    }

    pub(super) fn controller_store(&self) -> &RefCell<MetadataStore> {
        self.store.as_ref().expect("topic changes run on the controller shard only")
    }

    /// Pushes the store's snapshot to every shard and waits until all adopted it,
    /// so that a client told "created" finds the topic on any shard.
    async fn publish_metadata(&self, deleted: Vec<TopicMetadata>) {
        let snapshot = self.controller_store().borrow().snapshot();
        // Two phases, so that no shard routes a request to a partition whose
        // owner has not opened it yet: every shard opens (and drops) logs,
        // then every shard starts serving by the new snapshot.
        let mut acks = Vec::new();
        for peer in (0..self.shard_count).filter(|&p| p != self.id) {
            let (reply, ack) = reply::channel();
            let msg = ShardMessage::PrepareMetadata { snapshot: snapshot.clone(), deleted: deleted.clone(), reply };
            if self.peers.send_to(peer, msg).await.is_ok() {
                acks.push(ack);
            }
        }
        self.prepare_metadata(&snapshot, &deleted).await;
        join_all(acks).await;
        let mut acks = Vec::new();
        for peer in (0..self.shard_count).filter(|&p| p != self.id) {
            let (reply, ack) = reply::channel();
            if self.peers.send_to(peer, ShardMessage::AdoptMetadata { snapshot: snapshot.clone(), reply }).await.is_ok()
            {
                acks.push(ack);
            }
        }
        self.adopt_metadata(snapshot);
        join_all(acks).await;
    }

    /// Closes and removes the logs of deleted topics and opens the partitions
    /// the snapshot gives this shard.
    pub(crate) async fn prepare_metadata(&self, snapshot: &MetadataSnapshot, deleted: &[TopicMetadata]) {
        let mut removed = Vec::new();
        for topic in deleted {
            if snapshot.topic(&topic.name).is_some_and(|t| t.id != topic.id) {
                continue; // recreated since: its logs are the new topic's
            }
            let partitions = self.partitions.borrow_mut().remove_topic(&topic.name);
            for partition in partitions {
                if let Err(e) = partition.log.close().await {
                    tracing::warn!(topic = %topic.name, partition = partition.index, "closing deleted partition: {e}");
                }
                let dir = self.partition_dir(&topic.name, partition.index);
                match deleted_dirs::mark_deleted(&dir, topic.id) {
                    Ok(marked) => removed.push(marked),
                    Err(e) => tracing::warn!("removing {}: {e}", dir.display()),
                }
            }
        }
        if !removed.is_empty() {
            if let Err(e) = weir_engine::durable::sync_dir(&self.config.data_dir) {
                tracing::warn!("syncing {}: {e}", self.config.data_dir.display());
            }
            deleted_dirs::remove_in_background(removed);
        }
        self.open_owned_partitions(snapshot).await;
    }

    /// Serves by a newer snapshot and gives open logs their topic's changed configs.
    pub(crate) fn adopt_metadata(&self, snapshot: Arc<MetadataSnapshot>) {
        if snapshot.version <= self.metadata.borrow().version {
            return;
        }
        let previous = std::mem::replace(&mut *self.metadata.borrow_mut(), snapshot.clone());
        self.apply_config_changes(&previous, &snapshot);
    }

    /// Hands the new configs of topics whose configs changed (all topics,
    /// when the dynamic broker configs changed) to their open logs, and the
    /// connection limits to the listener.
    fn apply_config_changes(&self, previous: &MetadataSnapshot, next: &MetadataSnapshot) {
        let dynamic = &next.dynamic_broker_configs;
        let broker_changed = previous.dynamic_broker_configs != *dynamic;
        if broker_changed {
            let (total, per_ip) = self.config.connection_limits(dynamic);
            self.connections.set_limits(total, per_ip);
            tracing::info!(configs = ?dynamic, "dynamic broker configs changed");
        }
        let partitions = self.partitions.borrow();
        for topic in next.topics.values() {
            let Some(old) = previous.topic(&topic.name) else { continue };
            if old.id != topic.id || (old.configs == topic.configs && !broker_changed) {
                continue;
            }
            let config = self.config.log_config(dynamic, &topic.name, &topic.configs);
            for partition in partitions.of_topic(&topic.name) {
                partition.log.set_config(config);
            }
            if old.configs != topic.configs {
                tracing::info!(topic = %topic.name, configs = ?topic.configs, "topic configs changed");
            }
        }
    }
}
