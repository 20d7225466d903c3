//! [`QuorumNode`]: one voter, whole: its stores, its Raft, its listener,
//! and the calls the broker makes (write, ask the leader, who leads).
//!
//! Everything runs on the thread that called [`QuorumNode::start`] (Raft is
//! `!Send`, and so is the node).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use std::time::Duration;

use futures::{Stream, StreamExt};
use openraft::error::{ClientWriteError, InitializeError, LinearizableReadError, RaftError};
use openraft::{BasicNode, Config, RaftMetrics, ReadPolicy, SnapshotPolicy};
use openraft_rt::watch::WatchReceiver;
use openraft_rt::Instant as _;
use serde::{Deserialize, Serialize};
use weir_runtime::net::TcpListener;
use weir_runtime::Task;

use crate::network::{self, AskHandler, Network, Peer, Request, Response, Server};
use crate::{Command, LogStore, MachineStore, NodeId, QuorumConfig, Raft, Reply, StateMachine, TypeConfig};

/// Idle connections kept per peer for forwarded requests; more concurrent
/// requests open more, closed after use.
const IDLE_CONNECTIONS_PER_PEER: usize = 4;
/// How often a learner asks again to be added while no leader answers.
const JOIN_RETRY: Duration = Duration::from_millis(500);

/// A replica's progress as the leader sees it (Kafka's DescribeQuorum
/// ReplicaState).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaProgress {
    pub id: u64,
    /// One past the last log index it holds; `None` while not known.
    pub log_end: Option<u64>,
    /// How long ago the leader last heard from it; `None`: never, or the
    /// leader itself.
    pub last_heard: Option<Duration>,
}

/// The quorum as its leader sees it: what Kafka's DescribeQuorum reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumStatus {
    pub leader: u64,
    pub term: u64,
    /// One past the last committed index (Kafka's high watermark).
    pub committed_end: u64,
    pub voters: Vec<ReplicaProgress>,
    /// Learners: nodes that follow the log without voting.
    pub observers: Vec<ReplicaProgress>,
}

/// Why a write or a question for the leader failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuorumError {
    /// No leader is known (an election is under way). Retriable.
    NoLeader,
    /// The node asked is not the leader, or stopped being it before the
    /// command was committed; `leader` is who it believes leads. Retriable.
    NotLeader { leader: Option<u64> },
    /// The leader could not be reached or did not answer in time.
    /// Retriable, but a write may have been applied.
    Unreachable { node: u64, reason: String },
    /// The leader could not serve the request (its Raft stopped, say).
    /// Retriable: another leader will be elected.
    Remote { node: u64, message: String },
    /// This node's Raft stopped.
    Stopped(String),
    /// A command or response did not encode or decode: voters disagree on
    /// the state machine's types.
    Codec(String),
}

impl QuorumError {
    /// Whether trying again (after a short wait) may succeed. A retried
    /// write may be applied twice if the first one's answer was lost
    /// (`Unreachable`, or `NotLeader` from a leader deposed mid-commit), so
    /// a command should be idempotent or checked by the state machine.
    pub fn is_retriable(&self) -> bool {
        !matches!(self, QuorumError::Stopped(_) | QuorumError::Codec(_))
    }
}

impl fmt::Display for QuorumError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuorumError::NoLeader => f.write_str("the quorum has no leader now"),
            QuorumError::NotLeader { leader: Some(leader) } => write!(f, "not the leader; node {leader} is"),
            QuorumError::NotLeader { leader: None } => f.write_str("not the leader; no leader is known"),
            QuorumError::Unreachable { node, reason } => write!(f, "leader {node} unreachable: {reason}"),
            QuorumError::Remote { node, message } => write!(f, "leader {node} failed the request: {message}"),
            QuorumError::Stopped(why) => write!(f, "the quorum node stopped: {why}"),
            QuorumError::Codec(why) => write!(f, "a command or response did not encode: {why}"),
        }
    }
}

impl std::error::Error for QuorumError {}

/// A node of the quorum (a voter, or a learner when it is not among the
/// voters), running on the calling thread.
pub struct QuorumNode<SM: StateMachine> {
    id: u64,
    raft: Raft<SM>,
    machine: MachineStore<SM>,
    ask: AskHandler,
    voters: BTreeMap<u64, String>,
    /// Idle connections to each voter, for forwarded requests.
    idle: RefCell<BTreeMap<u64, Vec<Peer>>>,
    request_timeout: Duration,
    /// The accept loop; dropping it closes the listener.
    server: Task<()>,
}

