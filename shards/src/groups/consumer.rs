//! KIP-848 consumer groups (`group.protocol=consumer`): the broker assigns.
//!
//! A group has an epoch, bumped whenever its members or their subscriptions
//! (or the topics those resolve to) change, and a target assignment computed
//! by a server-side assignor for that epoch. Each member moves towards its
//! target on its own heartbeats: partitions it must give up are first revoked
//! (the member keeps its epoch until its heartbeat shows them released), and a
//! partition is given to its new owner only once no other member still holds
//! it. A member reaching its target takes the target's epoch.
//!
//! Like [`super::group::Group`], this is a plain state machine fed requests,
//! the topics that exist and the time.

use super::GroupError;
use regex::Regex;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use uuid::Uuid;

pub(crate) mod classic;

pub(crate) use classic::ClassicMemberState;

/// Partitions by topic id.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// The assignors a member may name in `group.remote.assignor`.
pub const ASSIGNORS: [&str; 2] = ["uniform", "range"];
const DEFAULT_ASSIGNOR: &str = "uniform";

/// Epoch values with a meaning in requests.
pub const LEAVE_EPOCH: i32 = -1;
pub const STATIC_LEAVE_EPOCH: i32 = -2;

/// A topic as the assignors see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub id: Uuid,
    pub partitions: i32,
}

/// The topics that exist, by name (internal topics left out).
pub type Topics = BTreeMap<String, TopicInfo>;

#[derive(Debug, Clone, Default)]
pub struct ConsumerHeartbeat {
    pub group_id: String,
    /// Empty on a v0 join: the coordinator names the member.
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    /// `None`: unchanged since the last heartbeat.
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// The partitions the member owns now; `None`: unchanged.
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerHeartbeatResponse {
    pub error: Option<GroupError>,
    pub error_message: Option<String>,
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// Sent when it changed, on a join, or when the member reported what it owns.
    pub assignment: Option<Assignment>,
}

impl ConsumerHeartbeatResponse {
    fn error(error: GroupError, message: impl Into<String>) -> Self {
        ConsumerHeartbeatResponse { error: Some(error), error_message: Some(message.into()), ..Default::default() }
    }
}

/// Where a member stands against its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    Stable,
    /// It must release partitions first.
    UnrevokedPartitions,
    /// Partitions of its target are still held by other members.
    UnreleasedPartitions,
}

#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub epoch: i32,
    previous_epoch: i32,
    rebalance_timeout: Duration,
    pub subscribed_names: Vec<String>,
    pub regex: Option<String>,
    compiled: Option<Regex>,
    /// Kafka resolves a new regex asynchronously: its topics count from the
    /// group's next heartbeat on (the member's literal topics are assigned first).
    regex_resolved: bool,
    assignor: Option<String>,
    pub assigned: Assignment,
    revoking: Assignment,
    session_deadline: Instant,
    /// A member that does not release its partitions by then is fenced.
    revoke_deadline: Option<Instant>,
    /// A static member that left with epoch -2: its instance may come back
    /// within the session timeout and take its place.
    static_left: bool,
    /// Set for a member of the classic protocol (JoinGroup, SyncGroup,
    /// Heartbeat) in this group: Kafka 4 lets both kinds share a group.
    classic: Option<classic::ClassicMember>,
}

impl Member {
    /// A new member: no subscription, nothing assigned, epoch 0.
    fn new(id: String, rebalance_timeout: Duration, session_deadline: Instant) -> Member {
        Member {
            id,
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            epoch: 0,
            previous_epoch: 0,
            rebalance_timeout,
            subscribed_names: Vec::new(),
            regex: None,
            compiled: None,
            regex_resolved: false,
            assignor: None,
            assigned: Assignment::new(),
            revoking: Assignment::new(),
            session_deadline,
            revoke_deadline: None,
            static_left: false,
            classic: None,
        }
    }

    pub fn state(&self, target: Option<&Assignment>) -> MemberState {
        if !self.revoking.is_empty() {
            MemberState::UnrevokedPartitions
        } else if target.is_some_and(|t| t != &self.assigned) {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        }
    }

    fn subscribes(&self, topic: &str) -> bool {
        self.subscribed_names.iter().any(|t| t == topic)
            || self.regex_resolved && self.compiled.as_ref().is_some_and(|r| r.is_match(topic))
    }
}

/// The group's state as ConsumerGroupDescribe and ListGroups name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerGroupState {
    Empty,
    Assigning,
    Reconciling,
    Stable,
}

impl ConsumerGroupState {
    pub fn name(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::Assigning => "Assigning",
            ConsumerGroupState::Reconciling => "Reconciling",
            ConsumerGroupState::Stable => "Stable",
        }
    }
}

/// Timing settings of consumer groups (`group.consumer.*`).
#[derive(Debug, Clone)]
pub struct ConsumerGroupConfig {
    pub session_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub max_size: usize,
}

