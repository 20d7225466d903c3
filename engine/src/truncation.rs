//! Cutting a closed log back (a follower whose history diverged from its
//! leader's, KIP-101/279): the batches from the one that holds the given
//! offset on are removed, at batch boundaries as Kafka does.
//!
//! Crash safety: segments go newest first, each removal made durable before
//! the next; the segment that holds the cut is truncated and fdatasynced
//! last. A crash part-way leaves a longer log than asked for, never a
//! damaged one: the caller cuts again after the restart (a follower checks
//! its epochs against the leader's each time it starts fetching). What
//! hangs off the log end is reconciled by [`PartitionLog::open`]: producer
//! snapshots and leader epochs past the new end are dropped there.
//!
//! [`PartitionLog::open`]: crate::PartitionLog::open

use std::path::Path;
use std::rc::Rc;

use weir_runtime::io::Directory;

use crate::clean_shutdown;
use crate::error::{io_err, EngineError};
use crate::segment::{self, Segment};
use crate::storage;
use crate::LogConfig;

/// Truncates the closed log in `dir` so that it ends before the batch that
/// holds `end_offset` (the whole batch goes), and returns its new end. A log
/// that ends at or before `end_offset` keeps every batch. When the cut falls
/// inside a sealed segment, that segment keeps its (rewritten) indexes and
/// an empty active segment starts at the new end.
pub async fn truncate_closed(dir: &Path, end_offset: i64, config: &LogConfig) -> Result<i64, EngineError> {
    let directory = Directory::open(dir).await.map_err(io_err)?;
    // The marker describes the end being cut.
    clean_shutdown::take(dir, &directory).await?;
    let mut bases: Vec<i64> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok()?.file_name().to_str().and_then(segment::parse_log_name))
        .collect();
    bases.sort_unstable();
    let Some(&active) = bases.last() else {
        return Ok(end_offset.max(0)); // nothing written yet: open creates the first segment
    };
    while bases.len() > 1 && bases.last().is_some_and(|&base| base >= end_offset) {
        let base = bases.pop().expect("checked above");
        segment::remove_files(&segment::files(dir, base))?;
        storage::sync_directory(&directory).await?;
    }
    let base = *bases.last().expect("the first segment stays");
    let path = segment::log_path(dir, base);
    let file = segment::open_rw(&path).await?;
    let file_len = file.file_size().await.map_err(io_err)?;
    let (mut cut, mut kept_end) = (None, base);
    let scanned = segment::scan(&file, segment::alignment_of(&file), file_len, base, 0, base, |pos, h| {
        if cut.is_some() {
            return;
        }
        if h.last_offset() >= end_offset {
            cut = Some(pos);
        } else {
            kept_end = h.last_offset() + 1;
        }
    })
    .await?;
    let (cut_position, new_end) = cut.map_or((scanned.position, scanned.next_offset), |pos| (pos, kept_end));
    if cut_position < file_len {
        file.truncate(cut_position).await.map_err(io_err)?;
        storage::fdatasync(&file).await?;
    }
    if base == active || cut_position == 0 {
        // The last segment is (now) the active one, whose indexes open
        // rebuilds in memory: stale index files must not be taken for a
        // sealed segment's.
        file.close().await.map_err(io_err)?;
        remove_index_files(dir, base)?;
    } else {
        let (end, indexes, _) =
            segment::scan_with_index(&file, base, cut_position, config.index_interval_bytes).await?;
        let sealed = Segment::new(base, Rc::new(file), end.position, end.next_offset, indexes);
        sealed.seal_time_index();
        segment::write_index_files(dir, &sealed).await?;
        let next = segment::create_new(&segment::log_path(dir, new_end)).await?;
        next.close().await.map_err(io_err)?;
    }
    storage::sync_directory(&directory).await?;
    directory.close().await.map_err(io_err)?;
    tracing::info!(dir = %dir.display(), end_offset, new_end, "truncated the log");
    Ok(new_end)
}

fn remove_index_files(dir: &Path, base: i64) -> Result<(), EngineError> {
    segment::remove_files(&segment::files(dir, base)[1..])
}
