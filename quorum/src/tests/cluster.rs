//! Three voters on one executor, each with its stores in its own directory,
//! talking through an in-process network that calls the other nodes' `Raft`
//! handles directly: initialize, write, lose the leader, elect another,
//! write through it, restart the lost node from its directory and watch it
//! catch up.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RPCError, RaftError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::{BasicNode, Config, ServerState, SnapshotPolicy};
use openraft_rt::watch::WatchReceiver;
use openraft_rt::AsyncRuntime;
use weir_runtime::clock;

use super::Counter;
use crate::runtime::WeirRuntime;
use crate::types::{Snapshot, Vote};
use crate::{Command, LogStore, MachineStore, NodeId, Raft, TypeConfig};

/// The nodes that are up, by id; a node missing here is unreachable.
#[derive(Clone, Default)]
struct Network {
    nodes: Rc<RefCell<BTreeMap<u64, Raft<Counter>>>>,
}

/// One node's connection to `target`.
struct Connection {
    network: Network,
    target: u64,
}

impl Connection {
    /// The target's handle, cloned out so no borrow is held across an await.
    fn target(&self) -> Result<Raft<Counter>, Unreachable<TypeConfig>> {
        let nodes = self.network.nodes.borrow();
        let raft = nodes.get(&self.target).cloned();
        raft.ok_or_else(|| Unreachable::from_string(format!("node {} is down", self.target)))
    }
}

fn unreachable<E: std::fmt::Display>(e: E) -> Unreachable<TypeConfig> {
    Unreachable::from_string(e)
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> Connection {
        Connection { network: self.clone(), target: target.get() }
    }
}

impl RaftNetworkV2<TypeConfig> for Connection {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        request: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let target = self.target()?;
        target.append_entries(request).await.map_err(|e| unreachable(e).into())
    }

    async fn vote(
        &mut self,
        request: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let target = self.target()?;
        target.vote(request).await.map_err(|e| unreachable(e).into())
    }

    async fn pre_vote(
        &mut self,
        request: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let target = self.target()?;
        target.pre_vote(request).await.map_err(|e| unreachable(e).into())
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        _cancel: impl Future<Output = ReplicationClosed> + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let target = self.target()?;
        target.install_full_snapshot(vote, snapshot).await.map_err(|e| unreachable(e).into())
    }
}

/// A node's running parts that the test looks at.
struct Node {
    raft: Raft<Counter>,
    machine: MachineStore<Counter>,
}

fn config() -> Arc<Config> {
    let config = Config {
        cluster_name: "test".to_string(),
        heartbeat_interval: 50,
        election_timeout_min: 400,
        election_timeout_max: 800,
        // Snapshot and purge often, so a node that was down may need a
        // snapshot to catch up.
        snapshot_policy: SnapshotPolicy::LogsSinceLast(5),
        max_in_snapshot_log_to_keep: 0,
        purge_batch_size: 1,
        ..Default::default()
    };
    Arc::new(config.validate().expect("a valid config"))
}

async fn start(network: &Network, id: u64, dir: &Path) -> Node {
    let log = LogStore::open(&dir.join("log")).expect("the log opens");
    let machine = MachineStore::open(&dir.join("machine"), Counter::default()).expect("the machine opens");
    let handle = machine.handle();
    let raft = Raft::new(NodeId::new(id), config(), network.clone(), log, machine).await.expect("raft starts");
    network.nodes.borrow_mut().insert(id, raft.clone());
    Node { raft, machine: handle }
}

/// The node every live node agrees leads, once one does.
async fn leader(network: &Network) -> u64 {
    let deadline = clock::now() + Duration::from_secs(20);
    loop {
        let nodes: Vec<(u64, Raft<Counter>)> =
            network.nodes.borrow().iter().map(|(id, raft)| (*id, raft.clone())).collect();
        let views: Vec<_> = nodes
            .iter()
            .map(|(id, raft)| {
                let metrics = raft.metrics().borrow_watched().clone();
                (*id, metrics.state, metrics.current_leader.map(NodeId::get))
            })
            .collect();
        if let Some((leader, _, _)) =
            views.iter().find(|(id, state, led)| *state == ServerState::Leader && *led == Some(*id))
        {
            if views.iter().all(|(_, _, led)| *led == Some(*leader)) {
                return *leader;
            }
        }
        assert!(clock::now() < deadline, "no leader all agree on: {views:?}");
        clock::sleep(Duration::from_millis(20)).await;
    }
}