pub(crate) struct ConsumerGroup {
    pub id: String,
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, Member>,
    pub target: BTreeMap<String, Assignment>,
    /// The subscribed topics the target was computed for.
    subscribed: Topics,
    pub assignor: String,
    /// Set when the group epoch changed and its record is not yet written.
    pub changed: bool,
}

/// A member of a group as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone)]
pub struct ConsumerMemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    /// A member of the classic protocol (ConsumerGroupDescribe v1's member type).
    pub classic: bool,
    /// (topic id, topic name, partitions).
    pub assignment: Vec<(Uuid, String, Vec<i32>)>,
    pub target_assignment: Vec<(Uuid, String, Vec<i32>)>,
}

#[derive(Debug, Clone)]
pub struct ConsumerGroupDescription {
    pub group_id: String,
    pub state: ConsumerGroupState,
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: Vec<ConsumerMemberDescription>,
}

#[cfg(test)]
fn count(a: &Assignment) -> usize {
    a.values().map(BTreeSet::len).sum()
}

fn intersect(a: &Assignment, b: &Assignment) -> Assignment {
    minus_or_and(a, b, true)
}

fn minus(a: &Assignment, b: &Assignment) -> Assignment {
    minus_or_and(a, b, false)
}

fn minus_or_and(a: &Assignment, b: &Assignment, keep_common: bool) -> Assignment {
    let mut out = Assignment::new();
    for (topic, parts) in a {
        let other = b.get(topic);
        let kept: BTreeSet<i32> =
            parts.iter().copied().filter(|p| other.is_some_and(|o| o.contains(p)) == keep_common).collect();
        if !kept.is_empty() {
            out.insert(*topic, kept);
        }
    }
    out
}

fn overlaps(a: &Assignment, b: &Assignment) -> bool {
    a.iter().any(|(t, parts)| b.get(t).is_some_and(|o| !parts.is_disjoint(o)))
}

impl ConsumerGroup {
    pub fn new(id: String) -> ConsumerGroup {
        ConsumerGroup {
            id,
            epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            subscribed: Topics::new(),
            assignor: DEFAULT_ASSIGNOR.to_string(),
            changed: false,
        }
    }

