//! Groups that mix classic and consumer-protocol members: online upgrade,
//! classic members of a consumer group, online downgrade.

use super::consumer::classic::tests::{assigned, assignment, subscription};
use super::consumer::{
    Assignment, ConsumerGroupConfig, ConsumerHeartbeat, ConsumerHeartbeatResponse, TopicInfo, Topics, LEAVE_EPOCH,
};
use super::*;
use bytes::Bytes;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use uuid::Uuid;

const TOPIC_ID: u128 = 7;

fn coordinator(migration: MigrationPolicy) -> GroupCoordinator {
    GroupCoordinator::new(GroupConfig {
        consumer: ConsumerGroupConfig {
            session_timeout: Duration::from_secs(45),
            heartbeat_interval: Duration::from_secs(5),
            max_size: 100,
        },
        migration,
        initial_rebalance_delay: Duration::ZERO,
        min_session_timeout: Duration::from_millis(6_000),
        max_session_timeout: Duration::from_millis(300_000),
        max_size: 100,
    })
}

fn topics() -> Topics {
    Topics::from([("t".to_string(), TopicInfo { id: Uuid::from_u128(TOPIC_ID), partitions: 4 })])
}

fn partitions(a: &Assignment) -> BTreeSet<i32> {
    a.get(&Uuid::from_u128(TOPIC_ID)).cloned().unwrap_or_default()
}

fn named(bytes: &Bytes) -> BTreeSet<i32> {
    assigned(bytes).into_iter().flat_map(|(_, p)| p).collect()
}

/// A classic consumer's JoinGroup: protocol type "consumer", range, subscribed to "t".
fn classic_join(member_id: &str, owned: &[i32]) -> JoinRequest {
    JoinRequest {
        group_id: "g".into(),
        member_id: member_id.into(),
        instance_id: None,
        client_id: "classic".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), subscription(&["t"], &[("t", owned)], 1))],
        require_known_member_id: false,
    }
}

fn join(c: &mut GroupCoordinator, now: Instant, req: JoinRequest) -> JoinResponse {
    let (tx, mut rx) = oneshot::channel();
    c.join(now, &topics(), req, tx);
    rx.try_recv().expect("sender alive").expect("answered at once")
}

fn sync(c: &mut GroupCoordinator, now: Instant, member: &str, generation: i32, leader: bool) -> SyncResponse {
    let (tx, mut rx) = oneshot::channel();
    let assignments = if leader { vec![(member.to_string(), assignment(&[("t", &[0, 1, 2, 3])]))] } else { vec![] };
    let req = SyncRequest {
        group_id: "g".into(),
        member_id: member.into(),
        instance_id: None,
        generation,
        protocol_type: Some("consumer".into()),
        protocol: Some("range".into()),
        assignments,
    };
    c.sync(now, req, tx);
    rx.try_recv().expect("sender alive").expect("answered at once")
}

fn beat(
    c: &mut GroupCoordinator,
    now: Instant,
    id: &str,
    epoch: i32,
    owned: Option<Assignment>,
) -> ConsumerHeartbeatResponse {
    let req = ConsumerHeartbeat {
        group_id: "g".into(),
        member_id: id.into(),
        member_epoch: epoch,
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: (epoch == 0).then(|| vec!["t".to_string()]),
        owned,
        ..Default::default()
    };
    c.consumer_heartbeat(now, &topics(), (None, None), req)
}

/// A classic group of one member that owns all four partitions, Stable at generation 1.
fn classic_group(c: &mut GroupCoordinator, now: Instant) -> String {
    let joined = join(c, now, classic_join("", &[]));
    assert_eq!((joined.error, joined.generation), (None, 1));
    let synced = sync(c, now, &joined.member_id, 1, true);
    assert_eq!(named(&synced.assignment), BTreeSet::from([0, 1, 2, 3]));
    joined.member_id
}

