//! cleanup.policy=compact: newest record per key, tombstones after
//! delete.retention.ms, offsets and order unchanged, crash-safe swap.

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::*;
use weir_engine::compression::{self, Codec};
use weir_engine::records::{self, RecordsBuilder};
use weir_engine::{CleanupPolicy, Durability, LogConfig, PartitionLog};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1500,
        index_interval_bytes: 200,
        cleanup_policy: CleanupPolicy::Compact,
        delete_retention_ms: 60_000,
        ..LogConfig::default()
    }
}

/// One surviving record: (offset, key, value or None for a tombstone).
type Rec = (i64, Vec<u8>, Option<Vec<u8>>);

async fn all_records(log: &PartitionLog) -> Vec<Rec> {
    let bytes = read_all(log, log.log_start_offset()).await;
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let h = weir_engine::batch::check_batch_at(&bytes[pos..]).expect("valid batch");
        let b = &bytes[pos..pos + h.total_len()];
        let plain = compression::with_codec(b, Codec::None, 0).expect("decompresses");
        for r in records::parse(&plain).expect("records") {
            let value = if r.tombstone { None } else { Some(r.bytes.to_vec()) };
            out.push((h.base_offset() + i64::from(r.offset_delta), r.key.expect("keyed").to_vec(), value));
        }
        pos += h.total_len();
    }
    out
}

/// Writes 300 records over 8 keys (every 13th a tombstone) with timestamps
/// `ts0 + i`; returns every record as read back.
async fn fill(log: &PartitionLog, ts0: i64) -> Vec<Rec> {
    fill_compressed(log, ts0, Codec::None).await
}

/// [`fill`] with batches compressed by `codec` (0: none).
async fn fill_compressed(log: &PartitionLog, ts0: i64, codec: Codec) -> Vec<Rec> {
    let mut i = 0i64;
    while i < 300 {
        let n = (i % 4 + 1) as usize;
        let mut batch = RecordsBuilder::new().compression(codec);
        for j in i..i + n as i64 {
            let key = format!("key-{}", j % 8);
            let value = (j % 13 != 5).then(|| format!("value-{j}"));
            batch.push(Some(key.as_bytes()), value.as_ref().map(|v| v.as_bytes()), &[], ts0 + j);
        }
        log.append(batch.finish(), Durability::Written).await.expect("append");
        i += n as i64;
    }
    all_records(log).await
}

/// What compaction must leave: in the sealed part (offsets below
/// `active_base`) the newest record of each key within that part, minus
/// tombstones when `drop_tombstones`; the active part untouched.
fn expected(before: &[Rec], active_base: i64, drop_tombstones: bool) -> Vec<Rec> {
    let mut newest: HashMap<&[u8], i64> = HashMap::new();
    for r in before.iter().filter(|r| r.0 < active_base) {
        newest.insert(&r.1, r.0);
    }
    before
        .iter()
        .filter(|r| r.0 >= active_base || (newest[&r.1[..]] == r.0 && !(drop_tombstones && r.2.is_none())))
        .cloned()
        .collect()
}

fn active_base(dir: &Path) -> i64 {
    let last = files_with(dir, "log").pop().expect("segments");
    let name = last.file_name().and_then(|n| n.to_str()).expect("name");
    name.trim_end_matches(".log").parse().expect("base offset")
}

#[test]
fn compaction_keeps_the_newest_record_per_key_and_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    block_on(async move {
        let now = weir_engine::now_ms();
        let log = open(&path, config()).await;
        let before = fill(&log, now).await;
        let hw = log.high_watermark();
        let base = active_base(&path);
        assert!(files_with(&path, "log").len() > 4, "several sealed segments");
        // Tombstones are young: kept.
        let out = log.compact(now).await.expect("compact");
        assert!(out.segments_rewritten > 0 && out.records_removed > 0, "{out:?}");
        assert!(out.bytes_after < out.bytes_before);
        let want = expected(&before, base, false);
        assert_eq!(all_records(&log).await, want, "newest per key, same offsets, same order");
        assert_eq!(log.high_watermark(), hw);
        assert_eq!(log.log_start_offset(), 0);
        let again = log.compact(now).await.expect("compact again");
        assert_eq!(again.segments_rewritten, 0, "nothing left to remove: {again:?}");
        // Every offset still reads: a gap answers with the next batch.
        for o in 0..hw {
            let got = log.read(o, 1).await.expect("read in a gap");
            assert!(batches_in(&got)[0].1 >= o);
        }
        log.close().await.expect("close");

        // Reopen (gaps in sealed segments are fine), then let tombstones expire.
        let log = open(&path, config()).await;
        assert_eq!(all_records(&log).await, want);
        let out = log.compact(now + 120_000).await.expect("compact");
        assert!(out.records_removed > 0, "old tombstones removed: {out:?}");
        let want = expected(&before, base, true);
        assert_eq!(all_records(&log).await, want);
        let info =
            log.append(RecordsBuilder::new().push(Some(b"k"), Some(b"v"), &[], now).finish(), Durability::Synced).await;
        assert_eq!(info.expect("append after compaction").base_offset, hw);
        log.close().await.expect("close");
        let log = open(&path, config()).await;
        assert_eq!(all_records(&log).await.len(), want.len() + 1);
        log.close().await.expect("close");
    });
}

