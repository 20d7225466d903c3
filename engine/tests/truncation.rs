//! Truncating a log (a follower's divergent tail), closed or open: whole
//! batches go, the log reopens at the cut with its indexes, epochs and
//! segments in order, and appends continue from there.

mod common;

use std::path::Path;

use common::*;
use weir_engine::index::OffsetIndex;
use weir_engine::storage::power_loss;
use weir_engine::truncation::truncate_closed;
use weir_engine::{Durability, PartitionLog};

const BATCHES: u8 = 40;

/// A closed log of 40 batches of two records (offsets 0..80) over several
/// segments, epoch 0 up to offset 40 and epoch 1 after; returns its bytes.
async fn written_log(dir: &Path) -> Vec<u8> {
    let log = open(dir, small_segments()).await;
    for i in 0..BATCHES {
        if i == BATCHES / 2 {
            log.set_leader_epoch(1);
        }
        log.append(bytes(batch(2, 100, i)), Durability::Written).await.expect("append");
    }
    let all = read_all(&log, 0).await;
    log.close().await.expect("close");
    all
}

fn epochs(log: &PartitionLog) -> Vec<(i32, i64)> {
    log.leader_epochs().iter().map(|e| (e.epoch, e.start_offset)).collect()
}

#[test]
fn truncation_cuts_whole_batches_and_the_log_grows_again_from_the_cut() {
    for cut in [0, 1, 2, 5, 37, 40, 41, 79, 80, 500] {
        let dir = tempfile::tempdir().expect("tempdir");
        block_on(async move {
            let all = written_log(dir.path()).await;
            assert!(files_with(dir.path(), "log").len() > 3, "several segments");
            let end = truncate_closed(dir.path(), cut, &small_segments()).await.expect("truncate");
            // The batch that holds `cut` goes whole.
            let expected = cut.min(80) / 2 * 2;
            assert_eq!(end, expected, "cut {cut}");

            let log = open(dir.path(), small_segments()).await;
            assert_eq!(log.high_watermark(), expected, "cut {cut}");
            let kept: usize = batches_in(&all).iter().filter(|b| b.0 < expected).map(|b| b.2).sum();
            assert_eq!(read_all(&log, 0).await, all[..kept], "cut {cut}");
            let expected_epochs = match expected {
                0 => vec![],
                1..=40 => vec![(0, 0)],
                _ => vec![(0, 0), (1, 40)],
            };
            assert_eq!(epochs(&log), expected_epochs, "cut {cut}");
            let info = log.append(bytes(batch(2, 100, 99)), Durability::Written).await.expect("append");
            assert_eq!(info.base_offset, expected, "cut {cut}");
            log.close().await.expect("close");

            let log = open(dir.path(), small_segments()).await;
            assert_eq!(log.high_watermark(), expected + 2, "cut {cut}");
            let again = read_all(&log, 0).await;
            assert_eq!(again[..kept], all[..kept], "cut {cut}");
            log.close().await.expect("close");
        });
    }
}

#[test]
fn an_open_log_truncates_in_place_and_goes_on_serving() {
    for cut in [0, 3, 41, 79, 80, 500] {
        let dir = tempfile::tempdir().expect("tempdir");
        block_on(async move {
            let all = written_log(dir.path()).await;
            let log = open(dir.path(), small_segments()).await;
            log.set_high_watermark_follows_log_end(false);
            log.advance_high_watermark(60);
            log.write_producer_snapshot(70, b"state at 70").await.expect("snapshot");
            let end = log.truncate_to(cut).await.expect("truncate");
            let expected = cut.min(80) / 2 * 2;
            assert_eq!((end, log.log_end_offset(), log.next_offset()), (expected, expected, expected), "cut {cut}");
            assert_eq!(log.high_watermark(), expected.min(60), "cut {cut}: the high watermark comes down");
            log.advance_high_watermark(expected);
            let kept: usize = batches_in(&all).iter().filter(|b| b.0 < expected).map(|b| b.2).sum();
            assert_eq!(read_all(&log, 0).await, all[..kept], "cut {cut}");
            let snapshot = log.read_producer_snapshot().await.expect("read snapshot");
            assert_eq!(snapshot.is_some(), expected >= 70, "cut {cut}: snapshots past the end go");
            assert_eq!(epochs(&log).last().map(|e| e.0), (expected > 0).then_some(if expected > 40 { 1 } else { 0 }));
            let info = log.append(bytes(batch(2, 100, 99)), Durability::Written).await.expect("append");
            assert_eq!(info.base_offset, expected, "cut {cut}");
            log.close().await.expect("close");

            let log = open(dir.path(), small_segments()).await;
            assert_eq!(log.log_end_offset(), expected + 2, "cut {cut}: and after a restart");
            log.close().await.expect("close");
        });
    }
}

