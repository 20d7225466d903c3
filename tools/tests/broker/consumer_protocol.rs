//! The consumer group protocol of KIP-848 (`group.protocol=consumer`):
//! librdkafka consumers assigned by the broker, and the protocol's requests
//! and error codes checked on the wire.

use crate::common;

use common::groups::*;
use common::*;
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::{OffsetFetchRequestGroup, OffsetFetchRequestTopics};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, DescribeGroupsRequest,
    FindCoordinatorRequest, GroupId, IncrementalAlterConfigsRequest, ListGroupsRequest, OffsetCommitRequest,
    OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::AdminOptions;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::Consumer;
use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

/// Short consumer-protocol session and heartbeats so takeovers happen within seconds.
const BROKER_CONFIG: &str = "group_consumer_session_timeout_ms = 3000\ngroup_consumer_heartbeat_interval_ms = 300\n";

fn consumer(bootstrap: &str, group: &str, assignor: &str) -> GroupConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("group.protocol", "consumer")
        .set("group.remote.assignor", assignor)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("topic.metadata.refresh.interval.ms", "500")
        .create_with_context(RebalanceLog::default())
        .expect("consumer")
}

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

#[test]
fn three_consumers_share_six_partitions_and_take_over_from_a_killed_one() {
    let broker = broker_with_config(BROKER_CONFIG);
    let b = broker.bootstrap();
    create_topic(&b, "shared", 6);
    let first = consumer(&b, "sharers", "uniform");
    let second = consumer(&b, "sharers", "uniform");
    first.subscribe(&["shared"]).unwrap();
    second.subscribe(&["shared"]).unwrap();
    let mut victim =
        ChildTest::spawn("consumer_protocol::child_consumer", ("WEIR_CHILD_CONSUMER", format!("{b},shared,sharers")));
    let mut seen = Vec::new();
    poll_until(&[&first, &second], &mut seen, Duration::from_secs(60), |_| {
        assigned(&first).len() == 2
            && assigned(&second).len() == 2
            && victim.last_assigned().is_some_and(|p| p.len() == 2)
    });
    let (a, c) = (assigned(&first), assigned(&second));
    let v = victim.last_assigned().unwrap();
    assert!(a.is_disjoint(&c) && a.is_disjoint(&v) && c.is_disjoint(&v), "overlap: {a:?} {c:?} {v:?}");

    let placed = produce(&b, "shared", 0..3000);
    let survivors_share = placed.values().filter(|(p, _)| a.contains(p) || c.contains(p)).count();
    poll_until(&[&first, &second], &mut seen, Duration::from_secs(60), |seen| seen.len() == survivors_share);
    for (consumer, partition, _, _) in &seen {
        let mine = if *consumer == 0 { &a } else { &c };
        assert!(mine.contains(partition), "consumer {consumer} read partition {partition} it does not own");
    }
    // SIGKILL: only the session timeout (3 s) tells the group.
    victim.kill();
    let victim_seen: HashSet<u64> = victim
        .lines
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| l.strip_prefix("message ").and_then(|rest| rest.split(' ').nth(2)).map(|i| i.parse().unwrap()))
        .collect();
    poll_until(&[&first, &second], &mut seen, Duration::from_secs(30), |_| {
        assigned(&first).len() + assigned(&second).len() == 6
    });
    assert!(assigned(&first).is_disjoint(&assigned(&second)));
    assert_eq!(assigned(&first).len(), 3, "the uniform assignor balances the survivors");
    produce(&b, "shared", 3000..6000);
    poll_until(&[&first, &second], &mut seen, Duration::from_secs(60), |seen| {
        seen.iter().map(|s| s.3).chain(victim_seen.iter().copied()).collect::<HashSet<_>>().len() == 6000
    });
}

