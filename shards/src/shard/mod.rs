//! One shard: the state owned by one executor, and the routing of work to owners.

mod coordinators;
mod fetch;
mod groups;
mod idempotence;
mod isr;
mod maintenance;
mod metrics;
mod partition;
mod partition_txns;
mod topics;
mod transactions;

use crate::broker_client::BrokerConnections;
use crate::config::BrokerConfig;
use crate::controller::Controller;
use crate::error::PartitionError;
use crate::groups::consumer::ConsumerGroupConfig;
use crate::groups::{GroupConfig, GroupService, MigrationPolicy};
use crate::messages::{ShardMessage, ShardTask, MAX_TIMESTAMP};
use crate::metadata::{BrokerRegistration, MetadataSnapshot};
use crate::ownership::owner_of;
use crate::replication::Fetchers;
use crate::reply;
use crate::runtime::ConnectionLimits;
use crate::throttle::QuotaRates;
use crate::transactions::TxnService;
use bytes::Bytes;
use futures::future::{select, Either, LocalBoxFuture};
use partition::PartitionTable;
use std::cell::RefCell;
use std::path::PathBuf;
use std::pin::pin;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use weir_engine::batch;
use weir_engine::{AppendInfo, Durability, PartitionLog};
use weir_runtime::channels::channel_mesh::Senders;

pub use fetch::{answers_at_once, LongPoll, PartitionRead, PartitionReads, ReadResult};
pub use metrics::{
    GroupOffsetStats, Histogram, HistogramSnapshot, InFlight, InFlightGuard, PartitionStats, ShardMetrics, ShardStats,
    LATENCY_BUCKETS_US,
};
pub(crate) use partition::{Partition, ProducerLoading, Role};
pub use topics::is_internal_topic;

/// What the owner of some work does when its requester stops waiting for
/// the answer (a connection closed, a long-poll fetch answered early).
#[derive(Debug, Clone, Copy)]
pub(crate) enum IfRequesterLeaves {
    /// Reads and waits: drop the work, nobody needs its answer.
    Stop,
    /// Writes: see them through, so a write is never left half-done.
    Finish,
}

/// The shard asked to run work is gone: its executor stopped.
#[derive(Debug)]
pub(crate) struct ShardGone;

/// Records read from one partition, with the offsets a Fetch response reports.
#[derive(Debug)]
pub struct FetchedPartition {
    pub records: Bytes,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// read_committed only: the aborted transactions overlapping the records,
    /// as (producer id, first offset).
    pub aborted_transactions: Option<Vec<(i64, i64)>>,
    /// The fetcher's history diverged from this log's (KIP-320): (epoch,
    /// end offset) to truncate to, and no records.
    pub diverging_epoch: Option<(i32, i64)>,
}

/// An append's offsets, with the log start offset a Produce response reports.
#[derive(Debug, Clone, Copy)]
pub struct ProducedPartition {
    pub info: AppendInfo,
    pub log_start_offset: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    /// While this broker leads: its log end when its leader epoch began.
    pub epoch_start_offset: Option<i64>,
}

/// Held while a produced batch waits for its place in its producer's
/// sequence (checked against the producer's state and reserved, or refused),
/// and dropped then. A connection's next produce request starts once the
/// previous one's are dropped, so a producer's pipelined batches are checked
/// in the order they came, as Kafka checks them by serving a connection's
/// requests one at a time; their appends and acks=all waits still overlap.
pub struct Placed(pub futures::channel::oneshot::Sender<()>);

