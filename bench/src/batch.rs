//! Produce request frames built once and patched per send, and the scan of
//! fetched batches that counts messages and reads their send times.
//!
//! An uncompressed batch is built once; sending it again
//! only rewrites the correlation id, the keys and value timestamps in place,
//! and the batch CRC-32C. A compressed batch that must carry fresh
//! timestamps or keys is encoded again for every send, as a client would.

use crate::params::{CompressionKind, KeyDistribution, TIMESTAMP_BYTES};
use crate::wire::{encode_frame, patch_correlation_id};
use anyhow::{bail, ensure, Context};
use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;
use weir_engine::batch::{RawHeader, HEADER_LEN, MAGIC_V2, MIN_BATCH_LENGTH};
use weir_engine::records::RecordsBuilder;

const KEY_BYTES: usize = 8;

/// What a producer writes: topic, payload shape and settings.
#[derive(Clone, Debug)]
pub struct Shape {
    pub topic: String,
    pub message_size: usize,
    pub records: usize,
    pub compression: CompressionKind,
    pub keys: KeyDistribution,
    pub acks: i16,
    pub timeout_ms: i32,
    /// Write the send time into each value (when the value has room).
    pub stamp: bool,
}

/// A produce request for one partition that can be sent again and again.
pub struct Template {
    frame: Vec<u8>,
    version: i16,
    partition: i32,
    shape: Shape,
    /// Where the batch starts in `frame` (None: re-encoded per send).
    layout: Option<Layout>,
    values: Vec<Bytes>,
    rng: u64,
}

/// Positions, relative to the frame, of what gets patched.
#[derive(Debug, Clone, PartialEq)]
struct Layout {
    batch_at: usize,
    batch_len: usize,
    keys: Vec<usize>,
    values: Vec<usize>,
}

impl Template {
    /// A template for `partition` at Produce `version` (3 or later).
    pub fn new(shape: &Shape, partition: i32, version: i16, seed: u64) -> anyhow::Result<Template> {
        ensure!(version >= 3, "Produce v{version} cannot carry RecordBatch v2");
        let mut rng = seed | 1;
        let values: Vec<Bytes> = (0..shape.records)
            .map(|_| {
                let mut v = vec![0u8; shape.message_size];
                fill_random(&mut v, &mut rng);
                Bytes::from(v)
            })
            .collect();
        let mut t = Template { frame: Vec::new(), version, partition, shape: shape.clone(), layout: None, values, rng };
        let batch = t.encode_batch(0, 0);
        t.frame = t.request_frame(batch.clone())?.to_vec();
        if shape.compression == CompressionKind::None {
            let batch_at = find(&t.frame, &batch).context("the encoded batch is not in the request frame")?;
            let (keys, values) = record_positions(&batch)?;
            t.layout = Some(Layout {
                batch_at,
                batch_len: batch.len(),
                keys: keys.into_iter().flatten().map(|k| batch_at + k).collect(),
                values: values.into_iter().map(|v| batch_at + v).collect(),
            });
        }
        Ok(t)
    }

    pub fn partition(&self) -> i32 {
        self.partition
    }

    pub fn records(&self) -> usize {
        self.shape.records
    }

    fn needs_refresh(&self) -> bool {
        self.shape.stamp || self.shape.keys != KeyDistribution::None
    }

    /// The frame to send: `sequence` numbers the first record (sequential keys),
    /// `send_time_ns` is written into each value's first 8 bytes.
    pub fn frame(&mut self, correlation_id: i32, sequence: u64, send_time_ns: u64) -> anyhow::Result<&[u8]> {
        if self.layout.is_none() && self.needs_refresh() {
            let batch = self.encode_batch(sequence, send_time_ns);
            self.frame = self.request_frame(batch)?.to_vec();
        } else if let Some(layout) = &self.layout {
            if self.needs_refresh() {
                for (i, &at) in layout.keys.iter().enumerate() {
                    let key = key_for(self.shape.keys, sequence + i as u64, &mut self.rng);
                    self.frame[at..at + KEY_BYTES].copy_from_slice(&key);
                }
                if self.shape.stamp && self.shape.message_size >= TIMESTAMP_BYTES {
                    for &at in &layout.values {
                        self.frame[at..at + TIMESTAMP_BYTES].copy_from_slice(&send_time_ns.to_be_bytes());
                    }
                }
                let batch = &mut self.frame[layout.batch_at..layout.batch_at + layout.batch_len];
                weir_engine::batch::rewrite_crc(batch);
            }
        }
        patch_correlation_id(&mut self.frame, correlation_id);
        Ok(&self.frame)
    }

