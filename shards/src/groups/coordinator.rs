//! All groups one shard owns, and their committed offsets.

use super::consumer::{
    ClassicMemberState, ConsumerGroup, ConsumerGroupConfig, ConsumerGroupDescription, ConsumerHeartbeat,
    ConsumerHeartbeatResponse, Topics, LEAVE_EPOCH,
};
use super::group::{Group, GroupState};
use super::{
    CommittedOffset, GroupDescription, GroupError, GroupListing, JoinRequest, JoinResponse, MemberRef, Responder,
    SyncRequest, SyncResponse,
};
use bytes::Bytes;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Kafka's `group.*` settings.
#[derive(Clone, Debug)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms`: a new group waits this long for more members.
    pub initial_rebalance_delay: Duration,
    /// `group.min.session.timeout.ms` / `group.max.session.timeout.ms`.
    pub min_session_timeout: Duration,
    pub max_session_timeout: Duration,
    /// `group.max.size`.
    pub max_size: usize,
    /// `group.consumer.*`: groups of the consumer protocol (KIP-848).
    pub consumer: ConsumerGroupConfig,
    /// `group.consumer.migration.policy`.
    pub migration: MigrationPolicy,
}

/// Which conversions between a classic group (of protocol type "consumer")
/// and a consumer group may happen while the group has members (Kafka's
/// `group.consumer.migration.policy`; Kafka 4's default is bidirectional).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MigrationPolicy {
    Disabled,
    Upgrade,
    Downgrade,
    Bidirectional,
}

impl MigrationPolicy {
    fn upgrades(self) -> bool {
        matches!(self, MigrationPolicy::Upgrade | MigrationPolicy::Bidirectional)
    }

    fn downgrades(self) -> bool {
        matches!(self, MigrationPolicy::Downgrade | MigrationPolicy::Bidirectional)
    }
}

/// The protocol type ListGroups shows for a consumer-protocol group.
const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// What one group's metadata record holds: its generation and its members
/// with their assignments, so that after a restart they carry on with their
/// member ids and generation (until their sessions time out), as in Kafka.
/// A record with members but no leader was written while the group was
/// rebalancing: it comes back rebalancing, and its members rejoin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadata {
    pub group_id: String,
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: Vec<MemberMetadata>,
}

/// A member as a group metadata record holds it (Kafka's MemberMetadata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadata {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// Its metadata for the group's protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

pub struct GroupCoordinator {
    config: GroupConfig,
    groups: HashMap<String, Group>,
    /// Groups of the consumer protocol (KIP-848); their committed offsets
    /// are kept in `groups` like every group's.
    consumer_groups: HashMap<String, ConsumerGroup>,
    /// Offsets committed inside transactions (TxnOffsetCommit), by producer
    /// id: applied when its commit marker is written, dropped on abort.
    pending: HashMap<i64, Vec<PendingOffset>>,
}

struct PendingOffset {
    group_id: String,
    topic: String,
    partition: i32,
    offset: CommittedOffset,
}

impl GroupCoordinator {
    pub fn new(config: GroupConfig) -> GroupCoordinator {
        GroupCoordinator { config, groups: HashMap::new(), consumer_groups: HashMap::new(), pending: HashMap::new() }
    }

    /// JoinGroup; `topics` are the topics that exist now (a classic member
    /// of a consumer group is assigned by the broker).
    pub fn join(&mut self, now: Instant, topics: &Topics, req: JoinRequest, respond: Responder<JoinResponse>) {
        let refuse = |respond: Responder<JoinResponse>, error| {
            let _ = respond.send(JoinResponse { error: Some(error), ..Default::default() });
        };
        if req.group_id.is_empty() {
            return refuse(respond, GroupError::InvalidGroupId);
        }
        let session = Duration::from_millis(req.session_timeout_ms.max(0) as u64);
        if session < self.config.min_session_timeout || session > self.config.max_session_timeout {
            return refuse(respond, GroupError::InvalidSessionTimeout);
        }
        if let Some(group) = self.consumer_groups.get_mut(&req.group_id) {
            if !group.is_empty() {
                let _ = respond.send(group.classic_join(now, self.config.consumer.max_size, topics, req));
                return;
            }
            // An empty consumer group becomes a classic group (as Kafka, whatever the policy).
            self.consumer_groups.remove(&req.group_id);
        }
        let group = self.groups.entry(req.group_id.clone()).or_insert_with(|| Group::new(req.group_id.clone()));
        group.join(now, &self.config, req, respond);
    }

