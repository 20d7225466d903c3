//! [`QuorumNode`]s on real listeners, on one executor: one voter leads at
//! once, writes, and shrugs off malformed connections; three voters form
//! and write through a follower; a late voter catches up from a snapshot;
//! a voter restarted alone (no leader possible) has its state back.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use openraft_rt::AsyncRuntime;
use weir_runtime::net::TcpStream;

use super::Counter;
use crate::runtime::WeirRuntime;
use crate::{AskHandler, QuorumConfig, QuorumNode};

/// Free ports: bound by the OS, then released for the nodes to bind.
fn voters(count: u64) -> BTreeMap<u64, SocketAddr> {
    let listeners: Vec<_> = (0..count).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    (1..).zip(listeners.iter().map(|l| l.local_addr().unwrap())).collect()
}

fn config(dir: &Path) -> QuorumConfig {
    let voters = voters(1);
    QuorumConfig::new(1, voters.clone(), voters[&1], dir.to_path_buf())
}

fn echo() -> AskHandler {
    Rc::new(|question: Vec<u8>| Box::pin(async move { [b"leader heard ".as_slice(), &question].concat() }))
}

/// Starts the node and waits for it to lead; the time that took.
async fn start_and_lead(config: QuorumConfig) -> (QuorumNode<Counter>, Duration) {
    let started = Instant::now();
    let node = QuorumNode::start(config, Counter::default(), echo()).await.expect("the node starts");
    let mut leaders = Box::pin(node.leader_changes());
    let wait = async {
        while let Some(leader) = leaders.next().await {
            if leader == Some(1) {
                return;
            }
        }
    };
    weir_runtime::clock::timeout(Duration::from_secs(10), wait).await.expect("the only voter leads");
    assert!(node.is_leader());
    (node, started.elapsed())
}

#[test]
fn a_single_voter_leads_writes_and_comes_back_with_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    WeirRuntime::new(1).block_on(async {
        let (node, took) = start_and_lead(config.clone()).await;
        println!("a new single-voter quorum led {took:?} after start");
        for amount in 1..=3 {
            node.write(&amount).await.expect("the leader writes");
        }
        assert_eq!(node.write(&4).await, Ok(10));
        assert_eq!(node.ask_leader(b"hello".to_vec()).await.unwrap(), b"leader heard hello");

        // Malformed input closes the connection it came on, nothing more.
        let garbage = [0xff_u8; 16];
        let mut valid_frame_of_garbage = (garbage.len() as u32).to_le_bytes().to_vec();
        valid_frame_of_garbage.extend_from_slice(&crc32c::crc32c(&garbage).to_le_bytes());
        valid_frame_of_garbage.extend_from_slice(&garbage);
        let huge_length = [u32::MAX.to_le_bytes(), [0; 4]].concat();
        let bad_crc = [&4_u32.to_le_bytes()[..], &[0; 4], b"abcd"].concat();
        for malformed in [valid_frame_of_garbage, huge_length, bad_crc] {
            let mut stream = TcpStream::connect(config.listen).await.unwrap();
            stream.write_all(&malformed).await.unwrap();
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).await.unwrap();
            assert!(answer.is_empty(), "the node closed the connection without an answer");
        }
        assert_eq!(node.write(&0).await, Ok(10), "the node still serves");
        node.shutdown().await.unwrap();

        // The committed entries are applied by `start`, before any leader.
        let restarted = QuorumNode::start(config.clone(), Counter::default(), echo()).await.unwrap();
        assert_eq!(restarted.read(|c| c.total), 10, "the state before the restart, before any new write");
        restarted.shutdown().await.unwrap();

        let (node, took) = start_and_lead(config).await;
        println!("a restarted single-voter quorum led {took:?} after start");
        assert_eq!(node.write(&5).await, Ok(15));
        node.shutdown().await.unwrap();
    });
}

