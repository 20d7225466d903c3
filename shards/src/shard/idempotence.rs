//! The shard's side of idempotent and transactional producers: producer ids
//! from the controller, the sequence checks around an append, and the
//! partition's producer state and transactions, loaded on first use from its
//! newest snapshot plus the log after it, snapshotted again at clean
//! shutdown and as the log grows, and expired when idle.

use super::partition::Partition;
use super::{Placed, Shard};
use crate::error::PartitionError;
use crate::producers::{producer_batch, ProducerBatch, ProducerStates, Verdict};
use crate::transactions::markers::marker_outcome;
use crate::transactions::TxnError;
use futures::channel::oneshot;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use weir_engine::batch::{RawHeader, ValidatedRecords};
use weir_engine::{now_ms, AppendInfo, Durability, EngineError, PartitionLog, ReadLimit};

const REPLAY_READ_BYTES: usize = 1 << 20;
/// Verifications of a transactional batch that a marker overtook, before it is refused.
const VERIFY_ATTEMPTS: usize = 8;
/// A partition's producer state is snapshotted by the maintenance pass once
/// its log rolled a segment (as Kafka does) or grew this much since the last
/// snapshot: a restart then replays at most about this much (a fraction of a
/// second), and a busy partition writes a snapshot (tens of bytes per
/// producer) only every 64 MiB.
const SNAPSHOT_EVERY_BYTES: u64 = 64 << 20;

/// A partition's producer state and what the shard keeps around it.
#[derive(Default)]
pub(crate) struct PartitionProducers {
    pub state: RefCell<ProducerStates>,
    /// Producer batches and markers between their check and their state
    /// update. The state describes the log below its high watermark exactly
    /// only when none is: snapshots are taken then.
    writing: Cell<u32>,
    /// Log size when the last snapshot was taken (lowered when retention shrinks the log).
    size_at_snapshot: Cell<u64>,
    /// The log's segment rolls (since it opened) when the last snapshot was taken.
    rolls_at_snapshot: Cell<u64>,
    /// read_committed long polls waiting for the last stable offset to move.
    stable_waiters: RefCell<Vec<oneshot::Sender<()>>>,
}

/// Counts a caller as waiting for a partition's producer state while it lives.
struct Waited<'a>(&'a Cell<u32>);

impl Drop for Waited<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// Counts a producer batch or marker as being written while it lives.
pub(super) struct Writing(Rc<PartitionProducers>);

impl Writing {
    pub(super) fn new(producers: &Rc<PartitionProducers>) -> Writing {
        producers.writing.set(producers.writing.get() + 1);
        Writing(producers.clone())
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        self.0.writing.set(self.0.writing.get() - 1);
    }
}

impl PartitionProducers {
    /// Resolves once `stable_moved` is called, for a waiter registered now.
    pub(super) fn stable_moved_later(&self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut waiters = self.stable_waiters.borrow_mut();
        // Waiters that timed out dropped their receivers; this bounds the
        // list by the long polls alive.
        waiters.retain(|w| !w.is_canceled());
        waiters.push(tx);
        rx
    }

    /// The last stable offset may have moved: wakes the read_committed long polls.
    pub(super) fn stable_moved(&self) {
        for waiter in self.stable_waiters.borrow_mut().drain(..) {
            let _ = waiter.send(());
        }
    }
}

impl Shard {
    /// Appends a batch of an idempotent producer unless it is a retry of one
    /// already stored, whose offsets are returned instead. The first
    /// transactional batch of a producer here is verified with its
    /// transaction coordinator and opens the transaction in this partition.
    pub(super) async fn append_idempotent(
        &self,
        partition: &Partition,
        batch: ProducerBatch,
        records: ValidatedRecords,
        durability: Durability,
        transactional_id: Option<&str>,
        placed: Placed,
    ) -> Result<AppendInfo, PartitionError> {
        if records.batches() != 1 || batch.control {
            return Err(PartitionError::InvalidRecord);
        }
        let producers = partition.producers().await?;
        let states = &producers.state;
        if batch.transactional && !states.borrow().txns.is_open(batch.producer_id, batch.epoch) {
            let transactional_id = transactional_id.ok_or(PartitionError::Txn(TxnError::InvalidTxnState))?;
            // A marker written while the coordinator was asked may have ended
            // the transaction it allowed: then ask again, or the batch would
            // open a transaction nobody ends.
            let mut verified = false;
            for _ in 0..VERIFY_ATTEMPTS {
                let markers = states.borrow().txns.markers_written();
                let (topic, index) = (&partition.topic, partition.index);
                self.verify_txn_partition(transactional_id, batch.producer_id, batch.epoch, topic, index)
                    .await
                    .map_err(PartitionError::Txn)?;
                if states.borrow().txns.markers_written() == markers {
                    verified = true;
                    break;
                }
            }
            if !verified {
                return Err(PartitionError::Txn(TxnError::ConcurrentTransactions));
                // retriable
            }
        }
        // No await since the verification: no marker came in between.
        partition.append_producer_batch(&producers, &batch, records, durability, placed).await
    }