/// The state of one executor. Lives in an `Rc`; never crosses threads.
pub struct Shard {
    /// Itself, for the tasks it starts (a coordinator's load).
    me: Weak<Shard>,
    id: usize,
    shard_count: usize,
    config: Arc<BrokerConfig>,
    metadata: RefCell<Arc<MetadataSnapshot>>,
    /// Only on the controller shard.
    controller: Option<Controller>,
    /// The partitions this shard owns.
    partitions: RefCell<PartitionTable>,
    peers: Senders<ShardMessage>,
    /// The consumer groups whose `__consumer_offsets` partition this shard owns.
    groups: GroupService,
    /// The transactional ids whose `__transaction_state` partition this shard owns.
    pub(crate) transactions: TxnService,
    /// Shared by its partitions: producer state loads one at a time.
    producer_loading: Rc<ProducerLoading>,
    /// Shared by all shards; touched only when a connection opens or closes.
    connections: Arc<ConnectionLimits>,
    /// The broker-wide rates of the client quotas.
    quota_rates: Arc<QuotaRates>,
    /// The partitions this shard follows and their fetch loops.
    fetchers: Fetchers,
    /// Idle connections to other brokers, for markers and verification.
    broker_connections: BrokerConnections,
    /// Wakes the upkeep of the ISR of the partitions this shard leads.
    isr_wake: isr::IsrWake,
    /// The node id of the active controller, -1 while none is known;
    /// shared by all shards, set by the controller shard.
    active_controller: Arc<AtomicI32>,
    metrics: Rc<ShardMetrics>,
}

/// What the shards of a broker share, each an `Arc` handed to all.
pub(crate) struct SharedState {
    pub connections: Arc<ConnectionLimits>,
    pub quota_rates: Arc<QuotaRates>,
    pub active_controller: Arc<AtomicI32>,
}

impl Shard {
    pub(crate) fn new(
        id: usize,
        config: Arc<BrokerConfig>,
        shared: SharedState,
        snapshot: Arc<MetadataSnapshot>,
        controller: Option<Controller>,
        peers: Senders<ShardMessage>,
    ) -> Shard {
        let metrics = Rc::new(ShardMetrics::default());
        Shard {
            me: Weak::new(),
            id,
            shard_count: peers.nr_consumers(),
            metadata: RefCell::new(snapshot),
            controller,
            partitions: RefCell::new(PartitionTable::default()),
            peers,
            producer_loading: Rc::new(ProducerLoading {
                one_at_a_time: weir_runtime::sync::Semaphore::new(1),
                metrics: metrics.clone(),
            }),
            transactions: TxnService::default(),
            groups: GroupService::new(GroupConfig {
                initial_rebalance_delay: Duration::from_millis(config.group_initial_rebalance_delay_ms),
                min_session_timeout: Duration::from_millis(config.group_min_session_timeout_ms),
                max_session_timeout: Duration::from_millis(config.group_max_session_timeout_ms),
                max_size: config.group_max_size,
                consumer: ConsumerGroupConfig {
                    session_timeout: Duration::from_millis(config.group_consumer_session_timeout_ms),
                    heartbeat_interval: Duration::from_millis(config.group_consumer_heartbeat_interval_ms),
                    max_size: config.group_max_size,
                },
                migration: MigrationPolicy::Bidirectional,
            }),
            config,
            connections: shared.connections,
            quota_rates: shared.quota_rates,
            fetchers: Fetchers::new(),
            broker_connections: BrokerConnections::default(),
            isr_wake: isr::IsrWake::default(),
            active_controller: shared.active_controller,
            metrics,
        }
    }

    /// The shard, told the `Rc` it lives in (`Rc::new_cyclic`), so that it
    /// can start tasks of its own.
    pub(crate) fn living_in(mut self, me: Weak<Shard>) -> Shard {
        self.me = me;
        self
    }

    pub(crate) fn fetchers(&self) -> &Fetchers {
        &self.fetchers
    }

    pub(crate) fn isr_wake(&self) -> &isr::IsrWake {
        &self.isr_wake
    }

    /// The node id of the active controller (-1 while none is known).
    pub fn active_controller(&self) -> i32 {
        self.active_controller.load(Ordering::Relaxed)
    }

    pub(crate) fn set_active_controller(&self, node_id: i32) {
        self.active_controller.store(node_id, Ordering::Relaxed);
    }

