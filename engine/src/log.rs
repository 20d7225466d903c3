//! `PartitionLog`: one partition's segmented log on one glommio executor.
//!
//! Produce path: [`PartitionLog::append_validated`] takes a payload checked by
//! [`batch::validate_records`] (or [`PartitionLog::append`] checks it), assigns offsets
//! synchronously (first poll), queues a [`Pending`] and wakes the writer task.
//! The writer drains the queue, copies the batches (patched with their offsets)
//! behind the active segment's partial last block into one aligned DMA buffer,
//! writes it with one call, advances the high watermark and completes the
//! `Written` appends; one fdatasync then completes every `Synced` append of
//! the group (group commit).
//!
//! Durability: `Synced` appends always wait for an fdatasync that covers
//! them. `Written` appends complete after the write; the flush policy
//! (`flush_messages`, `flush_ms`, `fsync_every_write`) decides when the writer
//! fdatasyncs them anyway (with `flush_messages == Some(1)` or
//! `fsync_every_write` they wait for it, like `Synced`).
//!
//! Reads are served from the read cache (the last `cache_bytes` written) when
//! they can be, else from the segment files with DMA reads.
//!
//! State ownership: the writer task alone changes segment sizes, indexes, the
//! read cache and the high watermark; `append` alone assigns offsets (except
//! after a write failure, when the writer takes them back). Retention,
//! `delete_records` and compaction (`retention.rs`, `compaction.rs`) change
//! only sealed segments and the log start offset, one at a time (the
//! maintenance semaphore). No `RefCell` borrow is held across an `.await`.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::future::{poll_fn, Future};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::io::Directory;
use glommio::sync::Semaphore;
use glommio::Task;

use crate::batch::{self, RawHeader, ValidatedRecords, HEADER_LEN};
use crate::cache::{Chunk, ReadCache};
use crate::clean_shutdown::{self, CleanShutdown};
use crate::durable;
use crate::error::{disk_corruption, io_err, is_disk_corruption, EngineError};
use crate::index::IndexPolicy;
use crate::producer_snapshot;
use crate::records;
use crate::retention;
use crate::segment::{self, align_down, align_up, FileWindow, IndexAdditions, Indexes, Offsets, Segment};

/// Largest segment the engine creates (file positions in the index are u32;
/// one append may overshoot the limit, so keep half the range as headroom).
pub const MAX_SEGMENT_BYTES: u64 = i32::MAX as u64;
/// Largest single `append` payload; bounds one overshoot of the segment limit.
pub const MAX_APPEND_BYTES: usize = i32::MAX as usize;
/// The writer stops adding appends to one group write beyond this many bytes
/// (a group always takes at least one append).
pub const MAX_GROUP_BYTES: usize = 16 * 1024 * 1024;
/// Largest single DMA read a fetch issues (more is read in further calls).
pub const MAX_READ_BYTES: usize = 16 * 1024 * 1024;

/// Tunables of one partition log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// Roll a new segment when the active one would exceed this many bytes
    /// (clamped to [`MAX_SEGMENT_BYTES`]).
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

/// Milliseconds since the Unix epoch, the clock of timestamps and retention.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// How far an append must get before it completes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// The write to the segment file completed (acks=1).
    Written,
    /// The write completed and was fdatasynced (acks=all).
    Synced,
}

/// The offsets an append was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record of the first batch.
    pub base_offset: i64,
    /// Offset of the last record of the last batch.
    pub last_offset: i64,
    /// The append time given to the batches with `LogAppendTime`; -1 with
    /// `CreateTime` (ProduceResponse's `log_append_time_ms`).
    pub log_append_time: i64,
}

/// Counters of one log's writer, for tests, metrics and benches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Group writes issued to segment files (one per group and segment).
    pub writes: u64,
    /// fdatasync calls on the active segment (group commits and close).
    pub syncs: u64,
    /// Segments rolled (sealed and replaced) since open.
    pub rolls: u64,
    /// Reads answered from the read cache (no disk I/O).
    pub cache_hits: u64,
    /// DMA reads issued by `read`, timestamp lookups and compaction.
    pub disk_reads: u64,
    /// Segments deleted by retention or `delete_records`.
    pub segments_deleted: u64,
    /// Segments rewritten by compaction.
    pub segments_compacted: u64,
    /// Bytes of the active segment scanned by recovery at open: all of it
    /// after an unclean stop, only what follows its last index entry after
    /// a clean shutdown.
    pub recovery_scanned_bytes: u64,
}

/// An append waiting for the writer.
struct Pending {
    records: Bytes,
    base_offset: i64,
    last_offset: i64,
    durability: Durability,
    done: LocalSender<Result<AppendInfo, EngineError>>,
}

impl Pending {
    fn complete(self, result: Result<AppendInfo, EngineError>) {
        // The appender may have gone away; nothing to tell it then.
        let _ = self.done.try_send(result);
    }

    fn info(&self, log_append_time: i64) -> AppendInfo {
        AppendInfo { base_offset: self.base_offset, last_offset: self.last_offset, log_append_time }
    }
}

/// `wait_beyond` callers parked until the high watermark passes their offset.
#[derive(Default)]
struct Waiters {
    next_id: u64,
    parked: BTreeMap<u64, (i64, Waker)>,
}

/// State shared by the log handle, the writer task and readers.
pub(crate) struct Shared {
    pub dir: PathBuf,
    /// Replaced whole by [`PartitionLog::set_config`]; read with `config()`.
    config: Cell<LogConfig>,
    /// Next offset `append` will hand out.
    next_offset: Cell<i64>,
    /// One past the last offset written to a segment file.
    pub high_watermark: Cell<i64>,
    pub log_start_offset: Cell<i64>,
    /// No new appends; the writer finishes the queue and stops.
    pub closing: Cell<bool>,
    /// Files closed; reads fail.
    pub closed: Cell<bool>,
    queue: RefCell<VecDeque<Pending>>,
    /// Every segment by base offset; the last one is the active segment.
    pub segments: RefCell<BTreeMap<i64, Rc<Segment>>>,
    waiters: RefCell<Waiters>,
    stats: Cell<LogStats>,
    pub cache: RefCell<ReadCache>,
    /// One retention, `delete_records` or compaction run at a time.
    pub maintenance: Semaphore,
    /// One producer state snapshot written at a time (they share a temporary).
    snapshots: Semaphore,
}

