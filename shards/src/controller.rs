//! The controller: where topic and config changes are decided and persisted
//! (the [`MetadataStore`]) and producer ids handed out, one change at a time.
//! It lives on [`CONTROLLER_SHARD`]; other shards reach it with
//! `Shard::on_controller`. Each accepted change is published to every shard
//! (`Shard::publish_metadata`). The metadata quorum of a cluster goes here:
//! a change is then decided by the quorum's log instead of one store.
//!
//! [`CONTROLLER_SHARD`]: crate::ownership::CONTROLLER_SHARD

use crate::config::BrokerConfig;
use crate::error::TopicError;
use crate::messages::TopicResults;
use crate::metadata::{
    ConfigAlteration, ConfigScope, ConfigTarget, MetadataChanges, MetadataStore, NewTopic, PartitionIncrease,
    ProducerIdBlock, ScramChange, TopicConfigs,
};
use crate::shard::{is_internal_topic, Shard};
use crate::topic_config::{dynamic_broker_config_name, DynamicBrokerConfigs};
use std::cell::RefCell;
use std::sync::Arc;
use weir_runtime::sync::{Permit, Semaphore};

pub(crate) struct Controller {
    store: RefCell<MetadataStore>,
    /// One change at a time, so that each is planned against the image the
    /// one before left, and snapshots are published in order.
    changes: Semaphore,
    producer_ids: RefCell<ProducerIdBlock>,
    config: Arc<BrokerConfig>,
}

impl Controller {
    pub fn new(store: MetadataStore, config: Arc<BrokerConfig>) -> Self {
        Controller { store: RefCell::new(store), changes: Semaphore::new(1), producer_ids: RefCell::default(), config }
    }

    async fn one_change_at_a_time(&self) -> Permit<'_> {
        self.changes.acquire_permit(1).await.expect("the controller's semaphore is never closed")
    }

    /// Plans changes against the current image with `plan` (one result per
    /// item it changes), commits them and publishes the new image. If the
    /// commit fails, so does every result that planned a change.
    async fn change<T>(
        &self,
        shard: &Shard,
        plan: impl FnOnce(&mut MetadataChanges) -> Vec<Result<T, TopicError>>,
    ) -> Vec<Result<T, TopicError>> {
        let _serial = self.one_change_at_a_time().await;
        let mut changes = self.store.borrow().changes();
        let mut results = plan(&mut changes);
        if changes.is_empty() {
            return results;
        }
        let committed = self.store.borrow_mut().commit(changes);
        match committed {
            Ok(deleted) => {
                let snapshot = self.store.borrow().snapshot();
                shard.publish_metadata(snapshot, deleted).await;
            }
            Err(e) => results.iter_mut().filter(|r| r.is_ok()).for_each(|r| *r = Err(e.clone())),
        }
        results
    }

    /// Creates topics (configs validated by the caller); results in request order.
    pub async fn create_topics(&self, shard: &Shard, topics: Vec<(NewTopic, TopicConfigs)>) -> TopicResults {
        let defaults = self.config.topic_defaults();
        self.change(shard, |changes| {
            topics.iter().map(|(t, configs)| changes.create_topic(t, configs, defaults)).collect()
        })
        .await
    }

    /// Changes topic, group or dynamic broker configs; with
    /// `validate_only`, nothing changes.
    pub async fn alter_configs(
        &self,
        shard: &Shard,
        alterations: Vec<(ConfigTarget, ConfigAlteration)>,
        validate_only: bool,
    ) -> Vec<Result<(), TopicError>> {
        let alter = |changes: &mut MetadataChanges, (target, alteration): &(ConfigTarget, ConfigAlteration)| {
            let image = changes.image();
            let dynamic = &image.dynamic_broker_configs;
            match target {
                ConfigTarget::Topic(name) => {
                    let current = image.topic(name).ok_or(TopicError::Unknown)?;
                    let unset = TopicConfigs::new();
                    let default = |config: &str| self.config.topic_config_value(dynamic, name, &unset, config);
                    let configs = alteration.apply(ConfigScope::Topic, &current.configs, default)?;
                    if !validate_only {
                        changes.set_topic_configs(name, configs)?;
                    }
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
                    if !validate_only {
                        changes.set_dynamic_broker_configs(cluster_default, configs);
                    }
                }
                ConfigTarget::Group(group) => {
                    let unset = TopicConfigs::new();
                    let current = image.group_configs.get(group).unwrap_or(&unset);
                    let configs = alteration.apply(ConfigScope::Group, current, |_| String::new())?;
                    if !validate_only {
                        changes.set_group_configs(group, configs);
                    }
                }
            }
            Ok(())
        };
        self.change(shard, |changes| alterations.iter().map(|a| alter(changes, a)).collect()).await
    }

    /// Raises topics' partition counts (each result holds the topic as it
    /// is, or would be with `validate_only`). The partition count of an
    /// internal topic is the broker's: groups and transactional ids are
    /// hashed over it.
    pub async fn create_partitions(
        &self,
        shard: &Shard,
        increases: Vec<PartitionIncrease>,
        validate_only: bool,
    ) -> TopicResults {
        let add = |changes: &mut MetadataChanges, increase: &PartitionIncrease| match is_internal_topic(&increase.name)
        {
            true => Err(TopicError::InvalidName(format!("'{}' is reserved for the broker", increase.name))),
            false => changes.add_partitions(increase, validate_only),
        };
        self.change(shard, |changes| increases.iter().map(|i| add(changes, i)).collect()).await
    }

    pub async fn delete_topics(&self, shard: &Shard, names: Vec<String>) -> TopicResults {
        self.change(shard, |changes| names.iter().map(|name| changes.delete_topic(name)).collect()).await
    }

    /// Changes users' SCRAM credentials (checked by the caller), each user's
    /// all or none; results in the order of `users`.
    pub async fn alter_scram_credentials(
        &self,
        shard: &Shard,
        users: Vec<(String, Vec<ScramChange>)>,
    ) -> Vec<Result<(), TopicError>> {
        self.change(shard, |changes| changes.alter_scram_credentials(&users)).await
    }

    /// A producer id never handed out before (ids are reserved in blocks).
    pub async fn allocate_producer_id(&self, shard: &Shard) -> Result<i64, TopicError> {
        if let Some(id) = self.producer_ids.borrow_mut().take() {
            return Ok(id);
        }
        let mut reserved = self.change(shard, |changes| vec![Ok(changes.reserve_producer_ids())]).await;
        let mut block = reserved.pop().expect("one result")?;
        let id = block.take().expect("a new block has ids");
        *self.producer_ids.borrow_mut() = block;
        Ok(id)
    }
}
