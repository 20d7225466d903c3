use super::*;

fn defaults(partitions: i32) -> TopicDefaults {
    TopicDefaults { partitions, replication_factor: 1 }
}

fn broker(id: i32) -> BrokerRegistration {
    BrokerRegistration {
        id,
        incarnation: Uuid::nil(),
        host: "localhost".into(),
        port: 9092,
        rack: None,
        fenced: false,
        endpoints: Vec::new(),
    }
}

/// The store in `dir` with brokers `ids` registered.
fn store_with_brokers(dir: &std::path::Path, ids: &[i32]) -> MetadataStore {
    let mut store = MetadataStore::load(dir).unwrap();
    ids.iter().for_each(|&id| store.register_broker(broker(id)).unwrap());
    store
}

fn new_topic(name: &str, partitions: i32) -> NewTopic {
    NewTopic::with_partitions(name, partitions)
}

#[test]
fn topics_survive_reload() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store_with_brokers(dir.path(), &[1]);
    let created = store.change(|c| c.create_topic(&new_topic("clicks", 3), &TopicConfigs::new(), defaults(1))).unwrap();
    store.change(|c| c.create_topic(&new_topic("defaulted", -1), &TopicConfigs::new(), defaults(5))).unwrap();
    let reloaded = MetadataStore::load(dir.path()).unwrap().snapshot();
    assert_eq!(reloaded.cluster_id, store.snapshot().cluster_id);
    assert_eq!(reloaded.topic("clicks"), Some(&created));
    assert_eq!(reloaded.topic("defaulted").unwrap().partitions, 5);
    store.change(|c| c.delete_topic("clicks")).unwrap();
    assert!(MetadataStore::load(dir.path()).unwrap().snapshot().topic("clicks").is_none());
}

#[test]
fn bad_topics_are_refused() {
    let none = TopicConfigs::new();
    let dir = tempfile::tempdir().unwrap();
    let mut store = store_with_brokers(dir.path(), &[1]);
    store.change(|c| c.create_topic(&new_topic("a", 1), &none, defaults(1))).unwrap();
    assert_eq!(
        store.change(|c| c.create_topic(&new_topic("a", 1), &none, defaults(1))),
        Err(TopicError::AlreadyExists)
    );
    for name in ["", ".", "..", "a/b", "spaces no", &"x".repeat(250)] {
        assert!(matches!(
            store.change(|c| c.create_topic(&new_topic(name, 1), &none, defaults(1))),
            Err(TopicError::InvalidName(_))
        ));
    }
    assert_eq!(
        store.change(|c| c.create_topic(&new_topic("z", 0), &none, defaults(1))),
        Err(TopicError::InvalidPartitions(0))
    );
    let rf3 = NewTopic { replication_factor: 3, ..new_topic("r", 1) };
    assert_eq!(
        store.change(|c| c.create_topic(&rf3, &none, defaults(1))),
        Err(TopicError::InvalidReplicationFactor { asked: 3, brokers: 1 })
    );
    assert_eq!(store.change(|c| c.delete_topic("nope")), Err(TopicError::Unknown));
}

#[test]
fn configs_are_validated_persisted_and_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store_with_brokers(dir.path(), &[1]);
    let bad = validate_topic_configs([("retention.ms", Some("soon"))]);
    assert!(matches!(bad, Err(TopicError::InvalidConfig(_))));
    let unknown = validate_topic_configs([("retention.forever", None)]);
    assert!(matches!(unknown, Err(TopicError::InvalidConfig(_))));
    let configs = validate_topic_configs([("segment.bytes", Some("4096")), ("retention.ms", None)]).unwrap();
    assert_eq!(configs.len(), 1);
    store.change(|c| c.create_topic(&new_topic("c", 1), &configs, defaults(1))).unwrap();
    let reloaded = MetadataStore::load(dir.path()).unwrap().snapshot();
    assert_eq!(reloaded.topic("c").unwrap().configs.get("segment.bytes").map(String::as_str), Some("4096"));
    let replaced = validate_topic_configs([("cleanup.policy", Some("compact"))]).unwrap();
    store.change(|c| c.set_topic_configs("c", replaced.clone())).unwrap();
    assert_eq!(MetadataStore::load(dir.path()).unwrap().snapshot().topic("c").unwrap().configs, replaced);
    assert_eq!(store.change(|c| c.set_topic_configs("nope", replaced)), Err(TopicError::Unknown));
}

