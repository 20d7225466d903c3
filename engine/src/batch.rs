//! Kafka RecordBatch v2 headers: the layout ([`RawHeader`]), validation and
//! offset patching.
//!
//! The engine only looks at the 61-byte header and the CRC; record bodies are
//! opaque bytes. The broker rewrites baseOffset and partitionLeaderEpoch,
//! which are outside the CRC (CRC-32C of the bytes from attributes on).

use bytes::Bytes;
use zerocopy::byteorder::big_endian::{I16, I32, I64, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::error::EngineError;
use crate::log::MAX_APPEND_BYTES;

/// Bytes before `batchLength` counts: baseOffset + batchLength.
pub const LOG_OVERHEAD: usize = 12;
/// Size of the fixed RecordBatch v2 header.
pub const HEADER_LEN: usize = size_of::<RawHeader>();
/// Smallest legal `batchLength` (a header with no records).
pub const MIN_BATCH_LENGTH: i32 = (HEADER_LEN - LOG_OVERHEAD) as i32;
/// The only record-batch format the engine stores.
pub const MAGIC_V2: i8 = 2;

/// The CRC covers the batch from its attributes on.
const CRC_START: usize = std::mem::offset_of!(RawHeader, attributes);

/// The fixed RecordBatch v2 header, in place over the batch's first bytes:
/// the one description of the layout. Read with [`RawHeader::of`] (no copy),
/// changed with [`RawHeader::of_mut`]. Says nothing of validity: see
/// [`check_header`] and [`check_crc`].
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct RawHeader {
    base_offset: I64,
    batch_length: I32,
    leader_epoch: I32,
    magic: i8,
    crc: U32,
    attributes: I16,
    last_offset_delta: I32,
    base_timestamp: I64,
    max_timestamp: I64,
    producer_id: I64,
    producer_epoch: I16,
    base_sequence: I32,
    records_count: I32,
}

const _: () = assert!(HEADER_LEN == 61 && CRC_START == 21);

impl RawHeader {
    /// The header at the start of `buf`; `None` when `buf` is shorter.
    pub fn of(buf: &[u8]) -> Option<&RawHeader> {
        RawHeader::ref_from_prefix(buf).ok().map(|(h, _)| h)
    }

    /// The header at the start of `buf`, to change; `None` when `buf` is shorter.
    pub fn of_mut(buf: &mut [u8]) -> Option<&mut RawHeader> {
        RawHeader::mut_from_prefix(buf).ok().map(|(h, _)| h)
    }

    /// Offset of the first record (as stored; producers send 0).
    pub fn base_offset(&self) -> i64 {
        self.base_offset.get()
    }
    /// Bytes after the `batchLength` field.
    pub fn batch_length(&self) -> i32 {
        self.batch_length.get()
    }
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.get()
    }
    /// Format version; 2 for every batch the engine accepts.
    pub fn magic(&self) -> i8 {
        self.magic
    }
    /// CRC-32C the batch claims for its bytes from the attributes on.
    pub fn crc(&self) -> u32 {
        self.crc.get()
    }
    pub fn attributes(&self) -> i16 {
        self.attributes.get()
    }
    /// `lastOffset - baseOffset`.
    pub fn last_offset_delta(&self) -> i32 {
        self.last_offset_delta.get()
    }
    pub fn base_timestamp(&self) -> i64 {
        self.base_timestamp.get()
    }
    /// With LogAppendTime: the append time.
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp.get()
    }
    /// -1: no producer (neither idempotent nor transactional).
    pub fn producer_id(&self) -> i64 {
        self.producer_id.get()
    }
    pub fn producer_epoch(&self) -> i16 {
        self.producer_epoch.get()
    }
    pub fn base_sequence(&self) -> i32 {
        self.base_sequence.get()
    }
    /// Number of records the batch claims.
    pub fn records_count(&self) -> i32 {
        self.records_count.get()
    }

    /// Whole size of the batch on disk / on the wire.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length().max(0) as usize
    }

    /// Offset of the last record, given the header's base offset.
    pub fn last_offset(&self) -> i64 {
        self.base_offset() + i64::from(self.last_offset_delta())
    }

    /// Number of offsets the batch occupies.
    pub fn offset_count(&self) -> i64 {
        i64::from(self.last_offset_delta()) + 1
    }

    /// The compression codec bits (0 = none).
    pub fn compression(&self) -> i16 {
        self.attributes() & ATTR_COMPRESSION_MASK
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes() & ATTR_TRANSACTIONAL != 0
    }

    /// A transaction marker (written by a coordinator, never by clients).
    pub fn is_control(&self) -> bool {
        self.attributes() & ATTR_CONTROL != 0
    }

    /// A whole batch: this header with `attributes` and `records_count`,
    /// then `body`; its length and CRC set to match.
    pub fn build(&self, attributes: i16, records_count: i32, body: &[u8]) -> Result<Vec<u8>, String> {
        let body_len = body.len();
        let too_long = || format!("a batch of {body_len} body bytes is over 2 GiB");
        let batch_length =
            i32::try_from(HEADER_LEN - LOG_OVERHEAD).ok().and_then(|h| h.checked_add(i32::try_from(body_len).ok()?));
        let mut header = *self;
        header.batch_length.set(batch_length.ok_or_else(too_long)?);
        header.attributes.set(attributes);
        header.records_count.set(records_count);
        let mut batch = Vec::with_capacity(HEADER_LEN + body_len);
        batch.extend_from_slice(header.as_bytes());
        batch.extend_from_slice(body);
        rewrite_crc(&mut batch);
        Ok(batch)
    }

    /// The broker-owned fields, outside the CRC.
    fn set_placement(&mut self, base_offset: i64, leader_epoch: i32) {
        self.base_offset.set(base_offset);
        self.leader_epoch.set(leader_epoch);
    }
}

