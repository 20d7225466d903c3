//! Topic changes: asked of the [`Controller`] on its shard, which persists
//! them and publishes a new metadata snapshot; and every shard's side of a
//! snapshot (deleted topics' logs closed, new partitions opened, configs
//! applied).

use super::partition::{Partition, Role};
use super::{IfRequesterLeaves, Shard};
use crate::controller::{Controller, QuorumUnknown};
use crate::deleted_dirs;
use crate::error::TopicError;
use crate::groups::OFFSETS_TOPIC;
use crate::messages::{ShardMessage, TopicResults};
use crate::metadata::acl::AclChange;
use crate::metadata::quota::QuotaAlteration;
use crate::metadata::{
    AlterPartition, ConfigAlteration, ConfigTarget, Election, ElectionResults, MetadataSnapshot, NewTopic,
    PartitionIncrease, PartitionState, ScramChange, TopicConfigs, TopicMetadata, TopicPartition,
};
use crate::ownership::CONTROLLER_SHARD;
use crate::reply;
use crate::transactions::TRANSACTION_STATE_TOPIC;
use futures::future::{join_all, LocalBoxFuture};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use uuid::Uuid;
use weir_quorum::{QuorumError, QuorumStatus};

/// Topics only the broker writes: clients may neither create nor delete them.
pub fn is_internal_topic(name: &str) -> bool {
    name == OFFSETS_TOPIC || name == TRANSACTION_STATE_TOPIC
}

