//! Idempotent producers (KIP-98 without transactions): per partition, the
//! last five batches of every producer id, so a retried batch is answered
//! with its original offset instead of being written twice, and a gap or a
//! stale epoch is refused. A plain state machine; the shard feeds it.

use std::collections::{HashMap, VecDeque};

/// Kafka keeps the metadata of this many batches per producer and partition:
/// the most a producer may have in flight with idempotence on.
const BATCHES_PER_PRODUCER: usize = 5;

/// Header bytes of RecordBatch v2 this module reads.
const ATTRIBUTES: std::ops::Range<usize> = 21..23;
const LAST_OFFSET_DELTA: std::ops::Range<usize> = 23..27;
const PRODUCER_ID: std::ops::Range<usize> = 43..51;
const PRODUCER_EPOCH: std::ops::Range<usize> = 51..53;
const BASE_SEQUENCE: std::ops::Range<usize> = 53..57;
const HEADER_LEN: usize = 61;
const ATTR_TRANSACTIONAL: i16 = 0x10;

/// The producer fields of one batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_seq: i32,
    pub last_seq: i32,
    pub transactional: bool,
}

/// Reads the producer fields of a (validated) batch; `None` without a producer id.
pub fn producer_batch(batch: &[u8]) -> Option<ProducerBatch> {
    if batch.len() < HEADER_LEN {
        return None;
    }
    let be = |r: std::ops::Range<usize>| &batch[r];
    let producer_id = i64::from_be_bytes(be(PRODUCER_ID).try_into().ok()?);
    if producer_id < 0 {
        return None;
    }
    let first_seq = i32::from_be_bytes(be(BASE_SEQUENCE).try_into().ok()?);
    let delta = i32::from_be_bytes(be(LAST_OFFSET_DELTA).try_into().ok()?);
    Some(ProducerBatch {
        producer_id,
        epoch: i16::from_be_bytes(be(PRODUCER_EPOCH).try_into().ok()?),
        first_seq,
        last_seq: next_seq(first_seq, delta.max(0)),
        transactional: i16::from_be_bytes(be(ATTRIBUTES).try_into().ok()?) & ATTR_TRANSACTIONAL != 0,
    })
}

/// `seq + n`, wrapping past i32::MAX to 0 as Kafka's sequences do.
fn next_seq(seq: i32, n: i32) -> i32 {
    ((i64::from(seq) + i64::from(n)) % (i64::from(i32::MAX) + 1)) as i32
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProducerError {
    /// OUT_OF_ORDER_SEQUENCE_NUMBER: a gap, or a new epoch not starting at 0.
    OutOfOrderSequence,
    /// INVALID_PRODUCER_EPOCH: an epoch older than the one seen.
    InvalidProducerEpoch,
    /// UNKNOWN_PRODUCER_ID: no state for this producer and it does not start at 0.
    UnknownProducerId,
}

/// What to do with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// New: append it (its slot is reserved; `complete` or `abort` it).
    Append,
    /// Already written at this base offset (or still being written: `None`).
    Duplicate(Option<i64>),
}

#[derive(Clone, Copy, Debug)]
struct BatchSeen {
    first_seq: i32,
    last_seq: i32,
    base_offset: Option<i64>,
}

struct Producer {
    epoch: i16,
    batches: VecDeque<BatchSeen>,
}

#[derive(Default)]
pub struct ProducerStates {
    producers: HashMap<i64, Producer>,
}

impl ProducerStates {
    /// Checks a batch against what the producer sent before and reserves its
    /// place if it is the next one.
    pub fn check(&mut self, b: &ProducerBatch) -> Result<Verdict, ProducerError> {
        let seen = BatchSeen { first_seq: b.first_seq, last_seq: b.last_seq, base_offset: None };
        let Some(p) = self.producers.get_mut(&b.producer_id) else {
            if b.first_seq != 0 {
                return Err(ProducerError::UnknownProducerId);
            }
            self.producers.insert(b.producer_id, Producer { epoch: b.epoch, batches: VecDeque::from([seen]) });
            return Ok(Verdict::Append);
        };
        if b.epoch < p.epoch {
            return Err(ProducerError::InvalidProducerEpoch);
        }
        if b.epoch > p.epoch {
            if b.first_seq != 0 {
                return Err(ProducerError::OutOfOrderSequence);
            }
            *p = Producer { epoch: b.epoch, batches: VecDeque::from([seen]) };
            return Ok(Verdict::Append);
        }
        if let Some(dup) = p.batches.iter().find(|s| s.first_seq == b.first_seq && s.last_seq == b.last_seq) {
            return Ok(Verdict::Duplicate(dup.base_offset));
        }
        let expected = p.batches.back().map_or(0, |last| next_seq(last.last_seq, 1));
        if b.first_seq != expected {
            return Err(ProducerError::OutOfOrderSequence);
        }
        p.batches.push_back(seen);
        if p.batches.len() > BATCHES_PER_PRODUCER {
            p.batches.pop_front();
        }
        Ok(Verdict::Append)
    }

    /// The reserved batch was written at `base_offset`.
    pub fn complete(&mut self, b: &ProducerBatch, base_offset: i64) {
        if let Some(s) = self.slot(b) {
            s.base_offset = Some(base_offset);
        }
    }

