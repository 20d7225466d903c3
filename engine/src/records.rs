//! Records inside an uncompressed RecordBatch v2: what compaction and
//! timestamp lookups need (offset, timestamp, key, whether the value is null),
//! rebuilding a batch from a subset of its records, and [`RecordsBuilder`],
//! the one builder of batches as clients write them.
//!
//! Record layout (after the 61-byte batch header; varints are zigzag):
//!
//! ```text
//! length varint | attributes i8 | timestampDelta varlong | offsetDelta varint |
//! keyLength varint | key | valueLength varint | value | headerCount varint | headers
//! ```
//!
//! `length` counts the bytes after itself. A key or value length of -1 is null.

use crate::batch::{BatchBuilder, RawHeader, ATTR_CONTROL, ATTR_LOG_APPEND_TIME, ATTR_TRANSACTIONAL, HEADER_LEN};
use crate::compression::{compress, Codec};
use crate::error::EngineError;
use bytes::Bytes;

/// One record of a batch, borrowed from the batch bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Offset of the record minus the batch's base offset.
    pub offset_delta: i32,
    /// The record's timestamp: baseTimestamp + delta, or the batch's
    /// maxTimestamp when the batch uses LogAppendTime.
    pub timestamp: i64,
    /// The key; `None` when null.
    pub key: Option<&'a [u8]>,
    /// True when the value is null (a tombstone).
    pub tombstone: bool,
    /// The whole record, its length varint included.
    pub bytes: &'a [u8],
}

/// True when the batch's records can be parsed without a codec: not
/// compressed and not a control batch.
pub fn is_plain(batch: &[u8]) -> bool {
    RawHeader::of(batch).is_some_and(|h| h.compression() == 0 && !h.is_control())
}

/// Reads a zigzag varint (up to 64 bits) at `*pos`.
fn varlong(buf: &[u8], pos: &mut usize) -> Result<i64, String> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or("varint past the end")?;
        *pos += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
        }
    }
    Err("varint longer than 10 bytes".into())
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<i32, String> {
    let v = varlong(buf, pos)?;
    i32::try_from(v).map_err(|_| format!("varint {v} out of i32 range"))
}

/// Bytes `[*pos, *pos + len)` for a nullable length; advances `pos`.
fn nullable<'a>(buf: &'a [u8], pos: &mut usize, len: i32) -> Result<Option<&'a [u8]>, String> {
    if len < 0 {
        return Ok(None);
    }
    let end = pos.checked_add(len as usize).filter(|&e| e <= buf.len()).ok_or("field past the record end")?;
    let out = &buf[*pos..end];
    *pos = end;
    Ok(Some(out))
}

/// Parses every record of a whole, plain (see [`is_plain`]) batch.
pub fn parse(batch: &[u8]) -> Result<Vec<Record<'_>>, String> {
    let h = RawHeader::of(batch).ok_or("short batch header")?;
    if batch.len() != h.total_len() {
        return Err(format!("batch is {} bytes, header says {}", batch.len(), h.total_len()));
    }
    let log_append = h.attributes() & ATTR_LOG_APPEND_TIME != 0;
    let (base_ts, max_ts) = (h.base_timestamp(), h.max_timestamp());
    let mut out = Vec::with_capacity(h.records_count().clamp(0, 4096) as usize);
    let mut pos = HEADER_LEN;
    for _ in 0..h.records_count() {
        let start = pos;
        let len = varint(batch, &mut pos)?;
        let end = pos.checked_add(usize::try_from(len).map_err(|_| "negative record length")?);
        let end = end.filter(|&e| e <= batch.len()).ok_or("record past the batch end")?;
        let body = &batch[..end];
        pos += 1; // attributes
        let ts_delta = varlong(body, &mut pos)?;
        let offset_delta = varint(body, &mut pos)?;
        let key_len = varint(body, &mut pos)?;
        let key = nullable(body, &mut pos, key_len)?;
        let value_len = varint(body, &mut pos)?;
        if offset_delta < 0 || offset_delta > h.last_offset_delta() {
            return Err(format!("offset delta {offset_delta} outside the batch"));
        }
        let timestamp = if log_append { max_ts } else { base_ts.wrapping_add(ts_delta) };
        out.push(Record { offset_delta, timestamp, key, tombstone: value_len < 0, bytes: &batch[start..end] });
        pos = end;
    }
    if pos != batch.len() {
        return Err(format!("{} bytes after the last record", batch.len() - pos));
    }
    Ok(out)
}

