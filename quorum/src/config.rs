//! What a [`QuorumNode`](crate::QuorumNode) is started with, and the parser
//! of Kafka's `controller.quorum.voters`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

/// One voter's configuration.
///
/// The timing defaults detect a dead leader and elect another in about
/// 1.5-2 s. A follower that hears no heartbeat (sent every 100 ms) for a
/// random 500-1000 ms campaigns, but the other follower keeps granting the
/// dead leader a lease of `election_timeout.1` from its last heartbeat and
/// refuses votes until it runs out, so the first or second campaign wins,
/// after a pre-vote and a vote round trip. Measured with three processes on
/// a loaded 2-core machine (`tests/processes.rs`): 1.54-1.88 s from `kill -9`
/// of the leader to the first write through the new one; with 300-600 ms,
/// 0.98-1.16 s. The 500 ms floor leaves room for shard 0's stalls (an
/// fdatasync of the log, a busy scheduler) without needless elections.
#[derive(Clone, Debug)]
pub struct QuorumConfig {
    /// This voter's id (Kafka's `node.id`); must be one of `voters`.
    pub node_id: u64,
    /// Every voter's id and address (`controller.quorum.voters`).
    pub voters: BTreeMap<u64, SocketAddr>,
    /// Where this voter listens for its peers (and for forwarded requests).
    pub listen: SocketAddr,
    /// The log and the state machine's snapshot live here.
    pub data_dir: PathBuf,
    /// How often the leader sends heartbeats. Default 100 ms.
    pub heartbeat_interval: Duration,
    /// A follower that hears no leader for a random time in this range
    /// starts an election. Default 500-1000 ms.
    pub election_timeout: (Duration, Duration),
    /// How long a forwarded write or `ask_leader` waits for the leader's
    /// answer. Default 5 s.
    pub request_timeout: Duration,
    /// The state machine is snapshotted every this many entries, and the
    /// log keeps this many entries behind the snapshot: a voter that fell
    /// further behind catches up from a snapshot. Default 5000.
    pub snapshot_every: u64,
}

impl QuorumConfig {
    /// A voter with the default timings.
    pub fn new(node_id: u64, voters: BTreeMap<u64, SocketAddr>, listen: SocketAddr, data_dir: PathBuf) -> Self {
        QuorumConfig {
            node_id,
            voters,
            listen,
            data_dir,
            heartbeat_interval: Duration::from_millis(100),
            election_timeout: (Duration::from_millis(500), Duration::from_millis(1000)),
            request_timeout: Duration::from_secs(5),
            snapshot_every: 5000,
        }
    }
}

/// Why `controller.quorum.voters` did not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VotersError(String);

impl fmt::Display for VotersError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "controller.quorum.voters: {}", self.0)
    }
}

impl std::error::Error for VotersError {}

/// Parses Kafka's `controller.quorum.voters`: `id@host:port` entries
/// separated by commas, e.g. `1@10.0.0.1:9093,2@10.0.0.2:9093`. A host name
/// is resolved here, once (the first address it resolves to).
pub fn parse_voters(voters: &str) -> Result<BTreeMap<u64, SocketAddr>, VotersError> {
    let mut parsed = BTreeMap::new();
    for entry in voters.split(',').map(str::trim) {
        if entry.is_empty() {
            return Err(VotersError(format!("an empty entry in {voters:?}")));
        }
        let Some((id, address)) = entry.split_once('@') else {
            return Err(VotersError(format!("{entry:?} is not id@host:port")));
        };
        let id: u64 = id.parse().map_err(|_| VotersError(format!("{id:?} in {entry:?} is not a node id")))?;
        let resolved = address
            .to_socket_addrs()
            .map_err(|e| VotersError(format!("{address:?} in {entry:?} is not a host:port: {e}")))?
            .next()
            .ok_or_else(|| VotersError(format!("{address:?} in {entry:?} resolves to no address")))?;
        if parsed.insert(id, resolved).is_some() {
            return Err(VotersError(format!("node id {id} appears twice")));
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voters_parse_from_kafkas_format() {
        let voters = parse_voters("1@127.0.0.1:9093, 2@127.0.0.1:9094,3@localhost:9095").unwrap();
        assert_eq!(voters.keys().copied().collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(voters[&2], "127.0.0.1:9094".parse().unwrap());
        assert_eq!(voters[&3].port(), 9095);
    }

    #[test]
    fn malformed_voters_are_refused_with_what_is_wrong() {
        for (voters, says) in [
            ("", "an empty entry"),
            ("1@127.0.0.1:9093,", "an empty entry"),
            ("127.0.0.1:9093", "is not id@host:port"),
            ("x@127.0.0.1:9093", "is not a node id"),
            ("1@127.0.0.1", "is not a host:port"),
            ("1@127.0.0.1:port", "is not a host:port"),
            ("1@127.0.0.1:9093,1@127.0.0.1:9094", "appears twice"),
        ] {
            let error = parse_voters(voters).expect_err(voters).to_string();
            assert!(error.contains(says), "{voters:?}: {error}");
        }
    }
}