#[test]
fn a_consumer_member_upgrades_a_classic_group_and_partitions_move_only_once_released() {
    let mut c = coordinator(MigrationPolicy::Bidirectional);
    let now = Instant::now();
    let classic = classic_group(&mut c, now);
    // The consumer member joins: the group becomes a consumer group of both.
    let a = beat(&mut c, now, "a", 0, Some(Assignment::new()));
    assert_eq!(a.error, None);
    assert!(partitions(a.assignment.as_ref().unwrap()).is_empty(), "the classic member still owns everything");
    let described = c.describe_consumer("g").expect("a consumer group now");
    let kinds: Vec<(bool, usize)> =
        described.members.iter().map(|m| (m.classic, m.assignment.iter().map(|t| t.2.len()).sum())).collect();
    assert_eq!(kinds.len(), 2);
    assert!(kinds.contains(&(true, 4)) && kinds.contains(&(false, 0)), "{kinds:?}");
    assert_eq!(c.list()[0].group_type, "consumer");
    assert_eq!(c.describe("g").error, Some(GroupError::GroupIdNotFound), "DescribeGroups is for classic groups");
    // The classic member learns of the rebalance, rejoins (an eager client owns nothing then)
    // and is first told to keep only its share.
    assert_eq!(c.heartbeat(now, &topics(), "g", &classic, None, 1), Err(GroupError::RebalanceInProgress));
    let rejoined = join(&mut c, now, classic_join(&classic, &[]));
    assert_eq!((rejoined.error, rejoined.generation, rejoined.leader.as_str()), (None, 1, ""));
    assert!(rejoined.members.is_empty(), "nobody assigns on the client side");
    let kept = named(&sync(&mut c, now, &classic, 1, false).assignment);
    assert_eq!(kept.len(), 2);
    let a = beat(&mut c, now, "a", a.member_epoch, None);
    assert!(partitions(a.assignment.as_ref().unwrap_or(&Assignment::new())).is_empty(), "not released yet");
    // It must give the other two up: it rejoins, now at the group's epoch.
    assert_eq!(c.heartbeat(now, &topics(), "g", &classic, None, 1), Err(GroupError::RebalanceInProgress));
    let rejoined = join(&mut c, now, classic_join(&classic, &[]));
    assert!(rejoined.generation > 1);
    let classic_owns = named(&sync(&mut c, now, &classic, rejoined.generation, false).assignment);
    assert_eq!(classic_owns, kept);
    assert_eq!(c.heartbeat(now, &topics(), "g", &classic, None, rejoined.generation), Ok(()));
    let a = beat(&mut c, now, "a", a.member_epoch, Some(Assignment::new()));
    let a_owns = partitions(a.assignment.as_ref().unwrap());
    assert_eq!(a_owns.len(), 2);
    assert!(a_owns.is_disjoint(&classic_owns), "no partition has two owners");
    assert_eq!(c.validate_commit("g", &classic, None, rejoined.generation), Ok(()));
    assert_eq!(c.validate_commit("g", &classic, None, 1), Err(GroupError::IllegalGeneration));
}

#[test]
fn a_classic_member_joins_a_consumer_group_and_waits_for_released_partitions() {
    let mut c = coordinator(MigrationPolicy::Bidirectional);
    let now = Instant::now();
    let a = beat(&mut c, now, "a", 0, Some(Assignment::new()));
    let a_all = a.assignment.clone().unwrap();
    assert_eq!(partitions(&a_all).len(), 4);
    let mut first = classic_join("", &[]);
    first.require_known_member_id = true;
    let required = join(&mut c, now, first);
    assert_eq!(required.error, Some(GroupError::MemberIdRequired));
    let joined = join(&mut c, now, classic_join(&required.member_id, &[]));
    let id = joined.member_id.clone();
    assert_eq!((joined.error, joined.protocol.as_deref(), joined.leader.as_str()), (None, Some("range"), ""));
    let synced = sync(&mut c, now, &id, joined.generation, false);
    assert_eq!((synced.error, named(&synced.assignment)), (None, BTreeSet::new()), "a still holds them");
    assert_eq!(c.heartbeat(now, &topics(), "g", &id, None, joined.generation), Ok(()), "nothing free yet");
    // a gives two up.
    let a = beat(&mut c, now, "a", a.member_epoch, None);
    let a_kept = a.assignment.unwrap();
    assert_eq!(partitions(&a_kept).len(), 2);
    beat(&mut c, now, "a", a.member_epoch, Some(a_kept.clone()));
    // Now free: the classic member is told to rejoin and gets them.
    assert_eq!(c.heartbeat(now, &topics(), "g", &id, None, joined.generation), Err(GroupError::RebalanceInProgress));
    let rejoined = join(&mut c, now, classic_join(&id, &[]));
    let got = named(&sync(&mut c, now, &id, rejoined.generation, false).assignment);
    assert_eq!(got.len(), 2);
    assert!(got.is_disjoint(&partitions(&a_kept)));
    let described = c.describe_consumer("g").unwrap();
    assert_eq!(described.state.name(), "Stable");
    // A classic member of another protocol type is refused.
    let mut other = classic_join("", &[]);
    other.protocol_type = "connect".into();
    assert_eq!(join(&mut c, now, other).error, Some(GroupError::InconsistentGroupProtocol));
    assert_eq!(sync(&mut c, now, "a", a.member_epoch, false).error, Some(GroupError::UnknownMemberId));
    // It leaves with LeaveGroup: a takes everything.
    let left = c.leave(now, "g", &[MemberRef { member_id: id, instance_id: None }]);
    assert_eq!(left, vec![Ok(())]);
    let a = beat(&mut c, now, "a", a.member_epoch, Some(a_kept));
    assert_eq!(partitions(a.assignment.as_ref().unwrap()).len(), 4);
}

