//! Flush policy, time index and timestamp lookups, LogAppendTime, retention,
//! segment.ms, DeleteRecords and the read cache.

mod common;

use std::time::Duration;

use common::*;
use weir_engine::batch;
use weir_engine::records::{self, RecordsBuilder};
use weir_engine::{now_ms, CleanupPolicy, Durability, EngineError, LogConfig, TimestampType};
use weir_runtime::clock::TestClock;

const HOUR_MS: u64 = 3_600_000;

/// Waits (polling, up to 10 s of real time) until `done` holds: for work a
/// clock advance has made due but another task carries out.
async fn until(done: impl Fn() -> bool, what: &str) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(10), "not within 10 s: {what}");
        weir_runtime::clock::sleep(Duration::from_millis(5)).await;
    }
}

/// A plain batch of `n` records with timestamps `ts, ts+1, ...`.
fn timed(ts: i64, n: usize) -> bytes::Bytes {
    let mut batch = RecordsBuilder::new();
    for i in 0..n as i64 {
        batch.push(Some(b"k"), Some(&[7u8; 120]), &[], ts + i);
    }
    batch.finish()
}

#[test]
fn flush_messages_syncs_every_n_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    block_on(async move {
        let log = open(dir.path(), LogConfig { flush_messages: Some(3), ..LogConfig::default() }).await;
        for i in 0..7u8 {
            log.append(bytes(batch(1, 10, i)), Durability::Written).await.expect("append");
        }
        assert_eq!(log.stats().syncs, 2, "synced after offsets 3 and 6: {:?}", log.stats());
        log.close().await.expect("close");

        let other = tempfile::tempdir().expect("tempdir");
        let log = open(other.path(), LogConfig::default()).await;
        for i in 0..7u8 {
            log.append(bytes(batch(1, 10, i)), Durability::Written).await.expect("append");
        }
        assert_eq!(log.stats().syncs, 0, "no policy: Written appends are not synced");
        log.append(bytes(batch(1, 10, 9)), Durability::Synced).await.expect("append");
        assert_eq!(log.stats().syncs, 1, "Synced always waits for a sync");
        log.close().await.expect("close");
    });
}

#[test]
fn flush_ms_syncs_without_further_appends() {
    let dir = tempfile::tempdir().expect("tempdir");
    block_on(async move {
        let clock = TestClock::new();
        clock.install();
        let log = open(dir.path(), LogConfig { flush_ms: Some(HOUR_MS), ..LogConfig::default() }).await;
        log.append(bytes(batch(2, 10, 1)), Durability::Written).await.expect("append");
        assert_eq!(log.stats().syncs, 0);
        clock.advance(Duration::from_millis(HOUR_MS));
        until(|| log.stats().syncs == 1, "the writer's timer synced the old write").await;
        clock.advance(Duration::from_millis(HOUR_MS));
        log.append(bytes(batch(1, 10, 2)), Durability::Synced).await.expect("append");
        assert_eq!(log.stats().syncs, 2, "no sync in between: nothing was left to sync");
        log.close().await.expect("close");
    });
}

/// The first record with timestamp >= `ts` among `(offset, timestamp)`s.
fn expected_lookup(all: &[(i64, i64)], ts: i64) -> Option<(i64, i64)> {
    all.iter().copied().find(|&(_, t)| t >= ts)
}

#[test]
fn time_index_answers_offset_for_timestamp_before_and_after_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    block_on(async move {
        let config = || LogConfig { segment_bytes: 2000, index_interval_bytes: 300, ..LogConfig::default() };
        let log = open(&path, config()).await;
        let mut all = Vec::new();
        for i in 0..60i64 {
            // Mostly rising, with a dip every 7th batch.
            let ts = if i % 7 == 3 { 1_000 * i - 2_500 } else { 1_000 * i };
            let n = (i % 3 + 1) as usize;
            let info = log.append(timed(ts, n), Durability::Written).await.expect("append");
            for k in 0..n as i64 {
                all.push((info.base_offset + k, ts + k));
            }
        }
        assert!(log.stats().rolls >= 5, "several sealed segments: {:?}", log.stats());
        let probes: Vec<i64> = (-2..61_000).step_by(97).chain([0, 1, 2, 59_000, 59_002, 59_003, i64::MIN]).collect();
        for reopen in [false, true] {
            let log = if reopen { open(&path, config()).await } else { log.clone() };
            for &ts in &probes {
                let got = log.offset_for_timestamp(ts).await.expect("lookup");
                assert_eq!(got, expected_lookup(&all, ts), "timestamp {ts}, reopened {reopen}");
            }
            let max = all.iter().map(|a| a.1).max().expect("records");
            let at = all.iter().find(|a| a.1 == max).expect("max").0;
            assert_eq!(log.max_timestamp().await.expect("max"), Some((at, max)));
            log.close().await.expect("close");
        }
        // Sealed segments have one, and a clean close writes the active one's.
        let times = files_with(&path, "timeindex");
        assert_eq!(times.len(), files_with(&path, "log").len(), "every segment has a .timeindex");
        for t in times {
            let len = std::fs::metadata(&t).expect("stat").len();
            assert!(len > 0 && len % 12 == 0, "Kafka's 12-byte entries ({len})");
        }
    });
}