/// Checks the header fields that do not need the batch body: length, magic,
/// record count against `lastOffsetDelta`. `Err` carries a reason.
pub fn check_header(h: &RawHeader) -> Result<(), String> {
    let (batch_length, records_count, last_offset_delta) = (h.batch_length(), h.records_count(), h.last_offset_delta());
    if batch_length < MIN_BATCH_LENGTH {
        return Err(format!("batch length {batch_length} below minimum {MIN_BATCH_LENGTH}"));
    }
    if h.magic() != MAGIC_V2 {
        return Err(format!("unsupported magic {}", h.magic()));
    }
    if records_count < 0 {
        return Err(format!("negative record count {records_count}"));
    }
    if last_offset_delta < 0 {
        return Err(format!("negative last offset delta {last_offset_delta}"));
    }
    if i64::from(last_offset_delta) < i64::from(records_count) - 1 {
        return Err(format!("last offset delta {last_offset_delta} too small for {records_count} records"));
    }
    Ok(())
}

/// Checks the CRC-32C of one whole batch (`batch.len() == total_len`) whose
/// header is `h`.
pub fn check_crc(h: &RawHeader, batch: &[u8]) -> Result<(), String> {
    debug_assert_eq!(batch.len(), h.total_len());
    let actual = crc32c::crc32c(&batch[CRC_START..]);
    if actual != h.crc() {
        return Err(format!("crc mismatch: header {:#010x}, computed {:#010x}", h.crc(), actual));
    }
    Ok(())
}

/// Validates one batch at the start of `buf` (which may hold more after it)
/// and returns its header. Used for on-disk scans: any failure means "the log
/// ends here", so the error is just a reason.
pub fn check_batch_at(buf: &[u8]) -> Result<&RawHeader, String> {
    let h = RawHeader::of(buf).ok_or_else(|| format!("incomplete header: {} bytes", buf.len()))?;
    check_header(h)?;
    if buf.len() < h.total_len() {
        return Err(format!("incomplete batch: {} of {} bytes", buf.len(), h.total_len()));
    }
    check_crc(h, &buf[..h.total_len()])?;
    Ok(h)
}

/// The last offset of the last batch in `batches` (read from the log, so
/// already checked); None when no whole header is there.
pub fn last_offset_of(batches: &[u8]) -> Option<i64> {
    let (mut pos, mut last) = (0, None);
    while let Some(header) = batches.get(pos..).and_then(RawHeader::of) {
        last = Some(header.last_offset());
        pos += header.total_len();
    }
    last
}

