//! Idempotent and transactional producers (KIP-98), per partition: the last
//! five batches of every producer id, so a retried batch is answered with its
//! original offset instead of being written twice, and a gap or a stale epoch
//! is refused; and the partition's open and aborted transactions, which give
//! the last stable offset and the aborted list of read_committed fetches.
//! Plain state machines; the shard feeds them. `snapshot` encodes them for
//! the engine's snapshot files.

mod snapshot;

use std::collections::{HashMap, VecDeque};

use weir_engine::batch::RawHeader;

/// Kafka keeps the metadata of this many batches per producer and partition:
/// the most a producer may have in flight with idempotence on.
const BATCHES_PER_PRODUCER: usize = 5;

/// The producer fields of one batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_seq: i32,
    pub last_seq: i32,
    pub transactional: bool,
    /// A transaction marker (written by the coordinator, never by clients).
    pub control: bool,
    /// The batch's maxTimestamp: when the producer was last active, for expiry (as Kafka).
    pub max_timestamp: i64,
}

/// The producer fields of a (validated) batch's header; `None` without a producer id.
pub fn producer_batch(header: &RawHeader) -> Option<ProducerBatch> {
    let producer_id = header.producer_id();
    if producer_id < 0 {
        return None;
    }
    let first_seq = header.base_sequence();
    Some(ProducerBatch {
        producer_id,
        epoch: header.producer_epoch(),
        first_seq,
        last_seq: next_seq(first_seq, header.last_offset_delta().max(0)),
        transactional: header.is_transactional(),
        control: header.is_control(),
        max_timestamp: header.max_timestamp(),
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
}

/// What to do with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// New: append it (its slot is reserved; `complete` or `abort` it).
    Append,
    /// Already written at this base offset (or still being written: `None`).
    Duplicate(Option<i64>),
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct BatchSeen {
    first_seq: i32,
    last_seq: i32,
    base_offset: Option<i64>,
}

#[derive(Debug, PartialEq)]
struct Producer {
    epoch: i16,
    batches: VecDeque<BatchSeen>,
    /// maxTimestamp of its last batch or marker.
    last_timestamp: i64,
    /// The epoch of the transaction coordinator that wrote its last marker
    /// here (-1: none known); a marker from an older one is fenced.
    coordinator_epoch: i32,
}

impl Producer {
    fn new(epoch: i16, batches: VecDeque<BatchSeen>, last_timestamp: i64) -> Producer {
        Producer { epoch, batches, last_timestamp, coordinator_epoch: -1 }
    }

    /// A newer epoch of the producer: its sequences start again, its
    /// coordinator stays.
    fn restart(&mut self, epoch: i16, batches: VecDeque<BatchSeen>, last_timestamp: i64) {
        *self = Producer { coordinator_epoch: self.coordinator_epoch, ..Producer::new(epoch, batches, last_timestamp) };
    }
}

#[derive(Default, Debug, PartialEq)]
pub struct ProducerStates {
    producers: HashMap<i64, Producer>,
    pub txns: PartitionTxns,
}

impl ProducerStates {
    /// Checks a batch against what the producer sent before and reserves its
    /// place if it is the next one.
    pub fn check(&mut self, b: &ProducerBatch) -> Result<Verdict, ProducerError> {
        let seen = BatchSeen { first_seq: b.first_seq, last_seq: b.last_seq, base_offset: None };
        let Some(p) = self.producers.get_mut(&b.producer_id) else {
            // Any sequence, as Kafka since 2.5 (KIP-360): the producer's
            // batches were deleted (retention, DeleteRecords) or it expired,
            // and refusing would make the client resend what it buffered.
            self.producers.insert(b.producer_id, Producer::new(b.epoch, VecDeque::from([seen]), b.max_timestamp));
            return Ok(Verdict::Append);
        };
        if b.epoch < p.epoch {
            return Err(ProducerError::InvalidProducerEpoch);
        }
        if b.epoch > p.epoch {
            if b.first_seq != 0 {
                return Err(ProducerError::OutOfOrderSequence);
            }
            p.restart(b.epoch, VecDeque::from([seen]), b.max_timestamp);
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
        p.last_timestamp = b.max_timestamp;
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
        let p = self.producers.entry(b.producer_id).or_insert(Producer::new(b.epoch, VecDeque::new(), b.max_timestamp));
        if b.epoch > p.epoch {
            p.restart(b.epoch, VecDeque::new(), b.max_timestamp);
        } else if b.epoch < p.epoch {
            return;
        }
        p.last_timestamp = b.max_timestamp;
        p.batches.push_back(BatchSeen { first_seq: b.first_seq, last_seq: b.last_seq, base_offset: Some(base_offset) });
        if p.batches.len() > BATCHES_PER_PRODUCER {
            p.batches.pop_front();
        }
    }

    /// Whether a transaction coordinator in `coordinator_epoch` may write a
    /// marker for `producer_id`: not once a newer coordinator wrote one.
    pub fn marker_allowed(&self, producer_id: i64, coordinator_epoch: i32) -> bool {
        self.producers.get(&producer_id).is_none_or(|p| coordinator_epoch >= p.coordinator_epoch)
    }

    /// A transaction marker of `epoch`, stamped `timestamp`, was written by
    /// a coordinator in `coordinator_epoch`: an older epoch of the producer
    /// is fenced from now on, and a newer one starts its sequences at 0.
    pub fn apply_marker(&mut self, producer_id: i64, epoch: i16, coordinator_epoch: i32, timestamp: i64) {
        let p = self.producers.entry(producer_id).or_insert(Producer::new(epoch, VecDeque::new(), timestamp));
        if epoch > p.epoch {
            p.restart(epoch, VecDeque::new(), timestamp);
        }
        p.last_timestamp = p.last_timestamp.max(timestamp);
        p.coordinator_epoch = p.coordinator_epoch.max(coordinator_epoch);
    }

    /// Forgets producers idle for `expiration_ms` at `now` (Kafka's
    /// `producer.id.expiration.ms`), except those with a transaction open
    /// here or a batch being written; returns how many.
    pub fn expire(&mut self, now: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        let txns = &self.txns;
        self.producers.retain(|id, p| {
            let idle = now.saturating_sub(p.last_timestamp) >= expiration_ms;
            let writing = p.batches.iter().any(|b| b.base_offset.is_none());
            !idle || writing || txns.open.contains_key(id)
        });
        before - self.producers.len()
    }

    /// The producers of this partition: (producer id, epoch, last sequence, base offset of its last batch).
    pub fn describe(&self) -> Vec<(i64, i16, i32, i64)> {
        let mut all: Vec<_> = self
            .producers
            .iter()
            .map(|(id, p)| {
                let last = p.batches.back();
                (*id, p.epoch, last.map_or(-1, |b| b.last_seq), last.and_then(|b| b.base_offset).unwrap_or(-1))
            })
            .collect();
        all.sort_unstable();
        all
    }

    /// What is remembered of `producer_id`, for a log line: its epoch and
    /// its last batches' sequences and base offsets ("-": being written).
    pub fn remembered(&self, producer_id: i64) -> String {
        let Some(p) = self.producers.get(&producer_id) else { return "nothing".into() };
        let offset = |b: &BatchSeen| b.base_offset.map_or("-".into(), |o| o.to_string());
        let batches: Vec<String> =
            p.batches.iter().map(|b| format!("{}..={}@{}", b.first_seq, b.last_seq, offset(b))).collect();
        format!("epoch {} batches {}", p.epoch, batches.join(" "))
    }

    fn slot(&mut self, b: &ProducerBatch) -> Option<&mut BatchSeen> {
        let p = self.producers.get_mut(&b.producer_id)?;
        p.batches.iter_mut().find(|s| s.first_seq == b.first_seq && s.last_seq == b.last_seq)
    }
}

/// An aborted transaction of a partition: its producer, first offset and marker offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// The transactions of one partition.
#[derive(Default, Debug, PartialEq)]
pub struct PartitionTxns {
    /// Open transactions: producer id → (epoch, first offset).
    open: HashMap<i64, (i16, i64)>,
    /// Aborted transactions in marker order (so by `last_offset`).
    aborted: Vec<AbortedTxn>,
    /// Markers written so far, to tell whether one came during an await.
    markers: u64,
}

impl PartitionTxns {
    /// Whether the producer has a transaction open here at this epoch.
    pub fn is_open(&self, producer_id: i64, epoch: i16) -> bool {
        self.open.get(&producer_id).is_some_and(|(e, _)| *e == epoch)
    }

    /// Opens the producer's transaction at `first_offset` unless one is
    /// open; returns whether it was opened now.
    pub fn begin(&mut self, producer_id: i64, epoch: i16, first_offset: i64) -> bool {
        if self.open.contains_key(&producer_id) {
            return false;
        }
        self.open.insert(producer_id, (epoch, first_offset));
        true
    }

    /// The first batch of a transaction opened by `begin` failed to append.
    pub fn forget(&mut self, producer_id: i64) {
        self.open.remove(&producer_id);
    }

    /// A marker at `marker_offset` ended the producer's transaction.
    pub fn end(&mut self, producer_id: i64, commit: bool, marker_offset: i64) {
        self.markers += 1;
        let Some((_, first_offset)) = self.open.remove(&producer_id) else { return };
        if !commit {
            debug_assert!(self.aborted.last().is_none_or(|a| a.last_offset < marker_offset));
            self.aborted.push(AbortedTxn { producer_id, first_offset, last_offset: marker_offset });
        }
    }

    /// How many markers this partition has taken (since its state was loaded).
    pub fn markers_written(&self) -> u64 {
        self.markers
    }

    /// The last stable offset: the first offset of the oldest open
    /// transaction, or the high watermark.
    pub fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        self.open.values().map(|(_, first)| *first).min().map_or(high_watermark, |f| f.min(high_watermark))
    }

    /// The aborted transactions that overlap offsets `from..to`, as
    /// (producer id, first offset), for a read_committed fetch.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<(i64, i64)> {
        let start = self.aborted.partition_point(|a| a.last_offset < from);
        self.aborted[start..].iter().filter(|a| a.first_offset < to).map(|a| (a.producer_id, a.first_offset)).collect()
    }

    /// Forgets aborted transactions wholly below the log start offset.
    pub fn prune(&mut self, log_start_offset: i64) {
        let below = self.aborted.partition_point(|a| a.last_offset < log_start_offset);
        self.aborted.drain(..below);
    }

    /// The open transactions, as (producer id, epoch, first offset).
    pub fn open(&self) -> impl Iterator<Item = (i64, i16, i64)> + '_ {
        self.open.iter().map(|(id, (epoch, first))| (*id, *epoch, *first))
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
            control: false,
            max_timestamp: 1000,
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
        assert_eq!(fresh.check(&batch(0, 3, 1)), Ok(Verdict::Append), "no state: any sequence");
        assert_eq!(fresh.check(&batch(0, 5, 1)), Err(ProducerError::OutOfOrderSequence), "then they follow on");
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
        use weir_engine::batch::BatchBuilder;
        let header = BatchBuilder { producer_id: 42, producer_epoch: 3, base_sequence: 10, ..BatchBuilder::new(5) };
        let b = producer_batch(RawHeader::of(&header.build(b"")).unwrap()).unwrap();
        assert_eq!((b.producer_id, b.epoch, b.first_seq, b.last_seq, b.transactional), (42, 3, 10, 14, false));
        let none = BatchBuilder { producer_id: -1, ..header }.build(b"");
        assert_eq!(producer_batch(RawHeader::of(&none).unwrap()), None);
    }

    #[test]
    fn markers_fence_older_epochs() {
        let mut s = ProducerStates::default();
        assert_eq!(s.check(&batch(0, 0, 3)), Ok(Verdict::Append));
        s.apply_marker(7, 0, 0, 1000);
        assert_eq!(s.check(&batch(0, 3, 1)), Ok(Verdict::Append), "same epoch: sequences go on");
        s.apply_marker(7, 1, 0, 1000);
        assert_eq!(s.check(&batch(0, 4, 1)), Err(ProducerError::InvalidProducerEpoch));
        assert_eq!(s.check(&batch(1, 0, 1)), Ok(Verdict::Append));
    }

    #[test]
    fn markers_of_an_older_coordinator_are_refused() {
        let mut s = ProducerStates::default();
        assert!(s.marker_allowed(7, 0), "a producer not seen here");
        s.apply_marker(7, 0, 4, 1000);
        assert!(s.marker_allowed(7, 4) && s.marker_allowed(7, 5));
        assert!(!s.marker_allowed(7, 3), "coordinator epoch 3 after 4");
        assert_eq!(s.check(&batch(1, 0, 1)), Ok(Verdict::Append));
        assert!(!s.marker_allowed(7, 3), "a new producer epoch keeps the coordinator's");
    }

    #[test]
    fn idle_producers_expire_unless_in_a_transaction_or_writing() {
        let mut s = ProducerStates::default();
        let b = batch(0, 0, 1);
        assert_eq!(s.check(&b), Ok(Verdict::Append));
        assert_eq!(s.expire(10_000, 100), 0, "its batch is being written");
        s.complete(&b, 0);
        assert_eq!(s.expire(1099, 100), 0, "idle 99 ms");
        let other = ProducerBatch { producer_id: 8, transactional: true, ..batch(0, 0, 1) };
        assert_eq!(s.check(&other), Ok(Verdict::Append));
        s.complete(&other, 1);
        assert!(s.txns.begin(8, 0, 1));
        assert_eq!(s.expire(1100, 100), 1, "producer 7 idle 100 ms; 8 has a transaction open");
        assert_eq!(s.describe().iter().map(|p| p.0).collect::<Vec<_>>(), vec![8]);
        assert_eq!(s.check(&batch(0, 9, 1)), Ok(Verdict::Append), "forgotten: a gap is no longer seen");
        s.txns.end(8, true, 2);
        s.apply_marker(8, 0, 0, 1050);
        assert_eq!(s.expire(1149, 100), 0, "the marker counts as activity");
        assert_eq!(s.expire(1150, 100), 1);
    }

    #[test]
    fn open_transactions_hold_the_last_stable_offset_and_aborts_are_listed() {
        let mut t = PartitionTxns::default();
        assert_eq!(t.last_stable_offset(10), 10);
        assert!(t.begin(1, 0, 10));
        assert!(!t.begin(1, 0, 12), "already open");
        assert!(t.begin(2, 0, 11));
        assert!(t.is_open(1, 0) && !t.is_open(1, 1));
        assert_eq!(t.last_stable_offset(20), 10);
        t.end(1, false, 13);
        assert_eq!(t.last_stable_offset(20), 11);
        t.end(2, true, 14);
        assert_eq!(t.last_stable_offset(20), 20);
        assert!(t.begin(1, 0, 15));
        t.end(1, false, 16);
        assert_eq!(t.aborted_between(0, 20), vec![(1, 10), (1, 15)]);
        assert_eq!(t.aborted_between(14, 20), vec![(1, 15)], "the first ended before 14");
        assert_eq!(t.aborted_between(0, 12), vec![(1, 10)], "the second starts after the range");
        t.prune(14);
        assert_eq!(t.aborted_between(0, 20), vec![(1, 15)]);
    }
}
