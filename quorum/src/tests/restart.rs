//! The stores after a crash: reopened from their directory, with the log's
//! tail torn in the ways a crash mid-append leaves it.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use openraft::storage::{IOFlushed, RaftLogReader, RaftLogStorage, RaftSnapshotBuilder, RaftStateMachine};
use openraft::testing::{blank_ent, log_id};
use openraft::EntryPayload;
use openraft_rt::AsyncRuntime;

use super::Counter;
use crate::runtime::WeirRuntime;
use crate::types::{Entry, Vote};
use crate::{Command, LogStore, MachineStore, NodeId, Reply, TypeConfig};

fn run<T>(test: impl std::future::Future<Output = T>) -> T {
    WeirRuntime::new(1).block_on(test)
}

fn add(term: u64, index: u64, amount: u64) -> Entry {
    let payload = EntryPayload::Normal(Command::encode(&amount).unwrap());
    Entry { log_id: log_id::<TypeConfig>(term, NodeId::new(1), index), payload }
}

async fn indexes(log: &mut LogStore) -> Vec<u64> {
    let entries = log.try_get_log_entries(..).await.unwrap();
    entries.iter().map(|e| e.log_id.index).collect()
}

fn log_len(dir: &Path) -> u64 {
    std::fs::metadata(dir.join("raft-log")).unwrap().len()
}

#[test]
fn the_intact_prefix_and_the_vote_survive_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    run(async {
        let mut log = LogStore::open(dir).unwrap();
        let mut entries = vec![blank_ent::<TypeConfig>(1, NodeId::new(1), 0)];
        entries.extend((1..10).map(|i| add(1, i, i)));
        log.append(entries, IOFlushed::noop()).await.unwrap();
        // Entries 8 and 9 are replaced by term 2's.
        log.truncate_after(Some(log_id::<TypeConfig>(1, NodeId::new(1), 7))).await.unwrap();
        log.purge(log_id::<TypeConfig>(1, NodeId::new(1), 2)).await.unwrap();
        log.append((8..10).map(|i| add(2, i, i)), IOFlushed::noop()).await.unwrap();
        log.save_vote(&Vote::new(2, NodeId::new(3))).await.unwrap();
        // Dropped without any close, as a crash leaves it.
    });

    // A crash in the middle of the last record.
    let len = log_len(dir);
    OpenOptions::new().write(true).open(dir.join("raft-log")).unwrap().set_len(len - 3).unwrap();
    let cut = run(async {
        let mut log = LogStore::open(dir).unwrap();
        assert_eq!(indexes(&mut log).await, (3..9).collect::<Vec<_>>(), "entry 9 was torn, the rest stays");
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id::<TypeConfig>(1, NodeId::new(1), 2)));
        assert_eq!(state.last_log_id, Some(log_id::<TypeConfig>(2, NodeId::new(1), 8)));
        assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(2, NodeId::new(3))));
        log_len(dir)
    });
    assert!(cut < len - 3, "the torn record was cut off the file");

    // Garbage after the last whole record (a header written, its payload
    // not).
    OpenOptions::new().append(true).open(dir.join("raft-log")).unwrap().write_all(&[7, 0, 0, 0, 1, 2]).unwrap();
    run(async {
        LogStore::open(dir).unwrap();
        assert_eq!(log_len(dir), cut);
    });
    // A zero-filled tail (the file's size reached the disk, its data did
    // not): a zero length and a zero CRC, which is the CRC of nothing. Then
    // an append after the cut: it must come back too.
    OpenOptions::new().append(true).open(dir.join("raft-log")).unwrap().write_all(&[0; 4096]).unwrap();
    run(async {
        let mut log = LogStore::open(dir).unwrap();
        assert_eq!(log_len(dir), cut);
        log.append([add(2, 9, 9)], IOFlushed::noop()).await.unwrap();
    });
    run(async {
        let mut log = LogStore::open(dir).unwrap();
        assert_eq!(indexes(&mut log).await, (3..10).collect::<Vec<_>>());
        let entries = log.try_get_log_entries(8..10).await.unwrap();
        assert!(entries.iter().all(|e| e.log_id.leader_id.term == 2), "the truncated term-1 entries stay gone");
    });
}

