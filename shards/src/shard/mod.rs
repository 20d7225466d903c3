//! One shard: the state owned by one executor, and the routing of work to owners.

mod fetch;
mod groups;
mod idempotence;
mod partition;
mod partition_txns;
mod transactions;

use crate::config::BrokerConfig;
use crate::deleted_dirs;
use crate::error::{PartitionError, TopicError};
use crate::groups::consumer::ConsumerGroupConfig;
use crate::groups::{GroupConfig, GroupCoordinator, MigrationPolicy, OFFSETS_TOPIC};
use crate::messages::{ShardMessage, ShardTask, TopicResults, MAX_TIMESTAMP};
use crate::metadata::{
    ConfigAlteration, ConfigScope, ConfigTarget, MetadataSnapshot, MetadataStore, NewTopic, PartitionIncrease,
    TopicConfigs, TopicMetadata,
};
use crate::ownership::{owner_of, CONTROLLER_SHARD};
use crate::runtime::ConnectionLimits;
use crate::topic_config::{dynamic_broker_config_name, DynamicBrokerConfigs};
use crate::transactions::TRANSACTION_STATE_TOPIC;
use bytes::Bytes;
use futures::channel::oneshot;
use futures::future::{join_all, select, Either, LocalBoxFuture};
use glommio::channels::channel_mesh::Senders;
use partition::{Partition, PartitionTable};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use weir_engine::batch;
use weir_engine::{now_ms, AppendInfo, Durability, EngineError, PartitionLog};

pub use fetch::{LongPoll, PartitionRead, PartitionReads, ReadResult};

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
}

/// Upper bounds, in microseconds, of the latency histogram buckets; one more
/// bucket (+Inf) holds the rest.
pub const LATENCY_BUCKETS_US: [u64; 15] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000, 30_000_000,
];

/// A latency histogram of one shard: a count per bucket and the sum.
#[derive(Default)]
pub struct Histogram {
    counts: [Cell<u64>; LATENCY_BUCKETS_US.len() + 1],
    sum_us: Cell<u64>,
}

impl Histogram {
    pub fn record(&self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BUCKETS_US.iter().position(|&bound| us <= bound).unwrap_or(LATENCY_BUCKETS_US.len());
        bump(&self.counts[bucket], 1);
        bump(&self.sum_us, us);
    }

    fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot { counts: self.counts.iter().map(Cell::get).collect(), sum_us: self.sum_us.get() }
    }
}

/// A histogram's figures: `counts[i]` fell in bucket `i` (not cumulative).
#[derive(Clone, Debug, Default)]
pub struct HistogramSnapshot {
    pub counts: Vec<u64>,
    pub sum_us: u64,
}

fn bump(cell: &Cell<u64>, n: u64) {
    cell.set(cell.get().saturating_add(n));
}

/// A count of pieces of work in progress on one shard: each is counted while
/// the guard [`InFlight::enter`] returns lives, however its task ends.
#[derive(Default)]
pub struct InFlight(Rc<Cell<u64>>);

