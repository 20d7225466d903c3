//! Produce and fetch through one `PartitionLog`: offsets, KIP-74 sizing,
//! out-of-range reads, validation, segment rolls and clean reopen.

mod common;

use common::*;
use weir_engine::batch::BatchBuilder;
use weir_engine::{Durability, EngineError, LogConfig};

#[test]
fn append_read_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    block_on(async move {
        let log = open(dir.path(), LogConfig::default()).await;
        assert_eq!((log.log_start_offset(), log.high_watermark()), (0, 0));
        let mut expected = Vec::new();
        let mut next = 0i64;
        for i in 0..20u8 {
            let records = i32::from(i % 4) + 1;
            let b = batch(records, 50 + 37 * usize::from(i), i);
            let info = log.append(bytes(b.clone()), Durability::Written).await.expect("append");
            assert_eq!(info.base_offset, next);
            assert_eq!(info.last_offset, next + i64::from(records) - 1);
            expected.push((next, info.last_offset, stored(b, next)));
            next = info.last_offset + 1;
            assert_eq!(log.high_watermark(), next);
        }
        // Several batches in one append.
        let (a, b) = (batch(2, 10, 100), batch(3, 20, 101));
        let mut both = a.clone();
        both.extend_from_slice(&b);
        let info = log.append(bytes(both), Durability::Synced).await.expect("append two");
        assert_eq!((info.base_offset, info.last_offset), (next, next + 4));
        expected.push((next, next + 1, stored(a, next)));
        expected.push((next + 2, next + 4, stored(b, next + 2)));
        let hw = next + 5;
        assert_eq!(log.high_watermark(), hw);

        let all: Vec<u8> = expected.iter().flat_map(|e| e.2.clone()).collect();
        assert_eq!(log.read(0, 1 << 20).await.expect("read all"), all);
        // Every offset: the read starts with the batch holding it.
        for (first, last, bytes) in &expected {
            for offset in *first..=*last {
                let got = log.read(offset, 0).await.expect("read one");
                assert_eq!(&got[..], &bytes[..], "offset {offset}: max_bytes 0 still returns one whole batch");
                let got = log.read(offset, bytes.len() + 1).await.expect("read one");
                assert_eq!(&got[..], &bytes[..], "a second batch does not fit");
            }
        }
        // max_bytes exactly two batches.
        let two = expected[3].2.len() + expected[4].2.len();
        let got = log.read(expected[3].0, two).await.expect("read two");
        assert_eq!(batches_in(&got).len(), 2);
        assert_eq!(&got[..], &[expected[3].2.clone(), expected[4].2.clone()].concat()[..]);
        // Reading at the high watermark: empty. Beyond, or before the start: out of range.
        assert!(log.read(hw, 1000).await.expect("read at hw").is_empty());
        for bad in [-1, hw + 1, i64::MAX] {
            match log.read(bad, 1000).await {
                Err(EngineError::OffsetOutOfRange { requested, start: 0, end }) => {
                    assert_eq!((requested, end), (bad, hw));
                }
                other => panic!("offset {bad}: expected OffsetOutOfRange, got {other:?}"),
            }
        }
        log.close().await.expect("close");
        assert!(matches!(log.append(bytes(batch(1, 1, 0)), Durability::Written).await, Err(EngineError::Closed)));
        assert!(matches!(log.read(0, 100).await, Err(EngineError::Closed)));
    });
}

/// A batch's header alone claims its offsets (records are not counted), so
/// one payload of four 4 KiB batches claiming 2^31 - 1 offsets each once
/// overflowed the segment's u32 relative offsets at an index entry and
/// panicked the writer. Such payloads, and batches whose offsets and record
/// count disagree, are INVALID_RECORD, as in Kafka.
#[test]
fn batches_claiming_offsets_without_records_are_invalid() {
    let dir = tempfile::tempdir().expect("tempdir");
    block_on(async move {
        let log = open(dir.path(), LogConfig::default()).await;
        let claiming = |records: i32, last_offset_delta: i32| {
            BatchBuilder { last_offset_delta, ..builder(records) }.build(&body(4100, 4))
        };
        let huge = claiming(i32::MAX, i32::MAX - 1);
        let invalid = [
            ("sparse offsets", claiming(1, i32::MAX)),
            ("no records", claiming(0, 0)),
            ("four huge claims", [huge.clone(), huge.clone(), huge.clone(), huge].concat()),
        ];
        for (what, records) in invalid {
            match log.append(bytes(records), Durability::Synced).await {
                Err(EngineError::InvalidRecord(_)) => {}
                other => panic!("{what}: expected InvalidRecord, got {other:?}"),
            }
        }
        assert_eq!(log.high_watermark(), 0);
        let info = log.append(bytes(batch(2, 30, 5)), Durability::Synced).await.expect("a valid batch");
        assert_eq!((info.base_offset, info.last_offset), (0, 1));
        log.close().await.expect("close");
    });
}

