//! `cleanup.policy=compact`: keep the newest record per key in sealed
//! segments.
//!
//! [`PartitionLog::compact`] runs in the caller's task (the shard schedules
//! it), one segment at a time, yielding to produce and fetch between batches:
//! 1. Map: scan every sealed segment and note, per key (a 128-bit hash of
//!    it), the offset of its newest record. At most [`MAX_KEYS`] keys: past
//!    that, only the segments already mapped are rewritten.
//! 2. Rewrite each mapped segment into `<base>.log.cleaned`, keeping a record
//!    when it is the newest of its key, dropping tombstones (null values)
//!    older than `delete.retention.ms` (by record timestamp). Kept records
//!    stay in order with their offsets; a batch that loses records is rebuilt
//!    (same base offset and lastOffsetDelta, new count, length and CRC); a
//!    batch that loses all is dropped, except the segment's last batch, which
//!    stays as an empty batch so the segment still ends where it did.
//!    A compressed batch is judged by its decompressed records and, when it
//!    loses some, compressed again with its codec (as Kafka's cleaner does).
//!    Control and transactional batches, batches that do not decompress, and
//!    records without a key are kept as they are.
//! 3. Swap, crash-safe at every step: fdatasync the `.cleaned` file; delete
//!    the old `.index`/`.timeindex` and fsync the directory; rename
//!    `.cleaned` over `.log` and fsync the directory; then write the new
//!    indexes. A crash before the rename leaves the old log (the `.cleaned`
//!    file is removed at open); after it, the new one (missing indexes are
//!    rebuilt by scanning). In memory the segment is replaced at once; reads
//!    in flight finish on the old file.
//!
//! Segments already compacted are compacted again on the next run (it costs
//! a scan; a segment where nothing would be removed is not rewritten).

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::rc::Rc;

use weir_runtime::io::{DmaFile, OpenOptions};

use crate::batch::{self, RawHeader, HEADER_LEN};
use crate::compression::{self, Codec};
use crate::durable;
use crate::error::{disk_corruption, io_err, EngineError};
use crate::index::{IndexPolicy, OffsetIndex};
use crate::log::PartitionLog;
use crate::records;
use crate::segment::{self, align_down, align_up, FileWindow, IndexAdditions, Indexes, Segment};
use crate::storage;
use crate::timeindex::TimeIndex;

/// Most distinct keys one compaction run maps (about 40 bytes each).
pub const MAX_KEYS: usize = 1 << 20;
/// The rewritten segment is written in DMA writes of about this size.
const WRITE_BYTES: usize = 1 << 20;
/// Read-ahead while scanning a segment.
const READ_BYTES: usize = 1 << 20;

/// What one compaction run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactionOutcome {
    /// Sealed segments replaced by a compacted copy.
    pub segments_rewritten: usize,
    /// Records removed (superseded, or expired tombstones).
    pub records_removed: u64,
    /// Bytes of the rewritten segments before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
}

type KeyHash = (u64, u64);

fn key_hash(key: &[u8]) -> KeyHash {
    let mut a = DefaultHasher::new();
    key.hash(&mut a);
    let mut b = DefaultHasher::new();
    0x5eed_u64.hash(&mut b);
    key.hash(&mut b);
    (a.finish(), b.finish())
}

/// The batch as compaction sees it, uncompressed (`None`: kept as it is:
/// control and transactional batches, and ones that do not decompress).
fn compactable(batch: &[u8]) -> Option<Cow<'_, [u8]>> {
    let h = RawHeader::of(batch).expect("a whole batch");
    if h.is_transactional() || h.is_control() {
        return None;
    }
    if h.compression() == 0 {
        return Some(Cow::Borrowed(batch));
    }
    compression::with_codec(batch, Codec::None, 0).ok().map(Cow::Owned)
}

