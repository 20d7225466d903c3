//! Classic members in a consumer group, as Kafka 4 allows (KIP-848's online
//! upgrade and downgrade, `group.consumer.migration.policy`).
//!
//! A member of the classic protocol (JoinGroup, SyncGroup, Heartbeat) in a
//! consumer group is a member like the others: its JoinGroup subscription
//! (a ConsumerProtocolSubscription) is its subscription, the server-side
//! assignor assigns to it, and its JoinGroup is where it reconciles (the
//! partitions it still owns are in its subscription). Its generation is its
//! member epoch; SyncGroup hands it its assignment as a
//! ConsumerProtocolAssignment, and Heartbeat answers REBALANCE_IN_PROGRESS
//! when it must rejoin: the group moved on, it must give partitions up, or
//! partitions it waits for were released.

use super::{overlaps, Assignment, ConsumerGroup, Member, MemberState, Topics};
use crate::groups::{GroupError, JoinRequest, JoinResponse, MemberRef, SyncRequest, SyncResponse};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The protocol type of consumers; only such classic groups mix with consumer groups.
pub const PROTOCOL_TYPE: &str = "consumer";
/// The newest ConsumerProtocolSubscription/Assignment version; newer ones are read as it (as Kafka).
const HIGHEST_VERSION: i16 = 3;

/// What a classic member adds to a consumer group's member.
#[derive(Debug, Clone)]
pub(crate) struct ClassicMember {
    session_timeout: Duration,
    /// (name, metadata) from its JoinGroup in its order of preference; never empty.
    protocols: Vec<(String, Bytes)>,
}

impl ClassicMember {
    /// The protocol it is answered with: its first (as Kafka).
    fn protocol(&self) -> &str {
        &self.protocols[0].0
    }

    /// Its assignment is encoded at the version of its subscription.
    fn version(&self) -> i16 {
        versioned(&self.protocols[0].1).map_or(0, |(version, _)| version)
    }
}

/// A classic member as it moves between a classic group and a consumer group.
#[derive(Debug, Clone)]
pub(crate) struct ClassicMemberState {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocols: Vec<(String, Bytes)>,
    /// Its assignment, a ConsumerProtocolAssignment (empty: none yet).
    pub assignment: Bytes,
}

struct Subscription {
    topics: Vec<String>,
    owned: Vec<(String, Vec<i32>)>,
    rack: Option<String>,
}

/// The version a consumer-protocol message starts with (read as at most
/// the newest one known), and the message after it.
fn versioned(bytes: &Bytes) -> Option<(i16, Bytes)> {
    let mut data = bytes.clone();
    if data.remaining() < 2 {
        return None;
    }
    let version = data.get_i16();
    (version >= 0).then_some((version.min(HIGHEST_VERSION), data))
}

fn decode_subscription(metadata: &Bytes) -> Option<Subscription> {
    let (version, mut data) = versioned(metadata)?;
    let s = ConsumerProtocolSubscription::decode(&mut data, version).ok()?;
    let mut topics: Vec<String> = s.topics.iter().map(|t| t.to_string()).collect();
    topics.sort();
    topics.dedup();
    Some(Subscription {
        topics,
        owned: s.owned_partitions.into_iter().map(|tp| (tp.topic.0.to_string(), tp.partitions)).collect(),
        rack: s.rack_id.map(|r| r.to_string()),
    })
}

/// The partitions of a ConsumerProtocolAssignment; empty bytes are no partitions.
fn decode_assignment(bytes: &Bytes) -> Option<Vec<(String, Vec<i32>)>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let (version, mut data) = versioned(bytes)?;
    let a = ConsumerProtocolAssignment::decode(&mut data, version).ok()?;
    Some(a.assigned_partitions.into_iter().map(|tp| (tp.topic.0.to_string(), tp.partitions)).collect())
}

fn encode_assignment(partitions: Vec<(String, Vec<i32>)>, version: i16) -> Bytes {
    let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(
        partitions
            .into_iter()
            .map(|(topic, parts)| {
                TopicPartition::default().with_topic(TopicName(StrBytes::from_string(topic))).with_partitions(parts)
            })
            .collect(),
    );
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    assignment.encode(&mut buf, version).expect("encoding an assignment in memory");
    buf.freeze()
}

/// Partitions named by topic, as partitions by topic id (unknown topics left out).
fn by_id(named: &[(String, Vec<i32>)], topics: &Topics) -> Assignment {
    let mut out = Assignment::new();
    for (name, parts) in named {
        if let Some(info) = topics.get(name) {
            out.entry(info.id).or_default().extend(parts.iter().copied().filter(|p| (0..info.partitions).contains(p)));
        }
    }
    out.retain(|_, parts| !parts.is_empty());
    out
}