#[test]
fn log_append_time_sets_max_timestamp_and_crc() {
    let dir = tempfile::tempdir().expect("tempdir");
    block_on(async move {
        let config = LogConfig { timestamp_type: TimestampType::LogAppendTime, ..LogConfig::default() };
        let log = open(dir.path(), config).await;
        let produced = timed(1_000, 3);
        let before = now_ms();
        let info = log.append(produced.clone(), Durability::Synced).await.expect("append");
        let after = now_ms();
        assert!((before..=after).contains(&info.log_append_time), "{info:?}");
        let got = log.read(0, 1 << 20).await.expect("read");
        let h = batch::check_batch_at(&got).expect("CRC recomputed");
        let producer_crc = batch::RawHeader::of(&produced).expect("a header").crc();
        assert_ne!(h.crc(), producer_crc, "the stored CRC differs from the producer's");
        assert_eq!(h.max_timestamp(), info.log_append_time);
        assert_ne!(h.attributes() & batch::ATTR_LOG_APPEND_TIME, 0);
        for r in records::parse(&got).expect("records") {
            assert_eq!(r.timestamp, info.log_append_time, "every record reads the append time");
        }
        assert_eq!(log.offset_for_timestamp(1_500).await.expect("lookup"), Some((0, info.log_append_time)));
        log.close().await.expect("close");

        let other = tempfile::tempdir().expect("tempdir");
        let log = open(other.path(), LogConfig::default()).await;
        let info = log.append(produced.clone(), Durability::Written).await.expect("append");
        assert_eq!(info.log_append_time, -1);
        // Past baseOffset, batchLength and partitionLeaderEpoch (the broker's to set).
        let stored = log.read(0, 1 << 20).await.expect("read");
        assert_eq!(&stored[16..], &produced[16..], "CreateTime: stored as produced");
        log.close().await.expect("close");
    });
}

#[test]
fn retention_bytes_deletes_oldest_segments_and_start_offset_persists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    block_on(async move {
        let config = || LogConfig { retention_bytes: Some(4000), ..small_segments() };
        let log = open(&path, config()).await;
        for i in 0..60u8 {
            log.append(bytes(batch(1, 150, i)), Durability::Written).await.expect("append");
        }
        let segments_before = files_with(&path, "log").len();
        let size_before = log.size_bytes();
        let out = log.enforce_retention(now_ms()).await.expect("retention");
        assert!(out.segments_deleted > 0, "{out:?}");
        assert_eq!(files_with(&path, "log").len(), segments_before - out.segments_deleted);
        assert_eq!(log.size_bytes(), size_before - out.bytes_deleted);
        assert!(log.size_bytes() >= 4000, "keeps at least retention.bytes");
        let first = files_with(&path, "log")[0].clone();
        let first_len = std::fs::metadata(&first).expect("stat").len();
        assert!(log.size_bytes() - first_len < 4000, "deleting one more segment would go below the limit");
        let start = log.log_start_offset();
        assert_eq!(start, out.log_start_offset);
        assert!(start > 0);
        assert!(matches!(log.read(start - 1, 100).await, Err(EngineError::OffsetOutOfRange { .. })));
        assert_eq!(batches_in(&log.read(start, 1).await.expect("read"))[0].0, start);
        assert_eq!(log.enforce_retention(now_ms()).await.expect("again").segments_deleted, 0);
        log.close().await.expect("close");

        let log = open(&path, config()).await;
        assert_eq!(log.log_start_offset(), start, "log start offset after reopen");
        assert_eq!(read_all(&log, start).await.len() as u64, log.size_bytes());
        log.close().await.expect("close");

        // The default configuration (no retention) deletes nothing.
        let log = open(&path, small_segments()).await;
        assert_eq!(log.enforce_retention(now_ms()).await.expect("retention").segments_deleted, 0);
        log.close().await.expect("close");
    });
}

#[test]
fn retention_ms_deletes_segments_older_than_the_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    block_on(async move {
        let now = now_ms();
        let hour = 3_600_000;
        let config = |policy| LogConfig {
            segment_bytes: 2000,
            retention_ms: Some(10 * 60 * 1000),
            cleanup_policy: policy,
            ..LogConfig::default()
        };
        let log = open(&path, config(CleanupPolicy::Compact)).await;
        let mut stamps = Vec::new();
        for i in 0..40i64 {
            let ts = if i < 25 { now - 2 * hour + i } else { now + i };
            let info = log.append(timed(ts, 1), Durability::Written).await.expect("append");
            stamps.push((info.base_offset, ts));
        }
        assert_eq!(log.enforce_retention(now).await.expect("retention").segments_deleted, 0, "compact only");
        log.close().await.expect("close");

        let log = open(&path, config(CleanupPolicy::Delete)).await;
        let out = log.enforce_retention(now).await.expect("retention");
        assert!(out.segments_deleted > 0, "{out:?}");
        let start = log.log_start_offset();
        assert!(stamps.iter().filter(|s| s.0 < start).all(|s| s.1 < now - hour), "only old records deleted");
        let first_new = stamps.iter().find(|s| s.1 >= now).expect("new").0;
        assert!(start <= first_new);
        // The segment holding the first new record is the first one left, or
        // its predecessor (which mixes old and new) is.
        assert!(log.read(first_new, 1).await.is_ok());
        log.close().await.expect("close");
    });
}

