//! One shard: the state owned by one executor, and the routing of work to owners.

mod groups;

use crate::config::BrokerConfig;
use crate::error::{PartitionError, TopicError};
use crate::groups::{GroupConfig, GroupCoordinator, OFFSETS_TOPIC};
use crate::messages::{PartitionOp, PartitionReply, ShardMessage, TopicResults};
use crate::metadata::{MetadataSnapshot, MetadataStore, NewTopic, TopicMetadata};
use crate::ownership::{owner_of, CONTROLLER_SHARD};
use bytes::Bytes;
use futures::channel::oneshot;
use futures::future::{join_all, select};
use glommio::channels::channel_mesh::Senders;
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use weir_engine::{AppendInfo, Durability, LogConfig, PartitionLog};

/// Records read from one partition, with the offsets a Fetch response reports.
#[derive(Debug)]
pub struct FetchedPartition {
    pub records: Bytes,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    pub log_start_offset: i64,
    pub high_watermark: i64,
}

/// The state of one executor. Lives in an `Rc`; never crosses threads.
pub struct Shard {
    id: usize,
    shard_count: usize,
    config: Arc<BrokerConfig>,
    metadata: RefCell<Arc<MetadataSnapshot>>,
    /// Only on the controller shard.
    store: Option<RefCell<MetadataStore>>,
    /// Open logs of the partitions this shard owns, by topic then partition.
    logs: RefCell<HashMap<String, HashMap<i32, Rc<PartitionLog>>>>,
    peers: Senders<ShardMessage>,
    /// Serialises topic changes on the controller so snapshots go out in order.
    topic_changes: glommio::sync::Semaphore,
    /// The consumer groups whose `__consumer_offsets` partition this shard owns.
    groups: RefCell<GroupCoordinator>,
}

impl Shard {
    pub(crate) fn new(
        id: usize,
        config: Arc<BrokerConfig>,
        snapshot: Arc<MetadataSnapshot>,
        store: Option<MetadataStore>,
        peers: Senders<ShardMessage>,
    ) -> Shard {
        Shard {
            id,
            shard_count: peers.nr_consumers(),
            metadata: RefCell::new(snapshot),
            store: store.map(RefCell::new),
            logs: RefCell::new(HashMap::new()),
            peers,
            topic_changes: glommio::sync::Semaphore::new(1),
            groups: RefCell::new(GroupCoordinator::new(GroupConfig {
                initial_rebalance_delay: Duration::from_millis(config.group_initial_rebalance_delay_ms),
                min_session_timeout: Duration::from_millis(config.group_min_session_timeout_ms),
                max_session_timeout: Duration::from_millis(config.group_max_session_timeout_ms),
                max_size: config.group_max_size,
            })),
            config,
        }
    }