#[test]
fn incremental_alterations() {
    let default = |name: &str| if name == "cleanup.policy" { "delete".to_string() } else { "0".to_string() };
    let current: TopicConfigs = [("retention.ms".to_string(), "1000".to_string())].into();
    let ops = ConfigAlteration::Incremental(vec![
        ConfigOp::Append("cleanup.policy".into(), "compact".into()),
        ConfigOp::Delete("retention.ms".into()),
        ConfigOp::Set("segment.bytes".into(), "2048".into()),
    ]);
    let next = ops.apply(ConfigScope::Topic, &current, default).unwrap();
    assert_eq!(next.get("cleanup.policy").map(String::as_str), Some("delete,compact"));
    assert_eq!(next.get("segment.bytes").map(String::as_str), Some("2048"));
    assert!(!next.contains_key("retention.ms"));
    let subtract = ConfigAlteration::Incremental(vec![ConfigOp::Subtract("cleanup.policy".into(), "delete".into())]);
    assert_eq!(
        subtract.apply(ConfigScope::Topic, &next, default).unwrap().get("cleanup.policy").map(String::as_str),
        Some("compact")
    );
    let emptied = ConfigAlteration::Incremental(vec![ConfigOp::Subtract("cleanup.policy".into(), "delete".into())]);
    assert!(matches!(emptied.apply(ConfigScope::Topic, &current, default), Err(TopicError::InvalidConfig(_))));
    let not_list = ConfigAlteration::Incremental(vec![ConfigOp::Append("retention.ms".into(), "1".into())]);
    assert!(matches!(not_list.apply(ConfigScope::Topic, &current, default), Err(TopicError::InvalidConfig(_))));
    let replace = ConfigAlteration::Replace(vec![("segment.ms".into(), Some("5".into()))]);
    assert_eq!(replace.apply(ConfigScope::Topic, &current, default).unwrap().len(), 1);
    let ignored = ConfigAlteration::Replace(vec![("message.format.version".into(), Some("2.8".into()))]);
    assert!(ignored.apply(ConfigScope::Topic, &current, default).unwrap().is_empty());
    let lags = ConfigAlteration::Incremental(vec![ConfigOp::Set("min.compaction.lag.ms".into(), "10".into())]);
    let conflicting = TopicConfigs::from([("max.compaction.lag.ms".to_string(), "5".to_string())]);
    assert!(matches!(lags.apply(ConfigScope::Topic, &conflicting, default), Err(TopicError::InvalidConfig(_))));

    // Broker scope: Kafka's broker names; a static one is an invalid request.
    let broker = ConfigAlteration::Incremental(vec![
        ConfigOp::Set("log.retention.ms".into(), "5000".into()),
        ConfigOp::Append("log.cleanup.policy".into(), "compact".into()),
    ]);
    let next = broker.apply(ConfigScope::Broker, &TopicConfigs::new(), |_| "delete".into()).unwrap();
    assert_eq!(next.get("log.cleanup.policy").map(String::as_str), Some("delete,compact"));
    let static_one = ConfigAlteration::Incremental(vec![ConfigOp::Set("log.dirs".into(), "/tmp".into())]);
    let refused = static_one.apply(ConfigScope::Broker, &TopicConfigs::new(), default);
    assert!(matches!(refused, Err(TopicError::InvalidRequest(_))));
    let bad = ConfigAlteration::Replace(vec![("log.retention.ms".into(), Some("soon".into()))]);
    assert!(matches!(bad.apply(ConfigScope::Broker, &current, default), Err(TopicError::InvalidConfig(_))));
}

#[test]
fn partitions_are_added_as_kafka_checks_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store_with_brokers(dir.path(), &[1]);
    let created = store.change(|c| c.create_topic(&new_topic("t", 2), &TopicConfigs::new(), defaults(1))).unwrap();
    let increase = |count, assignments| PartitionIncrease { name: "t".into(), count, assignments };
    let message = |r: Result<TopicMetadata, TopicError>| r.unwrap_err().to_string();
    assert_eq!(
        message(store.change(|c| c.add_partitions(&increase(2, None), false))),
        "Topic already has 2 partition(s)."
    );
    assert_eq!(
        message(store.change(|c| c.add_partitions(&increase(1, None), false))),
        "The topic t currently has 2 partition(s); 1 would not be an increase."
    );
    assert_eq!(
        store.change(|c| c.add_partitions(&increase(MAX_PARTITIONS + 1, None), false)),
        Err(TopicError::InvalidPartitions(MAX_PARTITIONS + 1))
    );
    let unknown = PartitionIncrease { name: "nope".into(), ..increase(3, None) };
    assert_eq!(store.change(|c| c.add_partitions(&unknown, false)), Err(TopicError::Unknown));
    for (assignments, why) in [
        (vec![vec![1]], "Attempted to add 2 additional partition(s), but only 1 assignment(s) were specified."),
        (vec![vec![1], vec![]], "The manual partition assignment includes an empty replica list."),
        (
            vec![vec![1], vec![2]],
            "The manual partition assignment includes broker 2, but no such broker is registered.",
        ),
        (vec![vec![1], vec![1, 1]], "The manual partition assignment includes the broker 1 more than once."),
    ] {
        let result = store.change(|c| c.add_partitions(&increase(4, Some(assignments)), false));
        assert_eq!(result, Err(TopicError::InvalidReplicaAssignment(why.into())));
    }
    store.register_broker(broker(2)).unwrap();
    let two_replicas = store.change(|c| c.add_partitions(&increase(3, Some(vec![vec![1, 2]])), false));
    assert!(message(two_replicas).contains("a partition with 2 replica(s)"));

    let checked = store.change(|c| c.add_partitions(&increase(4, Some(vec![vec![1], vec![1]])), true)).unwrap();
    assert_eq!(checked.partitions, 4);
    assert_eq!(store.snapshot().topic("t").unwrap().partitions, 2, "validate_only changed the topic");
    let grown = store.change(|c| c.add_partitions(&increase(5, None), false)).unwrap();
    assert_eq!(grown.assignment.len(), 5);
    assert_eq!(grown, TopicMetadata { partitions: 5, assignment: grown.assignment.clone(), ..created });
    assert_eq!(MetadataStore::load(dir.path()).unwrap().snapshot().topic("t"), Some(&grown));
}

