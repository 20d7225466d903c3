//! The shard's side of transactions: routing transactional-id requests to
//! the coordinating shard, persisting each state change in
//! `__transaction_state` before answering, writing the markers to every
//! partition of a transaction, and aborting transactions past their timeout.

use super::{IfRequesterLeaves, Shard};
use crate::error::{PartitionError, TopicError};
use crate::groups::OFFSETS_TOPIC;
use crate::metadata::NewTopic;
use crate::transactions::log_records;
use crate::transactions::{
    plan_init, transaction_partition_of, EndStep, TxnError, TxnMetadata, TxnState, TRANSACTION_STATE_PARTITIONS,
    TRANSACTION_STATE_TOPIC,
};
use bytes::Bytes;
use futures::future::{join_all, LocalBoxFuture};
use std::collections::{HashMap, HashSet};
use weir_engine::records::RecordsBuilder;
use weir_engine::{now_ms, Durability, PartitionLog};

const REPLAY_READ_BYTES: usize = 1 << 20;

/// The transactional ids this shard coordinates.
#[derive(Default)]
pub(crate) struct TxnCoordinator {
    txns: HashMap<String, TxnMetadata>,
    /// Ids with a state change in flight; other requests for them get
    /// CONCURRENT_TRANSACTIONS (clients retry it).
    busy: HashSet<String>,
}

/// Marks an id busy while it lives.
struct Busy<'a> {
    shard: &'a Shard,
    id: String,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.shard.transactions.borrow_mut().busy.remove(&self.id);
    }
}

impl Shard {
    /// Creates `__transaction_state` if it does not exist yet (on the first
    /// FindCoordinator for a transaction, as Kafka does).
    pub async fn ensure_transaction_topic(&self) -> Result<(), TopicError> {
        if self.metadata().topic(TRANSACTION_STATE_TOPIC).is_some() {
            return Ok(());
        }
        let topic = NewTopic {
            name: TRANSACTION_STATE_TOPIC.into(),
            partitions: TRANSACTION_STATE_PARTITIONS,
            replication_factor: -1,
        };
        match self.create_topics_unchecked(vec![topic]).await.pop() {
            Some(Ok(_)) | Some(Err(TopicError::AlreadyExists)) => Ok(()),
            Some(Err(e)) => Err(e),
            None => Err(TopicError::ControllerUnavailable),
        }
    }

    /// Runs `work` on the shard that coordinates `transactional_id` (it holds
    /// the id's `__transaction_state` partition); `unavailable()` answers when
    /// that shard cannot serve it (yet).
    async fn on_txn_coordinator<T, W>(
        &self,
        transactional_id: &str,
        if_requester_leaves: IfRequesterLeaves,
        unavailable: impl FnOnce() -> T,
        work: W,
    ) -> T
    where
        T: Send + 'static,
        W: for<'a> FnOnce(&'a Shard, &'a str) -> LocalBoxFuture<'a, T> + Send + 'static,
    {
        let partition = transaction_partition_of(transactional_id);
        let topic = TRANSACTION_STATE_TOPIC;
        self.on_coordinator(topic, partition, transactional_id, if_requester_leaves, unavailable, work).await
    }