#[test]
fn compressed_batches_are_compacted_and_stay_compressed() {
    for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_path_buf();
        block_on(async move {
            let now = weir_engine::now_ms();
            let log = open(&path, config()).await;
            let before = fill_compressed(&log, now, codec).await;
            let base = active_base(&path);
            let out = log.compact(now).await.expect("compact");
            assert!(out.segments_rewritten > 0 && out.records_removed > 0, "{codec:?}: {out:?}");
            assert_eq!(all_records(&log).await, expected(&before, base, false), "{codec:?}");
            let batches = read_all(&log, 0).await;
            let mut pos = 0;
            while pos < batches.len() {
                let h = weir_engine::batch::check_batch_at(&batches[pos..]).expect("valid batch");
                assert_eq!(Codec::of(&batches[pos..]), Ok(codec), "still compressed");
                pos += h.total_len();
            }
            log.close().await.expect("close");
        });
    }
}

#[test]
fn delete_policy_does_not_compact() {
    let dir = tempfile::tempdir().expect("tempdir");
    block_on(async move {
        let log = open(dir.path(), LogConfig { cleanup_policy: CleanupPolicy::Delete, ..config() }).await;
        let before = fill(&log, 0).await;
        assert_eq!(log.compact(weir_engine::now_ms()).await.expect("compact").segments_rewritten, 0);
        assert_eq!(all_records(&log).await, before);
        log.close().await.expect("close");
    });
}

#[test]
fn interrupted_compaction_leaves_a_consistent_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    block_on(async move {
        let now = weir_engine::now_ms();
        let log = open(&path, config()).await;
        let before = fill(&log, now).await;
        let base = active_base(&path);
        log.close().await.expect("close");
        let logs = files_with(&path, "log");

        // Crash before the rename: a half-written `.cleaned` file is left.
        std::fs::write(logs[1].with_extension("log.cleaned"), b"half a segment").expect("write");
        let log = open(&path, config()).await;
        assert!(files_with(&path, "cleaned").is_empty(), "leftover removed at open");
        assert_eq!(all_records(&log).await, before);
        log.compact(now).await.expect("compact");
        log.close().await.expect("close");

        // Crash after the rename, before the new indexes were written.
        for ext in ["index", "timeindex"] {
            for f in files_with(&path, ext) {
                std::fs::remove_file(f).expect("remove index");
            }
        }
        let log = open(&path, config()).await;
        assert_eq!(all_records(&log).await, expected(&before, base, false));
        log.close().await.expect("close");
    });
}

#[test]
fn min_compaction_lag_leaves_young_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    block_on(async move {
        let now = weir_engine::now_ms();
        let log = open(dir.path(), LogConfig { min_compaction_lag_ms: 1000, ..config() }).await;
        let before = fill(&log, now).await;
        let base = active_base(dir.path());
        // Every sealed segment has records younger than the lag.
        assert_eq!(log.compact(now).await.expect("compact").segments_rewritten, 0);
        assert_eq!(all_records(&log).await, before);
        // 1.1 s on, only segments whose records are all older than now + 100 qualify.
        let partly = log.compact(now + 1100).await.expect("compact");
        assert!(partly.segments_rewritten > 0, "{partly:?}");
        let after = all_records(&log).await;
        assert!(after.iter().filter(|r| r.0 >= 100).eq(before.iter().filter(|r| r.0 >= 100)), "young records kept");
        // Once all are old enough, compaction finishes the job.
        log.compact(now + 10_000).await.expect("compact");
        assert_eq!(all_records(&log).await, expected(&before, base, false));
        log.close().await.expect("close");
    });
}
