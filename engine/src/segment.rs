//! One segment: a `<base>.log` DMA file of RecordBatch v2 bytes plus its
//! sparse index. This file holds the reader-visible view ([`Segment`]), the
//! aligned window reader, the batch scanner used by recovery, and the helpers
//! that open, recover and seal segment files. Writing lives in `log/writer.rs`.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use weir_runtime::io::{DmaFile, OpenOptions, ReadResult};

use crate::batch::{self, RawHeader, HEADER_LEN};
use crate::clean_shutdown::CleanShutdown;
use crate::error::{disk_corruption, io_err, EngineError};
use crate::index::{IndexEntry, IndexPolicy, OffsetIndex};
use crate::storage;
use crate::timeindex::{TimeEntry, TimeIndex};

/// Smallest read issued against a segment file (reads are rounded up to it).
pub(crate) const MIN_READ_BYTES: usize = 64 * 1024;
/// Largest read issued while scanning at recovery.
const SCAN_READ_BYTES: usize = 1024 * 1024;

/// Name of the scratch file used by [`prime_iopoll_probe`].
const PROBE_FILE: &str = ".weir-iopoll-probe";

thread_local! {
    /// Devices (st_dev) whose iopoll probe has been primed on this thread.
    static PRIMED_DEVICES: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// Works around a glommio 0.9 probe bug. The first `DmaFile` a thread opens on
/// a device decides (per thread, cached) whether that device supports
/// io_uring IOPOLL, by reading its first block. When that file is empty the
/// read succeeds trivially, glommio routes all I/O for the device to the poll
/// ring, and every later DMA read fails with EOPNOTSUPP on devices without
/// poll queues. So before opening segments, open a non-empty scratch file in
/// `dir` once per thread and device so the probe reads real data.
pub(crate) async fn prime_iopoll_probe(dir: &Path) -> Result<(), EngineError> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(dir)?.dev();
    if PRIMED_DEVICES.with(|d| d.borrow().contains(&dev)) {
        return Ok(());
    }
    let path = dir.join(PROBE_FILE);
    std::fs::write(&path, [0u8; 4096])?;
    let opened = DmaFile::open(&path).await.map_err(io_err);
    let closed = match opened {
        Ok(file) => file.close().await.map_err(io_err),
        Err(e) => Err(e),
    };
    std::fs::remove_file(&path)?;
    closed?;
    PRIMED_DEVICES.with(|d| d.borrow_mut().push(dev));
    Ok(())
}

/// File name of a segment's log.
pub(crate) fn log_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}.log"))
}

/// File name of a segment's sealed index.
pub(crate) fn index_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}.index"))
}

/// File name of a segment's sealed time index.
pub(crate) fn time_index_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}.timeindex"))
}

/// File name of a compacted segment being written (renamed over the log).
/// The files of segment `base`: its log, offset index and time index.
pub(crate) fn files(dir: &Path, base_offset: i64) -> [PathBuf; 3] {
    [log_path(dir, base_offset), index_path(dir, base_offset), time_index_path(dir, base_offset)]
}

/// Removes `paths`; those already gone are fine.
pub(crate) fn remove_files(paths: &[PathBuf]) -> Result<(), EngineError> {
    for path in paths {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    Ok(())
}

pub(crate) fn cleaned_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}.log.cleaned"))
}

