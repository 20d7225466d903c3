//! The leader epoch cache of one log (KIP-101, KIP-279): the first offset
//! written in each leader epoch. It answers OffsetForLeaderEpoch ("where
//! does epoch E end in this log?"), which consumers use to validate their
//! position after a leader change (KIP-320) and followers use to find where
//! their history diverges from the leader's, so they truncate exactly the
//! records the new leader does not have.
//!
//! Entries increase in both epoch and start offset. Kept in the partition's
//! `leader-epoch-checkpoint` in Kafka's text format: a version line (0), a
//! count, then one `epoch start_offset` line per entry.

use crate::durable;
use crate::error::EngineError;
use crate::segment;
use std::path::Path;

/// Kafka's UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET.
pub const UNDEFINED_EPOCH: i32 = -1;
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

/// The file's name in the partition directory, and its temporary's.
pub const CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";
pub(crate) const CHECKPOINT_TMP: &str = "leader-epoch-checkpoint.tmp";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    /// The first offset written in `epoch`.
    pub start_offset: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaderEpochs {
    entries: Vec<EpochEntry>,
}

impl LeaderEpochs {
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// Records that a batch of `epoch` starts at `start_offset`; true when
    /// that changed the cache (then it must be checkpointed). A batch of the
    /// latest epoch changes nothing. An entry that is not above the latest
    /// in both epoch and offset replaces the entries it conflicts with: the
    /// log was rewritten from there (a follower truncated and took the
    /// leader's history).
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || start_offset < 0 {
            return false; // batches written before epochs were stamped
        }
        if self.latest().is_some_and(|l| l.epoch == epoch && l.start_offset <= start_offset) {
            return false;
        }
        while self.latest().is_some_and(|l| l.epoch >= epoch || l.start_offset >= start_offset) {
            self.entries.pop();
        }
        self.entries.push(EpochEntry { epoch, start_offset });
        true
    }

    /// OffsetForLeaderEpoch: the largest epoch at most `requested` and the
    /// offset where it ends: the start of the next epoch, or the log end
    /// offset for the latest. An epoch older than every entry (its records
    /// were deleted) ends where the oldest known epoch starts. Undefined
    /// (-1, -1) for -1 and for an epoch above the latest.
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        let undefined = (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        if requested == UNDEFINED_EPOCH {
            return undefined;
        }
        if self.latest().is_some_and(|l| l.epoch == requested) {
            return (requested, log_end_offset);
        }
        let higher = self.entries.partition_point(|e| e.epoch <= requested);
        let Some(next) = self.entries.get(higher) else { return undefined };
        match higher.checked_sub(1).map(|floor| self.entries[floor]) {
            Some(floor) => (floor.epoch, next.start_offset),
            None => (requested, next.start_offset),
        }
    }

    /// The log was truncated to end at `end_offset`: epochs that start at or
    /// after it are gone. True when that changed the cache.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        while self.latest().is_some_and(|l| l.start_offset >= end_offset) {
            self.entries.pop();
        }
        self.entries.len() != before
    }

    /// The log now starts at `start_offset` (retention, DeleteRecords):
    /// epochs that ended before it are gone and the epoch covering it starts
    /// there. True when that changed the cache.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let covered = self.entries.partition_point(|e| e.start_offset <= start_offset);
        let Some(covering) = covered.checked_sub(1) else { return false };
        if covering == 0 && self.entries[0].start_offset == start_offset {
            return false;
        }
        self.entries.drain(..covering);
        self.entries[0].start_offset = start_offset;
        true
    }

    /// The checkpoint file's contents.
    pub fn encode(&self) -> String {
        let mut text = format!("0\n{}\n", self.entries.len());
        for e in &self.entries {
            text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        text
    }

    /// Reads a checkpoint file's contents.
    pub fn decode(text: &str) -> Result<LeaderEpochs, String> {
        let mut lines = text.lines();
        if lines.next() != Some("0") {
            return Err("not a version 0 leader epoch checkpoint".into());
        }
        let count: usize = lines.next().and_then(|l| l.parse().ok()).ok_or("no entry count")?;
        let mut epochs = LeaderEpochs::default();
        for line in lines.by_ref().take(count) {
            let entry = line.split_once(' ').and_then(|(e, o)| Some((e.parse().ok()?, o.parse().ok()?)));
            let (epoch, start_offset) = entry.ok_or_else(|| format!("bad entry '{line}'"))?;
            let latest = epochs.latest();
            if latest.is_some_and(|l| l.epoch >= epoch || l.start_offset >= start_offset) || epoch < 0 {
                return Err(format!("entry '{line}' does not follow {latest:?}"));
            }
            epochs.entries.push(EpochEntry { epoch, start_offset });
        }
        if epochs.entries.len() != count || lines.next().is_some() {
            return Err(format!("{} entries where {count} were announced", epochs.entries.len()));
        }
        Ok(epochs)
    }
}

