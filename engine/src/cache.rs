//! The read cache of one partition: the most recently written batches, in
//! chunks of one group write. Chunks are contiguous and end at the high
//! watermark; the oldest are evicted past the byte bound. A read stays
//! within one segment, as a disk read does. Tailing readers are served from
//! here: a read inside one chunk is a `Bytes` slice of it (no copy); a read
//! spanning chunks is copied into one buffer.
//!
//! A chunk keeps the batches as the writer received them (the produce
//! request's or fetch response's bytes, shared, not copied) and the headers
//! it wrote (offsets and leader epoch patched, LogAppendTime set): the only
//! bytes it changes. The batches as written are put together at the chunk's
//! first read, so an append no one reads from the cache copies its records
//! once, into the aligned write buffer.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::batch::HEADER_LEN;

/// One group write's batches.
pub(crate) struct Chunk {
    /// Base offset of the segment the chunk was written to (a read, like a
    /// disk read, stays within one segment).
    pub segment: i64,
    /// Base offset of the first batch.
    pub base: i64,
    /// One past the last offset of the last batch.
    pub next: i64,
    /// (last offset, start position in the chunk) of each batch, in order.
    pub batches: Vec<(i64, u32)>,
    /// Bytes of the batches.
    pub len: usize,
    pub content: Content,
}

/// A chunk's bytes.
pub(crate) enum Content {
    /// The appends' bytes as received, in order, and the header of each
    /// batch as written (`HEADER_LEN` bytes each, in order).
    Received { appends: Vec<Bytes>, headers: Vec<u8> },
    /// The batches as written.
    Written(Bytes),
}

impl Chunk {
    fn batch_end(&self, i: usize) -> usize {
        self.batches.get(i + 1).map_or(self.len, |b| b.1 as usize)
    }

    /// The batches as written, put together from what was received at the
    /// first call (which lets the received buffers go).
    fn written(&mut self) -> &Bytes {
        if let Content::Received { appends, headers } = &self.content {
            let mut bytes = BytesMut::with_capacity(self.len);
            for append in appends {
                bytes.extend_from_slice(append);
            }
            for (header, &(_, at)) in headers.chunks_exact(HEADER_LEN).zip(&self.batches) {
                let at = at as usize;
                bytes[at..at + HEADER_LEN].copy_from_slice(header);
            }
            debug_assert_eq!(bytes.len(), self.len);
            self.content = Content::Written(bytes.freeze());
        }
        match &self.content {
            Content::Written(bytes) => bytes,
            Content::Received { .. } => unreachable!("put together above"),
        }
    }
}

/// The bounded cache.
pub(crate) struct ReadCache {
    limit: usize,
    bytes: usize,
    chunks: VecDeque<Chunk>,
}

impl ReadCache {
    pub fn new(limit: usize) -> Self {
        ReadCache { limit, bytes: 0, chunks: VecDeque::new() }
    }

    /// True when appended chunks are kept at all.
    pub fn enabled(&self) -> bool {
        self.limit > 0
    }

    /// Adds the chunk just written (it must follow the last one); evicts the
    /// oldest chunks past the bound. A chunk larger than the bound empties
    /// the cache (the cache stays a contiguous suffix of the log).
    pub fn push(&mut self, chunk: Chunk) {
        if let Some(last) = self.chunks.back() {
            assert_eq!(last.next, chunk.base, "cache chunks must be contiguous");
        }
        debug_assert!(chunk.batches.first().is_some_and(|b| b.1 == 0));
        if chunk.len > self.limit {
            self.clear();
            return;
        }
        self.bytes += chunk.len;
        self.chunks.push_back(chunk);
        while self.bytes > self.limit {
            let old = self.chunks.pop_front().expect("bytes counted in chunks");
            self.bytes -= old.len;
        }
    }