/// Kafka's bounds on CreateTime timestamps (`message.timestamp.before.max.ms`
/// and `after.max.ms`): every record of the validated payload `records` must
/// be stamped within [`now_ms - before`, `now_ms + after`]; -1 (no timestamp)
/// passes, as in Kafka. A plain batch is checked by its maxTimestamp and,
/// with a `before` bound, record by record; a compressed one (its records
/// are not read here) by its baseTimestamp (the first record's) and
/// maxTimestamp.
pub fn check_timestamps(
    records: &[u8],
    now_ms: i64,
    before_max_ms: Option<u64>,
    after_max_ms: Option<u64>,
) -> Result<(), EngineError> {
    if before_max_ms.is_none() && after_max_ms.is_none() {
        return Ok(());
    }
    let ms = |bound: u64| i64::try_from(bound).unwrap_or(i64::MAX);
    let earliest = before_max_ms.map_or(i64::MIN, |b| now_ms.saturating_sub(ms(b)));
    let latest = after_max_ms.map_or(i64::MAX, |a| now_ms.saturating_add(ms(a)));
    let outside = |ts: i64| ts != -1 && (ts < earliest || ts > latest);
    let mut pos = 0;
    while pos < records.len() {
        let h = RawHeader::of(&records[pos..]).ok_or_else(|| EngineError::CorruptMessage("short batch".into()))?;
        let one =
            records.get(pos..pos + h.total_len()).ok_or_else(|| EngineError::CorruptMessage("short batch".into()))?;
        let mut bad = [h.max_timestamp()].into_iter().find(|&ts| outside(ts));
        if bad.is_none() && before_max_ms.is_some() {
            bad = if is_plain(one) {
                let parsed = parse(one).map_err(|e| EngineError::CorruptMessage(format!("batch at {pos}: {e}")))?;
                parsed.iter().map(|r| r.timestamp).find(|&ts| outside(ts))
            } else {
                Some(h.base_timestamp()).filter(|&ts| outside(ts))
            };
        }
        if let Some(ts) = bad {
            return Err(EngineError::InvalidTimestamp(format!(
                "timestamp {ts} of a record in the batch at {pos} is outside [{earliest}, {latest}] \
                 (message.timestamp.before.max.ms / after.max.ms)"
            )));
        }
        pos += h.total_len();
    }
    Ok(())
}