#[test]
fn scram_credentials_are_altered_per_user_and_persisted() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store_with_brokers(dir.path(), &[1]);
    let credential =
        ScramCredential { salt: vec![1, 2], stored_key: vec![3; 32], server_key: vec![4; 32], iterations: 4096 };
    let upsert = |m: &str| ScramChange::Upsert { mechanism: m.into(), credential: credential.clone() };
    let delete = |m: &str| ScramChange::Delete { mechanism: m.into() };
    let mut changes = store.changes();
    let results = changes.alter_scram_credentials(&[
        ("alice".into(), vec![upsert("SCRAM-SHA-256"), upsert("SCRAM-SHA-512")]),
        ("bob".into(), vec![upsert("SCRAM-SHA-256"), delete("SCRAM-SHA-512")]),
    ]);
    assert_eq!(results, vec![Ok(()), Err(TopicError::Unknown)]);
    store.commit(changes).unwrap();
    let reloaded = MetadataStore::load(dir.path()).unwrap().snapshot();
    assert_eq!(reloaded.scram_credential("alice", "SCRAM-SHA-512"), Some(&credential));
    assert!(!reloaded.scram_credentials.contains_key("bob"), "bob's changes were all or none");
    let text = std::fs::read_to_string(dir.path().join("metadata.toml")).unwrap();
    assert!(text.contains("stored_key = \"AwMD"), "keys are base64 text: {text}");
    assert_eq!(format!("{credential:?}"), "ScramCredential { iterations: 4096, .. }");

    let mut changes = store.changes();
    changes.alter_scram_credentials(&[("alice".into(), vec![delete("SCRAM-SHA-256"), delete("SCRAM-SHA-512")])]);
    store.commit(changes).unwrap();
    assert!(MetadataStore::load(dir.path()).unwrap().snapshot().scram_credentials.is_empty());
}

#[test]
fn acls_are_created_once_removed_and_persisted() {
    use super::acl::{AclBinding, AclChange, Operation, PatternType, Permission, ResourceType};
    let dir = tempfile::tempdir().unwrap();
    let mut store = store_with_brokers(dir.path(), &[1]);
    let read = AclBinding {
        resource_type: ResourceType::Topic,
        name: "pay".into(),
        pattern: PatternType::Prefixed,
        principal: "User:alice".into(),
        host: "*".into(),
        operation: Operation::Read,
        permission: Permission::Allow,
    };
    let deny = AclBinding { permission: Permission::Deny, ..read.clone() };
    let mut changes = store.changes();
    let create = AclChange::Create(vec![read.clone(), deny.clone(), read.clone()]);
    assert_eq!(changes.change_acls(&create), vec![Ok(()); 3]);
    assert_eq!(changes.into_records().len(), 2, "a binding that exists is not created again");
    store.change(|c| Ok(c.change_acls(&create))).unwrap();
    let reloaded = MetadataStore::load(dir.path()).unwrap().snapshot();
    assert_eq!(reloaded.acls.iter().collect::<Vec<_>>(), [&deny, &read]);
    // A cluster formed from this broker's image (its records) has them too.
    let mut formed = MetadataChanges::new(&MetadataSnapshot::default());
    formed.import(&reloaded);
    assert_eq!(formed.image().acls, reloaded.acls);

    store.change(|c| Ok(c.change_acls(&AclChange::Remove(vec![deny.clone(), deny])))).unwrap();
    assert_eq!(MetadataStore::load(dir.path()).unwrap().snapshot().acls.iter().collect::<Vec<_>>(), [&read]);
}