#[test]
fn invalid_batches_are_rejected_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    block_on(async move {
        let config = LogConfig { max_batch_bytes: 1000, ..LogConfig::default() };
        let log = open(dir.path(), config).await;
        let good = batch(3, 100, 1);
        log.append(bytes(good.clone()), Durability::Written).await.expect("append");
        let before = read_all(&log, 0).await;

        let mut bad_crc = good.clone();
        bad_crc[100] ^= 0x40;
        let mut bad_magic = good.clone();
        bad_magic[16] = 1;
        let truncated = good[..good.len() - 1].to_vec();
        let header_only = good[..40].to_vec();
        let mut short_len = good.clone();
        short_len[8..12].copy_from_slice(&10i32.to_be_bytes());
        let mut neg_count = good.clone();
        neg_count[57..61].copy_from_slice(&(-1i32).to_be_bytes());
        // One good batch followed by a bad one: the whole payload is rejected.
        let good_then_bad = [good.clone(), bad_crc.clone()].concat();
        let good_then_partial = [good.clone(), good[..70].to_vec()].concat();
        let corrupt = [
            ("crc", bad_crc),
            ("magic", bad_magic),
            ("truncated", truncated),
            ("header only", header_only),
            ("short length", short_len),
            ("negative count", neg_count),
            ("good then bad", good_then_bad),
            ("good then partial", good_then_partial),
            ("empty", Vec::new()),
        ];
        for (what, records) in corrupt {
            match log.append(bytes(records), Durability::Synced).await {
                Err(EngineError::CorruptMessage(_)) => {}
                other => panic!("{what}: expected CorruptMessage, got {other:?}"),
            }
        }
        let big = batch(1, 1000, 2);
        match log.append(bytes(big.clone()), Durability::Written).await {
            Err(EngineError::MessageTooLarge(n)) => assert_eq!(n, big.len()),
            other => panic!("expected MessageTooLarge, got {other:?}"),
        }
        let good_then_big = [good.clone(), big].concat();
        assert!(matches!(
            log.append(bytes(good_then_big), Durability::Written).await,
            Err(EngineError::MessageTooLarge(_))
        ));
        assert_eq!(log.high_watermark(), 3);
        assert_eq!(read_all(&log, 0).await, before);
        let info = log.append(bytes(good), Durability::Written).await.expect("append after rejects");
        assert_eq!(info.base_offset, 3);
        log.close().await.expect("close");
    });
}

#[test]
fn segments_roll_and_reads_cross_them_after_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    block_on(async move {
        let log = open(&path, small_segments()).await;
        let mut expected = Vec::new();
        for i in 0..40u8 {
            let b = batch(i32::from(i % 3) + 1, 100 + 13 * usize::from(i % 7), i);
            let info = log.append(bytes(b.clone()), Durability::Written).await.expect("append");
            expected.push((info.base_offset, info.last_offset, stored(b, info.base_offset)));
        }
        let hw = log.high_watermark();
        let check = |log: std::rc::Rc<weir_engine::PartitionLog>, expected: Vec<(i64, i64, Vec<u8>)>| async move {
            let all: Vec<u8> = expected.iter().flat_map(|e| e.2.clone()).collect();
            assert_eq!(read_all(&log, 0).await, all);
            for (first, last, b) in &expected {
                for offset in [*first, *last] {
                    let got = log.read(offset, 1).await.expect("read");
                    assert_eq!(&got[..], &b[..], "offset {offset}");
                }
            }
            // A big read stays inside one segment, never exceeding its limit.
            let got = log.read(0, 1 << 20).await.expect("read");
            assert!(got.len() <= 2000, "one read returns at most one segment");
        };
        check(log.clone(), expected.clone()).await;
        let stats = log.stats();
        assert!(stats.rolls >= 3, "{stats:?}");
        let logs = files_with(&path, "log");
        assert_eq!(logs.len() as u64, stats.rolls + 1);
        assert_eq!(files_with(&path, "index").len(), logs.len() - 1, "sealed segments have an index file");
        for sealed in &logs[..logs.len() - 1] {
            let len = std::fs::metadata(sealed).expect("stat").len();
            assert!(len <= 2000 && len % 4096 != 0, "sealed segment truncated to its logical size ({len})");
        }
        log.close().await.expect("close");

        let log = open(&path, small_segments()).await;
        assert_eq!(log.high_watermark(), hw);
        check(log.clone(), expected.clone()).await;
        log.close().await.expect("close");

        // Missing and garbage index files are rebuilt by scanning.
        let indexes = files_with(&path, "index");
        std::fs::remove_file(&indexes[0]).expect("remove index");
        std::fs::write(&indexes[1], b"garbage").expect("garbage index");
        let log = open(&path, small_segments()).await;
        assert_eq!(log.high_watermark(), hw);
        check(log.clone(), expected.clone()).await;
        let info = log.append(bytes(batch(2, 300, 77)), Durability::Synced).await.expect("append after reopen");
        assert_eq!(info.base_offset, hw);
        log.close().await.expect("close");
    });
}