/// The victim of the test above, run as a separate process so that it can be SIGKILLed.
#[test]
#[ignore = "run as a child process by three_consumers_share_six_partitions_and_take_over_from_a_killed_one"]
fn child_consumer() {
    let spec = std::env::var("WEIR_CHILD_CONSUMER").expect("WEIR_CHILD_CONSUMER=bootstrap,topic,group");
    let mut parts = spec.split(',');
    let (bootstrap, topic, group) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    let consumer = consumer(bootstrap, group, "uniform");
    consumer.subscribe(&[topic]).unwrap();
    run_child_consumer(&consumer)
}

fn topic_partitions(consumer: &GroupConsumer) -> BTreeSet<(String, i32)> {
    consumer.assignment().unwrap().elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect()
}

#[test]
fn range_assignor_and_a_regex_subscription_follow_topics_created_and_deleted() {
    let broker = broker_with_config(BROKER_CONFIG);
    let b = broker.bootstrap();
    create_topic(&b, "re-one", 4);
    create_topic(&b, "other", 2);
    let first = consumer(&b, "rangers", "range");
    let second = consumer(&b, "rangers", "range");
    first.subscribe(&["^re-.*"]).unwrap();
    second.subscribe(&["^re-.*"]).unwrap();
    let mut seen = Vec::new();
    let both = |seen: &mut Vec<Seen>, want: usize| {
        poll_until(&[&first, &second], seen, Duration::from_secs(60), |_| {
            let (x, y) = (topic_partitions(&first), topic_partitions(&second));
            x.len() + y.len() == want && !x.is_empty() && !y.is_empty() && x.is_disjoint(&y)
        })
    };
    both(&mut seen, 4);
    // Range: each member a contiguous half of the topic.
    let halves: BTreeSet<BTreeSet<i32>> =
        [&first, &second].iter().map(|c| topic_partitions(c).into_iter().map(|(_, p)| p).collect()).collect();
    assert_eq!(halves, BTreeSet::from([BTreeSet::from([0, 1]), BTreeSet::from([2, 3])]));
    assert!(topic_partitions(&first).iter().all(|(t, _)| t == "re-one"), "'other' does not match");
    // A new topic matching the regex joins the assignment.
    create_topic(&b, "re-two", 2);
    both(&mut seen, 6);
    assert!(topic_partitions(&first).iter().any(|(t, _)| t == "re-two"));
    assert!(topic_partitions(&second).iter().any(|(t, _)| t == "re-two"));
    // A deleted one leaves it.
    let admin = admin(&b);
    let deleted = block_on(admin.delete_topics(&["re-one"], &AdminOptions::new())).unwrap();
    assert!(deleted.iter().all(|r| r.is_ok()), "{deleted:?}");
    both(&mut seen, 2);
    assert!(topic_partitions(&first).iter().chain(topic_partitions(&second).iter()).all(|(t, _)| t == "re-two"));
}

fn heartbeat(
    client: &mut weir_client::Client,
    request: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    client.send(&request, 1).unwrap()
}

fn join(member: &str, topics: &[&str]) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s("wire")))
        .with_member_id(s(member))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(topics.iter().map(|t| TopicName(s(t))).collect()))
        .with_topic_partitions(Some(Vec::new()))
}

/// member-a joins group "wire" once its coordinator is ready.
fn first_join(client: &mut weir_client::Client) -> ConsumerGroupHeartbeatResponse {
    client.send(&FindCoordinatorRequest::default().with_key(s("wire")), 3).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = heartbeat(client, join("member-a", &["wire-topic"]));
        // COORDINATOR_NOT_AVAILABLE while __consumer_offsets opens.
        if r.error_code != 15 || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn beat(member: &str, epoch: i32) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s("wire")))
        .with_member_id(s(member))
        .with_member_epoch(epoch)
}

fn commit(client: &mut weir_client::Client, member: &str, epoch: i32, offset: i64) -> i16 {
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(s("wire")))
        .with_member_id(s(member))
        .with_generation_id_or_member_epoch(epoch)
        .with_topics(vec![OffsetCommitRequestTopic::default().with_name(TopicName(s("wire-topic"))).with_partitions(
            vec![OffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(offset)],
        )]);
    client.send(&request, 9).unwrap().topics[0].partitions[0].error_code
}

