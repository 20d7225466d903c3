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
//! - `<base offset:020>.timeindex`: sparse time index, Kafka's layout (i64
//!   timestamp, u32 relative offset), written with the offset index.
//! - `log-start-offset`: the log start offset after retention or
//!   DeleteRecords (replaced atomically).
//! - `leader-epoch-checkpoint`: the first offset of each leader epoch
//!   ([`leader_epochs`], Kafka's format), replaced atomically before the
//!   first batch of a new epoch is written; reconciled with the recovered
//!   log at open (epochs past its end dropped, the first moved up to the log
//!   start).
//! - `<base offset:020>.log.cleaned`: a compacted copy being written; renamed
//!   over the `.log` when complete, removed at open otherwise.
//!
//! - `high-watermark`: the high watermark of a replicated partition
//!   (replaced atomically now and then and at close); a log alone follows
//!   its log end instead.
//!
//! Replication: [`PartitionLog::append_replicated`] stores a leader's batches
//! byte for byte (offsets, gaps and epochs kept). The log end offset (what
//! is written) and the high watermark (what consumers read,
//! [`ReadLimit`]) are kept apart. Truncation
//! ([`truncation::truncate_closed`], or [`PartitionLog::truncate_to`] which
//! closes, cuts and reopens in place) removes a follower's divergent tail.
//!
//! Maintenance (called by the owner of the log, never a hidden task):
//! [`PartitionLog::enforce_retention`], [`PartitionLog::delete_records`],
//! [`PartitionLog::compact`]. Compaction leaves gaps between batches of
//! sealed segments; a segment still ends at the offset it ended at.
//!
//! Invariants: offsets increase across batches and segments (gaps come
//! from compaction, or from a follower's copy of a compacted log); index
//! entries strictly increase; bytes at or past the high watermark are never
//! returned to consumers, nor past the log end to followers; one writer
//! task per log changes files and the log end; nothing holds a `RefCell`
//! borrow across an `.await`.
//!
//! - `clean-shutdown`: left by a clean close (the active segment's length,
//!   next offset and index state); removed durably at open.
//! - `<offset:020>.snapshot`: producer state describing the batches below
//!   `offset`, written and read for the log's owner (opaque bytes here, with
//!   a CRC); the newest three are kept, those above the recovered end are
//!   removed durably at open.
//!
//! Recovery scans the last segment (length, magic, CRC, increasing offsets) and
//! cuts it durably at the first bad or incomplete batch, unless a clean-shutdown
//! marker matching the segment's length says how it ends.

pub mod batch;
mod cache;
mod clean_shutdown;
mod compaction;
pub mod compression;
pub mod durable;
mod error;
pub mod index;
pub mod leader_epochs;
mod log;
mod offset_checkpoint;
mod producer_snapshot;
pub mod records;
mod retention;
mod segment;
pub mod storage;
pub mod timeindex;
pub mod truncation;

pub use compaction::{CompactionOutcome, MAX_KEYS as MAX_COMPACTION_KEYS};
pub use error::EngineError;
pub use log::{
    now_ms, AppendInfo, CleanupPolicy, Durability, LogConfig, LogStats, PartitionLog, ReadLimit, TimestampType,
    MAX_APPEND_BYTES, MAX_GROUP_BYTES, MAX_READ_BYTES, MAX_SEGMENT_BYTES,
};
pub use retention::RetentionOutcome;