impl ConsumerGroup {
    fn named(&self, assignment: &Assignment) -> Vec<(String, Vec<i32>)> {
        let names: BTreeMap<_, &str> = self.subscribed.iter().map(|(n, i)| (i.id, n.as_str())).collect();
        assignment
            .iter()
            .filter_map(|(id, parts)| Some((names.get(id)?.to_string(), parts.iter().copied().collect())))
            .collect()
    }

    /// Online upgrade: the members of a classic group become members of a
    /// consumer group at the classic generation, each with its subscription
    /// and its assignment as target (as Kafka's `ConsumerGroup.fromClassicGroup`).
    /// Fails when a member's embedded protocol cannot be read.
    pub(crate) fn from_classic(
        id: String,
        generation: i32,
        members: Vec<ClassicMemberState>,
        topics: &Topics,
        now: Instant,
    ) -> Option<ConsumerGroup> {
        let mut group = ConsumerGroup::restored(id, generation);
        for m in members {
            let subscription = decode_subscription(&m.protocols.first()?.1)?;
            let assigned = by_id(&decode_assignment(&m.assignment)?, topics);
            group.target.insert(m.id.clone(), assigned.clone());
            let member = Member {
                id: m.id.clone(),
                instance_id: m.instance_id,
                rack_id: subscription.rack,
                client_id: m.client_id,
                client_host: m.client_host,
                epoch: generation,
                previous_epoch: generation,
                rebalance_timeout: m.rebalance_timeout,
                subscribed_names: subscription.topics,
                regex: None,
                compiled: None,
                regex_resolved: true,
                assignor: None,
                assigned,
                revoking: Assignment::new(),
                session_deadline: now + m.session_timeout,
                revoke_deadline: None,
                static_left: false,
                classic: Some(ClassicMember { session_timeout: m.session_timeout, protocols: m.protocols }),
            };
            group.members.insert(m.id, member);
        }
        group.subscribed = group.resolve_subscribed(topics);
        group.changed = true;
        Some(group)
    }

    /// Whether every member is a classic one (and there is one).
    pub(crate) fn all_classic(&self) -> bool {
        !self.members.is_empty() && self.members.values().all(|m| m.classic.is_some())
    }

    /// Online downgrade: the group's classic members with their target
    /// assignments, for a classic group at the group epoch.
    pub(crate) fn into_classic(self) -> (i32, Vec<ClassicMemberState>) {
        let members = self
            .members
            .values()
            .filter_map(|m| {
                let classic = m.classic.as_ref()?;
                let target = self.target.get(&m.id).cloned().unwrap_or_default();
                Some(ClassicMemberState {
                    id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout: classic.session_timeout,
                    rebalance_timeout: m.rebalance_timeout,
                    protocols: classic.protocols.clone(),
                    assignment: encode_assignment(self.named(&target), classic.version()),
                })
            })
            .collect();
        (self.epoch, members)
    }

    /// Whether the protocols of a joining classic member are ones every other
    /// classic member supports.
    fn supports_protocols(&self, member_id: &str, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        protocol_type == PROTOCOL_TYPE
            && protocols.iter().any(|(name, _)| {
                self.members
                    .values()
                    .filter(|m| m.id != member_id)
                    .filter_map(|m| m.classic.as_ref())
                    .all(|c| c.protocols.iter().any(|(n, _)| n == name))
            })
    }

