//! Producer state snapshots, as Kafka's `<offset>.snapshot` files: a
//! partition's producer state, encoded by its owner (opaque bytes here),
//! describing exactly the batches below `offset`. The engine frames it
//! (magic, length, CRC-32C), writes it atomically, keeps the newest few, and
//! at open removes those above the recovered end: they describe batches an
//! unclean stop lost, and appends after the open would reuse their offsets.

use crate::durable;
use crate::error::EngineError;
use crate::segment;
use std::path::{Path, PathBuf};

const SUFFIX: &str = ".snapshot";
const TMP: &str = "producer-snapshot.tmp";
const MAGIC: &[u8; 8] = b"weirps01";
const FRAME_HEADER: usize = MAGIC.len() + 4 + 4;
/// Snapshots kept per partition: the newest, and older ones to fall back on
/// when it is damaged or lies above the end after an unclean stop.
const KEEP: usize = 3;

fn path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}{SUFFIX}"))
}

fn parse_name(name: &str) -> Option<i64> {
    let digits = name.strip_suffix(SUFFIX)?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok()).flatten()
}

/// The offsets of the snapshots in `dir`, ascending.
fn list(dir: &Path) -> Result<Vec<i64>, EngineError> {
    let mut offsets = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        if let Some(offset) = entry?.file_name().to_str().and_then(parse_name) {
            offsets.push(offset);
        }
    }
    offsets.sort_unstable();
    Ok(offsets)
}

fn frame(state: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(FRAME_HEADER + state.len());
    framed.extend_from_slice(MAGIC);
    framed.extend_from_slice(&u32::try_from(state.len()).unwrap_or(u32::MAX).to_be_bytes());
    framed.extend_from_slice(&crc32c::crc32c(state).to_be_bytes());
    framed.extend_from_slice(state);
    framed
}

fn unframe(mut framed: Vec<u8>) -> Option<Vec<u8>> {
    let header = framed.get(..FRAME_HEADER)?;
    let len = u32::from_be_bytes(header[8..12].try_into().ok()?) as usize;
    let crc = u32::from_be_bytes(header[12..16].try_into().ok()?);
    if &header[..8] != MAGIC || framed.len() != FRAME_HEADER + len || crc32c::crc32c(&framed[FRAME_HEADER..]) != crc {
        return None;
    }
    framed.drain(..FRAME_HEADER);
    Some(framed)
}

/// Writes the snapshot of `offset` durably (temporary file, fdatasync,
/// rename, directory fsync), then removes all but the newest `KEEP`.
pub(crate) async fn write(dir: &Path, offset: i64, state: &[u8]) -> Result<(), EngineError> {
    durable::replace_file_async(&path(dir, offset), &dir.join(TMP), &frame(state)).await?;
    let offsets = list(dir)?;
    // A removal lost in a crash leaves an old snapshot, which is harmless: no dir sync.
    for old in &offsets[..offsets.len().saturating_sub(KEEP)] {
        std::fs::remove_file(path(dir, *old))?;
    }
    Ok(())
}

/// The newest readable snapshot at or below `at_most`: (offset, state).
/// Damaged ones are skipped with a warning.
pub(crate) async fn read_newest(dir: &Path, at_most: i64) -> Result<Option<(i64, Vec<u8>)>, EngineError> {
    for offset in list(dir)?.into_iter().rev().filter(|o| *o <= at_most) {
        let file = path(dir, offset);
        match segment::read_small_file(&file).await.and_then(unframe) {
            Some(state) => return Ok(Some((offset, state))),
            None => tracing::warn!(file = %file.display(), "ignoring a damaged producer state snapshot"),
        }
    }
    Ok(None)
}

/// At open: removes the snapshots above the recovered log end and a
/// temporary an interrupted write left. Returns whether it removed any.
pub(crate) fn remove_above(dir: &Path, end: i64) -> Result<bool, EngineError> {
    let mut removed = false;
    let tmp = dir.join(TMP);
    if tmp.exists() {
        std::fs::remove_file(tmp)?;
        removed = true;
    }
    for offset in list(dir)?.into_iter().filter(|o| *o > end) {
        tracing::warn!(dir = %dir.display(), offset, end, "removing a producer state snapshot beyond the recovered log end");
        std::fs::remove_file(path(dir, offset))?;
        removed = true;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_damage_is_detected() {
        let framed = frame(b"state");
        assert_eq!(unframe(framed.clone()), Some(b"state".to_vec()));
        assert_eq!(unframe(frame(b"")), Some(Vec::new()));
        for cut in 0..framed.len() {
            assert_eq!(unframe(framed[..cut].to_vec()), None, "truncated at {cut}");
        }
        let mut flipped = framed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(unframe(flipped), None);
    }

    #[test]
    fn names_carry_the_offset() {
        assert_eq!(parse_name("00000000000000000042.snapshot"), Some(42));
        assert_eq!(path(Path::new("d"), 42), Path::new("d/00000000000000000042.snapshot"));
        for bad in ["42.snapshot", "00000000000000000042.log", "0000000000000000004x.snapshot", TMP] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }
}
