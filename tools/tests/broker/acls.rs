//! The authorizer against a real broker: principals authenticated with SASL
//! PLAIN, each API asked with and without the ACLs it needs, answered with
//! Kafka's error codes; DENY over ALLOW, PREFIXED patterns, super users,
//! all-topics Metadata hiding topics, and ACLs surviving a restart.

use crate::common::*;
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::{OffsetFetchRequestGroup, OffsetFetchRequestTopics};
use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::io::Write;
use std::process::{Command, Stdio};
use weir_client::Client;

const TOPIC_DENIED: i16 = 29;
const GROUP_DENIED: i16 = 30;
const CLUSTER_DENIED: i16 = 31;
const TXN_DENIED: i16 = 53;
const TXN_NOT_FOUND: i16 = 105;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

/// Adds SCRAM user `user` (password `user`-pw) to a stopped broker's data directory.
pub(crate) fn add_user(data_dir: &std::path::Path, user: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["users", "add", user, "--data-dir"])
        .arg(data_dir)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{user}-pw\n").as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

/// A broker with ACLs on, a SASL PLAIN listener, the users admin (a super
/// user) and alice, and the flags `extra`; the temp dir holds its data.
fn broker_with_acls(extra: &[&str]) -> (tempfile::TempDir, Broker) {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    for user in ["admin", "alice"] {
        add_user(&data_dir, user);
    }
    let args = ["--listeners", "SASL_PLAINTEXT://127.0.0.1:0", "--acl-enabled", "true", "--super-users", "User:admin"];
    let broker = Broker::start_in(data_dir, &[&args[..], extra].concat());
    (dir, broker)
}

/// A client authenticated as `user` with SASL PLAIN.
pub(crate) fn login(bootstrap: &str, user: &str) -> Client {
    let mut client = client(bootstrap);
    let handshake = client.send(&SaslHandshakeRequest::default().with_mechanism(s("PLAIN")), 1).unwrap();
    assert_eq!(handshake.error_code, 0);
    let token = format!("\0{user}\0{user}-pw");
    let auth = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token.into_bytes()));
    assert_eq!(client.send(&auth, 2).unwrap().error_code, 0, "{user} did not log in");
    client
}

pub(crate) fn acl(
    resource_type: i8,
    name: &str,
    pattern: i8,
    principal: &str,
    operation: i8,
    permission: i8,
) -> AclCreation {
    AclCreation::default()
        .with_resource_type(resource_type)
        .with_resource_name(s(name))
        .with_resource_pattern_type(pattern)
        .with_principal(s(principal))
        .with_host(s("*"))
        .with_operation(operation)
        .with_permission_type(permission)
}

pub(crate) fn create_acls(client: &mut Client, acls: Vec<AclCreation>) -> Vec<i16> {
    let response = client.send(&CreateAclsRequest::default().with_creations(acls), 3).unwrap();
    response.results.iter().map(|r| r.error_code).collect()
}

fn metadata(client: &mut Client, topics: Option<&[&str]>) -> Vec<(String, i16)> {
    let topics = topics
        .map(|names| names.iter().map(|n| MetadataRequestTopic::default().with_name(Some(TopicName(s(n))))).collect());
    let request = MetadataRequest::default().with_topics(topics).with_allow_auto_topic_creation(false);
    let response = client.send(&request, 12).unwrap();
    response.topics.iter().map(|t| (t.name.as_ref().unwrap().to_string(), t.error_code)).collect()
}

fn fetch(client: &mut Client, topic: &str) -> i16 {
    let partition = FetchPartition::default().with_partition(0).with_fetch_offset(0).with_partition_max_bytes(1 << 20);
    let request = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default().with_topic(TopicName(s(topic))).with_partitions(vec![partition])]);
    client.send(&request, 12).unwrap().responses[0].partitions[0].error_code
}

pub(crate) fn produce(client: &mut Client, topic: &str) -> i16 {
    let mut batch = weir_engine::records::RecordsBuilder::new();
    batch.push(None, Some(b"v"), &[], 1);
    produce_batch(client, topic, None, batch.finish()).0
}

fn create_topic_code(client: &mut Client, topic: &str) -> i16 {
    let topic =
        CreatableTopic::default().with_name(TopicName(s(topic))).with_num_partitions(1).with_replication_factor(1);
    client.send(&CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(5000), 7).unwrap().topics[0]
        .error_code
}