    /// The partitions whose producer state is loaded, with it.
    fn loaded_producers(&self) -> Vec<(Rc<Partition>, Rc<PartitionProducers>)> {
        let partitions = self.partitions.borrow().all_open();
        partitions.into_iter().filter_map(|p| Some((p.clone(), p.loaded_producers()?))).collect()
    }

    /// Snapshots the producer state of the loaded partitions whose log
    /// rolled a segment or grew by `SNAPSHOT_EVERY_BYTES` since their last
    /// snapshot (the maintenance pass), or of all of them (`always`, at
    /// clean shutdown).
    pub(crate) async fn snapshot_producers(&self, always: bool) {
        for (partition, producers) in self.loaded_producers() {
            partition.snapshot_producers(&producers, always).await;
        }
    }

    /// Forgets producers idle longer than `producer_id_expiration_ms`
    /// (Kafka's check every `producer_id_expiration_check_interval_ms`).
    pub(crate) fn expire_producers(&self) {
        let expiration_ms = i64::try_from(self.config.producer_id_expiration_ms).unwrap_or(i64::MAX);
        let now = now_ms();
        for (partition, producers) in self.loaded_producers() {
            partition.expire_producers(&producers, now, expiration_ms);
        }
    }
}

impl Partition {
    /// The producers' state, loaded on first use.
    pub(super) async fn producers(&self) -> Result<Rc<PartitionProducers>, PartitionError> {
        let waiting = &self.waiting_for_producers;
        if waiting.get() == 0 {
            if let Some(states) = self.loaded_producers() {
                return Ok(states);
            }
        }
        // Behind those already waiting, in the semaphore's order: a batch
        // that overtook an earlier one of its producer (pipelined on one
        // connection) would be refused as out of order.
        waiting.set(waiting.get() + 1);
        let _waited = Waited(waiting);
        let _one_load_at_a_time = self.loading.one_at_a_time.acquire_permit(1).await.expect("never closed");
        if let Some(states) = self.loaded_producers() {
            return Ok(states);
        }
        let log = &self.log;
        let (state, snapshot_offset, replayed) = load_producers(log).await?;
        let (topic, index) = (&self.topic, self.index);
        tracing::debug!(topic, partition = index, snapshot_offset, replayed_bytes = replayed, "loaded producer state");
        self.loading.metrics.add_producer_state_replayed_bytes(replayed);
        let producers = Rc::new(PartitionProducers { state: RefCell::new(state), ..Default::default() });
        // As if snapshotted where the replay began, so a long replay is soon spared to the next start.
        producers.size_at_snapshot.set(log.size_bytes().saturating_sub(replayed));
        producers.rolls_at_snapshot.set(log.stats().rolls);
        *self.producers.borrow_mut() = Some(producers.clone());
        Ok(producers)
    }

    /// Checks a producer batch against its producer's state and appends it,
    /// or answers a retry with the offsets it got the first time.
    async fn append_producer_batch(
        &self,
        producers: &Rc<PartitionProducers>,
        batch: &ProducerBatch,
        records: ValidatedRecords,
        durability: Durability,
        placed: Placed,
    ) -> Result<AppendInfo, PartitionError> {
        let (log, states) = (&self.log, &producers.state);
        let _writing = Writing::new(producers);
        let checked = states.borrow_mut().check(batch);
        drop(placed);
        let verdict = checked.map_err(|e| {
            let remembered = states.borrow().remembered(batch.producer_id);
            tracing::info!(topic = %self.topic, partition = self.index, producer_id = batch.producer_id,
                epoch = batch.epoch, first_seq = batch.first_seq, last_seq = batch.last_seq, %remembered,
                "refused a producer batch: {e:?}");
            PartitionError::Producer(e)
        })?;
        let records_in_batch = i64::from(batch.last_seq.wrapping_sub(batch.first_seq)) + 1;
        match verdict {
            Verdict::Duplicate(Some(base_offset)) => {
                Ok(AppendInfo { base_offset, last_offset: base_offset + records_in_batch - 1, log_append_time: -1 })
            }
            Verdict::Duplicate(None) => Err(PartitionError::DuplicateInFlight),
            Verdict::Append => {
                // Opened before the append, at the offset it will get (no
                // await in between), so no reader sees the batch before the
                // last stable offset holds it back.
                let opened = batch.transactional
                    && states.borrow_mut().txns.begin(batch.producer_id, batch.epoch, log.next_offset());
                match log.append_validated(records, durability).await {
                    Ok(info) => {
                        states.borrow_mut().complete(batch, info.base_offset);
                        Ok(info)
                    }
                    Err(e) => {
                        let mut states = states.borrow_mut();
                        states.abort(batch);
                        if opened {
                            states.txns.forget(batch.producer_id);
                            drop(states);
                            producers.stable_moved();
                        }
                        Err(e.into())
                    }
                }
            }
        }
    }

