//! The internal-topic partitions a coordinator (groups, transactions) keeps
//! its state in, each loading, loaded or resigned. A coordinator serves a
//! key only while this broker leads the key's partition and its state is
//! loaded: replayed from the log up to the log end when the leadership
//! began (`lead`, from `Shard::take_roles`, or when the partition opens led
//! here). Until then requests get COORDINATOR_LOAD_IN_PROGRESS (clients
//! retry); once another broker leads it (`resign`), NOT_COORDINATOR (clients
//! look for the coordinator again); for a partition this shard does not
//! hold, COORDINATOR_NOT_AVAILABLE. The coordinator's own writes are
//! acknowledged once the in-sync replicas hold them (`append`).

use crate::shard::Partition;
use bytes::Bytes;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use weir_engine::{batch, Durability, ReadLimit};

/// Read size while replaying a partition.
const REPLAY_READ_BYTES: usize = 1 << 20;

/// Why a coordinator cannot serve a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotServing {
    /// Its partition's state is being replayed.
    Loading,
    /// Its partition is not held here (yet), or its log failed.
    NotHere,
    /// Another broker leads its partition (or this one stopped leading it
    /// while a write waited): NOT_COORDINATOR.
    NotCoordinator,
}

enum State {
    Loading {
        generation: u64,
        epoch: i32,
    },
    Loaded {
        partition: Rc<Partition>,
        generation: u64,
        epoch: i32,
    },
    /// Held here as a follower: its state is not kept.
    Resigned,
}

/// The right to load one partition's state for one leadership; a newer
/// `lead` or a `resign` voids it.
pub(crate) struct LoadTicket {
    index: i32,
    generation: u64,
    epoch: i32,
}

#[derive(Default)]
pub(crate) struct CoordinatorPartitions {
    partitions: RefCell<HashMap<i32, State>>,
    generations: Cell<u64>,
}

impl CoordinatorPartitions {
    /// The loaded partition `index`.
    pub fn get(&self, index: i32) -> Result<Rc<Partition>, NotServing> {
        self.served(index).map(|(partition, _, _)| partition)
    }

    /// The leader epoch in which partition `index` is loaded here.
    pub fn epoch(&self, index: i32) -> Result<i32, NotServing> {
        self.served(index).map(|(_, _, epoch)| epoch)
    }

    /// The loaded partition `index`, its generation and leader epoch.
    fn served(&self, index: i32) -> Result<(Rc<Partition>, u64, i32), NotServing> {
        match self.partitions.borrow().get(&index) {
            Some(State::Loaded { partition, generation, epoch }) => Ok((partition.clone(), *generation, *epoch)),
            Some(State::Loading { .. }) => Err(NotServing::Loading),
            Some(State::Resigned) => Err(NotServing::NotCoordinator),
            None => Err(NotServing::NotHere),
        }
    }

    fn is_current(&self, index: i32, current: u64) -> bool {
        match self.partitions.borrow().get(&index) {
            Some(State::Loading { generation, .. } | State::Loaded { generation, .. }) => *generation == current,
            _ => false,
        }
    }

    /// This broker leads partition `index` in leader epoch `epoch`: a
    /// ticket to load its state, unless it is loaded or loading for that
    /// epoch already. With a ticket the caller first drops whatever state
    /// of the partition it held (an older leadership's), then `load`s.
    pub fn lead(&self, index: i32, epoch: i32) -> Option<LoadTicket> {
        let mut partitions = self.partitions.borrow_mut();
        if let Some(State::Loading { epoch: e, .. } | State::Loaded { epoch: e, .. }) = partitions.get(&index) {
            if *e == epoch {
                return None;
            }
        }
        let generation = self.generations.get() + 1;
        self.generations.set(generation);
        partitions.insert(index, State::Loading { generation, epoch });
        Some(LoadTicket { index, generation, epoch })
    }

    /// Another broker leads partition `index`: its keys get NOT_COORDINATOR
    /// and a load under way stops. True when it was loaded or loading here:
    /// the caller drops its state.
    pub fn resign(&self, index: i32) -> bool {
        let previous = self.partitions.borrow_mut().insert(index, State::Resigned);
        matches!(previous, Some(State::Loading { .. } | State::Loaded { .. }))
    }

    /// Replays `partition` from its log start to its log end, handing
    /// `apply` the batches in order, then serves from it. Stops without
    /// serving when the ticket is voided meanwhile (nothing is applied after).
    pub async fn load(&self, partition: Rc<Partition>, ticket: LoadTicket, mut apply: impl FnMut(Bytes)) {
        let LoadTicket { index, generation, epoch } = ticket;
        let log = &partition.log;
        let mut offset = log.log_start_offset();
        // A new leader's log end: what it leads with (followers truncate to it).
        let end = log.log_end_offset();
        while offset < end {
            let batches = match log.read_to(offset, REPLAY_READ_BYTES, ReadLimit::LogEnd).await {
                Ok(b) if !b.is_empty() => b,
                Ok(_) => break,
                Err(e) => {
                    // Served from what was replayed: refusing every key of
                    // the partition would stop its groups or producers for good.
                    tracing::error!(topic = %partition.topic, index, offset, "replaying failed: {e}");
                    break;
                }
            };
            let Some(last) = batch::last_offset_of(&batches) else { break };
            offset = last + 1;
            if !self.is_current(index, generation) {
                return;
            }
            apply(batches);
        }
        if self.is_current(index, generation) {
            self.partitions.borrow_mut().insert(index, State::Loaded { partition, generation, epoch });
        }
    }