    /// ConsumerGroupHeartbeat: `topics` are the topics that exist now;
    /// `timing` the group's own session timeout and heartbeat interval in ms
    /// (its group configs), where it has them.
    pub fn consumer_heartbeat(
        &mut self,
        now: Instant,
        topics: &Topics,
        timing: (Option<u64>, Option<u64>),
        req: ConsumerHeartbeat,
    ) -> ConsumerHeartbeatResponse {
        let refuse = |error, message: String| ConsumerHeartbeatResponse {
            error: Some(error),
            error_message: Some(message),
            ..Default::default()
        };
        if req.group_id.is_empty() {
            return refuse(GroupError::InvalidRequest, "GroupId can't be empty.".into());
        }
        if self.groups.get(&req.group_id).is_some_and(|g| !g.is_empty()) && !self.upgrade(now, topics, &req) {
            return refuse(GroupError::GroupIdNotFound, format!("Group {} is not a consumer group.", req.group_id));
        }
        if req.member_epoch < 0 && !self.consumer_groups.contains_key(&req.group_id) {
            return refuse(GroupError::UnknownMemberId, format!("Group {} has no members.", req.group_id));
        }
        let group = self
            .consumer_groups
            .entry(req.group_id.clone())
            .or_insert_with(|| ConsumerGroup::new(req.group_id.clone()));
        let mut config = self.config.consumer.clone();
        if let Some(ms) = timing.0 {
            config.session_timeout = Duration::from_millis(ms);
        }
        if let Some(ms) = timing.1 {
            config.heartbeat_interval = Duration::from_millis(ms);
        }
        let (group_id, leaving) = (req.group_id.clone(), req.member_epoch == LEAVE_EPOCH);
        let response = group.heartbeat(now, &config, topics, req);
        if leaving {
            self.maybe_downgrade(now, &group_id);
        }
        response
    }

