//! What replication needs of one log: a follower's append that keeps the
//! leader's bytes, offsets (gaps included) and epochs; a high watermark kept
//! apart from the log end, checkpointed, and the limit of consumers' reads.

mod common;

use std::cell::Cell;
use std::rc::Rc;

use common::*;
use weir_engine::batch::{self, BatchBuilder};
use weir_engine::{Durability, EngineError, LogConfig, PartitionLog, ReadLimit};

/// Everything below the log end, as a follower would copy it.
async fn copy_all(log: &PartitionLog) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let bytes = log.read_to(offset, 1 << 20, ReadLimit::LogEnd).await.expect("read");
        offset = batches_in(&bytes).last().expect("non-empty read").1 + 1;
        out.extend_from_slice(&bytes);
    }
    out
}

/// A stored batch of `records` offsets at `base` in leader epoch `epoch`
/// (`records` records, or one record spanning them, as compaction leaves).
fn placed(base: i64, records: i32, epoch: i32, compacted: bool) -> Vec<u8> {
    let header = BatchBuilder { last_offset_delta: records - 1, ..builder(if compacted { 1 } else { records }) };
    let mut b = header.build(&body(40, base as u8));
    batch::patch_header(&mut b, base, epoch);
    b
}

#[test]
fn a_follower_stores_the_leaders_batches_byte_for_byte_with_their_offsets_and_epochs() {
    let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    block_on(async move {
        let leader = open(leader_dir.path(), small_segments()).await;
        for (epoch, batches) in [(0, 4u8), (3, 5), (7, 6)] {
            leader.set_leader_epoch(epoch);
            for i in 0..batches {
                leader.append(bytes(batch(3, 150, i)), Durability::Written).await.unwrap();
            }
        }
        let copied = copy_all(&leader).await;
        let follower = open(follower_dir.path(), small_segments()).await;
        // In fetch-sized pieces, as a follower gets them.
        let mut pos = 0;
        for fetched in batches_in(&copied).chunks(4) {
            let len: usize = fetched.iter().map(|b| b.2).sum();
            let info = follower.append_replicated(bytes(copied[pos..pos + len].to_vec())).await.unwrap();
            assert_eq!((info.base_offset, info.last_offset), (fetched[0].0, fetched[fetched.len() - 1].1));
            pos += len;
        }
        assert_eq!(copy_all(&follower).await, copied, "the same bytes");
        assert_eq!(follower.leader_epochs(), leader.leader_epochs(), "the same epochs, from the batches");
        assert_eq!(follower.log_end_offset(), 45);
        assert!(follower.stats().rolls > 0, "the copy spans segments");
        follower.close().await.unwrap();

        let follower = open(follower_dir.path(), small_segments()).await;
        assert_eq!(copy_all(&follower).await, copied, "and after a restart");
        assert_eq!(follower.leader_epochs(), leader.leader_epochs());
        assert_eq!(follower.end_offset_for_epoch(3), (3, 27));
        leader.close().await.unwrap();
        follower.close().await.unwrap();
    });
}

#[test]
fn a_follower_keeps_the_gaps_of_a_compacted_leader_across_rolls_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async move {
        let config = LogConfig { segment_bytes: 300, ..small_segments() };
        let log = open(dir.path(), config).await;
        let batches = [placed(0, 2, 1, false), placed(5, 3, 1, true), placed(20, 1, 2, false), placed(40, 4, 2, true)];
        for b in &batches {
            log.append_replicated(bytes(b.clone())).await.unwrap();
        }
        let expected = batches.concat();
        assert_eq!(copy_all(&log).await, expected);
        assert_eq!((log.log_end_offset(), log.next_offset()), (44, 44));
        let in_gap = log.read(10, 1 << 20).await.unwrap();
        assert_eq!(batches_in(&in_gap).first().map(|b| b.0), Some(20), "an offset in a gap reads the next batch");
        assert!(log.stats().rolls > 0);
        log.close().await.unwrap();

        // Recovery after an unclean stop scans the active segment: gaps are
        // not damage.
        std::fs::remove_file(dir.path().join("clean-shutdown")).unwrap();
        let log = open(dir.path(), config).await;
        assert_eq!(copy_all(&log).await, expected);
        let appended = log.append(bytes(batch(2, 10, 0)), Durability::Written).await.unwrap();
        assert_eq!(appended.base_offset, 44, "a new leader goes on from the copy's end");
        log.close().await.unwrap();
    });
}