#[test]
fn a_metadata_file_without_configs_loads() {
    let dir = tempfile::tempdir().unwrap();
    let old = "cluster_id = \"abc\"\n[topics.t]\nname = \"t\"\nid = \"67e55044-10b1-426f-9247-bb680e5fe0c8\"\npartitions = 2\n";
    std::fs::write(dir.path().join("metadata.toml"), old).unwrap();
    let mut store = MetadataStore::load(dir.path()).unwrap();
    assert!(store.snapshot().topic("t").unwrap().configs.is_empty());
    // Nor assignments: each partition becomes the broker's that registers, as it was.
    assert!(store.snapshot().topic("t").unwrap().assignment.is_empty());
    store.register_broker(broker(7)).unwrap();
    let snapshot = MetadataStore::load(dir.path()).unwrap().snapshot();
    assert_eq!(snapshot.topic("t").unwrap().assignment, vec![PartitionState::new(vec![7]); 2]);
    assert_eq!(snapshot.partition("t", 1).map(|p| (p.leader, p.leader_epoch)), Some((7, 0)));
    assert!(snapshot.partition("t", 2).is_none() && snapshot.partition("t", -1).is_none());
}

#[test]
fn replicas_are_placed_on_the_brokers_persisted_and_checked_when_given() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store_with_brokers(dir.path(), &[1, 2, 3]);
    let rf3 = NewTopic { replication_factor: 3, ..new_topic("r", 6) };
    let created = store.change(|c| c.create_topic(&rf3, &TopicConfigs::new(), defaults(1))).unwrap();
    assert_eq!(created.replication_factor(), 3);
    let leaders: BTreeSet<i32> = created.assignment.iter().map(|p| p.leader).collect();
    assert_eq!(leaders.len(), 3, "leaders spread: {:?}", created.assignment);
    assert!(created.assignment.iter().all(|p| p.isr == p.replicas && p.leader == p.replicas[0]));
    assert_eq!(MetadataStore::load(dir.path()).unwrap().snapshot().topic("r"), Some(&created), "persisted");
    let defaulted = NewTopic { replication_factor: -1, ..new_topic("d", 1) };
    let two = TopicDefaults { partitions: 1, replication_factor: 2 };
    assert_eq!(
        store.change(|c| c.create_topic(&defaulted, &TopicConfigs::new(), two)).unwrap().replication_factor(),
        2
    );

    let given = |lists: Vec<Vec<i32>>| NewTopic { assignments: Some(lists), ..new_topic("g", -1) };
    let mut refused =
        |lists| store.change(|c| c.create_topic(&given(lists), &TopicConfigs::new(), defaults(1))).unwrap_err();
    assert!(refused(vec![vec![1, 4]]).to_string().contains("includes broker 4, but no such broker is registered"));
    assert!(refused(vec![vec![2, 2]]).to_string().contains("the broker 2 more than once"));
    assert!(refused(vec![vec![1, 2], vec![3]]).to_string().contains("a partition with 1 replica(s)"));
    let placed =
        store.change(|c| c.create_topic(&given(vec![vec![3, 1], vec![2, 3]]), &TopicConfigs::new(), defaults(1)));
    let placed = placed.unwrap();
    assert_eq!((placed.partitions, placed.assignment[0].leader, placed.assignment[1].leader), (2, 3, 2));
    // New partitions keep the topic's replication factor.
    let grown = PartitionIncrease { name: "r".into(), count: 8, assignments: None };
    let grown = store.change(|c| c.add_partitions(&grown, false)).unwrap();
    assert!(grown.assignment[6..].iter().all(|p| p.replicas.len() == 3));
}

#[test]
fn producer_ids_are_reserved_by_the_block_and_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store_with_brokers(dir.path(), &[1]);
    let reserve = |store: &mut MetadataStore| store.change(|c| Ok(c.reserve_producer_ids())).unwrap();
    assert_eq!(ProducerIdBlock::default().take(), None);
    let mut block = reserve(&mut store);
    let ids: Vec<i64> = std::iter::from_fn(|| block.take()).collect();
    assert_eq!(ids, (0..PRODUCER_ID_BLOCK).collect::<Vec<_>>());
    assert_eq!(reserve(&mut store).take(), Some(PRODUCER_ID_BLOCK));
    // A restart starts after the last committed block, whatever of it was used.
    let mut restarted = MetadataStore::load(dir.path()).unwrap();
    assert_eq!(reserve(&mut restarted).take(), Some(2 * PRODUCER_ID_BLOCK));
}

/// Brokers 1, 2 and 3 registered, and topic `t` with one partition on
/// `replicas`, all in sync.
fn three_brokers_and(replicas: &[i32]) -> MetadataChanges {
    let mut changes = MetadataChanges::new(&MetadataSnapshot::default());
    (1..=3).for_each(|id| changes.register_broker(broker(id)));
    let topic = NewTopic { assignments: Some(vec![replicas.to_vec()]), ..new_topic("t", 1) };
    changes.create_topic(&topic, &TopicConfigs::new(), defaults(1)).unwrap();
    changes
}

