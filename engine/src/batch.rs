//! Kafka RecordBatch v2 headers: parsing, validation and offset patching.
//!
//! The engine only looks at the 61-byte header and the CRC; record bodies are
//! opaque bytes. Layout (big-endian):
//!
//! ```text
//! [0..8)   baseOffset            i64   rewritten by the broker (outside the CRC)
//! [8..12)  batchLength           i32   bytes after this field
//! [12..16) partitionLeaderEpoch  i32   rewritten by the broker (outside the CRC)
//! [16]     magic                 i8    must be 2
//! [17..21) crc                   u32   CRC-32C of bytes [21..end)
//! [21..23) attributes            i16
//! [23..27) lastOffsetDelta       i32
//! [27..35) baseTimestamp  [35..43) maxTimestamp  [43..51) producerId
//! [51..53) producerEpoch  [53..57) baseSequence  [57..61) recordsCount i32
//! ```

use crate::error::EngineError;

/// Bytes before `batchLength` counts: baseOffset + batchLength.
pub const LOG_OVERHEAD: usize = 12;
/// Size of the fixed RecordBatch v2 header.
pub const HEADER_LEN: usize = 61;
/// Smallest legal `batchLength` (a header with no records).
pub const MIN_BATCH_LENGTH: i32 = (HEADER_LEN - LOG_OVERHEAD) as i32;
/// The only record-batch format the engine stores.
pub const MAGIC_V2: i8 = 2;

const CRC_START: usize = 21;

/// The header fields the engine uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record (as stored; producers send 0).
    pub base_offset: i64,
    /// Bytes after the `batchLength` field.
    pub batch_length: i32,
    /// Format version; 2 for every batch the engine accepts.
    pub magic: i8,
    /// CRC-32C the batch claims for bytes `[21..end)`.
    pub crc: u32,
    /// `lastOffset - baseOffset`.
    pub last_offset_delta: i32,
    /// Number of records in the batch.
    pub records_count: i32,
}

impl BatchHeader {
    /// Whole size of the batch on disk / on the wire.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }

    /// Offset of the last record, given the header's base offset.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Number of offsets the batch occupies.
    pub fn offset_count(&self) -> i64 {
        i64::from(self.last_offset_delta) + 1
    }
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}

/// Parses the fixed header from the first [`HEADER_LEN`] bytes of `buf`.
/// Returns `None` when `buf` is shorter than a header. Checks nothing else.
pub fn parse_header(buf: &[u8]) -> Option<BatchHeader> {
    if buf.len() < HEADER_LEN {
        return None;
    }
    Some(BatchHeader {
        base_offset: be_i64(buf, 0),
        batch_length: be_i32(buf, 8),
        magic: buf[16] as i8,
        crc: be_i32(buf, 17) as u32,
        last_offset_delta: be_i32(buf, 23),
        records_count: be_i32(buf, 57),
    })
}

/// Checks the header fields that do not need the batch body: length, magic,
/// record count against `lastOffsetDelta`. `Err` carries a reason.
pub fn check_header(h: &BatchHeader) -> Result<(), String> {
    if h.batch_length < MIN_BATCH_LENGTH {
        return Err(format!("batch length {} below minimum {}", h.batch_length, MIN_BATCH_LENGTH));
    }
    if h.magic != MAGIC_V2 {
        return Err(format!("unsupported magic {}", h.magic));
    }
    if h.records_count < 0 {
        return Err(format!("negative record count {}", h.records_count));
    }
    if h.last_offset_delta < 0 {
        return Err(format!("negative last offset delta {}", h.last_offset_delta));
    }
    if i64::from(h.last_offset_delta) < i64::from(h.records_count) - 1 {
        return Err(format!("last offset delta {} too small for {} records", h.last_offset_delta, h.records_count));
    }
    Ok(())
}

/// Checks the CRC-32C of one whole batch (`batch.len() == total_len`).
pub fn check_crc(h: &BatchHeader, batch: &[u8]) -> Result<(), String> {
    debug_assert_eq!(batch.len(), h.total_len());
    let actual = crc32c::crc32c(&batch[CRC_START..]);
    if actual != h.crc {
        return Err(format!("crc mismatch: header {:#010x}, computed {:#010x}", h.crc, actual));
    }
    Ok(())
}

