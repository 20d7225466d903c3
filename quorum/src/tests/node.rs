//! A one-voter [`QuorumNode`] on a real listener: it leads at once, writes,
//! and after a restart has its state back before any new write.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use openraft_rt::AsyncRuntime;

use super::Counter;
use crate::runtime::WeirRuntime;
use crate::{AskHandler, QuorumConfig, QuorumNode};

fn config(dir: &Path) -> QuorumConfig {
    // A free port: bound by the OS, then released for the node to bind.
    let listen: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    QuorumConfig::new(1, BTreeMap::from([(1, listen)]), listen, dir.to_path_buf())
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