impl<SM: StateMachine> QuorumNode<SM> {
    /// Opens the stores in `config.data_dir` (with `state` as the machine's
    /// initial state, replaced by its snapshot if there is one), starts Raft,
    /// listens on `config.listen`, and forms the quorum: the lowest voter id
    /// initializes a pristine log with every voter. Committed entries in the
    /// log are applied before this returns. `ask` answers
    /// [`ask_leader`](Self::ask_leader) while this node leads.
    pub async fn start(config: QuorumConfig, state: SM, ask: AskHandler) -> io::Result<QuorumNode<SM>> {
        let id = config.node_id;
        let Some(lowest) = config.voters.keys().next().copied() else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no voters"));
        };
        let learner = !config.voters.contains_key(&id);
        let (election_min, election_max) = config.election_timeout;
        let raft_config = Config {
            cluster_name: "weir-metadata".to_string(),
            heartbeat_interval: config.heartbeat_interval.as_millis() as u64,
            election_timeout_min: election_min.as_millis() as u64,
            election_timeout_max: election_max.as_millis() as u64,
            // `network::RaftClient` implements pre-vote: a voter that was
            // cut off does not depose a healthy leader when it returns.
            enable_pre_vote: Some(true),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every),
            max_in_snapshot_log_to_keep: config.snapshot_every,
            ..Default::default()
        };
        let raft_config = Arc::new(raft_config.validate().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?);

        let log = LogStore::open(&config.data_dir.join("log"))?;
        let machine = MachineStore::open(&config.data_dir.join("machine"), state)?;
        let handle = machine.handle();
        let raft = Raft::new(NodeId::new(id), raft_config, Network, log, machine).await.map_err(raft_failed)?;
        let initialized = raft.is_initialized().await.map_err(raft_failed)?;
        let listener = TcpListener::bind(config.listen)?;
        let started_empty = Cell::new(!initialized);
        let server = Rc::new(Server { id, raft: raft.clone(), ask: ask.clone(), started_empty });
        let server = weir_runtime::spawn_local(network::serve(listener, server));

        if !initialized && id == lowest && !learner {
            let members: BTreeMap<NodeId, BasicNode> =
                config.voters.iter().map(|(id, address)| (NodeId::new(*id), BasicNode::new(address))).collect();
            match raft.initialize(members).await {
                Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(raft_failed(e)),
            }
        }
        let voters = config.voters.iter().map(|(id, address)| (*id, address.to_string())).collect();
        let node = QuorumNode {
            id,
            raft,
            machine: handle,
            ask,
            voters,
            idle: RefCell::default(),
            request_timeout: config.request_timeout,
            server,
        };
        if learner {
            node.join_as_learner(config.listen).await?;
        } else if !initialized {
            // In the background: a forming cluster has no leader until
            // the other voters start too.
            let (raft, voters, timeout) = (node.raft.clone(), node.voters.clone(), node.request_timeout);
            weir_runtime::spawn_local(async move {
                let request = || Request::LostLog { id };
                let heard = |response: &Response| matches!(response, Response::ReplicatingAnew).then_some(());
                let unanswered = "no leader heard that its log is empty";
                ask_leader_until(id, &raft, &voters, timeout, request, heard, unanswered).await;
            })
            .detach();
        }
        Ok(node)
    }

    /// A node that is not among the voters (a broker beside the
    /// controllers, Kafka's observer) asks the leader to add it as a
    /// learner listening at `address`, to which the leader then replicates
    /// the log (openraft pushes; a Kafka observer fetches), and waits until
    /// it has applied the log up to its own addition, so it starts from the
    /// committed state as a voter does. Asked again at every start (the
    /// address may have changed; a learner added before is added anew).
    async fn join_as_learner(&self, address: SocketAddr) -> io::Result<()> {
        let request = || Request::AddLearner { id: self.id, address: address.to_string() };
        let added = |response: &Response| match response {
            Response::LearnerAdded(index) => Some(*index),
            _ => None,
        };
        let unanswered = "not yet added as a learner";
        let asked =
            ask_leader_until(self.id, &self.raft, &self.voters, self.request_timeout, request, added, unanswered);
        let Some(index) = asked.await else {
            return Err(io::Error::other("this node became the leader while not a voter"));
        };
        let wait = self.raft.wait(None);
        wait.applied_index_at_least(Some(index), "the log up to this learner's addition").await.map_err(raft_failed)?;
        tracing::info!("quorum node {}: a learner, log applied up to index {index}", self.id);
        Ok(())
    }

    /// Writes `command` through the leader (this node, or forwarded to it)
    /// once a majority holds it, and returns the state machine's response.
    pub async fn write(&self, command: &SM::Command) -> Result<SM::Response, QuorumError> {
        let command = Command::encode(command).map_err(|e| QuorumError::Codec(e.to_string()))?;
        let reply = match self.raft.client_write(command.clone()).await {
            Ok(written) => written.data,
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                let leader = forward.leader_id.map(NodeId::get).ok_or(QuorumError::NoLeader)?;
                match self.forward(leader, Request::Write(command)).await? {
                    Response::Written(reply) => reply,
                    other => return Err(unexpected(leader, other)),
                }
            }
            Err(e) => return Err(QuorumError::Stopped(e.to_string())),
        };
        decode(&reply)
    }

    /// Asks the leader's [`AskHandler`] (not logged, not replicated).
    pub async fn ask_leader(&self, question: Vec<u8>) -> Result<Vec<u8>, QuorumError> {
        if self.is_leader() {
            return Ok((self.ask)(question).await);
        }
        let leader = self.leader().ok_or(QuorumError::NoLeader)?;
        match self.forward(leader, Request::AskLeader(question)).await? {
            Response::Answer(answer) => Ok(answer),
            other => Err(unexpected(leader, other)),
        }
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow_watched().current_leader.map(NodeId::get)
    }

    /// Whether this node leads.
    pub fn is_leader(&self) -> bool {
        self.raft.is_leader()
    }

    /// Raft's view from this node now: term, leader, last log, applied
    /// and purged ids, and on a leader each voter's progress (what Kafka's
    /// DescribeQuorum reports).
    pub fn metrics(&self) -> RaftMetrics<TypeConfig> {
        self.raft.metrics().borrow_watched().clone()
    }

    /// The quorum's status, if this node leads (only the leader knows
    /// every replica's progress).
    pub fn status(&self) -> Option<QuorumStatus> {
        let metrics = self.metrics();
        if metrics.current_leader.map(NodeId::get) != Some(self.id) {
            return None;
        }
        let matched = metrics.replication.clone().unwrap_or_default();
        let heard = metrics.heartbeat.clone().unwrap_or_default();
        let progress = |id: NodeId| ReplicaProgress {
            id: id.get(),
            log_end: if id.get() == self.id {
                metrics.last_log_index.map(|index| index + 1)
            } else {
                matched.get(&id).and_then(Option::as_ref).map(|log| log.index + 1)
            },
            last_heard: heard.get(&id).and_then(Option::as_ref).filter(|_| id.get() != self.id).map(|at| at.elapsed()),
        };
        let membership = metrics.membership_config.membership();
        Some(QuorumStatus {
            leader: self.id,
            term: metrics.current_term,
            committed_end: metrics.cluster_committed.as_ref().map_or(0, |log| log.index + 1),
            voters: membership.voter_ids().map(progress).collect(),
            observers: membership.learner_ids().map(progress).collect(),
        })
    }

    /// This node's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The leader this node knows of now, then each time that changes
    /// (`None` while there is none). Ends when Raft stops.
    pub fn leader_changes(&self) -> impl Stream<Item = Option<u64>> + 'static {
        let metrics = self.raft.metrics();
        futures::stream::unfold((metrics, None), |(mut metrics, last)| async move {
            loop {
                let leader = metrics.borrow_and_update().current_leader.map(NodeId::get);
                if last != Some(leader) {
                    return Some((leader, (metrics, Some(leader))));
                }
                metrics.changed().await.ok()?;
            }
        })
    }

    /// On the leader, waits until everything committed before the call is
    /// applied here (Raft's ReadIndex: a quorum confirms the leadership), so
    /// that [`read`](Self::read) then sees the newest state; `NotLeader`
    /// elsewhere. The active controller plans each change against that.
    pub async fn ensure_linearizable(&self) -> Result<(), QuorumError> {
        match self.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(forward))) => {
                Err(QuorumError::NotLeader { leader: forward.leader_id.map(NodeId::get) })
            }
            Err(RaftError::APIError(LinearizableReadError::QuorumNotEnough(e))) => {
                Err(QuorumError::Unreachable { node: self.id, reason: e.to_string() })
            }
            Err(e) => Err(QuorumError::Stopped(e.to_string())),
        }
    }

    /// Reads this node's copy of the state (what it has applied: not
    /// linearizable by itself).
    pub fn read<T>(&self, f: impl FnOnce(&SM) -> T) -> T {
        self.machine.read(f)
    }

    /// On the leader: hands the leadership to the voter whose log matches
    /// most of this one's (Raft's leadership transfer: it campaigns at once
    /// rather than after an election timeout), and waits until another voter
    /// leads, at most `timeout`. Whether another leads then; on a follower,
    /// nothing to do.
    pub async fn hand_over_leadership(&self, timeout: Duration) -> Result<bool, QuorumError> {
        if !self.is_leader() {
            return Ok(true);
        }
        let matched = self.metrics().replication.unwrap_or_default();
        let others = matched.into_iter().filter(|(id, _)| u64::from(*id) != self.id);
        let Some((to, _)) = others.max_by_key(|(_, log)| log.as_ref().map(|log| log.index)) else { return Ok(false) };
        self.raft.trigger().transfer_leader(to).await.map_err(|e| QuorumError::Stopped(e.to_string()))?;
        let moved = async {
            let mut leaders = std::pin::pin!(self.leader_changes());
            while let Some(leader) = leaders.next().await {
                if leader.is_some_and(|leader| leader != self.id) {
                    return true;
                }
            }
            false
        };
        Ok(weir_runtime::clock::timeout(timeout, moved).await.unwrap_or(false))
    }

    /// Stops serving peers and stops Raft.
    pub async fn shutdown(self) -> Result<(), QuorumError> {
        drop(self.server);
        self.raft.shutdown().await.map_err(|e| QuorumError::Stopped(e.to_string()))
    }

    /// Sends `request` to `leader` on an idle connection, or a new one.
    async fn forward(&self, leader: u64, request: Request) -> Result<Response, QuorumError> {
        if leader == self.id {
            // This node was the leader a moment ago and is no longer.
            return Err(QuorumError::NotLeader { leader: None });
        }
        let address = self.voters.get(&leader).ok_or(QuorumError::NotLeader { leader: Some(leader) })?;
        let idle = self.idle.borrow_mut().get_mut(&leader).and_then(Vec::pop);
        let mut peer = idle.unwrap_or_else(|| Peer::new(address.clone()));
        let response = peer.call(&request, self.request_timeout).await;
        let response = response.map_err(|reason| QuorumError::Unreachable { node: leader, reason })?;
        let mut idle = self.idle.borrow_mut();
        let pool = idle.entry(leader).or_default();
        if pool.len() < IDLE_CONNECTIONS_PER_PEER {
            pool.push(peer);
        }
        Ok(response)
    }
}

