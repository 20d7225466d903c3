//! Opening a log: its segments listed and loaded, the active one scanned and
//! cut at the first bad or incomplete batch.

use super::LogConfig;
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

use weir_runtime::io::Directory;

use crate::clean_shutdown::{self};
use crate::error::{disk_corruption, io_err, EngineError};
use crate::index::IndexPolicy;
use crate::retention;
use crate::segment::{self, align_down, FileWindow, Segment};
use crate::storage;

/// What recovery hands to the log.
pub(super) struct Recovered {
    pub(super) segments: BTreeMap<i64, Rc<Segment>>,
    pub(super) active: Rc<Segment>,
    pub(super) tail: Vec<u8>,
    pub(super) policy: IndexPolicy,
    /// Bytes of the active segment the scan read.
    pub(super) scanned: u64,
}

/// Lists the segments in `dir`, loads the sealed ones, scans the last one and
/// cuts it at the first bad or incomplete batch (durably). Removes what an
/// interrupted compaction, deletion or checkpoint left behind.
pub(super) async fn recover(dir: &Path, directory: &Directory, config: &LogConfig) -> Result<Recovered, EngineError> {
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
        storage::sync_directory(directory).await?;
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
                segment::scan_with_index(&file, base, file_len, config.index_interval_bytes).await?;
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
        storage::fdatasync(&file).await?;
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
pub(super) fn roll_jitter(bound: u64, segment_base: i64) -> u64 {
    if bound == 0 {
        return 0;
    }
    thread_local! {
        static SEED: std::collections::hash_map::RandomState = std::collections::hash_map::RandomState::new();
    }
    SEED.with(|seed| std::hash::BuildHasher::hash_one(seed, segment_base)) % bound
}