    fn encode_batch(&mut self, sequence: u64, send_time_ns: u64) -> Bytes {
        let millis = (send_time_ns / 1_000_000) as i64;
        let mut batch = RecordsBuilder::new().compression(self.shape.compression.codec());
        for (i, value) in self.values.iter().enumerate() {
            let key = match self.shape.keys {
                KeyDistribution::None => None,
                keys => Some(key_for(keys, sequence + i as u64, &mut self.rng)),
            };
            let stamped;
            let value = if self.shape.stamp && value.len() >= TIMESTAMP_BYTES {
                let mut v = value.to_vec();
                v[..TIMESTAMP_BYTES].copy_from_slice(&send_time_ns.to_be_bytes());
                stamped = v;
                &stamped[..]
            } else {
                &value[..]
            };
            batch.push(key.as_ref().map(|k| &k[..]), Some(value), &[], millis);
        }
        batch.finish()
    }

    fn request_frame(&self, batch: Bytes) -> anyhow::Result<Bytes> {
        let request = ProduceRequest::default()
            .with_acks(self.shape.acks)
            .with_timeout_ms(self.shape.timeout_ms)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(self.shape.topic.clone())))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(self.partition)
                    .with_records(Some(batch))])]);
        encode_frame(&request, self.version, 0)
    }
}

fn key_for(keys: KeyDistribution, sequence: u64, rng: &mut u64) -> [u8; KEY_BYTES] {
    match keys {
        KeyDistribution::Sequential => sequence.to_be_bytes(),
        _ => xorshift(rng).to_be_bytes(),
    }
}

fn xorshift(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

/// Incompressible bytes: compression costs what it costs on random data.
fn fill_random(buf: &mut [u8], rng: &mut u64) {
    for chunk in buf.chunks_mut(8) {
        let r = xorshift(rng).to_le_bytes();
        chunk.copy_from_slice(&r[..chunk.len()]);
    }
}

/// The batch's start in `frame`: it is near the end (only tagged fields follow it).
fn find(frame: &[u8], batch: &[u8]) -> Option<usize> {
    let last = frame.len().checked_sub(batch.len())?;
    (0..=last.min(16)).map(|tail| last - tail).find(|&at| &frame[at..at + batch.len()] == batch)
}

/// Reads a zig-zag varint (the record fields' encoding) at `*at`.
fn varint(buf: &[u8], at: &mut usize) -> anyhow::Result<i64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let Some(&byte) = buf.get(*at) else { bail!("record batch ends inside a varint") };
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
        }
    }
    bail!("varint longer than 10 bytes")
}

/// One record of an uncompressed batch: offset delta and where its key and value lie.
#[derive(Debug, Clone, Copy, PartialEq)]
struct RecordAt {
    offset_delta: i64,
    key: Option<(usize, usize)>,
    value: Option<(usize, usize)>,
}

/// Walks the records of one uncompressed batch (`batch` holds exactly the batch).
fn records_of(batch: &[u8]) -> anyhow::Result<Vec<RecordAt>> {
    let Some(header) = RawHeader::of(batch) else {
        bail!("record batch of {} bytes is shorter than its header", batch.len())
    };
    let count = header.records_count();
    ensure!(count >= 0, "negative record count");
    let mut out = Vec::with_capacity(count.min(100_000) as usize);
    let mut at = HEADER_LEN;
    for _ in 0..count {
        let len = varint(batch, &mut at)?;
        let start = at;
        ensure!(len >= 0 && start + len as usize <= batch.len(), "record overruns its batch");
        at += 1; // attributes
        let _timestamp_delta = varint(batch, &mut at)?;
        let offset_delta = varint(batch, &mut at)?;
        let field = |at: &mut usize| -> anyhow::Result<Option<(usize, usize)>> {
            let n = varint(batch, at)?;
            if n < 0 {
                return Ok(None);
            }
            let range = (*at, n as usize);
            *at += n as usize;
            ensure!(*at <= batch.len(), "record field overruns its batch");
            Ok(Some(range))
        };
        let key = field(&mut at)?;
        let value = field(&mut at)?;
        out.push(RecordAt { offset_delta, key, value });
        at = start + len as usize;
    }
    Ok(out)
}