/// (group error, committed offset of partition 0) from OffsetFetch v9.
fn fetch(client: &mut weir_client::Client, member: Option<&str>, epoch: i32) -> (i16, i64) {
    let group = OffsetFetchRequestGroup::default()
        .with_group_id(GroupId(s("wire")))
        .with_member_id(member.map(s))
        .with_member_epoch(epoch)
        .with_topics(Some(vec![OffsetFetchRequestTopics::default()
            .with_name(TopicName(s("wire-topic")))
            .with_partition_indexes(vec![0])]));
    let response = client.send(&OffsetFetchRequest::default().with_groups(vec![group]), 9).unwrap();
    let group = &response.groups[0];
    (group.error_code, group.topics.first().map_or(-1, |t| t.partitions[0].committed_offset))
}

fn listed(client: &mut weir_client::Client, types: &[&str]) -> Vec<(String, String, String)> {
    let request = ListGroupsRequest::default().with_types_filter(types.iter().map(|t| s(t)).collect());
    let response = client.send(&request, 5).unwrap();
    response
        .groups
        .iter()
        .map(|g| (g.group_id.0.to_string(), g.group_type.to_string(), g.group_state.to_string()))
        .collect()
}

#[test]
fn heartbeats_epochs_commits_and_listings_on_the_wire_and_across_a_restart() {
    let mut broker = broker_with_config(BROKER_CONFIG);
    let b = broker.bootstrap();
    create_topic(&b, "wire-topic", 2);
    let mut client = client(&b);
    let joined = first_join(&mut client);
    assert_eq!(joined.error_code, 0, "{:?}", joined.error_message);
    assert_eq!(joined.member_id.as_deref(), Some("member-a"));
    assert_eq!(joined.heartbeat_interval_ms, 300);
    let epoch = joined.member_epoch;
    assert!(epoch > 0);
    // The group's own config (KIP-848 group configs) overrides the broker's.
    for (operation, value, interval) in [(0, Some("7000"), 7000), (1, None, 300)] {
        let config = AlterableConfig::default()
            .with_name(s("consumer.heartbeat.interval.ms"))
            .with_config_operation(operation)
            .with_value(value.map(s));
        let alter = IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(32)
            .with_resource_name(s("wire"))
            .with_configs(vec![config])]);
        assert_eq!(client.send(&alter, 1).unwrap().responses[0].error_code, 0);
        let r = heartbeat(&mut client, beat("member-a", epoch));
        assert_eq!((r.error_code, r.heartbeat_interval_ms), (0, interval));
    }
    let owned: Vec<i32> =
        joined.assignment.unwrap().topic_partitions.iter().flat_map(|t| t.partitions.clone()).collect();
    assert_eq!(owned, vec![0, 1], "a lone member gets every partition");

    // Error codes as Kafka's: fenced epoch, unknown member, unsupported assignor.
    assert_eq!(heartbeat(&mut client, beat("member-a", epoch + 5)).error_code, 110);
    assert_eq!(heartbeat(&mut client, beat("nobody", 1)).error_code, 25);
    let bad_assignor = join("member-x", &["wire-topic"]).with_server_assignor(Some(s("sticky")));
    assert_eq!(heartbeat(&mut client, bad_assignor).error_code, 112);
    assert_eq!(heartbeat(&mut client, beat("member-a", epoch)).error_code, 0);

    // OffsetCommit v9 / OffsetFetch v9 check the member's epoch.
    assert_eq!(commit(&mut client, "member-a", epoch - 1, 5), 113, "STALE_MEMBER_EPOCH");
    assert_eq!(commit(&mut client, "nobody", epoch, 5), 25);
    assert_eq!(commit(&mut client, "member-a", epoch, 42), 0);
    assert_eq!(fetch(&mut client, Some("member-a"), epoch), (0, 42));
    assert_eq!(fetch(&mut client, Some("member-a"), epoch + 1).0, 113);
    assert_eq!(fetch(&mut client, None, -1), (0, 42), "the admin client names no member");

    // A second member: partition moves only after member-a releases it.
    let second = heartbeat(&mut client, join("member-b", &["wire-topic"]));
    assert_eq!(second.error_code, 0);
    let b_epoch = second.member_epoch;
    assert!(b_epoch > epoch);
    assert!(second.assignment.unwrap().topic_partitions.iter().all(|t| t.partitions.is_empty()), "nothing free yet");
    let told = heartbeat(&mut client, beat("member-a", epoch));
    assert_eq!(told.member_epoch, epoch, "member-a keeps its epoch until it revokes");
    let kept = told.assignment.unwrap().topic_partitions;
    assert_eq!(kept.iter().map(|t| t.partitions.len()).sum::<usize>(), 1);
    let released = beat("member-a", epoch).with_topic_partitions(Some(
        kept.iter()
            .map(|t| TopicPartitions::default().with_topic_id(t.topic_id).with_partitions(t.partitions.clone()))
            .collect(),
    ));
    assert_eq!(heartbeat(&mut client, released).member_epoch, b_epoch);
    let got = heartbeat(&mut client, beat("member-b", b_epoch).with_topic_partitions(Some(Vec::new())));
    assert_eq!(got.assignment.unwrap().topic_partitions.iter().map(|t| t.partitions.len()).sum::<usize>(), 1);

    // ListGroups v5 types, ConsumerGroupDescribe, DescribeGroups v6.
    let classic = commit(&mut client, "", -1, 0); // no group named "wire" is classic; this one is a consumer group
    assert_eq!(classic, 25, "a consumer group with members refuses commits naming no member");
    assert_eq!(listed(&mut client, &["consumer"]), vec![("wire".into(), "consumer".into(), "Stable".into())]);
    assert!(listed(&mut client, &["classic"]).is_empty());
    let described =
        client.send(&ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s("wire"))]), 1).unwrap();
    let group = &described.groups[0];
    assert_eq!((group.error_code, group.group_epoch, group.assignment_epoch), (0, b_epoch, b_epoch));
    assert_eq!(group.assignor_name.as_str(), "uniform");
    assert_eq!(group.members.len(), 2);
    assert!(group
        .members
        .iter()
        .all(|m| m.member_epoch == b_epoch && m.assignment.topic_partitions[0].topic_name.0.as_str() == "wire-topic"));
    let old_style = client.send(&DescribeGroupsRequest::default().with_groups(vec![GroupId(s("wire"))]), 6).unwrap();
    assert_eq!(old_style.groups[0].error_code, 69, "GROUP_ID_NOT_FOUND: not a classic group");

    // The group epoch and committed offsets survive a restart; members rejoin.
    broker.kill();
    broker.restart();
    let mut client = common::client(&broker.bootstrap());
    client.send(&FindCoordinatorRequest::default().with_key(s("wire")), 3).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let after = loop {
        let r = heartbeat(&mut client, beat("member-a", b_epoch));
        if r.error_code != 15 || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(after.error_code, 25, "members are not persisted: UNKNOWN_MEMBER_ID, then they rejoin");
    assert_eq!(fetch(&mut client, None, -1), (0, 42));
    let rejoined = heartbeat(&mut client, join("member-a", &["wire-topic"]));
    assert_eq!(rejoined.error_code, 0);
    assert!(rejoined.member_epoch > b_epoch, "the group epoch continues from before the restart");
    let leave = heartbeat(&mut client, beat("member-a", -1));
    assert_eq!((leave.error_code, leave.member_epoch), (0, -1));
    assert_eq!(listed(&mut client, &[]), vec![("wire".into(), "consumer".into(), "Empty".into())]);
}

