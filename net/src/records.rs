//! Building plain records (no idempotence, no transactions) for the tools,
//! the bench and tests, with kafka-protocol's record encoder.

use bytes::Bytes;
use kafka_protocol::records::{Record, TimestampType};

/// The `index`-th record of a batch (the broker assigns the real offsets).
pub fn plain_record(index: usize, timestamp_ms: i64, key: Option<Bytes>, value: Option<Bytes>) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: index as i64,
        // The encoder starts a new batch unless offset - sequence is the same
        // for every record; this keeps one batch, with base sequence -1 (none).
        sequence: index as i32 - 1,
        timestamp: timestamp_ms,
        key,
        value,
        headers: Default::default(),
    }
}

/// Milliseconds since the Unix epoch, as record timestamps count them.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::{Compression, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions};

    #[test]
    fn plain_records_encode_as_one_batch() {
        let records: Vec<Record> =
            (0..3).map(|i| plain_record(i, 7, None, Some(Bytes::from(vec![i as u8; 3])))).collect();
        let mut buf = bytes::BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions { version: 2, compression: Compression::None },
        )
        .unwrap();
        let mut batches = buf.freeze();
        let decoded = RecordBatchDecoder::decode(&mut batches).unwrap();
        assert!(batches.is_empty(), "a single batch");
        assert_eq!(decoded.records.len(), 3);
    }
}
