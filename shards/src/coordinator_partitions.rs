//! The internal-topic partitions a coordinator (groups, transactions) keeps
//! its state in, each loading or loaded. A coordinator serves a key only
//! once the key's partition is loaded: its state replayed from the log.
//! Until then requests get COORDINATOR_LOAD_IN_PROGRESS (clients retry),
//! and for a partition this shard does not hold, COORDINATOR_NOT_AVAILABLE.

use crate::shard::Partition;
use bytes::Bytes;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use weir_engine::batch;

/// Read size while replaying a partition.
const REPLAY_READ_BYTES: usize = 1 << 20;

/// Why a coordinator cannot serve a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotServing {
    /// Its partition's state is being replayed.
    Loading,
    /// Its partition is not held here (yet).
    NotHere,
}

enum State {
    Loading,
    Loaded(Rc<Partition>),
}

#[derive(Default)]
pub(crate) struct CoordinatorPartitions {
    partitions: RefCell<HashMap<i32, State>>,
}

impl CoordinatorPartitions {
    /// The loaded partition `index`.
    pub fn get(&self, index: i32) -> Result<Rc<Partition>, NotServing> {
        match self.partitions.borrow().get(&index) {
            Some(State::Loaded(partition)) => Ok(partition.clone()),
            Some(State::Loading) => Err(NotServing::Loading),
            None => Err(NotServing::NotHere),
        }
    }

    /// Replays `partition` from its log start to its high watermark,
    /// handing `apply` the batches in order, then serves from it.
    pub async fn load(&self, partition: Rc<Partition>, mut apply: impl FnMut(Bytes)) {
        let index = partition.index;
        self.partitions.borrow_mut().insert(index, State::Loading);
        let log = &partition.log;
        let mut offset = log.log_start_offset();
        let end = log.high_watermark();
        while offset < end {
            let batches = match log.read(offset, REPLAY_READ_BYTES).await {
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
            apply(batches);
        }
        self.partitions.borrow_mut().insert(index, State::Loaded(partition));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::{Partition, ProducerLoading};
    use weir_engine::records::RecordsBuilder;
    use weir_engine::{Durability, LogConfig, PartitionLog};

    #[test]
    fn a_partition_is_served_once_its_batches_are_replayed_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let executor = weir_runtime::LocalExecutorBuilder::default().make().unwrap();
        executor.run(async {
            let log = PartitionLog::open(dir.path().join("t-3"), LogConfig::default()).await.unwrap();
            for i in 0..5u8 {
                let batch = RecordsBuilder::new().push(None, Some(&[i]), &[], 0).finish();
                log.append(batch, Durability::Written).await.unwrap();
            }
            let loading = Rc::new(ProducerLoading {
                one_at_a_time: weir_runtime::sync::Semaphore::new(1),
                metrics: Default::default(),
            });
            let partitions = CoordinatorPartitions::default();
            assert_eq!(partitions.get(3).err(), Some(NotServing::NotHere));
            let mut replayed = Vec::new();
            partitions
                .load(Rc::new(Partition::new("t", 3, log, loading)), |batches| {
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
        });
    }
}
