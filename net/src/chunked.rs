//! Encodes a response as a list of `Bytes` chunks in which chosen byte
//! fields (a Fetch response's records) are passed through untouched, so the
//! record bytes read from the log or its cache reach the socket without a
//! copy in user space.
//!
//! kafka-protocol still encodes every field, so the chunks are byte-for-byte
//! its encoding: [`ChunkedBuf`] is the buffer it writes into; a `put_slice`
//! of exactly the next pass-through `Bytes` (same address and length, as
//! kafka-protocol writes a bytes field's value in one call) ends the current
//! small chunk and appends a reference to that `Bytes`. Anything else is
//! copied into the current small chunk, so a miss costs a copy, never a wrong
//! byte.

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;
use std::collections::VecDeque;
use std::ops::Range;

/// The buffer kafka-protocol encodes into.
pub struct ChunkedBuf {
    chunks: Vec<Bytes>,
    /// Bytes in `chunks`.
    sealed: usize,
    /// The small chunk being written.
    current: BytesMut,
    /// The values to pass through, in the order the encoder writes them.
    pass_through: VecDeque<Bytes>,
}

impl ChunkedBuf {
    /// A buffer for `size` bytes in all, `pass_through` (in encoding order;
    /// empty values are ignored) among them; the small chunks share one
    /// allocation.
    pub fn new(size: usize, pass_through: impl IntoIterator<Item = Bytes>) -> Self {
        let pass_through: VecDeque<Bytes> = pass_through.into_iter().filter(|b| !b.is_empty()).collect();
        let small = size.saturating_sub(pass_through.iter().map(Bytes::len).sum());
        ChunkedBuf { chunks: Vec::new(), sealed: 0, current: BytesMut::with_capacity(small), pass_through }
    }

    /// The chunks in order. Every pass-through value must have been written.
    pub fn finish(mut self) -> Vec<Bytes> {
        assert!(self.pass_through.is_empty(), "{} pass-through values were not encoded", self.pass_through.len());
        self.seal();
        self.chunks
    }

    fn seal(&mut self) {
        if !self.current.is_empty() {
            let small = self.current.split().freeze();
            self.sealed += small.len();
            self.chunks.push(small);
        }
    }
}

// SAFETY: every method delegates to `current`, a growable `BytesMut`, which
// upholds `BufMut`'s contract; `put_slice` only appends whole chunks besides.
unsafe impl BufMut for ChunkedBuf {
    fn remaining_mut(&self) -> usize {
        self.current.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller initialised `cnt` bytes of `chunk_mut()`, which is `current`'s.
        unsafe { self.current.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.current.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        let next = self.pass_through.front();
        if next.is_some_and(|b| b.as_ptr() == src.as_ptr() && b.len() == src.len()) {
            let value = self.pass_through.pop_front().expect("front checked");
            self.seal();
            self.sealed += value.len();
            self.chunks.push(value);
        } else {
            self.current.extend_from_slice(src);
        }
    }
}

/// Gaps (back-patched lengths) work within the small chunk being written;
/// the Fetch response has none, and one spanning a pass-through chunk is a bug.
impl ByteBufMut for ChunkedBuf {
    fn offset(&self) -> usize {
        self.sealed + self.current.len()
    }

    fn seek(&mut self, offset: usize) {
        assert!(offset >= self.sealed, "cannot seek back into a sealed chunk");
        self.current.resize(offset - self.sealed, 0);
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        assert!(r.start >= self.sealed, "range {r:?} reaches into a sealed chunk");
        &mut self.current[r.start - self.sealed..r.end - self.sealed]
    }
}
