//! The shard's side of idempotent and transactional producers: producer ids
//! from the controller, the sequence checks around an append, and the
//! partition's transactions (rebuilt from the log on first use).

use super::Shard;
use crate::error::{PartitionError, TopicError};
use crate::messages::ShardMessage;
use crate::ownership::CONTROLLER_SHARD;
use crate::producers::{producer_batch, ProducerBatch, ProducerStates, Verdict};
use crate::transactions::markers::marker_commits;
use crate::transactions::TxnError;
use bytes::Bytes;
use futures::channel::oneshot;
use std::cell::RefCell;
use std::rc::Rc;
use weir_engine::{AppendInfo, Durability, PartitionLog};

const REPLAY_READ_BYTES: usize = 1 << 20;
/// Verifications of a transactional batch that a marker overtook, before it is refused.
const VERIFY_ATTEMPTS: usize = 8;

impl Shard {
    /// A producer id never handed out before (persisted by the controller).
    pub async fn allocate_producer_id(&self) -> Result<i64, TopicError> {
        if self.id == CONTROLLER_SHARD {
            return self.controller_store().borrow_mut().allocate_producer_id();
        }
        let (reply, answer) = oneshot::channel();
        if self.peers.send_to(CONTROLLER_SHARD, ShardMessage::AllocateProducerId { reply }).await.is_err() {
            return Err(TopicError::ControllerUnavailable);
        }
        answer.await.unwrap_or(Err(TopicError::ControllerUnavailable))
    }

    /// Appends a batch of an idempotent producer unless it is a retry of one
    /// already stored, whose offsets are returned instead. The first
    /// transactional batch of a producer here is verified with its
    /// transaction coordinator and opens the transaction in this partition.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn append_idempotent(
        &self,
        topic: &str,
        partition: i32,
        log: &Rc<PartitionLog>,
        batch: ProducerBatch,
        records: Bytes,
        durability: Durability,
        transactional_id: Option<&str>,
    ) -> Result<AppendInfo, PartitionError> {
        let single = weir_engine::batch::parse_header(&records).is_some_and(|h| h.total_len() == records.len());
        if !single || batch.control {
            return Err(PartitionError::InvalidRecord);
        }
        let states = self.producer_states(topic, partition, log).await?;
        if batch.transactional && !states.borrow().txns.is_open(batch.producer_id, batch.epoch) {
            let transactional_id = transactional_id.ok_or(PartitionError::Txn(TxnError::InvalidTxnState))?;
            // A marker written while the coordinator was asked may have ended
            // the transaction it allowed: then ask again, or the batch would
            // open a transaction nobody ends.
            let mut verified = false;
            for _ in 0..VERIFY_ATTEMPTS {
                let markers = states.borrow().txns.markers_written();
                self.verify_txn_partition(transactional_id, batch.producer_id, batch.epoch, topic, partition)
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
        let verdict = states.borrow_mut().check(&batch).map_err(PartitionError::Producer)?;
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
                    && states.borrow_mut().txns.begin(batch.producer_id, batch.epoch, log.log_end_offset());
                match log.append(records, durability).await {
                    Ok(info) => {
                        states.borrow_mut().complete(&batch, info.base_offset);
                        Ok(info)
                    }
                    Err(e) => {
                        let mut states = states.borrow_mut();
                        states.abort(&batch);
                        if opened {
                            states.txns.forget(batch.producer_id);
                        }
                        Err(e.into())
                    }
                }
            }
        }
    }

    /// The partition's producer state, rebuilt from the log on first use.
    pub(super) async fn producer_states(
        &self,
        topic: &str,
        partition: i32,
        log: &PartitionLog,
    ) -> Result<Rc<RefCell<ProducerStates>>, PartitionError> {
        let loaded = |shard: &Shard| shard.producer_states.borrow().get(topic).and_then(|p| p.get(&partition)).cloned();
        if let Some(states) = loaded(self) {
            return Ok(states);
        }
        let _one_load_at_a_time = self.producer_loading.acquire_permit(1).await.expect("never closed");
        if let Some(states) = loaded(self) {
            return Ok(states);
        }
        let states = Rc::new(RefCell::new(replay_producers(log).await?));
        self.producer_states.borrow_mut().entry(topic.to_string()).or_default().insert(partition, states.clone());
        Ok(states)
    }
}

/// Producer state and transactions from the whole log. (Kafka keeps
/// snapshots and a per-segment index of aborted transactions instead; here a
/// partition's first use after a start reads it once.)
async fn replay_producers(log: &PartitionLog) -> Result<ProducerStates, PartitionError> {
    let mut states = ProducerStates::default();
    let end = log.high_watermark();
    let mut offset = log.log_start_offset();
    while offset < end {
        let batches = log.read(offset, REPLAY_READ_BYTES).await?;
        if batches.is_empty() {
            break;
        }
        let mut pos = 0;
        while let Some(header) = batches.get(pos..).and_then(weir_engine::batch::parse_header) {
            let bytes = &batches[pos..(pos + header.total_len()).min(batches.len())];
            match producer_batch(bytes) {
                Some(b) if b.control => {
                    if let Some(commit) = marker_commits(bytes) {
                        states.apply_marker(b.producer_id, b.epoch);
                        states.txns.end(b.producer_id, commit, header.base_offset);
                    }
                }
                Some(b) => {
                    if b.transactional {
                        states.txns.begin(b.producer_id, b.epoch, header.base_offset);
                    }
                    states.replay(&b, header.base_offset);
                }
                None => {}
            }
            offset = header.last_offset() + 1;
            pos += header.total_len();
        }
    }
    Ok(states)
}