/// Parses `<20 digits>.log` into a base offset.
pub(crate) fn parse_log_name(name: &str) -> Option<i64> {
    let digits = name.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub(crate) fn align_up(v: u64, align: u64) -> u64 {
    debug_assert!(align.is_power_of_two());
    (v + align - 1) & !(align - 1)
}

pub(crate) fn align_down(v: u64, align: u64) -> u64 {
    debug_assert!(align.is_power_of_two());
    v & !(align - 1)
}

/// The I/O alignment used for a file: its O_DIRECT alignment, at least 4096.
pub(crate) fn alignment_of(file: &DmaFile) -> u64 {
    file.alignment().max(4096)
}

/// What readers see of one segment. Shared (`Rc`) between the log's segment
/// map, the writer task and in-flight reads; the writer is the only one that
/// changes `size`, `next_offset` and `index`, always without awaiting between
/// them and the high watermark.
pub(crate) struct Segment {
    pub base_offset: i64,
    pub file: Rc<DmaFile>,
    pub align: u64,
    /// Logical bytes of whole batches written (all below the high watermark).
    size: Cell<u64>,
    /// One past the last offset stored in this segment.
    next_offset: Cell<i64>,
    index: RefCell<OffsetIndex>,
    time_index: RefCell<TimeIndex>,
    /// Largest batch maxTimestamp and the base offset of the first batch
    /// with it; `None` while empty.
    max_time: Cell<Option<(i64, i64)>>,
}

impl Segment {
    pub fn new(base_offset: i64, file: Rc<DmaFile>, size: u64, next_offset: i64, indexes: Indexes) -> Self {
        let align = alignment_of(&file);
        Segment {
            base_offset,
            file,
            align,
            size: Cell::new(size),
            next_offset: Cell::new(next_offset),
            index: RefCell::new(indexes.offsets),
            time_index: RefCell::new(indexes.times),
            max_time: Cell::new(indexes.max_time),
        }
    }

    /// Largest batch maxTimestamp and the base offset of its batch.
    pub fn max_time(&self) -> Option<(i64, i64)> {
        self.max_time.get()
    }

    /// Offset to start a timestamp search from: every batch before it has a
    /// maxTimestamp below `timestamp`.
    pub fn time_floor(&self, timestamp: i64) -> i64 {
        let e = self.time_index.borrow().floor_below(timestamp);
        e.map_or(self.base_offset, |e| self.base_offset + i64::from(e.relative_offset))
    }

    /// Adds the final time index entry (the segment's maximum) at seal.
    pub fn seal_time_index(&self) {
        if let Some((ts, offset)) = self.max_time.get() {
            let relative_offset = relative(self.base_offset, offset);
            self.time_index.borrow_mut().maybe_push(TimeEntry { timestamp: ts, relative_offset });
        }
    }

    pub fn time_index_snapshot(&self) -> TimeIndex {
        self.time_index.borrow().clone()
    }

    pub fn size(&self) -> u64 {
        self.size.get()
    }

    pub fn next_offset(&self) -> i64 {
        self.next_offset.get()
    }

    /// Records a completed write: new logical size, next offset and the
    /// index entries of the batches it contained.
    pub fn advance(&self, size: u64, next_offset: i64, added: &IndexAdditions) {
        assert!(size >= self.size.get(), "segment shrank");
        assert!(next_offset >= self.next_offset.get(), "segment offsets went back");
        let mut index = self.index.borrow_mut();
        for e in &added.offsets {
            debug_assert!(u64::from(e.position) < size);
            index.push(*e);
        }
        let mut times = self.time_index.borrow_mut();
        for e in &added.times {
            times.maybe_push(*e);
        }
        if added.max_time.is_some() {
            self.max_time.set(added.max_time);
        }
        self.size.set(size);
        self.next_offset.set(next_offset);
    }

    /// File position to start scanning from for `offset` (floor index entry).
    pub fn lookup(&self, offset: i64) -> u64 {
        let rel = offset - self.base_offset;
        assert!(rel >= 0, "offset {offset} below segment base {}", self.base_offset);
        let rel = u32::try_from(rel).unwrap_or(u32::MAX);
        u64::from(self.index.borrow().lookup(rel))
    }

    pub fn index_snapshot(&self) -> OffsetIndex {
        self.index.borrow().clone()
    }
}

/// Reads a file through aligned DMA reads, keeping the last read as a window
/// so consecutive small requests (batch headers) cost one I/O.
pub(crate) struct FileWindow<'a> {
    file: &'a DmaFile,
    align: u64,
    /// Bytes at or beyond `limit` are never requested.
    limit: u64,
    buf: Option<ReadResult>,
    buf_start: u64,
    /// DMA reads issued so far.
    pub reads: u64,
}

impl<'a> FileWindow<'a> {
    pub fn new(file: &'a DmaFile, align: u64, limit: u64) -> Self {
        FileWindow { file, align, limit, buf: None, buf_start: 0, reads: 0 }
    }

    /// Bytes `[pos, pos + len)`, reading `prefetch` bytes or more when they
    /// are not in the window yet. `pos + len` must not exceed the limit.
    pub async fn get(&mut self, pos: u64, len: usize, prefetch: usize) -> Result<&[u8], EngineError> {
        let end = pos + len as u64;
        assert!(end <= self.limit, "read [{pos}, {end}) beyond limit {}", self.limit);
        let cached = match &self.buf {
            Some(b) => pos >= self.buf_start && end <= self.buf_start + b.len() as u64,
            None => false,
        };
        if !cached {
            self.buf = None;
            let start = align_down(pos, self.align);
            let want = len.max(prefetch).max(MIN_READ_BYTES) as u64;
            let stop = align_up((pos + want).min(self.limit).max(end), self.align);
            self.reads += 1;
            let read = self.file.read_at_aligned(start, (stop - start) as usize).await.map_err(io_err)?;
            if (read.len() as u64) < end - start {
                return Err(disk_corruption(format!(
                    "short read at {start}: {} bytes, needed {}",
                    read.len(),
                    end - start
                )));
            }
            self.buf_start = start;
            self.buf = Some(read);
        }
        let b = self.buf.as_ref().expect("window filled above");
        let from = (pos - self.buf_start) as usize;
        Ok(&b[from..from + len])
    }
}

