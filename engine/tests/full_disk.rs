//! A full file system: appends fail with a storage-full `Io` error, stored
//! data stays intact and readable, and appends succeed again once space is
//! freed. Runs on a 2 MiB tmpfs mounted for the test (needs root; skipped
//! with a message otherwise).

mod common;

use std::path::Path;

use common::small_fs::SmallFs;
use common::*;
use weir_engine::{Durability, EngineError, LogConfig};

fn fill_file(path: &Path, bytes: usize) {
    std::fs::write(path, vec![0x5a; bytes]).expect("filler");
}

#[test]
fn full_disk_fails_appends_keeps_data_and_recovers_when_space_is_freed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(fs) = SmallFs::mount(&dir.path().join("fs"), "2m") else { return };
    let filler = fs.path.join("filler");
    fill_file(&filler, 600 * 1024);
    let log_dir = fs.path.join("topic-0");
    block_on(async move {
        let log = open(&log_dir, LogConfig { segment_bytes: 1 << 20, ..LogConfig::default() }).await;
        let mut want = Vec::new();
        let mut failure = None;
        for i in 0..200u8 {
            // Odd sizes, so the partial last block is never empty.
            let b = batch(3, 30_000 + 77 * usize::from(i), i);
            let durability = if i % 2 == 0 { Durability::Written } else { Durability::Synced };
            match log.append(bytes(b.clone()), durability).await {
                Ok(info) => want.extend(stored(b, info.base_offset)),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let err = failure.expect("the file system filled up");
        assert!(err.is_storage_full(), "a full disk is reported as such: {err:?}");
        assert!(matches!(err, EngineError::Io(_)), "still KAFKA_STORAGE_ERROR");
        assert!(!want.is_empty());
        let hw = log.high_watermark();
        assert_eq!(read_all(&log, 0).await, want, "stored data intact and readable");
        let again = log.append(bytes(batch(1, 50_000, 1)), Durability::Written).await;
        assert!(again.as_ref().is_err_and(|e| e.is_storage_full()), "still full: {again:?}");
        assert_eq!(log.high_watermark(), hw, "failed appends take no offsets");

        std::fs::remove_file(&filler).expect("free space");
        for i in 0..5u8 {
            let b = batch(2, 20_000 + usize::from(i), 100 + i);
            let info = log.append(bytes(b.clone()), Durability::Synced).await.expect("appends resume");
            assert_eq!(info.base_offset, hw + 2 * i64::from(i), "offsets continue without a gap");
            want.extend(stored(b, info.base_offset));
        }
        assert_eq!(read_all(&log, 0).await, want);
        log.close().await.expect("close");
        let log = open(&log_dir, LogConfig { segment_bytes: 1 << 20, ..LogConfig::default() }).await;
        assert_eq!(read_all(&log, 0).await, want, "and after a reopen");
        log.close().await.expect("close");
    });
    drop(fs);
}
