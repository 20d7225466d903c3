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
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::task::{Poll, Waker};

use bytes::Bytes;
use weir_runtime::channels::local_channel::{self, LocalReceiver, LocalSender};
use weir_runtime::io::Directory;
use weir_runtime::sync::Semaphore;
use weir_runtime::Task;

use crate::batch::{self, RawHeader, ValidatedRecords};
use crate::cache::ReadCache;
use crate::durable;
use crate::error::{disk_corruption, io_err, EngineError};
use crate::leader_epochs::{self, EpochEntry, LeaderEpochs};
use crate::offset_checkpoint::{HIGH_WATERMARK, LOG_START};
use crate::producer_snapshot;
use crate::records;
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
    placement: Placement,
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

/// Where the offsets and leader epochs of a pending append's batches come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Placement {
    /// This replica leads: the writer stamps the batches with consecutive
    /// offsets from the append's base offset and this leader epoch.
    Assign { leader_epoch: i32 },
    /// Copied from the leader (a follower's append): the batches keep the
    /// leader's offsets and epochs, byte for byte.
    Keep,
}

/// How far a read (or a wait) may see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadLimit {
    /// Below the high watermark: what consumers see.
    HighWatermark,
    /// Below the log end: what a follower copies.
    LogEnd,
}

/// `wait_beyond` callers parked until their limit passes their offset.
#[derive(Default)]
struct Waiters {
    next_id: u64,
    parked: BTreeMap<u64, (i64, ReadLimit, Waker)>,
}

/// State shared by the log handle, the writer task and readers.
pub(crate) struct Shared {
    pub dir: PathBuf,
    /// Replaced whole by [`PartitionLog::set_config`]; read with `config()`.
    config: Cell<LogConfig>,
    /// Next offset `append` will hand out.
    next_offset: Cell<i64>,
    /// One past the last offset written to a segment file (the log end
    /// offset a follower reports; what it may copy).
    pub log_end: Cell<i64>,
    /// Consumers read below it: the log end while `hw_follows_log_end`
    /// (one replica), else what the replication layer says is on every
    /// in-sync replica. Always at a batch boundary, at most `log_end`.
    high_watermark: Cell<i64>,
    hw_follows_log_end: Cell<bool>,
    /// The high watermark last saved in its checkpoint.
    hw_saved: Cell<Option<i64>>,
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
    /// One leader epoch checkpoint written at a time (the writer's new
    /// epochs, retention's moved start).
    epochs_file: Semaphore,
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

    pub fn high_watermark(&self) -> i64 {
        if self.hw_follows_log_end.get() {
            self.log_end.get()
        } else {
            self.high_watermark.get()
        }
    }

    /// The offset a read with `limit` stops before.
    fn end(&self, limit: ReadLimit) -> i64 {
        match limit {
            ReadLimit::HighWatermark => self.high_watermark(),
            ReadLimit::LogEnd => self.log_end.get(),
        }
    }

    /// The writer wrote up to `next`.
    fn advance_log_end(&self, next: i64) {
        self.log_end.set(next);
        if self.hw_follows_log_end.get() {
            self.high_watermark.set(next);
        }
        self.wake_waiters();
    }

    /// Wakes every `wait_beyond` whose offset is now below its limit (all of
    /// them once closing).
    fn wake_waiters(&self) {
        let all = self.closing.get();
        let ready: Vec<Waker> = {
            let mut w = self.waiters.borrow_mut();
            let ids: Vec<u64> = w
                .parked
                .iter()
                .filter(|(_, (off, limit, _))| all || *off < self.end(*limit))
                .map(|(id, _)| *id)
                .collect();
            ids.iter().filter_map(|id| w.parked.remove(id)).map(|(_, _, waker)| waker).collect()
        };
        for waker in ready {
            waker.wake();
        }
    }