/// Where a scan of batches stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ScanEnd {
    /// File position just after the last good batch.
    pub position: u64,
    /// One past the last offset of the last good batch.
    pub next_offset: i64,
    /// True when the scan reached `file_len` exactly (no bad or partial bytes).
    pub clean: bool,
}

/// Walks batches of the segment at `seg_base` from `pos` (which must start a
/// batch with base offset `offset` or above) to `file_len`, checking length,
/// magic, CRC and that offsets increase (compaction and a follower's copy of
/// a compacted log leave gaps), and calls `on_batch(position, header, header bytes)` for each good
/// one. Stops at the first bad or incomplete batch; zero padding counts as
/// bad, and so does a batch with offsets the segment cannot index.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn scan(
    file: &DmaFile,
    align: u64,
    file_len: u64,
    seg_base: i64,
    mut pos: u64,
    mut offset: i64,
    mut on_batch: impl FnMut(u64, &RawHeader),
) -> Result<ScanEnd, EngineError> {
    let mut window = FileWindow::new(file, align, file_len);
    loop {
        let left = file_len - pos;
        if left == 0 {
            return Ok(ScanEnd { position: pos, next_offset: offset, clean: true });
        }
        let bad = ScanEnd { position: pos, next_offset: offset, clean: false };
        if left < HEADER_LEN as u64 {
            return Ok(bad);
        }
        let head = window.get(pos, HEADER_LEN, SCAN_READ_BYTES).await?;
        let Some(h) = RawHeader::of(head) else {
            return Ok(bad);
        };
        let offset_ok = h.base_offset() >= offset;
        let len = h.total_len();
        if batch::check_header(h).is_err() || !offset_ok || len as u64 > left {
            return Ok(bad);
        }
        let Some(end) = indexable_end(seg_base, h) else {
            return Ok(bad);
        };
        let whole = window.get(pos, len, SCAN_READ_BYTES).await?;
        let h = RawHeader::of(whole).expect("a whole batch");
        if batch::check_crc(h, whole).is_err() {
            return Ok(bad);
        }
        on_batch(pos, h);
        pos += len as u64;
        offset = end;
    }
}

/// One past the last offset of a batch (header checked) read from the segment
/// at `seg_base`, if the segment can hold it: every offset at or above the
/// base and within the u32 relative offsets of the indexes. The writer never
/// writes other batches (it rolls first), but files are not trusted.
fn indexable_end(seg_base: i64, h: &RawHeader) -> Option<i64> {
    let last = h.base_offset().checked_add(i64::from(h.last_offset_delta()))?;
    if h.base_offset().checked_sub(seg_base)? < 0 || last.checked_sub(seg_base)? > i64::from(u32::MAX) {
        return None;
    }
    last.checked_add(1)
}

/// A segment's in-memory indexes.
#[derive(Clone, Debug, Default)]
pub(crate) struct Indexes {
    pub offsets: OffsetIndex,
    pub times: TimeIndex,
    /// (largest batch maxTimestamp, base offset of its batch).
    pub max_time: Option<(i64, i64)>,
}

/// Index entries and the new maximum timestamp from one write.
#[derive(Clone, Debug, Default)]
pub(crate) struct IndexAdditions {
    pub offsets: Vec<IndexEntry>,
    pub times: Vec<TimeEntry>,
    pub max_time: Option<(i64, i64)>,
}

impl IndexAdditions {
    /// Accounts for one batch of `len` bytes at `position` of the segment at
    /// `seg_base`, given the index policy: an offset entry when the policy
    /// says so, and then a time entry if the maximum timestamp grew.
    pub fn on_batch(
        &mut self,
        policy: &mut IndexPolicy,
        seg_base: i64,
        position: u64,
        base_offset: i64,
        len: u64,
        max_timestamp: i64,
    ) {
        if self.max_time.is_none_or(|(t, _)| max_timestamp > t) {
            self.max_time = Some((max_timestamp, base_offset));
        }
        if policy.on_batch(len) {
            let position = u32::try_from(position).expect("segment positions fit u32");
            self.offsets.push(IndexEntry { relative_offset: relative(seg_base, base_offset), position });
            let (timestamp, at) = self.max_time.expect("set above");
            let entry = TimeEntry { timestamp, relative_offset: relative(seg_base, at) };
            if self.times.last().is_none_or(|l| l.timestamp < timestamp) {
                self.times.push(entry);
            }
        }
    }
}

