//! The partition's side of transactions: markers written for the
//! coordinator, the last stable offset, read_committed reads and waits, and
//! the producers DescribeProducers shows.

use super::idempotence::Writing;
use super::partition::Partition;
use super::FetchedPartition;
use crate::error::PartitionError;
use crate::messages::ProducerDescription;
use crate::transactions::markers::{marker_batch, TxnMarker};
use crate::transactions::TxnError;
use futures::future::select;
use std::pin::pin;
use std::time::Duration;
use weir_engine::{now_ms, Durability};

impl Partition {
    pub(super) async fn last_stable_offset(&self) -> Result<i64, PartitionError> {
        let producers = self.producers().await?;
        let lso = producers.state.borrow().txns.last_stable_offset(self.log.high_watermark());
        Ok(lso)
    }

    /// Reads whole batches from `offset`; read_committed stops at the last
    /// stable offset and lists the aborted transactions the records overlap.
    pub(super) async fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        read_committed: bool,
    ) -> Result<FetchedPartition, PartitionError> {
        let log = &self.log;
        let producers = self.producers().await?;
        let states = &producers.state;
        let mut records = log.read(offset, max_bytes).await?;
        let high_watermark = log.high_watermark();
        let last_stable_offset = states.borrow().txns.last_stable_offset(high_watermark);
        let mut aborted_transactions = None;
        if read_committed {
            // The last stable offset is a batch's base offset: cut there (no copy).
            let end = weir_engine::batch::batches_below(&records, last_stable_offset);
            records.truncate(end);
            let upper = weir_engine::batch::last_offset_of(&records).map_or(offset, |last| last + 1);
            let mut states = states.borrow_mut();
            states.txns.prune(log.log_start_offset());
            aborted_transactions = Some(states.txns.aborted_between(offset, upper));
        }
        Ok(FetchedPartition {
            records,
            high_watermark,
            last_stable_offset,
            log_start_offset: log.log_start_offset(),
            aborted_transactions,
            diverging_epoch: None,
        })
    }

    /// Waits until the last stable offset passes `offset`, or `timeout`.
    /// It moves when the high watermark does (no transaction open) or when
    /// a marker ends the oldest open transaction, which wakes the waiters.
    pub(super) async fn wait_stable_beyond(&self, offset: i64, timeout: Duration) -> Result<(), PartitionError> {
        let log = &self.log;
        let producers = self.producers().await?;
        let deadline = weir_runtime::clock::now() + timeout;
        loop {
            // Registered before the check, with no await between: a marker
            // written after the check wakes this waiter.
            let moved = producers.stable_moved_later();
            let high_watermark = log.high_watermark();
            if producers.state.borrow().txns.last_stable_offset(high_watermark) > offset {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(weir_runtime::clock::now());
            if left.is_zero() {
                return Ok(());
            }
            let timer = pin!(weir_runtime::clock::sleep(left));
            if high_watermark > offset {
                select(moved, timer).await;
            } else {
                select(pin!(log.wait_beyond(offset)), timer).await;
            }
        }
    }

    /// Ends the producer's transaction in this partition with a marker,
    /// fencing older epochs of the producer; answered once the in-sync
    /// replicas hold it (acks=all), so that the coordinator completes only
    /// transactions whose markers survive a new leader.
    /// TRANSACTION_COORDINATOR_FENCED for a coordinator older than one
    /// that wrote a marker of this producer here.
    pub(super) async fn write_marker(&self, marker: TxnMarker) -> Result<(), PartitionError> {
        let log = &self.log;
        let producers = self.producers().await?;
        let role_at_append = self.role.get();
        let info = {
            let _writing = Writing::new(&producers);
            if !producers.state.borrow().marker_allowed(marker.producer_id, marker.coordinator_epoch) {
                return Err(PartitionError::Txn(TxnError::CoordinatorFenced));
            }
            let timestamp = now_ms();
            let info = log.append(marker_batch(marker, timestamp), Durability::Synced).await?;
            let mut states = producers.state.borrow_mut();
            states.apply_marker(marker.producer_id, marker.epoch, marker.coordinator_epoch, timestamp);
            states.txns.end(marker.producer_id, marker.commit, info.base_offset);
            info
        };
        producers.stable_moved();
        self.wait_replicated(info.last_offset, role_at_append).await
    }

    /// The producers DescribeProducers shows.
    pub(super) async fn describe_producers(&self) -> Result<Vec<ProducerDescription>, PartitionError> {
        let producers = self.producers().await?;
        let states = producers.state.borrow();
        let open: std::collections::HashMap<i64, i64> = states.txns.open().map(|(id, _, first)| (id, first)).collect();
        Ok(states
            .describe()
            .into_iter()
            .map(|(producer_id, epoch, last_sequence, _)| ProducerDescription {
                producer_id,
                epoch,
                last_sequence,
                current_txn_start_offset: open.get(&producer_id).copied().unwrap_or(-1),
            })
            .collect())
    }
}