/// Validates one batch at the start of `buf` (which may hold more after it)
/// and returns its header. Used for on-disk scans: any failure means "the log
/// ends here", so the error is just a reason.
pub fn check_batch_at(buf: &[u8]) -> Result<BatchHeader, String> {
    let h = parse_header(buf).ok_or_else(|| format!("incomplete header: {} bytes", buf.len()))?;
    check_header(&h)?;
    if buf.len() < h.total_len() {
        return Err(format!("incomplete batch: {} of {} bytes", buf.len(), h.total_len()));
    }
    check_crc(&h, &buf[..h.total_len()])?;
    Ok(h)
}

/// What [`validate_records`] learnt about a produce payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordsSummary {
    /// Number of batches.
    pub batches: usize,
    /// Number of offsets the batches occupy together.
    pub offset_count: i64,
}

/// Most offsets one produce payload may take: with the writer's roll before
/// an append that would not fit, every offset of an append stays within the
/// u32 relative offsets of its segment. (Record counts are claimed, not
/// counted, so this bounds what a few header bytes can claim.)
pub const MAX_PAYLOAD_OFFSETS: i64 = i32::MAX as i64;

/// Validates a produce payload: one or more concatenated RecordBatch v2, each
/// complete, well-formed, CRC-correct and at most `max_batch_bytes` long, and
/// each with one offset per record, as Kafka requires of producers (stored
/// batches may have fewer records after compaction). Nothing is modified; one
/// bad batch rejects the whole payload.
pub fn validate_records(records: &[u8], max_batch_bytes: usize) -> Result<RecordsSummary, EngineError> {
    if records.is_empty() {
        return Err(EngineError::CorruptMessage("empty records".into()));
    }
    let mut pos = 0usize;
    let mut summary = RecordsSummary { batches: 0, offset_count: 0 };
    while pos < records.len() {
        let rest = &records[pos..];
        let h = parse_header(rest).ok_or_else(|| {
            EngineError::CorruptMessage(format!("trailing {} bytes at {pos} are not a batch header", rest.len()))
        })?;
        if h.batch_length >= 0 && h.total_len() > max_batch_bytes {
            return Err(EngineError::MessageTooLarge(h.total_len()));
        }
        check_header(&h).map_err(|e| EngineError::CorruptMessage(format!("batch at {pos}: {e}")))?;
        if rest.len() < h.total_len() {
            return Err(EngineError::CorruptMessage(format!(
                "batch at {pos} truncated: {} of {} bytes",
                rest.len(),
                h.total_len()
            )));
        }
        check_crc(&h, &rest[..h.total_len()])
            .map_err(|e| EngineError::CorruptMessage(format!("batch at {pos}: {e}")))?;
        if h.records_count == 0 || h.offset_count() != i64::from(h.records_count) {
            return Err(EngineError::InvalidRecord(format!(
                "batch at {pos}: {} records for offset range 0..={}",
                h.records_count, h.last_offset_delta
            )));
        }
        summary.batches += 1;
        summary.offset_count += h.offset_count();
        if summary.offset_count > MAX_PAYLOAD_OFFSETS {
            return Err(EngineError::InvalidRecord(format!("payload claims over {MAX_PAYLOAD_OFFSETS} offsets")));
        }
        pos += h.total_len();
    }
    debug_assert_eq!(pos, records.len());
    Ok(summary)
}

/// Rewrites the broker-owned header fields of the batch at the start of
/// `batch`: baseOffset and partitionLeaderEpoch (0). Both are outside the CRC.
pub fn patch_header(batch: &mut [u8], base_offset: i64) {
    assert!(batch.len() >= HEADER_LEN);
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
    batch[12..16].copy_from_slice(&0i32.to_be_bytes());
}