    pub fn id(&self) -> usize {
        self.id
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// The newest metadata snapshot this shard has been given.
    pub fn metadata(&self) -> Arc<MetadataSnapshot> {
        self.metadata.borrow().clone()
    }

    fn owner(&self, topic: &str, partition: i32) -> usize {
        owner_of(topic, partition, self.shard_count)
    }

    pub async fn produce(
        &self,
        topic: &str,
        partition: i32,
        records: Bytes,
        durability: Durability,
    ) -> Result<AppendInfo, PartitionError> {
        match self.partition_op(topic, partition, PartitionOp::Produce { records, durability }).await? {
            PartitionReply::Produced(info) => Ok(info),
            other => unreachable!("produce answered with {other:?}"),
        }
    }

    pub async fn fetch(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: usize,
    ) -> Result<FetchedPartition, PartitionError> {
        match self.partition_op(topic, partition, PartitionOp::Fetch { offset, max_bytes }).await? {
            PartitionReply::Fetched(fetched) => Ok(fetched),
            other => unreachable!("fetch answered with {other:?}"),
        }
    }

    pub async fn offsets(&self, topic: &str, partition: i32) -> Result<PartitionOffsets, PartitionError> {
        match self.partition_op(topic, partition, PartitionOp::Offsets).await? {
            PartitionReply::Offsets(offsets) => Ok(offsets),
            other => unreachable!("offsets answered with {other:?}"),
        }
    }

    /// Resolves when the partition's high watermark passes `offset`, after
    /// `timeout`, or at once if the partition is unknown.
    pub async fn wait_beyond(&self, topic: &str, partition: i32, offset: i64, timeout: Duration) {
        // Errors end the wait; the caller's next fetch reports them.
        let _ = self.partition_op(topic, partition, PartitionOp::WaitBeyond { offset, timeout }).await;
    }

    /// Runs `op` on the shard that owns the partition: here, or over the mesh.
    async fn partition_op(
        &self,
        topic: &str,
        partition: i32,
        op: PartitionOp,
    ) -> Result<PartitionReply, PartitionError> {
        if !self.metadata().has_partition(topic, partition) {
            return Err(PartitionError::UnknownTopicOrPartition);
        }
        let owner = self.owner(topic, partition);
        if owner == self.id {
            return self.run_partition_op(topic, partition, op).await;
        }
        let (reply, answer) = oneshot::channel();
        let msg = ShardMessage::Partition { topic: topic.to_string(), partition, op, reply };
        self.peers.send_to(owner, msg).await.map_err(|_| PartitionError::ShardUnavailable)?;
        answer.await.map_err(|_| PartitionError::ShardUnavailable)?
    }

    fn local_log(&self, topic: &str, partition: i32) -> Result<Rc<PartitionLog>, PartitionError> {
        self.logs
            .borrow()
            .get(topic)
            .and_then(|partitions| partitions.get(&partition))
            .cloned()
            .ok_or(PartitionError::UnknownTopicOrPartition)
    }

    async fn run_partition_op(
        &self,
        topic: &str,
        partition: i32,
        op: PartitionOp,
    ) -> Result<PartitionReply, PartitionError> {
        let log = self.local_log(topic, partition)?;
        Ok(match op {
            PartitionOp::Produce { records, durability } => {
                PartitionReply::Produced(log.append(records, durability).await?)
            }
            PartitionOp::Fetch { offset, max_bytes } => {
                let records = log.read(offset, max_bytes).await?;
                PartitionReply::Fetched(FetchedPartition {
                    records,
                    high_watermark: log.high_watermark(),
                    log_start_offset: log.log_start_offset(),
                })
            }
            PartitionOp::Offsets => PartitionReply::Offsets(PartitionOffsets {
                log_start_offset: log.log_start_offset(),
                high_watermark: log.high_watermark(),
            }),
            PartitionOp::WaitBeyond { offset, timeout } => {
                let data = pin!(log.wait_beyond(offset));
                let timer = pin!(glommio::timer::sleep(timeout));
                select(data, timer).await;
                PartitionReply::Waited
            }
        })
    }

    /// Creates topics through the controller; results in request order.
    /// Internal topics (`__consumer_offsets`) are the broker's to create.
    pub async fn create_topics(&self, topics: Vec<NewTopic>) -> TopicResults {
        if topics.iter().any(|t| t.name == OFFSETS_TOPIC) {
            return topics
                .iter()
                .map(|t| {
                    let reserved = TopicError::InvalidName(format!("'{}' is reserved for the broker", t.name));
                    if t.name == OFFSETS_TOPIC {
                        Err(reserved)
                    } else {
                        Err(TopicError::ControllerUnavailable)
                    }
                })
                .collect();
        }
        self.create_topics_unchecked(topics).await
    }

    async fn create_topics_unchecked(&self, topics: Vec<NewTopic>) -> TopicResults {
        if self.id == CONTROLLER_SHARD {
            return self.controller_create_topics(topics).await;
        }
        let count = topics.len();
        let (reply, answer) = oneshot::channel();
        self.ask_controller(ShardMessage::CreateTopics { topics, reply }, answer, count).await
    }

    /// Deletes topics through the controller; results in request order.
    /// Internal topics cannot be deleted.
    pub async fn delete_topics(&self, names: Vec<String>) -> TopicResults {
        if names.iter().any(|n| n == OFFSETS_TOPIC) {
            let reserved = || TopicError::InvalidName(format!("'{OFFSETS_TOPIC}' is reserved for the broker"));
            return names
                .iter()
                .map(|n| Err(if n == OFFSETS_TOPIC { reserved() } else { TopicError::ControllerUnavailable }))
                .collect();
        }
        if self.id == CONTROLLER_SHARD {
            return self.controller_delete_topics(names).await;
        }
        let count = names.len();
        let (reply, answer) = oneshot::channel();
        self.ask_controller(ShardMessage::DeleteTopics { names, reply }, answer, count).await
    }

    async fn ask_controller(
        &self,
        msg: ShardMessage,
        answer: oneshot::Receiver<TopicResults>,
        count: usize,
    ) -> TopicResults {
        let unavailable = || vec![Err(TopicError::ControllerUnavailable); count];
        if self.peers.send_to(CONTROLLER_SHARD, msg).await.is_err() {
            return unavailable();
        }
        answer.await.unwrap_or_else(|_| unavailable())
    }

    async fn controller_create_topics(&self, topics: Vec<NewTopic>) -> TopicResults {
        let _serial = self.topic_changes.acquire_permit(1).await.expect("the topic-change semaphore is never closed");
        let results: TopicResults = {
            let mut store = self.controller_store().borrow_mut();
            topics.iter().map(|t| store.create_topic(t, self.config.default_partitions)).collect()
        };
        if results.iter().any(Result::is_ok) {
            self.publish_metadata(Vec::new()).await;
        }
        results
    }

    async fn controller_delete_topics(&self, names: Vec<String>) -> TopicResults {
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

    fn controller_store(&self) -> &RefCell<MetadataStore> {
        self.store.as_ref().expect("topic changes run on the controller shard only")
    }

    /// Pushes the store's snapshot to every shard and waits until all adopted it,
    /// so that a client told "created" finds the topic on any shard.
    async fn publish_metadata(&self, deleted: Vec<TopicMetadata>) {
        let snapshot = self.controller_store().borrow().snapshot();
        let mut acks = Vec::new();
        for peer in (0..self.shard_count).filter(|&p| p != self.id) {
            let (reply, ack) = oneshot::channel();
            let msg = ShardMessage::MetadataChanged { snapshot: snapshot.clone(), deleted: deleted.clone(), reply };
            if self.peers.send_to(peer, msg).await.is_ok() {
                acks.push(ack);
            }
        }
        self.adopt_metadata(snapshot, &deleted).await;
        join_all(acks).await;
    }

    /// Takes a newer snapshot, opens partitions it gives this shard, and
    /// closes and removes the logs of deleted topics.
    pub(crate) async fn adopt_metadata(&self, snapshot: Arc<MetadataSnapshot>, deleted: &[TopicMetadata]) {
        if snapshot.version <= self.metadata.borrow().version {
            return;
        }
        *self.metadata.borrow_mut() = snapshot.clone();
        for topic in deleted {
            if snapshot.topic(&topic.name).is_some_and(|t| t.id != topic.id) {
                continue; // recreated since: its logs are the new topic's
            }
            let logs = self.logs.borrow_mut().remove(&topic.name).unwrap_or_default();
            for (partition, log) in logs {
                if let Err(e) = log.close().await {
                    tracing::warn!(topic = %topic.name, partition, "closing deleted partition: {e}");
                }
                let dir = self.partition_dir(&topic.name, partition);
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    tracing::warn!("removing {}: {e}", dir.display());
                }
            }
        }
        self.open_owned_partitions().await;
    }

    fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.config.data_dir.join(format!("{topic}-{partition}"))
    }