    /// Saves the leader epoch cache as it is when its turn comes.
    async fn save_leader_epochs(&self) -> Result<(), EngineError> {
        let _one_at_a_time = self.epochs_file.acquire_permit(1).await.map_err(|_| EngineError::Closed)?;
        let epochs = self.leader_epochs.borrow().clone();
        leader_epochs::write(&self.dir, &epochs).await
    }

    /// The log start offset moved up to `start`: so does the first epoch
    /// (Kafka's truncateFromStart), saved unless the log is new enough to
    /// have none. A crash before the save is mended at open.
    pub(crate) async fn epochs_start_at(&self, start: i64) -> Result<(), EngineError> {
        let changed = self.leader_epochs.borrow_mut().truncate_from_start(start);
        if changed {
            self.save_leader_epochs().await?;
        }
        Ok(())
    }

    /// Fails every queued append and takes their offsets back. Called right
    /// after a failed write, before any `.await`, so no append can slip in.
    fn fail_queued(&self, err: &EngineError) {
        let failed: Vec<Pending> = self.queue.borrow_mut().drain(..).collect();
        self.next_offset.set(self.log_end.get());
        for p in failed {
            p.complete(Err(copy_err(err)));
        }
    }
}

/// A partition log: segments in one directory, one writer task. Lives on one
/// glommio executor thread (not `Send`).
pub struct PartitionLog {
    pub(crate) shared: Rc<Shared>,
    /// Replaced with the writer when a truncation restarts it.
    wake_writer: RefCell<LocalSender<()>>,
    writer: RefCell<Option<Task<Result<(), EngineError>>>>,
}

/// What opening finds in a log's directory: the recovered segments and the
/// checkpoints reconciled with them.
struct Loaded {
    directory: Directory,
    recovered: Recovered,
    log_start: i64,
    epochs: LeaderEpochs,
    hw_saved: Option<i64>,
}

impl Loaded {
    fn end(&self) -> i64 {
        self.recovered.active.next_offset()
    }
}

/// Recovers the log in `dir` and reconciles its checkpoints with it:
/// producer snapshots past its end are removed, the log start offset and
/// leader epochs are brought within it.
async fn load(dir: &Path, config: &LogConfig) -> Result<Loaded, EngineError> {
    let directory = Directory::open(dir).await.map_err(io_err)?;
    let recovered = recover(dir, &directory, config).await?;
    let end = recovered.active.next_offset();
    if producer_snapshot::remove_above(dir, end)? {
        storage::sync_directory(&directory).await?;
    }
    let first_base = recovered.segments.keys().next().copied().unwrap_or(recovered.active.base_offset);
    let mut log_start = first_base;
    if let Some(saved) = LOG_START.read(dir).await {
        if saved > end {
            tracing::warn!(dir = %dir.display(), saved, end, "log start offset beyond the recovered end; using the end");
        }
        log_start = saved.clamp(first_base, end);
    }
    let epochs = leader_epochs::load(dir, log_start, end).await?;
    let hw_saved = HIGH_WATERMARK.read(dir).await;
    Ok(Loaded { directory, recovered, log_start, epochs, hw_saved })
}