impl PartitionLog {
    /// One compaction pass over the sealed segments (when the cleanup policy
    /// compacts; otherwise nothing). `now_ms` dates tombstones. Returns what it
    /// did; stops early, leaving a consistent log, when the log closes.
    pub async fn compact(&self, now_ms: i64) -> Result<CompactionOutcome, EngineError> {
        let _permit = self.shared.maintenance.acquire_permit(1).await;
        let shared = &self.shared;
        let mut outcome = CompactionOutcome::default();
        if shared.closing.get() {
            return Err(EngineError::Closed);
        }
        if !shared.config().cleanup_policy.compacts() {
            return Ok(outcome);
        }
        // min.compaction.lag.ms: stop at the first segment with a younger
        // record. Like Kafka, a lag of 0 looks at no timestamp (producers'
        // clocks may run ahead of the broker's).
        let lag = shared.config().min_compaction_lag_ms;
        let lag_start = now_ms.saturating_sub(i64::try_from(lag).unwrap_or(i64::MAX));
        let old_enough = |seg: &Rc<Segment>| lag == 0 || seg.max_time().is_none_or(|(ts, _)| ts <= lag_start);
        let sealed: Vec<Rc<Segment>> = {
            let segments = shared.segments.borrow();
            segments.values().take(segments.len() - 1).take_while(|s| old_enough(s)).cloned().collect()
        };
        let mut map: HashMap<KeyHash, i64> = HashMap::new();
        let mut mapped = 0;
        for seg in &sealed {
            if map.len() >= MAX_KEYS || shared.closing.get() {
                break;
            }
            self.for_each_batch(seg, |b, h| {
                let Some(plain) = compactable(b) else { return };
                for r in records::parse(&plain).unwrap_or_default() {
                    if let Some(k) = r.key {
                        map.insert(key_hash(k), h.base_offset() + i64::from(r.offset_delta));
                    }
                }
            })
            .await?;
            mapped += 1;
        }
        let horizon = now_ms.saturating_sub(shared.config().delete_retention_ms as i64);
        for seg in &sealed[..mapped] {
            if shared.closing.get() {
                break;
            }
            self.rewrite(seg, &map, horizon, &mut outcome).await?;
        }
        Ok(outcome)
    }

