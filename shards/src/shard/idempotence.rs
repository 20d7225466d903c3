//! The shard's side of idempotent producers: producer ids from the
//! controller, and the sequence checks around an append.

use super::Shard;
use crate::error::{PartitionError, TopicError};
use crate::messages::ShardMessage;
use crate::ownership::CONTROLLER_SHARD;
use crate::producers::{producer_batch, ProducerBatch, ProducerStates, Verdict};
use bytes::Bytes;
use futures::channel::oneshot;
use std::cell::RefCell;
use std::rc::Rc;
use weir_engine::{AppendInfo, Durability, PartitionLog};

/// How far back from the end the log is read to rebuild producer state. A
/// producer whose last batches are older gets UNKNOWN_PRODUCER_ID for a
/// non-zero sequence, and clients then bump their epoch (KIP-360).
const REPLAY_OFFSETS: i64 = 20_000;
const REPLAY_READ_BYTES: usize = 1 << 20;

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
    /// already stored, whose offsets are returned instead.
    pub(super) async fn append_idempotent(
        &self,
        topic: &str,
        partition: i32,
        log: &Rc<PartitionLog>,
        batch: ProducerBatch,
        records: Bytes,
        durability: Durability,
    ) -> Result<AppendInfo, PartitionError> {
        if batch.transactional {
            return Err(PartitionError::Unsupported("transactions are not supported yet"));
        }
        let single = weir_engine::batch::parse_header(&records).is_some_and(|h| h.total_len() == records.len());
        if !single {
            return Err(PartitionError::InvalidRecord);
        }
        let states = self.producer_states(topic, partition, log).await?;
        let verdict = states.borrow_mut().check(&batch).map_err(PartitionError::Producer)?;
        let records_in_batch = i64::from(batch.last_seq.wrapping_sub(batch.first_seq)) + 1;
        match verdict {
            Verdict::Duplicate(Some(base_offset)) => {
                Ok(AppendInfo { base_offset, last_offset: base_offset + records_in_batch - 1, log_append_time: -1 })
            }
            Verdict::Duplicate(None) => Err(PartitionError::DuplicateInFlight),
            Verdict::Append => match log.append(records, durability).await {
                Ok(info) => {
                    states.borrow_mut().complete(&batch, info.base_offset);
                    Ok(info)
                }
                Err(e) => {
                    states.borrow_mut().abort(&batch);
                    Err(e.into())
                }
            },
        }
    }

    /// The partition's producer state, rebuilt from the log's tail on first use.
    async fn producer_states(
        &self,
        topic: &str,
        partition: i32,
        log: &PartitionLog,
    ) -> Result<Rc<RefCell<ProducerStates>>, PartitionError> {
        let key = (topic.to_string(), partition);
        if let Some(states) = self.producer_states.borrow().get(&key) {
            return Ok(states.clone());
        }
        let _one_load_at_a_time = self.producer_loading.acquire_permit(1).await.expect("never closed");
        if let Some(states) = self.producer_states.borrow().get(&key) {
            return Ok(states.clone());
        }
        let states = Rc::new(RefCell::new(replay_producers(log).await?));
        self.producer_states.borrow_mut().insert(key, states.clone());
        Ok(states)
    }
}

/// Producer state from the last `REPLAY_OFFSETS` offsets of the log.
async fn replay_producers(log: &PartitionLog) -> Result<ProducerStates, PartitionError> {
    let mut states = ProducerStates::default();
    let end = log.high_watermark();
    let mut offset = (end - REPLAY_OFFSETS).max(log.log_start_offset());
    while offset < end {
        let batches = log.read(offset, REPLAY_READ_BYTES).await?;
        if batches.is_empty() {
            break;
        }
        let mut pos = 0;
        while let Some(header) = batches.get(pos..).and_then(weir_engine::batch::parse_header) {
            let bytes = &batches[pos..(pos + header.total_len()).min(batches.len())];
            if let Some(b) = producer_batch(bytes).filter(|b| !b.transactional) {
                states.replay(&b, header.base_offset);
            }
            offset = header.last_offset() + 1;
            pos += header.total_len();
        }
    }
    Ok(states)
}