/// Spawns the writer task of the loaded log on the current executor.
fn start_writer(shared: &Rc<Shared>, loaded: Loaded) -> (LocalSender<()>, Task<Result<(), EngineError>>) {
    let Recovered { active, tail, policy, .. } = loaded.recovered;
    let (wake_writer, wake_rx) = local_channel::new_bounded(1);
    let writer = Writer {
        shared: shared.clone(),
        directory: loaded.directory,
        dir_dirty: false,
        active_since: (active.size() > 0).then(now_ms),
        active,
        tail,
        policy,
        unflushed: 0,
        unflushed_since: None,
        group_time: -1,
    };
    (wake_writer, weir_runtime::spawn_local(writer.run(wake_rx)))
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
        let loaded = load(&dir, &config).await?;
        let Recovered { segments, scanned, .. } = &loaded.recovered;
        let (end, log_start, hw_saved) = (loaded.end(), loaded.log_start, loaded.hw_saved);
        let shared = Rc::new(Shared {
            config: Cell::new(config),
            next_offset: Cell::new(end),
            log_end: Cell::new(end),
            // Without a checkpoint nothing is known to be on other replicas.
            high_watermark: Cell::new(hw_saved.map_or(log_start, |hw| hw.clamp(log_start, end))),
            hw_follows_log_end: Cell::new(true),
            hw_saved: Cell::new(hw_saved),
            log_start_offset: Cell::new(log_start),
            leader_epoch: Cell::new(loaded.epochs.latest().map_or(0, |e| e.epoch)),
            leader_epochs: RefCell::new(loaded.epochs.clone()),
            closing: Cell::new(false),
            closed: Cell::new(false),
            queue: RefCell::new(VecDeque::new()),
            segments: RefCell::new(segments.clone()),
            waiters: RefCell::new(Waiters::default()),
            stats: Cell::new(LogStats { recovery_scanned_bytes: *scanned, ..LogStats::default() }),
            cache: RefCell::new(ReadCache::new(config.cache_bytes)),
            maintenance: Semaphore::new(1),
            snapshots: Semaphore::new(1),
            epochs_file: Semaphore::new(1),
            dir,
        });
        let (wake_writer, task) = start_writer(&shared, loaded);
        Ok(Rc::new(PartitionLog { shared, wake_writer: RefCell::new(wake_writer), writer: RefCell::new(Some(task)) }))
    }

    /// Removes the batches from the one that holds `offset` on, at batch
    /// boundaries (a follower whose history diverged from its leader's,
    /// KIP-101/279), and returns the new log end. Producer snapshots and
    /// leader epochs past it go too; the high watermark comes down to it.
    ///
    /// The log is closed, cut with [`truncation::truncate_closed`] (crash
    /// safe at every step) and opened again in place: meanwhile appends and
    /// reads fail with `Closed`. On an error the log stays closed, as after
    /// a failed write of its files. The owner does not truncate and close
    /// at once.
    ///
    /// [`truncation::truncate_closed`]: crate::truncation::truncate_closed
    pub async fn truncate_to(&self, offset: i64) -> Result<i64, EngineError> {
        let shared = &self.shared;
        if shared.closed.get() || shared.closing.get() {
            return Err(EngineError::Closed);
        }
        if offset >= shared.next_offset.get() {
            return Ok(shared.log_end.get());
        }
        self.close().await?;
        let config = shared.config();
        let cut = crate::truncation::truncate_closed(&shared.dir, offset, &config).await?;
        let loaded = load(&shared.dir, &config).await?;
        let end = loaded.end();
        debug_assert_eq!(end, cut, "recovery found the end the cut left");
        *shared.segments.borrow_mut() = loaded.recovered.segments.clone();
        *shared.leader_epochs.borrow_mut() = loaded.epochs.clone();
        shared.next_offset.set(end);
        shared.log_end.set(end);
        shared.high_watermark.set(shared.high_watermark.get().min(end));
        shared.closed.set(false);
        shared.closing.set(false);
        let (wake_writer, task) = start_writer(shared, loaded);
        *self.wake_writer.borrow_mut() = wake_writer;
        *self.writer.borrow_mut() = Some(task);
        Ok(end)
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
        let placement = Placement::Assign { leader_epoch: self.shared.leader_epoch.get() };
        self.queue(Pending { records, base_offset, last_offset: next - 1, placement, done, durability }, result).await
    }

    /// A follower's append: batches copied from the leader, stored byte for
    /// byte with the leader's offsets and epochs (see
    /// [`batch::validate_replicated`]; gaps left by the leader's compaction
    /// stay gaps). The first batch must start at or after
    /// [`PartitionLog::next_offset`]. Resolves once written (a follower
    /// acknowledges by fetching on; it does not fdatasync each fetch).
    pub async fn append_replicated(&self, records: Bytes) -> Result<AppendInfo, EngineError> {
        if self.shared.closing.get() {
            return Err(EngineError::Closed);
        }
        let next = self.shared.next_offset.get();
        let records = batch::validate_replicated(records, next)?;
        let base_offset = records.first_header().base_offset();
        if base_offset - next > i64::from(i32::MAX) {
            // A new segment starts where the last one ends, and its offsets
            // are u32 relative to its base.
            return Err(EngineError::CorruptMessage(format!(
                "a gap of {} offsets before the batch",
                base_offset - next
            )));
        }
        let last_offset = base_offset + records.offset_count() - 1;
        self.shared.next_offset.set(last_offset + 1);
        let (done, result) = local_channel::new_bounded(1);
        let records = records.into_bytes();
        let pending = Pending {
            records,
            base_offset,
            last_offset,
            placement: Placement::Keep,
            done,
            durability: Durability::Written,
        };
        self.queue(pending, result).await
    }

    async fn queue(
        &self,
        pending: Pending,
        result: LocalReceiver<Result<AppendInfo, EngineError>>,
    ) -> Result<AppendInfo, EngineError> {
        self.shared.queue.borrow_mut().push_back(pending);
        // Full means a wake-up is already pending; the writer drains everything.
        let _ = self.wake_writer.borrow().try_send(());
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
        let _ = self.wake_writer.borrow().try_send(());
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
        let end = self.shared.log_end.get();
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

    /// Consumers read below it (see [`PartitionLog::set_high_watermark_follows_log_end`]).
    pub fn high_watermark(&self) -> i64 {
        self.shared.high_watermark()
    }

    /// One past the last offset whose batch has been written to the file:
    /// Kafka's log end offset, what a follower has copied.
    pub fn log_end_offset(&self) -> i64 {
        self.shared.log_end.get()
    }

    /// With `true` (the default: a partition with one replica, or a leader
    /// alone in its ISR) the high watermark is the log end offset. With
    /// `false` it moves only by [`PartitionLog::advance_high_watermark`],
    /// from the checkpointed value if nothing was written since open (the
    /// log start without a checkpoint), else from the log end. Switch before
    /// serving reads.
    pub fn set_high_watermark_follows_log_end(&self, follows: bool) {
        let shared = &self.shared;
        if shared.hw_follows_log_end.replace(follows) && !follows {
            shared.high_watermark.set(shared.high_watermark.get().min(shared.log_end.get()));
        }
        shared.wake_waiters();
    }

    /// Moves the high watermark up to `offset` (never past the log end,
    /// never back); true when it moved. The replication layer calls it with
    /// the minimum log end offset over the in-sync replicas (a leader), or
    /// the leader's high watermark (a follower).
    pub fn advance_high_watermark(&self, offset: i64) -> bool {
        let shared = &self.shared;
        debug_assert!(!shared.hw_follows_log_end.get(), "the high watermark follows the log end");
        let new = offset.min(shared.log_end.get());
        if new <= shared.high_watermark.get() {
            return false;
        }
        shared.high_watermark.set(new);
        shared.wake_waiters();
        true
    }

    /// Saves the high watermark (atomically replaced, once per change), so
    /// a restart does not expose what was never on the other replicas. The
    /// owner calls it now and then (Kafka: every 5 s); `close` calls it
    /// while the high watermark does not follow the log end.
    pub async fn checkpoint_high_watermark(&self) -> Result<(), EngineError> {
        let hw = self.high_watermark();
        if self.shared.hw_saved.get() == Some(hw) {
            return Ok(());
        }
        HIGH_WATERMARK.write(&self.shared.dir, hw).await?;
        self.shared.hw_saved.set(Some(hw));
        Ok(())
    }

    /// Appends waiting for the writer to take them: more than a few means
    /// the writer (the disk) does not keep up with the producers.
    pub fn queued_appends(&self) -> usize {
        self.shared.queue.borrow().len()
    }

    /// The offset the next append will be given (past appends still being written).
    pub fn next_offset(&self) -> i64 {
        self.shared.next_offset.get()
    }

    /// Writer counters since open.
    pub fn stats(&self) -> LogStats {
        self.shared.stats.get()
    }

    /// A consumer's read: [`PartitionLog::read_to`] the high watermark.
    pub async fn read(&self, offset: i64, max_bytes: usize) -> Result<Bytes, EngineError> {
        self.read_to(offset, max_bytes, ReadLimit::HighWatermark).await
    }

    /// Whole batches starting with the one containing `offset`, up to
    /// `max_bytes` in total but at least one batch (KIP-74), from one
    /// segment, all below `limit`'s end. Empty from that end to the log end
    /// (as Kafka answers a consumer between the high watermark and the log
    /// end); out of range past the log end.
    pub async fn read_to(&self, offset: i64, max_bytes: usize, limit: ReadLimit) -> Result<Bytes, EngineError> {
        if self.shared.closed.get() {
            return Err(EngineError::Closed);
        }
        let log_end = self.log_end_offset();
        let end = self.shared.end(limit);
        let start = self.log_start_offset();
        if offset < start || offset > log_end {
            return Err(EngineError::OffsetOutOfRange { requested: offset, start, end: log_end });
        }
        if offset >= end {
            return Ok(Bytes::new());
        }
        let cached = self.shared.cache.borrow_mut().read(offset, max_bytes);
        if let Some(bytes) = cached {
            self.shared.count(|s| s.cache_hits += 1);
            return Ok(bytes.slice(..batch::batches_below(&bytes, end)));
        }
        let seg = self.segment_for(offset)?;
        // Read together with `log_end` above (no await in between): every
        // byte below `size` belongs to a batch below the log end.
        let size = seg.size();
        debug_assert!(offset < seg.next_offset() && seg.next_offset() <= log_end);
        let pos = seg.lookup(offset);
        let mut reads = 0;
        let mut result = read_batches(&seg, pos, size, offset, max_bytes, &mut reads).await;
        if retry_from_start(&seg, pos, offset, &result) {
            result = read_batches(&seg, 0, size, offset, max_bytes, &mut reads).await;
        }
        self.shared.count(|s| s.disk_reads += reads);
        result.map(|bytes| bytes.slice(..batch::batches_below(&bytes, end)))
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
        assert!(offset <= self.log_end_offset(), "a snapshot cannot describe batches not written yet");
        let _one_at_a_time = self.shared.snapshots.acquire_permit(1).await.map_err(|_| EngineError::Closed)?;
        producer_snapshot::write(&self.shared.dir, offset, state).await
    }

    /// The newest intact producer state snapshot: (offset, state). Those
    /// above the recovered end were removed at open, so the log holds every
    /// batch below its offset.
    pub async fn read_producer_snapshot(&self) -> Result<Option<(i64, Vec<u8>)>, EngineError> {
        producer_snapshot::read_newest(&self.shared.dir, self.log_end_offset()).await
    }

    /// Bytes of all segments (what DescribeLogDirs reports).
    pub fn size_bytes(&self) -> u64 {
        self.shared.segments.borrow().values().map(|s| s.size()).sum()
    }

    /// Resolves when `high_watermark() > offset`, or the log is closing.
    pub async fn wait_beyond(&self, offset: i64) {
        self.wait_beyond_limit(offset, ReadLimit::HighWatermark).await
    }

    /// Resolves when `limit`'s end passes `offset`, or the log is closing.
    pub async fn wait_beyond_limit(&self, offset: i64, limit: ReadLimit) {
        let shared = &self.shared;
        let id = {
            let mut w = shared.waiters.borrow_mut();
            w.next_id += 1;
            w.next_id
        };
        let _unpark = Unpark { shared, id };
        poll_fn(|cx| {
            if shared.end(limit) > offset || shared.closing.get() {
                return Poll::Ready(());
            }
            shared.waiters.borrow_mut().parked.insert(id, (offset, limit, cx.waker().clone()));
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
        let _ = self.wake_writer.borrow().try_send(());
        let mut result = task.await;
        if !self.shared.hw_follows_log_end.get() {
            let saved = self.checkpoint_high_watermark().await;
            result = result.and(saved);
        }
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