impl Shared {
    /// The current configuration (a copy: it may change between awaits).
    pub fn config(&self) -> LogConfig {
        self.config.get()
    }

    pub fn count(&self, f: impl FnOnce(&mut LogStats)) {
        let mut s = self.stats.get();
        f(&mut s);
        self.stats.set(s);
    }

    /// Wakes every `wait_beyond` whose offset is now below the high watermark
    /// (all of them once closing).
    fn wake_waiters(&self) {
        let hw = self.high_watermark.get();
        let all = self.closing.get();
        let ready: Vec<Waker> = {
            let mut w = self.waiters.borrow_mut();
            let ids: Vec<u64> = w.parked.iter().filter(|(_, (off, _))| all || *off < hw).map(|(id, _)| *id).collect();
            ids.iter().filter_map(|id| w.parked.remove(id)).map(|(_, waker)| waker).collect()
        };
        for waker in ready {
            waker.wake();
        }
    }

    /// Fails every queued append and takes their offsets back. Called right
    /// after a failed write, before any `.await`, so no append can slip in.
    fn fail_queued(&self, err: &EngineError) {
        let failed: Vec<Pending> = self.queue.borrow_mut().drain(..).collect();
        self.next_offset.set(self.high_watermark.get());
        for p in failed {
            p.complete(Err(copy_err(err)));
        }
    }
}

/// A partition log: segments in one directory, one writer task. Lives on one
/// glommio executor thread (not `Send`).
pub struct PartitionLog {
    pub(crate) shared: Rc<Shared>,
    wake_writer: LocalSender<()>,
    writer: RefCell<Option<Task<Result<(), EngineError>>>>,
}

