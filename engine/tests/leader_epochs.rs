//! The leader epoch cache through the log: batches stamped with the epoch
//! in force when they were appended, each epoch's first offset recorded
//! before its batches are written, and the checkpoint reconciled with the
//! recovered log at open.

mod common;

use common::*;
use weir_engine::batch;
use weir_engine::leader_epochs::{EpochEntry, CHECKPOINT_FILE};
use weir_engine::{Durability, LogConfig, PartitionLog};

fn epochs(log: &PartitionLog) -> Vec<(i32, i64)> {
    log.leader_epochs().iter().map(|e: &EpochEntry| (e.epoch, e.start_offset)).collect()
}

async fn append(log: &PartitionLog, batches: u8) {
    for i in 0..batches {
        log.append(bytes(batch(2, 10, i)), Durability::Written).await.expect("append");
    }
}

#[test]
fn batches_carry_their_leader_epoch_and_each_epochs_start_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let checkpoint = dir.path().join(CHECKPOINT_FILE);
    block_on(async move {
        let log = open(dir.path(), LogConfig::default()).await;
        assert!(epochs(&log).is_empty() && !checkpoint.exists(), "a new log has no epoch yet");
        assert_eq!(log.end_offset_for_epoch(0), (0, 0), "the current epoch ends at the log end");
        append(&log, 3).await;
        log.set_leader_epoch(3);
        append(&log, 2).await;
        assert_eq!(epochs(&log), [(0, 0), (3, 6)]);
        assert_eq!(std::fs::read_to_string(&checkpoint).unwrap(), "0\n2\n0 0\n3 6\n");
        let stored = read_all(&log, 0).await;
        let stamped: Vec<i32> = batches_in(&stored)
            .iter()
            .scan(0, |pos, &(_, _, len)| {
                let header = batch::RawHeader::of(&stored[*pos..]).expect("a header");
                *pos += len;
                Some(header.leader_epoch())
            })
            .collect();
        assert_eq!(stamped, [0, 0, 0, 3, 3]);
        assert_eq!(log.end_offset_for_epoch(0), (0, 6));
        assert_eq!(log.end_offset_for_epoch(2), (0, 6), "an epoch this log never had: the one before it");
        assert_eq!(log.end_offset_for_epoch(3), (3, 10));
        assert_eq!(log.end_offset_for_epoch(4), (-1, -1));
        log.close().await.expect("close");

        let log = open(dir.path(), LogConfig::default()).await;
        assert_eq!((epochs(&log), log.leader_epoch()), (vec![(0, 0), (3, 6)], 3));
        log.close().await.expect("close");
    });
}

#[test]
fn a_checkpoint_past_the_recovered_end_is_cut_back_and_a_missing_one_means_epoch_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let checkpoint = dir.path().join(CHECKPOINT_FILE);
    block_on(async move {
        let log = open(dir.path(), LogConfig::default()).await;
        append(&log, 3).await;
        log.close().await.expect("close");
        // The checkpoint is written before a new epoch's batches; a crash
        // between the two leaves an epoch the log never got.
        std::fs::write(&checkpoint, "0\n2\n0 0\n5 6\n").unwrap();
        let log = open(dir.path(), LogConfig::default()).await;
        assert_eq!((epochs(&log), log.leader_epoch()), (vec![(0, 0)], 0));
        assert_eq!(std::fs::read_to_string(&checkpoint).unwrap(), "0\n1\n0 0\n");
        log.close().await.expect("close");
        // A log written before Weir kept epochs, or an unreadable checkpoint:
        // every batch was stamped 0.
        for replaced in [None, Some("garbage")] {
            match replaced {
                None => std::fs::remove_file(&checkpoint).unwrap(),
                Some(text) => std::fs::write(&checkpoint, text).unwrap(),
            }
            let log = open(dir.path(), LogConfig::default()).await;
            assert_eq!(epochs(&log), [(0, 0)]);
            assert_eq!(std::fs::read_to_string(&checkpoint).unwrap(), "0\n1\n0 0\n");
            log.close().await.expect("close");
        }
    });
}

#[test]
fn deleting_records_moves_the_first_epoch_up_to_the_new_log_start_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let checkpoint = dir.path().join(CHECKPOINT_FILE);
    block_on(async move {
        let log = open(dir.path(), small_segments()).await;
        append(&log, 3).await;
        log.set_leader_epoch(3);
        append(&log, 3).await;
        assert_eq!(epochs(&log), [(0, 0), (3, 6)]);
        log.delete_records(4).await.expect("delete records");
        assert_eq!(epochs(&log), [(0, 4), (3, 6)]);
        assert_eq!(std::fs::read_to_string(&checkpoint).unwrap(), "0\n2\n0 4\n3 6\n");
        log.delete_records(8).await.expect("delete records");
        assert_eq!(epochs(&log), [(3, 8)]);
        assert_eq!(std::fs::read_to_string(&checkpoint).unwrap(), "0\n1\n3 8\n");
        assert_eq!(log.end_offset_for_epoch(0), (0, 8), "an epoch before the first ends where that one starts (Kafka)");
        log.close().await.expect("close");
    });
}