/// Positions of the 8-byte keys and of the values of a freshly encoded batch.
fn record_positions(batch: &[u8]) -> anyhow::Result<(Vec<Option<usize>>, Vec<usize>)> {
    let records = records_of(batch)?;
    let keys = records.iter().map(|r| r.key.filter(|k| k.1 == KEY_BYTES).map(|k| k.0)).collect();
    let values = records.iter().map(|r| r.value.map_or(0, |v| v.0)).collect();
    Ok((keys, values))
}

/// What a consumer learned from the records it fetched.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Scan {
    /// The offset to fetch next.
    pub next_offset: i64,
    pub messages: u64,
    pub payload_bytes: u64,
}

/// Scans fetched `records` (whole batches, perhaps a partial one at the end)
/// from `fetch_offset`: counts messages at or past it and calls `stamp` with the
/// send time of each value that has one.
pub fn scan(records: &[u8], fetch_offset: i64, mut stamp: impl FnMut(u64)) -> anyhow::Result<Scan> {
    let mut s = Scan { next_offset: fetch_offset, ..Scan::default() };
    let mut at = 0;
    while let Some(h) = RawHeader::of(&records[at..]) {
        ensure!(h.batch_length() >= MIN_BATCH_LENGTH, "batch length {} is below a header's", h.batch_length());
        let b = &records[at..];
        let total = h.total_len();
        if total > b.len() {
            break; // a partial batch at the end of a fetch
        }
        let batch = &b[..total];
        at += total;
        let base_offset = h.base_offset();
        ensure!(h.magic() == MAGIC_V2, "batch at offset {base_offset} has magic {}, not 2", h.magic());
        let last_offset = h.last_offset();
        if last_offset < s.next_offset {
            continue;
        }
        let compressed = h.compression() != 0;
        if compressed {
            let mut bytes = Bytes::copy_from_slice(batch);
            let set = RecordBatchDecoder::decode(&mut bytes).context("decompressing a fetched batch")?;
            let from = s.next_offset;
            for r in set.records.iter().filter(|r| r.offset >= from) {
                count(&mut s, r.value.as_deref(), &mut stamp);
            }
        } else {
            let from = s.next_offset;
            for r in records_of(batch)? {
                if base_offset + r.offset_delta >= from {
                    count(&mut s, r.value.map(|(at, n)| &batch[at..at + n]), &mut stamp);
                }
            }
        }
        s.next_offset = last_offset + 1;
    }
    Ok(s)
}

