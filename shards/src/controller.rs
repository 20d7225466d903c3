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
    ConfigAlteration, ConfigScope, ConfigTarget, MetadataStore, NewTopic, PartitionIncrease, ScramChange, TopicConfigs,
    TopicMetadata,
};
use crate::placement::BrokerSlot;
use crate::shard::{is_internal_topic, Shard};
use crate::topic_config::{dynamic_broker_config_name, DynamicBrokerConfigs};
use std::cell::RefCell;
use std::sync::Arc;
use weir_runtime::sync::{Permit, Semaphore};

pub(crate) struct Controller {
    store: RefCell<MetadataStore>,
    /// One change at a time, so that snapshots are published in order.
    changes: Semaphore,
    config: Arc<BrokerConfig>,
}

impl Controller {
    pub fn new(store: MetadataStore, config: Arc<BrokerConfig>) -> Self {
        Controller { store: RefCell::new(store), changes: Semaphore::new(1), config }
    }

    async fn one_change_at_a_time(&self) -> Permit<'_> {
        self.changes.acquire_permit(1).await.expect("the controller's semaphore is never closed")
    }

    /// Creates topics (configs validated by the caller); results in request order.
    pub async fn create_topics(&self, shard: &Shard, topics: Vec<(NewTopic, TopicConfigs)>) -> TopicResults {
        let _serial = self.one_change_at_a_time().await;
        let results: TopicResults = {
            let mut store = self.store.borrow_mut();
            let (defaults, brokers) = (self.config.topic_defaults(), self.brokers());
            topics.iter().map(|(t, configs)| store.create_topic(t, configs, defaults, &brokers)).collect()
        };
        if results.iter().any(Result::is_ok) {
            self.publish(shard, Vec::new()).await;
        }
        results
    }

    /// Changes topic, group or dynamic broker configs; with
    /// `validate_only`, nothing changes.
    pub async fn alter_configs(
        &self,
        shard: &Shard,
        alterations: Vec<(ConfigTarget, ConfigAlteration)>,
        validate_only: bool,
    ) -> Vec<Result<(), TopicError>> {
        let _serial = self.one_change_at_a_time().await;
        let results: Vec<Result<(), TopicError>> = {
            let mut store = self.store.borrow_mut();
            let mut alter = |(target, alteration): &(ConfigTarget, ConfigAlteration)| {
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
            };
            alterations.iter().map(&mut alter).collect()
        };
        if !validate_only && results.iter().any(Result::is_ok) {
            self.publish(shard, Vec::new()).await;
        }
        results
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
        let _serial = self.one_change_at_a_time().await;
        let brokers = self.brokers();
        let results: TopicResults = {
            let mut store = self.store.borrow_mut();
            let add = |increase: &PartitionIncrease| match is_internal_topic(&increase.name) {
                true => Err(TopicError::InvalidName(format!("'{}' is reserved for the broker", increase.name))),
                false => store.add_partitions(increase, &brokers, validate_only),
            };
            increases.iter().map(add).collect()
        };
        if !validate_only && results.iter().any(Result::is_ok) {
            self.publish(shard, Vec::new()).await;
        }
        results
    }

    pub async fn delete_topics(&self, shard: &Shard, names: Vec<String>) -> TopicResults {
        let _serial = self.one_change_at_a_time().await;
        let results: TopicResults = {
            let mut store = self.store.borrow_mut();
            names.iter().map(|name| store.delete_topic(name)).collect()
        };
        let deleted: Vec<TopicMetadata> = results.iter().filter_map(|r| r.as_ref().ok().cloned()).collect();
        if !deleted.is_empty() {
            self.publish(shard, deleted).await;
        }
        results
    }

    /// The brokers replicas are placed on: this one, until brokers register
    /// with the metadata quorum.
    fn brokers(&self) -> Vec<BrokerSlot> {
        vec![self.config.broker_slot()]
    }

    /// Changes users' SCRAM credentials (checked by the caller), each user's
    /// all or none; results in the order of `users`.
    pub async fn alter_scram_credentials(
        &self,
        shard: &Shard,
        users: Vec<(String, Vec<ScramChange>)>,
    ) -> Vec<Result<(), TopicError>> {
        let _serial = self.one_change_at_a_time().await;
        let results = self.store.borrow_mut().alter_scram_credentials(&users);
        if results.iter().any(Result::is_ok) {
            self.publish(shard, Vec::new()).await;
        }
        results
    }

    /// A producer id never handed out before (ids are reserved in blocks).
    pub fn allocate_producer_id(&self) -> Result<i64, TopicError> {
        self.store.borrow_mut().allocate_producer_id()
    }

    async fn publish(&self, shard: &Shard, deleted: Vec<TopicMetadata>) {
        let snapshot = self.store.borrow().snapshot();
        shard.publish_metadata(snapshot, deleted).await;
    }
}