    /// The controller, on the controller shard.
    pub(crate) fn controller(&self) -> Option<&Controller> {
        self.controller.as_ref()
    }

    /// The broker-wide connection limits.
    pub fn connections(&self) -> &Arc<ConnectionLimits> {
        &self.connections
    }

    /// The broker-wide rates of the client quotas.
    pub fn quota_rates(&self) -> &QuotaRates {
        &self.quota_rates
    }

    /// This shard's counters.
    pub fn metrics(&self) -> &ShardMetrics {
        &self.metrics
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

    /// Appends `records` to `partition` of `topic`, answered as
    /// `durability` asks. `placed` is dropped once the batch's place in its
    /// producer's sequence is decided (see [`Placed`]).
    pub async fn produce(
        &self,
        topic: &str,
        partition: i32,
        records: Bytes,
        durability: Durability,
        transactional_id: Option<&str>,
        placed: Placed,
    ) -> Result<ProducedPartition, PartitionError> {
        let transactional_id = transactional_id.map(str::to_string);
        self.on_partition_owner(topic, partition, IfRequesterLeaves::Finish, move |shard, partition| {
            Box::pin(async move {
                let log = &partition.log;
                // Corrupt bytes are refused before any producer state is
                // looked at, as Kafka does.
                let records = batch::validate_records(records, log.config().max_batch_bytes)?;
                let all_replicas = matches!(durability, Durability::Synced);
                if all_replicas {
                    shard.check_min_insync_replicas(&partition)?;
                }
                let role_at_append = partition.role.get();
                let info = match crate::producers::producer_batch(records.first_header()) {
                    Some(batch) => {
                        let txn_id = transactional_id.as_deref();
                        shard.append_idempotent(&partition, batch, records, durability, txn_id, placed).await?
                    }
                    None => {
                        drop(placed);
                        partition.append(records, durability).await?
                    }
                };
                if all_replicas {
                    partition.wait_replicated(info.last_offset, role_at_append).await?;
                }
                Ok(ProducedPartition { info, log_start_offset: log.log_start_offset() })
            })
        })
        .await
    }

    pub async fn offsets(&self, topic: &str, partition: i32) -> Result<PartitionOffsets, PartitionError> {
        self.on_partition_owner(topic, partition, IfRequesterLeaves::Stop, move |_, partition| {
            Box::pin(async move { partition.offsets().await })
        })
        .await
    }

    /// OffsetForLeaderEpoch: the largest epoch at most `epoch` in the
    /// partition's log and the offset where it ends (KIP-279).
    pub async fn end_offset_for_epoch(
        &self,
        topic: &str,
        partition: i32,
        epoch: i32,
    ) -> Result<(i32, i64), PartitionError> {
        self.on_partition_owner(topic, partition, IfRequesterLeaves::Stop, move |_, partition| {
            Box::pin(async move { Ok(partition.log.end_offset_for_epoch(epoch)) })
        })
        .await
    }

    /// ListOffsets by timestamp: (offset, timestamp) of the first record
    /// whose timestamp is at least `timestamp`, or of the record with the
    /// largest timestamp for [`MAX_TIMESTAMP`]; `None` when there is none.
    /// With the partition's offsets of the same moment, which bound what a
    /// client may be told.
    pub async fn offset_for_timestamp(
        &self,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> Result<(Option<(i64, i64)>, PartitionOffsets), PartitionError> {
        self.on_partition_owner(topic, partition, IfRequesterLeaves::Stop, move |_, partition| {
            Box::pin(async move {
                let log = &partition.log;
                let found = if timestamp == MAX_TIMESTAMP {
                    log.max_timestamp().await?
                } else {
                    log.offset_for_timestamp(timestamp).await?
                };
                Ok((found, partition.offsets().await?))
            })
        })
        .await
    }

    /// DeleteRecords: moves the log start offset up to `before_offset` (-1:
    /// the high watermark); returns the new log start offset.
    pub async fn delete_records(&self, topic: &str, partition: i32, before_offset: i64) -> Result<i64, PartitionError> {
        self.on_partition_owner(topic, partition, IfRequesterLeaves::Finish, move |_, partition| {
            Box::pin(async move { Ok(partition.log.delete_records(before_offset).await?) })
        })
        .await
    }

    /// Runs `work` with the partition on the shard that owns it: here,
    /// or over the mesh. Fails at once for a partition the metadata does not
    /// know, and on the owner for one it does not hold open.
    async fn on_partition_owner<T, W>(
        &self,
        topic: &str,
        partition: i32,
        if_requester_leaves: IfRequesterLeaves,
        work: W,
    ) -> Result<T, PartitionError>
    where
        T: Send + 'static,
        W: for<'a> FnOnce(&'a Shard, Rc<Partition>) -> LocalBoxFuture<'a, Result<T, PartitionError>> + Send + 'static,
    {
        if !self.metadata().has_partition(topic, partition) {
            return Err(PartitionError::UnknownTopicOrPartition);
        }
        let topic = topic.to_string();
        let owner = self.owner(&topic, partition);
        let answer = self
            .on_shard(owner, if_requester_leaves, move |shard| {
                Box::pin(async move {
                    let partition = shard.led_partition(&topic, partition)?;
                    work(shard, partition).await
                })
            })
            .await;
        answer.map_err(|ShardGone| PartitionError::ShardUnavailable)?
    }

    /// Runs `work` on shard `owner` and returns its answer: at once here,
    /// else sent over the mesh. `if_requester_leaves` says what the owner
    /// does when the caller drops this future before the answer.
    pub(crate) async fn on_shard<T, W>(
        &self,
        owner: usize,
        if_requester_leaves: IfRequesterLeaves,
        work: W,
    ) -> Result<T, ShardGone>
    where
        T: Send + 'static,
        W: for<'a> FnOnce(&'a Shard) -> LocalBoxFuture<'a, T> + Send + 'static,
    {
        if owner == self.id {
            return Ok(work(self).await);
        }
        let (mut reply, answer) = reply::channel();
        let task: ShardTask = Box::new(move |shard| {
            Box::pin(async move {
                let answered = match if_requester_leaves {
                    IfRequesterLeaves::Finish => Some(work(shard).await),
                    IfRequesterLeaves::Stop => {
                        let requester_gone = reply.cancellation();
                        match select(pin!(work(shard)), pin!(requester_gone)).await {
                            Either::Left((answered, _)) => Some(answered),
                            Either::Right(_) => None,
                        }
                    }
                };
                if let Some(answered) = answered {
                    let _ = reply.send(answered);
                }
            })
        });
        self.peers.send_to(owner, ShardMessage::Run(task)).await.map_err(|_| ShardGone)?;
        answer.await.map_err(|_| ShardGone)
    }

