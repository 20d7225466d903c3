//! A blocking consumer-group member for the tools and the bench: joins a
//! group for one topic, assigns partitions by range when it leads, keeps its
//! session alive with heartbeats between fetches, and commits offsets.

use crate::client::Client;
use anyhow::{bail, Context};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, FindCoordinatorRequest, GroupId, HeartbeatRequest,
    JoinGroupRequest, LeaveGroupRequest, OffsetCommitRequest, OffsetFetchRequest, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const PROTOCOL_TYPE: &str = "consumer";
const ASSIGNOR: &str = "range";
const SESSION_TIMEOUT_MS: i32 = 30_000;
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(3);
/// How long a join retries a coordinator that is not available yet.
const COORDINATOR_RETRY: Duration = Duration::from_secs(10);

/// The pause before retrying a retriable group error.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Consumer-protocol bytes: an i16 version, then the message at that version.
fn encode_versioned<T: Encodable>(message: &T, version: i16) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    message.encode(&mut buf, version).expect("encoding a consumer-protocol message in memory");
    buf.freeze()
}

/// The topics and partitions of a consumer-protocol assignment (any version).
pub fn decode_assignment(mut data: Bytes) -> Vec<(String, Vec<i32>)> {
    if data.remaining() < 2 {
        return Vec::new();
    }
    let version = data.get_i16().clamp(0, 3);
    ConsumerProtocolAssignment::decode(&mut data, version)
        .map(|a| a.assigned_partitions.into_iter().map(|tp| (tp.topic.0.to_string(), tp.partitions)).collect())
        .unwrap_or_default()
}

/// Range assignment of `partitions` partitions among `members` (sorted by id).
fn range_assign(members: &[String], partitions: i32) -> BTreeMap<String, Vec<i32>> {
    let mut sorted = members.to_vec();
    sorted.sort();
    let n = sorted.len() as i32;
    let (per, extra) = (partitions / n, partitions % n);
    let mut start = 0;
    sorted
        .into_iter()
        .enumerate()
        .map(|(i, member)| {
            let count = per + i32::from((i as i32) < extra);
            let assigned = (start..start + count).collect();
            start += count;
            (member, assigned)
        })
        .collect()
}

pub struct GroupMember {
    coordinator: Client,
    group: String,
    topic: String,
    partitions: i32,
    member_id: String,
    generation: i32,
    last_heartbeat: Instant,
}