/// Adds `amount` through the leader; the new total and the entry's index.
/// A leader that lost its
/// lease refuses before it proposes anything, so retrying cannot apply a
/// write twice.
async fn add(network: &Network, amount: u64) -> (u64, u64) {
    for _ in 0..50 {
        let leader = leader(network).await;
        let raft = network.nodes.borrow()[&leader].clone();
        match raft.client_write(Command::encode(&amount).unwrap()).await {
            Ok(written) => return (written.data.decode().unwrap(), written.log_id.index),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                clock::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("the leader failed to write: {e}"),
        }
    }
    panic!("no leader took the write");
}

/// Waits until `node` has applied `index`.
async fn applied(node: &Node, index: u64) {
    node.raft
        .wait(Some(Duration::from_secs(20)))
        .applied_index_at_least(Some(index), "applied")
        .await
        .expect("the node applies the entry");
}

fn dirs(root: &Path) -> BTreeMap<u64, PathBuf> {
    (1..=3).map(|id| (id, root.join(format!("node-{id}")))).collect()
}

#[test]
fn three_voters_fail_over_and_a_restarted_voter_catches_up() {
    let root = tempfile::tempdir().unwrap();
    let dirs = dirs(root.path());
    WeirRuntime::new(1).block_on(async {
        let network = Network::default();
        let mut nodes = BTreeMap::new();
        for (id, dir) in &dirs {
            nodes.insert(*id, start(&network, *id, dir).await);
        }
        let voters: BTreeMap<NodeId, BasicNode> =
            (1..=3).map(|id| (NodeId::new(id), BasicNode::new(format!("node-{id}")))).collect();
        nodes[&1].raft.initialize(voters).await.expect("the cluster forms");

        let (mut total, mut last) = (0, 0);
        for amount in 1..=5 {
            total += amount;
            let (new_total, index) = add(&network, amount).await;
            assert_eq!(new_total, total);
            last = index;
        }
        let first = leader(&network).await;
        let lost_end = last;
        for node in nodes.values() {
            applied(node, last).await;
            assert_eq!(node.machine.read(|c| c.total), total, "every voter applied every write");
        }

        // The leader goes down; the other two elect one of themselves.
        network.nodes.borrow_mut().remove(&first);
        let gone = nodes.remove(&first).unwrap();
        gone.raft.shutdown().await.unwrap();
        drop(gone);
        let second = leader(&network).await;
        assert_ne!(second, first);
        for amount in [100, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1] {
            total += amount;
            let (new_total, index) = add(&network, amount).await;
            assert_eq!(new_total, total);
            last = index;
        }
        for node in nodes.values() {
            applied(node, last).await;
            assert_eq!(node.machine.read(|c| c.total), total, "the survivors applied every write");
        }

        // The survivors snapshot and purge their logs past where the lost
        // node's ends, so it can only catch up through a snapshot.
        nodes[&second]
            .raft
            .wait(Some(Duration::from_secs(20)))
            .metrics(|m| m.purged.as_ref().is_some_and(|p| p.index > lost_end), "purged")
            .await
            .expect("the leader purges its log");

        // The lost node comes back from its directory and catches up.
        let back = start(&network, first, &dirs[&first]).await;
        applied(&back, last).await;
        assert_eq!(back.machine.read(|c| c.total), total, "the restarted voter caught up");
        nodes.insert(first, back);
        assert_eq!(add(&network, 1).await.0, total + 1);

        for node in nodes.values() {
            node.raft.shutdown().await.unwrap();
        }
    });
}