impl PartitionLog {
    /// Opens (creating the dir if missing) and recovers the log in `dir`;
    /// spawns its writer task on the current glommio executor.
    pub async fn open(dir: PathBuf, config: LogConfig) -> Result<Rc<PartitionLog>, EngineError> {
        let mut config = config;
        config.segment_bytes = config.segment_bytes.clamp(1, MAX_SEGMENT_BYTES);
        let created = !dir.exists();
        std::fs::create_dir_all(&dir)?;
        if created {
            // Make the new directory's own entry durable.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                durable::sync_dir_async(parent).await?;
            }
        }
        segment::prime_iopoll_probe(&dir).await?;
        let directory = Directory::open(&dir).await.map_err(io_err)?;
        let recovered = recover(&dir, &directory, &config).await?;
        let Recovered { segments, active, tail, policy, scanned } = recovered;
        let hw = active.next_offset();
        if producer_snapshot::remove_above(&dir, hw)? {
            directory.sync().await.map_err(io_err)?;
        }
        let first_base = segments.keys().next().copied().unwrap_or(active.base_offset);
        let mut log_start = first_base;
        if let Some(saved) = retention::read_checkpoint(&dir).await {
            if saved > hw {
                tracing::warn!(dir = %dir.display(), saved, hw, "log start offset beyond the recovered end; using the end");
            }
            log_start = saved.clamp(first_base, hw);
        }
        let active_since = (active.size() > 0).then(now_ms);
        let cache = ReadCache::new(config.cache_bytes);
        let shared = Rc::new(Shared {
            dir,
            config: Cell::new(config),
            next_offset: Cell::new(hw),
            high_watermark: Cell::new(hw),
            log_start_offset: Cell::new(log_start),
            closing: Cell::new(false),
            closed: Cell::new(false),
            queue: RefCell::new(VecDeque::new()),
            segments: RefCell::new(segments),
            waiters: RefCell::new(Waiters::default()),
            stats: Cell::new(LogStats { recovery_scanned_bytes: scanned, ..LogStats::default() }),
            cache: RefCell::new(cache),
            maintenance: Semaphore::new(1),
            snapshots: Semaphore::new(1),
        });
        let (wake_writer, wake_rx) = local_channel::new_bounded(1);
        let writer = Writer {
            shared: shared.clone(),
            directory,
            dir_dirty: false,
            active,
            tail,
            policy,
            unflushed: 0,
            unflushed_since: None,
            active_since,
            group_time: -1,
        };
        let task = glommio::spawn_local(writer.run(wake_rx));
        Ok(Rc::new(PartitionLog { shared, wake_writer, writer: RefCell::new(Some(task)) }))
    }

    /// Validates every batch in `records`, then [`PartitionLog::append_validated`].
    pub async fn append(&self, records: Bytes, durability: Durability) -> Result<AppendInfo, EngineError> {
        let records = batch::validate_records(records, self.shared.config().max_batch_bytes)?;
        self.append_validated(records, durability).await
    }

    /// Checks the record timestamps (CreateTime), assigns offsets, queues the
    /// write and resolves once the data reached `durability`. Offsets are
    /// assigned at the first poll; dropping the future after that does not
    /// cancel the write.
    pub async fn append_validated(
        &self,
        records: ValidatedRecords,
        durability: Durability,
    ) -> Result<AppendInfo, EngineError> {
        let config = self.shared.config();
        if config.timestamp_type == TimestampType::CreateTime {
            let (before, after) = (config.timestamp_before_max_ms, config.timestamp_after_max_ms);
            records::check_timestamps(records.bytes(), now_ms(), before, after)?;
        }
        if self.shared.closing.get() {
            return Err(EngineError::Closed);
        }
        let base_offset = self.shared.next_offset.get();
        let next = base_offset
            .checked_add(records.offset_count())
            .ok_or_else(|| EngineError::CorruptMessage("offsets overflow i64".into()))?;
        self.shared.next_offset.set(next);
        let records = records.into_bytes();
        let (done, result) = local_channel::new_bounded(1);
        let pending = Pending { records, base_offset, last_offset: next - 1, durability, done };
        self.shared.queue.borrow_mut().push_back(pending);
        // Full means a wake-up is already pending; the writer drains everything.
        let _ = self.wake_writer.try_send(());
        result.recv().await.unwrap_or(Err(EngineError::Closed))
    }

    /// Replaces the configuration of the open log (a topic config change).
    /// Takes effect at the next append, write, flush decision and maintenance
    /// run; `cache_bytes` and `index_interval_bytes` stay as opened.
    pub fn set_config(&self, config: LogConfig) {
        let old = self.shared.config();
        let config = LogConfig {
            segment_bytes: config.segment_bytes.clamp(1, MAX_SEGMENT_BYTES),
            cache_bytes: old.cache_bytes,
            index_interval_bytes: old.index_interval_bytes,
            ..config
        };
        self.shared.config.set(config);
        // The flush deadline may have moved; let the writer recompute it.
        let _ = self.wake_writer.try_send(());
    }

    /// The configuration in force.
    pub fn config(&self) -> LogConfig {
        self.shared.config()
    }

    /// First offset still stored.
    pub fn log_start_offset(&self) -> i64 {
        self.shared.log_start_offset.get()
    }

    /// One past the last offset whose batch has been written to the file.
    pub fn high_watermark(&self) -> i64 {
        self.shared.high_watermark.get()
    }

    /// Appends waiting for the writer to take them: more than a few means
    /// the writer (the disk) does not keep up with the producers.
    pub fn queued_appends(&self) -> usize {
        self.shared.queue.borrow().len()
    }

    /// The offset the next append will be given (past appends still being written).
    pub fn log_end_offset(&self) -> i64 {
        self.shared.next_offset.get()
    }

    /// Writer counters since open.
    pub fn stats(&self) -> LogStats {
        self.shared.stats.get()
    }

    /// Whole batches starting with the one containing `offset`, up to
    /// `max_bytes` in total but at least one batch (KIP-74), from one segment.
    /// Empty when `offset == high_watermark()`.
    pub async fn read(&self, offset: i64, max_bytes: usize) -> Result<Bytes, EngineError> {
        if self.shared.closed.get() {
            return Err(EngineError::Closed);
        }
        let hw = self.high_watermark();
        let start = self.log_start_offset();
        if offset < start || offset > hw {
            return Err(EngineError::OffsetOutOfRange { requested: offset, start, end: hw });
        }
        if offset == hw {
            return Ok(Bytes::new());
        }
        let cached = self.shared.cache.borrow().read(offset, max_bytes);
        if let Some(bytes) = cached {
            self.shared.count(|s| s.cache_hits += 1);
            return Ok(bytes);
        }
        let seg = self.segment_for(offset)?;
        // Read together with `hw` above (no await in between): every byte
        // below `limit` belongs to a batch below the high watermark.
        let limit = seg.size();
        debug_assert!(offset < seg.next_offset() && seg.next_offset() <= hw);
        let pos = seg.lookup(offset);
        let mut reads = 0;
        let mut result = read_batches(&seg, pos, limit, offset, max_bytes, &mut reads).await;
        if retry_from_start(&seg, pos, offset, &result) {
            result = read_batches(&seg, 0, limit, offset, max_bytes, &mut reads).await;
        }
        self.shared.count(|s| s.disk_reads += reads);
        result
    }

    fn segment_for(&self, offset: i64) -> Result<Rc<Segment>, EngineError> {
        let seg = self.shared.segments.borrow().range(..=offset).next_back().map(|(_, s)| s.clone());
        seg.ok_or_else(|| disk_corruption(format!("no segment holds offset {offset}")))
    }

    /// Kafka ListOffsets by timestamp: the first record at or after the log
    /// start whose timestamp is >= `timestamp`, as (offset, its timestamp);
    /// `None` when there is none. Record-exact for plain batches; for a
    /// compressed batch, its first offset and its maxTimestamp.
    pub async fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, EngineError> {
        if self.shared.closed.get() {
            return Err(EngineError::Closed);
        }
        let start = self.log_start_offset();
        let segments: Vec<Rc<Segment>> = self.shared.segments.borrow().values().cloned().collect();
        for seg in segments {
            let limit = seg.size();
            if seg.next_offset() <= start || seg.max_time().is_none_or(|(max, _)| max < timestamp) {
                continue;
            }
            let from = seg.time_floor(timestamp).max(start);
            let pos = seg.lookup(from.max(seg.base_offset));
            let mut reads = 0;
            let probe = |b: &[u8], h: &RawHeader| first_record_at(b, h, from, |ts| ts >= timestamp);
            let mut found = find_in_segment(&seg, pos, limit, from, &mut reads, &probe).await;
            if retry_from_start(&seg, pos, from, &found) {
                found = find_in_segment(&seg, 0, limit, from, &mut reads, &probe).await;
            }
            self.shared.count(|s| s.disk_reads += reads);
            if let Some(found) = found? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Kafka ListOffsets MAX_TIMESTAMP (-3): the record with the largest
    /// timestamp (the first of equals), as (offset, timestamp); `None` when
    /// the log is empty.
    pub async fn max_timestamp(&self) -> Result<Option<(i64, i64)>, EngineError> {
        if self.shared.closed.get() {
            return Err(EngineError::Closed);
        }
        let start = self.log_start_offset();
        let mut best: Option<(Rc<Segment>, i64, i64)> = None;
        for seg in self.shared.segments.borrow().values() {
            if seg.next_offset() <= start {
                continue;
            }
            if let Some((ts, at)) = seg.max_time() {
                if best.as_ref().is_none_or(|b| ts > b.1) {
                    best = Some((seg.clone(), ts, at));
                }
            }
        }
        let Some((seg, max, at)) = best else { return Ok(None) };
        let limit = seg.size();
        let pos = seg.lookup(at);
        let from = at.max(start);
        let mut reads = 0;
        let probe = |b: &[u8], h: &RawHeader| first_record_at(b, h, from, |ts| ts >= max);
        let mut found = find_in_segment(&seg, pos, limit, from, &mut reads, &probe).await;
        if retry_from_start(&seg, pos, from, &found) {
            found = find_in_segment(&seg, 0, limit, from, &mut reads, &probe).await;
        }
        self.shared.count(|s| s.disk_reads += reads);
        Ok(Some(found?.unwrap_or((from, max))))
    }

    /// Saves the owner's producer state, which describes exactly the batches
    /// below `offset` (at most the high watermark), as the snapshot of `offset`.
    pub async fn write_producer_snapshot(&self, offset: i64, state: &[u8]) -> Result<(), EngineError> {
        assert!(offset <= self.high_watermark(), "a snapshot cannot describe batches not written yet");
        let _one_at_a_time = self.shared.snapshots.acquire_permit(1).await.map_err(|_| EngineError::Closed)?;
        producer_snapshot::write(&self.shared.dir, offset, state).await
    }

    /// The newest intact producer state snapshot: (offset, state). Those
    /// above the recovered end were removed at open, so the log holds every
    /// batch below its offset.
    pub async fn read_producer_snapshot(&self) -> Result<Option<(i64, Vec<u8>)>, EngineError> {
        producer_snapshot::read_newest(&self.shared.dir, self.high_watermark()).await
    }

    /// Bytes of all segments (what DescribeLogDirs reports).
    pub fn size_bytes(&self) -> u64 {
        self.shared.segments.borrow().values().map(|s| s.size()).sum()
    }

    /// Resolves when `high_watermark() > offset`, or the log is closing.
    pub async fn wait_beyond(&self, offset: i64) {
        let shared = &self.shared;
        let id = {
            let mut w = shared.waiters.borrow_mut();
            w.next_id += 1;
            w.next_id
        };
        let _unpark = Unpark { shared, id };
        poll_fn(|cx| {
            if shared.high_watermark.get() > offset || shared.closing.get() {
                return Poll::Ready(());
            }
            shared.waiters.borrow_mut().parked.insert(id, (offset, cx.waker().clone()));
            Poll::Pending
        })
        .await
    }

    /// Waits for queued writes, fdatasyncs, closes files. Later appends and
    /// reads fail with `Closed`. A second call returns at once.
    pub async fn close(&self) -> Result<(), EngineError> {
        let task = self.writer.borrow_mut().take();
        let Some(task) = task else { return Ok(()) };
        self.shared.closing.set(true);
        self.shared.wake_waiters();
        let _ = self.wake_writer.try_send(());
        let mut result = task.await;
        // Maintenance stops at its next step once `closing` is set; wait for it.
        let permit = self.shared.maintenance.acquire_permit(1).await;
        self.shared.cache.borrow_mut().clear();
        self.shared.closed.set(true);
        let segments = std::mem::take(&mut *self.shared.segments.borrow_mut());
        for (_, seg) in segments {
            let file = seg.file.clone();
            drop(seg);
            if let Err(e) = file.close_rc().await {
                if result.is_ok() {
                    result = Err(io_err(e));
                }
            }
        }
        drop(permit);
        result
    }
}

/// Removes a `wait_beyond` from the parked set when its future goes away.
struct Unpark<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for Unpark<'_> {
    fn drop(&mut self) {
        self.shared.waiters.borrow_mut().parked.remove(&self.id);
    }
}

