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

mod config;
mod read;
mod recovery;
mod writer;

pub use config::{CleanupPolicy, LogConfig, TimestampType};
use read::{find_in_segment, first_record_at, read_batches, retry_from_start};
use recovery::{recover, Recovered};
use writer::Writer;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::future::poll_fn;
use std::path::PathBuf;
use std::rc::Rc;
use std::task::{Poll, Waker};

use bytes::Bytes;
use weir_runtime::channels::local_channel::{self, LocalSender};
use weir_runtime::io::Directory;
use weir_runtime::sync::Semaphore;
use weir_runtime::Task;

use crate::batch::{self, RawHeader, ValidatedRecords};
use crate::cache::ReadCache;
use crate::durable;
use crate::error::{disk_corruption, io_err, EngineError};
use crate::leader_epochs::{self, EpochEntry, LeaderEpochs};
use crate::producer_snapshot;
use crate::records;
use crate::retention;
use crate::segment::{self, Segment};
use crate::storage;

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

/// Milliseconds since the Unix epoch, the clock of timestamps and retention
/// (the runtime's clock, which tests can move forward).
pub use weir_runtime::clock::now_ms;

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
    /// The leader epoch its batches are stamped with.
    leader_epoch: i32,
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
    /// The epoch of this replica's leadership: appended batches carry it.
    leader_epoch: Cell<i32>,
    /// The first offset of each epoch in the log (the writer adds epochs).
    leader_epochs: RefCell<LeaderEpochs>,
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
            storage::sync_directory(&directory).await?;
        }
        let first_base = segments.keys().next().copied().unwrap_or(active.base_offset);
        let mut log_start = first_base;
        if let Some(saved) = retention::read_checkpoint(&dir).await {
            if saved > hw {
                tracing::warn!(dir = %dir.display(), saved, hw, "log start offset beyond the recovered end; using the end");
            }
            log_start = saved.clamp(first_base, hw);
        }
        let epochs = leader_epochs::load(&dir, log_start, hw).await?;
        let active_since = (active.size() > 0).then(now_ms);
        let cache = ReadCache::new(config.cache_bytes);
        let shared = Rc::new(Shared {
            dir,
            config: Cell::new(config),
            next_offset: Cell::new(hw),
            high_watermark: Cell::new(hw),
            log_start_offset: Cell::new(log_start),
            leader_epoch: Cell::new(epochs.latest().map_or(0, |e| e.epoch)),
            leader_epochs: RefCell::new(epochs),
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
        let task = weir_runtime::spawn_local(writer.run(wake_rx));
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
        let leader_epoch = self.shared.leader_epoch.get();
        let pending = Pending { records, base_offset, last_offset: next - 1, leader_epoch, done, durability };
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

    /// Stamps later appends with `epoch`, this replica's new leadership
    /// (the log starts in the latest epoch it holds, 0 when new). The
    /// writer records the epoch's first offset when it writes it.
    pub fn set_leader_epoch(&self, epoch: i32) {
        self.shared.leader_epoch.set(epoch);
    }

    pub fn leader_epoch(&self) -> i32 {
        self.shared.leader_epoch.get()
    }

    /// OffsetForLeaderEpoch (KIP-279): the largest epoch at most `requested`
    /// and where it ends in this log; the current epoch ends at the log end
    /// (Kafka records a leader's epoch when it takes over, before any batch
    /// of it: so does this answer).
    pub fn end_offset_for_epoch(&self, requested: i32) -> (i32, i64) {
        let mut epochs = self.shared.leader_epochs.borrow().clone();
        let end = self.high_watermark();
        epochs.assign(self.leader_epoch(), end);
        epochs.end_offset_for(requested, end)
    }

    /// The first offset of each leader epoch in the log.
    pub fn leader_epochs(&self) -> Vec<EpochEntry> {
        self.shared.leader_epochs.borrow().entries().to_vec()
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

#[cfg(test)]
mod tests {
    use super::recovery::roll_jitter;

    #[test]
    fn roll_jitter_is_below_its_bound_and_fixed_per_segment() {
        assert_eq!(roll_jitter(0, 42), 0);
        let jitters: Vec<u64> = (0..200).map(|base| roll_jitter(1000, base)).collect();
        assert!(jitters.iter().all(|&j| j < 1000));
        assert!(jitters.iter().any(|&j| j != jitters[0]), "segments get different jitters");
        assert_eq!(roll_jitter(1000, 7), roll_jitter(1000, 7));
    }
}