    /// A partition this shard owns and has open.
    pub(crate) fn partition(&self, topic: &str, partition: i32) -> Result<Rc<Partition>, PartitionError> {
        self.partitions.borrow().get(topic, partition)
    }

    /// The registered broker that leads `partition` of `topic`.
    pub fn partition_leader(&self, topic: &str, partition: i32) -> Option<BrokerRegistration> {
        let snapshot = self.metadata();
        let leader = snapshot.partition(topic, partition)?.leader;
        snapshot.brokers.iter().find(|b| b.id == leader).cloned()
    }

    /// acks=all needs `min.insync.replicas` in the ISR (Kafka checks before
    /// the append: NOT_ENOUGH_REPLICAS).
    fn check_min_insync_replicas(&self, partition: &Partition) -> Result<(), PartitionError> {
        let snapshot = self.metadata();
        let (Some(topic), Some(state)) =
            (snapshot.topic(&partition.topic), snapshot.partition(&partition.topic, partition.index))
        else {
            return Ok(());
        };
        let dynamic = &snapshot.dynamic_broker_configs;
        let wanted = self.config.topic_config_value(dynamic, &topic.name, &topic.configs, "min.insync.replicas");
        match wanted.parse::<usize>() {
            Ok(wanted) if state.isr.len() < wanted => Err(PartitionError::NotEnoughReplicas),
            _ => Ok(()),
        }
    }