/// Classic members need a shorter minimum session than the broker's default.
const MIXED_BROKER_CONFIG: &str =
    "group_consumer_session_timeout_ms = 3000\ngroup_consumer_heartbeat_interval_ms = 300\n\
                                   group_min_session_timeout_ms = 1000\ngroup_initial_rebalance_delay_ms = 300\n";

/// A consumer of the classic protocol with the client-side `strategy` (whose
/// name is all the broker takes from it).
fn classic_consumer(bootstrap: &str, group: &str, strategy: &str) -> GroupConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("group.protocol", "classic")
        .set("partition.assignment.strategy", strategy)
        .set("session.timeout.ms", "3000")
        .set("heartbeat.interval.ms", "300")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create_with_context(RebalanceLog::default())
        .expect("consumer")
}

/// Polls both until they hold every partition of a 4-partition topic between
/// them, each some, none twice.
fn until_shared(members: [&GroupConsumer; 2], seen: &mut Vec<Seen>) -> [BTreeSet<i32>; 2] {
    poll_until(&members, seen, Duration::from_secs(60), |_| {
        let (x, y) = (assigned(members[0]), assigned(members[1]));
        x.len() + y.len() == 4 && !x.is_empty() && !y.is_empty() && x.is_disjoint(&y)
    });
    [assigned(members[0]), assigned(members[1])]
}