    /// A group restored from its epoch record after a restart: no members.
    pub fn restored(id: String, epoch: i32) -> ConsumerGroup {
        ConsumerGroup { epoch, assignment_epoch: epoch, ..ConsumerGroup::new(id) }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            ConsumerGroupState::Empty
        } else if self.assignment_epoch < self.epoch {
            ConsumerGroupState::Assigning
        } else if self
            .members
            .values()
            .any(|m| m.epoch != self.assignment_epoch || m.state(self.target.get(&m.id)) != MemberState::Stable)
        {
            ConsumerGroupState::Reconciling
        } else {
            ConsumerGroupState::Stable
        }
    }

    fn bump_epoch(&mut self) {
        self.epoch += 1;
        self.changed = true;
    }

    pub fn heartbeat(
        &mut self,
        now: Instant,
        config: &ConsumerGroupConfig,
        topics: &Topics,
        req: ConsumerHeartbeat,
    ) -> ConsumerHeartbeatResponse {
        if let Some(assignor) = &req.server_assignor {
            if !ASSIGNORS.contains(&assignor.as_str()) {
                return ConsumerHeartbeatResponse::error(
                    GroupError::UnsupportedAssignor,
                    format!("Assignor {assignor} is not supported. Supported assignors: uniform, range."),
                );
            }
        }
        let compiled = match req.subscribed_topic_regex.as_deref().filter(|r| !r.is_empty()) {
            Some(re) => match Regex::new(&format!("^(?:{re})$")) {
                Ok(r) => Some(r),
                Err(e) => {
                    return ConsumerHeartbeatResponse::error(
                        GroupError::InvalidRegularExpression,
                        format!("SubscribedTopicRegex {re} is invalid: {e}"),
                    )
                }
            },
            None => None,
        };
        let interval = config.heartbeat_interval.as_millis() as i32;
        // Regexes given before this heartbeat are resolved by now.
        let mut resolved_now = false;
        for member in self.members.values_mut() {
            resolved_now |= member.regex.is_some() && !member.regex_resolved;
            member.regex_resolved = true;
        }
        if resolved_now {
            // Its member subscribes to more now, even where the group's topics stay the same.
            self.bump_epoch();
        }
        if req.member_epoch == LEAVE_EPOCH || req.member_epoch == STATIC_LEAVE_EPOCH {
            return self.leave(&req, interval);
        }
        let (member_id, created) = match self.member_for(now, config, &req) {
            Ok(found) => found,
            Err(response) => return response,
        };
        let member = self.members.get_mut(&member_id).expect("member_for returns a member");
        member.session_deadline = now + config.session_timeout;
        member.client_id = req.client_id.clone();
        member.client_host = req.client_host.clone();
        if req.rebalance_timeout_ms > 0 {
            member.rebalance_timeout = Duration::from_millis(req.rebalance_timeout_ms as u64);
        }
        if req.rack_id.is_some() {
            member.rack_id = req.rack_id.clone();
        }
        let mut subscription_changed = false;
        if let Some(names) = &req.subscribed_topic_names {
            let mut names = names.clone();
            names.sort();
            names.dedup();
            subscription_changed |= names != member.subscribed_names;
            member.subscribed_names = names;
        }
        if let Some(re) = &req.subscribed_topic_regex {
            let re = Some(re.clone()).filter(|r| !r.is_empty());
            if re != member.regex {
                subscription_changed = true;
                member.regex_resolved = false;
            }
            member.regex = re;
            member.compiled = compiled;
        }
        if req.server_assignor.is_some() && req.server_assignor != member.assignor {
            member.assignor = req.server_assignor.clone();
            subscription_changed = true;
        }
        let joined_now = req.member_epoch == 0;
        if subscription_changed || created {
            self.bump_epoch();
        }
        self.refresh_subscribed(topics);
        if self.assignment_epoch < self.epoch {
            self.compute_target();
        }
        let before = self.members[&member_id].assigned.clone();
        self.reconcile(now, &member_id, req.owned.as_ref());
        let member = &self.members[&member_id];
        let send_assignment = req.owned.is_some() || joined_now || member.assigned != before;
        ConsumerHeartbeatResponse {
            error: None,
            error_message: None,
            member_id: member.id.clone(),
            member_epoch: member.epoch,
            heartbeat_interval_ms: interval,
            assignment: send_assignment.then(|| member.assigned.clone()),
        }
    }

    /// The member the request is from (and whether it was created now),
    /// created or taken over on a join; errors for unknown or fenced members.
    fn member_for(
        &mut self,
        now: Instant,
        config: &ConsumerGroupConfig,
        req: &ConsumerHeartbeat,
    ) -> Result<(String, bool), ConsumerHeartbeatResponse> {
        if req.member_epoch == 0 {
            if let Some(instance) = &req.instance_id {
                let holder = self.members.values().find(|m| m.instance_id.as_ref() == Some(instance)).cloned();
                if let Some(old) = holder {
                    if old.id == req.member_id {
                        return Ok((old.id, false));
                    }
                    if !old.static_left {
                        return Err(ConsumerHeartbeatResponse::error(
                            GroupError::UnreleasedInstanceId,
                            format!("Static member {instance} is still in the group with another member id."),
                        ));
                    }
                    // The instance came back: the new member takes the old one's place and assignment.
                    let id = new_member_id(&req.member_id);
                    self.members.remove(&old.id);
                    let target = self.target.remove(&old.id);
                    let member = Member { id: id.clone(), static_left: false, previous_epoch: old.epoch, ..old };
                    self.members.insert(id.clone(), member);
                    if let Some(t) = target {
                        self.target.insert(id.clone(), t);
                    }
                    return Ok((id, false));
                }
            }
            if let Some(m) = self.members.get(&req.member_id) {
                // A member that lost its state rejoins: it owns nothing now.
                return Ok((m.id.clone(), false));
            }
            if self.members.len() >= config.max_size {
                return Err(ConsumerHeartbeatResponse::error(
                    GroupError::GroupMaxSizeReached,
                    format!("The group has reached its maximum size of {}.", config.max_size),
                ));
            }
            if req.subscribed_topic_names.is_none() && req.subscribed_topic_regex.is_none() {
                // A member id the group no longer has (it left, or was
                // fenced) sending a partial heartbeat: librdkafka sends one
                // at epoch 0 after leaving on max.poll.interval.ms; it is
                // told to rejoin rather than failed for good.
                if !req.member_id.is_empty() {
                    return Err(ConsumerHeartbeatResponse::error(
                        GroupError::UnknownMemberId,
                        format!("Member {} is not a member of group {}.", req.member_id, self.id),
                    ));
                }
                return Err(ConsumerHeartbeatResponse::error(
                    GroupError::InvalidRequest,
                    "SubscribedTopicNames or SubscribedTopicRegex must be set in the first request.",
                ));
            }
            let id = new_member_id(&req.member_id);
            let rebalance_timeout = Duration::from_millis(req.rebalance_timeout_ms.max(0) as u64);
            let member = Member {
                instance_id: req.instance_id.clone(),
                ..Member::new(id.clone(), rebalance_timeout, now + config.session_timeout)
            };
            self.members.insert(id.clone(), member);
            return Ok((id, true));
        }
        let Some(member) = self.members.get(&req.member_id) else {
            return Err(ConsumerHeartbeatResponse::error(
                GroupError::UnknownMemberId,
                format!("Member {} is not a member of group {}.", req.member_id, self.id),
            ));
        };
        if member.instance_id.is_some() && req.instance_id.is_some() && member.instance_id != req.instance_id {
            return Err(ConsumerHeartbeatResponse::error(
                GroupError::FencedInstanceId,
                "The instance id does not match the member's.",
            ));
        }
        let fenced = req.member_epoch > member.epoch
            || req.member_epoch < member.epoch
                && (req.member_epoch != member.previous_epoch
                    || req.owned.as_ref().is_none_or(|owned| !minus(owned, &member.assigned).is_empty()));
        if fenced {
            return Err(ConsumerHeartbeatResponse::error(
                GroupError::FencedMemberEpoch,
                format!("The member epoch {} is not the current {}.", req.member_epoch, member.epoch),
            ));
        }
        Ok((member.id.clone(), false))
    }

    fn leave(&mut self, req: &ConsumerHeartbeat, interval: i32) -> ConsumerHeartbeatResponse {
        let id = match (&req.instance_id, self.members.get(&req.member_id)) {
            (_, Some(m)) => m.id.clone(),
            (Some(instance), None) => match self.members.values().find(|m| m.instance_id.as_ref() == Some(instance)) {
                Some(m) => m.id.clone(),
                None => {
                    return ConsumerHeartbeatResponse::error(
                        GroupError::UnknownMemberId,
                        format!("Instance {instance} is not a member of group {}.", self.id),
                    )
                }
            },
            (None, None) => {
                return ConsumerHeartbeatResponse::error(
                    GroupError::UnknownMemberId,
                    format!("Member {} is not a member of group {}.", req.member_id, self.id),
                )
            }
        };
        if req.member_epoch == STATIC_LEAVE_EPOCH && req.instance_id.is_some() {
            // It keeps its place (and assignment) until its session expires.
            let member = self.members.get_mut(&id).expect("found above");
            member.static_left = true;
            member.revoking.clear();
        } else {
            self.remove_member(&id);
        }
        ConsumerHeartbeatResponse {
            member_id: req.member_id.clone(),
            member_epoch: req.member_epoch,
            heartbeat_interval_ms: interval,
            ..Default::default()
        }
    }

    fn remove_member(&mut self, id: &str) {
        if self.members.remove(id).is_some() {
            self.target.remove(id);
            self.bump_epoch();
        }
    }

    /// Resolves every member's subscription against the topics that exist;
    /// a change (a topic created, deleted or grown) bumps the epoch.
    fn refresh_subscribed(&mut self, topics: &Topics) {
        let subscribed = self.resolve_subscribed(topics);
        if subscribed != self.subscribed {
            self.subscribed = subscribed;
            self.bump_epoch();
        }
    }

    /// The topics that exist that some member subscribes to.
    fn resolve_subscribed(&self, topics: &Topics) -> Topics {
        topics
            .iter()
            .filter(|(name, _)| self.members.values().any(|m| m.subscribes(name)))
            .map(|(name, info)| (name.clone(), info.clone()))
            .collect()
    }

    /// The topics the group's members subscribe to (as last resolved).
    pub fn subscribed_topics(&self) -> impl Iterator<Item = &str> {
        self.subscribed.keys().map(String::as_str)
    }

    fn compute_target(&mut self) {
        // The assignor most members prefer, else the default.
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = &m.assignor {
                *votes.entry(a.as_str()).or_default() += 1;
            }
        }
        let assignor = votes
            .iter()
            .max_by_key(|(name, n)| (**n, std::cmp::Reverse(**name)))
            .map_or(DEFAULT_ASSIGNOR, |(name, _)| *name)
            .to_string();
        let members: Vec<(&str, Vec<(&Uuid, i32)>)> = self
            .members
            .values()
            .map(|m| {
                let topics = self
                    .subscribed
                    .iter()
                    .filter(|(name, _)| m.subscribes(name))
                    .map(|(_, info)| (&info.id, info.partitions))
                    .collect();
                (m.id.as_str(), topics)
            })
            .collect();
        let target = if assignor == "range" { range_assign(&members) } else { uniform_assign(&members, &self.target) };
        self.assignor = assignor;
        self.target = target;
        self.assignment_epoch = self.epoch;
    }

    /// Moves a member towards its target, as far as the other members allow.
    fn reconcile(&mut self, now: Instant, id: &str, owned: Option<&Assignment>) {
        let target = self.target.get(id).cloned().unwrap_or_default();
        let assignment_epoch = self.assignment_epoch;
        let held_by_others: Assignment = {
            let mut held = Assignment::new();
            for m in self.members.values().filter(|m| m.id != id) {
                for (t, parts) in m.assigned.iter().chain(m.revoking.iter()) {
                    held.entry(*t).or_default().extend(parts);
                }
            }
            held
        };
        let member = self.members.get_mut(id).expect("reconciling a member");
        if !member.revoking.is_empty() {
            let released = owned.is_some_and(|o| !overlaps(o, &member.revoking));
            if !released {
                return;
            }
            member.revoking.clear();
            member.revoke_deadline = None;
        }
        if member.epoch == assignment_epoch && member.assigned == target {
            return;
        }
        let revoke = minus(&member.assigned, &target);
        if !revoke.is_empty() {
            member.assigned = intersect(&member.assigned, &target);
            member.revoking = revoke;
            member.revoke_deadline = Some(now + member.rebalance_timeout);
            return;
        }
        if member.epoch != assignment_epoch {
            member.previous_epoch = member.epoch;
            member.epoch = assignment_epoch;
        }
        member.assigned = minus(&target, &held_by_others);
    }

    /// Expires sessions and revocations past their deadline; returns whether
    /// members were removed.
    pub fn tick(&mut self, now: Instant) -> bool {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.session_deadline <= now || m.revoke_deadline.is_some_and(|d| d <= now))
            .map(|m| m.id.clone())
            .collect();
        for id in &expired {
            tracing::info!(
                group = self.id,
                member = id,
                "consumer group member fenced (session or revocation timeout)"
            );
            self.remove_member(id);
        }
        !expired.is_empty()
    }

    /// OffsetCommit / OffsetFetch from a member: it must exist with its current epoch.
    pub fn validate_member(&self, member_id: &str, epoch: i32) -> Result<(), GroupError> {
        let member = self.members.get(member_id).ok_or(GroupError::UnknownMemberId)?;
        if epoch != member.epoch {
            // A classic member names its epoch as a generation (as Kafka answers it).
            return Err(if member.classic.is_some() {
                GroupError::IllegalGeneration
            } else {
                GroupError::StaleMemberEpoch
            });
        }
        Ok(())
    }

    pub fn describe(&self) -> ConsumerGroupDescription {
        let names: BTreeMap<Uuid, &str> = self.subscribed.iter().map(|(n, i)| (i.id, n.as_str())).collect();
        let named = |a: &Assignment| -> Vec<(Uuid, String, Vec<i32>)> {
            a.iter()
                .map(|(t, parts)| {
                    (*t, names.get(t).map_or_else(String::new, |n| n.to_string()), parts.iter().copied().collect())
                })
                .collect()
        };
        ConsumerGroupDescription {
            group_id: self.id.clone(),
            state: self.state(),
            epoch: self.epoch,
            assignment_epoch: self.assignment_epoch,
            assignor: self.assignor.clone(),
            members: self
                .members
                .values()
                .map(|m| ConsumerMemberDescription {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    member_epoch: if m.static_left { STATIC_LEAVE_EPOCH } else { m.epoch },
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_topic_names: m.subscribed_names.clone(),
                    subscribed_topic_regex: m.regex.clone(),
                    classic: m.classic.is_some(),
                    assignment: named(&m.assigned),
                    target_assignment: named(self.target.get(&m.id).unwrap_or(&Assignment::new())),
                })
                .collect(),
        }
    }
}