#[test]
fn a_follower_refuses_batches_that_go_back_or_are_damaged() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async move {
        let log = open(dir.path(), LogConfig::default()).await;
        log.append_replicated(bytes(placed(0, 5, 0, false))).await.unwrap();
        let refused = |r: Result<_, EngineError>| matches!(r, Err(EngineError::CorruptMessage(_)));
        assert!(refused(log.append_replicated(bytes(placed(3, 2, 0, false))).await), "overlaps the log");
        let backwards = [placed(10, 5, 0, false), placed(12, 1, 0, false)].concat();
        assert!(refused(log.append_replicated(bytes(backwards)).await), "goes back within the fetch");
        let mut damaged = placed(5, 1, 0, false);
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert!(refused(log.append_replicated(bytes(damaged)).await), "CRC");
        assert!(refused(log.append_replicated(bytes(placed(5, 1, 0, false)[..30].to_vec())).await), "cut short");
        assert!(refused(log.append_replicated(bytes(placed(i64::from(i32::MAX) + 10, 1, 0, false))).await), "gap");
        assert_eq!(log.log_end_offset(), 5, "nothing refused was stored");
        log.append_replicated(bytes(placed(5, 1, 0, false))).await.unwrap();
        log.close().await.unwrap();
    });
}

#[test]
fn consumers_read_below_the_high_watermark_while_followers_read_to_the_log_end() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async move {
        let log = open(dir.path(), LogConfig::default()).await;
        log.append(bytes(batch(2, 10, 0)), Durability::Written).await.unwrap();
        assert_eq!(log.high_watermark(), 2, "alone, the high watermark follows the log end");
        log.set_high_watermark_follows_log_end(false);
        for i in 1..5 {
            log.append(bytes(batch(2, 10, i)), Durability::Written).await.unwrap();
        }
        assert_eq!((log.high_watermark(), log.log_end_offset()), (2, 10));
        assert_eq!(batches_in(&log.read(0, 1 << 20).await.unwrap()).len(), 1, "cached batches past it are cut");
        assert!(log.read(4, 1 << 20).await.unwrap().is_empty(), "between the high watermark and the log end");
        assert!(matches!(log.read(11, 1 << 20).await, Err(EngineError::OffsetOutOfRange { .. })));
        assert_eq!(batches_in(&log.read_to(2, 1 << 20, ReadLimit::LogEnd).await.unwrap()).len(), 4);

        // A parked consumer wakes when the high watermark passes its offset,
        // a follower's wait when the log end does.
        let woke = Rc::new(Cell::new(false));
        let waiter = {
            let (log, woke) = (log.clone(), woke.clone());
            weir_runtime::spawn_local(async move {
                log.wait_beyond(5).await;
                woke.set(true);
            })
        };
        weir_runtime::clock::sleep(std::time::Duration::from_millis(5)).await;
        assert!(!log.advance_high_watermark(1), "never back");
        assert!(log.advance_high_watermark(4));
        weir_runtime::clock::sleep(std::time::Duration::from_millis(5)).await;
        assert!(!woke.get(), "4 is not past 5");
        assert!(log.advance_high_watermark(100), "clamped to the log end");
        assert_eq!(log.high_watermark(), 10);
        waiter.await;
        assert!(woke.get());
        log.wait_beyond_limit(9, ReadLimit::LogEnd).await;
        assert_eq!(batches_in(&log.read(0, 1 << 20).await.unwrap()).len(), 5);
        log.close().await.unwrap();
    });
}

#[test]
fn the_high_watermark_survives_a_restart_and_without_a_checkpoint_starts_at_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("high-watermark");
    block_on(async move {
        let log = open(dir.path(), LogConfig::default()).await;
        log.set_high_watermark_follows_log_end(false);
        for i in 0..4 {
            log.append(bytes(batch(3, 10, i)), Durability::Written).await.unwrap();
        }
        log.advance_high_watermark(6);
        log.checkpoint_high_watermark().await.unwrap();
        assert_eq!(std::fs::read_to_string(&checkpoint).unwrap(), "weir-high-watermark-v1 6\n");
        log.advance_high_watermark(9);
        log.close().await.unwrap();
        assert_eq!(std::fs::read_to_string(&checkpoint).unwrap(), "weir-high-watermark-v1 9\n", "saved at close");

        let log = open(dir.path(), LogConfig::default()).await;
        assert_eq!(log.high_watermark(), 12, "alone it follows the log end");
        log.set_high_watermark_follows_log_end(false);
        assert_eq!(log.high_watermark(), 9, "replicated, it starts where it was saved");
        log.close().await.unwrap();

        std::fs::remove_file(&checkpoint).unwrap();
        let log = open(dir.path(), LogConfig::default()).await;
        log.set_high_watermark_follows_log_end(false);
        assert_eq!(log.high_watermark(), 0, "nothing is known to be on the other replicas");
        log.close().await.unwrap();
    });
}