fn unavailable_each<T>(count: usize) -> Vec<Result<T, TopicError>> {
    (0..count).map(|_| Err(TopicError::ControllerUnavailable)).collect()
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

    /// Creates internal topic `name` if it does not exist yet, with
    /// `replication_factor` replicas of each partition, or as many as there
    /// are live brokers (Kafka's `offsets.topic.replication.factor` and
    /// `transaction.state.log.replication.factor`).
    pub(super) async fn ensure_internal_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
    ) -> Result<(), TopicError> {
        let metadata = self.metadata();
        if metadata.topic(name).is_some() {
            return Ok(());
        }
        let live = i16::try_from(metadata.unfenced_brokers().count()).unwrap_or(i16::MAX);
        let topic = NewTopic {
            replication_factor: replication_factor.min(live).max(1),
            ..NewTopic::with_partitions(name, partitions)
        };
        let created = self.create_configured_topics_unchecked(vec![(topic, TopicConfigs::new())]).await.pop();
        match created {
            Some(Ok(_)) | Some(Err(TopicError::AlreadyExists)) => Ok(()),
            Some(Err(e)) => Err(e),
            None => Err(TopicError::ControllerUnavailable),
        }
    }

    async fn create_configured_topics_unchecked(&self, topics: Vec<(NewTopic, TopicConfigs)>) -> TopicResults {
        let count = topics.len();
        self.on_controller(unavailable_each(count), |shard, controller| {
            Box::pin(controller.create_topics(shard, topics))
        })
        .await
    }

    /// Changes topic configs or the dynamic broker configs through the
    /// controller; results in request order. With `validate_only`, nothing
    /// changes.
    pub async fn alter_configs(
        &self,
        alterations: Vec<(ConfigTarget, ConfigAlteration)>,
        validate_only: bool,
    ) -> Vec<Result<(), TopicError>> {
        let count = alterations.len();
        self.on_controller(unavailable_each(count), move |shard, controller| {
            Box::pin(controller.alter_configs(shard, alterations, validate_only))
        })
        .await
    }

    /// Raises topics' partition counts through the controller (CreatePartitions);
    /// results in request order. Every shard opens the partitions it gains
    /// before the new count is served.
    pub async fn create_partitions(&self, increases: Vec<PartitionIncrease>, validate_only: bool) -> TopicResults {
        let count = increases.len();
        self.on_controller(unavailable_each(count), move |shard, controller| {
            Box::pin(controller.create_partitions(shard, increases, validate_only))
        })
        .await
    }

    /// Deletes topics through the controller; results in request order.
    /// Internal topics cannot be deleted.
    pub async fn delete_topics(&self, names: Vec<String>) -> TopicResults {
        if let Some(refused) = refuse_internal_topics(names.iter().map(String::as_str)) {
            return refused;
        }
        let count = names.len();
        self.on_controller(unavailable_each(count), |shard, controller| {
            Box::pin(controller.delete_topics(shard, names))
        })
        .await
    }

    /// Changes users' SCRAM credentials through the controller
    /// (AlterUserScramCredentials; checked by the caller); results in the
    /// order of `users`. Every shard has the new credentials when it returns.
    pub async fn alter_scram_credentials(&self, users: Vec<(String, Vec<ScramChange>)>) -> Vec<Result<(), TopicError>> {
        let count = users.len();
        self.on_controller(unavailable_each(count), move |shard, controller| {
            Box::pin(controller.alter_scram_credentials(shard, users))
        })
        .await
    }

    /// Creates or removes ACLs through the controller (created ones checked
    /// by the caller); every shard has them when it returns.
    pub async fn change_acls(&self, change: AclChange) -> Vec<Result<(), TopicError>> {
        let count = change.acls().len();
        self.on_controller(unavailable_each(count), move |shard, controller| {
            Box::pin(controller.change_acls(shard, change))
        })
        .await
    }

    /// AlterClientQuotas' checked alterations through the controller; every
    /// shard has them when it returns.
    pub async fn alter_client_quotas(&self, alterations: Vec<QuotaAlteration>) -> Vec<Result<(), TopicError>> {
        let count = alterations.len();
        self.on_controller(unavailable_each(count), move |shard, controller| {
            Box::pin(controller.alter_client_quotas(shard, alterations))
        })
        .await
    }

    /// AlterPartition: as the partition's leader, asks the controller to
    /// replace its ISR, if the epochs named are still the partition's
    /// (Kafka's checks: `MetadataChanges::alter_partition`). Returns the
    /// partition's state then; every shard of this broker serves it when
    /// this returns.
    pub async fn alter_partition(&self, alteration: AlterPartition) -> Result<PartitionState, TopicError> {
        self.on_controller(Err(TopicError::ControllerUnavailable), move |shard, controller| {
            Box::pin(controller.alter_partition(shard, alteration))
        })
        .await
    }

    /// ElectLeaders through the controller: the partitions named (`None`:
    /// every partition that needs it) led as `election` asks; each
    /// partition's outcome, served by every shard of this broker when this
    /// returns.
    pub async fn elect_leaders(
        &self,
        election: Election,
        partitions: Option<Vec<TopicPartition>>,
    ) -> Result<ElectionResults, TopicError> {
        self.on_controller(Err(TopicError::ControllerUnavailable), move |shard, controller| {
            Box::pin(controller.elect_leaders(shard, election, partitions))
        })
        .await
    }

    /// AlterPartitionReassignments through the controller: each partition
    /// moving to its target replicas, or (`None`) its move cancelled;
    /// results in request order, served by every shard of this broker when
    /// this returns.
    pub async fn alter_reassignments(
        &self,
        reassignments: Vec<(TopicPartition, Option<Vec<i32>>)>,
        allow_replication_factor_change: bool,
    ) -> Vec<Result<(), TopicError>> {
        let count = reassignments.len();
        self.on_controller(unavailable_each(count), move |shard, controller| {
            Box::pin(controller.alter_reassignments(shard, reassignments, allow_replication_factor_change))
        })
        .await
    }

    /// DescribeQuorum through this broker's controller.
    pub async fn quorum_status(&self) -> Result<QuorumStatus, QuorumUnknown> {
        let unavailable = Err(QuorumUnknown::Unavailable(QuorumError::NoLeader));
        self.on_controller(unavailable, |_, controller| Box::pin(controller.quorum_status())).await
    }

    /// A producer id never handed out before (persisted by the controller).
    pub async fn allocate_producer_id(&self) -> Result<i64, TopicError> {
        let unavailable = Err(TopicError::ControllerUnavailable);
        self.on_controller(unavailable, |shard, controller| {
            Box::pin(async move { controller.allocate_producer_id(shard).await })
        })
        .await
    }

    /// Runs `work` with the controller, on its shard; `unavailable` answers
    /// when that shard is gone.
    async fn on_controller<T, W>(&self, unavailable: T, work: W) -> T
    where
        T: Send + 'static,
        W: for<'a> FnOnce(&'a Shard, &'a Controller) -> LocalBoxFuture<'a, T> + Send + 'static,
    {
        let answer = self
            .on_shard(CONTROLLER_SHARD, IfRequesterLeaves::Finish, move |shard| {
                Box::pin(async move {
                    let controller = shard.controller.as_ref()?;
                    Some(work(shard, controller).await)
                })
            })
            .await;
        answer.ok().flatten().unwrap_or(unavailable)
    }

    /// Pushes the controller's snapshot to every shard and waits until all
    /// adopted it, so that a client told "created" finds the topic on any shard.
    pub(crate) async fn publish_metadata(&self, snapshot: Arc<MetadataSnapshot>, deleted: Vec<TopicMetadata>) {
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

    /// Closes and removes the logs of deleted topics, and of partitions
    /// this broker no longer holds a replica of (moved away by a
    /// reassignment), and opens the partitions the snapshot gives this shard.
    pub(crate) async fn prepare_metadata(&self, snapshot: &MetadataSnapshot, deleted: &[TopicMetadata]) {
        let mut removed = Vec::new();
        for topic in deleted {
            if snapshot.topic(&topic.name).is_some_and(|t| t.id != topic.id) {
                continue; // recreated since: its logs are the new topic's
            }
            let partitions = self.partitions.borrow_mut().remove_topic(&topic.name);
            for partition in partitions {
                removed.extend(self.remove_partition(&partition, topic.id).await);
            }
        }
        for (partition, topic_id) in self.moved_away(snapshot) {
            tracing::info!(topic = %partition.topic, partition = partition.index, "no longer a replica: removing it");
            self.partitions.borrow_mut().remove(&partition.topic, partition.index);
            self.coordinate(&partition, None);
            removed.extend(self.remove_partition(&partition, topic_id).await);
        }
        if !removed.is_empty() {
            if let Err(e) = weir_engine::durable::sync_dir(&self.config.data_dir) {
                tracing::warn!("syncing {}: {e}", self.config.data_dir.display());
            }
            deleted_dirs::remove_in_background(removed);
        }
        self.open_owned_partitions(snapshot).await;
    }

    /// The open partitions `snapshot` no longer has a replica of on this
    /// broker, with their topic's id. Only an image holding this process's
    /// registration is acted on: a restarted voter's first images may be
    /// stale, and a replica deleted on their word would be lost.
    fn moved_away(&self, snapshot: &MetadataSnapshot) -> Vec<(Rc<Partition>, Uuid)> {
        if !self.registered_in(snapshot) {
            return Vec::new();
        }
        let me = self.config.node_id;
        let open = self.partitions.borrow().all_open();
        (open.into_iter())
            .filter_map(|partition| {
                let topic = snapshot.topic(&partition.topic)?;
                let state = topic.assignment.get(usize::try_from(partition.index).ok()?)?;
                (!state.replicas.contains(&me)).then_some((partition, topic.id))
            })
            .collect()
    }

    /// Closes `partition`, already out of the table, and renames its
    /// directory to its deleted name (returned, for the background removal).
    async fn remove_partition(&self, partition: &Partition, topic_id: Uuid) -> Option<PathBuf> {
        let (topic, index) = (&partition.topic, partition.index);
        if let Err(e) = partition.log.close().await {
            tracing::warn!(topic, partition = index, "closing a removed partition: {e}");
        }
        let dir = self.partition_dir(topic, index);
        deleted_dirs::mark_deleted(&dir, topic_id)
            .inspect_err(|e| tracing::warn!("removing {}: {e}", dir.display()))
            .ok()
    }

    /// Waits for the first image the controller shard publishes (the
    /// shards of a quorum voter start from none).
    pub(crate) async fn first_metadata(&self) {
        while self.metadata.borrow().version == 0 {
            weir_runtime::clock::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Serves by a newer snapshot and gives open logs their topic's changed configs.
    pub(crate) fn adopt_metadata(&self, snapshot: Arc<MetadataSnapshot>) {
        if snapshot.version <= self.metadata.borrow().version {
            return;
        }
        let previous = std::mem::replace(&mut *self.metadata.borrow_mut(), snapshot.clone());
        self.apply_config_changes(&previous, &snapshot);
        self.take_roles(&snapshot);
    }

    /// Whether `snapshot` holds this process's registration. A restarted
    /// voter's first images come from its own log and may be stale (it led
    /// partitions others lead now): none is acted on before one that does.
    pub(crate) fn registered_in(&self, snapshot: &MetadataSnapshot) -> bool {
        let me = self.config.node_id;
        snapshot.brokers.iter().any(|b| b.id == me && b.incarnation == self.config.incarnation)
    }

    /// Leads or follows each open partition as `snapshot` says. A new
    /// leadership stamps its epoch on later batches and learns its
    /// followers afresh; the high watermark follows the log end only while
    /// the leader is alone in the ISR. A follower's high watermark is the
    /// leader's, and its shard fetches from the leader.
    pub(crate) fn take_roles(&self, snapshot: &MetadataSnapshot) {
        let me = self.config.node_id;
        if !self.registered_in(snapshot) {
            return;
        }
        let mut followed: BTreeMap<i32, BTreeSet<(String, i32)>> = BTreeMap::new();
        for partition in self.partitions.borrow().all_open() {
            let Some(state) = snapshot.partition(&partition.topic, partition.index) else { continue };
            let log = &partition.log;
            if state.leader == me {
                let previous = partition.role.replace(Role::Leader(state.leader_epoch));
                if previous != Role::Leader(state.leader_epoch) {
                    let (topic, index, epoch) = (&partition.topic, partition.index, state.leader_epoch);
                    if previous == Role::Unknown {
                        tracing::debug!(topic, partition = index, epoch, isr = ?state.isr, "leading");
                    } else {
                        tracing::info!(topic, partition = index, epoch, ?previous, isr = ?state.isr, "leading");
                    }
                    log.set_leader_epoch(state.leader_epoch);
                    partition.epoch_start_offset.set(Some(log.log_end_offset()));
                    partition.followers.lead(&state.isr, weir_runtime::clock::now());
                }
                if previous == Role::Follower {
                    // What it copied is not in producer state loaded before.
                    partition.forget_producers();
                }
                self.coordinate_in_background(&partition, Some(state.leader_epoch));
                let alone = state.isr == [me];
                log.set_high_watermark_follows_log_end(alone);
                if !alone {
                    // A smaller ISR may let it move.
                    log.advance_high_watermark(partition.followers.high_watermark(
                        &state.isr,
                        me,
                        log.log_end_offset(),
                    ));
                }
                continue;
            }
            // Another broker leads it (or none does): a coordinator's keys
            // are no longer served here.
            self.coordinate_in_background(&partition, None);
            partition.epoch_start_offset.set(None);
            if state.leader >= 0 && state.replicas.contains(&me) {
                let (topic, index, leader) = (&partition.topic, partition.index, state.leader);
                match partition.role.replace(Role::Follower) {
                    Role::Leader(_) => tracing::info!(topic, partition = index, leader, "following, no longer leading"),
                    Role::Unknown => tracing::debug!(topic, partition = index, leader, "following"),
                    Role::Follower => {}
                }
                log.set_high_watermark_follows_log_end(false);
                followed.entry(state.leader).or_default().insert((partition.topic.clone(), partition.index));
            }
        }
        self.fetchers.follow(followed);
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