    /// Snapshots the producers' state if the log rolled a segment or grew by
    /// `SNAPSHOT_EVERY_BYTES` since the last snapshot, or `always`.
    async fn snapshot_producers(&self, producers: &PartitionProducers, always: bool) {
        let (topic, index, log) = (&self.topic, self.index, &self.log);
        let (size, rolls) = (log.size_bytes(), log.stats().rolls);
        let base = producers.size_at_snapshot.get().min(size);
        producers.size_at_snapshot.set(base);
        let rolled = rolls != producers.rolls_at_snapshot.get();
        if !always && !rolled && size - base < SNAPSHOT_EVERY_BYTES {
            return;
        }
        // Taken with no await between reading the state and the log end,
        // and only when nothing is between check and update.
        let offset = log.log_end_offset();
        let encoded = (producers.writing.get() == 0)
            .then(|| {
                let mut state = producers.state.borrow_mut();
                state.txns.prune(log.log_start_offset());
                state.encode_snapshot()
            })
            .flatten();
        let Some(encoded) = encoded else {
            tracing::debug!(topic = %topic, partition = index, "producer batches in flight; snapshot left for later");
            return;
        };
        match log.write_producer_snapshot(offset, &encoded).await {
            Ok(()) => {
                producers.size_at_snapshot.set(size);
                producers.rolls_at_snapshot.set(rolls);
            }
            Err(EngineError::Closed) => {}
            Err(e) => {
                tracing::warn!(topic = %topic, partition = index, "writing a producer state snapshot failed: {e}")
            }
        }
    }

    fn expire_producers(&self, producers: &PartitionProducers, now: i64, expiration_ms: i64) {
        let expired = producers.state.borrow_mut().expire(now, expiration_ms);
        if expired > 0 {
            tracing::info!(topic = %self.topic, partition = self.index, producers = expired, "expired idle producer ids");
        }
    }
}

/// Producer state from the newest snapshot (if any) and the log after it:
/// (state, snapshot offset or -1, bytes of log replayed).
async fn load_producers(log: &PartitionLog) -> Result<(ProducerStates, i64, u64), PartitionError> {
    let snapshot = log.read_producer_snapshot().await?.and_then(|(offset, bytes)| {
        let state = ProducerStates::decode_snapshot(&bytes);
        if state.is_none() {
            tracing::warn!(offset, "ignoring a producer state snapshot that does not decode");
        }
        Some((state?, offset))
    });
    let (states, from) = snapshot.unwrap_or((ProducerStates::default(), -1));
    let offset = from.max(log.log_start_offset());
    let (states, replayed) = replay_producers(log, states, offset).await?;
    Ok((states, from, replayed))
}

/// Adds the producer batches and markers of the log from `offset` (a batch
/// boundary) to `states`; returns them with the bytes read.
async fn replay_producers(
    log: &PartitionLog,
    mut states: ProducerStates,
    mut offset: i64,
) -> Result<(ProducerStates, u64), PartitionError> {
    let end = log.log_end_offset();
    let mut replayed = 0u64;
    while offset < end {
        let batches = log.read_to(offset, REPLAY_READ_BYTES, ReadLimit::LogEnd).await?;
        if batches.is_empty() {
            break;
        }
        replayed += batches.len() as u64;
        let mut pos = 0;
        while let Some(header) = batches.get(pos..).and_then(RawHeader::of) {
            let bytes = &batches[pos..(pos + header.total_len()).min(batches.len())];
            match producer_batch(header) {
                Some(b) if b.control => {
                    if let Some((commit, coordinator_epoch)) = marker_outcome(bytes) {
                        states.apply_marker(b.producer_id, b.epoch, coordinator_epoch, b.max_timestamp);
                        states.txns.end(b.producer_id, commit, header.base_offset());
                    }
                }
                Some(b) => {
                    if b.transactional {
                        states.txns.begin(b.producer_id, b.epoch, header.base_offset());
                    }
                    states.replay(&b, header.base_offset());
                }
                None => {}
            }
            offset = header.last_offset() + 1;
            pos += header.total_len();
        }
    }
    Ok((states, replayed))
}