/// Writes `amounts` through whichever node follows (so forwarded to the
/// leader), retrying retriable errors until `deadline`; the last total.
async fn write_through_a_follower(nodes: &[QuorumNode<Counter>], amounts: &[u64], deadline: Instant) -> u64 {
    let mut total = 0;
    for amount in amounts {
        loop {
            let follower = nodes.iter().find(|n| n.leader().is_some_and(|l| l != n.id()));
            let written = match follower {
                Some(follower) => follower.write(amount).await,
                None => Err(crate::QuorumError::NoLeader),
            };
            match written {
                Ok(new_total) => {
                    total = new_total;
                    break;
                }
                Err(e) => assert!(e.is_retriable() && Instant::now() < deadline, "{e}"),
            }
            weir_runtime::clock::sleep(Duration::from_millis(50)).await;
        }
    }
    total
}

async fn all_applied(nodes: &[QuorumNode<Counter>], total: u64, deadline: Instant) {
    while nodes.iter().any(|n| n.read(|c| c.total) != total) {
        assert!(Instant::now() < deadline, "every voter applies every write");
        weir_runtime::clock::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn a_late_voter_catches_up_from_a_snapshot_sent_over_tcp() {
    let root = tempfile::tempdir().unwrap();
    let voters = voters(3);
    let config = |id: u64| {
        let mut config = QuorumConfig::new(id, voters.clone(), voters[&id], root.path().join(id.to_string()));
        config.snapshot_every = 3;
        config
    };
    WeirRuntime::new(1).block_on(async {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut nodes = Vec::new();
        for id in 1..=2 {
            nodes.push(QuorumNode::start(config(id), Counter::default(), echo()).await.unwrap());
        }
        let total = write_through_a_follower(&nodes, &[1; 12], deadline).await;
        assert_eq!(total, 12);
        // Node 3 starts once the entries it lacks are purged everywhere: only
        // a snapshot can bring it up to date.
        while !nodes.iter().all(|n| n.metrics().purged.is_some_and(|purged| purged.index >= 3)) {
            assert!(Instant::now() < deadline, "the first two voters purge their logs");
            weir_runtime::clock::sleep(Duration::from_millis(20)).await;
        }
        nodes.push(QuorumNode::start(config(3), Counter::default(), echo()).await.unwrap());
        all_applied(&nodes, total, deadline).await;
        for node in nodes {
            node.shutdown().await.unwrap();
        }
    });
}

#[test]
fn a_voter_restarted_alone_applies_its_committed_entries() {
    let root = tempfile::tempdir().unwrap();
    let voters = voters(3);
    // No snapshot in this test (5000 entries apart): the state comes back
    // from the log alone.
    let config = |id: u64| QuorumConfig::new(id, voters.clone(), voters[&id], root.path().join(id.to_string()));
    WeirRuntime::new(1).block_on(async {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut nodes = Vec::new();
        for id in 1..=3 {
            nodes.push(QuorumNode::start(config(id), Counter::default(), echo()).await.unwrap());
        }
        let total = write_through_a_follower(&nodes, &[1, 2, 3, 4, 5], deadline).await;
        assert_eq!(total, 15);
        let follower = nodes.iter().find(|n| !n.is_leader()).unwrap();
        assert_eq!(follower.ask_leader(b"hi".to_vec()).await.unwrap(), b"leader heard hi");
        all_applied(&nodes, total, deadline).await;
        for node in nodes {
            node.shutdown().await.unwrap();
        }

        // Alone, node 3 cannot be elected nor hear a leader: what it has,
        // it applied from its own log up to the committed id it saved.
        let alone = QuorumNode::start(config(3), Counter::default(), echo()).await.unwrap();
        assert_eq!(alone.read(|c| c.total), total);
        // It may still name the old leader, now gone: retriable either way.
        assert!(alone.write(&1).await.unwrap_err().is_retriable());
        alone.shutdown().await.unwrap();
    });
}
