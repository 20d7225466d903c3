//! The replicated state machine: a [`StateMachine`] the crate knows nothing
//! about (the controller's metadata image, later), applied by openraft
//! through [`MachineStore`], and snapshotted to a file.
//!
//! The machine itself lives in memory. What is durable is its last snapshot
//! (`snapshot` in the directory: the snapshot's meta and the machine's bytes,
//! one record, replaced atomically); opening restores it, and openraft
//! applies the log entries after it again. openraft purges only entries a
//! snapshot already covers, and `build_snapshot` has saved that snapshot
//! before it returns, so the two together always hold every applied entry.
//!
//! File I/O is blocking `std::fs`, as in `log_store` (which says why).

use std::cell::RefCell;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use futures::{Stream, TryStreamExt};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::frame;
use crate::types::{LogId, Reply, Snapshot, SnapshotMeta, StoredMembership, TypeConfig};

const SNAPSHOT_FILE: &str = "snapshot";

/// A deterministic state machine that Raft replicates: every voter applies
/// the same commands in the same order and must reach the same state.
pub trait StateMachine: 'static {
    type Command: Serialize + DeserializeOwned;
    type Response: Serialize + DeserializeOwned;

    /// Applies one committed command. It must not fail: a command that is
    /// wrong for the current state is answered with an error *response*.
    fn apply(&mut self, command: Self::Command) -> Self::Response;

    /// The whole state, as bytes [`restore`](Self::restore) reads back.
    fn snapshot(&self) -> Vec<u8>;

    /// Replaces the whole state with a snapshot's.
    fn restore(&mut self, snapshot: &[u8]) -> io::Result<()>;
}

/// The snapshot file's one record.
#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

/// openraft's state machine over a [`StateMachine`]; cloned handles (the
/// snapshot builder) share one machine.
pub struct MachineStore<SM> {
    machine: Rc<RefCell<Machine<SM>>>,
}

/// Builds snapshots of a [`MachineStore`].
pub struct SnapshotBuilder<SM> {
    machine: Rc<RefCell<Machine<SM>>>,
}

struct Machine<SM> {
    dir: PathBuf,
    state: SM,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    /// The last snapshot, as saved in the file.
    snapshot: Option<SnapshotFile>,
}

impl<SM: StateMachine> MachineStore<SM> {
    /// Opens the state machine in `dir` (created if missing): `state` is its
    /// initial state, replaced by the saved snapshot if there is one.
    pub fn open(dir: &Path, mut state: SM) -> io::Result<MachineStore<SM>> {
        std::fs::create_dir_all(dir)?;
        let _ = std::fs::remove_file(dir.join(format!("{SNAPSHOT_FILE}.tmp")));
        let snapshot: Option<SnapshotFile> = frame::read_file(&dir.join(SNAPSHOT_FILE))?;
        let (last_applied, membership) = match &snapshot {
            Some(saved) => {
                state.restore(&saved.data)?;
                (saved.meta.last_log_id, saved.meta.last_membership.clone())
            }
            None => (None, StoredMembership::default()),
        };
        let machine = Machine { dir: dir.to_path_buf(), state, last_applied, membership, snapshot };
        Ok(MachineStore { machine: Rc::new(RefCell::new(machine)) })
    }

    /// Reads the state (not linearizable by itself: see `Raft::ensure_linearizable`).
    pub fn read<T>(&self, f: impl FnOnce(&SM) -> T) -> T {
        f(&self.machine.borrow().state)
    }

    /// Another handle on the same machine, e.g. to read it while Raft owns
    /// the first.
    pub fn handle(&self) -> MachineStore<SM> {
        MachineStore { machine: self.machine.clone() }
    }
}

impl<SM: StateMachine> Machine<SM> {
    fn apply(&mut self, entry: openraft::alias::EntryOf<TypeConfig>) -> io::Result<Reply> {
        self.last_applied = Some(entry.log_id());
        match entry.payload {
            EntryPayload::Blank => Ok(Reply::default()),
            EntryPayload::Membership(membership) => {
                self.membership = StoredMembership::new(Some(entry.log_id), membership);
                Ok(Reply::default())
            }
            EntryPayload::Normal(command) => {
                let command = postcard::from_bytes(&command.0).map_err(invalid)?;
                let response = self.state.apply(command);
                postcard::to_stdvec(&response).map(Reply).map_err(invalid)
            }
        }
    }

    /// Saves a snapshot, durably, and keeps it as the current one.
    fn save(&mut self, saved: SnapshotFile) -> io::Result<Snapshot> {
        frame::replace_file(&self.dir, SNAPSHOT_FILE, &saved)?;
        let snapshot = Snapshot { meta: saved.meta.clone(), snapshot: saved.data.clone() };
        self.snapshot = Some(saved);
        Ok(snapshot)
    }
}

impl<SM: StateMachine> RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder<SM> {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> io::Result<Snapshot> {
        let mut machine = self.machine.borrow_mut();
        let meta = SnapshotMeta { last_log_id: machine.last_applied, last_membership: machine.membership.clone() };
        let data = machine.state.snapshot();
        machine.save(SnapshotFile { meta, data })
    }
}

impl<SM: StateMachine> RaftStateMachine<TypeConfig> for MachineStore<SM> {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = SnapshotBuilder<SM>;

    async fn applied_state(&mut self) -> io::Result<(Option<LogId>, StoredMembership)> {
        let machine = self.machine.borrow();
        Ok((machine.last_applied, machine.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> io::Result<()>
    where
        Strm: Stream<Item = io::Result<EntryResponder<TypeConfig>>> + Unpin + OptionalSend,
    {
        while let Some((entry, responder)) = entries.try_next().await? {
            let reply = self.machine.borrow_mut().apply(entry)?;
            if let Some(responder) = responder {
                responder.send(reply);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder<SM> {
        SnapshotBuilder { machine: self.machine.clone() }
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, data: Vec<u8>) -> io::Result<()> {
        let mut machine = self.machine.borrow_mut();
        machine.state.restore(&data)?;
        machine.last_applied = meta.last_log_id;
        machine.membership = meta.last_membership.clone();
        machine.save(SnapshotFile { meta: meta.clone(), data })?;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<Snapshot>> {
        let machine = self.machine.borrow();
        Ok(machine.snapshot.as_ref().map(|saved| Snapshot { meta: saved.meta.clone(), snapshot: saved.data.clone() }))
    }
}

fn invalid(e: postcard::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}