/// Rebuilds a segment's indexes by scanning it from the start.
pub(crate) async fn scan_with_index(
    file: &DmaFile,
    base_offset: i64,
    file_len: u64,
    index_interval: u64,
) -> Result<(ScanEnd, Indexes, IndexPolicy), EngineError> {
    let mut added = IndexAdditions::default();
    let mut times = TimeIndex::new();
    let mut policy = IndexPolicy::new(index_interval);
    let end = scan(file, alignment_of(file), file_len, base_offset, 0, base_offset, |pos, h| {
        added.on_batch(&mut policy, base_offset, pos, h.base_offset(), h.total_len() as u64, h.max_timestamp());
        for e in added.times.drain(..) {
            times.maybe_push(e);
        }
    })
    .await?;
    let mut index = OffsetIndex::new();
    for e in added.offsets {
        index.push(e);
    }
    Ok((end, Indexes { offsets: index, times, max_time: added.max_time }, policy))
}

/// `offset - base` as the u32 stored in the index.
pub(crate) fn relative(base: i64, offset: i64) -> u32 {
    u32::try_from(offset - base).expect("relative offset fits u32 (segments roll before overflow)")
}

/// Opens a segment file for reading and writing, creating it if missing.
pub(crate) async fn open_rw(path: &Path) -> Result<DmaFile, EngineError> {
    OpenOptions::new().read(true).write(true).create(true).dma_open(path).await.map_err(io_err)
}

/// Creates a new, empty segment file; fails if it exists.
pub(crate) async fn create_new(path: &Path) -> Result<DmaFile, EngineError> {
    OpenOptions::new().read(true).write(true).create_new(true).dma_open(path).await.map_err(io_err)
}

/// Loads a sealed segment: its index from `<base>.index` (rebuilt by scanning
/// when missing or invalid) and its end offset from the batches after the
/// last index entry. A sealed segment must end cleanly.
pub(crate) async fn load_sealed(dir: &Path, base_offset: i64, index_interval: u64) -> Result<Segment, EngineError> {
    let path = log_path(dir, base_offset);
    let file = OpenOptions::new().read(true).dma_open(&path).await.map_err(io_err)?;
    let file_len = file.file_size().await.map_err(io_err)?;
    let align = alignment_of(&file);
    let loaded = read_index_file(dir, base_offset, file_len).await;
    let mut result = None;
    if let Some(index) = loaded {
        let (pos, offset) = match index.last() {
            Some(e) => (u64::from(e.position), base_offset + i64::from(e.relative_offset)),
            None => (0, base_offset),
        };
        let end = scan(&file, align, file_len, base_offset, pos, offset, |_, _| {}).await?;
        let times = read_time_index_file(dir, base_offset, end.next_offset - base_offset).await;
        match times {
            Some(times)
                if end.clean && (end.position > pos || file_len == 0) && (file_len == 0) == times.is_empty() =>
            {
                let max_time = times.last().map(|e| (e.timestamp, base_offset + i64::from(e.relative_offset)));
                result = Some((end, Indexes { offsets: index, times, max_time }));
            }
            _ => tracing::warn!(segment = %path.display(), "indexes do not match the log; rebuilding them"),
        }
    }
    let (end, indexes) = match result {
        Some(r) => r,
        None => {
            let scanned = scan_with_index(&file, base_offset, file_len, index_interval).await?;
            (scanned.0, scanned.1)
        }
    };
    if !end.clean {
        return Err(disk_corruption(format!(
            "sealed segment {} is corrupt at byte {} (length {file_len})",
            path.display(),
            end.position
        )));
    }
    let seg = Segment::new(base_offset, Rc::new(file), end.position, end.next_offset, indexes);
    seg.seal_time_index();
    Ok(seg)
}