impl GroupMember {
    /// Finds the coordinator of `group` and joins it, consuming `topic`
    /// (which has `partitions` partitions). Returns once assigned.
    pub fn join(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> anyhow::Result<(GroupMember, Vec<i32>)> {
        let mut client = Client::connect(bootstrap)?;
        let found = client.send(&FindCoordinatorRequest::default().with_key(str_bytes(group)), 3)?;
        if let Some(e) = ResponseError::try_from_code(found.error_code) {
            bail!("finding the coordinator of group '{group}': {e:?}");
        }
        let address = format!("{}:{}", &*found.host, found.port);
        let coordinator = if address == bootstrap { client } else { Client::connect(&address)? };
        let mut member = GroupMember {
            coordinator,
            group: group.to_string(),
            topic: topic.to_string(),
            partitions,
            member_id: String::new(),
            generation: -1,
            last_heartbeat: Instant::now(),
        };
        let assigned = member.rejoin()?;
        Ok((member, assigned))
    }

    /// Joins (again) and syncs; returns this member's partitions.
    pub fn rejoin(&mut self) -> anyhow::Result<Vec<i32>> {
        let retry_until = Instant::now() + COORDINATOR_RETRY;
        let subscription = ConsumerProtocolSubscription::default().with_topics(vec![str_bytes(&self.topic)]);
        loop {
            let request = JoinGroupRequest::default()
                .with_group_id(GroupId(str_bytes(&self.group)))
                .with_session_timeout_ms(SESSION_TIMEOUT_MS)
                .with_rebalance_timeout_ms(SESSION_TIMEOUT_MS)
                .with_member_id(str_bytes(&self.member_id))
                .with_protocol_type(str_bytes(PROTOCOL_TYPE))
                .with_protocols(vec![JoinGroupRequestProtocol::default()
                    .with_name(str_bytes(ASSIGNOR))
                    .with_metadata(encode_versioned(&subscription, 0))]);
            let joined = self.coordinator.send(&request, 5)?;
            self.member_id = joined.member_id.to_string();
            match ResponseError::try_from_code(joined.error_code) {
                None => {}
                Some(ResponseError::MemberIdRequired) => continue,
                Some(ResponseError::UnknownMemberId) => {
                    self.member_id.clear();
                    continue;
                }
                // Retriable, as for every Kafka client: the coordinator is still loading.
                Some(ResponseError::CoordinatorNotAvailable | ResponseError::CoordinatorLoadInProgress)
                    if Instant::now() < retry_until =>
                {
                    std::thread::sleep(RETRY_BACKOFF);
                    continue;
                }
                Some(e) => bail!("joining group '{}': {e:?}", self.group),
            }
            self.generation = joined.generation_id;
            let assignments = if joined.leader == joined.member_id {
                let members: Vec<String> = joined.members.iter().map(|m| m.member_id.to_string()).collect();
                range_assign(&members, self.partitions)
                    .into_iter()
                    .map(|(member, partitions)| {
                        let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
                            TopicPartition::default()
                                .with_topic(TopicName(str_bytes(&self.topic)))
                                .with_partitions(partitions),
                        ]);
                        SyncGroupRequestAssignment::default()
                            .with_member_id(str_bytes(&member))
                            .with_assignment(encode_versioned(&assignment, 0))
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let sync = SyncGroupRequest::default()
                .with_group_id(GroupId(str_bytes(&self.group)))
                .with_generation_id(self.generation)
                .with_member_id(str_bytes(&self.member_id))
                .with_assignments(assignments);
            let synced = self.coordinator.send(&sync, 3)?;
            match ResponseError::try_from_code(synced.error_code) {
                None => {}
                Some(ResponseError::RebalanceInProgress) => continue,
                Some(e) => bail!("syncing group '{}': {e:?}", self.group),
            }
            self.last_heartbeat = Instant::now();
            let mine = decode_assignment(synced.assignment);
            return Ok(mine.into_iter().filter(|(t, _)| *t == self.topic).flat_map(|(_, p)| p).collect());
        }
    }

    /// Sends a heartbeat if one is due; `Some(partitions)` after a rebalance
    /// changed this member's assignment (it rejoined already).
    pub fn heartbeat_if_due(&mut self) -> anyhow::Result<Option<Vec<i32>>> {
        if self.last_heartbeat.elapsed() < HEARTBEAT_INTERVAL {
            return Ok(None);
        }
        let request = HeartbeatRequest::default()
            .with_group_id(GroupId(str_bytes(&self.group)))
            .with_generation_id(self.generation)
            .with_member_id(str_bytes(&self.member_id));
        let response = self.coordinator.send(&request, 3)?;
        self.last_heartbeat = Instant::now();
        match ResponseError::try_from_code(response.error_code) {
            None => Ok(None),
            Some(
                ResponseError::RebalanceInProgress | ResponseError::IllegalGeneration | ResponseError::UnknownMemberId,
            ) => self.rejoin().map(Some),
            Some(e) => bail!("heartbeat in group '{}': {e:?}", self.group),
        }
    }

    /// The group's committed offsets of `partitions` (absent: none committed).
    pub fn committed(&mut self, partitions: &[i32]) -> anyhow::Result<BTreeMap<i32, i64>> {
        let request =
            OffsetFetchRequest::default().with_group_id(GroupId(str_bytes(&self.group))).with_topics(Some(vec![
                OffsetFetchRequestTopic::default()
                    .with_name(TopicName(str_bytes(&self.topic)))
                    .with_partition_indexes(partitions.to_vec()),
            ]));
        let response = self.coordinator.send(&request, 7)?;
        Ok(response
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .filter(|p| p.committed_offset >= 0)
            .map(|p| (p.partition_index, p.committed_offset))
            .collect())
    }

    /// Commits the next offsets to read, per partition.
    pub fn commit(&mut self, offsets: &[(i32, i64)]) -> anyhow::Result<()> {
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(str_bytes(&self.group)))
            .with_generation_id_or_member_epoch(self.generation)
            .with_member_id(str_bytes(&self.member_id))
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(str_bytes(&self.topic)))
                .with_partitions(
                    offsets
                        .iter()
                        .map(|&(p, o)| {
                            OffsetCommitRequestPartition::default().with_partition_index(p).with_committed_offset(o)
                        })
                        .collect(),
                )]);
        let response = self.coordinator.send(&request, 8)?;
        for p in response.topics.iter().flat_map(|t| &t.partitions) {
            if let Some(e) = ResponseError::try_from_code(p.error_code) {
                bail!("committing {}/{}: {e:?}", self.topic, p.partition_index);
            }
        }
        Ok(())
    }

    /// Leaves the group so the others take over at once.
    pub fn leave(mut self) -> anyhow::Result<()> {
        let request = LeaveGroupRequest::default()
            .with_group_id(GroupId(str_bytes(&self.group)))
            .with_member_id(str_bytes(&self.member_id));
        self.coordinator.send(&request, 2).context("leaving the group").map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_assignment_covers_every_partition_once() {
        let members: Vec<String> = ["c", "a", "b"].iter().map(|s| s.to_string()).collect();
        let assigned = range_assign(&members, 7);
        assert_eq!(assigned["a"], vec![0, 1, 2]);
        assert_eq!(assigned["b"], vec![3, 4]);
        assert_eq!(assigned["c"], vec![5, 6]);
    }

    #[test]
    fn assignments_round_trip() {
        let assignment = ConsumerProtocolAssignment::default()
            .with_assigned_partitions(vec![TopicPartition::default()
                .with_topic(TopicName(str_bytes("t")))
                .with_partitions(vec![1, 3])]);
        assert_eq!(decode_assignment(encode_versioned(&assignment, 0)), vec![("t".to_string(), vec![1, 3])]);
        assert!(decode_assignment(Bytes::from_static(b"\x00")).is_empty());
    }
}