    /// A partition this shard owns and has open, if this broker leads it:
    /// clients produce to and fetch from leaders only.
    fn led_partition(&self, topic: &str, partition: i32) -> Result<Rc<Partition>, PartitionError> {
        match self.metadata().partition(topic, partition) {
            Some(state) if state.leader != self.config.node_id => Err(PartitionError::NotLeaderOrFollower),
            Some(_) => {
                // Named leader by an image whose roles it has not taken (a
                // restarted voter's stale images, see `take_roles`).
                let led = self.partition(topic, partition)?;
                match led.role.get() {
                    Role::Leader(_) => Ok(led),
                    Role::Unknown | Role::Follower => Err(PartitionError::NotLeaderOrFollower),
                }
            }
            None => self.partition(topic, partition),
        }
    }

    fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.config.data_dir.join(format!("{topic}-{partition}"))
    }

    /// Opens (recovering) every partition of the snapshot this shard owns and
    /// has not opened yet. A partition that fails to open is logged and stays
    /// unavailable; the others still serve.
    pub(crate) async fn open_owned_partitions(&self, snapshot: &MetadataSnapshot) {
        for topic in snapshot.topics.values() {
            for partition in 0..topic.partitions {
                let replica = topic.assignment.get(partition as usize);
                if self.owner(&topic.name, partition) != self.id
                    || replica.is_some_and(|state| !state.replicas.contains(&self.config.node_id))
                    || self.partitions.borrow().is_open(&topic.name, partition)
                {
                    continue;
                }
                let config = self.config.log_config(&snapshot.dynamic_broker_configs, &topic.name, &topic.configs);
                match PartitionLog::open(self.partition_dir(&topic.name, partition), config).await {
                    Ok(log) => {
                        if let Some(state) = topic.assignment.get(partition as usize) {
                            log.set_leader_epoch(state.leader_epoch);
                        }
                        let partition = Partition::new(&topic.name, partition, log, self.producer_loading.clone());
                        let partition = self.partitions.borrow_mut().insert_open(partition);
                        // A coordinator serves the keys of partitions this
                        // broker leads, once their state is replayed.
                        let led_in = match replica {
                            Some(_) if !self.registered_in(snapshot) => None,
                            Some(state) => (state.leader == self.config.node_id).then_some(state.leader_epoch),
                            None => Some(0),
                        };
                        if let Some(load) = self.coordinate(&partition, led_in) {
                            self.load_coordinator(partition, load).await;
                        }
                    }
                    Err(e) => {
                        tracing::error!(topic = %topic.name, partition, "cannot open partition, it stays offline: {e}");
                        self.partitions.borrow_mut().insert_offline(&topic.name, partition);
                    }
                }
            }
        }
    }

    /// Serves one message from another shard.
    pub(crate) async fn handle_message(&self, msg: ShardMessage) {
        match msg {
            ShardMessage::Run(task) => task(self).await,
            ShardMessage::Stats { reply } => {
                let _ = reply.send(self.stats());
            }
            ShardMessage::PrepareMetadata { snapshot, deleted, reply } => {
                self.prepare_metadata(&snapshot, &deleted).await;
                let _ = reply.send(());
            }
            ShardMessage::AdoptMetadata { snapshot, reply } => {
                self.adopt_metadata(snapshot);
                let _ = reply.send(());
            }
        }
    }

    /// Snapshots the loaded producer state, then flushes and closes every
    /// log this shard owns (clean shutdown).
    pub(crate) async fn close_all(&self) {
        self.snapshot_producers(true).await;
        let partitions = self.partitions.borrow_mut().drain();
        for partition in partitions {
            if let Err(e) = partition.log.close().await {
                tracing::warn!("closing partition log: {e}");
            }
        }
    }
}