#[test]
fn each_api_needs_its_acl_and_answers_kafkas_error_codes() {
    let (_dir, mut broker) = broker_with_acls(&[]);
    let b = broker.bootstrap();
    let mut admin = login(&b, "admin");
    for topic in ["t", "pay-1", "pay-2", "hidden"] {
        assert_eq!(create_topic_code(&mut admin, topic), 0, "{topic}");
    }
    let mut alice = login(&b, "alice");

    // No ACLs: alice is refused everything, with the error of each resource type.
    assert_eq!(produce(&mut alice, "t"), TOPIC_DENIED);
    assert_eq!(fetch(&mut alice, "t"), TOPIC_DENIED);
    assert_eq!(metadata(&mut alice, Some(&["t"])), [("t".to_string(), TOPIC_DENIED)]);
    assert_eq!(metadata(&mut alice, None), []);
    assert_eq!(create_topic_code(&mut alice, "new"), TOPIC_DENIED);
    let delete = DeleteTopicsRequest::default().with_topic_names(vec![TopicName(s("t"))]).with_timeout_ms(5000);
    assert_eq!(alice.send(&delete, 5).unwrap().responses[0].error_code, TOPIC_DENIED);
    let heartbeat = HeartbeatRequest::default().with_group_id(GroupId(s("g"))).with_member_id(s("m"));
    assert_eq!(alice.send(&heartbeat, 4).unwrap().error_code, GROUP_DENIED);
    let marker = WritableTxnMarker::default().with_producer_id(ProducerId(1)).with_topics(vec![
        WritableTxnMarkerTopic::default().with_name(TopicName(s("t"))).with_partition_indexes(vec![0]),
    ]);
    let markers = alice.send(&WriteTxnMarkersRequest::default().with_markers(vec![marker]), 1).unwrap();
    assert_eq!(markers.markers[0].topics[0].partitions[0].error_code, CLUSTER_DENIED);
    let describe = DescribeAclsRequest::default().with_resource_type_filter(1).with_pattern_type_filter(1);
    let describe = describe.with_operation(1).with_permission_type(1).with_resource_name_filter(None);
    let describe = describe.with_principal_filter(None).with_host_filter(None);
    assert_eq!(alice.send(&describe, 3).unwrap().error_code, CLUSTER_DENIED);
    assert_eq!(create_acls(&mut alice, vec![acl(2, "t", 3, "User:alice", 2, 3)]), [CLUSTER_DENIED]);

    // Topic t: WRITE (which implies DESCRIBE); topics pay*: READ, but pay-1 denied.
    let granted = vec![
        acl(2, "t", 3, "User:alice", 4, 3),
        acl(2, "pay", 4, "User:alice", 3, 3),
        acl(2, "pay-1", 3, "User:*", 3, 2),
        acl(3, "g", 3, "User:alice", 3, 3),
    ];
    assert_eq!(create_acls(&mut admin, granted), [0, 0, 0, 0]);
    let invalid = acl(4, "not-the-cluster", 3, "User:alice", 2, 3);
    assert_eq!(create_acls(&mut admin, vec![invalid]), [ResponseError::InvalidRequest.code()]);
    assert_eq!(produce(&mut alice, "t"), 0);
    assert_eq!(fetch(&mut alice, "t"), TOPIC_DENIED, "WRITE does not give READ");
    assert_eq!(fetch(&mut alice, "pay-2"), 0, "PREFIXED pay gives READ on pay-2");
    assert_eq!(fetch(&mut alice, "pay-1"), TOPIC_DENIED, "DENY wins over ALLOW");
    let visible: Vec<String> = metadata(&mut alice, None).into_iter().map(|(name, _)| name).collect();
    assert_eq!(visible, ["pay-1", "pay-2", "t"], "all-topics Metadata lists what alice may describe");
    assert_ne!(alice.send(&heartbeat, 4).unwrap().error_code, GROUP_DENIED);
    assert_eq!(admin.send(&describe, 3).unwrap().resources.len(), 4);

    // Persisted in the metadata: the same after a restart.
    broker.stop();
    broker.restart_on_a_new_port(); // the listener asks for port 0
    let mut alice = login(&broker.bootstrap(), "alice");
    assert_eq!(produce(&mut alice, "t"), 0);
    assert_eq!(fetch(&mut alice, "pay-1"), TOPIC_DENIED);
    assert_eq!(fetch(&mut alice, "hidden"), TOPIC_DENIED);
}