fn new_member_id(requested: &str) -> String {
    if requested.is_empty() {
        Uuid::new_v4().to_string()
    } else {
        requested.to_string()
    }
}

/// Kafka's range assignor, per topic: the members subscribed to it, in id
/// order, each take a contiguous range; the first `partitions % members` one more.
fn range_assign(members: &[(&str, Vec<(&Uuid, i32)>)]) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> =
        members.iter().map(|(id, _)| (id.to_string(), Assignment::new())).collect();
    let mut by_topic: BTreeMap<&Uuid, (i32, Vec<&str>)> = BTreeMap::new();
    for (id, topics) in members {
        for (topic, partitions) in topics {
            by_topic.entry(topic).or_insert((*partitions, Vec::new())).1.push(id);
        }
    }
    for (topic, (partitions, mut subscribers)) in by_topic {
        subscribers.sort();
        let n = subscribers.len() as i32;
        let (each, extra) = (partitions / n, partitions % n);
        let mut next = 0;
        for (i, id) in subscribers.into_iter().enumerate() {
            let take = each + i32::from((i as i32) < extra);
            if take > 0 {
                out.get_mut(id).expect("a member").insert(*topic, (next..next + take).collect());
            }
            next += take;
        }
    }
    out
}

/// A balanced assignment that keeps partitions where they were: each member
/// keeps up to its share of its previous target, and the rest go to the
/// least loaded members subscribed to their topic.
fn uniform_assign(
    members: &[(&str, Vec<(&Uuid, i32)>)],
    previous: &BTreeMap<String, Assignment>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> =
        members.iter().map(|(id, _)| (id.to_string(), Assignment::new())).collect();
    if members.is_empty() {
        return out;
    }
    let all: BTreeSet<(Uuid, i32)> = members
        .iter()
        .flat_map(|(_, topics)| topics.iter().flat_map(|(t, n)| (0..*n).map(move |p| (**t, p))))
        .collect();
    let subscribed = |id: &str, topic: &Uuid| {
        members.iter().find(|(m, _)| *m == id).is_some_and(|(_, topics)| topics.iter().any(|(t, _)| *t == topic))
    };
    let (floor, mut extra) = (all.len() / members.len(), all.len() % members.len());
    let mut taken: BTreeSet<(Uuid, i32)> = BTreeSet::new();
    let mut loads: BTreeMap<&str, usize> = members.iter().map(|(id, _)| (*id, 0)).collect();
    // Sticky pass: up to the floor share, then one more while extras remain.
    for pass in 0..2 {
        for (id, _) in members {
            let Some(prev) = previous.get(*id) else { continue };
            for (topic, parts) in prev {
                for p in parts {
                    let load = loads[id];
                    let room = load < floor || (pass == 1 && load == floor && extra > 0);
                    if !room || !all.contains(&(*topic, *p)) || taken.contains(&(*topic, *p)) || !subscribed(id, topic)
                    {
                        continue;
                    }
                    if load == floor {
                        extra -= 1;
                    }
                    taken.insert((*topic, *p));
                    out.get_mut(*id).expect("a member").entry(*topic).or_default().insert(*p);
                    *loads.get_mut(id).expect("a member") += 1;
                }
            }
        }
    }
    for (topic, p) in all.iter().filter(|tp| !taken.contains(tp)) {
        let least = members
            .iter()
            .filter(|(id, _)| subscribed(id, topic))
            .min_by_key(|(id, _)| (loads[id], *id))
            .map(|(id, _)| *id)
            .expect("a subscriber of every subscribed topic");
        out.get_mut(least).expect("a member").entry(*topic).or_default().insert(*p);
        *loads.get_mut(least).expect("a member") += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ConsumerGroupConfig {
        ConsumerGroupConfig {
            session_timeout: Duration::from_secs(45),
            heartbeat_interval: Duration::from_secs(5),
            max_size: 100,
        }
    }

    fn topics(list: &[(&str, u128, i32)]) -> Topics {
        list.iter().map(|(n, id, p)| (n.to_string(), TopicInfo { id: Uuid::from_u128(*id), partitions: *p })).collect()
    }

    fn join(id: &str, names: &[&str]) -> ConsumerHeartbeat {
        ConsumerHeartbeat {
            group_id: "g".into(),
            member_id: id.into(),
            member_epoch: 0,
            rebalance_timeout_ms: 30_000,
            subscribed_topic_names: Some(names.iter().map(|s| s.to_string()).collect()),
            owned: Some(Assignment::new()),
            ..Default::default()
        }
    }

    fn beat(id: &str, epoch: i32, owned: Option<&Assignment>) -> ConsumerHeartbeat {
        ConsumerHeartbeat {
            group_id: "g".into(),
            member_id: id.into(),
            member_epoch: epoch,
            owned: owned.cloned(),
            ..Default::default()
        }
    }

    fn parts(a: &Assignment) -> usize {
        count(a)
    }

    #[test]
    fn a_partition_moves_only_after_its_owner_released_it() {
        let (mut g, now, t) = (ConsumerGroup::new("g".into()), Instant::now(), topics(&[("t", 1, 4)]));
        let a = g.heartbeat(now, &config(), &t, join("a", &["t"]));
        assert_eq!((a.error, a.member_epoch), (None, 2), "join bumps once, the new topic once more");
        let a_owned = a.assignment.clone().unwrap();
        assert_eq!(parts(&a_owned), 4);
        // b joins: the target gives it two of a's partitions, but a still holds them.
        let b = g.heartbeat(now, &config(), &t, join("b", &["t"]));
        assert_eq!(b.member_epoch, 3);
        assert_eq!(parts(b.assignment.as_ref().unwrap()), 0, "nothing released yet");
        assert_eq!(g.state(), ConsumerGroupState::Reconciling);
        // a learns it must give two up and keeps its epoch until it has.
        let a2 = g.heartbeat(now, &config(), &t, beat("a", 2, None));
        assert_eq!(a2.member_epoch, 2);
        let kept = a2.assignment.unwrap();
        assert_eq!(parts(&kept), 2);
        let b2 = g.heartbeat(now, &config(), &t, beat("b", 3, None));
        assert_eq!(b2.assignment, None, "still nothing free");
        // a's heartbeat shows the two released: it moves to epoch 3, b gets them.
        let a3 = g.heartbeat(now, &config(), &t, beat("a", 2, Some(&kept)));
        assert_eq!(a3.member_epoch, 3);
        let b3 = g.heartbeat(now, &config(), &t, beat("b", 3, Some(&Assignment::new())));
        let b_owned = b3.assignment.unwrap();
        assert_eq!(parts(&b_owned), 2);
        assert!(!overlaps(&b_owned, &kept));
        assert_eq!(g.state(), ConsumerGroupState::Stable);
        // Stale and unknown members.
        let stale = g.heartbeat(now, &config(), &t, beat("b", 7, None));
        assert_eq!(stale.error, Some(GroupError::FencedMemberEpoch));
        let unknown = g.heartbeat(now, &config(), &t, beat("zz", 3, None));
        assert_eq!(unknown.error, Some(GroupError::UnknownMemberId));
        assert_eq!(g.validate_member("b", 3), Ok(()));
        assert_eq!(g.validate_member("b", 2), Err(GroupError::StaleMemberEpoch));
    }

    #[test]
    fn expired_sessions_and_leaves_give_partitions_back() {
        let (mut g, now, t) = (ConsumerGroup::new("g".into()), Instant::now(), topics(&[("t", 1, 2)]));
        g.heartbeat(now, &config(), &t, join("a", &["t"]));
        let b = g.heartbeat(now, &config(), &t, join("b", &["t"]));
        let a = g.heartbeat(now, &config(), &t, beat("a", 2, None));
        let kept = a.assignment.unwrap();
        g.heartbeat(now, &config(), &t, beat("a", 2, Some(&kept)));
        let b = g.heartbeat(now, &config(), &t, beat("b", b.member_epoch, Some(&Assignment::new())));
        assert_eq!(parts(b.assignment.as_ref().unwrap()), 1);
        // a stops heartbeating; b keeps going.
        let later = now + Duration::from_secs(40);
        g.heartbeat(later, &config(), &t, beat("b", b.member_epoch, None));
        assert!(g.tick(now + Duration::from_secs(46)));
        let b = g.heartbeat(later, &config(), &t, beat("b", b.member_epoch, None));
        assert_eq!(parts(b.assignment.as_ref().unwrap()), 2, "b takes a's partition");
        let gone = g.heartbeat(later, &config(), &t, beat("a", 3, None));
        assert_eq!(gone.error, Some(GroupError::UnknownMemberId));
        let left = g.heartbeat(later, &config(), &t, beat("b", LEAVE_EPOCH, None));
        assert_eq!((left.error, left.member_epoch), (None, LEAVE_EPOCH));
        assert_eq!(g.state(), ConsumerGroupState::Empty);
    }

    #[test]
    fn topics_created_deleted_or_grown_change_the_assignment() {
        let (mut g, now) = (ConsumerGroup::new("g".into()), Instant::now());
        let mut req = join("a", &[]);
        req.subscribed_topic_regex = Some("orders-.*".into());
        let t = topics(&[("orders-1", 1, 1), ("other", 2, 3)]);
        let a = g.heartbeat(now, &config(), &t, req);
        assert_eq!(a.assignment.unwrap(), Assignment::new(), "the regex is resolved by the next heartbeat");
        let a = g.heartbeat(now, &config(), &t, beat("a", a.member_epoch, None));
        assert_eq!(a.assignment.unwrap(), Assignment::from([(Uuid::from_u128(1), BTreeSet::from([0]))]));
        let t = topics(&[("orders-1", 1, 2), ("orders-2", 3, 1), ("other", 2, 3)]);
        let a = g.heartbeat(now, &config(), &t, beat("a", a.member_epoch, None));
        assert_eq!(parts(a.assignment.as_ref().unwrap()), 3, "grown and created topics are assigned");
        // orders-1 is deleted: its partitions are revoked first.
        let t = topics(&[("orders-2", 3, 1), ("other", 2, 3)]);
        let owned = a.assignment.unwrap();
        let a = g.heartbeat(now, &config(), &t, beat("a", a.member_epoch, None));
        let kept = a.assignment.unwrap();
        assert_eq!(kept, Assignment::from([(Uuid::from_u128(3), BTreeSet::from([0]))]));
        let a2 = g.heartbeat(now, &config(), &t, beat("a", a.member_epoch, Some(&kept)));
        assert!(a2.member_epoch > a.member_epoch);
        assert!(owned.len() > kept.len());
        let mut bad = join("b", &[]);
        bad.subscribed_topic_regex = Some("(".into());
        assert_eq!(g.heartbeat(now, &config(), &t, bad).error, Some(GroupError::InvalidRegularExpression));
    }

    /// What librdkafka's 0045 topic_remove and partchange tests watch, as Kafka 4's
    /// KIP-848 coordinator does it: a deleted topic takes only its own partitions
    /// away and added partitions only add; what stays assigned is never revoked.
    #[test]
    fn named_topics_deleted_or_grown_never_revoke_what_stays() {
        let (mut g, now) = (ConsumerGroup::new("g".into()), Instant::now());
        let (f, gt) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let t = topics(&[("f", 1, 2), ("g", 2, 3)]);
        let a = g.heartbeat(now, &config(), &t, join("a", &["f", "g"]));
        let owned = a.assignment.unwrap();
        assert_eq!(parts(&owned), 5);
        let a = g.heartbeat(now, &config(), &t, beat("a", a.member_epoch, Some(&owned)));
        // f is deleted: the next assignment is g's partitions exactly, kept as they were.
        let t = topics(&[("g", 2, 3)]);
        let a = g.heartbeat(now, &config(), &t, beat("a", a.member_epoch, Some(&owned)));
        let kept = a.assignment.unwrap();
        assert_eq!(kept, Assignment::from([(gt, BTreeSet::from([0, 1, 2]))]));
        assert!(!kept.contains_key(&f));
        let a = g.heartbeat(now, &config(), &t, beat("a", a.member_epoch, Some(&kept)));
        // g grows to 5 partitions: the new two are added, nothing is taken away first.
        let t = topics(&[("g", 2, 5)]);
        let a = g.heartbeat(now, &config(), &t, beat("a", a.member_epoch, Some(&kept)));
        let grown = a.assignment.unwrap();
        assert_eq!(grown, Assignment::from([(gt, BTreeSet::from([0, 1, 2, 3, 4]))]));
        assert!(minus(&kept, &grown).is_empty(), "nothing owned was revoked");
    }

    #[test]
    fn a_second_regex_member_gets_its_share_once_its_regex_is_resolved() {
        let (mut g, now, t) = (ConsumerGroup::new("g".into()), Instant::now(), topics(&[("re-1", 1, 4)]));
        let with_regex = |id: &str| ConsumerHeartbeat { subscribed_topic_regex: Some("re-.*".into()), ..join(id, &[]) };
        let a = g.heartbeat(now, &config(), &t, with_regex("a"));
        let b = g.heartbeat(now, &config(), &t, with_regex("b"));
        let a = g.heartbeat(now, &config(), &t, beat("a", a.member_epoch, None));
        let kept = a.assignment.unwrap();
        let a = g.heartbeat(now, &config(), &t, beat("a", a.member_epoch, Some(&kept)));
        let b = g.heartbeat(now, &config(), &t, beat("b", b.member_epoch, Some(&Assignment::new())));
        assert_eq!(a.error, None);
        assert_eq!((count(&kept), count(b.assignment.as_ref().unwrap())), (2, 2));
    }

    #[test]
    fn static_members_come_back_to_their_assignment() {
        let (mut g, now, t) = (ConsumerGroup::new("g".into()), Instant::now(), topics(&[("t", 1, 3)]));
        let mut req = join("a", &["t"]);
        req.instance_id = Some("i".into());
        let a = g.heartbeat(now, &config(), &t, req.clone());
        let epoch = g.epoch;
        let mut leave = beat("a", STATIC_LEAVE_EPOCH, None);
        leave.instance_id = Some("i".into());
        assert_eq!(g.heartbeat(now, &config(), &t, leave).member_epoch, STATIC_LEAVE_EPOCH);
        req.member_id = "a2".into();
        let back = g.heartbeat(now, &config(), &t, req.clone());
        assert_eq!((back.error, back.member_epoch, g.epoch), (None, a.member_epoch, epoch), "no rebalance");
        assert_eq!(back.assignment, a.assignment);
        req.member_id = "a3".into();
        assert_eq!(g.heartbeat(now, &config(), &t, req).error, Some(GroupError::UnreleasedInstanceId));
    }

    #[test]
    fn assignors_balance_and_range_splits_per_topic() {
        let (t1, t2) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let members = vec![("a", vec![(&t1, 3), (&t2, 3)]), ("b", vec![(&t1, 3), (&t2, 3)])];
        let range = range_assign(&members);
        assert_eq!(range["a"], Assignment::from([(t1, BTreeSet::from([0, 1])), (t2, BTreeSet::from([0, 1]))]));
        assert_eq!(range["b"], Assignment::from([(t1, BTreeSet::from([2])), (t2, BTreeSet::from([2]))]));
        let uniform = uniform_assign(&members, &BTreeMap::new());
        assert_eq!((count(&uniform["a"]), count(&uniform["b"])), (3, 3));
        // A third member: the others keep two each and give one up.
        let three = vec![members[0].clone(), members[1].clone(), ("c", vec![(&t1, 3), (&t2, 3)])];
        let next = uniform_assign(&three, &uniform);
        assert_eq!((count(&next["a"]), count(&next["b"]), count(&next["c"])), (2, 2, 2));
        assert!(minus(&next["a"], &uniform["a"]).is_empty(), "a keeps what it had");
        assert!(minus(&next["b"], &uniform["b"]).is_empty());
    }
}