/// Node `id` sends `request()` to the leader, following its redirects,
/// until `answered` takes the answer; while no leader answers (the voters
/// may be starting too), tries the voters in turn every `JOIN_RETRY`,
/// warning `unanswered` now and then. `None` once this node leads. Used
/// at start: a voter that started with an empty log announces it (the
/// leader then replicates to it from the start: openraft stops replicating
/// to a node whose log went back), a learner asks to be added.
async fn ask_leader_until<SM: StateMachine, T>(
    id: u64,
    raft: &Raft<SM>,
    voters: &BTreeMap<u64, String>,
    timeout: Duration,
    request: impl Fn() -> Request,
    answered: impl Fn(&Response) -> Option<T>,
    unanswered: &str,
) -> Option<T> {
    let ids: Vec<u64> = voters.keys().copied().collect();
    let leader = || raft.metrics().borrow_watched().current_leader.map(NodeId::get).filter(|&l| l != id);
    let mut ask = leader().unwrap_or(ids[0]);
    let mut attempt = 0;
    while !raft.is_leader() {
        attempt += 1;
        let reply = match voters.get(&ask) {
            Some(address) if ask != id => Peer::new(address.clone()).call(&request(), timeout).await,
            _ => Err("not another voter".to_string()),
        };
        let why = match reply {
            Ok(response) => match answered(&response) {
                Some(answer) => return Some(answer),
                None => match response {
                    Response::NotLeader(Some(next)) if voters.contains_key(&next) && next != ask && next != id => {
                        ask = next;
                        continue;
                    }
                    other => unexpected(ask, other).to_string(),
                },
            },
            Err(e) => e,
        };
        if attempt % 20 == 1 {
            tracing::warn!("quorum node {id}: {unanswered} (asked node {ask}): {why}");
        }
        ask = leader().unwrap_or(ids[attempt % ids.len()]);
        weir_runtime::clock::sleep(JOIN_RETRY).await;
    }
    None
}

/// openraft's errors hold `NodeId`s, which are not `Send`: `io::Error`
/// takes their text.
fn raft_failed(e: impl fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn decode<T: serde::de::DeserializeOwned>(reply: &Reply) -> Result<T, QuorumError> {
    reply.decode().map_err(|e| QuorumError::Codec(e.to_string()))
}

/// A leader's answer that is not the one asked for.
fn unexpected(leader: u64, response: Response) -> QuorumError {
    match response {
        Response::NotLeader(leader) => QuorumError::NotLeader { leader },
        Response::Failed(message) => QuorumError::Remote { node: leader, message },
        _ => QuorumError::Remote { node: leader, message: "an answer of the wrong kind".to_string() },
    }
}