#[test]
fn a_sealed_segment_cut_keeps_indexes_that_match_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    block_on(async move {
        let all = written_log(dir.path()).await;
        let second = files_with(dir.path(), "log")[1].clone();
        let first_segment_end: i64 = second.file_stem().unwrap().to_str().unwrap().parse().unwrap();
        let cut = first_segment_end - 3;
        let end = truncate_closed(dir.path(), cut, &small_segments()).await.expect("truncate");
        assert_eq!(end, cut / 2 * 2);
        // The first segment stays sealed, with index files, and an empty
        // active segment starts at the cut.
        let logs: Vec<String> =
            files_with(dir.path(), "log").iter().map(|p| p.file_name().unwrap().to_string_lossy().into()).collect();
        assert_eq!(logs, [format!("{:020}.log", 0), format!("{end:020}.log")]);
        let index = std::fs::read(dir.path().join(format!("{:020}.index", 0))).expect("the sealed segment's index");
        let log_len = std::fs::metadata(dir.path().join(format!("{:020}.log", 0))).unwrap().len();
        let entries = OffsetIndex::decode(&index, log_len).expect("an index that fits the cut segment");
        assert!(entries.last().is_some_and(|e| i64::from(e.relative_offset) < end), "no entry past the cut");
        let log = open(dir.path(), small_segments()).await;
        // Reads from the middle of the cut segment go through its index.
        let from_middle = log.read(end - 4, 1 << 20).await.expect("read");
        assert_eq!(batches_in(&from_middle).first().map(|b| b.0), Some(end - 4));
        let kept: usize = batches_in(&all).iter().filter(|b| b.0 < end).map(|b| b.2).sum();
        assert_eq!(read_all(&log, 0).await, all[..kept]);
        log.close().await.expect("close");
    });
}

#[test]
fn a_power_cut_after_any_sync_of_a_truncation_leaves_a_whole_log() {
    // The cut is in the first (sealed) segment, so every later segment is
    // removed, the first is cut and re-indexed and a new active one starts.
    const CUT: i64 = 5;
    for syncs in 0.. {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("log");
        std::fs::create_dir(&dir).expect("log dir");
        let (all, cut) = block_on(async {
            let all = written_log(&dir).await;
            power_loss::record(&dir).expect("record");
            power_loss::cut_after(&dir, syncs);
            assert_eq!(truncate_closed(&dir, CUT, &small_segments()).await.expect("truncate"), 4);
            (all, power_loss::take_cut(&dir))
        });
        let Some(state) = cut else {
            assert!(syncs > 5, "a truncation of several segments takes more than {syncs} syncs");
            break; // the truncation was over before this sync
        };
        power_loss::restore(&dir, &state).expect("restore");
        block_on(async {
            let log = open(&dir, small_segments()).await;
            let end = log.high_watermark();
            assert!((4..=80).contains(&end), "cut after sync {syncs}: the log ends at {end}");
            let kept: usize = batches_in(&all).iter().filter(|b| b.0 < end).map(|b| b.2).sum();
            assert_eq!(read_all(&log, 0).await, all[..kept], "cut after sync {syncs}: a whole prefix of the log");
            log.close().await.expect("close");
            // Cutting again after the restart finishes the job.
            assert_eq!(truncate_closed(&dir, CUT, &small_segments()).await.expect("truncate again"), 4);
            let log = open(&dir, small_segments()).await;
            assert_eq!(log.high_watermark(), 4, "cut after sync {syncs}");
            log.close().await.expect("close");
        });
    }
}