    /// Online upgrade: a consumer-protocol member joining a classic group of
    /// protocol type "consumer" turns it into a consumer group whose members
    /// include the classic ones. Whether it happened.
    fn upgrade(&mut self, now: Instant, topics: &Topics, req: &ConsumerHeartbeat) -> bool {
        let Some(classic) = self.groups.get_mut(&req.group_id) else { return false };
        if req.member_epoch != 0
            || !self.config.migration.upgrades()
            || classic.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE)
            || classic.len() > self.config.consumer.max_size
        {
            return false;
        }
        let members = classic.classic_members();
        let Some(group) = ConsumerGroup::from_classic(req.group_id.clone(), classic.generation, members, topics, now)
        else {
            tracing::warn!(group = req.group_id, "cannot upgrade: a member's embedded consumer protocol is malformed");
            return false;
        };
        classic.release_members();
        tracing::info!(group = req.group_id, "classic group upgraded to a consumer group");
        self.consumer_groups.insert(req.group_id.clone(), group);
        true
    }

    /// Online downgrade: a consumer group left with only classic members
    /// becomes a classic group again, which rebalances.
    fn maybe_downgrade(&mut self, now: Instant, group_id: &str) {
        let Some(group) = self.consumer_groups.get(group_id) else { return };
        if !group.all_classic() || !self.config.migration.downgrades() || group.members.len() > self.config.max_size {
            return;
        }
        let group = self.consumer_groups.remove(group_id).expect("found above");
        let (epoch, members): (i32, Vec<ClassicMemberState>) = group.into_classic();
        tracing::info!(group = group_id, "consumer group downgraded to a classic group");
        let classic = self.groups.entry(group_id.to_string()).or_insert_with(|| Group::new(group_id.to_string()));
        classic.adopt(now, &self.config, epoch, members);
    }

    /// ConsumerGroupDescribe.
    pub fn describe_consumer(&self, group_id: &str) -> Result<ConsumerGroupDescription, GroupError> {
        self.consumer_groups.get(group_id).map(ConsumerGroup::describe).ok_or(GroupError::GroupIdNotFound)
    }

    /// OffsetFetch v9+ naming a member: it must be one with its current epoch.
    pub fn validate_fetch(&self, group_id: &str, member: Option<(&str, i32)>) -> Result<(), GroupError> {
        let Some((member_id, epoch)) = member else { return Ok(()) };
        match self.consumer_groups.get(group_id) {
            Some(group) if epoch >= 0 || !member_id.is_empty() => group.validate_member(member_id, epoch),
            // A classic group's (or no group's) offsets are fetched without a member check.
            _ => Ok(()),
        }
    }

    pub fn sync(&mut self, now: Instant, req: SyncRequest, respond: Responder<SyncResponse>) {
        if let Some(group) = self.consumer_groups.get_mut(&req.group_id).filter(|g| !g.is_empty()) {
            let _ = respond.send(group.classic_sync(now, &req));
            return;
        }
        match self.groups.get_mut(&req.group_id) {
            Some(group) => group.sync(now, req, respond),
            None => {
                let _ = respond.send(SyncResponse { error: Some(GroupError::UnknownMemberId), ..Default::default() });
            }
        }
    }

    pub fn heartbeat(
        &mut self,
        now: Instant,
        topics: &Topics,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        if let Some(group) = self.consumer_groups.get_mut(group_id).filter(|g| !g.is_empty()) {
            return group.classic_heartbeat(now, topics, member_id, instance_id, generation);
        }
        let group = self.groups.get_mut(group_id).ok_or(GroupError::UnknownMemberId)?;
        group.heartbeat(now, member_id, instance_id, generation)
    }

    pub fn leave(&mut self, now: Instant, group_id: &str, members: &[MemberRef]) -> Vec<Result<(), GroupError>> {
        if let Some(group) = self.consumer_groups.get_mut(group_id).filter(|g| !g.is_empty()) {
            return group.classic_leave(members);
        }
        match self.groups.get_mut(group_id) {
            Some(group) => group.leave(now, &self.config, members),
            None => vec![Err(GroupError::UnknownMemberId); members.len()],
        }
    }

    pub fn validate_commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        if let Some(group) = self.consumer_groups.get(group_id) {
            // An empty group takes commits from the admin client and standalone consumers.
            if generation < 0 && group.is_empty() {
                return Ok(());
            }
            return group.validate_member(member_id, generation);
        }
        match self.groups.get(group_id) {
            Some(group) => group.validate_commit(member_id, instance_id, generation),
            None if generation < 0 => Ok(()),
            None => Err(GroupError::IllegalGeneration),
        }
    }

    /// Records a committed offset (already persisted), creating the group if needed.
    pub fn apply_commit(&mut self, group_id: &str, topic: &str, partition: i32, offset: CommittedOffset) {
        let group = self.groups.entry(group_id.to_string()).or_insert_with(|| Group::new(group_id.to_string()));
        group.offsets.insert((topic.to_string(), partition), offset);
    }

    /// Holds an offset committed in the producer's transaction (already persisted).
    pub fn add_pending(
        &mut self,
        producer_id: i64,
        group_id: &str,
        topic: &str,
        partition: i32,
        offset: CommittedOffset,
    ) {
        let pending = PendingOffset { group_id: group_id.to_string(), topic: topic.to_string(), partition, offset };
        self.pending.entry(producer_id).or_default().push(pending);
    }

    /// The producer's transaction ended with a marker in `offsets_partition`:
    /// its offsets for the groups of that partition are applied or dropped.
    pub fn end_txn(&mut self, producer_id: i64, commit: bool, offsets_partition: i32) {
        let Some(pending) = self.pending.remove(&producer_id) else { return };
        let (ended, kept): (Vec<_>, Vec<_>) =
            pending.into_iter().partition(|p| super::offsets_partition_of(&p.group_id) == offsets_partition);
        if !kept.is_empty() {
            self.pending.insert(producer_id, kept);
        }
        if commit {
            for p in ended {
                self.apply_commit(&p.group_id, &p.topic, p.partition, p.offset);
            }
        }
    }

    /// Whether a transaction holds an offset of this partition pending.
    pub fn has_pending(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        let pending = |p: &PendingOffset| p.group_id == group_id && p.topic == topic && p.partition == partition;
        self.pending.values().flatten().any(pending)
    }

    /// Forgets a committed offset (replaying a tombstone, or OffsetDelete).
    pub fn remove_commit(&mut self, group_id: &str, topic: &str, partition: i32) {
        if let Some(group) = self.groups.get_mut(group_id) {
            group.offsets.remove(&(topic.to_string(), partition));
        }
    }

    /// The committed offset of one partition.
    pub fn committed(&self, group_id: &str, topic: &str, partition: i32) -> Option<&CommittedOffset> {
        self.groups.get(group_id)?.offsets.get(&(topic.to_string(), partition))
    }

    /// Every committed offset of a group, by (topic, partition).
    pub fn all_committed(&self, group_id: &str) -> Vec<((String, i32), CommittedOffset)> {
        self.groups
            .get(group_id)
            .map_or_else(Vec::new, |g| g.offsets.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    /// Every committed offset of every group here, as (group, topic, partition, offset).
    pub fn every_committed_offset(&self) -> impl Iterator<Item = (&str, &str, i32, i64)> {
        self.groups.values().flat_map(|g| {
            g.offsets.iter().map(move |((topic, partition), committed)| {
                (g.id.as_str(), topic.as_str(), *partition, committed.offset)
            })
        })
    }

    pub fn list(&self) -> Vec<GroupListing> {
        let classic =
            self.groups.values().filter(|g| !self.consumer_groups.contains_key(&g.id)).map(|g| GroupListing {
                group_id: g.id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state.name(),
                group_type: "classic",
            });
        let consumer = self.consumer_groups.values().map(|g| GroupListing {
            group_id: g.id.clone(),
            protocol_type: CONSUMER_PROTOCOL_TYPE.to_string(),
            state: g.state().name(),
            group_type: "consumer",
        });
        classic.chain(consumer).collect()
    }

    /// A group unknown here is described as Dead, as Kafka does.
    pub fn describe(&self, group_id: &str) -> GroupDescription {
        if let Some(g) = self.consumer_groups.get(group_id) {
            return GroupDescription {
                error: Some(GroupError::GroupIdNotFound),
                group_id: group_id.to_string(),
                state: GroupState::Dead,
                protocol_type: CONSUMER_PROTOCOL_TYPE.to_string(),
                protocol: g.assignor.clone(),
                members: Vec::new(),
            };
        }
        match self.groups.get(group_id) {
            Some(g) => GroupDescription {
                error: None,
                group_id: g.id.clone(),
                state: g.state,
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                protocol: g.protocol.clone().unwrap_or_default(),
                members: g.describe_members(),
            },
            None => GroupDescription {
                error: None,
                group_id: group_id.to_string(),
                state: GroupState::Dead,
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            },
        }
    }

    /// Checks that a group may be deleted: it exists and has no members.
    pub fn check_deletable(&self, group_id: &str) -> Result<(), GroupError> {
        if let Some(group) = self.consumer_groups.get(group_id) {
            return if group.is_empty() { Ok(()) } else { Err(GroupError::NonEmptyGroup) };
        }
        let group = self.groups.get(group_id).ok_or(GroupError::GroupIdNotFound)?;
        if group.is_empty() {
            Ok(())
        } else {
            Err(GroupError::NonEmptyGroup)
        }
    }

    /// Drops a group and its offsets (after its tombstones were persisted).
    /// Forgets the groups of `__consumer_offsets` partition `index` and
    /// their offsets pending in transactions: another broker coordinates
    /// them now (or they are about to be loaded again). Members waiting
    /// for a JoinGroup or SyncGroup answer are answered that the
    /// coordinator is gone.
    pub fn unload(&mut self, index: i32) {
        let here = |group_id: &str| super::offsets_partition_of(group_id) == index;
        self.groups.retain(|id, _| !here(id));
        self.consumer_groups.retain(|id, _| !here(id));
        self.pending.retain(|_, pending| {
            pending.retain(|p| !here(&p.group_id));
            !pending.is_empty()
        });
    }

    pub fn remove_group(&mut self, group_id: &str) {
        self.groups.remove(group_id);
        self.consumer_groups.remove(group_id);
    }

    /// Whether committed offsets of `topic` may be deleted from the group.
    pub fn check_offset_deletable(&self, group_id: &str, topic: &str) -> Result<(), GroupError> {
        if let Some(group) = self.consumer_groups.get(group_id) {
            if !group.is_empty() && group.subscribed_topics().any(|t| t == topic) {
                return Err(GroupError::GroupSubscribedToTopic);
            }
            if !self.groups.contains_key(group_id) {
                return Ok(());
            }
        }
        let group = self.groups.get(group_id).ok_or(GroupError::GroupIdNotFound)?;
        match group.subscribed_topics() {
            Some(topics) if topics.iter().any(|t| t == topic) => Err(GroupError::GroupSubscribedToTopic),
            _ => Ok(()),
        }
    }

    pub fn tick(&mut self, now: Instant) {
        for group in self.groups.values_mut() {
            group.tick(now, &self.config);
        }
        let fenced: Vec<String> =
            self.consumer_groups.values_mut().filter_map(|g| g.tick(now).then(|| g.id.clone())).collect();
        for group_id in fenced {
            self.maybe_downgrade(now, &group_id);
        }
    }

    /// Metadata of the groups whose generation, state, membership or
    /// assignments changed since the last call.
    pub fn take_changed(&mut self) -> Vec<GroupMetadata> {
        let classic =
            self.groups.values_mut().filter_map(|g| std::mem::take(&mut g.dirty).then_some(&*g)).map(Group::metadata);
        classic.collect()
    }

    /// The epochs of consumer-protocol groups that changed since the last call.
    pub fn take_changed_consumer(&mut self) -> Vec<(String, i32)> {
        self.consumer_groups
            .values_mut()
            .filter_map(|g| std::mem::take(&mut g.changed).then(|| (g.id.clone(), g.epoch)))
            .collect()
    }

    /// Replays a consumer-protocol group's epoch record: the group comes back
    /// at its epoch, without members (they rejoin).
    pub fn restore_consumer_group(&mut self, group_id: &str, epoch: i32) {
        self.consumer_groups.insert(group_id.to_string(), ConsumerGroup::restored(group_id.to_string(), epoch));
    }

    /// Replays a persisted group metadata record at load time `now`: the
    /// group comes back at its generation with its members, whose sessions
    /// start afresh (Stable, or rebalancing if the record was written during a
    /// rebalance; Empty without members).
    /// The later of a group's classic and consumer records says which it is
    /// (a conversion writes the new kind's record last).
    pub fn restore_group(&mut self, now: Instant, metadata: GroupMetadata) {
        self.consumer_groups.remove(&metadata.group_id);
        let group =
            self.groups.entry(metadata.group_id.clone()).or_insert_with(|| Group::new(metadata.group_id.clone()));
        group.restore(now, &self.config, metadata);
    }
}

#[cfg(test)]
mod tests {
    use super::super::JoinedMember;
    use super::*;
    use bytes::Bytes;
    use futures::channel::oneshot;

    const SESSION_MS: i32 = 10_000;
    const DELAY: Duration = Duration::from_millis(100);

    fn coordinator(delay_ms: u64) -> GroupCoordinator {
        GroupCoordinator::new(GroupConfig {
            consumer: ConsumerGroupConfig {
                session_timeout: Duration::from_secs(45),
                heartbeat_interval: Duration::from_secs(5),
                max_size: 100,
            },
            migration: MigrationPolicy::Bidirectional,
            initial_rebalance_delay: Duration::from_millis(delay_ms),
            min_session_timeout: Duration::from_millis(6_000),
            max_session_timeout: Duration::from_millis(300_000),
            max_size: 100,
        })
    }

    fn join_request(member_id: &str, instance: Option<&str>, protocols: &[&str]) -> JoinRequest {
        JoinRequest {
            group_id: "g".into(),
            member_id: member_id.into(),
            instance_id: instance.map(String::from),
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: SESSION_MS,
            rebalance_timeout_ms: 30_000,
            protocol_type: "consumer".into(),
            protocols: protocols.iter().map(|p| (p.to_string(), Bytes::from(format!("meta-{p}")))).collect(),
            require_known_member_id: false,
        }
    }

    fn join(c: &mut GroupCoordinator, now: Instant, req: JoinRequest) -> oneshot::Receiver<JoinResponse> {
        let (tx, rx) = oneshot::channel();
        c.join(now, &Topics::new(), req, tx);
        rx
    }

    fn sync(
        c: &mut GroupCoordinator,
        now: Instant,
        member: &str,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> oneshot::Receiver<SyncResponse> {
        let (tx, rx) = oneshot::channel();
        let req = SyncRequest {
            group_id: "g".into(),
            member_id: member.into(),
            instance_id: None,
            generation,
            protocol_type: None,
            protocol: None,
            assignments,
        };
        c.sync(now, req, tx);
        rx
    }

    fn ready<T>(rx: &mut oneshot::Receiver<T>) -> T {
        rx.try_recv().expect("sender alive").expect("answered already")
    }

    fn pending<T>(rx: &mut oneshot::Receiver<T>) {
        assert!(rx.try_recv().expect("sender alive").is_none(), "answered too early");
    }

    /// Two members join within the initial delay, the leader assigns, both are Stable.
    fn stable_group(c: &mut GroupCoordinator, now: Instant) -> (String, String) {
        let mut a = join(c, now, join_request("", None, &["range"]));
        let mut b = join(c, now, join_request("", None, &["range"]));
        pending(&mut a);
        c.tick(now + DELAY);
        let (a, b) = (ready(&mut a), ready(&mut b));
        assert_eq!((a.error, b.error), (None, None));
        assert_eq!(a.generation, 1);
        let (leader, follower) = if a.leader == a.member_id { (a, b) } else { (b, a) };
        assert_eq!(leader.members.len(), 2);
        assert!(follower.members.is_empty());
        let mut follower_sync = sync(c, now, &follower.member_id, 1, vec![]);
        pending(&mut follower_sync);
        let assignments = vec![
            (leader.member_id.clone(), Bytes::from_static(b"L")),
            (follower.member_id.clone(), Bytes::from_static(b"F")),
        ];
        let mut leader_sync = sync(c, now, &leader.member_id, 1, assignments);
        assert_eq!(ready(&mut leader_sync).assignment, Bytes::from_static(b"L"));
        assert_eq!(ready(&mut follower_sync).assignment, Bytes::from_static(b"F"));
        assert_eq!(c.describe("g").state, GroupState::Stable);
        (leader.member_id, follower.member_id)
    }

    #[test]
    fn members_join_sync_and_become_stable() {
        let mut c = coordinator(100);
        let now = Instant::now();
        let (leader, follower) = stable_group(&mut c, now);
        assert_eq!(c.heartbeat(now, &Topics::new(), "g", &leader, None, 1), Ok(()));
        assert_eq!(c.heartbeat(now, &Topics::new(), "g", &follower, None, 0), Err(GroupError::IllegalGeneration));
        assert_eq!(c.heartbeat(now, &Topics::new(), "g", "stranger", None, 1), Err(GroupError::UnknownMemberId));
        assert_eq!(c.take_changed().len(), 1);
    }

    /// A group's latest record, through its encoding in `__consumer_offsets`.
    fn persisted(c: &mut GroupCoordinator) -> GroupMetadata {
        use super::super::log_records::{decode_batches, encode_batch, OffsetsEntry, OffsetsRecord};
        let changed = c.take_changed();
        assert_eq!(changed.len(), 1, "one group changed");
        let record = OffsetsRecord::Group { group_id: "g".into(), metadata: Some(changed[0].clone()) };
        let batch = encode_batch(&[record], 0, weir_engine::records::RecordsBuilder::new());
        match decode_batches(batch).unwrap().pop() {
            Some(OffsetsEntry::Record(OffsetsRecord::Group { metadata: Some(m), .. })) => m,
            other => panic!("not a group record: {other:?}"),
        }
    }

    #[test]
    fn restored_members_heartbeat_commit_and_rejoin_without_a_rebalance() {
        let mut c = coordinator(100);
        let now = Instant::now();
        let (leader, follower) = stable_group(&mut c, now);
        let record = persisted(&mut c);
        assert_eq!((record.generation, record.leader.as_deref(), record.members.len()), (1, Some(&*leader), 2));
        assert_eq!(c.heartbeat(now, &Topics::new(), "g", &leader, None, 1), Ok(()));
        assert!(c.take_changed().is_empty(), "a heartbeat writes nothing");

        // A restart an hour later: the members' sessions start afresh at load.
        let loaded = now + Duration::from_secs(3600);
        let mut c = coordinator(100);
        c.restore_group(loaded, record);
        let described = c.describe("g");
        assert_eq!((described.state, described.protocol.as_str()), (GroupState::Stable, "range"));
        let assignment = |id: &str| described.members.iter().find(|m| m.member_id == id).unwrap().assignment.clone();
        assert_eq!((assignment(&leader), assignment(&follower)), (Bytes::from("L"), Bytes::from("F")));
        let beat = loaded + Duration::from_millis(SESSION_MS as u64 - 1);
        assert_eq!(c.heartbeat(beat, &Topics::new(), "g", &leader, None, 1), Ok(()));
        assert_eq!(c.heartbeat(beat, &Topics::new(), "g", &leader, None, 2), Err(GroupError::IllegalGeneration));
        assert_eq!(c.validate_commit("g", &follower, None, 1), Ok(()), "OffsetCommit and TxnOffsetCommit");
        assert_eq!(c.validate_commit("g", "stranger", None, 1), Err(GroupError::UnknownMemberId));
        // The follower rejoins with the same protocols: the same generation, its assignment.
        let mut f = join(&mut c, beat, join_request(&follower, None, &["range"]));
        let f = ready(&mut f);
        assert_eq!((f.error, f.generation, f.leader.as_str()), (None, 1, leader.as_str()));
        assert_eq!(ready(&mut sync(&mut c, beat, &follower, 1, vec![])).assignment, Bytes::from("F"));
        assert_eq!(c.describe("g").state, GroupState::Stable);
        assert!(c.take_changed().is_empty(), "nothing changed");

        // The leader never heartbeats again: its session expires, a rebalance follows.
        c.tick(beat + Duration::from_millis(SESSION_MS as u64 - 10));
        assert_eq!(c.describe("g").members.len(), 2, "the leader heartbeat at `beat`");
        let expired = beat + Duration::from_millis(SESSION_MS as u64 + 1);
        assert_eq!(c.heartbeat(expired - Duration::from_millis(2), &Topics::new(), "g", &follower, None, 1), Ok(()));
        c.tick(expired);
        assert_eq!(c.describe("g").state, GroupState::PreparingRebalance);
        assert_eq!(c.heartbeat(expired, &Topics::new(), "g", &leader, None, 1), Err(GroupError::UnknownMemberId));
        // The expiry is persisted: the survivor, no leader (a rebalance was under way).
        let record = persisted(&mut c);
        assert_eq!((record.generation, record.leader.as_deref()), (1, None));
        assert_eq!(record.members.iter().map(|m| m.member_id.as_str()).collect::<Vec<_>>(), vec![follower.as_str()]);

        // A restart now brings the group back rebalancing; the survivor rejoins.
        let mut c = coordinator(100);
        c.restore_group(expired, record);
        assert_eq!(c.describe("g").state, GroupState::PreparingRebalance);
        assert_eq!(c.heartbeat(expired, &Topics::new(), "g", &follower, None, 1), Err(GroupError::RebalanceInProgress));
        assert_eq!(c.validate_commit("g", &follower, None, 1), Ok(()));
        let mut f = join(&mut c, expired, join_request(&follower, None, &["range"]));
        let f = ready(&mut f);
        assert_eq!((f.error, f.generation, f.leader.as_str()), (None, 2, follower.as_str()));
    }

    #[test]
    fn restored_members_that_never_return_expire_and_an_empty_record_restores_empty() {
        let mut c = coordinator(100);
        let now = Instant::now();
        let (leader, _) = stable_group(&mut c, now);
        let record = persisted(&mut c);
        let mut c = coordinator(100);
        c.restore_group(now, record);
        c.tick(now + Duration::from_millis(SESSION_MS as u64 + 1));
        // Both expired: the rebalance completes at once with no one, generation 2, Empty.
        assert_eq!(c.describe("g").state, GroupState::Empty);
        let record = persisted(&mut c);
        assert_eq!((record.generation, record.members.len(), record.protocol.as_deref()), (2, 0, None));
        let mut c = coordinator(100);
        c.restore_group(now, record);
        assert_eq!(c.describe("g").state, GroupState::Empty);
        assert_eq!(c.heartbeat(now, &Topics::new(), "g", &leader, None, 1), Err(GroupError::UnknownMemberId));
    }

    #[test]
    fn leaving_persists_the_remaining_members() {
        let mut c = coordinator(100);
        let now = Instant::now();
        let (leader, follower) = stable_group(&mut c, now);
        c.take_changed();
        assert_eq!(c.leave(now, "g", &[MemberRef { member_id: follower, instance_id: None }]), vec![Ok(())]);
        let record = persisted(&mut c);
        assert_eq!(record.members.iter().map(|m| m.member_id.as_str()).collect::<Vec<_>>(), vec![leader.as_str()]);
        assert_eq!(record.leader, None, "rebalancing");
    }

    #[test]
    fn a_new_member_triggers_a_rebalance_that_waits_for_everyone() {
        let mut c = coordinator(100);
        let now = Instant::now();
        let (leader, follower) = stable_group(&mut c, now);
        let mut third = join(&mut c, now, join_request("", None, &["range"]));
        pending(&mut third);
        assert_eq!(c.heartbeat(now, &Topics::new(), "g", &leader, None, 1), Err(GroupError::RebalanceInProgress));
        let mut l = join(&mut c, now, join_request(&leader, None, &["range"]));
        pending(&mut l);
        let mut f = join(&mut c, now, join_request(&follower, None, &["range"]));
        let (l, f, t) = (ready(&mut l), ready(&mut f), ready(&mut third));
        assert_eq!((l.generation, f.generation, t.generation), (2, 2, 2));
        assert_eq!(l.leader, leader, "the leader stays the leader");
        assert_eq!(l.members.len(), 3);
    }

    #[test]
    fn members_that_do_not_rejoin_are_dropped_at_the_rebalance_deadline() {
        let mut c = coordinator(100);
        let now = Instant::now();
        let (leader, follower) = stable_group(&mut c, now);
        let mut l = join(&mut c, now, join_request(&leader, None, &["range"]));
        c.tick(now + Duration::from_secs(5));
        pending(&mut l);
        // Past the 30 s rebalance timeout: the follower is dropped.
        c.tick(now + Duration::from_secs(31));
        let l = ready(&mut l);
        assert_eq!((l.error, l.generation, l.members.len()), (None, 2, 1));
        assert_eq!(c.heartbeat(now, &Topics::new(), "g", &follower, None, 2), Err(GroupError::UnknownMemberId));
    }

    #[test]
    fn expired_sessions_and_leaving_members_rebalance_the_group() {
        let mut c = coordinator(100);
        let now = Instant::now();
        let (leader, follower) = stable_group(&mut c, now);
        // The follower keeps heartbeating; the leader goes silent.
        let later = now + Duration::from_millis(SESSION_MS as u64 - 1000);
        assert_eq!(c.heartbeat(later, &Topics::new(), "g", &follower, None, 1), Ok(()));
        c.tick(now + Duration::from_millis(SESSION_MS as u64 + 1));
        assert_eq!(c.describe("g").members.len(), 1);
        assert_eq!(c.heartbeat(later, &Topics::new(), "g", &follower, None, 1), Err(GroupError::RebalanceInProgress));
        let mut f = join(&mut c, later, join_request(&follower, None, &["range"]));
        let f = ready(&mut f);
        assert_eq!((f.generation, f.leader.as_str()), (2, follower.as_str()), "the survivor leads");
        let leave = c.leave(later, "g", &[MemberRef { member_id: follower.clone(), instance_id: None }]);
        assert_eq!(leave, vec![Ok(())]);
        assert_eq!(c.describe("g").state, GroupState::Empty);
        assert_eq!(
            c.leave(later, "g", &[MemberRef { member_id: leader, instance_id: None }]),
            vec![Err(GroupError::UnknownMemberId)]
        );
    }

    #[test]
    fn new_dynamic_members_first_get_member_id_required() {
        let mut c = coordinator(0);
        let now = Instant::now();
        let mut first =
            join(&mut c, now, JoinRequest { require_known_member_id: true, ..join_request("", None, &["range"]) });
        let first = ready(&mut first);
        assert_eq!(first.error, Some(GroupError::MemberIdRequired));
        assert!(first.member_id.starts_with("client-"));
        let mut again = join(&mut c, now, join_request(&first.member_id, None, &["range"]));
        assert_eq!(ready(&mut again).error, None);
        let mut stranger = join(&mut c, now, join_request("made-up", None, &["range"]));
        assert_eq!(ready(&mut stranger).error, Some(GroupError::UnknownMemberId));
    }

    #[test]
    fn static_members_rejoin_without_a_rebalance_and_fence_their_old_id() {
        let mut c = coordinator(0);
        let now = Instant::now();
        let mut a = join(&mut c, now, join_request("", Some("instance-a"), &["range"]));
        let a = ready(&mut a);
        let mut s = sync(&mut c, now, &a.member_id, 1, vec![(a.member_id.clone(), Bytes::from_static(b"A"))]);
        assert_eq!(ready(&mut s).assignment, Bytes::from_static(b"A"));
        // The same instance restarts with no member id.
        let mut again = join(&mut c, now, join_request("", Some("instance-a"), &["range"]));
        let again = ready(&mut again);
        assert_eq!((again.error, again.generation), (None, 1), "no new generation");
        assert_ne!(again.member_id, a.member_id);
        assert_eq!(c.describe("g").state, GroupState::Stable);
        assert_eq!(
            c.heartbeat(now, &Topics::new(), "g", &a.member_id, Some("instance-a"), 1),
            Err(GroupError::FencedInstanceId)
        );
        let mut s = sync(&mut c, now, &again.member_id, 1, vec![]);
        assert_eq!(ready(&mut s).assignment, Bytes::from_static(b"A"), "keeps its assignment");
    }

    #[test]
    fn protocols_must_be_shared_and_the_most_preferred_common_one_wins() {
        let mut c = coordinator(100);
        let now = Instant::now();
        let mut a = join(&mut c, now, join_request("", None, &["cooperative-sticky", "range"]));
        let mut b = join(&mut c, now, join_request("", None, &["range", "cooperative-sticky"]));
        let mut d = join(&mut c, now, join_request("", None, &["cooperative-sticky"]));
        c.tick(now + DELAY);
        let (a, b, d) = (ready(&mut a), ready(&mut b), ready(&mut d));
        assert_eq!(a.protocol.as_deref(), Some("cooperative-sticky"));
        let leader = [&a, &b, &d].into_iter().find(|r| r.member_id == r.leader).unwrap();
        let metadata: Vec<&JoinedMember> = leader.members.iter().collect();
        assert!(metadata.iter().all(|m| m.metadata == Bytes::from_static(b"meta-cooperative-sticky")));
        let _ = (b, d);
        let mut other = join(&mut c, now, join_request("", None, &["roundrobin"]));
        assert_eq!(ready(&mut other).error, Some(GroupError::InconsistentGroupProtocol));
    }

    #[test]
    fn the_initial_delay_gathers_members_before_the_first_generation() {
        let mut c = coordinator(3_000);
        let now = Instant::now();
        let mut a = join(&mut c, now, join_request("", None, &["range"]));
        c.tick(now + Duration::from_millis(2_000));
        let mut b = join(&mut c, now + Duration::from_millis(2_000), join_request("", None, &["range"]));
        c.tick(now + Duration::from_millis(4_000));
        pending(&mut a);
        c.tick(now + Duration::from_millis(5_001));
        assert_eq!((ready(&mut a).generation, ready(&mut b).generation), (1, 1));
    }

    #[test]
    fn hundreds_of_members_stabilise_in_one_generation() {
        let mut c = GroupCoordinator::new(GroupConfig { max_size: 1000, ..coordinator(100).config });
        let now = Instant::now();
        let mut joins: Vec<_> = (0..300).map(|_| join(&mut c, now, join_request("", None, &["range"]))).collect();
        c.tick(now + DELAY);
        let joined: Vec<JoinResponse> = joins.iter_mut().map(ready).collect();
        assert!(joined.iter().all(|j| j.error.is_none() && j.generation == 1));
        let leader = joined.iter().find(|j| j.member_id == j.leader).expect("one leader");
        assert_eq!(leader.members.len(), 300);
        let assignments =
            leader.members.iter().map(|m| (m.member_id.clone(), Bytes::from(m.member_id.clone()))).collect();
        let mut syncs: Vec<_> = joined
            .iter()
            .filter(|j| j.member_id != j.leader)
            .map(|j| sync(&mut c, now, &j.member_id, 1, vec![]))
            .collect();
        let mut leader_sync = sync(&mut c, now, &leader.member_id, 1, assignments);
        assert_eq!(ready(&mut leader_sync).assignment, Bytes::from(leader.member_id.clone()));
        for (rx, j) in syncs.iter_mut().zip(joined.iter().filter(|j| j.member_id != j.leader)) {
            assert_eq!(ready(rx).assignment, Bytes::from(j.member_id.clone()), "each member gets its own assignment");
        }
        let described = c.describe("g");
        assert_eq!((described.state, described.members.len()), (GroupState::Stable, 300));
        // One member leaves: the other 299 rejoin into generation 2.
        let gone = joined[7].member_id.clone();
        assert_eq!(c.leave(now, "g", &[MemberRef { member_id: gone.clone(), instance_id: None }]), vec![Ok(())]);
        let mut rejoins: Vec<_> = joined
            .iter()
            .filter(|j| j.member_id != gone)
            .map(|j| join(&mut c, now, join_request(&j.member_id, None, &["range"])))
            .collect();
        assert!(rejoins.iter_mut().map(ready).all(|r| r.generation == 2 && r.error.is_none()));
    }

    #[test]
    fn a_group_refuses_members_beyond_its_maximum_size() {
        let mut c = coordinator(100);
        let mut joins: Vec<_> =
            (0..101).map(|_| join(&mut c, Instant::now(), join_request("", None, &["range"]))).collect();
        assert_eq!(ready(joins.last_mut().unwrap()).error, Some(GroupError::GroupMaxSizeReached));
    }

    #[test]
    fn commits_are_checked_against_member_and_generation() {
        let mut c = coordinator(100);
        let now = Instant::now();
        assert_eq!(c.validate_commit("solo", "", None, -1), Ok(()), "standalone consumers may commit");
        assert_eq!(c.validate_commit("", "", None, -1), Err(GroupError::InvalidGroupId));
        let (leader, _) = stable_group(&mut c, now);
        assert_eq!(c.validate_commit("g", &leader, None, 1), Ok(()));
        assert_eq!(c.validate_commit("g", &leader, None, 7), Err(GroupError::IllegalGeneration));
        assert_eq!(c.validate_commit("g", "who", None, 1), Err(GroupError::UnknownMemberId));
        assert_eq!(c.validate_commit("g", "", None, -1), Err(GroupError::UnknownMemberId));
        assert_eq!(c.check_deletable("g"), Err(GroupError::NonEmptyGroup));
        assert_eq!(c.check_deletable("nope"), Err(GroupError::GroupIdNotFound));
        let offset = CommittedOffset { offset: 42, leader_epoch: -1, metadata: None, commit_timestamp_ms: 0 };
        c.apply_commit("g", "t", 0, offset.clone());
        assert_eq!(c.committed("g", "t", 0), Some(&offset));
        c.apply_commit("solo", "t", 1, CommittedOffset { offset: 7, ..offset });
        let mut all: Vec<_> = c.every_committed_offset().collect();
        all.sort();
        assert_eq!(all, vec![("g", "t", 0, 42), ("solo", "t", 1, 7)]);
    }

    #[test]
    fn transactional_offsets_apply_on_commit_in_their_partition_only() {
        let mut c = coordinator(0);
        let at = |offset| CommittedOffset { offset, leader_epoch: -1, metadata: None, commit_timestamp_ms: 0 };
        // Two groups whose offsets live in different __consumer_offsets partitions.
        let (a, b) = ("group-a", "group-b");
        let (pa, pb) = (super::super::offsets_partition_of(a), super::super::offsets_partition_of(b));
        assert_ne!(pa, pb);
        c.add_pending(7, a, "t", 0, at(10));
        c.add_pending(7, b, "t", 0, at(20));
        c.add_pending(8, a, "t", 1, at(30));
        assert_eq!(c.committed(a, "t", 0), None, "pending until the marker");
        assert!(c.has_pending(a, "t", 0) && !c.has_pending(a, "t", 2));
        c.end_txn(7, true, pa);
        assert_eq!(c.committed(a, "t", 0).map(|o| o.offset), Some(10));
        assert_eq!(c.committed(b, "t", 0), None, "its marker has not reached group-b's partition");
        c.end_txn(7, true, pb);
        assert_eq!(c.committed(b, "t", 0).map(|o| o.offset), Some(20));
        c.end_txn(8, false, pa);
        assert!(!c.has_pending(a, "t", 1));
        assert_eq!(c.committed(a, "t", 1), None, "aborted");
        c.end_txn(8, true, pa);
        assert_eq!(c.committed(a, "t", 1), None, "dropped for good");
    }
}