    /// Calls `f(batch, header)` for every batch of a sealed segment, yielding
    /// to other tasks between batches.
    async fn for_each_batch(&self, seg: &Segment, mut f: impl FnMut(&[u8], &RawHeader)) -> Result<(), EngineError> {
        let limit = seg.size();
        let mut window = FileWindow::new(&seg.file, seg.align, limit);
        let mut pos = 0u64;
        let mut result = Ok(());
        while pos < limit {
            match next_batch(seg, &mut window, pos, limit).await {
                Ok((bytes, h)) => {
                    f(bytes, h);
                    pos += h.total_len() as u64;
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
            weir_runtime::yield_if_needed().await;
        }
        let reads = window.reads;
        self.shared.count(|s| s.disk_reads += reads);
        result
    }

    /// Rewrites one sealed segment without its removable records and swaps it
    /// in (see the module docs for the order of steps).
    async fn rewrite(
        &self,
        seg: &Rc<Segment>,
        map: &HashMap<KeyHash, i64>,
        horizon: i64,
        outcome: &mut CompactionOutcome,
    ) -> Result<(), EngineError> {
        let shared = &self.shared;
        let dir = &shared.dir;
        let cleaned_path = segment::cleaned_path(dir, seg.base_offset);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .dma_open(&cleaned_path)
            .await
            .map_err(io_err)?;
        let mut out = Cleaned::new(file, seg.base_offset, shared.config().index_interval_bytes);
        let limit = seg.size();
        let last_offset = seg.next_offset() - 1;
        let mut window = FileWindow::new(&seg.file, seg.align, limit);
        let mut pos = 0u64;
        let mut removed = 0u64;
        let mut result = Ok(());
        while pos < limit && result.is_ok() {
            let (whole, h) = match next_batch(seg, &mut window, pos, limit).await {
                Ok(b) => b,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            if let Some(kept) = filter_batch(whole, h, map, horizon, h.last_offset() == last_offset, &mut removed) {
                out.push(&kept, h.base_offset());
            }
            pos += h.total_len() as u64;
            if out.pending.len() >= WRITE_BYTES {
                result = out.write_aligned().await;
            }
            weir_runtime::yield_if_needed().await;
            if shared.closing.get() {
                break;
            }
        }
        let reads = window.reads;
        shared.count(|s| s.disk_reads += reads);
        let complete = result.is_ok() && pos == limit;
        if !complete || removed == 0 {
            let _ = out.file.close().await;
            std::fs::remove_file(&cleaned_path)?;
            return result;
        }
        let (size, indexes) = out.finish().await?;
        // The swap.
        for path in [segment::index_path(dir, seg.base_offset), segment::time_index_path(dir, seg.base_offset)] {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        durable::sync_dir_async(dir).await?;
        std::fs::rename(&cleaned_path, segment::log_path(dir, seg.base_offset))?;
        durable::sync_dir_async(dir).await?;
        let file =
            OpenOptions::new().read(true).dma_open(segment::log_path(dir, seg.base_offset)).await.map_err(io_err)?;
        let new = Rc::new(Segment::new(seg.base_offset, Rc::new(file), size, seg.next_offset(), indexes));
        new.seal_time_index();
        {
            let mut segments = shared.segments.borrow_mut();
            let current = segments.get(&seg.base_offset).expect("maintenance holds the segment");
            assert!(Rc::ptr_eq(current, seg), "segment changed under compaction");
            segments.insert(seg.base_offset, new.clone());
        }
        shared.cache.borrow_mut().evict_below(seg.next_offset());
        outcome.segments_rewritten += 1;
        outcome.records_removed += removed;
        outcome.bytes_before += seg.size();
        outcome.bytes_after += size;
        shared.count(|s| s.segments_compacted += 1);
        tracing::info!(dir = %dir.display(), base_offset = seg.base_offset, removed, "compacted segment");
        segment::write_index_files(dir, &new).await?;
        let old = seg.file.clone();
        let _ = old.close_rc().await;
        Ok(())
    }
}

/// The whole batch at `pos` (checked: header and CRC) and its header.
async fn next_batch<'w>(
    seg: &Segment,
    window: &'w mut FileWindow<'_>,
    pos: u64,
    limit: u64,
) -> Result<(&'w [u8], &'w RawHeader), EngineError> {
    let corrupt = |why: String| disk_corruption(format!("segment {} at byte {pos}: {why}", seg.base_offset));
    if limit - pos < HEADER_LEN as u64 {
        return Err(corrupt("partial header".into()));
    }
    let head = window.get(pos, HEADER_LEN, READ_BYTES).await?;
    let h = RawHeader::of(head).ok_or_else(|| corrupt("short header".into()))?;
    batch::check_header(h).map_err(corrupt)?;
    let len = h.total_len();
    if pos + len as u64 > limit {
        return Err(corrupt("batch crosses the end".into()));
    }
    let whole = window.get(pos, len, READ_BYTES).await?;
    let h = RawHeader::of(whole).expect("a whole batch");
    batch::check_crc(h, whole).map_err(corrupt)?;
    Ok((whole, h))
}

/// What is left of one batch after compaction: itself, a rebuilt copy with
/// fewer records, or nothing (never nothing for the segment's last batch).
fn filter_batch<'a>(
    whole: &'a [u8],
    h: &RawHeader,
    map: &HashMap<KeyHash, i64>,
    horizon: i64,
    is_last: bool,
    removed: &mut u64,
) -> Option<Cow<'a, [u8]>> {
    let Some(plain) = compactable(whole) else {
        return Some(Cow::Borrowed(whole));
    };
    let Ok(recs) = records::parse(&plain) else {
        return Some(Cow::Borrowed(whole));
    };
    let keep: Vec<records::Record<'_>> = recs
        .iter()
        .filter(|r| {
            let Some(key) = r.key else { return true };
            let offset = h.base_offset() + i64::from(r.offset_delta);
            let newest = map.get(&key_hash(key)).is_none_or(|&latest| latest <= offset);
            newest && !(r.tombstone && r.timestamp < horizon)
        })
        .copied()
        .collect();
    *removed += (recs.len() - keep.len()) as u64;
    if keep.len() == recs.len() {
        Some(Cow::Borrowed(whole))
    } else if keep.is_empty() && !is_last {
        None
    } else {
        let rebuilt = records::rebuild(&plain, &keep);
        match Codec::of(whole) {
            Ok(Codec::None) => Some(Cow::Owned(rebuilt)),
            // Compressed as before, at the codec's default level. The records
            // decompressed, so they compress; if not, the batch stays whole.
            Ok(codec) => Some(
                compression::with_codec(&rebuilt, codec, codec.default_level())
                    .map_or(Cow::Borrowed(whole), Cow::Owned),
            ),
            Err(_) => Some(Cow::Borrowed(whole)),
        }
    }
}

/// The `.cleaned` file being written: whole aligned blocks go out as they
/// fill; the indexes are built as batches are added.
struct Cleaned {
    file: DmaFile,
    align: u64,
    seg_base: i64,
    /// Bytes not yet written; they start at `written`.
    pending: Vec<u8>,
    written: u64,
    policy: IndexPolicy,
    added: IndexAdditions,
    times: TimeIndex,
}

impl Cleaned {
    fn new(file: DmaFile, seg_base: i64, index_interval: u64) -> Self {
        let align = segment::alignment_of(&file);
        Cleaned {
            file,
            align,
            seg_base,
            pending: Vec::with_capacity(WRITE_BYTES + READ_BYTES),
            written: 0,
            policy: IndexPolicy::new(index_interval),
            added: IndexAdditions::default(),
            times: TimeIndex::new(),
        }
    }

