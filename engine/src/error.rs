//! The engine's error type. Each variant maps to one Kafka error code at the
//! protocol edge (see the variant docs); the engine itself knows no codes.

/// Everything that can go wrong in the storage engine.
#[derive(thiserror::Error, Debug)]
pub enum EngineError {
    /// A batch failed validation (length, magic, CRC, record count).
    /// Kafka: CORRUPT_MESSAGE.
    #[error("corrupt message: {0}")]
    CorruptMessage(String),
    /// A well-formed batch Kafka refuses: its offset range and record count
    /// disagree, or a payload claims more offsets than one segment holds.
    /// Kafka: INVALID_RECORD.
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// A CreateTime record stamped outside the topic's
    /// `message.timestamp.before.max.ms` / `after.max.ms` of the append time.
    /// Kafka: INVALID_TIMESTAMP.
    #[error("invalid timestamp: {0}")]
    InvalidTimestamp(String),
    /// A batch (or a produce payload) is larger than the configured limit; the
    /// value is the offending size in bytes. Kafka: MESSAGE_TOO_LARGE.
    #[error("message too large: {0} bytes")]
    MessageTooLarge(usize),
    /// A read asked for an offset outside `[start, end]`.
    /// Kafka: OFFSET_OUT_OF_RANGE.
    #[error("offset {requested} out of range [{start}, {end}]")]
    OffsetOutOfRange {
        /// The offset that was asked for.
        requested: i64,
        /// The log start offset at the time of the request.
        start: i64,
        /// The high watermark at the time of the request.
        end: i64,
    },
    /// The file system failed. Kafka: KAFKA_STORAGE_ERROR.
    #[error("storage i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The log was closed (or deleted) before the operation could finish.
    #[error("log closed")]
    Closed,
}

impl EngineError {
    /// True for a write that failed because the device (or quota) is full
    /// (ENOSPC, EDQUOT, or a short direct write). Still `Io`, so still
    /// KAFKA_STORAGE_ERROR; stored data is intact and reads keep working, and
    /// appends succeed again once space is freed.
    pub fn is_storage_full(&self) -> bool {
        match self {
            EngineError::Io(e) => {
                e.kind() == std::io::ErrorKind::StorageFull
                    || e.kind() == std::io::ErrorKind::QuotaExceeded
                    // ENOSPC, EDQUOT on Linux.
                    || matches!(e.raw_os_error(), Some(28 | 122))
            }
            _ => false,
        }
    }
}

/// Converts a glommio error (always an I/O failure for file operations) into
/// [`EngineError::Io`]. Kept private so glommio types stay out of the API.
pub(crate) fn io_err(e: weir_runtime::GlommioError<()>) -> EngineError {
    EngineError::Io(e.into())
}

/// An `InvalidData` I/O error for bytes on disk that do not parse: the engine
/// wrote them, so this is storage corruption, not a client mistake.
pub(crate) fn disk_corruption(msg: String) -> EngineError {
    EngineError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, msg))
}

/// True for an error made by [`disk_corruption`].
pub(crate) fn is_disk_corruption(e: &EngineError) -> bool {
    matches!(e, EngineError::Io(io) if io.kind() == std::io::ErrorKind::InvalidData)
}
