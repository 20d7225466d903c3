//! A partition log's tunables (Kafka's topic configs as the engine takes them).

/// Tunables of one partition log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// Roll a new segment when the active one would exceed this many bytes
    /// (clamped to [`super::MAX_SEGMENT_BYTES`]).
    pub segment_bytes: u64,
    /// One sparse index entry at least every this many bytes of batches.
    pub index_interval_bytes: u64,
    /// A batch larger than this is rejected with `MessageTooLarge`.
    pub max_batch_bytes: usize,
    /// Every group write is followed by fdatasync before any append completes
    /// (the same as `flush_messages: Some(1)`).
    pub fsync_every_write: bool,
    /// Kafka `flush.messages`: fdatasync once this many offsets were written
    /// since the last sync. `None`: never for this reason. `Some(1)`: every
    /// write, and `Written` appends wait for it.
    pub flush_messages: Option<u64>,
    /// Kafka `flush.ms`: fdatasync when the oldest unsynced write is this
    /// old (a timer in the writer fires it even when no more appends come).
    /// `None`: never for this reason.
    pub flush_ms: Option<u64>,
    /// Kafka `segment.ms`: roll the active segment at the next append once its
    /// first write is this old (wall clock; a segment recovered at open counts
    /// from the open). `None`: only `segment_bytes` rolls.
    pub segment_ms: Option<u64>,
    /// Kafka `segment.jitter.ms`: each segment rolls by `segment_ms` less a
    /// random amount below this (and below `segment_ms`), so many logs
    /// created together do not roll together.
    pub segment_jitter_ms: u64,
    /// Kafka `retention.ms`: [`PartitionLog::enforce_retention`] deletes sealed
    /// segments whose largest timestamp is older than this. `None`: -1.
    pub retention_ms: Option<u64>,
    /// Kafka `retention.bytes`: [`PartitionLog::enforce_retention`] deletes the
    /// oldest sealed segments while the log stays at or above this size
    /// without them. `None`: -1.
    pub retention_bytes: Option<u64>,
    /// Kafka `cleanup.policy`.
    pub cleanup_policy: CleanupPolicy,
    /// Kafka `delete.retention.ms`: compaction keeps a tombstone (null value)
    /// until its timestamp is this old.
    pub delete_retention_ms: u64,
    /// Kafka `min.compaction.lag.ms`: compaction stops at the first sealed
    /// segment holding a record younger than this.
    pub min_compaction_lag_ms: u64,
    /// Kafka `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    /// Kafka `message.timestamp.before.max.ms` / `after.max.ms`: with
    /// CreateTime, a batch with a record this far behind (ahead of) the
    /// append time is refused. `None`: no bound.
    pub timestamp_before_max_ms: Option<u64>,
    pub timestamp_after_max_ms: Option<u64>,
    /// Bytes of recently written batches kept in memory for tailing readers;
    /// 0 disables the read cache.
    pub cache_bytes: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            index_interval_bytes: 4096,
            max_batch_bytes: (1 << 20) + 12,
            fsync_every_write: false,
            flush_messages: None,
            flush_ms: None,
            segment_ms: None,
            segment_jitter_ms: 0,
            retention_ms: None,
            retention_bytes: None,
            cleanup_policy: CleanupPolicy::Delete,
            delete_retention_ms: 24 * 60 * 60 * 1000,
            min_compaction_lag_ms: 0,
            timestamp_type: TimestampType::CreateTime,
            timestamp_before_max_ms: None,
            timestamp_after_max_ms: None,
            cache_bytes: 4 << 20,
        }
    }
}

/// Kafka `cleanup.policy`: what happens to old data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CleanupPolicy {
    /// `delete`: retention deletes old segments; compaction does nothing.
    Delete,
    /// `compact`: compaction keeps the newest record per key; retention does nothing.
    Compact,
    /// `compact,delete`: both.
    CompactDelete,
}

impl CleanupPolicy {
    /// True when retention deletes segments.
    pub fn deletes(self) -> bool {
        matches!(self, CleanupPolicy::Delete | CleanupPolicy::CompactDelete)
    }

    /// True when compaction runs.
    pub fn compacts(self) -> bool {
        matches!(self, CleanupPolicy::Compact | CleanupPolicy::CompactDelete)
    }
}

/// Kafka `message.timestamp.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampType {
    /// Timestamps are the producer's; batches are stored as produced.
    CreateTime,
    /// The writer sets each batch's maxTimestamp to the append time and its
    /// timestamp-type attribute, and recomputes the CRC (the stored bytes then
    /// differ from the produced ones, as in Kafka).
    LogAppendTime,
}
