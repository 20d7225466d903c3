//! The bytes of a producer state snapshot (the engine frames and stores
//! them): version 2, then big-endian
//!
//! ```text
//! producers: u32 count, each id i64, epoch i16, last timestamp i64, coordinator epoch i32,
//!            u8 batch count (at most 5), each first seq i32, last seq i32, base offset i64
//! open transactions: u32 count, each producer id i64, epoch i16, first offset i64
//! aborted transactions: u32 count, each producer id i64, first offset i64, marker offset i64
//! ```
//!
//! Version 1 had no coordinator epoch (read as -1, none known).
//!
//! Decoding checks every count against the bytes left and the invariants of
//! the state, so a snapshot that does not parse whole is refused, never trusted.

use super::{AbortedTxn, BatchSeen, PartitionTxns, Producer, ProducerStates, BATCHES_PER_PRODUCER};
use bytes::{Buf, BufMut};
use std::collections::{HashMap, VecDeque};

const VERSION: u8 = 2;
const VERSION_WITHOUT_COORDINATOR_EPOCH: u8 = 1;
const PRODUCER_LEN: usize = 8 + 2 + 8 + 4 + 1;
const BATCH_LEN: usize = 4 + 4 + 8;
const OPEN_LEN: usize = 8 + 2 + 8;
const ABORTED_LEN: usize = 8 + 8 + 8;

impl ProducerStates {
    /// The state as snapshot bytes; `None` while a batch is being written
    /// (its base offset is not known, so no offset describes the state exactly).
    pub fn encode_snapshot(&self) -> Option<Vec<u8>> {
        let mut buf = Vec::new();
        buf.put_u8(VERSION);
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort_unstable();
        buf.put_u32(ids.len() as u32);
        for id in ids {
            let p = &self.producers[id];
            buf.put_i64(*id);
            buf.put_i16(p.epoch);
            buf.put_i64(p.last_timestamp);
            buf.put_i32(p.coordinator_epoch);
            buf.put_u8(p.batches.len() as u8);
            for b in &p.batches {
                buf.put_i32(b.first_seq);
                buf.put_i32(b.last_seq);
                buf.put_i64(b.base_offset?);
            }
        }
        let mut open: Vec<_> = self.txns.open().collect();
        open.sort_unstable();
        buf.put_u32(open.len() as u32);
        for (id, epoch, first) in open {
            buf.put_i64(id);
            buf.put_i16(epoch);
            buf.put_i64(first);
        }
        buf.put_u32(self.txns.aborted.len() as u32);
        for a in &self.txns.aborted {
            buf.put_i64(a.producer_id);
            buf.put_i64(a.first_offset);
            buf.put_i64(a.last_offset);
        }
        Some(buf)
    }

    /// The state a snapshot holds; `None` unless it parses whole and holds together.
    pub fn decode_snapshot(mut buf: &[u8]) -> Option<ProducerStates> {
        let with_coordinator_epoch = match buf.try_get_u8().ok()? {
            VERSION => true,
            VERSION_WITHOUT_COORDINATOR_EPOCH => false,
            _ => return None,
        };
        let producer_len = if with_coordinator_epoch { PRODUCER_LEN } else { PRODUCER_LEN - 4 };
        let mut producers = HashMap::new();
        for _ in 0..count(&mut buf, producer_len)? {
            // The count was checked against fixed parts only: batches take more.
            if buf.remaining() < producer_len {
                return None;
            }
            let (id, epoch, last_timestamp) = (buf.get_i64(), buf.get_i16(), buf.get_i64());
            let coordinator_epoch = if with_coordinator_epoch { buf.get_i32() } else { -1 };
            let batches = usize::from(buf.get_u8());
            if batches > BATCHES_PER_PRODUCER || buf.remaining() < batches * BATCH_LEN || id < 0 {
                return None;
            }
            let batches: VecDeque<BatchSeen> = (0..batches)
                .map(|_| BatchSeen {
                    first_seq: buf.get_i32(),
                    last_seq: buf.get_i32(),
                    base_offset: Some(buf.get_i64()),
                })
                .collect();
            let producer = Producer { coordinator_epoch, ..Producer::new(epoch, batches, last_timestamp) };
            if producers.insert(id, producer).is_some() {
                return None;
            }
        }
        let mut txns = PartitionTxns::default();
        for _ in 0..count(&mut buf, OPEN_LEN)? {
            let (id, epoch, first) = (buf.get_i64(), buf.get_i16(), buf.get_i64());
            if !txns.begin(id, epoch, first) {
                return None;
            }
        }
        for _ in 0..count(&mut buf, ABORTED_LEN)? {
            let a = AbortedTxn { producer_id: buf.get_i64(), first_offset: buf.get_i64(), last_offset: buf.get_i64() };
            let in_order = txns.aborted.last().is_none_or(|prev| prev.last_offset < a.last_offset);
            if a.first_offset > a.last_offset || !in_order {
                return None;
            }
            txns.aborted.push(a);
        }
        buf.is_empty().then_some(ProducerStates { producers, txns })
    }
}

