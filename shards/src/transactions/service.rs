//! The transaction coordinator of one shard as a service: the
//! [`TxnMetadata`] of each transactional id whose `__transaction_state`
//! partition this shard holds. Every state change is appended to that
//! partition (acks=all) before it is adopted and answered; markers go to
//! each partition of a transaction through its owner shard. An id is served
//! once its partition is loaded ([`CoordinatorPartitions`]). Requests reach
//! the service through `Shard::on_txn_coordinator`.

use super::markers::TxnMarker;
use super::{log_records, plan_init, transaction_partition_of, EndStep, TxnError, TxnMetadata, TxnState};
use crate::coordinator_partitions::{CoordinatorPartitions, LoadTicket, NotServing};
use crate::shard::{Partition, Shard};
use bytes::Bytes;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use weir_engine::now_ms;
use weir_engine::records::RecordsBuilder;

#[derive(Default)]
pub(crate) struct TxnService {
    txns: RefCell<HashMap<String, TxnMetadata>>,
    /// Ids with a state change in flight; other requests for them get
    /// CONCURRENT_TRANSACTIONS (clients retry it).
    busy: RefCell<HashSet<String>>,
    partitions: CoordinatorPartitions,
}

/// Marks an id busy while it lives.
struct Busy<'a> {
    service: &'a TxnService,
    id: String,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.service.busy.borrow_mut().remove(&self.id);
    }
}

impl From<NotServing> for TxnError {
    fn from(why: NotServing) -> Self {
        match why {
            NotServing::Loading => TxnError::CoordinatorLoadInProgress,
            NotServing::NotHere => TxnError::CoordinatorNotAvailable,
            NotServing::NotCoordinator => TxnError::NotCoordinator,
        }
    }
}

impl TxnService {
    /// Whether this service serves `transactional_id` now.
    pub fn serves(&self, transactional_id: &str) -> Result<(), TxnError> {
        self.partitions.get(transaction_partition_of(transactional_id)).map(drop).map_err(TxnError::from)
    }

    pub fn describe(&self, id: &str) -> Option<TxnMetadata> {
        self.txns.borrow().get(id).cloned()
    }

    /// Every transaction here, by id.
    pub fn list(&self) -> Vec<TxnMetadata> {
        let mut all: Vec<TxnMetadata> = self.txns.borrow().values().cloned().collect();
        all.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        all
    }

    /// KIP-890's verification: may this producer's transactional batch (or
    /// offsets) go to the partition?
    pub fn verify_partition(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), TxnError> {
        let txns = self.txns.borrow();
        let current = txns.get(id).ok_or(TxnError::InvalidProducerIdMapping)?;
        current.verify_partition(producer_id, epoch, topic, partition)
    }