/// The active segment's end and indexes as a clean shutdown recorded them
/// (`file_len` must be the recorded size): only the batches after its last
/// index entry are scanned, to check that they end where the marker says.
/// `None` when the index files or that check do not fit the marker.
pub(crate) async fn load_cleanly_closed(
    dir: &Path,
    file: &DmaFile,
    marker: &CleanShutdown,
    file_len: u64,
    index_interval: u64,
) -> Result<Option<(ScanEnd, Indexes, IndexPolicy)>, EngineError> {
    let base = marker.base_offset;
    let offsets = read_index_file(dir, base, file_len).await;
    let times = read_time_index_file(dir, base, marker.next_offset - base).await;
    let (Some(offsets), Some(times)) = (offsets, times) else {
        tracing::warn!(dir = %dir.display(), base, "clean-shutdown indexes unreadable; scanning the segment");
        return Ok(None);
    };
    let (pos, offset) =
        offsets.last().map_or((0, base), |e| (u64::from(e.position), base + i64::from(e.relative_offset)));
    let end = scan(file, alignment_of(file), file_len, base, pos, offset, |_, _| {}).await?;
    if !end.clean || end.next_offset != marker.next_offset {
        tracing::warn!(dir = %dir.display(), base, "segment does not end as the clean-shutdown marker says; scanning it");
        return Ok(None);
    }
    let policy = IndexPolicy::resume(index_interval, marker.bytes_since_index_entry);
    Ok(Some((end, Indexes { offsets, times, max_time: marker.max_time }, policy)))
}

async fn read_time_index_file(dir: &Path, base_offset: i64, offset_span: i64) -> Option<TimeIndex> {
    let bytes = read_small_file(&time_index_path(dir, base_offset)).await?;
    TimeIndex::decode(&bytes, offset_span)
}

/// The whole content of a small file, or `None` when it cannot be read.
pub(crate) async fn read_small_file(path: &Path) -> Option<Vec<u8>> {
    let file = DmaFile::open(path).await.ok()?;
    let len = file.file_size().await.ok()?;
    let bytes = if len == 0 { Some(Vec::new()) } else { file.read_at(0, len as usize).await.ok().map(|b| b.to_vec()) };
    let _ = file.close().await;
    bytes.filter(|b| b.len() as u64 == len)
}

async fn read_index_file(dir: &Path, base_offset: i64, log_len: u64) -> Option<OffsetIndex> {
    let path = index_path(dir, base_offset);
    let file = DmaFile::open(&path).await.ok()?;
    let len = file.file_size().await.ok()?;
    let bytes = if len == 0 { None } else { file.read_at(0, len as usize).await.ok() };
    let _ = file.close().await;
    match bytes {
        None if len == 0 => Some(OffsetIndex::new()),
        None => None,
        Some(b) if b.len() as u64 == len => OffsetIndex::decode(&b, log_len),
        Some(_) => None,
    }
}

/// Writes `<base>.index` and `<base>.timeindex` for a sealed segment and
/// fdatasyncs them.
pub(crate) async fn write_index_files(dir: &Path, seg: &Segment) -> Result<(), EngineError> {
    let base = seg.base_offset;
    write_file(&index_path(dir, base), &seg.index_snapshot().encode()).await?;
    write_file(&time_index_path(dir, base), &seg.time_index_snapshot().encode()).await
}

/// Creates or replaces `path` with `bytes` and fdatasyncs it (not its
/// directory entry).
pub(crate) async fn write_file(path: &Path, bytes: &[u8]) -> Result<(), EngineError> {
    let file = OpenOptions::new().write(true).create(true).truncate(true).dma_open(path).await.map_err(io_err)?;
    let result = write_whole(&file, bytes).await;
    let closed = file.close().await.map_err(io_err);
    result.and(closed)
}

async fn write_whole(file: &DmaFile, bytes: &[u8]) -> Result<(), EngineError> {
    if !bytes.is_empty() {
        let align = alignment_of(file);
        let padded = align_up(bytes.len() as u64, align) as usize;
        let mut buf = file.alloc_dma_buffer(padded);
        let dst = buf.as_bytes_mut();
        dst[..bytes.len()].copy_from_slice(bytes);
        dst[bytes.len()..].fill(0);
        let n = file.write_at(buf, 0).await.map_err(io_err)?;
        if n != padded {
            return Err(EngineError::Io(std::io::Error::new(std::io::ErrorKind::WriteZero, "short index write")));
        }
        file.truncate(bytes.len() as u64).await.map_err(io_err)?;
    }
    storage::fdatasync(file).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let p = log_path(Path::new("/d"), 42);
        assert_eq!(p, Path::new("/d/00000000000000000042.log"));
        let name = p.file_name().and_then(|n| n.to_str()).expect("utf8");
        assert_eq!(parse_log_name(name), Some(42));
        assert_eq!(parse_log_name("42.log"), None);
        assert_eq!(parse_log_name("0000000000000000004x.log"), None);
        assert_eq!(parse_log_name("00000000000000000042.index"), None);
    }
}