    /// Appends a batch of the coordinator's to partition `index` and
    /// returns once the in-sync replicas hold it (acks=all; at once on a
    /// partition without followers), so that what it answers survives the
    /// leader's death. NOT_COORDINATOR when this broker stopped leading the
    /// partition meanwhile: the batch may be truncated, and the state it
    /// changes is no longer this broker's to change.
    pub async fn append(&self, index: i32, batch: Bytes) -> Result<(), NotServing> {
        let (partition, generation, _) = self.served(index)?;
        let role_at_append = partition.role.get();
        let failed = |e: &dyn std::fmt::Display| {
            tracing::warn!(topic = %partition.topic, index, "a coordinator write failed: {e}");
            NotServing::NotHere
        };
        let info = partition.log.append(batch, Durability::Synced).await.map_err(|e| failed(&e))?;
        partition.wait_replicated(info.last_offset, role_at_append).await.map_err(|_| NotServing::NotCoordinator)?;
        match self.is_current(index, generation) {
            true => Ok(()),
            false => Err(NotServing::NotCoordinator),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::{Partition, ProducerLoading};
    use weir_engine::records::RecordsBuilder;
    use weir_engine::{Durability, LogConfig, PartitionLog};

    /// Partition `index` of topic "t" in `dir`, holding `count` one-record batches.
    async fn partition_of_batches(dir: &std::path::Path, index: i32, count: u8) -> Rc<Partition> {
        let log = PartitionLog::open(dir.join(format!("t-{index}")), LogConfig::default()).await.unwrap();
        for i in 0..count {
            let batch = RecordsBuilder::new().push(None, Some(&[i]), &[], 0).finish();
            log.append(batch, Durability::Written).await.unwrap();
        }
        let loading = Rc::new(ProducerLoading {
            one_at_a_time: weir_runtime::sync::Semaphore::new(1),
            metrics: Default::default(),
        });
        Rc::new(Partition::new("t", index, log, loading))
    }

    #[test]
    fn a_partition_is_served_once_its_batches_are_replayed_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let executor = weir_runtime::LocalExecutorBuilder::default().make().unwrap();
        executor.run(async {
            let partition = partition_of_batches(dir.path(), 3, 5).await;
            let partitions = CoordinatorPartitions::default();
            assert_eq!(partitions.get(3).err(), Some(NotServing::NotHere));
            let mut replayed = Vec::new();
            let ticket = partitions.lead(3, 7).expect("a first leadership loads");
            assert!(partitions.lead(3, 7).is_none(), "loading already");
            partitions
                .load(partition, ticket, |batches| {
                    assert_eq!(partitions.get(3).err(), Some(NotServing::Loading), "not served while replaying");
                    let mut pos = 0;
                    while let Some(header) = batches.get(pos..).and_then(batch::RawHeader::of) {
                        replayed.push(header.base_offset());
                        pos += header.total_len();
                    }
                })
                .await;
            assert_eq!(replayed, [0, 1, 2, 3, 4]);
            assert_eq!(partitions.get(3).map(|p| p.index).ok(), Some(3));
            assert_eq!(partitions.get(4).err(), Some(NotServing::NotHere));
            assert!(partitions.lead(3, 7).is_none(), "loaded for this leadership");

            assert!(partitions.resign(3), "a follower drops what it loaded");
            assert_eq!(partitions.get(3).err(), Some(NotServing::NotCoordinator));
            assert!(!partitions.resign(3));
        });
    }

    #[test]
    fn a_load_voided_by_a_newer_leadership_or_a_resignation_applies_nothing_more_and_never_serves() {
        let dir = tempfile::tempdir().unwrap();
        let executor = weir_runtime::LocalExecutorBuilder::default().make().unwrap();
        executor.run(async {
            let partition = partition_of_batches(dir.path(), 0, 3).await;
            let partitions = CoordinatorPartitions::default();
            let old = partitions.lead(0, 1).unwrap();
            let new = partitions.lead(0, 2).expect("a new leader epoch loads again");
            let mut applied = 0;
            partitions.load(partition.clone(), old, |_| applied += 1).await;
            assert_eq!(applied, 0, "the older leadership's load applies nothing");
            assert_eq!(partitions.get(0).err(), Some(NotServing::Loading));
            partitions.load(partition.clone(), new, |_| applied += 1).await;
            assert!(applied > 0);
            assert!(partitions.get(0).is_ok());

            let ticket = partitions.lead(0, 3).unwrap();
            partitions.resign(0);
            partitions.load(partition, ticket, |_| panic!("resigned")).await;
            assert_eq!(partitions.get(0).err(), Some(NotServing::NotCoordinator));
        });
    }
}