/// Reads a u32 count of items of at least `item_len` bytes; `None` if they cannot all be there.
fn count(buf: &mut &[u8], item_len: usize) -> Option<usize> {
    if buf.remaining() < 4 {
        return None;
    }
    let n = buf.get_u32() as usize;
    (buf.remaining() >= n.checked_mul(item_len)?).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::super::{ProducerBatch, Verdict};
    use super::*;

    fn batch(producer_id: i64, first_seq: i32, records: i32, transactional: bool) -> ProducerBatch {
        ProducerBatch {
            producer_id,
            epoch: 2,
            first_seq,
            last_seq: first_seq + records - 1,
            transactional,
            control: false,
            max_timestamp: 1_700_000_000_000 + i64::from(first_seq),
        }
    }

    fn sample() -> ProducerStates {
        let mut s = ProducerStates::default();
        for i in 0..7 {
            s.replay(&batch(1, i * 3, 3, false), i64::from(i) * 3);
        }
        s.replay(&batch(2, 0, 1, true), 30);
        s.txns.begin(2, 2, 30);
        s.replay(&batch(3, 0, 1, true), 31);
        s.txns.begin(3, 2, 31);
        s.txns.end(3, false, 32);
        s.apply_marker(3, 2, 6, 1_700_000_000_100);
        s.apply_marker(4, 5, 0, 1_700_000_000_200);
        s
    }

    #[test]
    fn snapshots_round_trip() {
        let mut s = sample();
        // Not persisted: it only tells an append that a marker came during its await.
        s.txns.markers = 0;
        let bytes = s.encode_snapshot().unwrap();
        let decoded = ProducerStates::decode_snapshot(&bytes).unwrap();
        assert_eq!(decoded, s);
        assert_eq!(decoded.encode_snapshot().unwrap(), bytes, "the encoding is deterministic");
        assert_eq!(
            ProducerStates::decode_snapshot(&ProducerStates::default().encode_snapshot().unwrap()),
            Some(ProducerStates::default())
        );
    }

    #[test]
    fn version_1_snapshots_know_no_coordinator_epoch() {
        let mut v1 = vec![VERSION_WITHOUT_COORDINATOR_EPOCH];
        v1.put_u32(1);
        v1.put_i64(7);
        v1.put_i16(2);
        v1.put_i64(1_700_000_000_000);
        v1.put_u8(0);
        v1.put_u32(0);
        v1.put_u32(0);
        let decoded = ProducerStates::decode_snapshot(&v1).unwrap();
        assert_eq!(decoded.producers[&7].coordinator_epoch, -1);
        assert!(decoded.marker_allowed(7, 0));
    }

    #[test]
    fn decoded_snapshots_behave_like_the_original() {
        let mut decoded = ProducerStates::decode_snapshot(&sample().encode_snapshot().unwrap()).unwrap();
        assert_eq!(decoded.check(&batch(1, 18, 3, false)), Ok(Verdict::Duplicate(Some(18))), "a retry");
        assert_eq!(decoded.check(&batch(1, 21, 1, false)), Ok(Verdict::Append), "the sequence goes on");
        assert_eq!(decoded.txns.last_stable_offset(100), 30, "producer 2's transaction is open");
        assert_eq!(decoded.txns.aborted_between(0, 100), vec![(3, 31)]);
    }

    #[test]
    fn a_batch_being_written_prevents_a_snapshot() {
        let mut s = sample();
        let b = batch(1, 21, 1, false);
        assert_eq!(s.check(&b), Ok(Verdict::Append));
        assert_eq!(s.encode_snapshot(), None);
        s.complete(&b, 40);
        assert!(s.encode_snapshot().is_some());
    }

    #[test]
    fn damaged_snapshots_are_refused() {
        let bytes = sample().encode_snapshot().unwrap();
        for cut in 0..bytes.len() {
            assert_eq!(ProducerStates::decode_snapshot(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(ProducerStates::decode_snapshot(&longer), None, "trailing bytes");
        let mut version = bytes.clone();
        version[0] = 9;
        assert_eq!(ProducerStates::decode_snapshot(&version), None);
        let mut huge = bytes;
        huge[1..5].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(ProducerStates::decode_snapshot(&huge), None, "a count larger than the bytes");
    }

    #[test]
    fn mutated_snapshots_never_panic() {
        let bytes = sample().encode_snapshot().unwrap();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let mut mutated = bytes.clone();
            for _ in 0..1 + next() % 4 {
                let at = next() as usize % mutated.len();
                mutated[at] = next() as u8;
            }
            mutated.truncate(next() as usize % (bytes.len() + 1));
            // Refused or accepted, never a panic; an accepted one encodes again.
            if let Some(state) = ProducerStates::decode_snapshot(&mutated) {
                assert!(state.encode_snapshot().is_some());
            }
        }
    }
}
