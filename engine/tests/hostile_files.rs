//! Partition files the engine did not write (what `fuzz/`'s segment_recovery
//! target found): opening fails or recovers, never panics, and whatever it
//! recovers reads back and takes appends.

mod common;

use std::path::Path;

use common::*;
use weir_engine::{Durability, LogConfig, PartitionLog};

/// A valid batch of `records` records at `base_offset`, `body_len` bytes of body.
fn batch_at(base_offset: i64, records: i32, body_len: usize) -> Vec<u8> {
    stored(batch(records, body_len, base_offset as u8), base_offset)
}

fn segment(dir: &Path, base_offset: i64, batches: &[Vec<u8>]) {
    std::fs::write(dir.join(format!("{base_offset:020}.log")), batches.concat()).expect("write segment");
}

fn config() -> LogConfig {
    LogConfig { index_interval_bytes: 100, cache_bytes: 0, ..LogConfig::default() }
}

/// An active segment whose batches run past the u32 relative offsets of its
/// indexes used to panic recovery at the first index entry out of range.
/// Recovery now cuts the log before the first batch that does not fit.
#[test]
fn active_segment_offsets_beyond_the_index_range_are_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    // Offsets 0, 1..2^31, 2^31..2^32-1, then a batch whose last offset (2^32)
    // is one past what a u32 relative offset holds, and one whose base is.
    let end = i64::from(u32::MAX);
    let batches = [
        batch_at(0, 1, 200),
        batch_at(1, i32::MAX, 200),
        batch_at(1 << 31, i32::MAX, 200),
        batch_at(end, 2, 200),
        batch_at(end + 2, 1, 200),
    ];
    segment(&path, 0, &batches);
    block_on(async move {
        let log = open(&path, config()).await;
        assert_eq!(log.high_watermark(), end);
        let read: Vec<i64> = batches_in(&read_all(&log, 0).await).iter().map(|b| b.0).collect();
        assert_eq!(read, [0, 1, 1 << 31]);
        // The next append starts a new segment: its offsets fit there.
        let info = log.append(bytes(batch(1, 50, 9)), Durability::Synced).await.expect("append");
        assert_eq!(info.base_offset, end);
        assert_eq!(batches_in(&log.read(info.base_offset, 1 << 20).await.expect("read")).len(), 1);
        log.close().await.expect("close");
    });
}

/// Sealed segments may have offset gaps (compaction), but not beyond what
/// their indexes can hold: such a segment is corrupt, and opening fails
/// instead of panicking.
#[test]
fn sealed_segment_gap_beyond_the_index_range_fails_the_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    let far = 1i64 << 33;
    segment(&path, 0, &[batch_at(0, 1, 200), batch_at(far, 1, 200)]);
    segment(&path, far + 1, &[]);
    block_on(async move {
        match PartitionLog::open(path, config()).await {
            Err(e) => assert!(e.to_string().contains("corrupt"), "{e}"),
            Ok(_) => panic!("a sealed segment that cannot be indexed opened"),
        }
    });
}

/// A sealed segment's index is trusted at open; an entry that points inside
/// a batch (found by the fuzzer in a damaged `.index`) used to make every
/// read through it fail with a storage error. Reads and timestamp lookups
/// now walk that segment from its start instead.
#[test]
fn index_entry_inside_a_batch_does_not_make_data_unreadable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    let ts = 1_700_000_000_000;
    block_on(async move {
        let log = open(&path, LogConfig { segment_bytes: 1000, ..config() }).await;
        for i in 0..12 {
            let value = vec![b'v'; 40 + 7 * i as usize];
            let records =
                weir_engine::records::RecordsBuilder::new().push(Some(b"k"), Some(&value), &[], ts + i).finish();
            log.append(records, Durability::Synced).await.expect("append");
        }
        let before = read_all(&log, 0).await;
        log.close().await.expect("close");
        let index = files_with(&path, "index").into_iter().next().expect("a sealed segment");
        let mut entries = std::fs::read(&index).expect("read index");
        assert!(entries.len() >= 16, "at least two entries");
        // Move the first entry's position one byte into its batch.
        let damaged = i64::from(u32::from_be_bytes(entries[0..4].try_into().expect("4 bytes")));
        let position = u32::from_be_bytes(entries[4..8].try_into().expect("4 bytes"));
        entries[4..8].copy_from_slice(&(position + 1).to_be_bytes());
        std::fs::write(&index, entries).expect("damage the index");

        let log = open(&path, config()).await;
        for offset in 0..log.high_watermark() {
            let one = log.read(offset, 1).await.expect("every offset reads");
            assert_eq!(batches_in(&one)[0].0, offset);
        }
        assert_eq!(read_all(&log, 0).await, before);
        let found = log.offset_for_timestamp(ts + damaged).await.expect("timestamp lookup");
        assert_eq!(found, Some((damaged, ts + damaged)));
        log.close().await.expect("close");
    });
}