impl InFlight {
    pub fn enter(&self) -> InFlightGuard {
        bump(&self.0, 1);
        InFlightGuard(self.0.clone())
    }

    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

pub struct InFlightGuard(Rc<Cell<u64>>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        debug_assert!(self.0.get() > 0);
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// The counters of one shard, moved by its connections and handlers. Plain
/// cells: only the shard's own thread touches them, and nothing locks.
#[derive(Default)]
pub struct ShardMetrics {
    /// The shard's Kafka listener is accepting connections.
    pub serving: Cell<bool>,
    /// Requests answered, by (API key, error code).
    requests: RefCell<BTreeMap<(i16, i16), u64>>,
    bytes_in: Cell<u64>,
    bytes_out: Cell<u64>,
    connections_open: Cell<u64>,
    connections_accepted: Cell<u64>,
    refused_max_connections: Cell<u64>,
    refused_max_connections_per_ip: Cell<u64>,
    connections_idle_closed: Cell<u64>,
    /// Log bytes read to rebuild producer state (the tail after a snapshot).
    producer_state_replayed_bytes: Cell<u64>,
    /// Bytes after a request body, ignored as Kafka ignores them.
    request_bytes_ignored: Cell<u64>,
    /// Messages from other shards taken off the mesh (the admin endpoint's
    /// requests for figures left out): the cost of work done off its shard.
    mesh_messages_served: Cell<u64>,
    pub produce_latency: Histogram,
    pub fetch_latency: Histogram,
    /// Kafka requests being answered (from decoded to answered; long polls included).
    pub requests_in_flight: InFlight,
    /// Messages from other shards being served (taken off the mesh, not answered yet).
    pub peer_requests_in_flight: InFlight,
    /// How much later than asked a periodic timer ran: time the shard's
    /// thread was too busy with other tasks to run it.
    pub scheduling_delay: Histogram,
}

impl ShardMetrics {
    pub fn count_request(&self, api_key: i16, error_code: i16) {
        *self.requests.borrow_mut().entry((api_key, error_code)).or_insert(0) += 1;
    }
    pub fn add_bytes_in(&self, n: usize) {
        bump(&self.bytes_in, n as u64);
    }
    pub fn add_bytes_out(&self, n: usize) {
        bump(&self.bytes_out, n as u64);
    }
    pub fn connection_opened(&self) {
        bump(&self.connections_accepted, 1);
        bump(&self.connections_open, 1);
    }
    pub fn connection_closed(&self) {
        debug_assert!(self.connections_open.get() > 0);
        self.connections_open.set(self.connections_open.get().saturating_sub(1));
    }
    pub fn connection_refused(&self, why: crate::runtime::ConnectionRefused) {
        match why {
            crate::runtime::ConnectionRefused::MaxConnections => bump(&self.refused_max_connections, 1),
            crate::runtime::ConnectionRefused::MaxConnectionsPerIp => bump(&self.refused_max_connections_per_ip, 1),
        }
    }
    pub fn connection_idle_closed(&self) {
        bump(&self.connections_idle_closed, 1);
    }
    pub fn add_producer_state_replayed_bytes(&self, n: u64) {
        bump(&self.producer_state_replayed_bytes, n);
    }
    pub fn add_request_bytes_ignored(&self, n: usize) {
        bump(&self.request_bytes_ignored, n as u64);
    }
    pub fn mesh_message_served(&self) {
        bump(&self.mesh_messages_served, 1);
    }
}

/// What one shard reports to the admin endpoint.
#[derive(Clone, Debug)]
pub struct ShardStats {
    pub shard: usize,
    pub serving: bool,
    /// ((API key, error code), requests), sorted.
    pub requests: Vec<((i16, i16), u64)>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub connections_open: u64,
    pub connections_accepted: u64,
    pub refused_max_connections: u64,
    pub refused_max_connections_per_ip: u64,
    pub connections_idle_closed: u64,
    pub producer_state_replayed_bytes: u64,
    pub request_bytes_ignored: u64,
    pub mesh_messages_served: u64,
    pub produce_latency: HistogramSnapshot,
    pub fetch_latency: HistogramSnapshot,
    /// CPU time of the shard's thread: (user, system).
    pub cpu_time: (Duration, Duration),
    pub requests_in_flight: u64,
    pub peer_requests_in_flight: u64,
    /// Appends waiting for their partition's writer, all partitions together.
    pub appends_queued: u64,
    pub scheduling_delay: HistogramSnapshot,
    /// The partitions this shard owns, sorted.
    pub partitions: Vec<PartitionStats>,
    /// The committed offsets of the groups this shard coordinates, sorted.
    pub group_offsets: Vec<GroupOffsetStats>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupOffsetStats {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub committed_offset: i64,
}

#[derive(Clone, Debug)]
pub struct PartitionStats {
    pub topic: String,
    pub partition: i32,
    pub log_start_offset: i64,
    /// The log end offset (the high watermark: a single replica).
    pub high_watermark: i64,
    pub size_bytes: u64,
}

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

/// How long the admin endpoint waits for a shard's figures.
const STATS_TIMEOUT: Duration = Duration::from_secs(2);

/// The state of one executor. Lives in an `Rc`; never crosses threads.
pub struct Shard {
    id: usize,
    shard_count: usize,
    config: Arc<BrokerConfig>,
    metadata: RefCell<Arc<MetadataSnapshot>>,
    /// Only on the controller shard.
    store: Option<RefCell<MetadataStore>>,
    /// The partitions this shard owns.
    partitions: RefCell<PartitionTable>,
    peers: Senders<ShardMessage>,
    /// Serialises topic changes on the controller so snapshots go out in order.
    topic_changes: glommio::sync::Semaphore,
    /// The consumer groups whose `__consumer_offsets` partition this shard owns.
    groups: RefCell<GroupCoordinator>,
    /// The transactional ids whose `__transaction_state` partition this shard owns.
    transactions: RefCell<transactions::TxnCoordinator>,
    /// Loads producer state one partition at a time.
    producer_loading: glommio::sync::Semaphore,
    /// Shared by all shards; touched only when a connection opens or closes.
    connections: Arc<ConnectionLimits>,
    metrics: ShardMetrics,
}

impl Shard {
    pub(crate) fn new(
        id: usize,
        config: Arc<BrokerConfig>,
        connections: Arc<ConnectionLimits>,
        snapshot: Arc<MetadataSnapshot>,
        store: Option<MetadataStore>,
        peers: Senders<ShardMessage>,
    ) -> Shard {
        Shard {
            id,
            shard_count: peers.nr_consumers(),
            metadata: RefCell::new(snapshot),
            store: store.map(RefCell::new),
            partitions: RefCell::new(PartitionTable::default()),
            peers,
            topic_changes: glommio::sync::Semaphore::new(1),
            producer_loading: glommio::sync::Semaphore::new(1),
            transactions: RefCell::new(Default::default()),
            groups: RefCell::new(GroupCoordinator::new(GroupConfig {
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
            })),
            config,
            connections,
            metrics: ShardMetrics::default(),
        }
    }

    /// The broker-wide connection limits.
    pub fn connections(&self) -> &Arc<ConnectionLimits> {
        &self.connections
    }

    /// This shard's counters.
    pub fn metrics(&self) -> &ShardMetrics {
        &self.metrics
    }

    /// This shard's counters, the figures of the partitions it owns and the
    /// offsets of the groups it coordinates. Runs on the shard's own thread
    /// (its CPU time is read here).
    pub fn stats(&self) -> ShardStats {
        let m = &self.metrics;
        let logs = self.open_logs();
        let appends_queued = logs.iter().map(|(_, _, log)| log.queued_appends() as u64).sum();
        let partitions = logs
            .into_iter()
            .map(|(topic, partition, log)| PartitionStats {
                topic,
                partition,
                log_start_offset: log.log_start_offset(),
                high_watermark: log.high_watermark(),
                size_bytes: log.size_bytes(),
            })
            .collect();
        let mut group_offsets: Vec<GroupOffsetStats> = self
            .groups
            .borrow()
            .every_committed_offset()
            .map(|(group, topic, partition, committed_offset)| GroupOffsetStats {
                group: group.to_string(),
                topic: topic.to_string(),
                partition,
                committed_offset,
            })
            .collect();
        group_offsets.sort();
        ShardStats {
            shard: self.id,
            serving: m.serving.get(),
            requests: m.requests.borrow().iter().map(|(k, v)| (*k, *v)).collect(),
            bytes_in: m.bytes_in.get(),
            bytes_out: m.bytes_out.get(),
            connections_open: m.connections_open.get(),
            connections_accepted: m.connections_accepted.get(),
            refused_max_connections: m.refused_max_connections.get(),
            refused_max_connections_per_ip: m.refused_max_connections_per_ip.get(),
            connections_idle_closed: m.connections_idle_closed.get(),
            producer_state_replayed_bytes: m.producer_state_replayed_bytes.get(),
            request_bytes_ignored: m.request_bytes_ignored.get(),
            mesh_messages_served: m.mesh_messages_served.get(),
            produce_latency: m.produce_latency.snapshot(),
            fetch_latency: m.fetch_latency.snapshot(),
            cpu_time: crate::runtime::thread_cpu_time(),
            requests_in_flight: m.requests_in_flight.get(),
            peer_requests_in_flight: m.peer_requests_in_flight.get(),
            appends_queued,
            scheduling_delay: m.scheduling_delay.snapshot(),
            partitions,
            group_offsets,
        }
    }

    /// Every shard's stats, in shard order; `None` for a shard that did not
    /// answer within `STATS_TIMEOUT`.
    pub async fn gather_stats(&self) -> Vec<Option<ShardStats>> {
        let ask = |peer: usize| async move {
            if peer == self.id {
                return Some(self.stats());
            }
            let asked = async {
                let (reply, answer) = oneshot::channel();
                self.peers.send_to(peer, ShardMessage::Stats { reply }).await.ok()?;
                answer.await.ok()
            };
            match select(pin!(asked), pin!(glommio::timer::sleep(STATS_TIMEOUT))).await {
                Either::Left((stats, _)) => stats,
                Either::Right(_) => None,
            }
        };
        join_all((0..self.shard_count).map(ask)).await
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
        transactional_id: Option<&str>,
    ) -> Result<ProducedPartition, PartitionError> {
        let transactional_id = transactional_id.map(str::to_string);
        self.on_partition_owner(topic, partition, IfRequesterLeaves::Finish, move |shard, partition| {
            Box::pin(async move {
                let log = &partition.log;
                // Corrupt bytes are refused before any producer state is
                // looked at, as Kafka does.
                let records = batch::validate_records(records, log.config().max_batch_bytes)?;
                let info = match crate::producers::producer_batch(records.first_header()) {
                    Some(batch) => {
                        let txn_id = transactional_id.as_deref();
                        shard.append_idempotent(&partition, batch, records, durability, txn_id).await?
                    }
                    None => log.append_validated(records, durability).await?,
                };
                Ok(ProducedPartition { info, log_start_offset: log.log_start_offset() })
            })
        })
        .await
    }

    pub async fn offsets(&self, topic: &str, partition: i32) -> Result<PartitionOffsets, PartitionError> {
        self.on_partition_owner(topic, partition, IfRequesterLeaves::Stop, move |shard, partition| {
            Box::pin(async move {
                Ok(PartitionOffsets {
                    log_start_offset: partition.log.log_start_offset(),
                    high_watermark: partition.log.high_watermark(),
                    last_stable_offset: shard.last_stable_offset(&partition).await?,
                })
            })
        })
        .await
    }

    /// ListOffsets by timestamp: (offset, timestamp) of the first record
    /// whose timestamp is at least `timestamp`, or of the record with the
    /// largest timestamp for [`MAX_TIMESTAMP`]; `None` when there is none.
    pub async fn offset_for_timestamp(
        &self,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>, PartitionError> {
        self.on_partition_owner(topic, partition, IfRequesterLeaves::Stop, move |_, partition| {
            Box::pin(async move {
                let log = &partition.log;
                Ok(if timestamp == MAX_TIMESTAMP {
                    log.max_timestamp().await?
                } else {
                    log.offset_for_timestamp(timestamp).await?
                })
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
                    let partition = shard.partition(&topic, partition)?;
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
        let (mut reply, answer) = oneshot::channel();
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

    /// Runs `work` with `key` (a group or transactional id) on the shard
    /// that owns the key's partition of an internal topic, the key's
    /// coordinator; `unavailable()` answers when that shard does not hold
    /// the partition open (yet).
    pub(crate) async fn on_coordinator<T, W>(
        &self,
        topic: &'static str,
        partition: i32,
        key: &str,
        if_requester_leaves: IfRequesterLeaves,
        unavailable: impl FnOnce() -> T,
        work: W,
    ) -> T
    where
        T: Send + 'static,
        W: for<'a> FnOnce(&'a Shard, &'a str) -> LocalBoxFuture<'a, T> + Send + 'static,
    {
        let key = key.to_string();
        let owner = self.owner(topic, partition);
        let answer = self
            .on_shard(owner, if_requester_leaves, move |shard| {
                Box::pin(async move {
                    shard.partition(topic, partition).ok()?;
                    Some(work(shard, &key).await)
                })
            })
            .await;
        answer.ok().flatten().unwrap_or_else(unavailable)
    }

    /// A partition this shard owns and has open.
    fn partition(&self, topic: &str, partition: i32) -> Result<Rc<Partition>, PartitionError> {
        self.partitions.borrow().get(topic, partition)
    }

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

    async fn create_topics_unchecked(&self, topics: Vec<NewTopic>) -> TopicResults {
        self.create_configured_topics_unchecked(topics.into_iter().map(|t| (t, TopicConfigs::new())).collect()).await
    }

    async fn create_configured_topics_unchecked(&self, topics: Vec<(NewTopic, TopicConfigs)>) -> TopicResults {
        if self.id == CONTROLLER_SHARD {
            return self.controller_create_topics(topics).await;
        }
        let count = topics.len();
        let (reply, answer) = oneshot::channel();
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
        let (reply, answer) = oneshot::channel();
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
        let (reply, answer) = oneshot::channel();
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
        let (reply, answer) = oneshot::channel();
        self.ask_controller(ShardMessage::DeleteTopics { names, reply }, answer, count).await
    }

    async fn ask_controller<T: Clone>(
        &self,
        msg: ShardMessage,
        answer: oneshot::Receiver<Vec<Result<T, TopicError>>>,
        count: usize,
    ) -> Vec<Result<T, TopicError>> {
        let unavailable = || vec![Err(TopicError::ControllerUnavailable); count];
        if self.peers.send_to(CONTROLLER_SHARD, msg).await.is_err() {
            return unavailable();
        }
        answer.await.unwrap_or_else(|_| unavailable())
    }

    async fn controller_create_topics(&self, topics: Vec<(NewTopic, TopicConfigs)>) -> TopicResults {
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

    async fn controller_alter_configs(
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

    async fn controller_create_partitions(
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
        // Two phases, so that no shard routes a request to a partition whose
        // owner has not opened it yet: every shard opens (and drops) logs,
        // then every shard starts serving by the new snapshot.
        let mut acks = Vec::new();
        for peer in (0..self.shard_count).filter(|&p| p != self.id) {
            let (reply, ack) = oneshot::channel();
            let msg = ShardMessage::PrepareMetadata { snapshot: snapshot.clone(), deleted: deleted.clone(), reply };
            if self.peers.send_to(peer, msg).await.is_ok() {
                acks.push(ack);
            }
        }
        self.prepare_metadata(&snapshot, &deleted).await;
        join_all(acks).await;
        let mut acks = Vec::new();
        for peer in (0..self.shard_count).filter(|&p| p != self.id) {
            let (reply, ack) = oneshot::channel();
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

    fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.config.data_dir.join(format!("{topic}-{partition}"))
    }

    /// Every log this shard has open, for the maintenance passes.
    fn open_logs(&self) -> Vec<(String, i32, Rc<PartitionLog>)> {
        let partitions = self.partitions.borrow().all_open();
        partitions.into_iter().map(|p| (p.topic.clone(), p.index, p.log.clone())).collect()
    }

    /// One `retention.ms` / `retention.bytes` pass over this shard's logs,
    /// one log at a time (Kafka's `log.retention.check.interval.ms` task).
    pub(crate) async fn enforce_retention(&self) {
        for (topic, partition, log) in self.open_logs() {
            if !log.config().cleanup_policy.deletes() {
                continue;
            }
            match log.enforce_retention(now_ms()).await {
                Ok(done) if done.segments_deleted > 0 => tracing::info!(
                    topic = %topic, partition, segments = done.segments_deleted, bytes = done.bytes_deleted,
                    log_start_offset = done.log_start_offset, "retention deleted segments"
                ),
                Ok(_) | Err(EngineError::Closed) => {}
                Err(e) => tracing::warn!(topic = %topic, partition, "retention failed: {e}"),
            }
        }
    }

    /// One compaction pass over this shard's logs of compacted topics, one
    /// log at a time (Kafka's log cleaner, every `log.cleaner.backoff.ms`).
    pub(crate) async fn compact_logs(&self) {
        for (topic, partition, log) in self.open_logs() {
            if !log.config().cleanup_policy.compacts() {
                continue;
            }
            match log.compact(now_ms()).await {
                Ok(done) if done.segments_rewritten > 0 => tracing::info!(
                    topic = %topic, partition, segments = done.segments_rewritten, records_removed = done.records_removed,
                    bytes_before = done.bytes_before, bytes_after = done.bytes_after, "compacted"
                ),
                Ok(_) | Err(EngineError::Closed) => {}
                Err(e) => tracing::warn!(topic = %topic, partition, "compaction failed: {e}"),
            }
        }
    }

    /// Opens (recovering) every partition of the snapshot this shard owns and
    /// has not opened yet. A partition that fails to open is logged and stays
    /// unavailable; the others still serve.
    pub(crate) async fn open_owned_partitions(&self, snapshot: &MetadataSnapshot) {
        for topic in snapshot.topics.values() {
            for partition in 0..topic.partitions {
                if self.owner(&topic.name, partition) != self.id
                    || self.partitions.borrow().is_open(&topic.name, partition)
                {
                    continue;
                }
                let config = self.config.log_config(&snapshot.dynamic_broker_configs, &topic.name, &topic.configs);
                match PartitionLog::open(self.partition_dir(&topic.name, partition), config).await {
                    Ok(log) => {
                        if topic.name == OFFSETS_TOPIC {
                            self.replay_offsets_partition(partition, &log).await;
                        } else if topic.name == TRANSACTION_STATE_TOPIC {
                            self.replay_transaction_partition(partition, &log).await;
                        }
                        self.partitions.borrow_mut().insert_open(Partition::new(&topic.name, partition, log));
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
            ShardMessage::CreateTopics { topics, reply } => {
                let _ = reply.send(self.controller_create_topics(topics).await);
            }
            ShardMessage::AlterConfigs { alterations, validate_only, reply } => {
                let _ = reply.send(self.controller_alter_configs(alterations, validate_only).await);
            }
            ShardMessage::CreatePartitions { increases, validate_only, reply } => {
                let _ = reply.send(self.controller_create_partitions(increases, validate_only).await);
            }
            ShardMessage::DeleteTopics { names, reply } => {
                let _ = reply.send(self.controller_delete_topics(names).await);
            }
            ShardMessage::AllocateProducerId { reply } => {
                let _ = reply.send(self.controller_store().borrow_mut().allocate_producer_id());
            }
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
