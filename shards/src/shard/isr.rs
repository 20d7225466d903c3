//! A leader's upkeep of its partitions' ISR: every half
//! `replica.lag.time.max.ms` it asks the controller (AlterPartition, a
//! compare-and-set on the partition epoch) to drop the followers that have
//! not caught up for that long and to take back those that hold the high
//! watermark again.

use super::Shard;
use crate::metadata::AlterPartition;
use std::time::Duration;

impl Shard {
    pub(crate) async fn maintain_isr(&self) {
        let me = self.config.node_id;
        let max_lag = Duration::from_millis(self.config.replica_lag_time_max_ms);
        let snapshot = self.metadata();
        let now = weir_runtime::clock::now();
        let partitions = self.partitions.borrow().all_open();
        let changes = partitions.iter().filter_map(|partition| {
            let state = snapshot.partition(&partition.topic, partition.index).filter(|s| s.leader == me)?;
            let log = &partition.log;
            // Where this leadership's history starts: its first batch, or the
            // log end while it has written none.
            let epoch_start = (log.leader_epochs().last())
                .filter(|e| e.epoch == state.leader_epoch)
                .map_or(log.log_end_offset(), |e| e.start_offset);
            let in_sync_from = log.high_watermark().max(epoch_start);
            let isr = partition.followers.isr_change((&state.replicas, &state.isr, me), in_sync_from, now, max_lag)?;
            Some(AlterPartition {
                topic: partition.topic.clone(),
                partition: partition.index,
                leader_epoch: state.leader_epoch,
                partition_epoch: state.partition_epoch,
                isr,
            })
        });
        for change in changes.collect::<Vec<_>>() {
            let (topic, index, isr) = (change.topic.clone(), change.partition, change.isr.clone());
            match self.alter_partition(change).await {
                Ok(_) => tracing::info!(%topic, partition = index, ?isr, "ISR changed"),
                Err(e) => tracing::info!(%topic, partition = index, ?isr, "the controller refused an ISR change: {e}"),
            }
        }
    }
}