/// Produces `range` and polls until each of its messages was seen once, by
/// the member that owns its partition.
fn consume_exactly_once(
    b: &str,
    topic: &str,
    range: std::ops::Range<u64>,
    members: &[&GroupConsumer],
    owned: &[BTreeSet<i32>],
) {
    let placed = produce(b, topic, range.clone());
    let mut seen = Vec::new();
    poll_until(members, &mut seen, Duration::from_secs(60), |seen| seen.len() >= range.clone().count());
    // A moment more: a duplicate would show now (and the async commits land).
    poll_for(members, &mut seen, Duration::from_millis(500), |_| false);
    let indexes: HashSet<u64> = seen.iter().map(|s| s.3).collect();
    assert_eq!((seen.len(), indexes.len()), (range.clone().count(), range.count()), "each message exactly once");
    for (member, partition, offset, index) in &seen {
        assert!(owned[*member].contains(partition), "member {member} read partition {partition} it does not own");
        assert_eq!(placed[index], (*partition, *offset));
    }
}

/// ConsumerGroupDescribe v1: each member's type (0 classic, 1 consumer), sorted.
fn member_types(b: &str, group: &str) -> Vec<i8> {
    let request = ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s(group))]);
    let described = client(b).send(&request, 1).unwrap();
    assert_eq!(described.groups[0].error_code, 0);
    let mut types: Vec<i8> = described.groups[0].members.iter().map(|m| m.member_type).collect();
    types.sort();
    types
}

#[test]
fn a_classic_member_joins_a_consumer_group_and_the_other_takes_over_when_it_leaves() {
    classic_member_joins_a_consumer_group("range");
}

#[test]
fn a_cooperative_classic_member_joins_a_consumer_group_and_the_other_takes_over_when_it_leaves() {
    classic_member_joins_a_consumer_group("cooperative-sticky");
}

/// Eager clients give everything up before they rejoin; cooperative ones
/// name what they still own in their JoinGroup.
fn classic_member_joins_a_consumer_group(strategy: &str) {
    let broker = broker_with_config(MIXED_BROKER_CONFIG);
    let b = broker.bootstrap();
    create_topic(&b, "mixed", 4);
    let modern = consumer(&b, "mixers", "uniform");
    modern.subscribe(&["mixed"]).unwrap();
    let mut seen = Vec::new();
    poll_until(&[&modern], &mut seen, Duration::from_secs(60), |_| assigned(&modern).len() == 4);
    let classic = classic_consumer(&b, "mixers", strategy);
    classic.subscribe(&["mixed"]).unwrap();
    let owned = until_shared([&modern, &classic], &mut seen);
    assert_eq!(member_types(&b, "mixers"), vec![0, 1]);
    let mut c = client(&b);
    assert_eq!(listed(&mut c, &["consumer"]), vec![("mixers".into(), "consumer".into(), "Stable".into())]);
    consume_exactly_once(&b, "mixed", 0..2000, &[&modern, &classic], &owned);
    // The classic member leaves (LeaveGroup): the consumer member takes everything.
    drop(classic);
    poll_until(&[&modern], &mut seen, Duration::from_secs(30), |_| assigned(&modern).len() == 4);
    consume_exactly_once(&b, "mixed", 2000..3000, &[&modern], &[assigned(&modern)]);
}