fn state(changes: &MetadataChanges) -> PartitionState {
    changes.image().partition("t", 0).unwrap().clone()
}

fn partition(replicas: &[i32], isr: &[i32], leader: i32, leader_epoch: i32, partition_epoch: i32) -> PartitionState {
    PartitionState { replicas: replicas.to_vec(), isr: isr.to_vec(), leader, leader_epoch, partition_epoch }
}

#[test]
fn a_fenced_leader_is_replaced_by_the_first_unfenced_isr_replica() {
    let mut changes = three_brokers_and(&[2, 3, 1]);
    changes.fence_broker(2);
    assert_eq!(state(&changes), partition(&[2, 3, 1], &[3, 1], 3, 1, 1));
    assert!(!changes.image().is_unfenced(2));
    assert_eq!(changes.image().broker_slots().iter().map(|b| b.id).collect::<Vec<_>>(), [1, 3], "placement");
    // One record for the broker, one for the partition: the topic is not rewritten.
    let records = changes.into_records();
    assert!(matches!(records[records.len() - 2], MetadataRecord::BrokerFenced { id: 2, fenced: true }));
    assert!(
        matches!(&records[records.len() - 1], MetadataRecord::PartitionChange { topic, partition: 0, .. } if topic == "t")
    );
}

#[test]
fn a_fenced_follower_leaves_the_isr_and_fencing_twice_changes_nothing() {
    let mut changes = three_brokers_and(&[1, 2, 3]);
    changes.fence_broker(3);
    assert_eq!(state(&changes), partition(&[1, 2, 3], &[1, 2], 1, 0, 1));
    let version = changes.image().version;
    changes.fence_broker(3);
    changes.fence_broker(9);
    assert_eq!(changes.image().version, version);
}

#[test]
fn the_last_isr_member_fenced_leaves_the_partition_offline_until_it_returns() {
    let mut changes = three_brokers_and(&[1, 2]);
    changes.fence_broker(2);
    changes.fence_broker(1);
    // Never elected outside the ISR (broker 3 holds no replica; 2 left the ISR).
    assert_eq!(state(&changes), partition(&[1, 2], &[1], -1, 1, 2));
    // Broker 2 back: not in the ISR, so still offline.
    changes.unfence_broker(2);
    assert_eq!(state(&changes).leader, -1);
    changes.unfence_broker(1);
    assert_eq!(state(&changes), partition(&[1, 2], &[1], 1, 2, 3));
    assert!(changes.image().is_unfenced(1));
}

#[test]
fn a_fenced_broker_registering_anew_is_unfenced_and_leads_its_offline_partitions() {
    let mut changes = three_brokers_and(&[3]);
    changes.fence_broker(3);
    assert_eq!(state(&changes), partition(&[3], &[3], -1, 1, 1));
    changes.register_broker(BrokerRegistration { incarnation: Uuid::new_v4(), ..broker(3) });
    assert!(changes.image().is_unfenced(3));
    assert_eq!(state(&changes), partition(&[3], &[3], 3, 2, 2));
}

#[test]
fn a_broker_restarted_before_its_session_expired_loses_leadership_and_its_isr_places() {
    let mut changes = three_brokers_and(&[1, 2, 3]);
    let restarted = BrokerRegistration { incarnation: Uuid::new_v4(), ..broker(1) };
    changes.fence_replaced_incarnation(&broker(1));
    assert_eq!(state(&changes), partition(&[1, 2, 3], &[1, 2, 3], 1, 0, 0), "the same process: nothing");
    changes.fence_replaced_incarnation(&restarted);
    changes.register_broker(restarted);
    assert_eq!(state(&changes), partition(&[1, 2, 3], &[2, 3], 2, 1, 1));
    assert!(changes.image().is_unfenced(1));
}