/// The groups of a ListGroups, by id.
fn list_groups(client: &mut Client) -> Vec<String> {
    let response = client.send(&ListGroupsRequest::default(), 4).unwrap();
    response.groups.iter().map(|g| g.group_id.0.to_string()).collect()
}

/// OffsetCommit of offset 1 on partition 0 of each topic, by a group's
/// standalone consumer; each topic's code.
fn commit(client: &mut Client, group: &str, topics: &[&str]) -> Vec<i16> {
    let partition = OffsetCommitRequestPartition::default().with_committed_offset(1).with_committed_leader_epoch(-1);
    let topics = (topics.iter())
        .map(|t| {
            OffsetCommitRequestTopic::default().with_name(TopicName(s(t))).with_partitions(vec![partition.clone()])
        })
        .collect();
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(topics);
    client.send(&request, 8).unwrap().topics.iter().map(|t| t.partitions[0].error_code).collect()
}

/// OffsetFetch v8 of partition 0 of each topic: the group's code, and each
/// topic's (name, code, offset).
fn fetch_offsets(client: &mut Client, group: &str, topics: &[&str]) -> (i16, Vec<(String, i16, i64)>) {
    let topics = (topics.iter())
        .map(|t| OffsetFetchRequestTopics::default().with_name(TopicName(s(t))).with_partition_indexes(vec![0]))
        .collect();
    let request = OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(Some(topics))]);
    let group = client.send(&request, 8).unwrap().groups.remove(0);
    let topics = group.topics.iter().map(|t| {
        let p = &t.partitions[0];
        (t.name.0.to_string(), p.error_code, p.committed_offset)
    });
    (group.error_code, topics.collect())
}

/// The code of each API of topics, groups, transactions and the cluster
/// that has one per resource, for `client` on topic `t`, group `g` and
/// transactional id `x`, in the order of the asserts that use it.
fn admin_codes(client: &mut Client) -> Vec<i16> {
    let t = || TopicName(s("t"));
    let list_offsets =
        ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![ListOffsetsTopic::default()
            .with_name(t())
            .with_partitions(vec![ListOffsetsPartition::default().with_timestamp(-1).with_current_leader_epoch(-1)])]);
    let create_partitions = CreatePartitionsRequest::default()
        .with_topics(vec![CreatePartitionsTopic::default().with_name(t()).with_count(2)])
        .with_timeout_ms(5000);
    let delete_records = DeleteRecordsRequest::default()
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(t())
            .with_partitions(vec![DeleteRecordsPartition::default().with_offset(0)])])
        .with_timeout_ms(5000);
    let producers = DescribeProducersRequest::default()
        .with_topics(vec![TopicRequest::default().with_name(t()).with_partition_indexes(vec![0])]);
    let groups = DescribeGroupsRequest::default().with_groups(vec![GroupId(s("g"))]);
    let find_group = FindCoordinatorRequest::default().with_key_type(0).with_coordinator_keys(vec![s("g")]);
    let find_txn = FindCoordinatorRequest::default().with_key_type(1).with_coordinator_keys(vec![s("x")]);
    let end_txn = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(s("x")))
        .with_producer_id(ProducerId(1))
        .with_committed(true);
    let transactions = DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(s("x"))]);
    let log_dirs = DescribeLogDirsRequest::default().with_topics(None);
    let elect = ElectLeadersRequest::default()
        .with_topic_partitions(Some(vec![TopicPartitions::default().with_topic(t()).with_partitions(vec![0])]))
        .with_timeout_ms(5000);
    vec![
        client.send(&list_offsets, 7).unwrap().topics[0].partitions[0].error_code,
        client.send(&create_partitions, 3).unwrap().results[0].error_code,
        client.send(&delete_records, 2).unwrap().topics[0].partitions[0].error_code,
        client.send(&producers, 0).unwrap().topics[0].partitions[0].error_code,
        client.send(&groups, 5).unwrap().groups[0].error_code,
        client.send(&find_group, 4).unwrap().coordinators[0].error_code,
        client.send(&find_txn, 4).unwrap().coordinators[0].error_code,
        client.send(&end_txn, 3).unwrap().error_code,
        client.send(&transactions, 0).unwrap().transaction_states[0].error_code,
        client.send(&log_dirs, 4).unwrap().error_code,
        client.send(&elect, 2).unwrap().error_code,
    ]
}

