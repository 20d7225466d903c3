//! The network between voters: Raft's RPCs and the application's two
//! (a forwarded write, a question for the leader) over TCP.
//!
//! - One request, then its response, on a connection at a time: each is a
//!   framed postcard record (`frame`), a [`Request`] one way and a
//!   [`Response`] back. openraft gives each replication stream its own
//!   client (`&mut self`), so no request ever waits for another's answer.
//! - A [`Peer`] is one cached connection to an address, made on first use
//!   and dropped after any error or timeout (its stream may hold a late
//!   answer); the next call connects again.
//! - Every call has a deadline on Weir's clock: openraft's
//!   `RPCOption::soft_ttl` for Raft's RPCs. A peer that cannot be reached,
//!   refuses, fails or runs out of time is `Unreachable` to openraft, which
//!   backs off and retries; nothing here panics or waits forever.
//! - The server side ([`serve`]) accepts on the voter's listener and serves
//!   each connection in a task of its own; a malformed frame or request
//!   closes that connection with a log line.

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::time::Duration;

use futures::future::{select, Either, LocalBoxFuture};
use openraft::error::{ClientWriteError, RPCError, RaftError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest, TransferLeaderResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use openraft_rt::watch::WatchReceiver;
use serde::{Deserialize, Serialize};
use weir_runtime::clock;
use weir_runtime::net::{TcpListener, TcpStream};

use crate::frame;
use crate::types::{Snapshot, SnapshotMeta, Vote};
use crate::{Command, NodeId, Raft, Reply, StateMachine, TypeConfig};

/// The application's handler of [`QuorumNode::ask_leader`]: run on the
/// leader, with the asker's bytes, answering bytes.
///
/// [`QuorumNode::ask_leader`]: crate::QuorumNode::ask_leader
pub type AskHandler = Rc<dyn Fn(Vec<u8>) -> LocalBoxFuture<'static, Vec<u8>>>;

/// At most this many peer connections are served at once; more are closed
/// at accept. A quorum has a handful of voters, each with a few streams.
const MAX_CONNECTIONS: usize = 256;

/// What one voter asks another.
#[derive(Serialize, Deserialize)]
pub(crate) enum Request {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<TypeConfig>),
    PreVote(VoteRequest<TypeConfig>),
    FullSnapshot {
        vote: Vote,
        meta: SnapshotMeta,
        data: Vec<u8>,
    },
    TransferLeader(TransferLeaderRequest<TypeConfig>),
    /// A command for the leader to write.
    Write(Command),
    /// A question for the leader's [`AskHandler`].
    AskLeader(Vec<u8>),
    /// A node that does not vote asks the leader to replicate the log to
    /// it at `address` (a learner).
    AddLearner {
        id: u64,
        address: String,
    },
    /// Node `id` started with an empty log: the leader is to replicate to
    /// it from the start (openraft otherwise stops replicating to a node
    /// whose log went back, taking it for a bug).
    LostLog {
        id: u64,
    },
}

/// The answer to a [`Request`].
#[derive(Serialize, Deserialize)]
pub(crate) enum Response {
    AppendEntries(AppendEntriesResponse<TypeConfig>),
    Vote(VoteResponse<TypeConfig>),
    Snapshot(SnapshotResponse<TypeConfig>),
    TransferLeader(TransferLeaderResponse<TypeConfig>),
    Written(Reply),
    Answer(Vec<u8>),
    /// The node is not the leader; who it believes leads, if anyone.
    NotLeader(Option<u64>),
    /// The node could not serve the request (its Raft stopped, say).
    Failed(String),
    /// The learner is added; the index of the log entry that added it.
    LearnerAdded(u64),
    /// The leader replicates to the node from the start.
    ReplicatingAnew,
}

/// One cached connection to a peer's address.
pub(crate) struct Peer {
    address: String,
    stream: Option<TcpStream>,
}

impl Peer {
    pub(crate) fn new(address: String) -> Peer {
        Peer { address, stream: None }
    }

    /// Sends `request` and waits for its answer, at most `timeout`. After an
    /// error the connection is dropped, and the next call makes a new one.
    pub(crate) async fn call(&mut self, request: &Request, timeout: Duration) -> Result<Response, String> {
        let answered = clock::timeout(timeout, self.exchange(request)).await;
        let answer = answered.unwrap_or_else(|| Err(format!("no answer in {timeout:?}")));
        if answer.is_err() {
            self.stream = None;
        }
        answer.map_err(|e| format!("{}: {e}", self.address))
    }

