//! Sparse offset index of one segment: (relative offset, file position) pairs,
//! both strictly increasing, one entry at least every `index_interval_bytes`.
//! On disk (`<base>.index`, written when a segment is sealed) each entry is 8
//! bytes: u32 relative offset, u32 position, big-endian.

/// Size of one entry on disk.
pub const ENTRY_LEN: usize = 8;

/// One index entry: the batch whose base offset is `base + relative_offset`
/// starts at byte `position` of the segment's `.log` file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// Batch base offset minus the segment's base offset.
    pub relative_offset: u32,
    /// Byte position of the batch in the `.log` file.
    pub position: u32,
}

/// The in-memory sparse index of one segment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OffsetIndex {
    entries: Vec<IndexEntry>,
}

impl OffsetIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an entry; both fields must be greater than the last entry's.
    pub fn push(&mut self, entry: IndexEntry) {
        if let Some(last) = self.entries.last() {
            assert!(
                entry.relative_offset > last.relative_offset && entry.position > last.position,
                "index not monotonic: {last:?} then {entry:?}"
            );
        }
        self.entries.push(entry);
    }

    /// Position of the last indexed batch whose base offset is <= `relative_offset`,
    /// or 0 (the segment start) when there is none.
    pub fn lookup(&self, relative_offset: u32) -> u32 {
        let i = self.entries.partition_point(|e| e.relative_offset <= relative_offset);
        if i == 0 {
            0
        } else {
            self.entries[i - 1].position
        }
    }

    /// The last entry, if any.
    pub fn last(&self) -> Option<IndexEntry> {
        self.entries.last().copied()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The on-disk form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * ENTRY_LEN);
        for e in &self.entries {
            out.extend_from_slice(&e.relative_offset.to_be_bytes());
            out.extend_from_slice(&e.position.to_be_bytes());
        }
        out
    }

    /// Parses the on-disk form; `None` unless the length is a multiple of 8,
    /// entries are strictly increasing and every position is below `file_len`.
    pub fn decode(bytes: &[u8], file_len: u64) -> Option<Self> {
        let chunks = bytes.chunks_exact(ENTRY_LEN);
        if !chunks.remainder().is_empty() {
            return None;
        }
        let mut index = OffsetIndex { entries: Vec::with_capacity(bytes.len() / ENTRY_LEN) };
        for chunk in chunks {
            let entry = IndexEntry {
                relative_offset: u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]),
                position: u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]),
            };
            if let Some(last) = index.entries.last() {
                if entry.relative_offset <= last.relative_offset || entry.position <= last.position {
                    return None;
                }
            }
            if u64::from(entry.position) >= file_len {
                return None;
            }
            index.entries.push(entry);
        }
        Some(index)
    }
}

/// Decides which batches get an index entry: the first batch that starts at
/// least `interval` bytes after the previous entry (or the segment start).
#[derive(Clone, Copy, Debug)]
pub struct IndexPolicy {
    interval: u64,
    bytes_since_entry: u64,
}

impl IndexPolicy {
    /// A policy for a fresh segment.
    pub fn new(interval: u64) -> Self {
        Self { interval, bytes_since_entry: 0 }
    }

    /// A policy resumed where a clean shutdown left it.
    pub fn resume(interval: u64, bytes_since_entry: u64) -> Self {
        Self { interval, bytes_since_entry }
    }

    pub fn bytes_since_entry(&self) -> u64 {
        self.bytes_since_entry
    }

    /// Called for every batch appended, in order; returns true when this batch
    /// (starting at its position, `len` bytes long) gets an entry.
    pub fn on_batch(&mut self, len: u64) -> bool {
        let index_it = self.bytes_since_entry >= self.interval;
        if index_it {
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry += len;
        index_it
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_floors() {
        let mut ix = OffsetIndex::new();
        assert_eq!(ix.lookup(5), 0);
        ix.push(IndexEntry { relative_offset: 10, position: 100 });
        ix.push(IndexEntry { relative_offset: 20, position: 200 });
        assert_eq!(ix.lookup(9), 0);
        assert_eq!(ix.lookup(10), 100);
        assert_eq!(ix.lookup(19), 100);
        assert_eq!(ix.lookup(25), 200);
        let back = OffsetIndex::decode(&ix.encode(), 300).expect("round trip");
        assert_eq!(back, ix);
        assert!(OffsetIndex::decode(&ix.encode(), 200).is_none());
        assert!(OffsetIndex::decode(&ix.encode()[..7], 300).is_none());
        let mut swapped = ix.encode();
        swapped.rotate_left(8);
        assert!(OffsetIndex::decode(&swapped, 300).is_none());
    }

    #[test]
    #[should_panic]
    fn push_rejects_non_monotonic() {
        let mut ix = OffsetIndex::new();
        ix.push(IndexEntry { relative_offset: 10, position: 100 });
        ix.push(IndexEntry { relative_offset: 10, position: 200 });
    }

    #[test]
    fn policy_spaces_entries() {
        let mut p = IndexPolicy::new(100);
        let picks: Vec<bool> = [60, 60, 60, 10, 200, 5].iter().map(|&l| p.on_batch(l)).collect();
        assert_eq!(picks, [false, false, true, false, false, true]);
    }
}