    /// JoinGroup from a classic member: it is answered at once, at its member
    /// epoch, with no leader (the broker assigns); SyncGroup brings its assignment.
    pub(crate) fn classic_join(
        &mut self,
        now: Instant,
        max_size: usize,
        topics: &Topics,
        req: JoinRequest,
    ) -> JoinResponse {
        let fail = |error, member_id: &str| JoinResponse {
            error: Some(error),
            member_id: member_id.to_string(),
            ..Default::default()
        };
        let unknown = req.member_id.is_empty();
        let requested_id = if unknown { uuid::Uuid::new_v4().to_string() } else { req.member_id.clone() };
        if !self.members.contains_key(&requested_id) && self.members.len() >= max_size {
            return fail(GroupError::GroupMaxSizeReached, &requested_id);
        }
        if !self.supports_protocols(&requested_id, &req.protocol_type, &req.protocols) {
            return fail(GroupError::InconsistentGroupProtocol, &req.member_id);
        }
        if unknown && req.instance_id.is_none() && req.require_known_member_id {
            return fail(GroupError::MemberIdRequired, &requested_id);
        }
        let Some(subscription) = decode_subscription(&req.protocols[0].1) else {
            return fail(GroupError::InconsistentGroupProtocol, &req.member_id);
        };
        let (id, created) = match self.classic_member_for(now, &requested_id, unknown, req.instance_id.as_deref()) {
            Ok(found) => found,
            Err(e) => return fail(e, &req.member_id),
        };
        let session_timeout = Duration::from_millis(req.session_timeout_ms.max(0) as u64);
        let member = self.members.get_mut(&id).expect("classic_member_for returns a member");
        let changed = created || member.subscribed_names != subscription.topics || member.regex.is_some();
        member.instance_id = req.instance_id.clone();
        if subscription.rack.is_some() {
            member.rack_id = subscription.rack;
        }
        if req.rebalance_timeout_ms > 0 {
            member.rebalance_timeout = Duration::from_millis(req.rebalance_timeout_ms as u64);
        }
        member.subscribed_names = subscription.topics;
        member.regex = None;
        member.compiled = None;
        member.assignor = None;
        member.client_id = req.client_id;
        member.client_host = req.client_host;
        member.session_deadline = now + session_timeout;
        member.classic = Some(ClassicMember { session_timeout, protocols: req.protocols });
        if changed {
            self.bump_epoch();
        }
        self.refresh_subscribed(topics);
        if self.assignment_epoch < self.epoch {
            self.compute_target();
        }
        // What it still owns is in its subscription (none for an eager client: it revoked all first).
        self.reconcile(now, &id, Some(&by_id(&subscription.owned, topics)));
        let member = &self.members[&id];
        JoinResponse {
            error: None,
            generation: member.epoch,
            protocol_type: Some(PROTOCOL_TYPE.to_string()),
            protocol: member.classic.as_ref().map(|c| c.protocol().to_string()),
            leader: String::new(),
            member_id: id,
            members: Vec::new(),
        }
    }

    /// The member a classic JoinGroup is from (and whether it is new): a
    /// static member that restarted takes its instance's place and assignment.
    fn classic_member_for(
        &mut self,
        now: Instant,
        member_id: &str,
        unknown: bool,
        instance_id: Option<&str>,
    ) -> Result<(String, bool), GroupError> {
        if let Some(instance) = instance_id {
            let holder =
                self.members.values().find(|m| m.instance_id.as_deref() == Some(instance)).map(|m| m.id.clone());
            if let Some(old_id) = holder {
                if old_id == member_id {
                    return Ok((old_id, false));
                }
                if !unknown {
                    return Err(GroupError::FencedInstanceId);
                }
                let old = self.members.remove(&old_id).expect("found above");
                let target = self.target.remove(&old_id);
                let member = Member { id: member_id.to_string(), static_left: false, ..old };
                self.members.insert(member_id.to_string(), member);
                if let Some(t) = target {
                    self.target.insert(member_id.to_string(), t);
                }
                return Ok((member_id.to_string(), false));
            }
        }
        if self.members.contains_key(member_id) {
            return Ok((member_id.to_string(), false));
        }
        let mut member = Member::new(member_id.to_string(), Duration::ZERO, now);
        member.regex_resolved = true;
        self.members.insert(member_id.to_string(), member);
        Ok((member_id.to_string(), true))
    }

    /// The classic member a SyncGroup, Heartbeat or LeaveGroup names.
    fn classic_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<&Member, GroupError> {
        let member = match instance_id {
            Some(instance) => {
                let m = self
                    .members
                    .values()
                    .find(|m| m.instance_id.as_deref() == Some(instance))
                    .ok_or(GroupError::UnknownMemberId)?;
                if !member_id.is_empty() && m.id != member_id {
                    return Err(GroupError::FencedInstanceId);
                }
                m
            }
            None => self.members.get(member_id).ok_or(GroupError::UnknownMemberId)?,
        };
        if member.classic.is_none() {
            return Err(GroupError::UnknownMemberId);
        }
        Ok(member)
    }

    /// SyncGroup from a classic member: its current assignment.
    pub(crate) fn classic_sync(&mut self, now: Instant, req: &SyncRequest) -> SyncResponse {
        let fail = |error| SyncResponse { error: Some(error), ..Default::default() };
        let member = match self.classic_member(&req.member_id, req.instance_id.as_deref()) {
            Ok(m) => m,
            Err(e) => return fail(e),
        };
        let classic = member.classic.as_ref().expect("a classic member");
        if req.generation != member.epoch {
            return fail(GroupError::IllegalGeneration);
        }
        if req.protocol_type.as_deref().is_some_and(|t| t != PROTOCOL_TYPE)
            || req.protocol.as_deref().is_some_and(|p| p != classic.protocol())
        {
            return fail(GroupError::InconsistentGroupProtocol);
        }
        // A member still revoking finishes that first; otherwise it must catch up with the group.
        if self.epoch > member.epoch && member.state(self.target.get(&member.id)) != MemberState::UnrevokedPartitions {
            return fail(GroupError::RebalanceInProgress);
        }
        let response = SyncResponse {
            error: None,
            protocol_type: Some(PROTOCOL_TYPE.to_string()),
            protocol: Some(classic.protocol().to_string()),
            assignment: encode_assignment(self.named(&member.assigned), classic.version()),
        };
        let id = member.id.clone();
        let member = self.members.get_mut(&id).expect("found above");
        member.session_deadline = now + member.classic.as_ref().expect("a classic member").session_timeout;
        response
    }