#[test]
fn a_consumer_member_upgrades_a_classic_group_which_downgrades_when_it_leaves() {
    let broker = broker_with_config(MIXED_BROKER_CONFIG);
    let b = broker.bootstrap();
    create_topic(&b, "migrating", 4);
    let classic = classic_consumer(&b, "migrants", "range");
    classic.subscribe(&["migrating"]).unwrap();
    let mut seen = Vec::new();
    poll_until(&[&classic], &mut seen, Duration::from_secs(60), |_| assigned(&classic).len() == 4);
    let mut c = client(&b);
    assert_eq!(listed(&mut c, &["classic"]), vec![("migrants".into(), "classic".into(), "Stable".into())]);
    // Online upgrade: the group becomes a consumer group of both.
    let modern = consumer(&b, "migrants", "uniform");
    modern.subscribe(&["migrating"]).unwrap();
    let owned = until_shared([&classic, &modern], &mut seen);
    assert_eq!(listed(&mut c, &["consumer"]), vec![("migrants".into(), "consumer".into(), "Stable".into())]);
    assert_eq!(member_types(&b, "migrants"), vec![0, 1]);
    consume_exactly_once(&b, "migrating", 0..2000, &[&classic, &modern], &owned);
    // Online downgrade: the consumer member leaves, the group is classic again and rebalances.
    drop(modern);
    poll_until(&[&classic], &mut seen, Duration::from_secs(30), |_| assigned(&classic).len() == 4);
    assert_eq!(listed(&mut c, &["classic"]), vec![("migrants".into(), "classic".into(), "Stable".into())]);
    consume_exactly_once(&b, "migrating", 2000..3000, &[&classic], &[assigned(&classic)]);
}

/// JoinGroup v3 (no MEMBER_ID_REQUIRED round) of a new member with `protocol_type`.
fn classic_join_request(group: &str, protocol_type: &str) -> kafka_protocol::messages::JoinGroupRequest {
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    kafka_protocol::messages::JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(s(protocol_type))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(bytes::Bytes::from_static(&[0, 0, 0, 0, 0, 0]))])
}

#[test]
fn groups_of_another_protocol_type_refuse_the_other_kind_of_member() {
    let broker = broker_with_config(MIXED_BROKER_CONFIG);
    let b = broker.bootstrap();
    create_topic(&b, "wire-topic", 2);
    let mut client = client(&b);
    let joined = first_join(&mut client);
    assert_eq!(joined.error_code, 0);
    // A consumer group takes classic members of protocol type "consumer" only.
    let refused = client.send(&classic_join_request("wire", "connect"), 3).unwrap();
    assert_eq!(refused.error_code, 23, "INCONSISTENT_GROUP_PROTOCOL");
    // A classic group of another protocol type is not upgraded.
    let connect = client.send(&classic_join_request("connectors", "connect"), 3).unwrap();
    assert_eq!(connect.error_code, 0);
    let upgrade = join("member-b", &["wire-topic"]).with_group_id(GroupId(s("connectors")));
    let refused = heartbeat(&mut client, upgrade);
    assert_eq!(refused.error_code, 69, "GROUP_ID_NOT_FOUND");
    assert_eq!(
        listed(&mut client, &["classic"]),
        vec![("connectors".into(), "classic".into(), "CompletingRebalance".into())]
    );
}
