//! Several brokers in one cluster: voters of one metadata quorum, sharing
//! topics and brokers, following its active controller through failover,
//! each serving the partitions it leads, followers copying the leaders'
//! batches, a dead broker fenced and its partitions led by another
//! in-sync replica, a stopped one handing them over first; leadership
//! back to the preferred replicas when asked (ElectLeaders) or on its own;
//! a broker that does not vote joining a running cluster; ACLs created
//! on one broker applied by all, with replication going on; brokers
//! replicating over an internal PLAINTEXT listener while clients use SASL
//! on an external one; and the quorum described (DescribeQuorum) from any
//! voter, through a change of leader.

use crate::{acls, common, listeners};

use common::*;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::describe_quorum_response::PartitionData as QuorumPartition;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::metadata_response::MetadataResponsePartition;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    DescribeQuorumRequest, ElectLeadersRequest, MetadataRequest, MetadataResponse, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::producer::Producer;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Three voters on 127.0.0.1, each its own data directory in one temp dir.
struct Cluster {
    brokers: Vec<Broker>,
    /// `controller_quorum_voters`.
    voters: String,
    /// The loopback network of this cluster's voters: 127.77.N.
    network: String,
    dir: tempfile::TempDir,
}

impl Cluster {
    fn start(extra_args: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        // Each cluster's voters on loopback addresses of their own: a port
        // picked free on 127.0.0.1 could be taken by another broker's
        // listener (port 0) before the voter binds it.
        static CLUSTERS: AtomicU32 = AtomicU32::new(0);
        let cluster = (std::process::id() + CLUSTERS.fetch_add(1, Ordering::SeqCst)) % 250;
        let network = format!("127.77.{cluster}");
        let voters: Vec<String> = (1..=3).map(|id| format!("{id}@{network}.{id}:9093")).collect();
        let voters = voters.join(",");
        let mut brokers: Vec<Broker> = (1..=3)
            .map(|id| {
                let id = id.to_string();
                let mut args = vec!["--node-id", &id, "--controller-quorum-voters", &voters];
                args.extend_from_slice(extra_args);
                Broker::launch_in(dir.path().join(format!("broker-{id}")), &args)
            })
            .collect();
        brokers.iter_mut().for_each(Broker::wait_listening);
        Cluster { brokers, voters, network, dir }
    }

    /// Starts broker `id`, not a voter: it joins the quorum as a learner.
    fn add_broker(&mut self, id: i32) {
        assert_eq!(self.brokers.len() as i32 + 1, id, "brokers are numbered in order");
        let controller_listen = format!("{}.{id}:9093", self.network);
        let id_text = id.to_string();
        let args = ["--node-id", &id_text, "--controller-quorum-voters", &self.voters];
        let mut broker = Broker::launch_in(
            self.dir.path().join(format!("broker-{id}")),
            &[&args[..], &["--controller-listen", &controller_listen]].concat(),
        );
        broker.wait_listening();
        self.brokers.push(broker);
    }

    /// The broker with node id `id`.
    fn broker(&mut self, id: i32) -> &mut Broker {
        &mut self.brokers[id as usize - 1]
    }

    fn metadata(&self, id: i32) -> MetadataResponse {
        let mut client = client(&self.brokers[id as usize - 1].bootstrap());
        client.send(&MetadataRequest::default().with_topics(None), 12).expect("metadata")
    }