#[test]
fn clean_reopen_is_byte_identical() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    block_on(async move {
        let config = LogConfig { index_interval_bytes: 512, ..LogConfig::default() };
        let log = open(&path, config).await;
        for i in 0..300u16 {
            let b = batch(i32::from(i % 5) + 1, usize::from(i * 7 % 900), i as u8);
            log.append(bytes(b), if i % 2 == 0 { Durability::Written } else { Durability::Synced })
                .await
                .expect("append");
        }
        let hw = log.high_watermark();
        let before = read_all(&log, 0).await;
        log.close().await.expect("close");
        let seg = &files_with(&path, "log")[0];
        assert_eq!(std::fs::read(seg).expect("read segment"), before, "file is exactly the batches, no padding");

        let log = open(&path, config).await;
        assert_eq!(log.high_watermark(), hw);
        assert_eq!(read_all(&log, 0).await, before);
        // Read from every offset in the middle of the log.
        for offset in (0..hw).step_by(37) {
            let got = log.read(offset, 3000).await.expect("read");
            let first = batches_in(&got)[0];
            assert!(first.0 <= offset && offset <= first.1);
        }
        log.close().await.expect("close");
        log.close().await.expect("second close is a no-op");
    });
}

#[test]
fn open_creates_missing_directories() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nested = dir.path().join("topic-0").join("deeper");
    block_on(async move {
        let log = open(&nested, LogConfig::default()).await;
        log.append(bytes(batch(1, 5, 0)), Durability::Synced).await.expect("append");
        log.close().await.expect("close");
        assert_eq!(files_with(&nested, "log").len(), 1);
    });
}

#[test]
fn io_error_fails_the_affected_appends_and_later_appends_retry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    block_on(async move {
        let log = open(&path, small_segments()).await;
        let mut want = Vec::new();
        // 211-byte batches: nine fit in a 2000-byte segment, the tenth rolls.
        for i in 0..9u8 {
            let b = batch(1, 150, i);
            let info = log.append(bytes(b.clone()), Durability::Written).await.expect("append");
            want.extend(stored(b, info.base_offset));
        }
        assert_eq!(log.high_watermark(), 9);
        // Make the roll fail: a directory squats on the next segment's name.
        let squatter = path.join(format!("{:020}.log", 9));
        std::fs::create_dir(&squatter).expect("squat");
        let tasks: Vec<_> = (0..3u8)
            .map(|i| {
                let log = log.clone();
                weir_runtime::spawn_local(
                    async move { log.append(bytes(batch(1, 150, 50 + i)), Durability::Synced).await },
                )
            })
            .collect();
        for t in tasks {
            match t.await {
                Err(EngineError::Io(_)) => {}
                other => panic!("expected an I/O error, got {other:?}"),
            }
        }
        assert_eq!(log.high_watermark(), 9, "nothing became visible");
        assert_eq!(read_all(&log, 0).await, want);
        std::fs::remove_dir(&squatter).expect("unsquat");
        let b = batch(2, 150, 99);
        let info = log.append(bytes(b.clone()), Durability::Synced).await.expect("retry succeeds");
        assert_eq!(info.base_offset, 9, "failed appends gave their offsets back");
        want.extend(stored(b, 9));
        log.close().await.expect("close");

        let log = open(&path, small_segments()).await;
        assert_eq!(log.high_watermark(), 11);
        assert_eq!(read_all(&log, 0).await, want);
        log.close().await.expect("close");
    });
}

#[test]
fn disk_reads_return_whole_batches_for_every_offset_and_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    block_on(async move {
        // No cache: every read goes to the disk. Batch sizes from tiny to
        // larger than a read window, so reads skip, stop at and re-read.
        let log = open(dir.path(), LogConfig { cache_bytes: 0, ..LogConfig::default() }).await;
        let mut expected = Vec::new();
        for i in 0..30u8 {
            let body = [40usize, 5_000, 70_000, 300_000, 900][usize::from(i) % 5] + usize::from(i);
            let b = batch(i32::from(i % 3) + 1, body, i);
            let info = log.append(bytes(b.clone()), Durability::Written).await.expect("append");
            expected.push((info.base_offset, info.last_offset, stored(b, info.base_offset)));
        }
        let total: usize = expected.iter().map(|e| e.2.len()).sum();
        for (i, (first, last, _)) in expected.iter().enumerate() {
            for offset in [*first, *last] {
                for max_bytes in [0, 1, 4_000, 100_000, 1 << 20, 16 << 20] {
                    let got = log.read(offset, max_bytes).await.expect("read");
                    // Whole batches, from the one holding `offset`, in order.
                    let mut at = 0;
                    for e in &expected[i..] {
                        if at == got.len() {
                            break;
                        }
                        assert_eq!(&got[at..at + e.2.len()], &e.2[..], "offset {offset}, max {max_bytes}");
                        at += e.2.len();
                    }
                    assert_eq!(at, got.len(), "offset {offset}, max {max_bytes}: ends at a batch end");
                    assert!(got.len() <= max_bytes.max(expected[i].2.len()), "offset {offset}, max {max_bytes}");
                }
            }
        }
        assert_eq!(log.read(0, 16 << 20).await.expect("read all").len(), total, "one read takes up to max_bytes");
        assert_eq!(log.stats().cache_hits, 0);
        log.close().await.expect("close");
    });
}
