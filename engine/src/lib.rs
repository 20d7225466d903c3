//! Weir's storage engine: one [`PartitionLog`] per partition, a sequence of
//! segments holding Kafka RecordBatch v2 bytes exactly as produced (only the
//! base offset and partition leader epoch are rewritten, both outside the CRC).
//!
//! On disk, in the partition's directory:
//! - `<base offset:020>.log`: batches, written with direct I/O (glommio DMA
//!   files) in aligned blocks; the active segment's last block is padded with
//!   zeros until the next write rewrites it, so recovery treats zeros as the end.
//! - `<base offset:020>.index`: sparse offset index (u32 relative offset, u32
//!   position, big-endian), written and fdatasynced when the segment is sealed.
//!   The active segment's index lives in memory and is rebuilt at open.
//!
//! Invariants: offsets are contiguous across batches and segments; index
//! entries strictly increase; bytes at or past the high watermark are never
//! returned to readers; one writer task per log changes files and the high
//! watermark; nothing holds a `RefCell` borrow across an `.await`.
//!
//! Recovery scans the last segment (length, magic, CRC, offset contiguity) and
//! cuts it durably at the first bad or incomplete batch.

pub mod batch;
mod error;
pub mod index;
mod log;
mod segment;

pub use error::EngineError;
pub use log::{
    AppendInfo, Durability, LogConfig, LogStats, PartitionLog, MAX_APPEND_BYTES, MAX_GROUP_BYTES, MAX_READ_BYTES,
    MAX_SEGMENT_BYTES,
};