fn count(s: &mut Scan, value: Option<&[u8]>, stamp: &mut impl FnMut(u64)) {
    s.messages += 1;
    if let Some(v) = value {
        s.payload_bytes += v.len() as u64;
        if v.len() >= TIMESTAMP_BYTES {
            stamp(u64::from_be_bytes(v[..TIMESTAMP_BYTES].try_into().expect("8 bytes")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::Decodable;

    fn shape(compression: CompressionKind, keys: KeyDistribution) -> Shape {
        Shape {
            topic: "t".into(),
            message_size: 100,
            records: 5,
            compression,
            keys,
            acks: 1,
            timeout_ms: 1000,
            stamp: true,
        }
    }

    /// The batch inside a produce frame, decoded by kafka-protocol.
    fn decode(frame: &[u8], version: i16) -> (i32, Vec<kafka_protocol::records::Record>) {
        let decoded = weir_net::codec::decode_header(Bytes::copy_from_slice(&frame[4..])).unwrap();
        let mut body = decoded.body;
        let request = ProduceRequest::decode(&mut body, version).unwrap();
        let mut records = request.topic_data[0].partition_data[0].records.clone().unwrap();
        weir_engine::batch::check_batch_at(&records).unwrap_or_else(|e| panic!("batch at v{version}: {e}"));
        let set = RecordBatchDecoder::decode(&mut records).expect("valid batch");
        (decoded.header.correlation_id, set.records)
    }

    #[test]
    fn patched_frames_decode_with_fresh_stamps_keys_and_crc() {
        for version in [3, 8, 9] {
            for compression in [CompressionKind::None, CompressionKind::Lz4, CompressionKind::Zstd] {
                let mut t = Template::new(&shape(compression, KeyDistribution::Sequential), 3, version, 42).unwrap();
                assert_eq!(t.layout.is_some(), compression == CompressionKind::None);
                let frame = t.frame(77, 1000, 0x0102_0304_0506_0708).unwrap().to_vec();
                let (correlation_id, records) = decode(&frame, version);
                assert_eq!(correlation_id, 77);
                assert_eq!(records.len(), 5);
                for (i, r) in records.iter().enumerate() {
                    assert_eq!(r.key.as_deref(), Some(&(1000 + i as u64).to_be_bytes()[..]));
                    let value = r.value.as_deref().unwrap();
                    assert_eq!(value.len(), 100);
                    assert_eq!(&value[..8], &0x0102_0304_0506_0708u64.to_be_bytes());
                }
            }
        }
    }

    #[test]
    fn frames_without_stamps_or_keys_are_sent_as_built() {
        let mut s = shape(CompressionKind::None, KeyDistribution::None);
        s.stamp = false;
        let mut t = Template::new(&s, 0, 9, 1).unwrap();
        let a = t.frame(1, 0, 5).unwrap().to_vec();
        let b = t.frame(1, 9, 6).unwrap().to_vec();
        assert_eq!(a, b);
        assert!(decode(&a, 9).1.iter().all(|r| r.key.is_none()));
    }

    #[test]
    fn scan_counts_from_the_fetch_offset_and_reads_stamps() {
        let mut t = Template::new(&shape(CompressionKind::None, KeyDistribution::Random), 0, 9, 7).unwrap();
        let frame = t.frame(0, 0, 123_456).unwrap().to_vec();
        let decoded = weir_net::codec::decode_header(Bytes::copy_from_slice(&frame[4..])).unwrap();
        let mut body = decoded.body;
        let request = ProduceRequest::decode(&mut body, 9).unwrap();
        let mut batch = request.topic_data[0].partition_data[0].records.clone().unwrap().to_vec();
        batch[..8].copy_from_slice(&10i64.to_be_bytes()); // as stored at base offset 10
        let mut two = batch.clone();
        two.extend_from_slice(&batch[..40]); // a partial batch at the end
        let mut stamps = Vec::new();
        let s = scan(&two, 12, |t| stamps.push(t)).unwrap();
        assert_eq!(s, Scan { next_offset: 15, messages: 3, payload_bytes: 300 });
        assert_eq!(stamps, vec![123_456; 3]);
        let s = scan(&two, 15, |_| panic!("nothing past 14")).unwrap();
        assert_eq!(s, Scan { next_offset: 15, messages: 0, payload_bytes: 0 });
    }

    #[test]
    fn scan_reads_compressed_batches() {
        let mut t = Template::new(&shape(CompressionKind::Gzip, KeyDistribution::None), 0, 9, 7).unwrap();
        let frame = t.frame(0, 0, 99).unwrap().to_vec();
        let decoded = weir_net::codec::decode_header(Bytes::copy_from_slice(&frame[4..])).unwrap();
        let mut body = decoded.body;
        let request = ProduceRequest::decode(&mut body, 9).unwrap();
        let batch = request.topic_data[0].partition_data[0].records.clone().unwrap();
        let mut stamps = 0;
        let s = scan(&batch, 0, |t| {
            assert_eq!(t, 99);
            stamps += 1
        })
        .unwrap();
        assert_eq!((s.messages, s.payload_bytes, s.next_offset, stamps), (5, 500, 5, 5));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut junk = vec![0u8; 100];
        junk[11] = 88; // batch length 88: exactly one "batch" of zeros
        assert!(scan(&junk, 0, |_| {}).is_err()); // magic 0
        assert_eq!(scan(&junk[..30], 0, |_| {}).unwrap().messages, 0);
    }
}
