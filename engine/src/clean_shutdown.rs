//! The clean-shutdown marker: written by a clean close after the active
//! segment is truncated, fdatasynced and its indexes are written, it lets the
//! next open skip the scan of the active segment (which reads the whole
//! segment and checks every CRC). Open removes it durably before the log
//! accepts writes, so a crash later on always leads to a full scan.
//!
//! It records what the scan would have found, and is only believed while the
//! segment file still has the recorded length.

use crate::error::EngineError;
use crate::segment;
use crate::storage;
use std::path::{Path, PathBuf};
use weir_runtime::io::Directory;

const FILE: &str = "clean-shutdown";
const MAGIC: &str = "weir-clean-shutdown-v1";

/// The active segment's state at a clean close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CleanShutdown {
    pub base_offset: i64,
    /// Logical length of the segment file (it was truncated to it).
    pub size: u64,
    pub next_offset: i64,
    /// The index policy's bytes since its last entry.
    pub bytes_since_index_entry: u64,
    /// The segment's largest batch maxTimestamp and its batch's base offset.
    pub max_time: Option<(i64, i64)>,
}

impl CleanShutdown {
    fn encode(&self) -> String {
        let (ts, at) =
            self.max_time.map_or(("-".to_string(), "-".to_string()), |(t, o)| (t.to_string(), o.to_string()));
        format!(
            "{MAGIC} {} {} {} {} {ts} {at}\n",
            self.base_offset, self.size, self.next_offset, self.bytes_since_index_entry
        )
    }

    fn decode(text: &str) -> Option<Self> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let [MAGIC, base, size, next, since, ts, at] = words[..] else { return None };
        let max_time = match (ts, at) {
            ("-", "-") => None,
            _ => Some((ts.parse().ok()?, at.parse().ok()?)),
        };
        let marker = CleanShutdown {
            base_offset: base.parse().ok()?,
            size: size.parse().ok()?,
            next_offset: next.parse().ok()?,
            bytes_since_index_entry: since.parse().ok()?,
            max_time,
        };
        let offsets = marker.base_offset..marker.next_offset;
        let max_time_inside = marker.max_time.is_none_or(|(_, at)| offsets.contains(&at));
        (marker.base_offset >= 0 && marker.next_offset >= marker.base_offset && max_time_inside).then_some(marker)
    }
}

fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Writes the marker and fdatasyncs it; the caller syncs the directory.
pub(crate) async fn write(dir: &Path, marker: &CleanShutdown) -> Result<(), EngineError> {
    segment::write_file(&path(dir), marker.encode().as_bytes()).await
}

/// Reads and removes the marker (durably, so that it cannot come back after
/// a crash once the log has changed). `None` when there was none or it was
/// unreadable.
pub(crate) async fn take(dir: &Path, directory: &Directory) -> Result<Option<CleanShutdown>, EngineError> {
    let path = path(dir);
    if !path.exists() {
        return Ok(None);
    }
    let marker = segment::read_small_file(&path).await.and_then(|b| CleanShutdown::decode(&String::from_utf8(b).ok()?));
    if marker.is_none() {
        tracing::warn!(file = %path.display(), "ignoring an unreadable clean-shutdown marker");
    }
    std::fs::remove_file(&path)?;
    storage::sync_directory(directory).await?;
    Ok(marker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        for max_time in [None, Some((1_700_000_000_000, 41))] {
            let m =
                CleanShutdown { base_offset: 7, size: 4096, next_offset: 42, bytes_since_index_entry: 99, max_time };
            assert_eq!(CleanShutdown::decode(&m.encode()), Some(m));
        }
        for bad in [
            "",
            "weir-clean-shutdown-v1 1 2 3",
            "other 0 0 0 0 - -",
            "weir-clean-shutdown-v1 5 0 4 0 - -",
            "weir-clean-shutdown-v1 5 0 9 0 1 9",
        ] {
            assert_eq!(CleanShutdown::decode(bad), None, "{bad:?}");
        }
    }
}
