//! The Raft type config: which types openraft's generic code uses here.
//!
//! Commands and replies travel as bytes ([`Command`], [`Reply`]) so the type
//! config stays one concrete type whatever [`StateMachine`] runs on it: the
//! state machine's own command and response types are encoded with the
//! crate's codec at the edges ([`Command::encode`], [`Reply::decode`]).
//!
//! [`StateMachine`]: crate::StateMachine

use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::runtime::WeirRuntime;

openraft::declare_raft_types!(
    /// Weir's Raft types: runs on [`WeirRuntime`], on one shard's thread.
    pub TypeConfig:
        D = Command,
        R = Reply,
        NodeId = NodeId,
        AsyncRuntime = WeirRuntime,
);

/// A node's id in the quorum (Kafka's `node.id`).
///
/// Not `Send`, and so neither is `Raft<TypeConfig>` (nor its channels): the
/// compiler keeps Raft's objects on the shard that made them. Moving them to
/// another glommio executor would let a waker cross threads
/// (shards/METADATA-QUORUM.md §6 R4).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(from = "u64", into = "u64")]
pub struct NodeId {
    id: u64,
    one_thread: PhantomData<*const ()>,
}

impl NodeId {
    pub const fn new(id: u64) -> Self {
        NodeId { id, one_thread: PhantomData }
    }

    pub const fn get(self) -> u64 {
        self.id
    }
}

impl From<u64> for NodeId {
    fn from(id: u64) -> Self {
        NodeId::new(id)
    }
}

impl From<NodeId> for u64 {
    fn from(node: NodeId) -> u64 {
        node.id
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.id)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.id)
    }
}

/// A state machine command, encoded.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command(pub Vec<u8>);

impl Command {
    /// Encodes a state machine's command for `Raft::client_write`.
    pub fn encode<T: Serialize>(command: &T) -> Result<Command, postcard::Error> {
        postcard::to_stdvec(command).map(Command)
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Command({} bytes)", self.0.len())
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A state machine's response to a command, encoded; empty for the entries
/// Raft writes itself (blank and membership entries).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply(pub Vec<u8>);

impl Reply {
    /// Decodes the response `Raft::client_write` returned.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, postcard::Error> {
        postcard::from_bytes(&self.0)
    }
}

pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
pub type Snapshot = openraft::alias::SnapshotOf<TypeConfig, Vec<u8>>;
pub type Raft<SM> = openraft::Raft<TypeConfig, crate::MachineStore<SM>>;

/// Fails to compile if `Raft` or the metrics it hands out are `Send`: then
/// both impls of `some_item` would apply and the call is ambiguous (the
/// trick of `static_assertions::assert_not_impl_any!`). `Raft` is `!Send`
/// through the `Rc` in [`MachineStore`](crate::MachineStore) as well; the
/// metrics only through [`NodeId`].
const _: () = {
    trait AmbiguousIfSend<A> {
        fn some_item() {}
    }
    impl<T: ?Sized> AmbiguousIfSend<()> for T {}
    struct IsSend;
    impl<T: ?Sized + Send> AmbiguousIfSend<IsSend> for T {}

    struct Probe;
    impl crate::StateMachine for Probe {
        type Command = ();
        type Response = ();
        fn apply(&mut self, (): ()) {}
        fn snapshot(&self) -> Vec<u8> {
            Vec::new()
        }
        fn restore(&mut self, _: &[u8]) -> std::io::Result<()> {
            Ok(())
        }
    }
    let _ = <Raft<Probe> as AmbiguousIfSend<_>>::some_item;
    let _ = <openraft::RaftMetrics<TypeConfig> as AmbiguousIfSend<_>>::some_item;
};
