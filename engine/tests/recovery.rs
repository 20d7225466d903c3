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

    // A flipped byte in the last batch: cut at its start. The file keeps its
    // length, so the clean-shutdown marker matches it: the check of the
    // batches after the last index entry is what catches this.
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(base.path(), dir.path());
    let seg = segment_file(dir.path());
    let mut data = std::fs::read(&seg).expect("read");
    data[(last.0 + 70) as usize] ^= 0x01;
    std::fs::write(&seg, &data).expect("write");
    let before_last = bounds[bounds.len() - 2];
    check_recovers(dir.path(), &all, before_last.1 as usize, before_last.2, "flipped byte");

    // A whole valid batch whose offsets go back (stale bytes): cut. (One
    // that starts later is kept: a follower's copy of a compacted log has
    // gaps, and CRCs do not cover offsets. Kafka checks the same.)
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(base.path(), dir.path());
    let seg = segment_file(dir.path());
    let mut data = std::fs::read(&seg).expect("read");
    data.extend(stored(batch(1, 10, 9), 1));
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

#[test]
fn a_clean_shutdown_spares_the_scan_and_an_unclean_stop_after_it_does_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (all, bounds) = build(dir.path(), 40);
    let marker = dir.path().join("clean-shutdown");
    assert!(marker.exists(), "a clean close leaves the marker");
    let path = dir.path().to_path_buf();
    let next = bounds.last().expect("batches").2;
    block_on(async move {
        let config = LogConfig { index_interval_bytes: 100, ..LogConfig::default() };
        let log = open(&path, config).await;
        let scanned = log.stats().recovery_scanned_bytes;
        assert!(scanned > 0 && scanned < all.len() as u64 / 4, "only the tail after the last index entry: {scanned}");
        assert!(!marker.exists(), "open removes the marker before accepting writes");
        assert_eq!(log.high_watermark(), next);
        assert_eq!(read_all(&log, 0).await, all, "every batch, read through the reloaded index");
        for &(_, _, after) in &bounds[..bounds.len() - 1] {
            let first = batches_in(&log.read(after, 1).await.expect("read"))[0].0;
            assert_eq!(first, after, "the reloaded index places reads");
        }
        let fresh = batch(3, 70, 77);
        log.append(bytes(fresh.clone()), Durability::Synced).await.expect("append");
        // An unclean stop: the writer is dropped without closing the log.
        drop(log);

        let log = open(&path, config).await;
        assert!(!marker.exists());
        let mut want = all.clone();
        want.extend(stored(fresh, next));
        let scanned = log.stats().recovery_scanned_bytes;
        assert!(scanned >= want.len() as u64, "no marker: the whole segment is scanned ({scanned})");
        assert_eq!(read_all(&log, 0).await, want);
        log.close().await.expect("close");
    });
}

#[test]
fn a_marker_that_does_not_fit_the_segment_is_not_believed() {
    let base = tempfile::tempdir().expect("tempdir");
    let (all, bounds) = build(base.path(), 8);
    let last = *bounds.last().expect("batches");
    // (A damaged last batch under a marker: `zero_padding_and_garbage_after_the_end_are_dropped`.)

    // The marker says the segment ends later than it does (same length, offsets lie).
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(base.path(), dir.path());
    let marker = dir.path().join("clean-shutdown");
    let text = std::fs::read_to_string(&marker).expect("marker");
    let mut words: Vec<String> = text.split_whitespace().map(String::from).collect();
    words[3] = (last.2 + 5).to_string();
    std::fs::write(&marker, words.join(" ")).expect("write marker");
    check_recovers(dir.path(), &all, all.len(), last.2, "marker with a wrong next offset");

    // An unreadable marker.
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(base.path(), dir.path());
    std::fs::write(dir.path().join("clean-shutdown"), b"garbage").expect("write marker");
    check_recovers(dir.path(), &all, all.len(), last.2, "unreadable marker");
}