/// The length of the whole batches of `records` whose base offset is below
/// `limit` (a read cut at the high watermark or the last stable offset,
/// which are batch boundaries).
pub fn batches_below(records: &[u8], limit: i64) -> usize {
    let mut pos = 0;
    while let Some(header) = records.get(pos..).and_then(RawHeader::of) {
        if header.base_offset() >= limit || pos + header.total_len() > records.len() {
            break;
        }
        pos += header.total_len();
    }
    pos
}

/// A produce payload that passed [`validate_records`]: its bytes and what
/// validation learnt, so the appends (and the producer checks before them)
/// read the headers without checking them again.
#[derive(Clone, Debug)]
pub struct ValidatedRecords {
    bytes: Bytes,
    batches: usize,
    offset_count: i64,
}

impl ValidatedRecords {
    /// The payload as given: one or more whole batches.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// Number of batches.
    pub fn batches(&self) -> usize {
        self.batches
    }

    /// Number of offsets (and records) the batches occupy together.
    pub fn offset_count(&self) -> i64 {
        self.offset_count
    }

    /// The header of the first batch (the only one in an idempotent produce).
    pub fn first_header(&self) -> &RawHeader {
        RawHeader::of(&self.bytes).expect("a validated payload starts with a whole batch")
    }
}

/// Most offsets one produce payload may take: with the writer's roll before
/// an append that would not fit, every offset of an append stays within the
/// u32 relative offsets of its segment. (Record counts are claimed, not
/// counted, so this bounds what a few header bytes can claim.)
pub const MAX_PAYLOAD_OFFSETS: i64 = i32::MAX as i64;

/// Validates a produce payload: at most [`MAX_APPEND_BYTES`], one or more
/// concatenated RecordBatch v2, each complete, well-formed, CRC-correct and
/// at most `max_batch_bytes` long, and each with one offset per record, as
/// Kafka requires of producers (stored batches may have fewer records after
/// compaction). Nothing is modified; one bad batch rejects the whole payload.
pub fn validate_records(records: Bytes, max_batch_bytes: usize) -> Result<ValidatedRecords, EngineError> {
    if records.len() > MAX_APPEND_BYTES {
        return Err(EngineError::MessageTooLarge(records.len()));
    }
    if records.is_empty() {
        return Err(EngineError::CorruptMessage("empty records".into()));
    }
    let (mut pos, mut batches, mut offset_count) = (0usize, 0usize, 0i64);
    while pos < records.len() {
        let rest = &records[pos..];
        let h = RawHeader::of(rest).ok_or_else(|| {
            EngineError::CorruptMessage(format!("trailing {} bytes at {pos} are not a batch header", rest.len()))
        })?;
        if h.batch_length() >= 0 && h.total_len() > max_batch_bytes {
            return Err(EngineError::MessageTooLarge(h.total_len()));
        }
        check_header(h).map_err(|e| EngineError::CorruptMessage(format!("batch at {pos}: {e}")))?;
        if rest.len() < h.total_len() {
            return Err(EngineError::CorruptMessage(format!(
                "batch at {pos} truncated: {} of {} bytes",
                rest.len(),
                h.total_len()
            )));
        }
        check_crc(h, &rest[..h.total_len()])
            .map_err(|e| EngineError::CorruptMessage(format!("batch at {pos}: {e}")))?;
        if h.records_count() == 0 || h.offset_count() != i64::from(h.records_count()) {
            return Err(EngineError::InvalidRecord(format!(
                "batch at {pos}: {} records for offset range 0..={}",
                h.records_count(),
                h.last_offset_delta()
            )));
        }
        batches += 1;
        offset_count += h.offset_count();
        if offset_count > MAX_PAYLOAD_OFFSETS {
            return Err(EngineError::InvalidRecord(format!("payload claims over {MAX_PAYLOAD_OFFSETS} offsets")));
        }
        pos += h.total_len();
    }
    debug_assert_eq!(pos, records.len());
    Ok(ValidatedRecords { bytes: records, batches, offset_count })
}