    fn log_config(&self) -> LogConfig {
        LogConfig {
            segment_bytes: self.config.segment_bytes,
            max_batch_bytes: self.config.message_max_bytes,
            fsync_every_write: self.config.fsync_every_write,
            ..LogConfig::default()
        }
    }

    /// Opens (recovering) every partition of the snapshot this shard owns and
    /// has not opened yet. A partition that fails to open is logged and stays
    /// unavailable; the others still serve.
    pub(crate) async fn open_owned_partitions(&self) {
        let snapshot = self.metadata();
        for topic in snapshot.topics.values() {
            for partition in 0..topic.partitions {
                if self.owner(&topic.name, partition) != self.id || self.local_log(&topic.name, partition).is_ok() {
                    continue;
                }
                match PartitionLog::open(self.partition_dir(&topic.name, partition), self.log_config()).await {
                    Ok(log) => {
                        if topic.name == OFFSETS_TOPIC {
                            self.replay_offsets_partition(partition, &log).await;
                        }
                        self.logs.borrow_mut().entry(topic.name.clone()).or_default().insert(partition, log);
                    }
                    Err(e) => {
                        tracing::error!(topic = %topic.name, partition, "cannot open partition: {e}")
                    }
                }
            }
        }
    }

    /// Serves one message from another shard.
    pub(crate) async fn handle_message(&self, msg: ShardMessage) {
        match msg {
            ShardMessage::Partition { topic, partition, op, reply } => {
                let _ = reply.send(self.run_partition_op(&topic, partition, op).await);
            }
            ShardMessage::CreateTopics { topics, reply } => {
                let _ = reply.send(self.controller_create_topics(topics).await);
            }
            ShardMessage::DeleteTopics { names, reply } => {
                let _ = reply.send(self.controller_delete_topics(names).await);
            }
            ShardMessage::Group { group_id, op, reply } => {
                let _ = reply.send(self.run_group_op(&group_id, op).await);
            }
            ShardMessage::MetadataChanged { snapshot, deleted, reply } => {
                self.adopt_metadata(snapshot, &deleted).await;
                let _ = reply.send(());
            }
        }
    }

    /// Flushes and closes every log this shard owns (clean shutdown).
    pub(crate) async fn close_all(&self) {
        let logs: Vec<_> = self.logs.borrow_mut().drain().flat_map(|(_, p)| p.into_values()).collect();
        for log in logs {
            if let Err(e) = log.close().await {
                tracing::warn!("closing partition log: {e}");
            }
        }
    }
}
