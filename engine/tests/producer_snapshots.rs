//! Producer state snapshots: the newest intact one at or below the log end
//! is read back, damaged ones are skipped, only the newest three are kept,
//! and those above the recovered end are removed when the log opens.

mod common;

use common::*;
use std::path::Path;
use weir_engine::{Durability, LogConfig};

fn snapshot_offsets(dir: &Path) -> Vec<i64> {
    files_with(dir, "snapshot").iter().map(|p| p.file_stem().unwrap().to_str().unwrap().parse().unwrap()).collect()
}

#[test]
fn the_newest_intact_snapshot_is_read_and_old_ones_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    block_on(async move {
        let log = open(&path, LogConfig::default()).await;
        assert_eq!(log.read_producer_snapshot().await.unwrap(), None);
        for i in 0..5u8 {
            log.append(bytes(batch(2, 30, i)), Durability::Written).await.unwrap();
            log.write_producer_snapshot(log.high_watermark(), &[i; 3]).await.unwrap();
        }
        assert_eq!(snapshot_offsets(&path), vec![6, 8, 10], "the newest three are kept");
        assert_eq!(log.read_producer_snapshot().await.unwrap(), Some((10, vec![4; 3])));

        let newest = path.join(format!("{:020}.snapshot", 10));
        let mut damaged = std::fs::read(&newest).unwrap();
        *damaged.last_mut().unwrap() ^= 1;
        std::fs::write(&newest, damaged).unwrap();
        assert_eq!(log.read_producer_snapshot().await.unwrap(), Some((8, vec![3; 3])), "the damaged one is skipped");
        std::fs::write(&newest, b"short").unwrap();
        assert_eq!(log.read_producer_snapshot().await.unwrap(), Some((8, vec![3; 3])), "so is a truncated one");
        log.close().await.unwrap();
    });
}

#[test]
fn snapshots_above_the_recovered_end_are_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    block_on(async move {
        let log = open(&path, LogConfig::default()).await;
        for i in 0..3u8 {
            log.append(bytes(batch(2, 30, i)), Durability::Synced).await.unwrap();
            log.write_producer_snapshot(log.high_watermark(), &[i]).await.unwrap();
        }
        log.close().await.unwrap();
    });
    // As after an unclean stop that lost the last batch: the log ends at 4.
    let segment = files_with(dir.path(), "log").pop().unwrap();
    let len = std::fs::metadata(&segment).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&segment).unwrap();
    file.set_len(len - 1).unwrap();
    std::fs::remove_file(dir.path().join("clean-shutdown")).unwrap();
    let path = dir.path().to_path_buf();
    block_on(async move {
        let log = open(&path, LogConfig::default()).await;
        assert_eq!(log.high_watermark(), 4);
        assert_eq!(snapshot_offsets(&path), vec![2, 4], "the snapshot of offset 6 describes a lost batch");
        // Appends past 6 must not bring it back.
        log.append(bytes(batch(4, 30, 9)), Durability::Synced).await.unwrap();
        assert_eq!(log.read_producer_snapshot().await.unwrap(), Some((4, vec![1])));
        log.close().await.unwrap();
    });
}