/// Validates batches copied from a leader (a follower's append): each
/// complete, well-formed and CRC-correct, with offsets that start at or
/// after `from` and increase from batch to batch. Unlike a producer's, a
/// stored batch may hold fewer records than offsets (compaction), and gaps
/// between batches are allowed. `offset_count` is the span from the first
/// base offset to the last offset.
pub fn validate_replicated(records: Bytes, from: i64) -> Result<ValidatedRecords, EngineError> {
    if records.len() > MAX_APPEND_BYTES {
        return Err(EngineError::MessageTooLarge(records.len()));
    }
    let (mut pos, mut batches, mut next, mut first) = (0usize, 0usize, from, None);
    while pos < records.len() {
        let h =
            check_batch_at(&records[pos..]).map_err(|e| EngineError::CorruptMessage(format!("batch at {pos}: {e}")))?;
        if h.base_offset() > i64::MAX / 2 {
            return Err(EngineError::CorruptMessage(format!(
                "batch at {pos}: base offset {} out of range",
                h.base_offset()
            )));
        }
        if h.base_offset() < next {
            return Err(EngineError::CorruptMessage(format!(
                "batch at {pos} starts at offset {}, before {next}",
                h.base_offset()
            )));
        }
        first.get_or_insert(h.base_offset());
        next = h.last_offset() + 1;
        batches += 1;
        pos += h.total_len();
    }
    let first = first.ok_or_else(|| EngineError::CorruptMessage("empty records".into()))?;
    Ok(ValidatedRecords { bytes: records, batches, offset_count: next - first })
}

/// Rewrites the broker-owned header fields of the batch at the start of
/// `batch`: baseOffset and partitionLeaderEpoch. Both are outside the CRC.
pub fn patch_header(batch: &mut [u8], base_offset: i64, leader_epoch: i32) {
    RawHeader::of_mut(batch).expect("a whole header").set_placement(base_offset, leader_epoch);
}

/// Attributes: the compression codec bits (0 = none).
pub const ATTR_COMPRESSION_MASK: i16 = 0x07;
/// Attributes: the timestamp-type bit (set = LogAppendTime).
pub const ATTR_LOG_APPEND_TIME: i16 = 0x08;
/// Attributes: the batch is part of a transaction.
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
/// Attributes: the batch is a control batch (transaction markers).
pub const ATTR_CONTROL: i16 = 0x20;

/// Recomputes and stores the CRC-32C of a whole batch.
pub fn rewrite_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[CRC_START..]);
    RawHeader::of_mut(batch).expect("a whole header").crc.set(crc);
}

/// Applies `message.timestamp.type=LogAppendTime` to a whole batch, as Kafka
/// does: the timestamp-type attribute is set and maxTimestamp becomes
/// `append_time_ms`; both are inside the CRC, which is recomputed.
/// (baseTimestamp and the record deltas stay; readers take maxTimestamp.)
pub fn set_log_append_time(batch: &mut [u8], append_time_ms: i64) {
    let h = RawHeader::of_mut(batch).expect("a whole header");
    h.attributes.set(h.attributes() | ATTR_LOG_APPEND_TIME);
    h.max_timestamp.set(append_time_ms);
    rewrite_crc(batch);
}