#[test]
fn alter_partition_checks_epochs_leader_and_members_as_kafka_does() {
    let mut changes = three_brokers_and(&[1, 2, 3]);
    let alter = |changes: &mut MetadataChanges, requester, (leader_epoch, partition_epoch), isr: &[i32]| {
        let topic = "t".to_string();
        let alteration = AlterPartition { topic, partition: 0, leader_epoch, partition_epoch, isr: isr.to_vec() };
        changes.alter_partition(requester, &alteration)
    };
    assert_eq!(alter(&mut changes, 1, (0, 0), &[1, 2]), Ok(partition(&[1, 2, 3], &[1, 2], 1, 0, 1)));
    assert_eq!(alter(&mut changes, 1, (0, 0), &[1]), Err(TopicError::InvalidUpdateVersion));
    assert_eq!(alter(&mut changes, 1, (1, 1), &[1]), Err(TopicError::FencedLeaderEpoch));
    assert!(matches!(alter(&mut changes, 2, (0, 1), &[2]), Err(TopicError::InvalidRequest(_))));
    assert!(matches!(alter(&mut changes, 1, (0, 1), &[2, 3]), Err(TopicError::InvalidRequest(_))), "leader left out");
    assert!(matches!(alter(&mut changes, 1, (0, 1), &[1, 1]), Err(TopicError::InvalidRequest(_))));
    changes.register_broker(broker(4));
    assert!(matches!(alter(&mut changes, 1, (0, 1), &[1, 4]), Err(TopicError::IneligibleReplica(_))), "no replica");
    changes.fence_broker(3);
    assert!(matches!(alter(&mut changes, 1, (0, 1), &[1, 3]), Err(TopicError::IneligibleReplica(_))), "fenced");
    let missing = AlterPartition { topic: "t".into(), partition: 1, leader_epoch: 0, partition_epoch: 1, isr: vec![1] };
    assert!(matches!(changes.alter_partition(1, &missing), Err(TopicError::Unknown)));
    // Back in sync: the ISR grows, the leader epoch stays.
    assert_eq!(alter(&mut changes, 1, (0, 1), &[1, 2]), Ok(partition(&[1, 2, 3], &[1, 2], 1, 0, 1)), "no change");
    changes.unfence_broker(3);
    assert_eq!(alter(&mut changes, 1, (0, 1), &[1, 2, 3]), Ok(partition(&[1, 2, 3], &[1, 2, 3], 1, 0, 2)));
}

#[test]
fn files_written_before_fencing_read_brokers_as_unfenced() {
    let old = "cluster_id = \"c\"\n[[brokers]]\nid = 1\nincarnation = \"00000000-0000-0000-0000-000000000000\"\nhost = \"h\"\nport = 1\n";
    let image: MetadataSnapshot = toml::from_str(old).unwrap();
    assert!(image.is_unfenced(1));
}

/// Broker 1, the preferred replica of `t`-0 on 1, 2, 3, fenced and back,
/// with the ISR and leader the controller and the leader left it.
fn preferred_back_in(isr: &[i32]) -> MetadataChanges {
    let mut changes = three_brokers_and(&[1, 2, 3]);
    changes.fence_broker(1);
    changes.unfence_broker(1);
    let alteration =
        AlterPartition { topic: "t".into(), partition: 0, leader_epoch: 1, partition_epoch: 1, isr: isr.to_vec() };
    changes.alter_partition(2, &alteration).unwrap();
    changes
}

#[test]
fn a_preferred_election_moves_leadership_to_the_first_replica_once_it_is_back_in_sync() {
    let t0 = [("t".to_string(), 0)];
    let mut changes = three_brokers_and(&[1, 2, 3]);
    changes.fence_broker(1);
    let unavailable = vec![(t0[0].clone(), Err(TopicError::PreferredLeaderNotAvailable))];
    assert_eq!(changes.elect_leaders(Election::Preferred, Some(&t0)), unavailable, "fenced");
    changes.unfence_broker(1);
    assert_eq!(state(&changes), partition(&[1, 2, 3], &[2, 3], 2, 1, 1));
    assert_eq!(changes.elect_leaders(Election::Preferred, Some(&t0)), unavailable, "out of the ISR");

    let mut changes = preferred_back_in(&[2, 3, 1]);
    assert_eq!(changes.elect_leaders(Election::Preferred, Some(&t0)), vec![(t0[0].clone(), Ok(()))]);
    assert_eq!(state(&changes), partition(&[1, 2, 3], &[2, 3, 1], 1, 2, 3), "new leader and partition epochs");
    assert_eq!(
        changes.elect_leaders(Election::Preferred, Some(&t0)),
        vec![(t0[0].clone(), Err(TopicError::ElectionNotNeeded))]
    );
    // Every partition: those needing no election are left out.
    assert_eq!(changes.elect_leaders(Election::Preferred, None), vec![]);
    let unknown = [("t".to_string(), 1), ("u".to_string(), 0)];
    let answered = changes.elect_leaders(Election::Preferred, Some(&unknown));
    assert!(answered.iter().all(|(_, r)| *r == Err(TopicError::Unknown)), "{answered:?}");
}

#[test]
fn an_unclean_election_leads_from_outside_the_isr_only_where_no_member_is_unfenced() {
    let t0 = [("t".to_string(), 0)];
    let mut changes = three_brokers_and(&[1, 2]);
    assert_eq!(
        changes.elect_leaders(Election::Unclean, Some(&t0)),
        vec![(t0[0].clone(), Err(TopicError::ElectionNotNeeded))]
    );
    changes.fence_broker(2);
    changes.fence_broker(1);
    assert_eq!(
        changes.elect_leaders(Election::Unclean, Some(&t0)),
        vec![(t0[0].clone(), Err(TopicError::EligibleLeadersNotAvailable))]
    );
    changes.unfence_broker(2);
    assert_eq!(state(&changes), partition(&[1, 2], &[1], -1, 1, 2), "2 is out of the ISR: a clean election leaves it");
    assert_eq!(changes.elect_leaders(Election::Unclean, None), vec![(t0[0].clone(), Ok(()))]);
    assert_eq!(state(&changes), partition(&[1, 2], &[2], 2, 2, 3), "it leads alone in the ISR");
}