    /// InitProducerId of a transactional producer: (producer id, epoch).
    /// `expected`: the producer id and epoch a v3+ client holds (KIP-360).
    pub async fn init_transactional_producer_id(
        &self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), TxnError> {
        self.on_txn_coordinator(transactional_id, IfRequesterLeaves::Finish, unavailable, move |shard, id| {
            Box::pin(shard.init_transactional_producer(id, timeout_ms, expected))
        })
        .await
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: one result per partition, in request order.
    pub async fn add_partitions_to_txn(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: Vec<(String, i32)>,
    ) -> Vec<Result<(), TxnError>> {
        let count = partitions.len();
        let unavailable = move || vec![unavailable(); count];
        self.on_txn_coordinator(transactional_id, IfRequesterLeaves::Finish, unavailable, move |shard, id| {
            Box::pin(shard.add_partitions(id, producer_id, epoch, partitions))
        })
        .await
    }

    /// EndTxn: commits or aborts the producer's transaction.
    pub async fn end_txn(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<(), TxnError> {
        self.on_txn_coordinator(transactional_id, IfRequesterLeaves::Finish, unavailable, move |shard, id| {
            Box::pin(shard.end_transaction(id, producer_id, epoch, commit))
        })
        .await
    }

    /// DescribeTransactions, for one id; None where the coordinator does not know it.
    pub async fn describe_transaction(&self, transactional_id: &str) -> Result<Option<TxnMetadata>, TxnError> {
        self.on_txn_coordinator(transactional_id, IfRequesterLeaves::Stop, unavailable, |shard, id| {
            Box::pin(async move { Ok(shard.transactions.borrow().txns.get(id).cloned()) })
        })
        .await
    }

    /// Every transaction of every shard.
    pub async fn list_transactions(&self) -> Vec<TxnMetadata> {
        let lists = join_all((0..self.shard_count).map(|owner| {
            self.on_shard(owner, IfRequesterLeaves::Stop, |shard| {
                Box::pin(async move {
                    let mut all: Vec<TxnMetadata> = shard.transactions.borrow().txns.values().cloned().collect();
                    all.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
                    all
                })
            })
        }))
        .await;
        lists.into_iter().flat_map(Result::unwrap_or_default).collect()
    }

    /// Asks the coordinator whether a transactional batch (or offsets) of
    /// this producer may go to the partition (KIP-890's verification).
    pub(crate) async fn verify_txn_partition(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), TxnError> {
        let topic = topic.to_string();
        self.on_txn_coordinator(transactional_id, IfRequesterLeaves::Stop, unavailable, move |shard, id| {
            Box::pin(async move {
                let txns = shard.transactions.borrow();
                let current = txns.txns.get(id).ok_or(TxnError::InvalidProducerIdMapping)?;
                current.verify_partition(producer_id, epoch, &topic, partition)
            })
        })
        .await
    }

    fn lock_txn(&self, id: &str) -> Result<Busy<'_>, TxnError> {
        if !self.transactions.borrow_mut().busy.insert(id.to_string()) {
            return Err(TxnError::ConcurrentTransactions);
        }
        Ok(Busy { shard: self, id: id.to_string() })
    }

    fn txn(&self, id: &str) -> Option<TxnMetadata> {
        self.transactions.borrow().txns.get(id).cloned()
    }

    async fn init_transactional_producer(
        &self,
        id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), TxnError> {
        let _busy = self.lock_txn(id)?;
        let current = self.txn(id);
        // A fresh producer id only when the id is new or its epochs run out.
        let fresh = if current.as_ref().is_none_or(|c| c.epoch >= i16::MAX - 2) {
            Some(self.allocate_producer_id().await.map_err(|_| TxnError::CoordinatorNotAvailable)?)
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
            self.persist_txn(&abort).await?;
            if !self.write_markers(&abort).await {
                return Err(TxnError::ConcurrentTransactions);
            }
        }
        self.persist_txn(&step.next).await?;
        Ok((step.next.producer_id, step.next.epoch))
    }

    async fn add_partitions(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: Vec<(String, i32)>,
    ) -> Vec<Result<(), TxnError>> {
        let all = |e: TxnError| vec![Err(e); partitions.len()];
        let metadata = self.metadata();
        if partitions.iter().any(|(t, p)| !metadata.has_partition(t, *p)) {
            return partitions
                .iter()
                .map(|(t, p)| {
                    Err(if metadata.has_partition(t, *p) {
                        TxnError::OperationNotAttempted
                    } else {
                        TxnError::UnknownTopicOrPartition
                    })
                })
                .collect();
        }
        let _busy = match self.lock_txn(id) {
            Ok(busy) => busy,
            Err(e) => return all(e),
        };
        let Some(current) = self.txn(id) else { return all(TxnError::InvalidProducerIdMapping) };
        let planned =
            current.check_producer(producer_id, epoch).and_then(|_| current.add_partitions(&partitions, now_ms()));
        match planned {
            Err(e) => all(e),
            Ok(None) => vec![Ok(()); partitions.len()],
            Ok(Some(next)) => match self.persist_txn(&next).await {
                Ok(()) => vec![Ok(()); partitions.len()],
                Err(e) => all(e),
            },
        }
    }

    async fn end_transaction(&self, id: &str, producer_id: i64, epoch: i16, commit: bool) -> Result<(), TxnError> {
        let _busy = self.lock_txn(id)?;
        let current = self.txn(id).ok_or(TxnError::InvalidProducerIdMapping)?;
        current.check_producer(producer_id, epoch)?;
        match current.end(commit, now_ms())? {
            EndStep::AlreadyDone => Ok(()),
            EndStep::Prepare(prepared) => {
                self.persist_txn(&prepared).await?;
                // Decided: from here the outcome survives a crash. Markers
                // that cannot be written now are retried by the tick.
                if self.write_markers(&prepared).await {
                    if let Err(e) = self.persist_txn(&prepared.completed(now_ms())).await {
                        tracing::warn!(transactional_id = id, "completing a transaction failed: {e}");
                    }
                }
                Ok(())
            }
        }
    }

    /// Writes the transaction's marker to each of its partitions; false if
    /// one could not be written (the state stays Prepare, to be retried).
    async fn write_markers(&self, m: &TxnMetadata) -> bool {
        let commit = m.state == TxnState::PrepareCommit;
        let metadata = self.metadata();
        let (producer_id, epoch) = (m.producer_id, m.epoch);
        let written = join_all(m.partitions.iter().map(|(topic, partition)| {
            let partition = *partition;
            let gone = !metadata.has_partition(topic, partition);
            async move {
                if gone {
                    return true; // a deleted topic has nothing left to end
                }
                let marker =
                    self.on_partition_owner(topic, partition, IfRequesterLeaves::Finish, move |shard, partition| {
                        Box::pin(async move {
                            partition.write_marker(producer_id, epoch, commit).await?;
                            // The group coordinator here holds the transaction's offsets.
                            if partition.topic == OFFSETS_TOPIC {
                                shard.groups.borrow_mut().end_txn(producer_id, commit, partition.index);
                            }
                            Ok(())
                        })
                    });
                match marker.await {
                    Ok(_) => true,
                    Err(e) => {
                        tracing::warn!(topic = %topic, partition, "writing a transaction marker failed: {e}");
                        false
                    }
                }
            }
        }))
        .await;
        written.into_iter().all(|ok| ok)
    }

    /// Appends the new state of a transactional id (acks=all), then adopts it.
    async fn persist_txn(&self, m: &TxnMetadata) -> Result<(), TxnError> {
        self.append_txn_record(&m.transactional_id, Some(log_records::value(m))).await?;
        self.transactions.borrow_mut().txns.insert(m.transactional_id.clone(), m.clone());
        Ok(())
    }

    /// Appends a record of a transactional id to its `__transaction_state`
    /// partition (acks=all); `None` is a tombstone.
    async fn append_txn_record(&self, id: &str, value: Option<Bytes>) -> Result<(), TxnError> {
        let log = self
            .partition(TRANSACTION_STATE_TOPIC, transaction_partition_of(id))
            .map_err(|_| TxnError::CoordinatorNotAvailable)?
            .log
            .clone();
        let batch = RecordsBuilder::new().push(Some(&log_records::key(id)), value.as_deref(), &[], now_ms()).finish();
        log.append(batch, Durability::Synced).await.map_err(|e| {
            tracing::warn!(transactional_id = %id, "persisting transaction state failed: {e}");
            TxnError::CoordinatorNotAvailable
        })?;
        Ok(())
    }

    /// Forgets the ids with no transaction in progress and no change for
    /// `transactional_id_expiration_ms`, each with a tombstone so that a
    /// restart does not bring it back.
    pub(crate) async fn expire_transactional_ids(&self) {
        let expiration_ms = i64::try_from(self.config.transactional_id_expiration_ms).unwrap_or(i64::MAX);
        let due: Vec<String> = {
            let now = now_ms();
            let txns = self.transactions.borrow();
            txns.txns.values().filter(|m| m.expired(now, expiration_ms)).map(|m| m.transactional_id.clone()).collect()
        };
        for id in due {
            let Ok(_busy) = self.lock_txn(&id) else { continue };
            // A request may have changed it since it was listed.
            if !self.txn(&id).is_some_and(|m| m.expired(now_ms(), expiration_ms)) {
                continue;
            }
            if self.append_txn_record(&id, None).await.is_ok() {
                self.transactions.borrow_mut().txns.remove(&id);
                tracing::info!(transactional_id = %id, "expired an idle transactional id");
            }
        }
    }

    /// Finishes transactions left in a Prepare state (after a restart or a
    /// failed marker) and aborts, with a bumped epoch, those past their
    /// timeout; called periodically.
    pub fn tick_transactions(self: &std::rc::Rc<Self>) {
        let now = now_ms();
        let due: Vec<TxnMetadata> = {
            let txns = self.transactions.borrow();
            txns.txns
                .values()
                .filter(|m| !txns.busy.contains(&m.transactional_id))
                .filter(|m| matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort) || m.timed_out(now))
                .cloned()
                .collect()
        };
        for m in due {
            let shard = self.clone();
            weir_runtime::spawn_local(async move {
                let Ok(_busy) = shard.lock_txn(&m.transactional_id) else { return };
                let prepared = match m.state {
                    TxnState::Ongoing => {
                        let Some(abort) = m.fenced_abort(now_ms()) else { return };
                        tracing::info!(transactional_id = %m.transactional_id, "aborting a timed-out transaction");
                        if shard.persist_txn(&abort).await.is_err() {
                            return;
                        }
                        abort
                    }
                    _ => m,
                };
                if shard.write_markers(&prepared).await {
                    let _ = shard.persist_txn(&prepared.completed(now_ms())).await;
                }
            })
            .detach();
        }
    }