    /// Drops everything (after a write failure or a rewrite of the files).
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.bytes = 0;
    }

    /// Drops chunks that start below `offset` (their segment was rewritten).
    pub fn evict_below(&mut self, offset: i64) {
        while self.chunks.front().is_some_and(|c| c.base < offset) {
            let old = self.chunks.pop_front().expect("front checked");
            self.bytes -= old.len;
        }
    }

    /// Whole batches from the one holding `offset`, up to `max_bytes` (at
    /// least one batch), or `None` when `offset` is not cached.
    pub fn read(&mut self, offset: i64, max_bytes: usize) -> Option<Bytes> {
        let first = self.chunks.partition_point(|c| c.next <= offset);
        let chunk = self.chunks.get(first)?;
        if chunk.base > offset {
            return None;
        }
        let segment = chunk.segment;
        let mut parts: Vec<Bytes> = Vec::new();
        let mut total = 0usize;
        let mut batch = chunk.batches.partition_point(|b| b.0 < offset);
        'chunks: for c in self.chunks.range_mut(first..) {
            if c.segment != segment {
                break;
            }
            let start = c.batches[batch].1 as usize;
            let mut end = start;
            while batch < c.batches.len() {
                let len = c.batch_end(batch) - c.batches[batch].1 as usize;
                if total > 0 && total + len > max_bytes {
                    break;
                }
                total += len;
                end += len;
                batch += 1;
                if total >= max_bytes {
                    break;
                }
            }
            if end > start {
                parts.push(c.written().slice(start..end));
            }
            if batch < c.batches.len() || total >= max_bytes {
                break 'chunks;
            }
            batch = 0;
        }
        match parts.len() {
            0 => None,
            1 => parts.pop(),
            _ => {
                let mut out = BytesMut::with_capacity(total);
                for p in parts {
                    out.extend_from_slice(&p);
                }
                Some(out.freeze())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chunk of batches of the given (offset count, byte length).
    fn chunk(base: i64, batches: &[(i64, usize)]) -> Chunk {
        let mut bytes = Vec::new();
        let mut list = Vec::new();
        let mut next = base;
        for &(count, len) in batches {
            list.push((next + count - 1, bytes.len() as u32));
            bytes.extend(std::iter::repeat_n(next as u8, len));
            next += count;
        }
        let len = bytes.len();
        Chunk { segment: base / 100, base, next, batches: list, len, content: Content::Written(Bytes::from(bytes)) }
    }

    #[test]
    fn received_chunks_are_served_with_their_written_headers() {
        // Two appends of batches of 70, 80 and 90 bytes; what was received
        // is 7s, the headers written are 1s, 2s, 3s.
        let appends = vec![Bytes::from(vec![7u8; 150]), Bytes::from(vec![7u8; 90])];
        let headers: Vec<u8> = [1u8, 2, 3].iter().flat_map(|&h| [h; HEADER_LEN]).collect();
        let batches = vec![(0, 0), (1, 70), (2, 150)];
        let mut c = ReadCache::new(1000);
        c.push(Chunk {
            segment: 0,
            base: 0,
            next: 3,
            batches,
            len: 240,
            content: Content::Received { appends, headers },
        });
        let written = |header: u8, len: usize| {
            let mut batch = vec![header; HEADER_LEN];
            batch.resize(len, 7);
            batch
        };
        let expected = [written(1, 70), written(2, 80), written(3, 90)].concat();
        assert_eq!(c.read(0, 1000).expect("cached"), expected);
        assert_eq!(c.read(1, 80).expect("cached"), expected[70..150], "a slice of the written bytes");
    }

    #[test]
    fn serves_slices_and_evicts() {
        let mut c = ReadCache::new(100);
        c.push(chunk(10, &[(2, 10), (1, 20)]));
        c.push(chunk(13, &[(1, 30)]));
        assert!(c.read(9, 100).is_none());
        let one = c.read(11, 0).expect("cached");
        assert_eq!(one.len(), 10);
        assert_eq!(c.read(12, 25).expect("cached").len(), 20);
        assert_eq!(c.read(10, 1000).expect("cached").len(), 60, "spans chunks");
        assert_eq!(c.read(10, 35).expect("cached").len(), 30, "whole batches only");
        c.push(chunk(14, &[(1, 50)]));
        assert!(c.read(10, 10).is_none(), "evicted");
        assert_eq!(c.read(13, 10).expect("cached").len(), 30);
        let mut other = chunk(15, &[(1, 10)]);
        other.segment = 1;
        c.push(other);
        assert_eq!(c.read(14, 1000).expect("cached").len(), 50, "a read stays in its segment");
        c.push(chunk(16, &[(1, 101)]));
        assert!(c.read(15, 10).is_none(), "an oversized chunk empties the cache");
    }
}
