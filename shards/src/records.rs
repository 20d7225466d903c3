//! Record batches the broker writes itself: internal-topic records and
//! transaction markers, each one uncompressed RecordBatch v2.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

/// Who writes a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// The broker, outside any transaction.
    Broker,
    /// Part of a producer's transaction (producer id, epoch).
    Transaction(i64, i16),
    /// A transaction marker of a producer (producer id, epoch).
    Control(i64, i16),
}

/// One batch of `(key, value)` records (a `None` value is a tombstone).
pub fn keyed_batch(entries: &[(Bytes, Option<Bytes>)], timestamp_ms: i64, writer: Writer) -> Bytes {
    let (producer_id, producer_epoch) = match writer {
        Writer::Broker => (-1, -1),
        Writer::Transaction(id, epoch) | Writer::Control(id, epoch) => (id, epoch),
    };
    let records: Vec<Record> = entries
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: writer != Writer::Broker,
            control: matches!(writer, Writer::Control(..)),
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // One batch with no sequence (-1): the encoder splits where offset - sequence changes.
            sequence: i as i32 - 1,
            timestamp: timestamp_ms,
            key: Some(key.clone()),
            value: value.clone(),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions { version: 2, compression: Compression::None };
    RecordBatchEncoder::encode(&mut buf, &records, &options).expect("encoding records in memory cannot fail");
    buf.freeze()
}
