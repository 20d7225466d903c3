//! A partition directory of arbitrary files (a sealed segment with its
//! indexes, an active segment, the log start checkpoint; layout in
//! `weir_fuzz::PartitionFiles`), opened as the broker opens it at start. Opening
//! may fail, but never panic; what it recovers must be readable from the log
//! start to the high watermark in whole valid batches, answer timestamp
//! lookups, and take a new append. Then it is truncated at an offset the
//! input picks (its last byte) and must open again at the new end, with the
//! same guarantees.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_engine::truncation::truncate_closed;
use weir_engine::{batch, records, Durability, EngineError, LogConfig, PartitionLog};
use weir_fuzz::PartitionFiles;

fuzz_target!(|data: &[u8]| {
    let files = PartitionFiles::decode(data);
    let scratch = tempfile::tempdir().expect("temporary directory");
    let dir = std::path::absolute(scratch.path().join("topic-0")).expect("absolute path");
    std::fs::create_dir(&dir).expect("partition directory");
    files.write_to(&dir).expect("write the partition files");
    let fraction = i64::from(data.last().copied().unwrap_or(0));
    weir_fuzz::block_on(async move {
        let Some((start, end)) = open_and_check(&dir).await else { return };
        let cut = start + ((i128::from(end - start) * i128::from(fraction)) / 255) as i64;
        let new_end = truncate_closed(&dir, cut, &config()).await.expect("truncating a log that opened");
        assert!(new_end <= end, "truncation at {cut} moved the end from {end} to {new_end}");
        let (_, reopened_end) = open_and_check(&dir).await.expect("a truncated log opens");
        assert_eq!(reopened_end, new_end, "truncated at {cut}");
    });
});

/// Small index intervals and no read cache, so reads exercise the indexes.
fn config() -> LogConfig {
    LogConfig { index_interval_bytes: 128, cache_bytes: 0, ..LogConfig::default() }
}

/// Opens the log, checks what it recovered, appends one record (where the
/// offsets allow) and closes it; returns the log start and the end it
/// recovered, or None when the files do not open as a log.
async fn open_and_check(dir: &std::path::Path) -> Option<(i64, i64)> {
    let log = PartitionLog::open(dir.to_path_buf(), config()).await.ok()?;
    let (start, end) = (log.log_start_offset(), log.high_watermark());
    assert!(0 <= start && start <= end, "log start {start}, high watermark {end}");
    let mut offset = start;
    while offset < end {
        // One batch per read (KIP-74: at least one), so every read looks
        // its offset up in the index.
        let read = log.read(offset, 1).await;
        let bytes =
            read.unwrap_or_else(|e| panic!("offset {offset} of {start}..{end} was recovered but is unreadable: {e}"));
        offset = check_batches(&bytes, offset);
    }
    assert_eq!(offset, end, "the last batch ends at the high watermark");
    log.max_timestamp().await.expect("largest timestamp lookup");
    log.offset_for_timestamp(0).await.expect("timestamp lookup");
    let new = records::RecordsBuilder::new().push(Some(b"k"), Some(b"v"), &[], 1_700_000_000_000).finish();
    match log.append(new, Durability::Synced).await {
        Ok(info) => {
            assert_eq!(info.base_offset, end);
            let bytes = log.read(end, 1 << 20).await.expect("the new batch reads back");
            assert_eq!(check_batches(&bytes, end), end + 1);
        }
        // Only a log whose offsets are used up may refuse it.
        Err(EngineError::CorruptMessage(_)) if end == i64::MAX => {}
        Err(e) => panic!("append after recovery to {start}..{end}: {e}"),
    }
    log.close().await.expect("close");
    Some((start, end))
}

/// Checks that `bytes` are whole valid batches, the first one holding
/// `offset`, with increasing offsets; returns one past the last offset.
fn check_batches(bytes: &[u8], offset: i64) -> i64 {
    assert!(!bytes.is_empty(), "a read below the high watermark returns a batch");
    let (mut pos, mut next) = (0, offset);
    while pos < bytes.len() {
        let h = batch::check_batch_at(&bytes[pos..]).expect("reads return whole valid batches");
        assert!(h.last_offset() >= next, "batch {}..={} read for offset {next}", h.base_offset(), h.last_offset());
        assert!(pos == 0 || h.base_offset() >= next, "offsets increase");
        next = h.last_offset() + 1;
        pos += h.total_len();
    }
    next
}