#[test]
fn leaders_are_balanced_back_to_preferred_replicas_over_the_imbalance_percentage() {
    let mut changes = preferred_back_in(&[2, 3, 1]);
    // Broker 1 leads none of the one partition it prefers: 100%, not over 100.
    assert_eq!(changes.balance_leaders(100), vec![]);
    assert_eq!(changes.balance_leaders(10), vec![("t".to_string(), 0)]);
    assert_eq!(state(&changes).leader, 1);
    assert_eq!(changes.balance_leaders(0), vec![], "balanced");
    // Not back in the ISR: not moved.
    let mut changes = preferred_back_in(&[2, 3]);
    assert_eq!(changes.balance_leaders(0), vec![]);
}

/// `t`-0 on brokers 1, 2, 3 (led by 1), with brokers 4 and 5 registered too.
fn five_brokers() -> MetadataChanges {
    let mut changes = three_brokers_and(&[1, 2, 3]);
    changes.register_broker(broker(4));
    changes.register_broker(broker(5));
    changes
}

fn moving(changes: &MetadataChanges) -> Option<Reassignment> {
    changes.image().reassignment("t", 0).cloned()
}

/// AlterPartition from `t`-0's leader, in the epochs the partition is in.
fn grow_isr(changes: &mut MetadataChanges, isr: &[i32]) -> Result<PartitionState, TopicError> {
    let current = state(changes);
    let alteration = AlterPartition {
        topic: "t".into(),
        partition: 0,
        leader_epoch: current.leader_epoch,
        partition_epoch: current.partition_epoch,
        isr: isr.to_vec(),
    };
    changes.alter_partition(current.leader, &alteration)
}

#[test]
fn reassignments_are_checked_as_kafka_checks_them() {
    let mut changes = five_brokers();
    let before = changes.image().version;
    assert_eq!(changes.reassign("u", 0, Some(&[1, 2, 3]), true), Err(TopicError::Unknown));
    assert_eq!(changes.reassign("t", 1, Some(&[1, 2, 3]), true), Err(TopicError::Unknown));
    assert_eq!(changes.reassign("t", 0, None, true), Err(TopicError::NoReassignmentInProgress));
    for bad in [&[][..], &[4, 2, 4], &[4, 2, 9]] {
        let refused = changes.reassign("t", 0, Some(bad), true);
        assert!(matches!(refused, Err(TopicError::InvalidReplicaAssignment(_))), "{bad:?}: {refused:?}");
    }
    assert_eq!(
        changes.reassign("t", 0, Some(&[4, 2, 3, 5]), false),
        Err(TopicError::ReplicationFactorChange { from: 3, to: 4 })
    );
    assert_eq!(changes.image().version, before, "nothing refused was recorded");
    // A fenced broker is still registered: it may be named.
    changes.fence_broker(5);
    assert_eq!(changes.reassign("t", 0, Some(&[4, 2, 3, 5]), true), Ok(()));
    assert_eq!(moving(&changes), Some(Reassignment { adding: vec![4, 5], removing: vec![1] }));
}

#[test]
fn a_reassignment_completes_when_its_new_replicas_join_the_isr_and_moves_a_removed_leader() {
    let mut changes = five_brokers();
    changes.reassign("t", 0, Some(&[4, 2, 3]), false).unwrap();
    // The target, then what it leaves; the ISR and leader as they were.
    assert_eq!(state(&changes), partition(&[4, 2, 3, 1], &[1, 2, 3], 1, 0, 1));
    assert_eq!(moving(&changes), Some(Reassignment { adding: vec![4], removing: vec![1] }));

    // The ISR shrinking does not complete it.
    assert_eq!(grow_isr(&mut changes, &[1, 2]), Ok(partition(&[4, 2, 3, 1], &[1, 2], 1, 0, 2)));
    assert!(moving(&changes).is_some());
    // 4 in sync: 1 goes, and 4, the first target replica in sync, leads.
    assert_eq!(grow_isr(&mut changes, &[1, 2, 4]), Ok(partition(&[4, 2, 3], &[2, 4], 4, 1, 4)));
    assert_eq!(moving(&changes), None);
    assert!(changes.image().reassignments.is_empty());
}

#[test]
fn a_reassignment_that_adds_no_replica_completes_at_once() {
    let mut changes = five_brokers();
    changes.reassign("t", 0, Some(&[2, 3]), true).unwrap();
    assert_eq!(state(&changes), partition(&[2, 3], &[2, 3], 2, 1, 2));
    assert_eq!(moving(&changes), None);
    // The same replicas in another order: only the order changes, the leader stays.
    changes.reassign("t", 0, Some(&[3, 2]), false).unwrap();
    assert_eq!(state(&changes), partition(&[3, 2], &[2, 3], 2, 1, 3));
    assert_eq!(moving(&changes), None);
}