/// The cache of the log in `dir`, recovered from [`recover`] spans
/// `[log_start, log_end)`: its checkpoint with the epochs that start at or
/// past the recovered end dropped (the checkpoint is written before the
/// batches of a new epoch, so it may hold one the log lost) and the first
/// moved up to the log start; checkpointed again when that changed it.
/// Without a checkpoint, or with an unreadable one, every batch is of epoch
/// 0: that is what Weir stamped before it kept epochs.
///
/// [`recover`]: crate::log
pub(crate) async fn load(dir: &Path, log_start: i64, log_end: i64) -> Result<LeaderEpochs, EngineError> {
    let saved = segment::read_small_file(&dir.join(CHECKPOINT_FILE)).await;
    let read = saved.as_deref().map(|bytes| LeaderEpochs::decode(&String::from_utf8_lossy(bytes)));
    if let Some(Err(e)) = &read {
        tracing::warn!(dir = %dir.display(), "unreadable {CHECKPOINT_FILE}, taking every batch as epoch 0: {e}");
    }
    let original = read.and_then(Result::ok);
    let mut epochs = original.clone().unwrap_or_default();
    if epochs.entries.is_empty() && log_end > log_start {
        epochs.assign(0, log_start);
    }
    epochs.truncate_from_end(log_end);
    epochs.truncate_from_start(log_start);
    if original.as_ref() != Some(&epochs) && (original.is_some() || !epochs.entries.is_empty()) {
        write(dir, &epochs).await?;
    }
    Ok(epochs)
}

/// Replaces the checkpoint durably.
pub(crate) async fn write(dir: &Path, epochs: &LeaderEpochs) -> Result<(), EngineError> {
    let (path, temporary) = (dir.join(CHECKPOINT_FILE), dir.join(CHECKPOINT_TMP));
    durable::replace_file_async(&path, &temporary, epochs.encode().as_bytes()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochs {
        let mut epochs = LeaderEpochs::default();
        for &(epoch, offset) in entries {
            assert!(epochs.assign(epoch, offset));
        }
        epochs
    }

    fn entries(epochs: &LeaderEpochs) -> Vec<(i32, i64)> {
        epochs.entries().iter().map(|e| (e.epoch, e.start_offset)).collect()
    }

    #[test]
    fn a_new_epoch_is_recorded_once_at_its_first_offset() {
        let mut epochs = cache(&[(0, 0)]);
        assert!(!epochs.assign(0, 5), "the latest epoch again");
        assert!(!epochs.assign(-1, 7), "an unstamped batch");
        assert!(epochs.assign(2, 10));
        assert!(!epochs.assign(2, 12));
        assert_eq!(entries(&epochs), [(0, 0), (2, 10)]);
    }

    #[test]
    fn an_entry_that_goes_back_replaces_the_entries_it_conflicts_with() {
        // A follower truncated to 8 and took the leader's epoch 1 from there.
        let mut epochs = cache(&[(0, 0), (2, 10), (3, 20)]);
        assert!(epochs.assign(1, 8));
        assert_eq!(entries(&epochs), [(0, 0), (1, 8)]);
        // The same epoch starting earlier moves its start.
        assert!(epochs.assign(1, 5));
        assert_eq!(entries(&epochs), [(0, 0), (1, 5)]);
    }

    #[test]
    fn end_offsets_follow_kip_279() {
        let epochs = cache(&[(2, 10), (4, 30), (7, 50)]);
        let leo = 64;
        assert_eq!(epochs.end_offset_for(7, leo), (7, 64), "the latest epoch ends at the log end");
        assert_eq!(epochs.end_offset_for(4, leo), (4, 50));
        assert_eq!(epochs.end_offset_for(5, leo), (4, 50), "an epoch this log never had: the one before it");
        assert_eq!(epochs.end_offset_for(3, leo), (2, 30));
        assert_eq!(epochs.end_offset_for(1, leo), (1, 10), "older than every entry: where the oldest starts");
        assert_eq!(epochs.end_offset_for(8, leo), (-1, -1), "above the latest");
        assert_eq!(epochs.end_offset_for(-1, leo), (-1, -1));
        assert_eq!(LeaderEpochs::default().end_offset_for(0, leo), (-1, -1));
    }

    #[test]
    fn truncation_from_the_end_drops_epochs_that_start_at_or_after_it() {
        let mut epochs = cache(&[(0, 0), (2, 10), (3, 20)]);
        assert!(!epochs.truncate_from_end(25));
        assert!(epochs.truncate_from_end(20));
        assert_eq!(entries(&epochs), [(0, 0), (2, 10)]);
        assert!(epochs.truncate_from_end(3));
        assert_eq!(entries(&epochs), [(0, 0)]);
    }

    #[test]
    fn truncation_from_the_start_moves_the_covering_epoch_up() {
        let mut epochs = cache(&[(0, 0), (2, 10), (3, 20)]);
        assert!(!epochs.truncate_from_start(0));
        assert!(epochs.truncate_from_start(15));
        assert_eq!(entries(&epochs), [(2, 15), (3, 20)]);
        assert!(epochs.truncate_from_start(20));
        assert_eq!(entries(&epochs), [(3, 20)]);
        assert!(!epochs.truncate_from_start(20));
        assert!(epochs.truncate_from_start(40));
        assert_eq!(entries(&epochs), [(3, 40)]);
    }

    #[test]
    fn the_checkpoint_is_kafkas_text_format_and_bad_files_are_refused() {
        let epochs = cache(&[(0, 0), (2, 10)]);
        let text = epochs.encode();
        assert_eq!(text, "0\n2\n0 0\n2 10\n");
        assert_eq!(LeaderEpochs::decode(&text), Ok(epochs));
        assert_eq!(LeaderEpochs::decode("0\n0\n"), Ok(LeaderEpochs::default()));
        for bad in ["", "1\n0\n", "0\n2\n0 0\n", "0\n1\n0 0\n1 5\n", "0\n2\n2 10\n1 20\n", "0\n1\nx 0\n"] {
            assert!(LeaderEpochs::decode(bad).is_err(), "{bad:?}");
        }
    }
}