#[test]
fn the_last_consumer_member_leaving_downgrades_the_group_which_rebalances() {
    let mut c = coordinator(MigrationPolicy::Bidirectional);
    let now = Instant::now();
    let a = beat(&mut c, now, "a", 0, Some(Assignment::new()));
    let joined = join(&mut c, now, classic_join("", &[]));
    let id = joined.member_id;
    let left = beat(&mut c, now, "a", LEAVE_EPOCH, None);
    assert_eq!(left.error, None);
    assert!(c.describe_consumer("g").is_err(), "no consumer group any more");
    let described = c.describe("g");
    assert_eq!((described.state, described.members.len()), (GroupState::PreparingRebalance, 1));
    assert_eq!(c.list()[0].group_type, "classic");
    assert_eq!(c.heartbeat(now, &topics(), "g", &id, None, a.member_epoch + 1), Err(GroupError::IllegalGeneration));
    let generation = c.take_changed()[0].generation;
    assert_eq!(c.heartbeat(now, &topics(), "g", &id, None, generation), Err(GroupError::RebalanceInProgress));
    let rejoined = join(&mut c, now, classic_join(&id, &[]));
    assert_eq!((rejoined.generation, rejoined.leader.as_str()), (generation + 1, id.as_str()), "it leads now");
    assert_eq!(rejoined.members.len(), 1);
    let synced = sync(&mut c, now, &id, rejoined.generation, true);
    assert_eq!(named(&synced.assignment).len(), 4);
}

#[test]
fn the_policy_and_the_protocol_type_can_refuse_an_upgrade() {
    let now = Instant::now();
    let mut c = coordinator(MigrationPolicy::Downgrade);
    classic_group(&mut c, now);
    let refused = beat(&mut c, now, "a", 0, Some(Assignment::new()));
    assert_eq!(refused.error, Some(GroupError::GroupIdNotFound));
    let mut c = coordinator(MigrationPolicy::Bidirectional);
    let mut connect = classic_join("", &[]);
    connect.protocol_type = "connect".into();
    assert_eq!(join(&mut c, now, connect).error, None);
    assert_eq!(beat(&mut c, now, "a", 0, Some(Assignment::new())).error, Some(GroupError::GroupIdNotFound));
    // With the downgrade disabled, classic members stay in the consumer group.
    let mut c = coordinator(MigrationPolicy::Upgrade);
    let a = beat(&mut c, now, "a", 0, Some(Assignment::new()));
    join(&mut c, now, classic_join("", &[]));
    beat(&mut c, now, "a", LEAVE_EPOCH, None);
    assert_eq!(c.describe_consumer("g").map(|d| d.members.len()), Ok(1));
    let _ = a;
}

#[test]
fn a_conversion_writes_the_new_kinds_record_last_and_replay_follows_it() {
    let mut c = coordinator(MigrationPolicy::Bidirectional);
    let now = Instant::now();
    classic_group(&mut c, now);
    c.take_changed();
    beat(&mut c, now, "a", 0, Some(Assignment::new()));
    // Upgrade: the classic record (now Empty) and then the consumer group's epoch.
    let classic = c.take_changed();
    assert_eq!((classic.len(), classic[0].generation), (1, 1));
    let consumer = c.take_changed_consumer();
    assert_eq!(consumer.len(), 1);
    let mut replayed = coordinator(MigrationPolicy::Bidirectional);
    replayed.restore_group(now, classic[0].clone());
    replayed.restore_consumer_group("g", consumer[0].1);
    assert_eq!(replayed.list()[0].group_type, "consumer");
    // A classic record after it (a downgrade) makes it classic again.
    replayed.restore_group(now, classic[0].clone());
    assert!(replayed.describe_consumer("g").is_err());
    assert_eq!(replayed.list()[0].group_type, "classic");
}