#[test]
fn a_corrupt_record_in_the_middle_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let first_len = run(async {
        let mut log = LogStore::open(dir).unwrap();
        log.append([add(1, 0, 1)], IOFlushed::noop()).await.unwrap();
        let first_len = log_len(dir);
        log.append([add(1, 1, 1), add(1, 2, 1)], IOFlushed::noop()).await.unwrap();
        first_len
    });
    let intact = std::fs::read(dir.join("raft-log")).unwrap();
    // A byte of the second record's payload, then of its length: either
    // way the third record stays whole after it, so this is rot, not a
    // torn write.
    for flipped in [first_len as usize + 9, first_len as usize] {
        let mut bytes = intact.clone();
        bytes[flipped] ^= 0xff;
        std::fs::write(dir.join("raft-log"), &bytes).unwrap();
        let error = LogStore::open(dir).err().expect("the log refuses to open");
        let message = error.to_string();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
        assert!(message.contains("raft-log") && message.contains(&format!("byte {first_len}")), "{message}");
        assert_eq!(std::fs::read(dir.join("raft-log")).unwrap(), bytes, "a refused log is left as it was");
    }
    // The same damage in the last record is a torn tail: cut, the rest kept.
    let mut bytes = intact.clone();
    let last = bytes.len() - 2;
    bytes[last] ^= 0xff;
    std::fs::write(dir.join("raft-log"), &bytes).unwrap();
    run(async {
        let mut log = LogStore::open(dir).unwrap();
        assert_eq!(indexes(&mut log).await, vec![0, 1]);
    });
}

#[test]
fn the_committed_log_id_survives_a_restart_and_a_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    run(async {
        let mut log = LogStore::open(dir).unwrap();
        assert_eq!(log.read_committed().await.unwrap(), None);
        log.append((0..10).map(|i| add(1, i, 1)), IOFlushed::noop()).await.unwrap();
        // Many marks: only the last counts, the rest are dead records.
        for mark in 0..1200 {
            let index = (mark / 100).min(9);
            log.save_committed(Some(log_id::<TypeConfig>(1, NodeId::new(1), index))).await.unwrap();
        }
        assert_eq!(log.read_committed().await.unwrap(), Some(log_id::<TypeConfig>(1, NodeId::new(1), 9)));
    });
    // The dead marks made the file be rewritten; the last mark survived it.
    assert!(log_len(dir) < 8 << 10, "the superseded commit marks were dropped");
    run(async {
        let mut log = LogStore::open(dir).unwrap();
        assert_eq!(log.read_committed().await.unwrap(), Some(log_id::<TypeConfig>(1, NodeId::new(1), 9)));
        assert_eq!(indexes(&mut log).await, (0..10).collect::<Vec<_>>());
    });
}

#[test]
fn a_purge_of_most_of_the_log_rewrites_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let before = run(async {
        let mut log = LogStore::open(dir).unwrap();
        log.append((0..1100).map(|i| add(1, i, 1)), IOFlushed::noop()).await.unwrap();
        let before = log_len(dir);
        log.purge(log_id::<TypeConfig>(1, NodeId::new(1), 1049)).await.unwrap();
        before
    });
    assert!(log_len(dir) < before / 10, "the purged entries left the file");
    assert!(!dir.join("raft-log.tmp").exists());
    run(async {
        let mut log = LogStore::open(dir).unwrap();
        assert_eq!(indexes(&mut log).await, (1050..1100).collect::<Vec<_>>());
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id::<TypeConfig>(1, NodeId::new(1), 1049)));
        log.append([add(1, 1100, 1)], IOFlushed::noop()).await.unwrap();
    });
    run(async {
        let mut log = LogStore::open(dir).unwrap();
        assert_eq!(indexes(&mut log).await, (1050..1101).collect::<Vec<_>>());
    });
}

#[test]
fn the_state_machine_comes_back_from_its_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    run(async {
        let mut machine = MachineStore::open(dir, Counter::default()).unwrap();
        let entries = vec![blank_ent::<TypeConfig>(1, NodeId::new(1), 0), add(1, 1, 5), add(1, 2, 7)];
        let stream = futures::stream::iter(entries.into_iter().map(|e| Ok((e, None))));
        machine.apply(stream).await.unwrap();
        assert_eq!(machine.read(|c| c.total), 12);
        let snapshot = machine.get_snapshot_builder().await.build_snapshot().await.unwrap();
        assert_eq!(snapshot.meta.last_log_id, Some(log_id::<TypeConfig>(1, NodeId::new(1), 2)));
        // Applied after the snapshot: lost with the process, as the log
        // holds it and openraft applies it again.
        let stream = futures::stream::iter([Ok((add(1, 3, 100), None))]);
        machine.apply(stream).await.unwrap();
    });
    run(async {
        let mut machine = MachineStore::open(dir, Counter::default()).unwrap();
        assert_eq!(machine.read(|c| c.total), 12);
        let (applied, _) = machine.applied_state().await.unwrap();
        assert_eq!(applied, Some(log_id::<TypeConfig>(1, NodeId::new(1), 2)));
        let current = machine.get_current_snapshot().await.unwrap().expect("the saved snapshot");
        assert_eq!(current.snapshot, 12u64.to_le_bytes().to_vec());
    });
    assert_eq!(Reply(postcard::to_stdvec(&3u64).unwrap()).decode::<u64>().unwrap(), 3);
}