    fn lock(&self, id: &str) -> Result<Busy<'_>, TxnError> {
        if !self.busy.borrow_mut().insert(id.to_string()) {
            return Err(TxnError::ConcurrentTransactions);
        }
        Ok(Busy { service: self, id: id.to_string() })
    }

    /// InitProducerId of a transactional producer: (producer id, epoch).
    /// `expected`: the producer id and epoch a v3+ client holds (KIP-360).
    pub async fn init_producer(
        &self,
        shard: &Shard,
        id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), TxnError> {
        let _busy = self.lock(id)?;
        let current = self.describe(id);
        // A fresh producer id only when the id is new or its epochs run out.
        let fresh = if current.as_ref().is_none_or(|c| c.epoch >= i16::MAX - 2) {
            Some(shard.allocate_producer_id().await.map_err(|_| TxnError::CoordinatorNotAvailable)?)
        } else {
            None
        };
        let step = plan_init(current.as_ref(), id, timeout_ms, expected, || fresh.unwrap_or(-1), now_ms())?;
        if step.next.producer_id < 0 {
            return Err(TxnError::CoordinatorNotAvailable);
        }
        if let Some(abort) = step.abort_first {
            // The previous producer's transaction is aborted under a bumped
            // epoch, which fences it everywhere.
            self.persist(&abort).await?;
            if !write_markers(shard, &abort).await {
                return Err(TxnError::ConcurrentTransactions);
            }
        }
        self.persist(&step.next).await?;
        Ok((step.next.producer_id, step.next.epoch))
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn for partitions the metadata
    /// knows: one result per partition, in request order.
    pub async fn add_partitions(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: Vec<(String, i32)>,
    ) -> Vec<Result<(), TxnError>> {
        let all = |e: TxnError| vec![Err(e); partitions.len()];
        let _busy = match self.lock(id) {
            Ok(busy) => busy,
            Err(e) => return all(e),
        };
        let Some(current) = self.describe(id) else { return all(TxnError::InvalidProducerIdMapping) };
        let planned =
            current.check_producer(producer_id, epoch).and_then(|_| current.add_partitions(&partitions, now_ms()));
        match planned {
            Err(e) => all(e),
            Ok(None) => vec![Ok(()); partitions.len()],
            Ok(Some(next)) => match self.persist(&next).await {
                Ok(()) => vec![Ok(()); partitions.len()],
                Err(e) => all(e),
            },
        }
    }

    /// EndTxn: commits or aborts the producer's transaction.
    pub async fn end(
        &self,
        shard: &Shard,
        id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<(), TxnError> {
        let _busy = self.lock(id)?;
        let current = self.describe(id).ok_or(TxnError::InvalidProducerIdMapping)?;
        current.check_producer(producer_id, epoch)?;
        match current.end(commit, now_ms())? {
            EndStep::AlreadyDone => Ok(()),
            EndStep::Prepare(prepared) => {
                self.persist(&prepared).await?;
                // Decided: from here the outcome survives a crash. Markers
                // that cannot be written now are retried by the tick.
                if write_markers(shard, &prepared).await {
                    if let Err(e) = self.persist(&prepared.completed(now_ms())).await {
                        tracing::warn!(transactional_id = id, "completing a transaction failed: {e}");
                    }
                }
                Ok(())
            }
        }
    }

    /// Appends the new state of a transactional id (acks=all), then adopts it.
    async fn persist(&self, m: &TxnMetadata) -> Result<(), TxnError> {
        self.append(&m.transactional_id, Some(log_records::value(m))).await?;
        self.txns.borrow_mut().insert(m.transactional_id.clone(), m.clone());
        Ok(())
    }

    /// Appends a record of a transactional id to its partition, returning
    /// once the in-sync replicas hold it (acks=all); `None` is a tombstone.
    async fn append(&self, id: &str, value: Option<Bytes>) -> Result<(), TxnError> {
        let batch = RecordsBuilder::new().push(Some(&log_records::key(id)), value.as_deref(), &[], now_ms()).finish();
        self.partitions.append(transaction_partition_of(id), batch).await.map_err(|e| {
            tracing::warn!(transactional_id = %id, "persisting transaction state failed: {e:?}");
            TxnError::from(e)
        })
    }

    /// Forgets the ids with no transaction in progress and no change for
    /// `expiration_ms`, each with a tombstone so that a restart does not
    /// bring it back.
    pub async fn expire_ids(&self, expiration_ms: i64) {
        let due: Vec<String> = {
            let now = now_ms();
            let txns = self.txns.borrow();
            txns.values().filter(|m| m.expired(now, expiration_ms)).map(|m| m.transactional_id.clone()).collect()
        };
        for id in due {
            let Ok(_busy) = self.lock(&id) else { continue };
            // A request may have changed it since it was listed.
            if !self.describe(&id).is_some_and(|m| m.expired(now_ms(), expiration_ms)) {
                continue;
            }
            if self.append(&id, None).await.is_ok() {
                self.txns.borrow_mut().remove(&id);
                tracing::info!(transactional_id = %id, "expired an idle transactional id");
            }
        }
    }

    /// Finishes transactions left in a Prepare state (after a restart or a
    /// failed marker) and aborts, with a bumped epoch, those past their
    /// timeout; called periodically.
    pub fn tick(shard: &Rc<Shard>) {
        let service = &shard.transactions;
        let now = now_ms();
        let due: Vec<TxnMetadata> = {
            let (txns, busy) = (service.txns.borrow(), service.busy.borrow());
            txns.values()
                .filter(|m| !busy.contains(&m.transactional_id))
                .filter(|m| matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort) || m.timed_out(now))
                .cloned()
                .collect()
        };
        for m in due {
            let shard = shard.clone();
            weir_runtime::spawn_local(async move {
                let service = &shard.transactions;
                let Ok(_busy) = service.lock(&m.transactional_id) else { return };
                let prepared = match m.state {
                    TxnState::Ongoing => {
                        let Some(abort) = m.fenced_abort(now_ms()) else { return };
                        tracing::info!(transactional_id = %m.transactional_id, "aborting a timed-out transaction");
                        if service.persist(&abort).await.is_err() {
                            return;
                        }
                        abort
                    }
                    _ => m,
                };
                if write_markers(&shard, &prepared).await {
                    let _ = service.persist(&prepared.completed(now_ms())).await;
                }
            })
            .detach();
        }
    }

    /// This broker leads `__transaction_state` partition `index` in leader
    /// epoch `epoch`: a ticket to `load` it, unless it is loaded (or
    /// loading) for that leadership already; what an older one loaded is
    /// dropped.
    pub fn lead(&self, index: i32, epoch: i32) -> Option<LoadTicket> {
        let ticket = self.partitions.lead(index, epoch)?;
        self.unload(index);
        Some(ticket)
    }

    /// Another broker leads `__transaction_state` partition `index`: its
    /// ids are dropped and get NOT_COORDINATOR.
    pub fn resign(&self, index: i32) {
        if self.partitions.resign(index) {
            self.unload(index);
            tracing::info!(partition = index, "no longer the coordinator of the partition's transactional ids");
        }
    }

    fn unload(&self, index: i32) {
        self.txns.borrow_mut().retain(|id, _| transaction_partition_of(id) != index);
    }

    /// Replays a `__transaction_state` partition, then serves its ids.
    pub async fn load(&self, partition: Rc<Partition>, ticket: LoadTicket) {
        let index = partition.index;
        let mut replayed = 0usize;
        self.partitions
            .load(partition, ticket, |mut batches| {
                let mut txns = self.txns.borrow_mut();
                while !batches.is_empty() {
                    let set = match kafka_protocol::records::RecordBatchDecoder::decode(&mut batches) {
                        Ok(set) => set,
                        Err(e) => {
                            tracing::error!(partition = index, "undecodable __transaction_state batch: {e}");
                            break;
                        }
                    };
                    for record in set.records {
                        let Some(id) = record.key.and_then(log_records::decode_key) else { continue };
                        replayed += 1;
                        match record.value.and_then(|v| log_records::decode_value(id.clone(), v)) {
                            Some(m) => txns.insert(id, m),
                            None => txns.remove(&id),
                        };
                    }
                }
            })
            .await;
        if replayed > 0 {
            tracing::info!(partition = index, records = replayed, "restored transaction state");
        }
    }
}

/// Writes the transaction's marker to each of its partitions; false if one
/// could not be written (the state stays Prepare, to be retried), or if
/// this broker no longer coordinates the id.
async fn write_markers(shard: &Shard, m: &TxnMetadata) -> bool {
    let index = transaction_partition_of(&m.transactional_id);
    let Ok(coordinator_epoch) = shard.transactions.partitions.epoch(index) else { return false };
    let commit = m.state == TxnState::PrepareCommit;
    let marker = TxnMarker { producer_id: m.producer_id, epoch: m.epoch, commit, coordinator_epoch };
    let metadata = shard.metadata();
    // A deleted topic has nothing left to end.
    let partitions = m.partitions.iter().filter(|(topic, partition)| metadata.has_partition(topic, *partition));
    let failed = shard.write_txn_markers(partitions.cloned().collect(), marker).await;
    for ((topic, partition), why) in &failed {
        let id = &m.transactional_id;
        tracing::warn!(transactional_id = %id, topic = %topic, partition, "writing a transaction marker failed: {why}");
    }
    failed.is_empty()
}
