//! Many appenders on one log: offsets in poll order, group commit, waiters.

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use common::*;
use weir_engine::{Durability, LogConfig};

#[test]
fn concurrent_appends_get_contiguous_offsets_in_poll_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    block_on(async move {
        let log = open(dir.path(), LogConfig::default()).await;
        let mut tasks = Vec::new();
        for i in 0..200u8 {
            let log = log.clone();
            let durability = if i % 3 == 0 { Durability::Synced } else { Durability::Written };
            let b = batch(i32::from(i % 4) + 1, 20 + usize::from(i), i);
            // glommio polls spawned tasks in spawn order.
            tasks.push(weir_runtime::spawn_local(async move {
                let info = log.append(bytes(b.clone()), durability).await.expect("append");
                (info, b)
            }));
        }
        let mut next = 0;
        let mut want = Vec::new();
        for (i, t) in tasks.into_iter().enumerate() {
            let (info, b) = t.await;
            assert_eq!(info.base_offset, next, "task {i}");
            assert_eq!(info.last_offset, next + i64::from(i as u8 % 4));
            next = info.last_offset + 1;
            want.extend(stored(b, info.base_offset));
        }
        assert_eq!(log.high_watermark(), next);
        assert_eq!(read_all(&log, 0).await, want);
        let stats = log.stats();
        assert!(stats.writes < 200, "appends were grouped: {stats:?}");
        assert!(stats.syncs >= 1 && stats.syncs < 67, "Synced appends shared fdatasyncs: {stats:?}");
        log.close().await.expect("close");
    });
}

#[test]
fn appends_are_counted_while_they_wait_for_the_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    block_on(async move {
        let log = open(dir.path(), LogConfig::default()).await;
        let tasks: Vec<_> = (0..3u8)
            .map(|i| {
                let log = log.clone();
                weir_runtime::spawn_local(async move { log.append(bytes(batch(1, 10, i)), Durability::Written).await })
            })
            .collect();
        // glommio polls a new task at once here and runs the writer it woke
        // only at this task's next await: all three wait in the queue.
        assert_eq!(log.queued_appends(), 3);
        for t in tasks {
            t.await.expect("append");
        }
        assert_eq!(log.queued_appends(), 0, "the writer took them all");
        log.close().await.expect("close");
    });
}

#[test]
fn synced_appends_wait_for_fdatasync_and_written_ones_do_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    block_on(async move {
        let log = open(dir.path(), LogConfig::default()).await;
        for i in 0..10 {
            log.append(bytes(batch(1, 10, i)), Durability::Written).await.expect("append");
        }
        assert_eq!(log.stats().syncs, 0, "acks=1 never waits for fdatasync");
        let before = log.stats();
        log.append(bytes(batch(1, 10, 10)), Durability::Synced).await.expect("append");
        let after = log.stats();
        assert_eq!(after.syncs, before.syncs + 1, "the Synced append completed after its fdatasync");
        log.close().await.expect("close");

        let dir2 = tempfile::tempdir().expect("tempdir");
        let config = LogConfig { fsync_every_write: true, ..LogConfig::default() };
        let log = open(dir2.path(), config).await;
        for i in 0..5 {
            log.append(bytes(batch(1, 10, i)), Durability::Written).await.expect("append");
            let s = log.stats();
            assert_eq!(s.syncs, s.writes, "fsync_every_write syncs every group before completing");
        }
        log.close().await.expect("close");
    });
}

#[test]
fn appends_spanning_rolls_in_one_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    block_on(async move {
        let log = open(dir.path(), small_segments()).await;
        let tasks: Vec<_> = (0..60u8)
            .map(|i| {
                let log = log.clone();
                weir_runtime::spawn_local(async move {
                    let b = batch(1, 300, i);
                    (log.append(bytes(b.clone()), Durability::Synced).await.expect("append"), b)
                })
            })
            .collect();
        let mut want = Vec::new();
        for (i, t) in tasks.into_iter().enumerate() {
            let (info, b) = t.await;
            assert_eq!(info.base_offset, i as i64);
            want.extend(stored(b, info.base_offset));
        }
        assert!(log.stats().rolls >= 5);
        assert_eq!(read_all(&log, 0).await, want);
        log.close().await.expect("close");
    });
}

#[test]
fn wait_beyond_resolves_after_an_append_and_on_close() {
    let dir = tempfile::tempdir().expect("tempdir");
    block_on(async move {
        let log = open(dir.path(), LogConfig::default()).await;
        let done = Rc::new(Cell::new(false));
        let waiter = weir_runtime::spawn_local({
            let (log, done) = (log.clone(), done.clone());
            async move {
                log.wait_beyond(0).await;
                done.set(true);
                log.high_watermark()
            }
        });
        weir_runtime::clock::sleep(Duration::from_millis(20)).await;
        assert!(!done.get(), "nothing appended yet");
        log.append(bytes(batch(3, 10, 1)), Durability::Written).await.expect("append");
        assert_eq!(waiter.await, 3);
        // Already beyond: resolves at once.
        log.wait_beyond(2).await;

        // A waiter that gives up (raced with a timer) leaves nothing behind.
        let timed_out = weir_runtime::clock::timeout(Duration::from_millis(10), log.wait_beyond(3)).await;
        assert!(timed_out.is_none());

        let waiter = weir_runtime::spawn_local({
            let log = log.clone();
            async move { log.wait_beyond(100).await }
        });
        weir_runtime::clock::sleep(Duration::from_millis(5)).await;
        log.close().await.expect("close");
        waiter.await;
    });
}
