//! The read cache of one partition: the most recently written batches, as
//! the writer wrote them (offsets patched), in chunks of one group write.
//! Chunks are contiguous and end at the high watermark; the oldest are
//! evicted past the byte bound. A read stays within one segment, as a
//! disk read does. Tailing readers are served from here: a read
//! inside one chunk is a `Bytes` slice of it (no copy); a read spanning chunks
//! is copied into one buffer.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

/// One group write's batches.
pub(crate) struct Chunk {
    /// Base offset of the segment the chunk was written to (a read, like a
    /// disk read, stays within one segment).
    pub segment: i64,
    /// Base offset of the first batch.
    pub base: i64,
    /// One past the last offset of the last batch.
    pub next: i64,
    pub bytes: Bytes,
    /// (last offset, start position in `bytes`) of each batch, in order.
    pub batches: Vec<(i64, u32)>,
}

impl Chunk {
    fn batch_end(&self, i: usize) -> usize {
        self.batches.get(i + 1).map_or(self.bytes.len(), |b| b.1 as usize)
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
        if chunk.bytes.len() > self.limit {
            self.clear();
            return;
        }
        self.bytes += chunk.bytes.len();
        self.chunks.push_back(chunk);
        while self.bytes > self.limit {
            let old = self.chunks.pop_front().expect("bytes counted in chunks");
            self.bytes -= old.bytes.len();
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
            self.bytes -= old.bytes.len();
        }
    }

    /// Whole batches from the one holding `offset`, up to `max_bytes` (at
    /// least one batch), or `None` when `offset` is not cached.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Option<Bytes> {
        let first = self.chunks.partition_point(|c| c.next <= offset);
        let chunk = self.chunks.get(first)?;
        if chunk.base > offset {
            return None;
        }
        let mut parts: Vec<Bytes> = Vec::new();
        let mut total = 0usize;
        let mut batch = chunk.batches.partition_point(|b| b.0 < offset);
        'chunks: for c in self.chunks.range(first..) {
            if c.segment != chunk.segment {
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
                parts.push(c.bytes.slice(start..end));
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
        Chunk { segment: base / 100, base, next, bytes: Bytes::from(bytes), batches: list }
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
