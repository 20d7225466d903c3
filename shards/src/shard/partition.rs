//! The partitions a shard owns: one table from topic and partition to an
//! open [`Partition`] (its log and, once loaded, its producers' state) or to
//! a partition whose log failed to open. Replication will live inside the
//! partition's append and read.
//!
//! A [`Partition`]'s methods are spread by concern: appends and offsets
//! here, its producers' state in `idempotence.rs`, transactions, reads and
//! waits in `partition_txns.rs`.

use super::idempotence::PartitionProducers;
use super::{FetchedPartition, PartitionOffsets, ShardMetrics};
use crate::error::PartitionError;
use crate::replication::FollowerProgress;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use weir_engine::batch::ValidatedRecords;
use weir_engine::{AppendInfo, Durability, PartitionLog, ReadLimit};

/// One partition this shard owns and has open.
pub(crate) struct Partition {
    pub topic: String,
    pub index: i32,
    pub log: Rc<PartitionLog>,
    /// Its producers' and transactions' state, loaded from the log on first
    /// use (`Partition::producers`).
    pub(super) producers: RefCell<Option<Rc<PartitionProducers>>>,
    pub(super) loading: Rc<ProducerLoading>,
    /// Callers waiting for its producers' state (`Partition::producers`).
    pub(super) waiting_for_producers: Cell<u32>,
    /// While this broker leads it: how far each follower has copied.
    pub followers: FollowerProgress,
    /// What this broker is for it, as the last image said.
    pub role: Cell<Role>,
    /// While it leads: its log end when its leader epoch began, which the
    /// high watermark may not have reached yet (KIP-207).
    pub epoch_start_offset: Cell<Option<i64>>,
}

/// A broker's part in one partition's replication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// Not known yet (just opened), or no leader.
    Unknown,
    /// Leads it in this leader epoch.
    Leader(i32),
    Follower,
}

/// What the partitions of one shard share to load their producers' state:
/// one load at a time, and the shard's counters.
pub(crate) struct ProducerLoading {
    pub one_at_a_time: weir_runtime::sync::Semaphore,
    pub metrics: Rc<ShardMetrics>,
}

impl Partition {
    pub fn new(topic: &str, index: i32, log: Rc<PartitionLog>, loading: Rc<ProducerLoading>) -> Self {
        let followers = FollowerProgress::default();
        let role = Cell::new(Role::Unknown);
        let producers = RefCell::new(None);
        let waiting_for_producers = Cell::new(0);
        Partition {
            topic: topic.to_string(),
            index,
            log,
            producers,
            loading,
            waiting_for_producers,
            followers,
            role,
            epoch_start_offset: Cell::new(None),
        }
    }

    /// Drops the producers' state, to be loaded again from the log: what a
    /// follower copied, or truncated, since it was loaded is not in it.
    pub fn forget_producers(&self) {
        self.producers.replace(None);
    }

    /// The producers' state, if it is loaded.
    pub(super) fn loaded_producers(&self) -> Option<Rc<PartitionProducers>> {
        self.producers.borrow().clone()
    }

    /// Appends records that carry no producer id (see
    /// `Shard::append_idempotent` for those that do).
    pub async fn append(
        &self,
        records: ValidatedRecords,
        durability: Durability,
    ) -> Result<AppendInfo, PartitionError> {
        Ok(self.log.append_validated(records, durability).await?)
    }

    /// acks=all: resolves once every in-sync replica holds the batch ending
    /// at `last_offset`, appended while this broker's role was
    /// `role_at_append` (at once while the high watermark follows the log
    /// end). NOT_LEADER_OR_FOLLOWER when the log closed or the leadership
    /// changed meanwhile: the old leader may have truncated the batch and
    /// copied another to its offsets.
    pub async fn wait_replicated(&self, last_offset: i64, role_at_append: Role) -> Result<(), PartitionError> {
        self.log.wait_beyond(last_offset).await;
        if self.log.high_watermark() <= last_offset {
            return Err(PartitionError::NotLeaderOrFollower);
        }
        let role = self.role.get();
        let led_then = matches!(role_at_append, Role::Leader(_));
        if role == Role::Follower || (led_then && role != role_at_append) {
            return Err(PartitionError::NotLeaderOrFollower);
        }
        Ok(())
    }