    async fn exchange(&mut self, request: &Request) -> Result<Response, String> {
        let stream = match &mut self.stream {
            Some(stream) => stream,
            empty => {
                let stream = TcpStream::connect(self.address.as_str()).await.map_err(|e| e.to_string())?;
                // Requests are single small writes answered at once: Nagle
                // would hold them back for the peer's delayed ack.
                stream.set_nodelay(true).map_err(|e| e.to_string())?;
                empty.insert(stream)
            }
        };
        frame::write_to(stream, request).await.map_err(|e| e.to_string())?;
        match frame::read_from(stream).await {
            Ok(Some(payload)) => frame::decode(&payload).map_err(|e| e.to_string()),
            Ok(None) => Err("the connection closed".to_string()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// openraft's network factory: a client per target, on the address its
/// membership entry holds.
pub(crate) struct Network;

/// One Raft client's connection to a peer.
pub(crate) struct RaftClient {
    peer: Peer,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = RaftClient;

    async fn new_client(&mut self, _target: NodeId, node: &BasicNode) -> RaftClient {
        RaftClient { peer: Peer::new(node.addr.clone()) }
    }
}

impl RaftClient {
    async fn call(&mut self, request: Request, option: &RPCOption) -> Result<Response, Unreachable<TypeConfig>> {
        match self.peer.call(&request, option.soft_ttl()).await {
            Ok(Response::Failed(message)) => Err(Unreachable::from_string(message)),
            Ok(response) => Ok(response),
            Err(message) => Err(Unreachable::from_string(message)),
        }
    }
}

fn unexpected(what: &str) -> Unreachable<TypeConfig> {
    Unreachable::from_string(format!("a peer answered {what} with something else"))
}

impl RaftNetworkV2<TypeConfig> for RaftClient {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        request: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(Request::AppendEntries(request), &option).await? {
            Response::AppendEntries(response) => Ok(response),
            _ => Err(unexpected("append_entries").into()),
        }
    }

    async fn vote(
        &mut self,
        request: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(Request::Vote(request), &option).await? {
            Response::Vote(response) => Ok(response),
            _ => Err(unexpected("vote").into()),
        }
    }

    async fn pre_vote(
        &mut self,
        request: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(Request::PreVote(request), &option).await? {
            Response::Vote(response) => Ok(response),
            _ => Err(unexpected("pre_vote").into()),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        // The metadata image is small: sent whole, in one request.
        let request = Request::FullSnapshot { vote, meta: snapshot.meta, data: snapshot.snapshot };
        let answered = {
            let call = pin!(self.call(request, &option));
            match select(call, pin!(cancel)).await {
                Either::Left((answered, _)) => Ok(answered),
                Either::Right((closed, _)) => Err(closed),
            }
        };
        match answered {
            Ok(Ok(Response::Snapshot(response))) => Ok(response),
            Ok(Ok(_)) => Err(unexpected("full_snapshot").into()),
            Ok(Err(unreachable)) => Err(unreachable.into()),
            Err(closed) => {
                // Cut mid-exchange: the stream may yet carry the answer.
                self.peer.stream = None;
                Err(closed.into())
            }
        }
    }

    async fn transfer_leader(
        &mut self,
        request: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(Request::TransferLeader(request), &option).await? {
            Response::TransferLeader(response) => Ok(response),
            _ => Err(unexpected("transfer_leader").into()),
        }
    }
}

/// What a voter's server answers with.
pub(crate) struct Server<SM: StateMachine> {
    pub(crate) id: u64,
    pub(crate) raft: Raft<SM>,
    pub(crate) ask: AskHandler,
    /// This node started with an empty log and has not applied an entry of
    /// the cluster's since: see [`Server::may_not_vote_for`].
    pub(crate) started_empty: Cell<bool>,
}

impl<SM: StateMachine> Server<SM> {
    /// Whether to refuse a vote to a candidate whose log ends at
    /// `last_log_id`. A voter that started with an empty log may be one
    /// whose disk was replaced: it may have voted, or held committed
    /// entries, before it lost them, and its vote now could elect a
    /// candidate that lacks them (Raft assumes votes and logs survive; in
    /// Kafka KIP-853's directory ids guard this). So until it has applied an
    /// entry past index 0 (the initial membership, which a new cluster's
    /// first election is about), it votes only for candidates whose log
    /// ends there, i.e. in a cluster that is forming.
    fn may_not_vote_for(&self, last_log_id: Option<&crate::types::LogId>) -> bool {
        if !self.started_empty.get() {
            return false;
        }
        let applied = self.raft.metrics().borrow_watched().last_applied.map(|l| l.index());
        if applied.is_some_and(|index| index > 0) {
            self.started_empty.set(false);
            return false;
        }
        last_log_id.is_some_and(|l| l.index() > 0)
    }
}

/// Accepts peers' connections on `listener` until the task is dropped,
/// serving each in a task of its own.
pub(crate) async fn serve<SM: StateMachine>(listener: TcpListener, server: Rc<Server<SM>>) {
    let open = Rc::new(Cell::new(0_usize));
    loop {
        let stream = match listener.accept().await {
            Ok(stream) => stream,
            Err(e) => {
                // Out of descriptors, say: wait rather than spin.
                tracing::warn!("quorum node {}: accept failed: {e}", server.id);
                clock::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if open.get() >= MAX_CONNECTIONS {
            tracing::warn!("quorum node {}: {MAX_CONNECTIONS} peer connections open, closing a new one", server.id);
            continue;
        }
        open.set(open.get() + 1);
        let (server, open) = (server.clone(), open.clone());
        weir_runtime::spawn_local(async move {
            serve_connection(stream, &server).await;
            open.set(open.get() - 1);
        })
        .detach();
    }
}

async fn serve_connection<SM: StateMachine>(mut stream: TcpStream, server: &Server<SM>) {
    let peer = stream.peer_addr().map_or_else(|_| "a peer".to_string(), |address| address.to_string());
    if let Err(e) = stream.set_nodelay(true) {
        tracing::warn!("quorum node {}: {peer}: {e}", server.id);
    }
    loop {
        let payload = match frame::read_from(&mut stream).await {
            Ok(Some(payload)) => payload,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("quorum node {}: closing the connection from {peer}: {e}", server.id);
                return;
            }
        };
        let request = match frame::decode::<Request>(&payload) {
            Ok(request) => request,
            Err(e) => {
                tracing::warn!("quorum node {}: closing the connection from {peer}: a bad request: {e}", server.id);
                return;
            }
        };
        let response = answer(server, request).await;
        if let Err(e) = frame::write_to(&mut stream, &response).await {
            tracing::debug!("quorum node {}: {peer} left before its answer: {e}", server.id);
            return;
        }
    }
}

async fn answer<SM: StateMachine>(server: &Server<SM>, request: Request) -> Response {
    let raft = &server.raft;
    let failed = |e: &dyn std::fmt::Display| Response::Failed(format!("node {}: {e}", server.id));
    match request {
        Request::AppendEntries(request) => {
            raft.append_entries(request).await.map_or_else(|e| failed(&e), Response::AppendEntries)
        }
        Request::Vote(request) | Request::PreVote(request) if server.may_not_vote_for(request.last_log_id.as_ref()) => {
            failed(&"no vote: this voter's log is empty, and it may have been lost")
        }
        Request::Vote(request) => raft.vote(request).await.map_or_else(|e| failed(&e), Response::Vote),
        Request::PreVote(request) => raft.pre_vote(request).await.map_or_else(|e| failed(&e), Response::Vote),
        Request::FullSnapshot { vote, meta, data } => raft
            .install_full_snapshot(vote, Snapshot { meta, snapshot: data })
            .await
            .map_or_else(|e| failed(&e), Response::Snapshot),
        Request::TransferLeader(request) => {
            raft.handle_transfer_leader(request).await.map_or_else(|e| failed(&e), Response::TransferLeader)
        }
        Request::Write(command) => match raft.client_write(command).await {
            Ok(written) => Response::Written(written.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                Response::NotLeader(forward.leader_id.map(NodeId::get))
            }
            Err(e) => failed(&e),
        },
        Request::LostLog { id } => match raft.trigger().allow_next_revert(&NodeId::new(id), true).await {
            Ok(Ok(())) => Response::ReplicatingAnew,
            // Not replicating to it: nothing to start again.
            Ok(Err(_)) if raft.is_leader() => Response::ReplicatingAnew,
            Ok(Err(_)) => Response::NotLeader(raft.current_leader().await.map(NodeId::get)),
            Err(e) => failed(&e),
        },
        Request::AddLearner { id, address } => {
            // A learner that lost its log is replicated to from the start.
            let _ = raft.trigger().allow_next_revert(&NodeId::new(id), true).await;
            match raft.add_learner(NodeId::new(id), BasicNode::new(address), false).await {
                Ok(added) => Response::LearnerAdded(added.log_id.index()),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                    Response::NotLeader(forward.leader_id.map(NodeId::get))
                }
                Err(e) => failed(&e),
            }
        }
        Request::AskLeader(question) => {
            if raft.is_leader() {
                Response::Answer((server.ask)(question).await)
            } else {
                Response::NotLeader(raft.current_leader().await.map(NodeId::get))
            }
        }
    }
}