/// DescribeConfigs of topic `t` and of the cluster-wide broker defaults:
/// each one's code.
fn describe_configs(client: &mut Client) -> Vec<i16> {
    let resource = |resource_type: i8, name: &str| {
        DescribeConfigsResource::default().with_resource_type(resource_type).with_resource_name(s(name))
    };
    let request = DescribeConfigsRequest::default().with_resources(vec![resource(2, "t"), resource(4, "")]);
    client.send(&request, 4).unwrap().results.iter().map(|r| r.error_code).collect()
}

/// The codes of IncrementalAlterConfigs on group `g`, ConsumerGroupDescribe
/// of `g`, and a ConsumerGroupHeartbeat joining `g` subscribed to `topic`.
fn group_config_and_consumer_codes(client: &mut Client, topic: &str) -> [i16; 3] {
    let config = AlterableConfig::default().with_name(s("consumer.session.timeout.ms")).with_value(Some(s("45000")));
    let resource =
        AlterConfigsResource::default().with_resource_type(32).with_resource_name(s("g")).with_configs(vec![config]);
    let alter = IncrementalAlterConfigsRequest::default().with_resources(vec![resource]);
    let describe = ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s("g"))]);
    let heartbeat = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_rebalance_timeout_ms(5000)
        .with_subscribed_topic_names(Some(vec![TopicName(s(topic))]));
    [
        client.send(&alter, 1).unwrap().responses[0].error_code,
        client.send(&describe, 0).unwrap().groups[0].error_code,
        client.send(&heartbeat, 0).unwrap().error_code,
    ]
}

#[test]
fn topic_group_transaction_and_cluster_apis_need_their_acls() {
    let (_dir, broker) = broker_with_acls(&[]);
    let mut admin = login(&broker.bootstrap(), "admin");
    for topic in ["t", "u"] {
        assert_eq!(create_topic_code(&mut admin, topic), 0, "{topic}");
    }
    // FindCoordinator creates the offsets topic that commits need.
    let find = FindCoordinatorRequest::default().with_key(s("g"));
    assert_eq!(admin.send(&find, 1).unwrap().error_code, 0);
    assert_eq!(commit(&mut admin, "g", &["t", "u"]), [0, 0]);
    assert_eq!(commit(&mut admin, "other", &["t"]), [0]);
    let mut alice = login(&broker.bootstrap(), "alice");

    // ListOffsets, CreatePartitions, DeleteRecords, DescribeProducers,
    // DescribeGroups, FindCoordinator (group, transactional id), EndTxn,
    // DescribeTransactions, DescribeLogDirs, ElectLeaders.
    let refused = [TOPIC_DENIED, TOPIC_DENIED, TOPIC_DENIED, TOPIC_DENIED, GROUP_DENIED, GROUP_DENIED];
    let refused = [&refused[..], &[TXN_DENIED, TXN_DENIED, TXN_DENIED, CLUSTER_DENIED, CLUSTER_DENIED]].concat();
    assert_eq!(admin_codes(&mut alice), refused);
    assert_eq!(list_groups(&mut alice), Vec::<String>::new());
    assert_eq!(fetch_offsets(&mut alice, "g", &["t"]), (GROUP_DENIED, vec![]));
    assert_eq!(commit(&mut alice, "g", &["t"]), [GROUP_DENIED]);
    let delete = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("g"))]);
    assert_eq!(alice.send(&delete, 2).unwrap().results[0].error_code, GROUP_DENIED);
    assert_eq!(describe_configs(&mut alice), [TOPIC_DENIED, CLUSTER_DENIED]);
    assert_eq!(group_config_and_consumer_codes(&mut alice, "t"), [GROUP_DENIED; 3]);

    // READ on topic t and group g (both imply DESCRIBE); DESCRIBE on x.
    let granted = vec![
        acl(2, "t", 3, "User:alice", 3, 3),
        acl(3, "g", 3, "User:alice", 3, 3),
        acl(5, "x", 3, "User:alice", 8, 3),
    ];
    assert_eq!(create_acls(&mut admin, granted), [0, 0, 0]);
    assert_eq!(create_acls(&mut admin, vec![acl(2, "t", 3, "User:alice", 10, 3)]), [0], "DESCRIBE_CONFIGS on t");
    let codes = admin_codes(&mut alice);
    assert_eq!(codes[..2], [0, TOPIC_DENIED], "ListOffsets allowed, CreatePartitions needs ALTER");
    assert_eq!(codes[2], TOPIC_DENIED, "DeleteRecords needs DELETE");
    assert_eq!(codes[3..7], [0, 0, 0, 0], "DescribeProducers, DescribeGroups, FindCoordinator");
    assert_eq!(codes[7], TXN_DENIED, "EndTxn needs WRITE on the transactional id");
    assert_eq!(codes[8], TXN_NOT_FOUND, "DescribeTransactions needs DESCRIBE");
    assert_eq!(codes[9..], [CLUSTER_DENIED, CLUSTER_DENIED]);
    assert_eq!(list_groups(&mut alice), ["g"], "only the groups alice may describe");
    let with_operations =
        DescribeGroupsRequest::default().with_groups(vec![GroupId(s("g"))]).with_include_authorized_operations(true);
    let operations = alice.send(&with_operations, 5).unwrap().groups[0].authorized_operations;
    assert_eq!(operations, 1 << 3 | 1 << 8, "READ and the DESCRIBE it implies");
    assert_eq!(commit(&mut alice, "g", &["t", "u"]), [0, TOPIC_DENIED], "READ on each topic committed");
    let fetched = fetch_offsets(&mut alice, "g", &["t", "u"]);
    assert_eq!(fetched, (0, vec![("t".into(), 0, 1), ("u".into(), TOPIC_DENIED, -1)]));
    assert_eq!(alice.send(&delete, 2).unwrap().results[0].error_code, GROUP_DENIED, "DeleteGroups needs DELETE");
    assert_eq!(describe_configs(&mut alice), [0, CLUSTER_DENIED]);
    let [alter, describe, heartbeat] = group_config_and_consumer_codes(&mut alice, "u");
    assert_eq!(alter, GROUP_DENIED, "READ does not give ALTER_CONFIGS");
    assert_ne!(describe, GROUP_DENIED, "READ gives DESCRIBE");
    assert_eq!(heartbeat, TOPIC_DENIED, "subscribed to a topic alice may not describe");
}