    /// A follower's read: whole batches from `offset` up to the log end,
    /// with the high watermark it may take.
    pub async fn read_for_follower(&self, offset: i64, max_bytes: usize) -> Result<FetchedPartition, PartitionError> {
        let log = &self.log;
        Ok(FetchedPartition {
            records: log.read_to(offset, max_bytes, ReadLimit::LogEnd).await?,
            high_watermark: log.high_watermark(),
            last_stable_offset: self.last_stable_offset().await?,
            log_start_offset: log.log_start_offset(),
            aborted_transactions: None,
            diverging_epoch: None,
        })
    }

    pub async fn offsets(&self) -> Result<PartitionOffsets, PartitionError> {
        Ok(PartitionOffsets {
            log_start_offset: self.log.log_start_offset(),
            high_watermark: self.log.high_watermark(),
            last_stable_offset: self.last_stable_offset().await?,
            epoch_start_offset: self.epoch_start_offset.get(),
        })
    }
}

/// What a shard holds for one partition it owns.
enum Slot {
    Open(Rc<Partition>),
    /// Its log failed to open (damaged or unreadable storage).
    Offline,
}

impl Slot {
    fn open(&self) -> Option<&Rc<Partition>> {
        match self {
            Slot::Open(partition) => Some(partition),
            Slot::Offline => None,
        }
    }

    fn into_open(self) -> Option<Rc<Partition>> {
        self.open().cloned()
    }
}

/// Every partition a shard owns, by topic, then partition.
#[derive(Default)]
pub(crate) struct PartitionTable {
    topics: HashMap<String, HashMap<i32, Slot>>,
}

impl PartitionTable {
    /// The open partition; OFFLINE or UNKNOWN_TOPIC_OR_PARTITION when it
    /// is not.
    pub fn get(&self, topic: &str, index: i32) -> Result<Rc<Partition>, PartitionError> {
        match self.topics.get(topic).and_then(|partitions| partitions.get(&index)) {
            Some(Slot::Open(partition)) => Ok(partition.clone()),
            Some(Slot::Offline) => Err(PartitionError::Offline),
            None => Err(PartitionError::UnknownTopicOrPartition),
        }
    }

    pub fn is_open(&self, topic: &str, index: i32) -> bool {
        self.get(topic, index).is_ok()
    }

    pub fn insert_open(&mut self, partition: Partition) -> Rc<Partition> {
        let partition = Rc::new(partition);
        let topic = self.topics.entry(partition.topic.clone()).or_default();
        topic.insert(partition.index, Slot::Open(partition.clone()));
        partition
    }

    pub fn insert_offline(&mut self, topic: &str, index: i32) {
        self.topics.entry(topic.to_string()).or_default().insert(index, Slot::Offline);
    }

    /// Forgets a topic; returns its open partitions.
    pub fn remove_topic(&mut self, topic: &str) -> Vec<Rc<Partition>> {
        let removed = self.topics.remove(topic).unwrap_or_default();
        removed.into_values().filter_map(Slot::into_open).collect()
    }

    /// Forgets one partition; returns it if it was open.
    pub fn remove(&mut self, topic: &str, index: i32) -> Option<Rc<Partition>> {
        let partitions = self.topics.get_mut(topic)?;
        let removed = partitions.remove(&index);
        if partitions.is_empty() {
            self.topics.remove(topic);
        }
        removed.and_then(Slot::into_open)
    }

    /// The open partitions of `topic`.
    pub fn of_topic(&self, topic: &str) -> Vec<Rc<Partition>> {
        let partitions = self.topics.get(topic).into_iter().flat_map(HashMap::values);
        partitions.filter_map(Slot::open).cloned().collect()
    }

    /// Every open partition, by topic then partition.
    pub fn all_open(&self) -> Vec<Rc<Partition>> {
        let slots = self.topics.values().flat_map(HashMap::values);
        let mut all: Vec<_> = slots.filter_map(Slot::open).cloned().collect();
        all.sort_by(|a, b| (&a.topic, a.index).cmp(&(&b.topic, b.index)));
        all
    }

    /// Forgets every partition; returns the open ones.
    pub fn drain(&mut self) -> Vec<Rc<Partition>> {
        self.topics.drain().flat_map(|(_, partitions)| partitions.into_values().filter_map(Slot::into_open)).collect()
    }
}