#[test]
fn segment_ms_rolls_the_active_segment_by_age() {
    let dir = tempfile::tempdir().expect("tempdir");
    block_on(async move {
        let clock = TestClock::new();
        clock.install();
        let log = open(dir.path(), LogConfig { segment_ms: Some(HOUR_MS), ..LogConfig::default() }).await;
        log.append(bytes(batch(1, 10, 1)), Durability::Written).await.expect("append");
        clock.advance(Duration::from_millis(HOUR_MS - 1000));
        log.append(bytes(batch(1, 10, 2)), Durability::Written).await.expect("append");
        assert_eq!(log.stats().rolls, 0, "young segment");
        clock.advance(Duration::from_millis(1000));
        log.append(bytes(batch(1, 10, 3)), Durability::Written).await.expect("append");
        assert_eq!(log.stats().rolls, 1, "old segment rolled");
        log.close().await.expect("close");
        let other = tempfile::tempdir().expect("tempdir");
        let log = open(other.path(), LogConfig::default()).await;
        log.append(bytes(batch(1, 10, 1)), Durability::Written).await.expect("append");
        clock.advance(Duration::from_millis(HOUR_MS * 24 * 365));
        log.append(bytes(batch(1, 10, 3)), Durability::Written).await.expect("append");
        assert_eq!(log.stats().rolls, 0, "no segment.ms: no roll");
        log.close().await.expect("close");
    });
}

#[test]
fn delete_records_moves_the_start_and_deletes_whole_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    block_on(async move {
        let log = open(&path, small_segments()).await;
        for i in 0..40u8 {
            log.append(bytes(batch(2, 150, i)), Durability::Written).await.expect("append");
        }
        let hw = log.high_watermark();
        let segments = files_with(&path, "log").len();
        assert_eq!(log.delete_records(55).await.expect("delete"), 55);
        assert_eq!(log.log_start_offset(), 55);
        assert!(files_with(&path, "log").len() < segments, "segments below 55 deleted");
        assert!(matches!(log.read(54, 100).await, Err(EngineError::OffsetOutOfRange { start: 55, .. })));
        assert!(log.read(55, 100).await.is_ok());
        assert_eq!(log.delete_records(10).await.expect("below start"), 55);
        assert!(matches!(log.delete_records(hw + 1).await, Err(EngineError::OffsetOutOfRange { .. })));
        log.close().await.expect("close");

        let log = open(&path, small_segments()).await;
        assert_eq!(log.log_start_offset(), 55, "persisted");
        assert_eq!(log.delete_records(-1).await.expect("to the end"), hw);
        assert_eq!(files_with(&path, "log").len(), 1, "only the active segment is left");
        let info = log.append(bytes(batch(1, 10, 1)), Durability::Synced).await.expect("append");
        assert_eq!(info.base_offset, hw);
        assert_eq!(log.read(hw, 100).await.expect("read").len(), 71);
        log.close().await.expect("close");
        let log = open(&path, small_segments()).await;
        assert_eq!((log.log_start_offset(), log.high_watermark()), (hw, hw + 1));
        log.close().await.expect("close");
    });
}

#[test]
fn tailing_reads_come_from_the_cache_without_disk_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    block_on(async move {
        let log = open(&path, LogConfig::default()).await;
        let mut want = Vec::new();
        for i in 0..50u8 {
            let b = batch(2, 300, i);
            let info = log.append(bytes(b.clone()), Durability::Written).await.expect("append");
            let stored = stored(b, info.base_offset);
            // A tailing consumer reads each batch right after it is written.
            let got = log.read(info.base_offset, 1 << 20).await.expect("read");
            assert_eq!(&got[..], &stored[..]);
            want.extend(stored);
        }
        assert_eq!(read_all(&log, 0).await, want);
        let stats = log.stats();
        assert_eq!(stats.disk_reads, 0, "tailing reads did no disk I/O: {stats:?}");
        assert!(stats.cache_hits >= 51, "{stats:?}");
        log.close().await.expect("close");

        // After reopen the cache is empty: reads go to the disk.
        let log = open(&path, LogConfig { cache_bytes: 0, ..LogConfig::default() }).await;
        assert_eq!(read_all(&log, 0).await, want);
        log.append(bytes(batch(1, 10, 1)), Durability::Written).await.expect("append");
        log.read(100, 100).await.expect("read");
        assert!(log.stats().disk_reads >= 2, "no cache: {:?}", log.stats());
        assert_eq!(log.stats().cache_hits, 0);
        log.close().await.expect("close");
    });
}