#[test]
fn a_cancelled_reassignment_goes_back_to_the_original_replicas() {
    let mut changes = five_brokers();
    changes.reassign("t", 0, Some(&[4, 5, 3]), false).unwrap();
    assert_eq!(grow_isr(&mut changes, &[1, 2, 3, 4]), Ok(partition(&[4, 5, 3, 1, 2], &[1, 2, 3, 4], 1, 0, 2)));
    changes.reassign("t", 0, None, false).unwrap();
    // As Kafka's revert: the replicas without those added, 4 out of the ISR.
    assert_eq!(state(&changes), partition(&[3, 1, 2], &[1, 2, 3], 1, 0, 3));
    assert_eq!(moving(&changes), None);
    assert_eq!(changes.reassign("t", 0, None, false), Err(TopicError::NoReassignmentInProgress));
}

#[test]
fn a_new_reassignment_replaces_one_in_progress_from_the_original_replicas() {
    let mut changes = five_brokers();
    changes.reassign("t", 0, Some(&[4, 2, 3]), false).unwrap();
    assert_eq!(grow_isr(&mut changes, &[1, 2, 3]), Ok(partition(&[4, 2, 3, 1], &[1, 2, 3], 1, 0, 1)), "no change");
    changes.reassign("t", 0, Some(&[5, 2, 3]), false).unwrap();
    assert_eq!(moving(&changes), Some(Reassignment { adding: vec![5], removing: vec![1] }), "4 is no longer added");
    assert_eq!(state(&changes), partition(&[5, 2, 3, 1], &[1, 2, 3], 1, 0, 2));
    // Its ISR holds only target replicas and those it removes.
    assert!(matches!(grow_isr(&mut changes, &[1, 2, 3, 4]), Err(TopicError::IneligibleReplica(_))));
    assert_eq!(grow_isr(&mut changes, &[1, 2, 3, 5]), Ok(partition(&[5, 2, 3], &[2, 3, 5], 5, 1, 4)));
}

#[test]
fn deleting_a_topic_ends_its_reassignments() {
    let mut changes = five_brokers();
    changes.reassign("t", 0, Some(&[4, 2, 3]), false).unwrap();
    changes.delete_topic("t").unwrap();
    assert!(changes.image().reassignments.is_empty());
}

#[test]
fn a_reassignment_record_and_the_image_holding_it_round_trip() {
    let mut changes = five_brokers();
    changes.reassign("t", 0, Some(&[4, 2, 3]), false).unwrap();
    let image = changes.image().clone();
    let records = changes.into_records();
    let record = records.last().unwrap();
    assert!(matches!(record, MetadataRecord::Reassignment { reassignment: Some(_), .. }));
    let encoded = postcard::to_stdvec(record).unwrap();
    assert_eq!(encoded[0], 12, "the last variant: earlier records keep their encoding");
    assert_eq!(postcard::from_bytes::<MetadataRecord>(&encoded).unwrap(), *record);

    let decoded: MetadataSnapshot = postcard::from_bytes(&postcard::to_stdvec(&image).unwrap()).unwrap();
    assert_eq!(decoded.reassignments, image.reassignments);
    let decoded: MetadataSnapshot = toml::from_str(&toml::to_string(&image).unwrap()).unwrap();
    assert_eq!(decoded.reassignments, image.reassignments);
    // An image written before reassignments existed reads as none moving.
    let old: MetadataSnapshot = toml::from_str("cluster_id = \"c\"\n").unwrap();
    assert!(old.reassignments.is_empty());
}

#[test]
fn client_quotas_survive_metadata_toml_and_a_json_snapshot() {
    use quota::{EntityName, QuotaEntity, QuotaKey, Quotas};
    let mut image = MetadataSnapshot::default();
    let entities = [
        QuotaEntity { user: Some(EntityName::Name("alice".into())), client_id: Some(EntityName::Default) },
        QuotaEntity { user: None, client_id: Some(EntityName::Name("c".into())) },
    ];
    for entity in entities {
        let quotas = Quotas::from([(QuotaKey::ProducerByteRate, 1024.0), (QuotaKey::RequestPercentage, 12.5)]);
        image.apply(MetadataRecord::ClientQuotas { entity, quotas });
    }
    let from_toml: MetadataSnapshot = toml::from_str(&toml::to_string(&image).unwrap()).unwrap();
    assert_eq!(from_toml.quotas, image.quotas);
    let from_json: MetadataSnapshot = serde_json::from_slice(&serde_json::to_vec(&image).unwrap()).unwrap();
    assert_eq!(from_json.quotas, image.quotas);
    assert_eq!(image.quotas.iter().count(), 2);
}