/// A copy of `batch` holding only `keep` (records of that batch, in order):
/// same base offset, lastOffsetDelta, timestamps and attributes (so the batch
/// still spans its original offsets), new recordsCount, length and CRC.
pub fn rebuild(batch: &[u8], keep: &[Record<'_>]) -> Vec<u8> {
    let h = RawHeader::of(batch).expect("a whole batch");
    let body = keep.iter().map(|r| r.bytes).collect::<Vec<_>>().concat();
    let count = i32::try_from(keep.len()).expect("fewer records than the original batch");
    h.build(h.attributes(), count, &body).expect("smaller than the original batch")
}

/// A record header as [`RecordsBuilder::push`] takes it: key, value (`None`: null).
pub type Header<'a> = (&'a str, Option<&'a [u8]>);

/// Builds one RecordBatch v2 as a client sends it: the one writer of batch
/// bytes for the tools, the bench, tests and the batches the broker writes
/// itself. Records get offset deltas 0, 1, ... (the broker assigns the real
/// offsets); the first record's timestamp is the baseTimestamp, the latest
/// the maxTimestamp (both -1 in a batch with no records). The
/// partitionLeaderEpoch is -1, as clients send it.
///
/// ```
/// # use weir_engine::records::RecordsBuilder;
/// let batch = RecordsBuilder::new().producer(7, 0, 0).push(Some(b"k"), Some(b"v"), &[], 1000).finish();
/// assert_eq!(weir_engine::batch::check_batch_at(&batch).unwrap().records_count(), 1);
/// ```
#[derive(Clone, Debug)]
pub struct RecordsBuilder {
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    /// The transactional and control bits; the codec's are set by `finish`.
    attributes: i16,
    codec: Codec,
    base_timestamp: i64,
    max_timestamp: i64,
    count: i32,
    /// The records, uncompressed.
    body: Vec<u8>,
}

impl Default for RecordsBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl RecordsBuilder {
    /// An uncompressed batch of no producer (id, epoch and base sequence -1).
    pub fn new() -> Self {
        RecordsBuilder {
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            attributes: 0,
            codec: Codec::None,
            base_timestamp: -1,
            max_timestamp: -1,
            count: 0,
            body: Vec::new(),
        }
    }

    /// Written by producer `id` at `epoch`, its first record numbered
    /// `base_sequence` (-1: not idempotent).
    pub fn producer(self, id: i64, epoch: i16, base_sequence: i32) -> Self {
        RecordsBuilder { producer_id: id, producer_epoch: epoch, base_sequence, ..self }
    }

    /// Part of the producer's transaction.
    pub fn transactional(self) -> Self {
        RecordsBuilder { attributes: self.attributes | ATTR_TRANSACTIONAL, ..self }
    }

    /// A control batch (transaction markers; implies transactional).
    pub fn control(self) -> Self {
        RecordsBuilder { attributes: self.attributes | ATTR_CONTROL | ATTR_TRANSACTIONAL, ..self }
    }

    /// Records compressed with `codec` at its default level.
    pub fn compression(self, codec: Codec) -> Self {
        RecordsBuilder { codec, ..self }
    }

    /// Adds a record stamped `timestamp` (CreateTime; -1: none).
    pub fn push(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header<'_>],
        timestamp: i64,
    ) -> &mut Self {
        if self.count == 0 {
            self.base_timestamp = timestamp;
        }
        self.max_timestamp = if self.count == 0 { timestamp } else { self.max_timestamp.max(timestamp) };
        let mut record = vec![0u8]; // attributes
        put_varlong(&mut record, timestamp.wrapping_sub(self.base_timestamp));
        put_varlong(&mut record, i64::from(self.count));
        put_nullable(&mut record, key);
        put_nullable(&mut record, value);
        put_varlong(&mut record, headers.len() as i64);
        for (name, value) in headers {
            put_nullable(&mut record, Some(name.as_bytes()));
            put_nullable(&mut record, *value);
        }
        put_varlong(&mut self.body, record.len() as i64);
        self.body.extend_from_slice(&record);
        self.count = self.count.checked_add(1).expect("fewer than 2^31 records in a batch");
        self
    }

    /// How many records were pushed.
    pub fn records_count(&self) -> i32 {
        self.count
    }

    /// The batch bytes, length and CRC set.
    pub fn finish(&self) -> Bytes {
        let header = BatchBuilder {
            leader_epoch: -1,
            base_timestamp: self.base_timestamp,
            max_timestamp: self.max_timestamp,
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            base_sequence: self.base_sequence,
            ..BatchBuilder::new(self.count)
        }
        .header();
        let records = compress(self.codec, &self.body, self.codec.default_level()).expect("compressing in memory");
        let batch =
            header.build(self.attributes | self.codec as i16, self.count, &records).expect("a batch under 2 GiB");
        Bytes::from(batch)
    }
}

/// Appends `v` as a zigzag varint.
fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        let b = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// Appends a length-prefixed field; `None` is length -1.
fn put_nullable(out: &mut Vec<u8>, field: Option<&[u8]>) {
    match field {
        Some(f) => {
            put_varlong(out, f.len() as i64);
            out.extend_from_slice(f);
        }
        None => put_varlong(out, -1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_rebuild() {
        let b = RecordsBuilder::new()
            .push(Some(b"a"), Some(b"1"), &[], 1000)
            .push(None, Some(b"22"), &[], 1001)
            .push(Some(b"a"), None, &[], 1002)
            .finish();
        crate::batch::check_batch_at(&b).expect("valid");
        let recs = parse(&b).expect("parse");
        assert_eq!(recs.len(), 3);
        assert_eq!((recs[0].key, recs[0].tombstone, recs[0].timestamp), (Some(&b"a"[..]), false, 1000));
        assert_eq!((recs[1].key, recs[1].offset_delta), (None, 1));
        assert_eq!((recs[2].tombstone, recs[2].timestamp), (true, 1002));
        let small = rebuild(&b, &recs[1..2]);
        let h = crate::batch::check_batch_at(&small).expect("rebuilt batch valid");
        assert_eq!((h.records_count(), h.last_offset_delta()), (1, 2));
        assert_eq!(parse(&small).expect("parse")[0].offset_delta, 1);
        let empty = rebuild(&b, &[]);
        assert_eq!(crate::batch::check_batch_at(&empty).expect("empty batch valid").records_count(), 0);
        let mut bad = b.to_vec();
        bad[HEADER_LEN] = 0x7e; // record length 63: past the end
        assert!(parse(&bad).is_err());
    }

    #[test]
    fn timestamps_are_checked_against_the_bounds() {
        let b = RecordsBuilder::new()
            .push(Some(b"a"), Some(b"1"), &[], 1000)
            .push(Some(b"b"), Some(b"2"), &[], 1001)
            .finish();
        let two = [b.clone(), b.clone()].concat();
        let refused = |r: Result<(), EngineError>| matches!(r, Err(EngineError::InvalidTimestamp(_)));
        assert!(check_timestamps(&two, 1000, None, None).is_ok());
        assert!(check_timestamps(&two, 1000, Some(0), Some(1)).is_ok());
        assert!(refused(check_timestamps(&two, 1000, None, Some(0))), "1001 is ahead of 1000");
        // maxTimestamp 1001 is within; the first record (1000) is not.
        assert!(refused(check_timestamps(&two, 1001, Some(0), None)));
        assert!(check_timestamps(&two, 5000, Some(4000), None).is_ok());
        // No timestamp (-1) passes.
        let untimed = RecordsBuilder::new().push(Some(b"a"), Some(b"1"), &[], -1).finish();
        assert!(check_timestamps(&untimed, 1000, Some(0), Some(0)).is_ok());
        // A compressed batch is judged by its baseTimestamp and maxTimestamp.
        let mut compressed = b.to_vec();
        compressed[22] |= 1; // gzip; its body is not read
        assert!(refused(check_timestamps(&compressed, 1001, Some(0), None)));
        assert!(check_timestamps(&compressed, 1000, Some(0), Some(1)).is_ok());
    }

    #[test]
    fn built_batches_are_as_clients_send_them() {
        let b = RecordsBuilder::new()
            .producer(7, 2, 40)
            .transactional()
            .push(Some(b"k"), None, &[("h", Some(b"x")), ("n", None)], 500)
            .push(None, Some(b"v"), &[], 400)
            .finish();
        let h = crate::batch::check_batch_at(&b).expect("valid");
        assert_eq!((h.leader_epoch(), h.base_timestamp(), h.max_timestamp()), (-1, 500, 500));
        assert_eq!((h.producer_id(), h.producer_epoch(), h.base_sequence()), (7, 2, 40));
        assert!(h.is_transactional() && !h.is_control());
        let recs = parse(&b).expect("parse");
        assert_eq!((recs[0].key, recs[0].tombstone, recs[1].timestamp), (Some(&b"k"[..]), true, 400));

        let empty = RecordsBuilder::new().control().finish();
        let h = crate::batch::check_batch_at(&empty).expect("valid");
        assert_eq!((h.records_count(), h.base_timestamp(), h.max_timestamp()), (0, -1, -1));
        assert!(h.is_control() && h.is_transactional());

        let mut big = RecordsBuilder::new().compression(Codec::Zstd);
        for i in 0..100 {
            big.push(None, Some(&[7u8; 1000]), &[], i);
        }
        let zstd = big.finish();
        assert!(zstd.len() < 10_000);
        assert_eq!(Codec::of(&zstd), Ok(Codec::Zstd));
        let plain = crate::compression::with_codec(&zstd, Codec::None, 0).expect("decompresses");
        assert_eq!(parse(&plain).expect("parse").len(), 100);
    }
}
