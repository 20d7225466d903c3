//! One consumer group's state machine (Kafka's classic rebalance protocol).
//!
//! ```text
//!     Empty ──join──► PreparingRebalance ──all rejoined / timeout──► CompletingRebalance
//!       ▲                   ▲                                              │ leader's SyncGroup
//!       └── last member ────┴──── join, leave, session expiry ◄── Stable ◄─┘
//! ```
//!
//! Requests that must wait (JoinGroup until the rebalance completes, SyncGroup
//! until the leader's assignment arrives) leave a [`Responder`] on the member.

use super::consumer::ClassicMemberState;
use super::coordinator::{GroupMetadata, MemberMetadata};
use super::{
    CommittedOffset, GroupConfig, GroupError, JoinRequest, JoinResponse, JoinedMember, MemberDescription, MemberRef,
    Responder, SyncRequest, SyncResponse,
};
use bytes::{Buf, Bytes};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name Kafka uses in DescribeGroups and ListGroups.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

struct Member {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    /// (name, metadata) in the member's order of preference.
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    awaiting_join: Option<Responder<JoinResponse>>,
    awaiting_sync: Option<Responder<SyncResponse>>,
    session_deadline: Instant,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols.iter().find(|(name, _)| name == protocol).map(|(_, m)| m.clone()).unwrap_or_default()
    }

    fn same_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }
}

pub(crate) struct Group {
    pub id: String,
    pub state: GroupState,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub generation: i32,
    pub leader: Option<String>,
    /// In join order: the first is the leader when a new one must be chosen.
    members: Vec<Member>,
    /// Ids handed out with MEMBER_ID_REQUIRED, valid until the deadline.
    pending_members: Vec<(String, Instant)>,
    rebalance_deadline: Option<Instant>,
    /// While the initial rebalance delay runs, the join completes only at the deadline.
    initial_delay_until: Option<Instant>,
    pub offsets: BTreeMap<(String, i32), CommittedOffset>,
    /// The group's metadata (generation, state, members or assignments)
    /// changed and should be persisted. Heartbeats do not set it.
    pub dirty: bool,
}

