//! A leader's upkeep of its partitions' ISR, through the controller
//! (AlterPartition, a compare-and-set on the partition epoch): every half
//! `replica.lag.time.max.ms` it drops the followers that have not caught up
//! for that long, and as soon as a follower out of the ISR holds the high
//! watermark again its fetch wakes the upkeep to take it back (Kafka's
//! maybeShrinkIsr on a timer, maybeExpandIsr on each follower fetch). A
//! follower left out until the next tick would leave the partition short of
//! `min.insync.replicas` for seconds after a restart.

use super::partition::Partition;
use super::Shard;
use crate::metadata::{AlterPartition, MetadataSnapshot, PartitionState};
use futures::channel::oneshot;
use futures::future::{select, Either};
use std::cell::RefCell;
use std::pin::pin;
use std::time::{Duration, Instant};

/// Wakes the shard's ISR upkeep before its next tick.
#[derive(Default)]
pub(crate) struct IsrWake(RefCell<Option<oneshot::Sender<()>>>);

impl IsrWake {
    fn wake(&self) {
        if let Some(waker) = self.0.borrow_mut().take() {
            let _ = waker.send(());
        }
    }

    /// Waits `every`, or less if woken meanwhile.
    pub(crate) async fn wait(&self, every: Duration) {
        let (tx, rx) = oneshot::channel();
        *self.0.borrow_mut() = Some(tx);
        if let Either::Left(_) = select(pin!(weir_runtime::clock::sleep(every)), rx).await {
            self.0.borrow_mut().take();
        }
    }
}

impl Shard {
    /// Asks the controller for the ISR changes the partitions this shard
    /// leads need now, one partition at a time.
    pub(crate) async fn maintain_isr(&self) {
        let snapshot = self.metadata();
        let now = weir_runtime::clock::now();
        let partitions = self.partitions.borrow().all_open();
        let changes: Vec<_> = partitions.iter().filter_map(|p| self.isr_alteration(&snapshot, p, now)).collect();
        for change in changes {
            let (topic, index, isr) = (change.topic.clone(), change.partition, change.isr.clone());
            match self.alter_partition(change).await {
                Ok(_) => tracing::info!(%topic, partition = index, ?isr, "ISR changed"),
                Err(e) => tracing::info!(%topic, partition = index, ?isr, "the controller refused an ISR change: {e}"),
            }
        }
    }

    /// The ISR change `partition` needs at `now`, if this broker leads it.
    fn isr_alteration(
        &self,
        snapshot: &MetadataSnapshot,
        partition: &Partition,
        now: Instant,
    ) -> Option<AlterPartition> {
        let me = self.config.node_id;
        let max_lag = Duration::from_millis(self.config.replica_lag_time_max_ms);
        let state = snapshot.partition(&partition.topic, partition.index).filter(|s| s.leader == me)?;
        let in_sync_from = in_sync_from(partition, state);
        let isr = partition.followers.isr_change((&state.replicas, &state.isr, me), in_sync_from, now, max_lag)?;
        Some(AlterPartition {
            topic: partition.topic.clone(),
            partition: partition.index,
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
            isr,
        })
    }

    /// `follower` of `partition`, which this broker leads as `state` says,
    /// fetched from `offset`: if it is out of the ISR and holds enough to
    /// be back in it, the upkeep runs now.
    pub(super) fn follower_may_rejoin(
        &self,
        partition: &Partition,
        state: &PartitionState,
        follower: i32,
        offset: i64,
    ) {
        if !state.isr.contains(&follower) && offset >= in_sync_from(partition, state) {
            self.isr_wake.wake();
        }
    }
}

/// Where a follower's log must reach to be in sync: the high watermark and
/// the start of this leadership's history (its first batch, or the log end
/// while it has written none).
fn in_sync_from(partition: &Partition, state: &PartitionState) -> i64 {
    let log = &partition.log;
    let epoch_start = (log.leader_epochs().last())
        .filter(|e| e.epoch == state.leader_epoch)
        .map_or(log.log_end_offset(), |e| e.start_offset);
    log.high_watermark().max(epoch_start)
}