/// True when a walk of `seg` that started at an index position (`pos > 0`)
/// met data that does not parse, so it should be done again from the
/// segment start. A sealed segment's index is trusted at open (as Kafka
/// does; checking every entry would read the whole segment), so a damaged
/// index shows up here; the walk from the start checks every batch header.
fn retry_from_start<T>(seg: &Segment, pos: u64, offset: i64, result: &Result<T, EngineError>) -> bool {
    let Err(e) = result else { return false };
    let retry = pos > 0 && is_disk_corruption(e);
    if retry {
        tracing::warn!(segment = seg.base_offset, offset, error = %e, "index entry leads to bad data; reading from the segment start");
    }
    retry
}

/// `EngineError` is not `Clone` (io::Error); failing a whole group needs copies.
fn copy_err(e: &EngineError) -> EngineError {
    match e {
        EngineError::Io(io) => EngineError::Io(std::io::Error::new(io.kind(), io.to_string())),
        EngineError::CorruptMessage(m) => EngineError::CorruptMessage(m.clone()),
        EngineError::InvalidTimestamp(m) => EngineError::InvalidTimestamp(m.clone()),
        EngineError::InvalidRecord(m) => EngineError::InvalidRecord(m.clone()),
        EngineError::MessageTooLarge(n) => EngineError::MessageTooLarge(*n),
        EngineError::OffsetOutOfRange { requested, start, end } => {
            EngineError::OffsetOutOfRange { requested: *requested, start: *start, end: *end }
        }
        EngineError::Closed => EngineError::Closed,
    }
}

/// A short O_DIRECT write to a regular file means the device ran out of
/// space (or quota) part-way, so it is reported as `StorageFull`.
fn short_write(what: &str, n: usize, want: usize) -> EngineError {
    EngineError::Io(std::io::Error::new(
        std::io::ErrorKind::StorageFull,
        format!("short {what} write: {n} of {want} bytes (device full?)"),
    ))
}