#[test]
fn allow_everyone_if_no_acl_found_opens_only_resources_no_acl_names() {
    let (_dir, broker) = broker_with_acls(&["--allow-everyone-if-no-acl-found", "true"]);
    let mut admin = login(&broker.bootstrap(), "admin");
    for topic in ["open", "guarded"] {
        assert_eq!(create_topic_code(&mut admin, topic), 0);
    }
    assert_eq!(create_acls(&mut admin, vec![acl(2, "guarded", 3, "User:admin", 3, 3)]), [0]);
    let mut alice = login(&broker.bootstrap(), "alice");
    assert_eq!(fetch(&mut alice, "open"), 0);
    assert_eq!(fetch(&mut alice, "guarded"), TOPIC_DENIED);
}

/// Runs `weir acls ...`; its standard output.
fn weir_acls(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_weir")).arg("acls").args(args).output().unwrap();
    assert!(output.status.success(), "weir acls {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn weir_acls_adds_lists_and_removes_as_kafka_acls_does() {
    let broker = Broker::start(&["--acl-enabled", "true", "--super-users", "User:ANONYMOUS"]);
    let b = broker.bootstrap();
    let add = ["add", "--allow-principal", "User:alice", "--operation", "Read", "--operation", "Describe"];
    let added =
        weir_acls(&[&add[..], &["--topic", "clicks", "--resource-pattern-type", "prefixed", "-b", &b]].concat());
    assert_eq!(added.trim(), "added 2 ACL(s)");
    weir_acls(&["add", "--deny-principal", "User:*", "--group", "g", "-b", &b]);
    let listed = weir_acls(&["list", "-b", &b]);
    let row =
        |words: &[&str]| listed.lines().any(|line| words.iter().all(|w| line.split_whitespace().any(|x| x == *w)));
    assert!(row(&["Topic", "clicks", "Prefixed", "User:alice", "*", "Read", "Allow"]), "{listed}");
    assert!(row(&["Topic", "clicks", "Prefixed", "User:alice", "*", "Describe", "Allow"]), "{listed}");
    assert!(row(&["Group", "g", "Literal", "User:*", "*", "All", "Deny"]), "{listed}");
    let only_topic = weir_acls(&["list", "--topic", "clicks-1", "--resource-pattern-type", "match", "-b", &b]);
    assert!(only_topic.contains("clicks") && !only_topic.contains("Group"), "{only_topic}");
    let removed = weir_acls(&["remove", "--topic", "clicks", "--resource-pattern-type", "prefixed", "-b", &b]);
    assert_eq!(removed.trim(), "removed 2 ACL(s)");
    let listed = weir_acls(&["list", "-b", &b]);
    assert!(!listed.contains("clicks") && listed.contains("Group"), "{listed}");
}