    /// Waits until broker `id` serves `topics` (other brokers learn a
    /// change a moment after the one that asked for it, as in Kafka), and
    /// returns its metadata.
    fn wait_for_topics(&self, id: i32, topics: &[&str]) -> MetadataResponse {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let metadata = self.metadata(id);
            if topic_names(&metadata) == topics {
                return metadata;
            }
            assert!(Instant::now() < deadline, "broker {id} serves {:?}, not {topics:?}", topic_names(&metadata));
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `id` names an active controller other than `not`.
    fn controller(&self, id: i32, not: Option<i32>) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let controller = self.metadata(id).controller_id.0;
            if controller >= 0 && Some(controller) != not {
                return controller;
            }
            assert!(Instant::now() < deadline, "broker {id} names no new active controller");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Creates `topic` with `replicas` replicas of each partition (`extra`:
/// more `weir topics create` flags).
fn create_replicated_topic(bootstrap: &str, topic: &str, partitions: i32, replicas: i16, extra: &[&str]) {
    let output = std::process::Command::new(broker_binary())
        .args(["topics", "create", topic, "--partitions", &partitions.to_string()])
        .args(["--replication-factor", &replicas.to_string(), "--bootstrap", bootstrap])
        .args(extra)
        .output()
        .expect("run weir topics create");
    assert!(output.status.success(), "topics create: {}", String::from_utf8_lossy(&output.stderr));
}

/// What `weir cluster status` prints, asked of `bootstrap`.
fn cluster_status(bootstrap: &str) -> String {
    let output = std::process::Command::new(broker_binary())
        .args(["cluster", "status", "--bootstrap", bootstrap])
        .output()
        .expect("run weir cluster status");
    assert!(output.status.success(), "cluster status: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8")
}

/// Each broker's segment file of `topic`'s `partition`, once all are the same
/// (followers copy the leader's batches unchanged); panics if they do not
/// become so.
fn replicas_agree(cluster: &Cluster, topic: &str, partition: i32) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let files: Vec<Vec<u8>> = (cluster.brokers.iter())
            .map(|b| std::fs::read(b.data_dir.join(format!("{topic}-{partition}/00000000000000000000.log"))))
            .map(|read| read.unwrap_or_default())
            .collect();
        if files.iter().all(|f| *f == files[0]) {
            return files[0].clone();
        }
        assert!(Instant::now() < deadline, "the replicas of {topic}-{partition} differ");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The leader of each partition of `topic`, by partition.
fn leaders(metadata: &MetadataResponse, topic: &str) -> Vec<i32> {
    let named = metadata.topics.iter().find(|t| t.name.as_ref().is_some_and(|n| &*n.0 == topic));
    let mut partitions: Vec<(i32, i32)> =
        named.expect("topic in metadata").partitions.iter().map(|p| (p.partition_index, p.leader_id.0)).collect();
    partitions.sort();
    partitions.into_iter().map(|(_, leader)| leader).collect()
}

/// Partition `index` of `topic` as `metadata` describes it.
fn partition<'a>(metadata: &'a MetadataResponse, topic: &str, index: i32) -> &'a MetadataResponsePartition {
    let topic = metadata.topics.iter().find(|t| t.name.as_ref().is_some_and(|n| &*n.0 == topic)).expect("topic");
    topic.partitions.iter().find(|p| p.partition_index == index).expect("partition")
}

/// The broker ids `metadata` lists.
fn broker_ids(metadata: &MetadataResponse) -> Vec<i32> {
    metadata.brokers.iter().map(|b| b.node_id.0).collect()
}

fn ids(brokers: &[kafka_protocol::messages::BrokerId]) -> Vec<i32> {
    brokers.iter().map(|b| b.0).collect()
}

/// The test message index a consumed message carries in its "index" header.
fn index_of(consumed: &Consumed) -> u64 {
    let (_, value) = consumed.headers.iter().find(|(key, _)| key == "index").expect("an index header");
    String::from_utf8_lossy(value).parse().expect("a number")
}

/// The topics `metadata` names, but the internal ones (`__consumer_offsets`
/// once a client looked for a group coordinator).
fn topic_names(metadata: &MetadataResponse) -> Vec<String> {
    let names = metadata.topics.iter().filter_map(|t| t.name.as_ref()).map(|n| n.0.to_string());
    let mut names: Vec<String> = names.filter(|n| !n.starts_with("__")).collect();
    names.sort();
    names
}

#[test]
fn three_voters_share_metadata_elect_a_new_controller_and_each_serves_the_partitions_it_leads() {
    let mut cluster = Cluster::start(&[]);
    let controller = cluster.controller(1, None);
    for id in 1..=3 {
        let metadata = cluster.metadata(id);
        let ids: Vec<i32> = metadata.brokers.iter().map(|b| b.node_id.0).collect();
        assert_eq!(ids, [1, 2, 3], "broker {id} lists every registered broker");
        assert_eq!(cluster.controller(id, None), controller, "broker {id} names the same active controller");
    }

    // Created through a broker that is not the active controller, seen by all.
    let asker = if controller == 1 { 2 } else { 1 };
    create_topic(&cluster.broker(asker).bootstrap(), "clicks", 6);
    let mut leaders = Vec::new();
    for id in 1..=3 {
        let metadata = cluster.wait_for_topics(id, &["clicks"]);
        assert!(metadata.topics.iter().flat_map(|t| &t.partitions).all(|p| p.replica_nodes.len() == 1));
        leaders = self::leaders(&metadata, "clicks");
    }
    let mut spread = leaders.clone();
    spread.sort();
    spread.dedup();
    assert_eq!(spread, [1, 2, 3], "leaders are spread over the brokers: {leaders:?}");

    // librdkafka produces to each partition's leader and reads it back.
    let bootstrap = cluster.broker(3).bootstrap();
    let producer = producer(&bootstrap, "all");
    produce_range(&producer, "clicks", 0..600);
    check_consumed(&consume_all(&bootstrap, "clicks", 6), 600, 6);

    // A broker that does not lead a partition refuses it, naming the leader.
    let follower = if leaders[0] == 1 { 2 } else { 1 };
    let mut client = client(&cluster.broker(follower).bootstrap());
    let data =
        PartitionProduceData::default().with_index(0).with_records(Some(producer_batch((-1, -1), -1, 1, false, 0)));
    let topic = TopicProduceData::default()
        .with_name(TopicName(StrBytes::from_static_str("clicks")))
        .with_partition_data(vec![data]);
    let produced =
        client.send(&ProduceRequest::default().with_acks(-1).with_timeout_ms(5000).with_topic_data(vec![topic]), 11);
    let response = produced.expect("produce");
    let partition = &response.responses[0].partition_responses[0];
    assert_eq!(partition.error_code, ResponseError::NotLeaderOrFollower.code());
    assert_eq!(partition.current_leader.leader_id.0, leaders[0], "KIP-951 names the leader");
    assert_eq!(response.node_endpoints.iter().map(|e| e.node_id.0).collect::<Vec<_>>(), [leaders[0]]);

    // The active controller dies: another is elected and decides changes.
    cluster.broker(controller).kill();
    let survivor = if controller == 3 { 2 } else { 3 };
    let elected = cluster.controller(survivor, Some(controller));
    let started = Instant::now();
    create_topic(&cluster.broker(survivor).bootstrap(), "after", 2);
    eprintln!("new active controller {elected}; a topic created {:?} after it was named", started.elapsed());
    for id in (1..=3).filter(|&id| id != controller) {
        cluster.wait_for_topics(id, &["after", "clicks"]);
    }

    // The dead voter comes back and catches up from the quorum's log.
    cluster.broker(controller).relaunch();
    cluster.broker(controller).wait_listening();
    cluster.wait_for_topics(controller, &["after", "clicks"]);
    assert_eq!(cluster.controller(controller, Some(controller)), elected);
}

#[test]
fn followers_copy_the_leaders_batches_and_acks_all_needs_min_insync_replicas() {
    // The ISR upkeep's tick comes every 30 s: a follower back in the ISR
    // sooner was taken back on its fetch.
    let mut cluster = Cluster::start(&["--replica-lag-time-max-ms", "60000"]);
    let bootstrap = cluster.broker(1).bootstrap();
    create_replicated_topic(&bootstrap, "replicated", 2, 3, &[]);
    create_replicated_topic(&bootstrap, "strict", 1, 3, &["--config", "min.insync.replicas=3"]);
    for id in 1..=3 {
        cluster.wait_for_topics(id, &["replicated", "strict"]);
    }
    let first = producer(&bootstrap, "all");
    produce_range(&first, "replicated", 0..300);
    produce_range(&first, "strict", 0..10);
    let failed = first.context().failed.lock().unwrap().clone();
    assert!(failed.is_empty(), "{} failed, the first: {:?}", failed.len(), failed.first());
    check_consumed(&consume_all(&bootstrap, "replicated", 2), 300, 2);
    let before: Vec<usize> = (0..2).map(|p| replicas_agree(&cluster, "replicated", p).len()).collect();
    assert!(before.iter().all(|&len| len > 0), "every replica holds the batches");

    // A follower (a broker that leads neither partition) dies: fenced, it
    // leaves the ISR and acks=all goes on with two replicas, but not where
    // min.insync.replicas asks for three.
    let leaders = leaders(&cluster.metadata(1), "replicated");
    let follower = (1..=3).find(|id| !leaders.contains(id)).expect("two partitions leave a broker leading none");
    let survivor = leaders[0];
    let bootstrap = cluster.broker(survivor).bootstrap();
    cluster.broker(follower).kill();
    let on = producer(&bootstrap, "all");
    produce_range(&on, "replicated", 300..320);
    assert!(on.context().failed.lock().unwrap().is_empty(), "acks=all stopped with a follower gone");
    assert!(!ids(&partition(&cluster.metadata(survivor), "replicated", 0).isr_nodes).contains(&follower));
    let status = cluster_status(&bootstrap);
    assert!(status.lines().any(|l| l.trim_start().starts_with(&follower.to_string()) && l.ends_with("fenced")));
    assert!(status.contains(&format!("replicated-0  under-replicated  leader {survivor}")), "{status}");
    assert!(status.contains("strict-0  under-replicated"), "weir cluster status:\n{status}");
    let strict = producer_with(&bootstrap, "all", Acks::default(), 3000);
    produce_range(&strict, "strict", 10..20);
    assert_eq!(strict.context().failed.lock().unwrap().len(), 10, "acknowledged below min.insync.replicas");
    assert_eq!(consume_all(&bootstrap, "strict", 1).len(), 10, "only what was acknowledged is there");

    // It comes back, catches up from its log end, rejoins the ISR as soon
    // as it holds the high watermark, and acks=all needing three replicas
    // goes on.
    cluster.broker(follower).relaunch();
    cluster.broker(follower).wait_listening();
    let deadline = Instant::now() + Duration::from_secs(15);
    while ids(&partition(&cluster.metadata(survivor), "strict", 0).isr_nodes).len() < 3 {
        assert!(Instant::now() < deadline, "the follower did not rejoin the ISR");
        std::thread::sleep(Duration::from_millis(200));
    }
    let resumed = producer(&bootstrap, "all");
    produce_range(&resumed, "strict", 20..30);
    produce_range(&resumed, "replicated", 320..400);
    assert!(resumed.context().failed.lock().unwrap().is_empty());
    for p in 0..2 {
        assert!(replicas_agree(&cluster, "replicated", p).len() > before[p as usize]);
    }
    replicas_agree(&cluster, "strict", 0);
}

#[test]
fn a_dead_partition_leader_is_fenced_and_an_in_sync_replica_leads_then_it_is_listed_again_when_back() {
    let mut cluster = Cluster::start(&[]);
    let controller = cluster.controller(1, None);
    create_replicated_topic(&cluster.broker(1).bootstrap(), "replicated", 1, 3, &[]);
    let metadata = cluster.wait_for_topics(1, &["replicated"]);
    let before = partition(&metadata, "replicated", 0).clone();
    assert_eq!(ids(&before.isr_nodes).len(), 3, "all replicas in sync: {before:?}");
    let dead = before.leader_id.0;

    cluster.broker(dead).kill();
    let killed = Instant::now();
    let survivors: Vec<i32> = (1..=3).filter(|&id| id != dead).collect();
    let deadline = killed + Duration::from_secs(15);
    let mut elected = Vec::new();
    for &id in &survivors {
        loop {
            let metadata = cluster.metadata(id);
            let now = partition(&metadata, "replicated", 0);
            if now.leader_id.0 != dead && now.leader_id.0 >= 0 {
                elected.push((id, killed.elapsed()));
                assert!(ids(&before.isr_nodes).contains(&now.leader_id.0), "elected from the ISR: {now:?}");
                assert!(now.leader_epoch > before.leader_epoch, "a new leader epoch: {now:?}");
                assert!(!ids(&now.isr_nodes).contains(&dead), "the dead broker left the ISR: {now:?}");
                assert!(!broker_ids(&metadata).contains(&dead), "broker {id} still lists broker {dead}");
                assert!(ids(&now.offline_replicas).contains(&dead), "its replica is offline: {now:?}");
                break;
            }
            assert!(Instant::now() < deadline, "broker {id} names no new leader: {now:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let was = if dead == controller { "the active controller" } else { "not the active controller" };
    eprintln!("broker {dead} ({was}) killed; a new leader in metadata after (broker, time): {elected:?}");

    cluster.broker(dead).relaunch();
    cluster.broker(dead).wait_listening();
    for id in 1..=3 {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !broker_ids(&cluster.metadata(id)).contains(&dead) {
            assert!(Instant::now() < deadline, "broker {id} does not list broker {dead} again");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn a_killed_leader_hands_over_to_an_in_sync_follower_with_every_acknowledged_message_kept() {
    let mut cluster = Cluster::start(&["--replica-lag-time-max-ms", "2000"]);
    let bootstrap = cluster.broker(1).bootstrap();
    create_replicated_topic(&bootstrap, "failover", 1, 3, &[]);
    for id in 1..=3 {
        cluster.wait_for_topics(id, &["failover"]);
    }
    let first = producer(&bootstrap, "all");
    produce_range(&first, "failover", 0..200);
    assert!(first.context().failed.lock().unwrap().is_empty());
    let mut acknowledged: Vec<u64> = first.context().acked.lock().unwrap().keys().copied().collect();

    let leader = leaders(&cluster.metadata(1), "failover")[0];
    let survivor = if leader == 1 { 2 } else { 1 };
    cluster.broker(leader).kill();
    let killed = Instant::now();
    let during = producer(&cluster.broker(survivor).bootstrap(), "all");
    produce_range(&during, "failover", 200..400);
    assert!(during.context().failed.lock().unwrap().is_empty(), "{:?}", during.context().failed.lock().unwrap());
    eprintln!("leader {leader} killed; 200 more messages acknowledged {:?} later", killed.elapsed());
    acknowledged.extend(during.context().acked.lock().unwrap().keys());

    // Every acknowledged message is on the new leader, at one offset each.
    let consumed = consume_all(&cluster.broker(survivor).bootstrap(), "failover", 1);
    let offsets: Vec<i64> = consumed.iter().map(|c| c.offset).collect();
    assert_eq!(offsets, (0..consumed.len() as i64).collect::<Vec<_>>(), "offsets are contiguous");
    let read: std::collections::HashSet<u64> = consumed.iter().map(index_of).collect();
    let lost: Vec<u64> = acknowledged.iter().copied().filter(|i| !read.contains(i)).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");

    // The old leader comes back as a follower, catches up and rejoins the ISR.
    cluster.broker(leader).relaunch();
    cluster.broker(leader).wait_listening();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let isr = ids(&partition(&cluster.metadata(survivor), "failover", 0).isr_nodes);
        if isr.len() == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "the restarted broker did not rejoin the ISR: {isr:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    replicas_agree(&cluster, "failover", 0);
}

/// A consumer of `group` that commits only when told, from the earliest
/// offset when the group has none.
fn group_consumer(bootstrap: &str, group: &str) -> rdkafka::consumer::BaseConsumer {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .create()
        .expect("consumer")
}

/// FindCoordinator's key types.
const GROUP_KEY: i8 = 0;
const TRANSACTION_KEY: i8 = 1;

/// The broker FindCoordinator names for `key` (a group or a transactional
/// id, by `key_type`), asked of broker `id`.
fn find_coordinator(cluster: &Cluster, id: i32, key: &str, key_type: i8) -> i32 {
    use kafka_protocol::messages::FindCoordinatorRequest;
    let mut client = client(&cluster.brokers[id as usize - 1].bootstrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let request =
            FindCoordinatorRequest::default().with_key_type(key_type).with_key(StrBytes::from_string(key.to_string()));
        let found = client.send(&request, 3).expect("find coordinator");
        if found.error_code == 0 {
            return found.node_id.0;
        }
        assert!(Instant::now() < deadline, "no coordinator for {key}: error {}", found.error_code);
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn committed_offsets_survive_the_death_of_the_group_coordinator() {
    use rdkafka::consumer::{CommitMode, Consumer};
    use rdkafka::Message;
    use std::collections::BTreeMap;
    let mut cluster = Cluster::start(&[]);
    let bootstrap = cluster.broker(1).bootstrap();
    create_replicated_topic(&bootstrap, "resumed", 2, 3, &[]);
    for id in 1..=3 {
        cluster.wait_for_topics(id, &["resumed"]);
    }
    let producer = producer(&bootstrap, "all");
    produce_range(&producer, "resumed", 0..400);
    assert!(producer.context().failed.lock().unwrap().is_empty());

    // The first consumer reads part of the topic and commits where it is.
    let group = "resumers";
    let first = group_consumer(&bootstrap, group);
    first.subscribe(&["resumed"]).unwrap();
    let mut read = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while read < 150 {
        assert!(Instant::now() < deadline, "the first consumer read {read} messages");
        if let Some(Ok(_)) = first.poll(Duration::from_millis(100)) {
            read += 1;
        }
    }
    first.commit_consumer_state(CommitMode::Sync).expect("commit");
    let committed: BTreeMap<i32, i64> = (first.committed(Duration::from_secs(10)).expect("committed").elements())
        .iter()
        .filter_map(|e| Some((e.partition(), e.offset().to_raw()?)))
        .filter(|(_, offset)| *offset >= 0)
        .collect();
    assert_eq!(committed.values().map(|&o| o as usize).sum::<usize>(), read, "committed {committed:?}");
    let coordinator = find_coordinator(&cluster, 1, group, GROUP_KEY);
    let offsets = partition(&cluster.metadata(coordinator), "__consumer_offsets", 0).replica_nodes.len();
    assert_eq!(offsets, 3, "__consumer_offsets has three replicas");
    drop(first);

    // The coordinator dies: another replica of the group's partition leads
    // it, loads the group and serves the offsets committed before.
    cluster.broker(coordinator).kill();
    let killed = Instant::now();
    let survivor = if coordinator == 1 { 2 } else { 1 };
    let second = group_consumer(&cluster.broker(survivor).bootstrap(), group);
    second.subscribe(&["resumed"]).unwrap();
    let mut seen: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.values().map(Vec::len).sum::<usize>() < 400 - read {
        assert!(Instant::now() < deadline, "the second consumer read {seen:?}");
        if let Some(Ok(m)) = second.poll(Duration::from_millis(100)) {
            seen.entry(m.partition()).or_default().push(m.offset());
        }
    }
    let new_coordinator = find_coordinator(&cluster, survivor, group, GROUP_KEY);
    eprintln!("coordinator {coordinator} killed; {new_coordinator} served the group {:?} later", killed.elapsed());
    assert_ne!(new_coordinator, coordinator);
    for (partition, offsets) in &seen {
        let from = committed.get(partition).copied().unwrap_or(0);
        let expected: Vec<i64> = (from..from + offsets.len() as i64).collect();
        assert_eq!(offsets, &expected, "partition {partition} resumes at its committed offset {from}");
    }
}

#[test]
fn transactions_spanning_brokers_end_in_every_partition_and_a_transform_loop_yields_each_output_once() {
    use crate::transactions::{finish_transform_and_check_outputs, write_input_and_crash_transforms};
    use crate::transactions::{labels, read_values, send, transform_run, txn_producer, Crash};
    let mut cluster = Cluster::start(&[]);
    let bootstrap = cluster.broker(1).bootstrap();
    create_replicated_topic(&bootstrap, "spread", 3, 3, &[]);
    let metadata = cluster.wait_for_topics(1, &["spread"]);
    let mut spread_leaders = leaders(&metadata, "spread");
    spread_leaders.sort();
    assert_eq!(spread_leaders, [1, 2, 3], "each broker leads one partition");

    // One producer's transactions over partitions led by three brokers: its
    // coordinator verifies the batches of the two others (AddPartitionsToTxn
    // v4) and ends the transactions there with WriteTxnMarkers.
    let producer = txn_producer(&bootstrap, "spanning", 60_000);
    for (label, commit) in [("first", true), ("aborted", false), ("third", true)] {
        producer.begin_transaction().expect("begin");
        for p in 0..3 {
            send(&producer, "spread", p, labels(&format!("{label}-{p}"), 0..10));
        }
        match commit {
            true => producer.commit_transaction(Duration::from_secs(30)).expect("commit"),
            false => producer.abort_transaction(Duration::from_secs(30)).expect("abort"),
        }
    }
    // read_committed reads each partition up to its last stable offset: a
    // partition whose marker is missing would stop at the open transaction.
    let mut committed = read_values(&bootstrap, "spread", 3, "read_committed");
    committed.sort();
    let mut expected: Vec<String> =
        (0..3).flat_map(|p| ["first", "third"].map(|label| labels(&format!("{label}-{p}"), 0..10))).flatten().collect();
    expected.sort();
    assert_eq!(committed, expected);
    assert_eq!(read_values(&bootstrap, "spread", 3, "read_uncommitted").len(), 90);
    drop(producer);

    // Consume-transform-produce with the input's group, the output and the
    // transactional id wherever the cluster placed them, killed in the
    // middle of transactions, then with the transaction coordinator's
    // broker killed and restarted.
    create_replicated_topic(&bootstrap, "input", 2, 3, &[]);
    create_replicated_topic(&bootstrap, "output", 1, 3, &[]);
    for id in 1..=3 {
        cluster.wait_for_topics(id, &["input", "output", "spread"]);
    }
    let total = 200u32;
    write_input_and_crash_transforms(&bootstrap, total, &[35, 60]);
    let coordinator = find_coordinator(&cluster, 1, "transformer", TRANSACTION_KEY);
    let bootstrap = cluster.broker(if coordinator == 1 { 2 } else { 1 }).bootstrap();
    let mut kill_coordinator = || {
        cluster.broker(coordinator).kill();
        cluster.broker(coordinator).restart();
    };
    let crash = Crash { after: 50, offsets_sent: true };
    assert!(!transform_run(&bootstrap, Some(crash), 10, &mut kill_coordinator));
    finish_transform_and_check_outputs(&bootstrap, total);
}

#[test]
fn a_stopped_leader_hands_its_partitions_over_before_it_exits_and_an_idempotent_producer_loses_nothing() {
    // A session timeout far longer than a controlled shutdown takes: a
    // broker that only stopped would keep leading its partitions, dead,
    // until it expired.
    let session_timeout = Duration::from_secs(30);
    let config = tempfile::tempdir().expect("temp dir");
    let config_file = config.path().join("broker.toml");
    let toml = format!("broker_session_timeout_ms = {}\n", session_timeout.as_millis());
    std::fs::write(&config_file, toml).expect("write broker.toml");
    let mut cluster = Cluster::start(&["--config", config_file.to_str().expect("utf-8 path")]);
    let topic = "handover";
    let count = 30_000;
    create_replicated_topic(&cluster.broker(1).bootstrap(), topic, 3, 3, &["--config", "min.insync.replicas=2"]);
    for id in 1..=3 {
        cluster.wait_for_topics(id, &[topic]);
    }
    let leaving = leaders(&cluster.metadata(1), topic)[0];
    let staying = if leaving == 1 { 2 } else { 1 };
    let controller = cluster.controller(staying, None);
    let (producing, acked) = produce_idempotently(cluster.broker(staying).bootstrap(), topic, count);
    while acked.load(Ordering::SeqCst) < 3_000 {
        std::thread::sleep(Duration::from_millis(5));
    }

    cluster.broker(leaving).terminate();
    let signalled = Instant::now();
    wait_until("the partitions of the broker stopping have other leaders", session_timeout / 2, || {
        let now = leaders(&cluster.metadata(staying), topic);
        now.iter().all(|&leader| leader != leaving && leader >= 0)
    });
    let moved = signalled.elapsed();
    let metadata = cluster.metadata(staying);
    for index in 0..3 {
        let isr = ids(&partition(&metadata, topic, index).isr_nodes);
        assert!(!isr.contains(&leaving), "broker {leaving} left the ISR of {topic}-{index}: {isr:?}");
    }
    let acked_by_then = acked.load(Ordering::SeqCst);
    let status = cluster.broker(leaving).wait_exit(Duration::from_secs(30));
    assert!(status.success(), "broker {leaving} exited with {status} after SIGTERM");
    let log = cluster.broker(leaving).log();
    assert!(log.contains("controlled shutdown: leading"), "{log}");
    assert!(log.contains("controlled shutdown: fenced, this broker leads nothing now"), "{log}");
    let was = if leaving == controller { "the active controller" } else { "not the active controller" };
    eprintln!("broker {leaving} ({was}) stopped; new leaders after {moved:?}, {acked_by_then} of {count} acknowledged");
    assert!(acked_by_then < count as usize, "the producer finished before the leaders moved: it proves nothing");

    check_exactly_once(&cluster.broker(staying).bootstrap(), topic, 3, count, producing.join().unwrap());
}

#[test]
fn a_broker_that_does_not_vote_joins_a_running_cluster_as_a_learner_and_holds_replicas() {
    let mut cluster = Cluster::start(&[]);
    let bootstrap = cluster.broker(1).bootstrap();
    create_replicated_topic(&bootstrap, "before", 1, 3, &[]);
    let before = producer(&bootstrap, "all");
    produce_range(&before, "before", 0..100);
    assert!(before.context().failed.lock().unwrap().is_empty());

    // Broker 4 is not among the voters: it learns the metadata log (the
    // topic made before it came), registers, and every broker lists it.
    cluster.add_broker(4);
    let joined = cluster.broker(4).bootstrap();
    cluster.wait_for_topics(4, &["before"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while (1..=4).any(|id| broker_ids(&cluster.metadata(id)) != [1, 2, 3, 4]) {
        assert!(Instant::now() < deadline, "not every broker lists broker 4");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(cluster.metadata(4).controller_id.0 <= 3, "a learner is never the active controller");

    // A topic with a replica on every broker: broker 4 copies its share and
    // takes part in acks=all.
    create_replicated_topic(&joined, "grown", 4, 4, &[]);
    for id in 1..=4 {
        cluster.wait_for_topics(id, &["before", "grown"]);
    }
    let metadata = cluster.metadata(4);
    for p in 0..4 {
        assert_eq!(partition(&metadata, "grown", p).replica_nodes.len(), 4);
    }
    assert!(leaders(&metadata, "grown").contains(&4), "placement gives the new broker leaderships");
    let producer = producer(&joined, "all");
    produce_range(&producer, "grown", 0..400);
    assert!(producer.context().failed.lock().unwrap().is_empty());
    check_consumed(&consume_all(&joined, "grown", 4), 400, 4);
    for p in 0..4 {
        assert!(!replicas_agree(&cluster, "grown", p).is_empty());
    }

    // Killed and restarted, it comes back from its own copy of the log,
    // and the voters never noticed a member of their quorum missing.
    let controller = cluster.controller(1, None);
    cluster.broker(4).kill();
    produce_range(&producer, "before", 100..150);
    cluster.broker(4).relaunch();
    cluster.broker(4).wait_listening();
    let deadline = Instant::now() + Duration::from_secs(20);
    while (0..4).any(|p| partition(&cluster.metadata(1), "grown", p).isr_nodes.len() < 4) {
        assert!(Instant::now() < deadline, "broker 4 did not rejoin the ISRs");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(cluster.controller(4, None), controller);
    produce_range(&producer, "grown", 400..500);
    assert!(producer.context().failed.lock().unwrap().is_empty());
    check_consumed(&consume_all(&joined, "grown", 4), 500, 4);
}

/// Each partition's preferred replica (its first), by partition.
fn preferred_replicas(metadata: &MetadataResponse, topic: &str, partitions: i32) -> Vec<i32> {
    (0..partitions).map(|index| partition(metadata, topic, index).replica_nodes[0].0).collect()
}

/// Kills broker `victim`, waits until `witness` names other leaders for
/// all `topic`'s partitions, calls `while_down`, relaunches it and waits
/// until it is back in every ISR.
fn restart_until_in_sync(
    cluster: &mut Cluster,
    (victim, witness): (i32, i32),
    topic: &str,
    partitions: i32,
    while_down: impl FnOnce(&Cluster),
) {
    cluster.broker(victim).kill();
    wait_until("the killed broker's partitions have other leaders", Duration::from_secs(15), || {
        leaders(&cluster.metadata(witness), topic).iter().all(|&leader| leader != victim && leader >= 0)
    });
    while_down(cluster);
    cluster.broker(victim).relaunch();
    cluster.broker(victim).wait_listening();
    wait_until("the restarted broker rejoins every ISR", Duration::from_secs(30), || {
        let metadata = cluster.metadata(witness);
        (0..partitions).all(|index| partition(&metadata, topic, index).isr_nodes.len() == 3)
    });
}

/// ElectLeaders(PREFERRED) for `topic`'s `partitions` over the wire, asked
/// of broker `id`: each partition's error code, by partition.
fn elect_preferred(cluster: &Cluster, id: i32, topic: &str, partitions: &[i32]) -> Vec<(i32, i16)> {
    let named = TopicPartitions::default().with_topic(TopicName(StrBytes::from_string(topic.to_string())));
    let request = ElectLeadersRequest::default()
        .with_topic_partitions(Some(vec![named.with_partitions(partitions.to_vec())]))
        .with_timeout_ms(30_000);
    let mut client = client(&cluster.brokers[id as usize - 1].bootstrap());
    let response = client.send(&request, 2).expect("elect leaders");
    assert_eq!(response.error_code, 0, "{response:?}");
    let results = response.replica_election_results.iter().flat_map(|t| &t.partition_result);
    let mut codes: Vec<(i32, i16)> = results.map(|p| (p.partition_id, p.error_code)).collect();
    codes.sort();
    codes
}

#[test]
fn a_preferred_leader_election_moves_leadership_back_to_a_restarted_broker_and_an_idempotent_producer_loses_nothing() {
    let mut cluster = Cluster::start(&["--replica-lag-time-max-ms", "2000", "--auto-leader-rebalance-enable", "false"]);
    let topic = "preferred";
    create_replicated_topic(&cluster.broker(1).bootstrap(), topic, 3, 3, &[]);
    for id in 1..=3 {
        cluster.wait_for_topics(id, &[topic]);
    }
    let metadata = cluster.metadata(1);
    let preferred = preferred_replicas(&metadata, topic, 3);
    assert_eq!(leaders(&metadata, topic), preferred, "a new topic is led by its preferred replicas");
    let victim = preferred[0];
    let witness = if victim == 1 { 2 } else { 1 };

    let unavailable = ResponseError::PreferredLeaderNotAvailable.code();
    restart_until_in_sync(&mut cluster, (victim, witness), topic, 3, |cluster| {
        assert_eq!(elect_preferred(cluster, witness, topic, &[0]), [(0, unavailable)], "its preferred replica is down");
    });
    let before = cluster.metadata(witness);
    assert_ne!(leaders(&before, topic), preferred, "nothing moved leadership back yet");
    let status = cluster_status(&cluster.broker(witness).bootstrap());
    assert!(status.contains(&format!("{topic}-0  not-preferred")), "weir cluster status:\n{status}");

    let count = 20_000;
    let (producing, acked) = produce_idempotently(cluster.broker(witness).bootstrap(), topic, count);
    while acked.load(Ordering::SeqCst) < 2_000 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let output = std::process::Command::new(broker_binary())
        .args(["cluster", "elect-leaders", "--topic", topic, "--bootstrap", &cluster.broker(witness).bootstrap()])
        .output()
        .expect("run weir cluster elect-leaders");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{printed}{}", String::from_utf8_lossy(&output.stderr));
    assert!(printed.contains(&format!("{topic}-0  elected")), "{printed}");
    let acked_by_then = acked.load(Ordering::SeqCst);
    let after = cluster.metadata(witness);
    assert_eq!(leaders(&after, topic), preferred, "led by the preferred replicas again");
    let (was, now) = (partition(&before, topic, 0), partition(&after, topic, 0));
    assert_eq!(now.leader_epoch, was.leader_epoch + 1, "a new leader epoch");
    let not_needed = ResponseError::ElectionNotNeeded.code();
    assert_eq!(
        elect_preferred(&cluster, victim, topic, &[0, 1, 2]),
        [(0, not_needed), (1, not_needed), (2, not_needed)]
    );
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    assert_eq!(elect_preferred(&cluster, victim, topic, &[7]), [(7, unknown)]);
    assert!(acked_by_then < count as usize, "the producer finished before the election: it proves nothing");
    check_exactly_once(&cluster.broker(victim).bootstrap(), topic, 3, count, producing.join().unwrap());
}

#[test]
fn the_active_controller_balances_leadership_back_to_the_preferred_replicas_on_its_own() {
    let mut cluster =
        Cluster::start(&["--replica-lag-time-max-ms", "2000", "--leader-imbalance-check-interval-seconds", "1"]);
    let topic = "balanced";
    create_replicated_topic(&cluster.broker(1).bootstrap(), topic, 3, 3, &[]);
    for id in 1..=3 {
        cluster.wait_for_topics(id, &[topic]);
    }
    let preferred = preferred_replicas(&cluster.metadata(1), topic, 3);
    let victim = preferred[0];
    let witness = if victim == 1 { 2 } else { 1 };
    restart_until_in_sync(&mut cluster, (victim, witness), topic, 3, |_| {});
    let back = Instant::now();
    wait_until("leadership is back on the preferred replicas", Duration::from_secs(15), || {
        leaders(&cluster.metadata(witness), topic) == preferred
    });
    eprintln!("broker {victim} back in every ISR; leading its preferred partitions again {:?} later", back.elapsed());
}

#[test]
fn a_stopping_active_controller_hands_the_quorum_leadership_to_another_voter_first() {
    let mut cluster = Cluster::start(&[]);
    let controller = cluster.controller(1, None);
    let witness = if controller == 1 { 2 } else { 1 };
    cluster.broker(controller).terminate();
    let signalled = Instant::now();
    let successor = cluster.controller(witness, Some(controller));
    let named = signalled.elapsed();
    let status = cluster.broker(controller).wait_exit(Duration::from_secs(30));
    assert!(status.success(), "broker {controller} exited with {status} after SIGTERM");
    let log = cluster.broker(controller).log();
    let handed = "metadata quorum leadership handed to another voter";
    assert!(log.lines().any(|line| line.contains(handed) && line.contains("Ok(true)")), "{log}");
    eprintln!("active controller {controller} stopped; broker {witness} names {successor} after {named:?}");
}

/// DescribeQuorum v1 for `topic`-`partition`, asked of broker `id`.
fn describe_quorum(cluster: &Cluster, id: i32, topic: &str, partition: i32) -> QuorumPartition {
    let request = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(StrBytes::from_string(topic.to_string())))
        .with_partitions(vec![PartitionData::default().with_partition_index(partition)])]);
    let mut client = client(&cluster.brokers[id as usize - 1].bootstrap());
    let response = client.send(&request, 1).expect("describe quorum");
    assert_eq!(response.error_code, 0, "{response:?}");
    response.topics[0].partitions[0].clone()
}

#[test]
fn any_voter_describes_the_quorum_as_its_leader_sees_it_before_and_after_the_leader_dies() {
    let mut cluster = Cluster::start(&[]);
    let leader = cluster.controller(1, None);
    let asked = if leader == 1 { 2 } else { 1 };
    // Followers' progress is known once the leader has heard from them.
    let deadline = Instant::now() + Duration::from_secs(20);
    let quorum = loop {
        let quorum = describe_quorum(&cluster, asked, "__cluster_metadata", 0);
        if quorum.error_code == 0 && quorum.current_voters.iter().all(|v| v.last_fetch_timestamp > 0) {
            break quorum;
        }
        assert!(Instant::now() < deadline, "the followers' progress never showed: {quorum:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(quorum.leader_id.0, leader, "{quorum:?}");
    assert!(quorum.leader_epoch >= 1 && quorum.high_watermark > 0, "{quorum:?}");
    let mut voters: Vec<i32> = quorum.current_voters.iter().map(|v| v.replica_id.0).collect();
    voters.sort();
    assert_eq!(voters, [1, 2, 3]);
    assert!(quorum.observers.is_empty(), "{quorum:?}");
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    for voter in &quorum.current_voters {
        assert!(voter.log_end_offset >= quorum.high_watermark - 1, "{voter:?} of {quorum:?}");
        assert!((now_ms - 60_000..=now_ms + 1_000).contains(&voter.last_fetch_timestamp), "{voter:?}");
    }
    let wrong = describe_quorum(&cluster, asked, "__cluster_metadata", 1);
    assert_eq!(wrong.error_code, ResponseError::UnknownTopicOrPartition.code(), "{wrong:?}");

    cluster.broker(leader).kill();
    let witness = (1..=3).find(|&id| id != leader).expect("another voter");
    let successor = cluster.controller(witness, Some(leader));
    let deadline = Instant::now() + Duration::from_secs(20);
    let after = loop {
        let after = describe_quorum(&cluster, witness, "__cluster_metadata", 0);
        if after.error_code == 0 && after.leader_id.0 == successor {
            break after;
        }
        assert!(Instant::now() < deadline, "the quorum never described leader {successor}: {after:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(after.leader_epoch > quorum.leader_epoch, "{after:?} after {quorum:?}");
    let dead = after.current_voters.iter().find(|v| v.replica_id.0 == leader).expect("the dead voter is listed");
    assert!(dead.last_fetch_timestamp < now_ms + 1_000, "{dead:?}");
}

#[test]
fn an_acl_created_on_one_broker_applies_on_every_broker_and_replication_goes_on() {
    // Brokers reach each other as User:ANONYMOUS over PLAINTEXT: it holds
    // CLUSTER_ACTION by an ACL here (a super user would do too). The test's
    // client is User:ANONYMOUS as well; allow_everyone_if_no_acl_found lets
    // it create the topics and the first ACLs.
    let args =
        ["--acl-enabled", "true", "--allow-everyone-if-no-acl-found", "true", "--replica-lag-time-max-ms", "60000"];
    let mut cluster = Cluster::start(&args);
    let bootstrap = cluster.broker(1).bootstrap();
    create_replicated_topic(&bootstrap, "open", 1, 3, &["--config", "min.insync.replicas=3"]);
    create_replicated_topic(&bootstrap, "guarded", 1, 3, &[]);
    for id in 1..=3 {
        cluster.wait_for_topics(id, &["guarded", "open"]);
    }
    let acls = vec![
        acls::acl(4, "kafka-cluster", 3, "User:ANONYMOUS", 9, 3),
        acls::acl(2, "guarded", 3, "User:ANONYMOUS", 4, 2),
    ];
    assert_eq!(acls::create_acls(&mut client(&bootstrap), acls), [0, 0]);
    for id in 2..=3 {
        let mut broker = client(&cluster.broker(id).bootstrap());
        let deadline = Instant::now() + Duration::from_secs(20);
        while acls::produce(&mut broker, "guarded") != ResponseError::TopicAuthorizationFailed.code() {
            assert!(Instant::now() < deadline, "broker {id} did not apply the DENY created on broker 1");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // acks=all with min.insync.replicas=3: every follower fetches, as
    // User:ANONYMOUS with CLUSTER_ACTION.
    let bootstrap = cluster.broker(2).bootstrap();
    let all = producer(&bootstrap, "all");
    produce_range(&all, "open", 0..50);
    let failed = all.context().failed.lock().unwrap().clone();
    assert!(failed.is_empty(), "{} failed, the first: {:?}", failed.len(), failed.first());
    replicas_agree(&cluster, "open", 0);
    check_consumed(&consume_all(&cluster.broker(3).bootstrap(), "open", 1), 50, 1);
}

/// `weir partitions <args>` asked of `bootstrap`: what it printed; panics
/// if it failed.
fn weir_partitions(bootstrap: &str, args: &[&str]) -> String {
    let output = std::process::Command::new(broker_binary())
        .arg("partitions")
        .args(args)
        .args(["--bootstrap", bootstrap])
        .output()
        .expect("run weir partitions");
    let printed = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(output.status.success(), "weir partitions {args:?}: {printed}{}", String::from_utf8_lossy(&output.stderr));
    printed
}

fn joined(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

#[test]
fn a_reassignment_moves_a_partition_and_its_leadership_onto_a_new_broker_while_an_idempotent_producer_loses_nothing() {
    let mut cluster = Cluster::start(&["--auto-leader-rebalance-enable", "false"]);
    let topic = "moving";
    create_replicated_topic(&cluster.broker(1).bootstrap(), topic, 1, 3, &["--config", "min.insync.replicas=2"]);
    cluster.add_broker(4);
    for id in 1..=4 {
        cluster.wait_for_topics(id, &[topic]);
    }
    // The leader's replica goes to broker 4 (as [1,2,3] to [4,2,3] when 1 leads).
    let metadata = cluster.metadata(1);
    let (original, leaving) = (ids(&partition(&metadata, topic, 0).replica_nodes), leaders(&metadata, topic)[0]);
    let staying: Vec<i32> = original.iter().copied().filter(|&r| r != leaving).collect();
    let target = [&[4], &staying[..]].concat();
    let witness = staying[0];
    let bootstrap = cluster.broker(witness).bootstrap();

    // Broker 4 down: the move cannot complete; it is listed, then cancelled.
    cluster.broker(4).kill();
    let reassign = ["reassign", "--topic", topic, "--partition", "0"];
    weir_partitions(&bootstrap, &[&reassign[..], &["--replicas", &joined(&target)]].concat());
    let listed = weir_partitions(&bootstrap, &["reassignments"]);
    let moving = format!("{topic}-0  replicas {},{leaving}  adding 4  removing {leaving}\n", joined(&target));
    assert_eq!(listed, moving);
    weir_partitions(&bootstrap, &[&reassign[..], &["--cancel"]].concat());
    assert_eq!(weir_partitions(&bootstrap, &["reassignments"]), "");
    let mut back = ids(&partition(&cluster.metadata(witness), topic, 0).replica_nodes);
    back.sort();
    assert_eq!(back, [1, 2, 3], "cancelled: the original replicas");

    // Broker 4 back: the move completes once it has caught up, while a
    // producer writes with acks=all.
    cluster.broker(4).relaunch();
    cluster.broker(4).wait_listening();
    let count = 30_000;
    let (producing, acked) = produce_idempotently(bootstrap.clone(), topic, count);
    while acked.load(Ordering::SeqCst) < 2_000 {
        std::thread::sleep(Duration::from_millis(5));
    }
    weir_partitions(&bootstrap, &[&reassign[..], &["--replicas", &joined(&target)]].concat());
    let started = Instant::now();
    wait_until("the move completes", Duration::from_secs(30), || {
        weir_partitions(&bootstrap, &["reassignments"]).is_empty()
    });
    let completed = started.elapsed();
    let acked_by_then = acked.load(Ordering::SeqCst);
    let after = partition(&cluster.metadata(witness), topic, 0).clone();
    assert_eq!(ids(&after.replica_nodes), target);
    assert_eq!(after.leader_id.0, 4, "the first target replica in sync leads: broker {leaving} left");
    let mut isr = ids(&after.isr_nodes);
    isr.sort();
    let mut in_sync = [&staying[..], &[4]].concat();
    in_sync.sort();
    assert_eq!(isr, in_sync, "broker {leaving} left the ISR with the replicas");
    let dir = |id: i32| cluster.brokers[id as usize - 1].data_dir.join(format!("{topic}-0"));
    wait_until("the removed replica's directory is gone", Duration::from_secs(10), || !dir(leaving).exists());
    let copied = std::fs::metadata(dir(4).join("00000000000000000000.log")).expect("broker 4 holds the log");
    assert!(copied.len() > 0);
    eprintln!(
        "moved {topic}-0 from {original:?} to {target:?} in {completed:?}; {acked_by_then} of {count} acknowledged"
    );
    assert!(acked_by_then < count as usize, "the producer finished before the move: it proves nothing");

    // Every acknowledged record, exactly once, from the new leader.
    check_exactly_once(&cluster.broker(4).bootstrap(), topic, 1, count, producing.join().unwrap());
}

/// Adds SCRAM user `user` (password `user`-pw) through `bootstrap`
/// (AlterUserScramCredentials); once it returns, that broker serves it.
fn add_user_through(bootstrap: &str, user: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new(broker_binary())
        .args(["users", "add", user, "--bootstrap", bootstrap])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{user}-pw\n").as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "users add: {}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn brokers_replicate_over_an_internal_listener_while_clients_use_sasl_on_an_external_one() {
    let cluster = Cluster::start(&[
        "--listeners",
        // Not first: brokers must pick it by name.
        "EXTERNAL://127.0.0.1:0,INTERNAL://127.0.0.1:0",
        "--listener-security-protocol-map",
        "INTERNAL:PLAINTEXT,EXTERNAL:SASL_PLAINTEXT",
        "--inter-broker-listener-name",
        "INTERNAL",
    ]);
    let internal = |id: usize| cluster.brokers[id - 1].addresses[1].to_string();
    let external = |id: usize| cluster.brokers[id - 1].addresses[0];
    for id in 1..=3 {
        add_user_through(&internal(id), "alice");
    }
    // A client of EXTERNAL, on any broker, is told every broker's EXTERNAL address, and only that.
    let externals: Vec<(i32, String, i32)> =
        (1..=3).map(|id| (id as i32, "127.0.0.1".to_string(), i32::from(external(id).port()))).collect();
    for id in 1..=3 {
        let mut alice = acls::login(&external(id).to_string(), "alice");
        let mut told = listeners::metadata_brokers(&mut alice);
        told.sort();
        assert_eq!(told, externals, "broker {id}");
    }
    let mut anonymous = client(&internal(1));
    let mut told = listeners::metadata_brokers(&mut anonymous);
    told.sort();
    let internals: Vec<i32> = (1..=3).map(|id| i32::from(cluster.brokers[id - 1].addresses[1].port())).collect();
    assert_eq!(told.iter().map(|(_, _, port)| *port).collect::<Vec<_>>(), internals);

    // acks=all with three replicas needs both followers, which fetch from
    // the leader's INTERNAL listener (its EXTERNAL one would want SASL).
    create_replicated_topic(&internal(1), "internal-replication", 1, 3, &["--config", "min.insync.replicas=3"]);
    let producer = listeners::sasl_producer(&external(2).to_string(), "alice");
    produce_range(&producer, "internal-replication", 0..300);
    let acks = producer.context();
    assert!(acks.failed.lock().unwrap().is_empty(), "{:?}", acks.failed.lock().unwrap());
    assert_eq!(acks.acked.lock().unwrap().len(), 300);
    replicas_agree(&cluster, "internal-replication", 0);
}
