//! Sparse time index of one segment, in Kafka's layout: entries of (i64
//! timestamp, u32 relative offset), big-endian, 12 bytes each, both strictly
//! increasing. An entry (t, o) says: the batch at base offset `base + o` is the
//! first of the segment whose maxTimestamp reaches t, so every batch before it
//! has a smaller maxTimestamp. Entries are added next to offset-index entries
//! when the running maximum grew, and once more when the segment is sealed,
//! so the last entry of a sealed segment holds its largest timestamp.

/// Size of one entry on disk.
pub const TIME_ENTRY_LEN: usize = 12;

/// One time index entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeEntry {
    /// Running maximum of batch maxTimestamps, reached at this batch.
    pub timestamp: i64,
    /// Base offset of that batch minus the segment's base offset.
    pub relative_offset: u32,
}

/// The in-memory time index of one segment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TimeIndex {
    entries: Vec<TimeEntry>,
}

impl TimeIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `entry` when its timestamp is above the last entry's (entries
    /// only record growth of the maximum). Offsets must increase with it.
    pub fn maybe_push(&mut self, entry: TimeEntry) {
        if let Some(last) = self.entries.last() {
            if entry.timestamp <= last.timestamp {
                return;
            }
            assert!(
                entry.relative_offset > last.relative_offset,
                "time index offsets not increasing: {last:?} then {entry:?}"
            );
        }
        self.entries.push(entry);
    }

    /// The last entry whose timestamp is below `timestamp`: every batch before
    /// its offset has a smaller maxTimestamp, so a search may start there.
    pub fn floor_below(&self, timestamp: i64) -> Option<TimeEntry> {
        let i = self.entries.partition_point(|e| e.timestamp < timestamp);
        if i == 0 {
            None
        } else {
            Some(self.entries[i - 1])
        }
    }

    /// The last entry, if any.
    pub fn last(&self) -> Option<TimeEntry> {
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
        let mut out = Vec::with_capacity(self.entries.len() * TIME_ENTRY_LEN);
        for e in &self.entries {
            out.extend_from_slice(&e.timestamp.to_be_bytes());
            out.extend_from_slice(&e.relative_offset.to_be_bytes());
        }
        out
    }

    /// Parses the on-disk form; `None` unless the length is a multiple of 12
    /// and both fields strictly increase with every relative offset below
    /// `offset_span` (the segment's next offset minus its base).
    pub fn decode(bytes: &[u8], offset_span: i64) -> Option<Self> {
        let chunks = bytes.chunks_exact(TIME_ENTRY_LEN);
        if !chunks.remainder().is_empty() {
            return None;
        }
        let mut index = TimeIndex { entries: Vec::with_capacity(bytes.len() / TIME_ENTRY_LEN) };
        for c in chunks {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&c[..8]);
            let entry = TimeEntry {
                timestamp: i64::from_be_bytes(ts),
                relative_offset: u32::from_be_bytes([c[8], c[9], c[10], c[11]]),
            };
            if let Some(last) = index.entries.last() {
                if entry.timestamp <= last.timestamp || entry.relative_offset <= last.relative_offset {
                    return None;
                }
            }
            if i64::from(entry.relative_offset) >= offset_span {
                return None;
            }
            index.entries.push(entry);
        }
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_and_round_trip() {
        let mut ix = TimeIndex::new();
        assert_eq!(ix.floor_below(5), None);
        ix.maybe_push(TimeEntry { timestamp: 100, relative_offset: 0 });
        ix.maybe_push(TimeEntry { timestamp: 100, relative_offset: 3 }); // no growth: skipped
        ix.maybe_push(TimeEntry { timestamp: 200, relative_offset: 5 });
        assert_eq!(ix.len(), 2);
        assert_eq!(ix.floor_below(100), None);
        assert_eq!(ix.floor_below(101).map(|e| e.relative_offset), Some(0));
        assert_eq!(ix.floor_below(201).map(|e| e.relative_offset), Some(5));
        assert_eq!(TimeIndex::decode(&ix.encode(), 6), Some(ix.clone()));
        assert_eq!(TimeIndex::decode(&ix.encode(), 5), None);
        assert_eq!(TimeIndex::decode(&ix.encode()[..13], 6), None);
    }
}
