//! Deleting old data: `retention.ms` / `retention.bytes` (whole sealed
//! segments, oldest first, never the active one) and DeleteRecords (the log
//! start offset moves; segments wholly below it are deleted). The log start
//! offset is kept in `log-start-offset` (written to a temporary file,
//! fdatasynced, renamed, directory fsynced), so it survives restarts.
//!
//! Crash safety: segments are deleted oldest first, with a directory fsync
//! after each, so the segments left always form a contiguous chain; index
//! files whose log is gone, `.cleaned` files of an interrupted compaction
//! and a stray checkpoint temporary are removed at open.

use crate::leader_epochs;
use std::path::Path;
use std::rc::Rc;

use weir_runtime::io::Directory;

use crate::durable;
use crate::error::EngineError;
use crate::log::PartitionLog;
use crate::offset_checkpoint::{HIGH_WATERMARK, LOG_START};
use crate::segment::{self, Segment};
use crate::storage;

/// What one retention pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// Sealed segments deleted.
    pub segments_deleted: usize,
    /// Their bytes.
    pub bytes_deleted: u64,
    /// The log start offset afterwards.
    pub log_start_offset: i64,
}

/// Removes what interrupted operations left: `*.cleaned` (compaction that did
/// not reach its rename), the checkpoints' temporaries, and `.index` /
/// `.timeindex` files whose `.log` is gone.
pub(crate) async fn remove_leftovers(dir: &Path, directory: &Directory) -> Result<(), EngineError> {
    let mut removed = false;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        let orphan_index = ["index", "timeindex"].iter().any(|ext| {
            name.strip_suffix(ext)
                .and_then(|stem| stem.strip_suffix('.'))
                .is_some_and(|stem| !dir.join(format!("{stem}.log")).exists())
        });
        let temporary = [LOG_START.temporary, HIGH_WATERMARK.temporary, leader_epochs::CHECKPOINT_TMP].contains(&name);
        if name.ends_with(".cleaned") || temporary || orphan_index {
            tracing::info!(file = %path.display(), "removing a leftover of an interrupted operation");
            std::fs::remove_file(&path)?;
            removed = true;
        }
    }
    if removed {
        storage::sync_directory(directory).await?;
    }
    Ok(())
}

impl PartitionLog {
    /// Applies `retention.ms` and `retention.bytes` (when the cleanup policy
    /// deletes): deletes the oldest sealed segments whose largest timestamp
    /// is before `now_ms - retention_ms`, or without which the log is still
    /// at least `retention_bytes` long. Never deletes the active segment
    /// (`segment_ms` rolls it). The shard calls this periodically (Kafka's
    /// `log.retention.check.interval.ms`, 5 minutes by default).
    pub async fn enforce_retention(&self, now_ms: i64) -> Result<RetentionOutcome, EngineError> {
        let _permit = self.shared.maintenance.acquire_permit(1).await;
        let shared = &self.shared;
        if shared.closing.get() {
            return Err(EngineError::Closed);
        }
        let config = shared.config();
        let mut outcome = RetentionOutcome { log_start_offset: self.log_start_offset(), ..Default::default() };
        if !config.cleanup_policy.deletes() || (config.retention_ms.is_none() && config.retention_bytes.is_none()) {
            return Ok(outcome);
        }
        let victims: Vec<Rc<Segment>> = {
            let segments = shared.segments.borrow();
            let mut remaining: u64 = segments.values().map(|s| s.size()).sum();
            let sealed = segments.len() - 1;
            let mut victims = Vec::new();
            for seg in segments.values().take(sealed) {
                let by_bytes = config.retention_bytes.is_some_and(|limit| remaining - seg.size() >= limit);
                let by_time = config
                    .retention_ms
                    .is_some_and(|ms| seg.max_time().is_some_and(|(ts, _)| ts < now_ms.saturating_sub(ms as i64)));
                if !by_bytes && !by_time {
                    break;
                }
                remaining -= seg.size();
                victims.push(seg.clone());
            }
            victims
        };
        if victims.is_empty() {
            return Ok(outcome);
        }
        outcome.segments_deleted = victims.len();
        outcome.bytes_deleted = victims.iter().map(|s| s.size()).sum();
        self.delete_segments(victims).await?;
        outcome.log_start_offset = self.log_start_offset();
        LOG_START.write(&shared.dir, outcome.log_start_offset).await?;
        shared.epochs_start_at(outcome.log_start_offset).await?;
        Ok(outcome)
    }

    /// Kafka DeleteRecords: moves the log start offset up to `before_offset`
    /// (-1: the high watermark), durably, and deletes the sealed segments
    /// wholly below it. Returns the new log start offset (the low
    /// watermark). An offset above the high watermark is `OffsetOutOfRange`;
    /// one at or below the current start changes nothing.
    pub async fn delete_records(&self, before_offset: i64) -> Result<i64, EngineError> {
        let _permit = self.shared.maintenance.acquire_permit(1).await;
        let shared = &self.shared;
        if shared.closing.get() {
            return Err(EngineError::Closed);
        }
        let hw = self.high_watermark();
        let start = self.log_start_offset();
        let target = if before_offset == -1 { hw } else { before_offset };
        if target < 0 || target > hw {
            return Err(EngineError::OffsetOutOfRange { requested: before_offset, start, end: hw });
        }
        if target <= start {
            return Ok(start);
        }
        // Durable first: a crash after this never shows the deleted records.
        LOG_START.write(&shared.dir, target).await?;
        shared.log_start_offset.set(target.max(shared.log_start_offset.get()));
        let victims: Vec<Rc<Segment>> = {
            let segments = shared.segments.borrow();
            let sealed = segments.len() - 1;
            segments.values().take(sealed).take_while(|s| s.next_offset() <= target).cloned().collect()
        };
        self.delete_segments(victims).await?;
        shared.epochs_start_at(self.log_start_offset()).await?;
        Ok(self.log_start_offset())
    }

    /// Removes `victims` (the oldest sealed segments, in order) from the log
    /// and deletes their files, oldest first, fsyncing the directory after
    /// each. Advances the log start offset to the first remaining segment.
    async fn delete_segments(&self, victims: Vec<Rc<Segment>>) -> Result<(), EngineError> {
        let shared = &self.shared;
        {
            let mut segments = shared.segments.borrow_mut();
            for v in &victims {
                let first = segments.keys().next().copied();
                assert_eq!(first, Some(v.base_offset), "segments are deleted oldest first");
                segments.remove(&v.base_offset);
            }
            assert!(!segments.is_empty(), "the active segment is never deleted");
            let first = *segments.keys().next().expect("checked above");
            shared.log_start_offset.set(shared.log_start_offset.get().max(first));
        }
        for v in victims {
            segment::remove_files(&segment::files(&shared.dir, v.base_offset))?;
            durable::sync_dir_async(&shared.dir).await?;
            shared.count(|s| s.segments_deleted += 1);
            tracing::info!(dir = %shared.dir.display(), base_offset = v.base_offset, "deleted segment");
            // In-flight reads keep their own reference; the file closes with the last.
            let file = v.file.clone();
            drop(v);
            let _ = file.close_rc().await;
        }
        Ok(())
    }
}