    /// Heartbeat from a classic member: REBALANCE_IN_PROGRESS when it must rejoin.
    pub(crate) fn classic_heartbeat(
        &mut self,
        now: Instant,
        topics: &Topics,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        let member = self.classic_member(member_id, instance_id)?;
        if generation != member.epoch {
            return Err(GroupError::IllegalGeneration);
        }
        let id = member.id.clone();
        let member = self.members.get_mut(&id).expect("found above");
        member.session_deadline = now + member.classic.as_ref().expect("a classic member").session_timeout;
        self.refresh_subscribed(topics);
        let member = &self.members[&id];
        let rejoin = match member.state(self.target.get(&id)) {
            MemberState::UnrevokedPartitions => true,
            MemberState::UnreleasedPartitions => !self.waiting_on_unreleased(member),
            MemberState::Stable => false,
        };
        if rejoin || member.epoch < self.epoch {
            return Err(GroupError::RebalanceInProgress);
        }
        Ok(())
    }

    /// Whether a partition of the member's target is still held by another member.
    fn waiting_on_unreleased(&self, member: &Member) -> bool {
        let target = self.target.get(&member.id).cloned().unwrap_or_default();
        let missing = super::minus(&target, &member.assigned);
        self.members
            .values()
            .filter(|m| m.id != member.id)
            .any(|m| overlaps(&missing, &m.assigned) || overlaps(&missing, &m.revoking))
    }

    /// LeaveGroup: classic members leave; each result names the member it was about.
    pub(crate) fn classic_leave(&mut self, members: &[MemberRef]) -> Vec<Result<(), GroupError>> {
        members
            .iter()
            .map(|m| {
                let id = self.classic_member(&m.member_id, m.instance_id.as_deref())?.id.clone();
                self.remove_member(&id);
                Ok(())
            })
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A ConsumerProtocolSubscription at `version` (owned partitions from v1).
    pub(crate) fn subscription(topics: &[&str], owned: &[(&str, &[i32])], version: i16) -> Bytes {
        use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as Owned;
        let s = ConsumerProtocolSubscription::default()
            .with_topics(topics.iter().map(|t| StrBytes::from_string(t.to_string())).collect())
            .with_owned_partitions(
                owned
                    .iter()
                    .map(|(t, p)| {
                        Owned::default()
                            .with_topic(TopicName(StrBytes::from_string(t.to_string())))
                            .with_partitions(p.to_vec())
                    })
                    .collect(),
            );
        let mut buf = BytesMut::new();
        buf.put_i16(version);
        s.encode(&mut buf, version).expect("encoding in memory");
        buf.freeze()
    }

    /// The partitions of an assignment SyncGroup handed out, by topic name.
    pub(crate) fn assigned(bytes: &Bytes) -> Vec<(String, Vec<i32>)> {
        decode_assignment(bytes).expect("a valid assignment")
    }

    pub(crate) fn assignment(partitions: &[(&str, &[i32])]) -> Bytes {
        encode_assignment(partitions.iter().map(|(t, p)| (t.to_string(), p.to_vec())).collect(), 0)
    }

    #[test]
    fn subscriptions_and_assignments_round_trip_at_their_version() {
        let s = decode_subscription(&subscription(&["b", "a", "a"], &[("a", &[1])], 1)).unwrap();
        assert_eq!((s.topics, s.owned), (vec!["a".to_string(), "b".to_string()], vec![("a".to_string(), vec![1])]));
        let v0 = decode_subscription(&subscription(&["a"], &[("a", &[1])], 0)).unwrap();
        assert!(v0.owned.is_empty(), "v0 has no owned partitions");
        assert!(decode_subscription(&Bytes::from_static(b"\x00")).is_none());
        let encoded = encode_assignment(vec![("t".into(), vec![0, 2])], 3);
        assert_eq!(&encoded[..2], &[0, 3]);
        assert_eq!(assigned(&encoded), vec![("t".to_string(), vec![0, 2])]);
        assert_eq!(assigned(&Bytes::new()), vec![]);
    }
}
