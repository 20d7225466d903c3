//! Transaction markers: the control batches (attributes bit 5) that end a
//! transaction in a partition, in Kafka's control record format (key:
//! version 0, type 0 = abort, 1 = commit; value: version 0, coordinator epoch).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::records::RecordBatchDecoder;
use weir_engine::records::RecordsBuilder;

const CONTROL_VERSION: i16 = 0;
const ABORT: i16 = 0;
const COMMIT: i16 = 1;

/// What ends a producer's transaction in a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnMarker {
    pub producer_id: i64,
    pub epoch: i16,
    pub commit: bool,
    /// The leader epoch of the coordinator's `__transaction_state`
    /// partition: a deposed coordinator's markers are fenced by it.
    pub coordinator_epoch: i32,
}

/// One control batch ending the producer's transaction in a partition.
pub fn marker_batch(marker: TxnMarker, timestamp_ms: i64) -> Bytes {
    let mut key = BytesMut::with_capacity(4);
    key.put_i16(CONTROL_VERSION);
    key.put_i16(if marker.commit { COMMIT } else { ABORT });
    let mut value = BytesMut::with_capacity(6);
    value.put_i16(CONTROL_VERSION);
    value.put_i32(marker.coordinator_epoch);
    RecordsBuilder::new()
        .producer(marker.producer_id, marker.epoch, -1)
        .control()
        .push(Some(&key), Some(&value), &[], timestamp_ms)
        .finish()
}

/// Whether a control record's key commits; `None` if it is not a transaction marker.
pub fn control_commits(key: &Bytes) -> Option<bool> {
    let mut key = key.clone();
    if key.remaining() < 4 || key.get_i16() != CONTROL_VERSION {
        return None;
    }
    match key.get_i16() {
        COMMIT => Some(true),
        ABORT => Some(false),
        _ => None,
    }
}

/// Whether a control batch (one batch's bytes) commits, and the
/// coordinator epoch it was written in (-1 where its value does not say);
/// `None` if it is not a transaction marker. Markers are rare: decoding
/// copies the batch.
pub fn marker_outcome(batch: &[u8]) -> Option<(bool, i32)> {
    let mut bytes = Bytes::copy_from_slice(batch);
    let set = RecordBatchDecoder::decode(&mut bytes).ok()?;
    let record = set.records.first().filter(|r| r.control)?;
    let commit = control_commits(record.key.as_ref()?)?;
    let coordinator_epoch = record.value.as_deref().and_then(coordinator_epoch_of).unwrap_or(-1);
    Some((commit, coordinator_epoch))
}

/// The coordinator epoch in a marker's value (version 0: the version, i16,
/// then the epoch, i32).
fn coordinator_epoch_of(mut value: &[u8]) -> Option<i32> {
    (value.remaining() >= 6 && value.get_i16() == CONTROL_VERSION).then(|| value.get_i32())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_single_control_batches() {
        for commit in [true, false] {
            let batch = marker_batch(TxnMarker { producer_id: 7, epoch: 3, commit, coordinator_epoch: 12 }, 1000);
            let header = weir_engine::batch::RawHeader::of(&batch).unwrap();
            assert_eq!(header.total_len(), batch.len());
            assert!(header.is_transactional() && header.is_control());
            let producer = crate::producers::producer_batch(header).unwrap();
            assert_eq!((producer.producer_id, producer.epoch, producer.control), (7, 3, true));
            assert_eq!(marker_outcome(&batch), Some((commit, 12)));
        }
    }
}