    fn len(&self) -> u64 {
        self.written + self.pending.len() as u64
    }

    fn push(&mut self, batch_bytes: &[u8], base_offset: i64) {
        let position = self.len();
        let max_ts = RawHeader::of(batch_bytes).expect("a whole batch").max_timestamp();
        self.added.on_batch(&mut self.policy, self.seg_base, position, base_offset, batch_bytes.len() as u64, max_ts);
        for e in self.added.times.drain(..) {
            self.times.maybe_push(e);
        }
        self.pending.extend_from_slice(batch_bytes);
    }

    /// Writes the whole aligned blocks of `pending`.
    async fn write_aligned(&mut self) -> Result<(), EngineError> {
        let n = align_down(self.pending.len() as u64, self.align) as usize;
        if n > 0 {
            self.write_block(n, n).await?;
        }
        Ok(())
    }

    /// Writes `pending[..take]` padded with zeros to `padded` bytes.
    async fn write_block(&mut self, take: usize, padded: usize) -> Result<(), EngineError> {
        let mut buf = self.file.alloc_dma_buffer(padded);
        let dst = buf.as_bytes_mut();
        dst[..take].copy_from_slice(&self.pending[..take]);
        dst[take..].fill(0);
        let n = self.file.write_at(buf, self.written).await.map_err(io_err)?;
        if n != padded {
            return Err(EngineError::Io(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                format!("short compaction write: {n} of {padded} bytes"),
            )));
        }
        self.pending.drain(..take);
        self.written += take as u64;
        Ok(())
    }

    /// Writes the rest, cuts the padding, fdatasyncs and closes the file.
    /// Returns the closed file's length and indexes.
    async fn finish(mut self) -> Result<(u64, Indexes), EngineError> {
        self.write_aligned().await?;
        if !self.pending.is_empty() {
            let take = self.pending.len();
            self.write_block(take, align_up(take as u64, self.align) as usize).await?;
        }
        let size = self.written;
        self.file.truncate(size).await.map_err(io_err)?;
        storage::fdatasync(&self.file).await?;
        self.file.close().await.map_err(io_err)?;
        let mut offsets = OffsetIndex::new();
        for e in self.added.offsets {
            offsets.push(e);
        }
        Ok((size, Indexes { offsets, times: self.times, max_time: self.added.max_time }))
    }
}
