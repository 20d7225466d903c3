//! One offset kept in a small file of its own (`<magic> <offset>\n`),
//! replaced atomically ([`durable::replace_file_async`]): the log start
//! offset after retention or DeleteRecords, and the high watermark of a
//! replicated partition.

use std::path::Path;

use crate::durable;
use crate::error::EngineError;
use crate::segment;

/// A checkpoint file's name, its temporary's name and its first word.
pub(crate) struct OffsetCheckpoint {
    pub file: &'static str,
    pub temporary: &'static str,
    magic: &'static str,
}

pub(crate) const LOG_START: OffsetCheckpoint =
    OffsetCheckpoint { file: "log-start-offset", temporary: "log-start-offset.tmp", magic: "weir-log-start-offset-v1" };

pub(crate) const HIGH_WATERMARK: OffsetCheckpoint =
    OffsetCheckpoint { file: "high-watermark", temporary: "high-watermark.tmp", magic: "weir-high-watermark-v1" };

impl OffsetCheckpoint {
    /// The saved offset, if the file exists and is valid.
    pub async fn read(&self, dir: &Path) -> Option<i64> {
        let bytes = segment::read_small_file(&dir.join(self.file)).await?;
        let text = String::from_utf8(bytes).ok()?;
        let mut words = text.split_whitespace();
        if words.next() != Some(self.magic) {
            tracing::warn!(dir = %dir.display(), file = self.file, "ignoring an unreadable checkpoint");
            return None;
        }
        words.next()?.parse().ok().filter(|&o: &i64| o >= 0)
    }

    /// Saves `offset` durably (temporary file, fdatasync, rename, directory fsync).
    pub async fn write(&self, dir: &Path, offset: i64) -> Result<(), EngineError> {
        let text = format!("{} {offset}\n", self.magic);
        durable::replace_file_async(&dir.join(self.file), &dir.join(self.temporary), text.as_bytes()).await
    }
}
