//! Transaction markers: the control batches (attributes bit 5) that end a
//! transaction in a partition, in Kafka's control record format (key:
//! version 0, type 0 = abort, 1 = commit; value: version 0, coordinator epoch).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::records::RecordBatchDecoder;
use weir_engine::records::RecordsBuilder;

const CONTROL_VERSION: i16 = 0;
const ABORT: i16 = 0;
const COMMIT: i16 = 1;
/// One node: the coordinator's epoch never changes.
pub const COORDINATOR_EPOCH: i32 = 0;

/// One control batch ending the producer's transaction in a partition.
pub fn marker_batch(producer_id: i64, epoch: i16, commit: bool, timestamp_ms: i64) -> Bytes {
    let mut key = BytesMut::with_capacity(4);
    key.put_i16(CONTROL_VERSION);
    key.put_i16(if commit { COMMIT } else { ABORT });
    let mut value = BytesMut::with_capacity(6);
    value.put_i16(CONTROL_VERSION);
    value.put_i32(COORDINATOR_EPOCH);
    RecordsBuilder::new()
        .producer(producer_id, epoch, -1)
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

/// Whether a control batch (one batch's bytes) commits; `None` if it is not
/// a transaction marker. Markers are rare: decoding copies the batch.
pub fn marker_commits(batch: &[u8]) -> Option<bool> {
    let mut bytes = Bytes::copy_from_slice(batch);
    let set = RecordBatchDecoder::decode(&mut bytes).ok()?;
    control_commits(set.records.first().filter(|r| r.control)?.key.as_ref()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_single_control_batches() {
        for commit in [true, false] {
            let batch = marker_batch(7, 3, commit, 1000);
            let header = weir_engine::batch::RawHeader::of(&batch).unwrap();
            assert_eq!(header.total_len(), batch.len());
            assert!(header.is_transactional() && header.is_control());
            let producer = crate::producers::producer_batch(header).unwrap();
            assert_eq!((producer.producer_id, producer.epoch, producer.control), (7, 3, true));
            assert_eq!(marker_commits(&batch), Some(commit));
        }
    }
}
