//! The read path below the cache: batches read from segment files with DMA
//! reads, and the walks that find an offset or a timestamp in a segment.

use super::MAX_READ_BYTES;
use bytes::Bytes;

use crate::batch::{self, RawHeader, HEADER_LEN};
use crate::error::{disk_corruption, is_disk_corruption, EngineError};
use crate::records;
use crate::segment::{FileWindow, Segment};

/// True when a walk of `seg` that started at an index position (`pos > 0`)
/// met data that does not parse, so it should be done again from the
/// segment start. A sealed segment's index is trusted at open (as Kafka
/// does; checking every entry would read the whole segment), so a damaged
/// index shows up here; the walk from the start checks every batch header.
pub(super) fn retry_from_start<T>(seg: &Segment, pos: u64, offset: i64, result: &Result<T, EngineError>) -> bool {
    let Err(e) = result else { return false };
    let retry = pos > 0 && is_disk_corruption(e);
    if retry {
        tracing::warn!(segment = seg.base_offset, offset, error = %e, "index entry leads to bad data; reading from the segment start");
    }
    retry
}

/// The first record of `batch` (header `h`) at or after `from` whose
/// timestamp satisfies `hit`, as (offset, timestamp). Compressed and control
/// batches count as one record at their first offset with their maxTimestamp.
pub(super) fn first_record_at(batch: &[u8], h: &RawHeader, from: i64, hit: impl Fn(i64) -> bool) -> Option<(i64, i64)> {
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
pub(super) async fn find_in_segment(
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
pub(super) async fn read_batches(
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