    /// Replays a `__transaction_state` partition into the coordinator (at start).
    pub(crate) async fn replay_transaction_partition(&self, partition: i32, log: &PartitionLog) {
        let mut offset = log.log_start_offset();
        let end = log.high_watermark();
        let mut replayed = 0usize;
        while offset < end {
            let mut batches = match log.read(offset, REPLAY_READ_BYTES).await {
                Ok(b) if !b.is_empty() => b,
                Ok(_) => break,
                Err(e) => {
                    tracing::error!(partition, offset, "replaying __transaction_state failed: {e}");
                    return;
                }
            };
            offset = match super::groups::offset_after(&batches) {
                Some(next) => next,
                None => break,
            };
            let mut txns = self.transactions.borrow_mut();
            while !batches.is_empty() {
                let set = match kafka_protocol::records::RecordBatchDecoder::decode(&mut batches) {
                    Ok(set) => set,
                    Err(e) => {
                        tracing::error!(partition, "undecodable __transaction_state batch: {e}");
                        break;
                    }
                };
                for record in set.records {
                    let Some(id) = record.key.and_then(log_records::decode_key) else { continue };
                    replayed += 1;
                    match record.value.and_then(|v| log_records::decode_value(id.clone(), v)) {
                        Some(m) => txns.txns.insert(id, m),
                        None => txns.txns.remove(&id),
                    };
                }
            }
        }
        if replayed > 0 {
            tracing::info!(partition, records = replayed, "restored transaction state");
        }
    }

    /// DescribeProducers: the producers of one partition.
    pub async fn describe_producers(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Vec<crate::messages::ProducerDescription>, PartitionError> {
        self.on_partition_owner(topic, partition, IfRequesterLeaves::Stop, move |_, partition| {
            Box::pin(async move { partition.describe_producers().await })
        })
        .await
    }
}

/// What a transaction request gets when its coordinator cannot serve it (yet).
fn unavailable<T>() -> Result<T, TxnError> {
    Err(TxnError::CoordinatorNotAvailable)
}