    /// The reserved batch was not written: forget it and everything the
    /// producer reserved after it (those appends fail with it).
    pub fn abort(&mut self, b: &ProducerBatch) {
        if let Some(p) = self.producers.get_mut(&b.producer_id) {
            if let Some(i) = p.batches.iter().position(|s| s.first_seq == b.first_seq && s.last_seq == b.last_seq) {
                p.batches.truncate(i);
            }
            if p.batches.is_empty() {
                self.producers.remove(&b.producer_id);
            }
        }
    }

    /// Records a batch found in the log (rebuilding the state at start).
    pub fn replay(&mut self, b: &ProducerBatch, base_offset: i64) {
        let p = self.producers.entry(b.producer_id).or_insert(Producer { epoch: b.epoch, batches: VecDeque::new() });
        if b.epoch > p.epoch {
            *p = Producer { epoch: b.epoch, batches: VecDeque::new() };
        } else if b.epoch < p.epoch {
            return;
        }
        p.batches.push_back(BatchSeen { first_seq: b.first_seq, last_seq: b.last_seq, base_offset: Some(base_offset) });
        if p.batches.len() > BATCHES_PER_PRODUCER {
            p.batches.pop_front();
        }
    }

    fn slot(&mut self, b: &ProducerBatch) -> Option<&mut BatchSeen> {
        let p = self.producers.get_mut(&b.producer_id)?;
        p.batches.iter_mut().find(|s| s.first_seq == b.first_seq && s.last_seq == b.last_seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(epoch: i16, first_seq: i32, records: i32) -> ProducerBatch {
        ProducerBatch {
            producer_id: 7,
            epoch,
            first_seq,
            last_seq: next_seq(first_seq, records - 1),
            transactional: false,
        }
    }

    #[test]
    fn in_order_batches_append_and_retries_are_duplicates() {
        let mut s = ProducerStates::default();
        let (a, b) = (batch(0, 0, 10), batch(0, 10, 5));
        assert_eq!(s.check(&a), Ok(Verdict::Append));
        // Pipelined: the next batch is checked before the first is written.
        assert_eq!(s.check(&b), Ok(Verdict::Append));
        assert_eq!(s.check(&a), Ok(Verdict::Duplicate(None)), "still being written");
        s.complete(&a, 100);
        s.complete(&b, 110);
        assert_eq!(s.check(&a), Ok(Verdict::Duplicate(Some(100))));
        assert_eq!(s.check(&b), Ok(Verdict::Duplicate(Some(110))));
        assert_eq!(s.check(&batch(0, 16, 1)), Err(ProducerError::OutOfOrderSequence), "a gap");
        assert_eq!(s.check(&batch(0, 15, 1)), Ok(Verdict::Append));
    }

    #[test]
    fn epochs_fence_and_reset() {
        let mut s = ProducerStates::default();
        assert_eq!(s.check(&batch(3, 0, 1)), Ok(Verdict::Append));
        assert_eq!(s.check(&batch(2, 1, 1)), Err(ProducerError::InvalidProducerEpoch));
        assert_eq!(s.check(&batch(4, 5, 1)), Err(ProducerError::OutOfOrderSequence));
        assert_eq!(s.check(&batch(4, 0, 1)), Ok(Verdict::Append));
        assert_eq!(s.check(&batch(0, 9, 1)).err(), Some(ProducerError::InvalidProducerEpoch));
        let mut fresh = ProducerStates::default();
        assert_eq!(fresh.check(&batch(0, 3, 1)), Err(ProducerError::UnknownProducerId));
    }

    #[test]
    fn only_the_last_five_batches_are_remembered_and_aborts_roll_back() {
        let mut s = ProducerStates::default();
        for i in 0..7 {
            let b = batch(0, i, 1);
            assert_eq!(s.check(&b), Ok(Verdict::Append));
            s.complete(&b, i64::from(i));
        }
        assert_eq!(s.check(&batch(0, 1, 1)), Err(ProducerError::OutOfOrderSequence), "forgotten: too old");
        assert_eq!(s.check(&batch(0, 6, 1)), Ok(Verdict::Duplicate(Some(6))));
        let (x, y) = (batch(0, 7, 1), batch(0, 8, 1));
        assert_eq!(s.check(&x), Ok(Verdict::Append));
        assert_eq!(s.check(&y), Ok(Verdict::Append));
        s.abort(&x);
        assert_eq!(s.check(&x), Ok(Verdict::Append), "a failed write can be retried");
    }

    #[test]
    fn sequences_wrap_and_replay_rebuilds_the_state() {
        let mut s = ProducerStates::default();
        s.replay(&batch(1, i32::MAX - 1, 2), 40);
        assert_eq!(s.check(&batch(1, i32::MAX - 1, 2)), Ok(Verdict::Duplicate(Some(40))));
        assert_eq!(s.check(&batch(1, 0, 1)), Ok(Verdict::Append), "after i32::MAX comes 0");
    }

    #[test]
    fn producer_fields_are_read_from_the_header() {
        let mut header = vec![0u8; HEADER_LEN];
        header[PRODUCER_ID].copy_from_slice(&42i64.to_be_bytes());
        header[PRODUCER_EPOCH].copy_from_slice(&3i16.to_be_bytes());
        header[BASE_SEQUENCE].copy_from_slice(&10i32.to_be_bytes());
        header[LAST_OFFSET_DELTA].copy_from_slice(&4i32.to_be_bytes());
        let b = producer_batch(&header).unwrap();
        assert_eq!((b.producer_id, b.epoch, b.first_seq, b.last_seq, b.transactional), (42, 3, 10, 14, false));
        header[PRODUCER_ID].copy_from_slice(&(-1i64).to_be_bytes());
        assert_eq!(producer_batch(&header), None);
    }
}
