//! The writer task: the one place that writes a log's segments (group
//! writes into the active segment, group commit, rolls, the flush policy).

use super::{copy_err, now_ms, Durability, Pending, Placement, Shared, TimestampType, MAX_GROUP_BYTES};
use std::future::{poll_fn, Future};
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use weir_runtime::channels::local_channel::LocalReceiver;
use weir_runtime::io::Directory;

use crate::batch::{self, RawHeader};
use crate::cache::{Chunk, Content};
use crate::clean_shutdown::{self, CleanShutdown};
use crate::error::{io_err, EngineError};
use crate::index::IndexPolicy;
use crate::segment::{self, align_down, align_up, IndexAdditions, Indexes, Segment};
use crate::storage;

use super::recovery::roll_jitter;

/// The writer task's own state: the active segment's partial last block and
/// index policy, the flush policy's counters, and whether the directory needs
/// an fsync.
pub(super) struct Writer {
    pub(super) shared: Rc<Shared>,
    pub(super) directory: Directory,
    pub(super) dir_dirty: bool,
    pub(super) active: Rc<Segment>,
    /// Bytes of the active segment in `[align_down(size), size)`.
    pub(super) tail: Vec<u8>,
    pub(super) policy: IndexPolicy,
    /// Offsets written since the last fdatasync.
    pub(super) unflushed: u64,
    /// When the oldest unsynced write completed.
    pub(super) unflushed_since: Option<Instant>,
    /// Wall-clock ms of the active segment's first write (for `segment_ms`).
    pub(super) active_since: Option<i64>,
    /// Append time of the group being written (`LogAppendTime`), else -1.
    pub(super) group_time: i64,
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
    pub(super) async fn run(mut self, wake: LocalReceiver<()>) -> Result<(), EngineError> {
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
        let mut timer = deadline
            .map(|d| Box::pin(weir_runtime::clock::sleep(d.saturating_duration_since(weir_runtime::clock::now()))));
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
                result = self.roll().await;
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
            self.unflushed_since.get_or_insert_with(weir_runtime::clock::now);
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
            (Some(ms), Some(since)) => {
                weir_runtime::clock::now().saturating_duration_since(since) >= Duration::from_millis(ms)
            }
            _ => false,
        };
        self.unflushed > 0 && (by_count || by_age)
    }

    /// fdatasync of the active segment, and of the directory if a file was
    /// created since its last sync. Sealed segments were synced when sealed.
    async fn sync(&mut self) -> Result<(), EngineError> {
        let unflushed = self.unflushed;
        storage::fdatasync(&self.active.file).await?;
        self.shared.count(|s| s.syncs += 1);
        if self.dir_dirty {
            storage::sync_directory(&self.directory).await?;
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
        assert_eq!(seg.next_offset(), self.shared.log_end.get(), "active segment must end at the log end");
        self.record_epochs(chunk).await?;
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
        let caching = self.shared.cache.borrow().enabled();
        let mut cached_batches = Vec::new();
        let mut written_headers = Vec::new();
        let first = seg.next_offset();
        let mut next = first;
        for p in chunk {
            assert!(p.base_offset >= next, "offsets go back");
            let mut from = 0usize;
            while from < p.records.len() {
                let h = RawHeader::of(&p.records[from..]).expect("validated by append");
                let len = h.total_len();
                let out = &mut dst[at..at + len];
                out.copy_from_slice(&p.records[from..from + len]);
                match p.placement {
                    Placement::Assign { leader_epoch } => {
                        batch::patch_header(out, next, leader_epoch);
                        if self.group_time >= 0 {
                            batch::set_log_append_time(out, self.group_time);
                        }
                    }
                    Placement::Keep => next = h.base_offset(),
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
                if caching {
                    written_headers.extend_from_slice(&out[..batch::HEADER_LEN]);
                }
                next += h.offset_count();
                at += len;
                from += len;
            }
            assert_eq!(next - 1, p.last_offset, "append's offsets disagree with its batches");
        }
        debug_assert_eq!(block_start + at as u64, end);
        dst[at..].fill(0);
        let new_tail = dst[(align_down(end, align) - block_start) as usize..at].to_vec();
        // The cache shares the received bytes, not a copy (see `cache`).
        let cached = caching.then(|| Content::Received {
            appends: chunk.iter().map(|p| p.records.clone()).collect(),
            headers: written_headers,
        });
        let n = seg.file.write_at(buf, block_start).await.map_err(io_err)?;
        if n != buf_len {
            return Err(short_write("segment", n, buf_len));
        }
        self.shared.count(|s| s.writes += 1);
        self.tail = new_tail;
        self.policy = policy;
        self.active_since.get_or_insert_with(now_ms);
        seg.advance(end, next, &added);
        if let Some(content) = cached {
            self.shared.cache.borrow_mut().push(Chunk {
                segment: seg.base_offset,
                base: first,
                next,
                batches: cached_batches,
                len: at - tail_len,
                content,
            });
        }
        self.shared.advance_log_end(next);
        Ok(())
    }

    /// Adds the epochs that start in `chunk` to the leader epoch cache and
    /// checkpoints it, before the chunk is written: the checkpoint never
    /// misses an epoch the log holds (one it holds beyond the log is
    /// dropped at open).
    async fn record_epochs(&self, chunk: &[Pending]) -> Result<(), EngineError> {
        let changed = {
            let mut epochs = self.shared.leader_epochs.borrow_mut();
            let mut changed = false;
            for p in chunk {
                match p.placement {
                    Placement::Assign { leader_epoch } => changed |= epochs.assign(leader_epoch, p.base_offset),
                    Placement::Keep => {
                        let mut from = 0;
                        while let Some(h) = p.records.get(from..).and_then(RawHeader::of) {
                            changed |= epochs.assign(h.leader_epoch(), h.base_offset());
                            from += h.total_len();
                        }
                    }
                }
            }
            changed
        };
        if changed {
            self.shared.save_leader_epochs().await?;
        }
        Ok(())
    }

    /// Seals the active segment (truncate to its logical size, fdatasync,
    /// write its indexes) and starts a new one where it ends (a follower's
    /// next batch may start later: the gap is inside the new segment, as
    /// compaction's gaps are, so segments stay a contiguous chain).
    async fn roll(&mut self) -> Result<(), EngineError> {
        let old = self.active.clone();
        let base_offset = old.next_offset();
        old.file.truncate(old.size()).await.map_err(io_err)?;
        storage::fdatasync(&old.file).await?;
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
        storage::sync_directory(&self.directory).await?;
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
        storage::sync_directory(&self.directory).await?;
        self.directory.close().await.map_err(io_err)
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