/// The first record of `batch` (header `h`) at or after `from` whose
/// timestamp satisfies `hit`, as (offset, timestamp). Compressed and control
/// batches count as one record at their first offset with their maxTimestamp.
fn first_record_at(batch: &[u8], h: &RawHeader, from: i64, hit: impl Fn(i64) -> bool) -> Option<(i64, i64)> {
    if records::is_plain(batch) {
        if let Ok(recs) = records::parse(batch) {
            return recs
                .iter()
                .map(|r| (h.base_offset() + i64::from(r.offset_delta), r.timestamp))
                .find(|&(o, ts)| o >= from && hit(ts));
        }
    }
    let max = h.max_timestamp();
    hit(max).then_some((h.base_offset().max(from), max))
}

/// Walks whole batches of `seg` from `pos` (a batch start) to `limit`,
/// skipping those that end before `from`, and returns the first answer of
/// `probe(batch, header)` (it sees only batches whose maxTimestamp it might
/// want: all of them; the probe decides).
async fn find_in_segment(
    seg: &Segment,
    mut pos: u64,
    limit: u64,
    from: i64,
    reads: &mut u64,
    probe: impl Fn(&[u8], &RawHeader) -> Option<(i64, i64)>,
) -> Result<Option<(i64, i64)>, EngineError> {
    let mut window = FileWindow::new(&seg.file, seg.align, limit);
    let corrupt = |pos: u64, why: String| disk_corruption(format!("segment {} at byte {pos}: {why}", seg.base_offset));
    let mut result = Ok(None);
    while pos < limit {
        if limit - pos < HEADER_LEN as u64 {
            result = Err(corrupt(pos, "partial header".into()));
            break;
        }
        let head = match window.get(pos, HEADER_LEN, 1 << 20).await {
            Ok(h) => h,
            Err(e) => {
                result = Err(e);
                break;
            }
        };
        let Some(h) = RawHeader::of(head).filter(|h| batch::check_header(h).is_ok()) else {
            result = Err(corrupt(pos, "bad header".into()));
            break;
        };
        let len = h.total_len();
        if pos + len as u64 > limit {
            result = Err(corrupt(pos, "batch crosses the end".into()));
            break;
        }
        if h.last_offset() >= from {
            match window.get(pos, len, 1 << 20).await {
                Ok(bytes) => {
                    if let Some(found) = probe(bytes, RawHeader::of(bytes).expect("a whole batch")) {
                        result = Ok(Some(found));
                        break;
                    }
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        pos += len as u64;
    }
    *reads += window.reads;
    result
}

/// Reads whole batches of `seg` from `pos` (a batch start at or before the
/// one holding `offset`) up to `limit`: skips batches ending before
/// `offset`, then copies batches until `max_bytes` (at least one).
async fn read_batches(
    seg: &Segment,
    pos: u64,
    limit: u64,
    offset: i64,
    max_bytes: usize,
    reads: &mut u64,
) -> Result<Bytes, EngineError> {
    let prefetch = max_bytes.min(MAX_READ_BYTES);
    let mut window = FileWindow::new(&seg.file, seg.align, limit);
    let result = read_batches_in(seg, &mut window, pos, limit, offset, max_bytes, prefetch).await;
    *reads += window.reads;
    result
}

async fn read_batches_in(
    seg: &Segment,
    window: &mut FileWindow<'_>,
    mut pos: u64,
    limit: u64,
    offset: i64,
    max_bytes: usize,
    prefetch: usize,
) -> Result<Bytes, EngineError> {
    let corrupt = |pos: u64, why: String| disk_corruption(format!("segment {} at byte {pos}: {why}", seg.base_offset));
    // Sized once: growing by doubling would copy the batches again.
    let mut out: Vec<u8> = Vec::with_capacity(max_bytes.min(MAX_READ_BYTES).min((limit - pos) as usize));
    while pos < limit {
        if limit - pos < HEADER_LEN as u64 {
            return Err(corrupt(pos, "partial header below the high watermark".into()));
        }
        let head = window.get(pos, HEADER_LEN, prefetch).await?;
        let h = RawHeader::of(head).ok_or_else(|| corrupt(pos, "short header".into()))?;
        batch::check_header(h).map_err(|e| corrupt(pos, e))?;
        let len = h.total_len();
        if pos + len as u64 > limit {
            return Err(corrupt(pos, format!("batch of {len} bytes crosses the end {limit}")));
        }
        if h.last_offset() < offset {
            pos += len as u64;
            continue;
        }
        if !out.is_empty() && out.len() + len > max_bytes {
            break;
        }
        let left = max_bytes.saturating_sub(out.len()).min(MAX_READ_BYTES);
        let bytes = window.get(pos, len, left).await?;
        out.extend_from_slice(bytes);
        pos += len as u64;
        if out.len() >= max_bytes {
            break;
        }
    }
    if out.is_empty() {
        return Err(corrupt(pos, format!("offset {offset} not found")));
    }
    Ok(Bytes::from(out))
}

/// The writer task's own state: the active segment's partial last block and
/// index policy, the flush policy's counters, and whether the directory needs
/// an fsync.
struct Writer {
    shared: Rc<Shared>,
    directory: Directory,
    dir_dirty: bool,
    active: Rc<Segment>,
    /// Bytes of the active segment in `[align_down(size), size)`.
    tail: Vec<u8>,
    policy: IndexPolicy,
    /// Offsets written since the last fdatasync.
    unflushed: u64,
    /// When the oldest unsynced write completed.
    unflushed_since: Option<Instant>,
    /// Wall-clock ms of the active segment's first write (for `segment_ms`).
    active_since: Option<i64>,
    /// Append time of the group being written (`LogAppendTime`), else -1.
    group_time: i64,
}

/// Why the writer woke up.
enum Wake {
    /// Appends were queued (or the log is closing).
    Message,
    /// The handle went away.
    Closed,
    /// The `flush_ms` deadline passed.
    FlushDue,
}

impl Writer {
    async fn run(mut self, wake: LocalReceiver<()>) -> Result<(), EngineError> {
        loop {
            let woke = match self.wait(&wake).await {
                Wake::Message => true,
                Wake::Closed => false,
                Wake::FlushDue => {
                    if self.flush_due() {
                        if let Err(e) = self.sync().await {
                            tracing::error!(dir = %self.shared.dir.display(), error = %e, "flush.ms sync failed");
                        }
                    }
                    continue;
                }
            };
            loop {
                let group = self.take_group();
                if group.is_empty() {
                    break;
                }
                self.commit(group).await;
            }
            if !woke || self.shared.closing.get() {
                break;
            }
        }
        self.shutdown().await
    }

    /// Waits for a wake-up message, or for the `flush_ms` deadline of the
    /// oldest unsynced write.
    async fn wait(&self, wake: &LocalReceiver<()>) -> Wake {
        let deadline = match (self.shared.config().flush_ms, self.unflushed_since) {
            (Some(ms), Some(since)) => Some(since + Duration::from_millis(ms)),
            _ => None,
        };
        let mut recv = std::pin::pin!(wake.recv());
        let mut timer =
            deadline.map(|d| Box::pin(glommio::timer::Timer::new(d.saturating_duration_since(Instant::now()))));
        poll_fn(|cx| {
            if let Poll::Ready(m) = recv.as_mut().poll(cx) {
                return Poll::Ready(if m.is_some() { Wake::Message } else { Wake::Closed });
            }
            if let Some(t) = timer.as_mut() {
                if t.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Wake::FlushDue);
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Takes queued appends, up to [`MAX_GROUP_BYTES`] (at least one).
    fn take_group(&self) -> Vec<Pending> {
        let mut queue = self.shared.queue.borrow_mut();
        let mut group = Vec::new();
        let mut bytes = 0usize;
        while let Some(p) = queue.pop_front() {
            if !group.is_empty() && bytes + p.records.len() > MAX_GROUP_BYTES {
                queue.push_front(p);
                break;
            }
            bytes += p.records.len();
            group.push(p);
        }
        group
    }

    /// Writes one group (rolling segments as needed), then completes it.
    async fn commit(&mut self, mut group: Vec<Pending>) {
        self.group_time = match self.shared.config().timestamp_type {
            TimestampType::LogAppendTime => now_ms(),
            TimestampType::CreateTime => -1,
        };
        let mut written = 0usize;
        let mut chunk_start = 0usize;
        let mut chunk_bytes = 0u64;
        let mut result = Ok(());
        for i in 0..group.len() {
            if self.needs_roll(&group[i], chunk_bytes) {
                if chunk_start < i {
                    result = self.write_chunk(&group[chunk_start..i]).await;
                    if result.is_err() {
                        break;
                    }
                    written = i;
                }
                result = self.roll(group[i].base_offset).await;
                if result.is_err() {
                    break;
                }
                chunk_start = i;
                chunk_bytes = 0;
            }
            chunk_bytes += group[i].records.len() as u64;
        }
        if result.is_ok() && chunk_start < group.len() {
            result = self.write_chunk(&group[chunk_start..]).await;
            if result.is_ok() {
                written = group.len();
            }
        }
        let failed = group.split_off(written);
        if let Err(err) = &result {
            tracing::error!(dir = %self.shared.dir.display(), error = %err, "log write failed");
            // Before any await: take back the offsets of everything not written.
            self.shared.fail_queued(err);
            for p in failed {
                p.complete(Err(copy_err(err)));
            }
            // Best effort: drop whatever the failed write left past the end.
            // The in-memory tail still matches the file up to `size`, and the
            // next write rewrites the partial block from its start.
            let _ = self.active.file.truncate(self.active.size()).await;
        }
        self.complete(group).await;
    }

    /// Completes appends that are in the file: `Written` ones now (unless the
    /// policy syncs every write), `Synced` ones after one fdatasync; syncs
    /// anyway when the flush policy says so.
    async fn complete(&mut self, group: Vec<Pending>) {
        let config = self.shared.config();
        let sync_all = config.fsync_every_write || config.flush_messages == Some(1);
        if !group.is_empty() {
            self.unflushed += group.iter().map(|p| (p.last_offset - p.base_offset + 1) as u64).sum::<u64>();
            self.unflushed_since.get_or_insert_with(Instant::now);
        }
        let mut to_sync = Vec::new();
        for p in group {
            if sync_all || p.durability == Durability::Synced {
                to_sync.push(p);
            } else {
                let info = p.info(self.group_time);
                p.complete(Ok(info));
            }
        }
        if to_sync.is_empty() && !self.flush_due() {
            return;
        }
        let synced = self.sync().await;
        if let Err(e) = &synced {
            tracing::error!(dir = %self.shared.dir.display(), error = %e, "fdatasync failed");
        }
        for p in to_sync {
            let info = p.info(self.group_time);
            p.complete(match &synced {
                Ok(()) => Ok(info),
                Err(e) => Err(copy_err(e)),
            });
        }
    }

    /// True when the flush policy wants the unsynced writes synced now.
    fn flush_due(&self) -> bool {
        let config = self.shared.config();
        let by_count = config.flush_messages.is_some_and(|n| self.unflushed >= n);
        let by_age = match (config.flush_ms, self.unflushed_since) {
            (Some(ms), Some(since)) => since.elapsed() >= Duration::from_millis(ms),
            _ => false,
        };
        self.unflushed > 0 && (by_count || by_age)
    }

    /// fdatasync of the active segment, and of the directory if a file was
    /// created since its last sync. Sealed segments were synced when sealed.
    async fn sync(&mut self) -> Result<(), EngineError> {
        let unflushed = self.unflushed;
        self.active.file.fdatasync().await.map_err(io_err)?;
        self.shared.count(|s| s.syncs += 1);
        if self.dir_dirty {
            self.directory.sync().await.map_err(io_err)?;
            self.dir_dirty = false;
        }
        // Writes that completed while syncing are not covered: keep them.
        self.unflushed -= unflushed.min(self.unflushed);
        if self.unflushed == 0 {
            self.unflushed_since = None;
        }
        Ok(())
    }

    fn needs_roll(&self, p: &Pending, chunk_bytes: u64) -> bool {
        let used = self.active.size() + chunk_bytes;
        if used == 0 {
            return false;
        }
        let too_big = used + p.records.len() as u64 > self.shared.config().segment_bytes;
        let offsets_overflow = p.last_offset - self.active.base_offset > i64::from(u32::MAX);
        let config = self.shared.config();
        let too_old = match (config.segment_ms, self.active_since) {
            (Some(ms), Some(since)) => {
                let ms = ms - roll_jitter(config.segment_jitter_ms.min(ms), self.active.base_offset);
                now_ms().saturating_sub(since) >= ms as i64
            }
            _ => false,
        };
        too_big || offsets_overflow || too_old
    }

    /// Writes `chunk` after the active segment's last batch: one aligned DMA
    /// write starting at the partial last block. On success advances the
    /// segment, its indexes, the read cache and the high watermark.
    async fn write_chunk(&mut self, chunk: &[Pending]) -> Result<(), EngineError> {
        let seg = self.active.clone();
        let align = seg.align;
        let size = seg.size();
        let block_start = align_down(size, align);
        assert_eq!(self.tail.len() as u64, size - block_start, "tail out of step with the segment");
        assert_eq!(
            seg.next_offset(),
            self.shared.high_watermark.get(),
            "active segment must end at the high watermark"
        );
        let data_len: u64 = chunk.iter().map(|p| p.records.len() as u64).sum();
        let end = size + data_len;
        let buf_len = (align_up(end, align) - block_start) as usize;
        let mut buf = seg.file.alloc_dma_buffer(buf_len);
        let dst = buf.as_bytes_mut();
        dst[..self.tail.len()].copy_from_slice(&self.tail);
        let tail_len = self.tail.len();
        let mut at = tail_len;
        let mut policy = self.policy;
        let mut added = IndexAdditions { max_time: seg.max_time(), ..IndexAdditions::default() };
        let mut cached_batches = Vec::new();
        let first = seg.next_offset();
        let mut next = first;
        for p in chunk {
            assert_eq!(p.base_offset, next, "offsets not contiguous");
            let mut from = 0usize;
            while from < p.records.len() {
                let h = RawHeader::of(&p.records[from..]).expect("validated by append");
                let len = h.total_len();
                let out = &mut dst[at..at + len];
                out.copy_from_slice(&p.records[from..from + len]);
                batch::patch_header(out, next);
                if self.group_time >= 0 {
                    batch::set_log_append_time(out, self.group_time);
                }
                let position = block_start + at as u64;
                added.on_batch(
                    &mut policy,
                    seg.base_offset,
                    position,
                    next,
                    len as u64,
                    RawHeader::of(out).expect("a whole batch").max_timestamp(),
                );
                cached_batches.push((next + h.offset_count() - 1, (at - tail_len) as u32));
                next += h.offset_count();
                at += len;
                from += len;
            }
            assert_eq!(next - 1, p.last_offset, "append's offsets disagree with its batches");
        }
        debug_assert_eq!(block_start + at as u64, end);
        dst[at..].fill(0);
        let new_tail = dst[(align_down(end, align) - block_start) as usize..at].to_vec();
        // The cache's copy; the DMA buffer is given to the kernel below.
        let cached = self.shared.cache.borrow().enabled().then(|| Bytes::copy_from_slice(&dst[tail_len..at]));
        let n = seg.file.write_at(buf, block_start).await.map_err(io_err)?;
        if n != buf_len {
            return Err(short_write("segment", n, buf_len));
        }
        self.shared.count(|s| s.writes += 1);
        self.tail = new_tail;
        self.policy = policy;
        self.active_since.get_or_insert_with(now_ms);
        seg.advance(end, next, &added);
        if let Some(bytes) = cached {
            self.shared.cache.borrow_mut().push(Chunk {
                segment: seg.base_offset,
                base: first,
                next,
                bytes,
                batches: cached_batches,
            });
        }
        self.shared.high_watermark.set(next);
        self.shared.wake_waiters();
        Ok(())
    }

    /// Seals the active segment (truncate to its logical size, fdatasync,
    /// write its indexes) and starts a new one at `base_offset`.
    async fn roll(&mut self, base_offset: i64) -> Result<(), EngineError> {
        let old = self.active.clone();
        assert_eq!(old.next_offset(), base_offset, "new segment must start where the old one ends");
        old.file.truncate(old.size()).await.map_err(io_err)?;
        old.file.fdatasync().await.map_err(io_err)?;
        old.seal_time_index();
        segment::write_index_files(&self.shared.dir, &old).await?;
        let path = segment::log_path(&self.shared.dir, base_offset);
        let file = if path.exists() {
            // Left behind by a roll that failed after creating it (a full
            // disk); nothing was written to it.
            let file = segment::open_rw(&path).await?;
            file.truncate(0).await.map_err(io_err)?;
            file
        } else {
            segment::create_new(&path).await?
        };
        let seg = Rc::new(Segment::new(base_offset, Rc::new(file), 0, base_offset, Indexes::default()));
        self.dir_dirty = true;
        self.directory.sync().await.map_err(io_err)?;
        self.dir_dirty = false;
        self.shared.segments.borrow_mut().insert(base_offset, seg.clone());
        self.active = seg;
        self.tail.clear();
        self.policy = IndexPolicy::new(self.shared.config().index_interval_bytes);
        self.active_since = None;
        self.shared.count(|s| s.rolls += 1);
        tracing::debug!(dir = %self.shared.dir.display(), base_offset, "rolled segment");
        Ok(())
    }

    /// Clean shutdown: drop the padding after the last batch, fdatasync,
    /// write the active segment's indexes and the clean-shutdown marker.
    async fn shutdown(mut self) -> Result<(), EngineError> {
        debug_assert!(self.shared.queue.borrow().is_empty() || !self.shared.closing.get());
        let active = self.active.clone();
        active.file.truncate(active.size()).await.map_err(io_err)?;
        self.sync().await?;
        let dir = &self.shared.dir;
        segment::write_index_files(dir, &active).await?;
        let marker = CleanShutdown {
            base_offset: active.base_offset,
            size: active.size(),
            next_offset: active.next_offset(),
            bytes_since_index_entry: self.policy.bytes_since_entry(),
            max_time: active.max_time(),
        };
        clean_shutdown::write(dir, &marker).await?;
        self.directory.sync().await.map_err(io_err)?;
        self.directory.close().await.map_err(io_err)
    }
}

/// What recovery hands to the log.
struct Recovered {
    segments: BTreeMap<i64, Rc<Segment>>,
    active: Rc<Segment>,
    tail: Vec<u8>,
    policy: IndexPolicy,
    /// Bytes of the active segment the scan read.
    scanned: u64,
}

/// Lists the segments in `dir`, loads the sealed ones, scans the last one and
/// cuts it at the first bad or incomplete batch (durably). Removes what an
/// interrupted compaction, deletion or checkpoint left behind.
async fn recover(dir: &Path, directory: &Directory, config: &LogConfig) -> Result<Recovered, EngineError> {
    let clean = clean_shutdown::take(dir, directory).await?;
    retention::remove_leftovers(dir, directory).await?;
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(base) = entry.file_name().to_str().and_then(segment::parse_log_name) {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    if bases.is_empty() {
        let file = segment::create_new(&segment::log_path(dir, 0)).await?;
        file.close().await.map_err(io_err)?;
        directory.sync().await.map_err(io_err)?;
        bases.push(0);
    }
    let mut segments = BTreeMap::new();
    let mut expected: Option<i64> = None;
    let check_chain = |expected: Option<i64>, base: i64| match expected {
        Some(e) if e != base => Err(disk_corruption(format!(
            "segment {base} in {} does not follow the previous one, which ends at {e}",
            dir.display()
        ))),
        _ => Ok(()),
    };
    let (last, sealed) = bases.split_last().expect("at least one segment");
    for &base in sealed {
        check_chain(expected, base)?;
        let seg = segment::load_sealed(dir, base, config.index_interval_bytes).await?;
        expected = Some(seg.next_offset());
        segments.insert(base, Rc::new(seg));
    }
    let base = *last;
    check_chain(expected, base)?;
    let path = segment::log_path(dir, base);
    let file = segment::open_rw(&path).await?;
    let file_len = file.file_size().await.map_err(io_err)?;
    let trusted = match clean.filter(|m| m.base_offset == base && m.size == file_len) {
        Some(marker) => {
            segment::load_cleanly_closed(dir, &file, &marker, file_len, config.index_interval_bytes).await?
        }
        None => None,
    };
    let (end, indexes, policy, scanned) = match trusted {
        Some((end, indexes, policy)) => {
            let scanned = file_len - indexes.offsets.last().map_or(0, |e| u64::from(e.position));
            (end, indexes, policy, scanned)
        }
        None => {
            let (end, indexes, policy) =
                segment::scan_with_index(&file, base, file_len, config.index_interval_bytes, Offsets::Contiguous)
                    .await?;
            (end, indexes, policy, file_len)
        }
    };
    if end.position != file_len {
        // After an unclean stop this is usually the zero padding of the last
        // block; anything else is a write the crash interrupted.
        tracing::info!(
            segment = %path.display(),
            from = end.position,
            to = file_len,
            next_offset = end.next_offset,
            "recovered up to the last complete batch; dropping the bytes after it"
        );
        file.truncate(end.position).await.map_err(io_err)?;
        file.fdatasync().await.map_err(io_err)?;
    }
    let align = segment::alignment_of(&file);
    let block_start = align_down(end.position, align);
    let tail = if block_start < end.position {
        let mut window = FileWindow::new(&file, align, end.position);
        window.get(block_start, (end.position - block_start) as usize, 0).await?.to_vec()
    } else {
        Vec::new()
    };
    let active = Rc::new(Segment::new(base, Rc::new(file), end.position, end.next_offset, indexes));
    segments.insert(base, active.clone());
    Ok(Recovered { segments, active, tail, policy, scanned })
}

/// A segment's share of `segment.jitter.ms` (Kafka's randomSegmentJitter):
/// below `bound`, random per process, fixed for the segment.
fn roll_jitter(bound: u64, segment_base: i64) -> u64 {
    if bound == 0 {
        return 0;
    }
    thread_local! {
        static SEED: std::collections::hash_map::RandomState = std::collections::hash_map::RandomState::new();
    }
    SEED.with(|seed| std::hash::BuildHasher::hash_one(seed, segment_base)) % bound
}

#[cfg(test)]
mod tests {
    use super::roll_jitter;

    #[test]
    fn roll_jitter_is_below_its_bound_and_fixed_per_segment() {
        assert_eq!(roll_jitter(0, 42), 0);
        let jitters: Vec<u64> = (0..200).map(|base| roll_jitter(1000, base)).collect();
        assert!(jitters.iter().all(|&j| j < 1000));
        assert!(jitters.iter().any(|&j| j != jitters[0]), "segments get different jitters");
        assert_eq!(roll_jitter(1000, 7), roll_jitter(1000, 7));
    }
}