/// Attributes: the compression codec bits (0 = none).
pub const ATTR_COMPRESSION_MASK: i16 = 0x07;
/// Attributes: the timestamp-type bit (set = LogAppendTime).
pub const ATTR_LOG_APPEND_TIME: i16 = 0x08;
/// Attributes: the batch is part of a transaction.
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
/// Attributes: the batch is a control batch (transaction markers).
pub const ATTR_CONTROL: i16 = 0x20;

/// The batch's attributes (`buf` starts with a whole header).
pub fn attributes(buf: &[u8]) -> i16 {
    i16::from_be_bytes([buf[21], buf[22]])
}

/// The batch's baseTimestamp.
pub fn base_timestamp(buf: &[u8]) -> i64 {
    be_i64(buf, 27)
}

/// The batch's maxTimestamp (with LogAppendTime: the append time).
pub fn max_timestamp(buf: &[u8]) -> i64 {
    be_i64(buf, 35)
}

/// Recomputes and stores the CRC-32C of a whole batch.
pub fn rewrite_crc(batch: &mut [u8]) {
    assert!(batch.len() >= HEADER_LEN);
    let crc = crc32c::crc32c(&batch[CRC_START..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Applies `message.timestamp.type=LogAppendTime` to a whole batch, as Kafka
/// does: the timestamp-type attribute is set and maxTimestamp becomes
/// `append_time_ms`; both are inside the CRC, which is recomputed.
/// (baseTimestamp and the record deltas stay; readers take maxTimestamp.)
pub fn set_log_append_time(batch: &mut [u8], append_time_ms: i64) {
    assert!(batch.len() >= HEADER_LEN);
    let attrs = attributes(batch) | ATTR_LOG_APPEND_TIME;
    batch[21..23].copy_from_slice(&attrs.to_be_bytes());
    batch[35..43].copy_from_slice(&append_time_ms.to_be_bytes());
    rewrite_crc(batch);
}

/// The header of a well-formed RecordBatch v2 to build around a body the
/// engine treats as opaque record bytes, for tests, benches, examples, fuzz
/// seeds and [`crate::records::encode_batch`]. [`BatchBuilder::new`] claims
/// `records` records with lastOffsetDelta `records - 1` and sets every other
/// field to 0; set fields with `BatchBuilder { leader_epoch: 9,
/// ..BatchBuilder::new(1) }`. A lastOffsetDelta apart from the record count
/// makes the invalid batches that validation is tested with. The base offset
/// is 0, and [`BatchBuilder::build`] sets a matching length and CRC.
#[derive(Clone, Copy, Debug)]
pub struct BatchBuilder {
    pub records: i32,
    pub last_offset_delta: i32,
    /// partitionLeaderEpoch (the broker overwrites it with 0).
    pub leader_epoch: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    /// -1 with producer_epoch and base_sequence -1: no producer.
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

impl BatchBuilder {
    /// A batch claiming `records` records.
    pub fn new(records: i32) -> Self {
        BatchBuilder {
            records,
            last_offset_delta: records.saturating_sub(1).max(0),
            leader_epoch: 0,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: 0,
            producer_epoch: 0,
            base_sequence: 0,
        }
    }

    /// The batch: this header, then `body`.
    pub fn build(&self, body: &[u8]) -> Vec<u8> {
        let mut b = Vec::with_capacity(HEADER_LEN + body.len());
        b.resize(HEADER_LEN, 0);
        b.extend_from_slice(body);
        let length = i32::try_from(b.len() - LOG_OVERHEAD).expect("a batch under 2 GiB");
        b[8..12].copy_from_slice(&length.to_be_bytes());
        b[12..16].copy_from_slice(&self.leader_epoch.to_be_bytes());
        b[16] = MAGIC_V2 as u8;
        b[23..27].copy_from_slice(&self.last_offset_delta.to_be_bytes());
        b[27..35].copy_from_slice(&self.base_timestamp.to_be_bytes());
        b[35..43].copy_from_slice(&self.max_timestamp.to_be_bytes());
        b[43..51].copy_from_slice(&self.producer_id.to_be_bytes());
        b[51..53].copy_from_slice(&self.producer_epoch.to_be_bytes());
        b[53..57].copy_from_slice(&self.base_sequence.to_be_bytes());
        b[57..61].copy_from_slice(&self.records.to_be_bytes());
        rewrite_crc(&mut b);
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(records: i32, body: &[u8]) -> Vec<u8> {
        BatchBuilder { leader_epoch: 7, ..BatchBuilder::new(records) }.build(body)
    }

    #[test]
    fn validates_concatenated_batches() {
        let mut r = batch(3, b"abc");
        r.extend(batch(1, b""));
        let s = validate_records(&r, 1 << 20).expect("valid");
        assert_eq!(s, RecordsSummary { batches: 2, offset_count: 4 });
    }

    #[test]
    fn rejects_bad_batches() {
        let good = batch(2, b"hello");
        let corrupt = |r: Result<RecordsSummary, EngineError>| matches!(r, Err(EngineError::CorruptMessage(_)));
        assert!(corrupt(validate_records(&[], 1 << 20)));
        assert!(corrupt(validate_records(&good[..good.len() - 1], 1 << 20)));
        let mut trailing = good.clone();
        trailing.extend_from_slice(&good[..20]);
        assert!(corrupt(validate_records(&trailing, 1 << 20)));
        let mut bad_crc = good.clone();
        *bad_crc.last_mut().expect("non-empty") ^= 1;
        assert!(corrupt(validate_records(&bad_crc, 1 << 20)));
        let mut bad_magic = good.clone();
        bad_magic[16] = 1;
        assert!(corrupt(validate_records(&bad_magic, 1 << 20)));
        let mut short_len = good.clone();
        short_len[8..12].copy_from_slice(&48i32.to_be_bytes());
        assert!(corrupt(validate_records(&short_len, 1 << 20)));
        let bad_delta = BatchBuilder { last_offset_delta: 2, ..BatchBuilder::new(5) }.build(b"x");
        assert!(corrupt(validate_records(&bad_delta, 1 << 20)));
        assert!(
            matches!(validate_records(&good, good.len() - 1), Err(EngineError::MessageTooLarge(n)) if n == good.len())
        );
    }

    #[test]
    fn offsets_must_match_the_record_count() {
        let claiming = |records: i32, last_offset_delta: i32| {
            BatchBuilder { last_offset_delta, ..BatchBuilder::new(records) }.build(b"r")
        };
        let invalid = |r: Result<RecordsSummary, EngineError>| matches!(r, Err(EngineError::InvalidRecord(_)));
        assert!(invalid(validate_records(&claiming(1, i32::MAX), 1 << 20)), "sparse offsets");
        assert!(invalid(validate_records(&claiming(0, 0), 1 << 20)), "no records");
        // Header bytes alone could claim 2^31 offsets per batch: more than a
        // segment's relative offsets hold.
        let huge = claiming(i32::MAX, i32::MAX - 1);
        assert_eq!(validate_records(&huge, 1 << 20).expect("one huge claim").offset_count, i64::from(i32::MAX));
        assert!(invalid(validate_records(&[huge.clone(), claiming(1, 0)].concat(), 1 << 20)), "over i32::MAX");
    }

    #[test]
    fn patch_keeps_crc_valid() {
        let mut b = batch(4, b"payload");
        patch_header(&mut b, 1234);
        let h = check_batch_at(&b).expect("still valid");
        assert_eq!(h.base_offset, 1234);
        assert_eq!(h.last_offset(), 1237);
        assert_eq!(&b[12..16], &[0, 0, 0, 0]);
    }

    #[test]
    fn log_append_time_rewrites_crc() {
        let mut b = batch(2, b"xy");
        let before = b.clone();
        set_log_append_time(&mut b, 42);
        let h = check_batch_at(&b).expect("crc recomputed");
        assert_ne!(h.crc, parse_header(&before).expect("header").crc);
        assert_eq!(max_timestamp(&b), 42);
        assert_eq!(attributes(&b) & ATTR_LOG_APPEND_TIME, ATTR_LOG_APPEND_TIME);
    }
}