impl Group {
    pub fn new(id: String) -> Group {
        Group {
            id,
            state: GroupState::Empty,
            protocol_type: None,
            protocol: None,
            generation: 0,
            leader: None,
            members: Vec::new(),
            pending_members: Vec::new(),
            rebalance_deadline: None,
            initial_delay_until: None,
            offsets: BTreeMap::new(),
            dirty: false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    fn index_of(&self, member_id: &str) -> Option<usize> {
        self.members.iter().position(|m| m.id == member_id)
    }

    fn index_of_instance(&self, instance_id: &str) -> Option<usize> {
        self.members.iter().position(|m| m.instance_id.as_deref() == Some(instance_id))
    }

    /// The protocols every member (and the newcomer) supports.
    fn accepts_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)], except: Option<usize>) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        let others: Vec<&Member> =
            self.members.iter().enumerate().filter(|(i, _)| Some(*i) != except).map(|(_, m)| m).collect();
        if others.is_empty() {
            return true;
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|(name, _)| others.iter().all(|m| m.protocols.iter().any(|(n, _)| n == name)))
    }

    pub fn join(&mut self, now: Instant, config: &GroupConfig, req: JoinRequest, respond: Responder<JoinResponse>) {
        let fail = |respond: Responder<JoinResponse>, error: GroupError, member_id: &str| {
            let _ = respond.send(JoinResponse {
                error: Some(error),
                member_id: member_id.to_string(),
                ..Default::default()
            });
        };
        let existing = if req.member_id.is_empty() {
            req.instance_id.as_deref().and_then(|i| self.index_of_instance(i))
        } else {
            self.index_of(&req.member_id)
        };
        if !self.accepts_protocols(&req.protocol_type, &req.protocols, existing) {
            return fail(respond, GroupError::InconsistentGroupProtocol, &req.member_id);
        }
        if req.member_id.is_empty() {
            if let Some(index) = existing {
                return self.rejoin_static(now, config, index, req, respond);
            }
            if req.instance_id.is_none() && req.require_known_member_id {
                let id = new_member_id(&req.client_id);
                self.pending_members.push((id.clone(), now + Duration::from_millis(req.session_timeout_ms as u64)));
                return fail(respond, GroupError::MemberIdRequired, &id);
            }
            let id = new_member_id(&req.client_id);
            return self.add_member(now, config, id, req, respond);
        }
        if let Some(pos) = self.pending_members.iter().position(|(id, _)| *id == req.member_id) {
            let (id, _) = self.pending_members.swap_remove(pos);
            return self.add_member(now, config, id, req, respond);
        }
        let Some(index) = existing else {
            return fail(respond, GroupError::UnknownMemberId, &req.member_id);
        };
        if req.instance_id.is_some() && self.members[index].instance_id != req.instance_id {
            return fail(respond, GroupError::FencedInstanceId, &req.member_id);
        }
        let unchanged = self.members[index].same_protocols(&req.protocols);
        self.update_member(now, index, &req);
        self.members[index].awaiting_join = Some(respond);
        match self.state {
            GroupState::PreparingRebalance => self.try_complete_join(now, false),
            GroupState::CompletingRebalance if unchanged => self.answer_join_with_current_generation(index),
            GroupState::Stable if unchanged && self.leader.as_deref() != Some(req.member_id.as_str()) => {
                self.answer_join_with_current_generation(index)
            }
            GroupState::CompletingRebalance | GroupState::Stable => self.prepare_rebalance(now, config),
            GroupState::Empty | GroupState::Dead => {
                if let Some(respond) = self.members[index].awaiting_join.take() {
                    fail(respond, GroupError::UnknownMemberId, &req.member_id);
                }
            }
        }
    }

    /// A static member (group.instance.id) restarted: it takes a new member id
    /// and its old assignment, without a rebalance if nothing else changed.
    fn rejoin_static(
        &mut self,
        now: Instant,
        config: &GroupConfig,
        index: usize,
        req: JoinRequest,
        respond: Responder<JoinResponse>,
    ) {
        let new_id = new_member_id(&req.client_id);
        let member = &mut self.members[index];
        let old_id = std::mem::replace(&mut member.id, new_id.clone());
        if let Some(old) = member.awaiting_join.take() {
            let _ = old.send(JoinResponse { error: Some(GroupError::FencedInstanceId), ..Default::default() });
        }
        if let Some(old) = member.awaiting_sync.take() {
            let _ = old.send(SyncResponse { error: Some(GroupError::FencedInstanceId), ..Default::default() });
        }
        if self.leader.as_deref() == Some(old_id.as_str()) {
            self.leader = Some(new_id);
        }
        let unchanged = self.members[index].same_protocols(&req.protocols);
        self.update_member(now, index, &req);
        self.members[index].awaiting_join = Some(respond);
        // Its new member id is persisted (as Kafka does), else a restart would bring back the old one.
        self.dirty = true;
        match self.state {
            GroupState::Stable if unchanged => self.answer_join_with_current_generation(index),
            GroupState::PreparingRebalance => self.try_complete_join(now, false),
            _ => self.prepare_rebalance(now, config),
        }
    }

    fn update_member(&mut self, now: Instant, index: usize, req: &JoinRequest) {
        let member = &mut self.members[index];
        member.protocols = req.protocols.clone();
        member.session_timeout = Duration::from_millis(req.session_timeout_ms as u64);
        member.rebalance_timeout = Duration::from_millis(req.rebalance_timeout_ms as u64);
        member.client_id = req.client_id.clone();
        member.client_host = req.client_host.clone();
        member.session_deadline = now + member.session_timeout;
    }

    fn add_member(
        &mut self,
        now: Instant,
        config: &GroupConfig,
        id: String,
        req: JoinRequest,
        respond: Responder<JoinResponse>,
    ) {
        if self.members.len() >= config.max_size {
            let _ = respond.send(JoinResponse {
                error: Some(GroupError::GroupMaxSizeReached),
                member_id: id,
                ..Default::default()
            });
            return;
        }
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        let session_timeout = Duration::from_millis(req.session_timeout_ms as u64);
        self.members.push(Member {
            id,
            instance_id: req.instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            session_timeout,
            rebalance_timeout: Duration::from_millis(req.rebalance_timeout_ms as u64),
            protocols: req.protocols,
            assignment: Bytes::new(),
            awaiting_join: Some(respond),
            awaiting_sync: None,
            session_deadline: now + session_timeout,
        });
        match self.state {
            GroupState::PreparingRebalance => {
                if let Some(limit) = self.initial_delay_until {
                    // Each newcomer during the initial delay waits a little longer for the next.
                    self.rebalance_deadline = Some((now + config.initial_rebalance_delay).min(limit));
                } else {
                    self.try_complete_join(now, false);
                }
            }
            _ => self.prepare_rebalance(now, config),
        }
    }

    fn max_rebalance_timeout(&self) -> Duration {
        self.members.iter().map(|m| m.rebalance_timeout).max().unwrap_or_default()
    }

    pub fn prepare_rebalance(&mut self, now: Instant, config: &GroupConfig) {
        if self.state == GroupState::CompletingRebalance {
            for member in &mut self.members {
                if let Some(respond) = member.awaiting_sync.take() {
                    let _ = respond
                        .send(SyncResponse { error: Some(GroupError::RebalanceInProgress), ..Default::default() });
                }
            }
        }
        let from_empty = self.state == GroupState::Empty;
        self.state = GroupState::PreparingRebalance;
        let max_wait = self.max_rebalance_timeout();
        if from_empty && !config.initial_rebalance_delay.is_zero() {
            self.initial_delay_until = Some(now + max_wait);
            self.rebalance_deadline = Some(now + config.initial_rebalance_delay.min(max_wait));
        } else {
            self.initial_delay_until = None;
            self.rebalance_deadline = Some(now + max_wait);
            self.try_complete_join(now, false);
        }
    }

    /// Completes the join phase once every member rejoined (or, with `force`,
    /// at the deadline, dropping those that did not): a new generation.
    fn try_complete_join(&mut self, now: Instant, force: bool) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let all_joined = self.members.iter().all(|m| m.awaiting_join.is_some());
        if !force && (self.initial_delay_until.is_some() || !all_joined) {
            return;
        }
        self.members.retain(|m| m.awaiting_join.is_some());
        self.rebalance_deadline = None;
        self.initial_delay_until = None;
        self.generation += 1;
        self.dirty = true;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol = None;
            self.leader = None;
            return;
        }
        self.protocol = self.select_protocol();
        if self.leader.as_ref().is_none_or(|l| self.index_of(l).is_none()) {
            self.leader = Some(self.members[0].id.clone());
        }
        self.state = GroupState::CompletingRebalance;
        for index in 0..self.members.len() {
            self.members[index].session_deadline = now + self.members[index].session_timeout;
            self.answer_join_with_current_generation(index);
        }
    }

    /// The protocol every member supports that most members prefer.
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.first()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(name, _)| name)
            .filter(|name| self.members.iter().all(|m| m.protocols.iter().any(|(n, _)| n == *name)))
            .collect();
        let votes = |candidate: &String| {
            self.members
                .iter()
                .filter(|m| m.protocols.iter().map(|(n, _)| n).find(|n| candidates.contains(n)) == Some(candidate))
                .count()
        };
        // max_by_key keeps the last maximum; reverse so ties go to the first member's preference.
        candidates.iter().rev().max_by_key(|c| votes(c)).map(|c| c.to_string())
    }

    fn answer_join_with_current_generation(&mut self, index: usize) {
        let protocol = self.protocol.clone().unwrap_or_default();
        let is_leader = self.leader.as_deref() == Some(self.members[index].id.as_str());
        let members = if is_leader {
            self.members
                .iter()
                .map(|m| JoinedMember {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    metadata: m.metadata_for(&protocol),
                })
                .collect()
        } else {
            Vec::new()
        };
        let response = JoinResponse {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: self.members[index].id.clone(),
            members,
        };
        if let Some(respond) = self.members[index].awaiting_join.take() {
            let _ = respond.send(response);
        }
    }

    /// Finds a member by id, checking its static instance id.
    fn member_checked(&self, member_id: &str, instance_id: Option<&str>) -> Result<usize, GroupError> {
        if let Some(instance) = instance_id {
            if let Some(index) = self.index_of_instance(instance) {
                if self.members[index].id != member_id {
                    return Err(GroupError::FencedInstanceId);
                }
            }
        }
        self.index_of(member_id).ok_or(GroupError::UnknownMemberId)
    }

    pub fn sync(&mut self, now: Instant, req: SyncRequest, respond: Responder<SyncResponse>) {
        let fail = |respond: Responder<SyncResponse>, error| {
            let _ = respond.send(SyncResponse { error: Some(error), ..Default::default() });
        };
        let index = match self.member_checked(&req.member_id, req.instance_id.as_deref()) {
            Ok(index) => index,
            Err(e) => return fail(respond, e),
        };
        if req.generation != self.generation {
            return fail(respond, GroupError::IllegalGeneration);
        }
        let mismatch = |given: &Option<String>, ours: &Option<String>| given.is_some() && given != ours;
        if mismatch(&req.protocol_type, &self.protocol_type) || mismatch(&req.protocol, &self.protocol) {
            return fail(respond, GroupError::InconsistentGroupProtocol);
        }
        self.members[index].session_deadline = now + self.members[index].session_timeout;
        match self.state {
            GroupState::PreparingRebalance => fail(respond, GroupError::RebalanceInProgress),
            GroupState::Stable => {
                let _ = respond.send(self.sync_response(index));
            }
            GroupState::CompletingRebalance => {
                self.members[index].awaiting_sync = Some(respond);
                if self.leader.as_deref() == Some(req.member_id.as_str()) {
                    for member in &mut self.members {
                        member.assignment = req
                            .assignments
                            .iter()
                            .find(|(id, _)| *id == member.id)
                            .map(|(_, a)| a.clone())
                            .unwrap_or_default();
                    }
                    self.state = GroupState::Stable;
                    self.dirty = true;
                    for index in 0..self.members.len() {
                        if let Some(respond) = self.members[index].awaiting_sync.take() {
                            let _ = respond.send(self.sync_response(index));
                        }
                    }
                }
            }
            GroupState::Empty | GroupState::Dead => fail(respond, GroupError::UnknownMemberId),
        }
    }

    fn sync_response(&self, index: usize) -> SyncResponse {
        SyncResponse {
            error: None,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            assignment: self.members[index].assignment.clone(),
        }
    }

    pub fn heartbeat(
        &mut self,
        now: Instant,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        let index = self.member_checked(member_id, instance_id)?;
        if generation != self.generation {
            return Err(GroupError::IllegalGeneration);
        }
        self.members[index].session_deadline = now + self.members[index].session_timeout;
        match self.state {
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            GroupState::CompletingRebalance | GroupState::Stable => Ok(()),
            GroupState::Empty | GroupState::Dead => Err(GroupError::UnknownMemberId),
        }
    }

    /// Removes members; each result names the member it was about.
    pub fn leave(&mut self, now: Instant, config: &GroupConfig, members: &[MemberRef]) -> Vec<Result<(), GroupError>> {
        let results: Vec<Result<(), GroupError>> = members
            .iter()
            .map(|m| {
                let index = if m.member_id.is_empty() {
                    m.instance_id
                        .as_deref()
                        .and_then(|i| self.index_of_instance(i))
                        .ok_or(GroupError::UnknownMemberId)?
                } else {
                    self.member_checked(&m.member_id, m.instance_id.as_deref())?
                };
                self.members.remove(index);
                Ok(())
            })
            .collect();
        if results.iter().any(Result::is_ok) {
            self.dirty = true;
            self.after_members_left(now, config);
        }
        results
    }

    fn after_members_left(&mut self, now: Instant, config: &GroupConfig) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(now, config),
            GroupState::PreparingRebalance => self.try_complete_join(now, false),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// Expires sessions and pending member ids, and completes a join phase
    /// whose deadline passed.
    pub fn tick(&mut self, now: Instant, config: &GroupConfig) {
        self.pending_members.retain(|(_, deadline)| *deadline > now);
        let before = self.members.len();
        // A member waiting in JoinGroup is alive; the rebalance deadline bounds it.
        self.members.retain(|m| m.session_deadline > now || m.awaiting_join.is_some());
        if self.members.len() < before {
            tracing::info!(group = %self.id, expired = before - self.members.len(), "member sessions expired");
            self.dirty = true;
            self.after_members_left(now, config);
        }
        if self.state == GroupState::PreparingRebalance && self.rebalance_deadline.is_some_and(|d| d <= now) {
            self.try_complete_join(now, true);
        }
    }

    /// May an offset commit from this member at this generation be stored?
    pub fn validate_commit(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        if generation < 0 && self.members.is_empty() {
            // A consumer that assigns partitions itself and only stores offsets
            // here (a consumer-protocol client names its own member id too).
            return Ok(());
        }
        if generation < 0 && member_id.is_empty() {
            return Err(GroupError::UnknownMemberId);
        }
        self.member_checked(member_id, instance_id)?;
        if generation != self.generation {
            return Err(GroupError::IllegalGeneration);
        }
        match self.state {
            GroupState::CompletingRebalance => Err(GroupError::RebalanceInProgress),
            _ => Ok(()),
        }
    }

    pub fn describe_members(&self) -> Vec<MemberDescription> {
        let protocol = self.protocol.clone().unwrap_or_default();
        self.members
            .iter()
            .map(|m| MemberDescription {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: m.metadata_for(&protocol),
                assignment: m.assignment.clone(),
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Its members, for an online upgrade to a consumer group.
    pub fn classic_members(&self) -> Vec<ClassicMemberState> {
        self.members
            .iter()
            .map(|m| ClassicMemberState {
                id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                session_timeout: m.session_timeout,
                rebalance_timeout: m.rebalance_timeout,
                protocols: m.protocols.clone(),
                assignment: m.assignment.clone(),
            })
            .collect()
    }

    /// The members moved to a consumer group (online upgrade): those waiting in
    /// JoinGroup or SyncGroup rejoin (REBALANCE_IN_PROGRESS, as Kafka); this
    /// group stays Empty, holding the offsets.
    pub fn release_members(&mut self) {
        for mut member in self.members.drain(..) {
            if let Some(respond) = member.awaiting_join.take() {
                let _ = respond.send(JoinResponse {
                    error: Some(GroupError::RebalanceInProgress),
                    member_id: member.id.clone(),
                    ..Default::default()
                });
            }
            if let Some(respond) = member.awaiting_sync.take() {
                let _ =
                    respond.send(SyncResponse { error: Some(GroupError::RebalanceInProgress), ..Default::default() });
            }
        }
        self.pending_members.clear();
        self.rebalance_deadline = None;
        self.initial_delay_until = None;
        self.state = GroupState::Empty;
        self.protocol = None;
        self.leader = None;
        self.dirty = true;
    }

    /// Online downgrade: a consumer group's classic members, with their
    /// assignments, become this group's at `generation`; a rebalance follows
    /// (as Kafka's `ClassicGroup.fromConsumerGroup`).
    pub fn adopt(&mut self, now: Instant, config: &GroupConfig, generation: i32, members: Vec<ClassicMemberState>) {
        self.members = members
            .into_iter()
            .map(|m| Member {
                id: m.id,
                instance_id: m.instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                session_timeout: m.session_timeout,
                rebalance_timeout: m.rebalance_timeout,
                protocols: m.protocols,
                assignment: m.assignment,
                awaiting_join: None,
                awaiting_sync: None,
                session_deadline: now + m.session_timeout,
            })
            .collect();
        self.generation = generation;
        self.protocol_type = Some("consumer".to_string());
        self.protocol = self.select_protocol();
        self.leader = self.members.first().map(|m| m.id.clone());
        self.state = GroupState::Stable;
        self.dirty = true;
        self.prepare_rebalance(now, config);
    }

    /// What its metadata record holds. Only a Stable group's record names its
    /// leader and assignments; one written during a rebalance (after a leave,
    /// an expiry or a new generation's join) has no leader, and a restore
    /// from it rebalances.
    pub fn metadata(&self) -> GroupMetadata {
        let stable = self.state == GroupState::Stable;
        let protocol = self.protocol.clone().unwrap_or_default();
        let millis = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
        GroupMetadata {
            group_id: self.id.clone(),
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: if stable { self.leader.clone() } else { None },
            members: self
                .members
                .iter()
                .map(|m| MemberMetadata {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: millis(m.rebalance_timeout),
                    session_timeout_ms: millis(m.session_timeout),
                    subscription: m.metadata_for(&protocol),
                    assignment: if stable { m.assignment.clone() } else { Bytes::new() },
                })
                .collect(),
        }
    }

    /// Replays its metadata record at load time `now`: the members come back
    /// with their metadata for the group's protocol and their assignments,
    /// their sessions starting afresh (as Kafka does). With a leader among
    /// them and a protocol the group is Stable at the record's generation, so
    /// members heartbeat and commit without a rebalance; a record written
    /// during a rebalance brings the group back rebalancing; none is Empty.
    pub fn restore(&mut self, now: Instant, config: &GroupConfig, metadata: GroupMetadata) {
        self.generation = metadata.generation;
        self.protocol_type = Some(metadata.protocol_type).filter(|t| !t.is_empty());
        self.protocol = metadata.protocol;
        self.pending_members.clear();
        self.rebalance_deadline = None;
        self.initial_delay_until = None;
        let protocols = |subscription: Bytes| match &self.protocol {
            Some(name) => vec![(name.clone(), subscription)],
            None => Vec::new(),
        };
        let members: Vec<Member> = metadata
            .members
            .into_iter()
            .map(|m| {
                let session_timeout = Duration::from_millis(m.session_timeout_ms.max(0) as u64);
                Member {
                    id: m.member_id,
                    instance_id: m.instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout,
                    rebalance_timeout: Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64),
                    protocols: protocols(m.subscription),
                    assignment: m.assignment,
                    awaiting_join: None,
                    awaiting_sync: None,
                    session_deadline: now + session_timeout,
                }
            })
            .collect();
        self.members = members;
        self.leader = metadata.leader;
        self.dirty = false;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol = None;
            self.leader = None;
            return;
        }
        self.state = GroupState::Stable;
        let leader_known = self.leader.as_deref().is_some_and(|l| self.index_of(l).is_some());
        if !leader_known || self.protocol.is_none() {
            self.prepare_rebalance(now, config);
        }
    }

    /// Topics the members subscribe to, from the consumer protocol's metadata;
    /// `None` if the group does not use the consumer protocol.
    pub fn subscribed_topics(&self) -> Option<Vec<String>> {
        if self.protocol_type.as_deref() != Some("consumer") || self.members.is_empty() {
            return None;
        }
        let protocol = self.protocol.clone()?;
        let mut topics = Vec::new();
        for member in &self.members {
            topics.extend(parse_subscription(member.metadata_for(&protocol))?);
        }
        Some(topics)
    }
}

/// Kafka's member ids: the client id, a dash, a random UUID.
fn new_member_id(client_id: &str) -> String {
    format!("{client_id}-{}", uuid::Uuid::new_v4())
}

/// The topics of a ConsumerProtocolSubscription (any version: they all start
/// with version i16 and an array of topic names).
fn parse_subscription(mut metadata: Bytes) -> Option<Vec<String>> {
    if metadata.remaining() < 6 {
        return None;
    }
    let _version = metadata.get_i16();
    let count = metadata.get_i32();
    let mut topics = Vec::new();
    for _ in 0..count.max(0) {
        if metadata.remaining() < 2 {
            return None;
        }
        let len = metadata.get_i16();
        if len < 0 || metadata.remaining() < len as usize {
            return None;
        }
        topics.push(String::from_utf8_lossy(&metadata.split_to(len as usize)).into_owned());
    }
    Some(topics)
}