/// The header of a well-formed RecordBatch v2 to build around a body the
/// engine treats as opaque record bytes, for tests, benches, examples, fuzz
/// seeds and [`crate::records::RecordsBuilder`]. [`BatchBuilder::new`] claims
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
        self.header().build(0, self.records, body).expect("a batch under 2 GiB")
    }

    /// This header, attributes 0; its length and CRC are set by [`RawHeader::build`].
    pub fn header(&self) -> RawHeader {
        RawHeader {
            base_offset: 0.into(),
            batch_length: 0.into(),
            leader_epoch: self.leader_epoch.into(),
            magic: MAGIC_V2,
            crc: 0.into(),
            attributes: 0.into(),
            last_offset_delta: self.last_offset_delta.into(),
            base_timestamp: self.base_timestamp.into(),
            max_timestamp: self.max_timestamp.into(),
            producer_id: self.producer_id.into(),
            producer_epoch: self.producer_epoch.into(),
            base_sequence: self.base_sequence.into(),
            records_count: self.records.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(records: i32, body: &[u8]) -> Vec<u8> {
        BatchBuilder { leader_epoch: 7, ..BatchBuilder::new(records) }.build(body)
    }

    fn validate(records: &[u8], max_batch_bytes: usize) -> Result<ValidatedRecords, EngineError> {
        validate_records(Bytes::copy_from_slice(records), max_batch_bytes)
    }

    #[test]
    fn validates_concatenated_batches() {
        let mut r = batch(3, b"abc");
        r.extend(batch(1, b""));
        let v = validate_records(Bytes::from(r.clone()), 1 << 20).expect("valid");
        assert_eq!((v.batches(), v.offset_count(), v.bytes()), (2, 4, &Bytes::from(r)));
        assert_eq!(v.first_header().records_count(), 3);
    }

    #[test]
    fn rejects_bad_batches() {
        let good = batch(2, b"hello");
        let corrupt = |r: Result<ValidatedRecords, EngineError>| matches!(r, Err(EngineError::CorruptMessage(_)));
        assert!(corrupt(validate(&[], 1 << 20)));
        assert!(corrupt(validate(&good[..good.len() - 1], 1 << 20)));
        let mut trailing = good.clone();
        trailing.extend_from_slice(&good[..20]);
        assert!(corrupt(validate(&trailing, 1 << 20)));
        let mut bad_crc = good.clone();
        *bad_crc.last_mut().expect("non-empty") ^= 1;
        assert!(corrupt(validate(&bad_crc, 1 << 20)));
        let mut bad_magic = good.clone();
        bad_magic[16] = 1;
        assert!(corrupt(validate(&bad_magic, 1 << 20)));
        let mut short_len = good.clone();
        short_len[8..12].copy_from_slice(&48i32.to_be_bytes());
        assert!(corrupt(validate(&short_len, 1 << 20)));
        let bad_delta = BatchBuilder { last_offset_delta: 2, ..BatchBuilder::new(5) }.build(b"x");
        assert!(corrupt(validate(&bad_delta, 1 << 20)));
        assert!(matches!(validate(&good, good.len() - 1), Err(EngineError::MessageTooLarge(n)) if n == good.len()));
    }

    #[test]
    fn reads_are_cut_at_the_batch_that_starts_at_the_limit() {
        let mut records = Vec::new();
        for base in [10i64, 12] {
            let mut batch = BatchBuilder::new(2).build(b"records");
            patch_header(&mut batch, base, 0);
            records.extend_from_slice(&batch);
        }
        let one = records.len() / 2;
        assert_eq!(batches_below(&records, 12), one);
        assert_eq!(batches_below(&records, 13), records.len());
        assert_eq!(batches_below(&records, 10), 0);
        assert_eq!(last_offset_of(&records), Some(13));
        assert_eq!(batches_below(&records[..one + 5], 100), one, "a partial batch is not counted");
    }

    #[test]
    fn offsets_must_match_the_record_count() {
        let claiming = |records: i32, last_offset_delta: i32| {
            BatchBuilder { last_offset_delta, ..BatchBuilder::new(records) }.build(b"r")
        };
        let invalid = |r: Result<ValidatedRecords, EngineError>| matches!(r, Err(EngineError::InvalidRecord(_)));
        assert!(invalid(validate(&claiming(1, i32::MAX), 1 << 20)), "sparse offsets");
        assert!(invalid(validate(&claiming(0, 0), 1 << 20)), "no records");
        // Header bytes alone could claim 2^31 offsets per batch: more than a
        // segment's relative offsets hold.
        let huge = claiming(i32::MAX, i32::MAX - 1);
        assert_eq!(validate(&huge, 1 << 20).expect("one huge claim").offset_count(), i64::from(i32::MAX));
        assert!(invalid(validate(&[huge.clone(), claiming(1, 0)].concat(), 1 << 20)), "over i32::MAX");
    }

    #[test]
    fn patch_keeps_crc_valid() {
        let mut b = batch(4, b"payload");
        patch_header(&mut b, 1234, 0);
        let h = check_batch_at(&b).expect("still valid");
        assert_eq!(h.base_offset(), 1234);
        assert_eq!(h.last_offset(), 1237);
        assert_eq!(h.leader_epoch(), 0);
    }

    #[test]
    fn log_append_time_rewrites_crc() {
        let mut b = batch(2, b"xy");
        let before = b.clone();
        set_log_append_time(&mut b, 42);
        let h = check_batch_at(&b).expect("crc recomputed");
        assert_ne!(h.crc(), RawHeader::of(&before).expect("header").crc());
        assert_eq!(h.max_timestamp(), 42);
        assert_eq!(h.attributes() & ATTR_LOG_APPEND_TIME, ATTR_LOG_APPEND_TIME);
    }
}
