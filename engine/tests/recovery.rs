//! Crash recovery: the active segment cut (or damaged) anywhere comes back as
//! the longest prefix of whole, valid batches, durably.

mod common;

use std::path::Path;

use common::*;
use weir_engine::{Durability, LogConfig};

/// Builds a one-segment log of `n` batches and returns the stored bytes and
/// each batch's (start position, end position, next offset after it).
fn build(dir: &Path, n: u8) -> (Vec<u8>, Vec<(u64, u64, i64)>) {
    let path = dir.to_path_buf();
    block_on(async move {
        let log = open(&path, LogConfig { index_interval_bytes: 100, ..LogConfig::default() }).await;
        let mut bounds = Vec::new();
        let mut pos = 0u64;
        for i in 0..n {
            let b = batch(i32::from(i % 3) + 1, 40 + 11 * usize::from(i), i);
            let info = log.append(bytes(b.clone()), Durability::Written).await.expect("append");
            bounds.push((pos, pos + b.len() as u64, info.last_offset + 1));
            pos += b.len() as u64;
        }
        let all = read_all(&log, 0).await;
        log.close().await.expect("close");
        (all, bounds)
    })
}

fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
    }
}

fn segment_file(dir: &Path) -> std::path::PathBuf {
    files_with(dir, "log").pop().expect("a segment")
}

/// Opens the damaged log in `dir`, expects it to hold exactly `keep` bytes
/// (ending at offset `next`), appends one batch, and checks that a second
/// reopen shows the prefix plus that batch and nothing of the cut tail.
fn check_recovers(dir: &Path, all: &[u8], keep: usize, next: i64, what: &str) {
    let path = dir.to_path_buf();
    let prefix = all[..keep].to_vec();
    let what = what.to_string();
    block_on(async move {
        let log = open(&path, LogConfig::default()).await;
        assert_eq!(log.high_watermark(), next, "{what}: high watermark");
        assert_eq!(read_all(&log, 0).await, prefix, "{what}: surviving bytes");
        let fresh = batch(2, 33, 200);
        let info = log.append(bytes(fresh.clone()), Durability::Synced).await.expect("append after recovery");
        assert_eq!(info.base_offset, next, "{what}: appends continue after the last whole batch");
        log.close().await.expect("close");

        let log = open(&path, LogConfig::default()).await;
        assert_eq!(log.high_watermark(), next + 2, "{what}: second reopen");
        let mut want = prefix.clone();
        want.extend(stored(fresh, next));
        assert_eq!(read_all(&log, 0).await, want, "{what}: the cut tail never comes back");
        log.close().await.expect("close");
    });
}

#[test]
fn cut_at_every_byte_of_the_last_batch_and_inside_earlier_ones() {
    let base = tempfile::tempdir().expect("tempdir");
    let (all, bounds) = build(base.path(), 12);
    let seg_name = segment_file(base.path()).file_name().expect("name").to_owned();
    let mut cuts: Vec<u64> = (bounds[11].0..=bounds[11].1).collect();
    for &(start, end, _) in &bounds[..11] {
        cuts.extend([start, start + 1, start + 12, start + 60, end - 1]);
    }
    cuts.sort_unstable();
    cuts.dedup();
    for cut in cuts {
        // The longest run of whole batches that ends at or before `cut`.
        let (keep, next) = bounds.iter().rev().find(|b| b.1 <= cut).map(|b| (b.1 as usize, b.2)).unwrap_or((0, 0));
        let dir = tempfile::tempdir().expect("tempdir");
        copy_dir(base.path(), dir.path());
        let f = std::fs::OpenOptions::new().write(true).open(dir.path().join(&seg_name)).expect("open segment");
        f.set_len(cut).expect("cut");
        drop(f);
        check_recovers(dir.path(), &all, keep, next, &format!("cut at {cut}"));
    }
}

#[test]
fn zero_padding_and_garbage_after_the_end_are_dropped() {
    let base = tempfile::tempdir().expect("tempdir");
    let (all, bounds) = build(base.path(), 5);
    let last = *bounds.last().expect("batches");

    // Zero padding, as an aligned write leaves it.
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(base.path(), dir.path());
    let seg = segment_file(dir.path());
    std::fs::OpenOptions::new().write(true).open(&seg).expect("open").set_len(8192).expect("pad");
    check_recovers(dir.path(), &all, all.len(), last.2, "zero padding");
    assert!(std::fs::metadata(&seg).expect("stat").len() < 8192, "padding cut");

    // A flipped byte in the last batch: cut at its start.
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(base.path(), dir.path());
    let seg = segment_file(dir.path());
    let mut data = std::fs::read(&seg).expect("read");
    data[(last.0 + 70) as usize] ^= 0x01;
    std::fs::write(&seg, &data).expect("write");
    let before_last = bounds[bounds.len() - 2];
    check_recovers(dir.path(), &all, before_last.1 as usize, before_last.2, "flipped byte");

    // A whole valid batch whose offset does not follow (stale bytes): cut.
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(base.path(), dir.path());
    let seg = segment_file(dir.path());
    let mut data = std::fs::read(&seg).expect("read");
    data.extend(stored(batch(1, 10, 9), 1000));
    std::fs::write(&seg, &data).expect("write");
    check_recovers(dir.path(), &all, all.len(), last.2, "stale batch");
}

#[test]
fn cut_in_the_last_of_several_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    let (all, hw) = block_on({
        let path = path.clone();
        async move {
            let log = open(&path, small_segments()).await;
            for i in 0..30u8 {
                log.append(bytes(batch(1, 150, i)), Durability::Written).await.expect("append");
            }
            let all = read_all(&log, 0).await;
            let hw = log.high_watermark();
            log.close().await.expect("close");
            (all, hw)
        }
    });
    let seg = segment_file(&path);
    let len = std::fs::metadata(&seg).expect("stat").len();
    assert!(len > 211, "last segment holds at least one batch");
    let f = std::fs::OpenOptions::new().write(true).open(&seg).expect("open");
    f.set_len(len - 5).expect("cut");
    drop(f);
    // Each batch is 61 + 150 = 211 bytes and holds one offset.
    check_recovers(&path, &all, all.len() - 211, hw - 1, "cut in last segment");
}
