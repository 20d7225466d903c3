//! A follower's side of replication: on each shard, one fetcher per leader
//! broker carries every partition the shard follows on that leader in one
//! Fetch (replica id set, as a Kafka follower sends it), appends what comes
//! back unchanged (`PartitionLog::append_replicated`), takes the leader's
//! high watermark, and truncates where the leader's history diverges
//! (KIP-320's diverging epoch).

use crate::broker_client::BrokerConnection;
use crate::shard::{Role, Shard};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;
use weir_runtime::channels::local_channel::{self, LocalReceiver, LocalSender};

/// Fetch v12: the newest that names topics rather than ids, with the
/// diverging epoch (KIP-320).
const FETCH_VERSION: i16 = 12;
/// How long the leader holds a fetch with nothing new (Kafka's
/// `replica.fetch.wait.max.ms`).
const FETCH_WAIT_MS: i32 = 500;
/// Per partition and per fetch (`replica.fetch.max.bytes`,
/// `replica.fetch.response.max.bytes`).
const PARTITION_MAX_BYTES: i32 = 1 << 20;
const FETCH_MAX_BYTES: i32 = 10 << 20;
/// The pause after a failed fetch (`replica.fetch.backoff.ms`).
const BACKOFF: Duration = Duration::from_secs(1);

/// The partitions this shard follows, by leader, and the fetch loop of
/// each leader.
pub(crate) struct Fetchers {
    followed: RefCell<BTreeMap<i32, BTreeSet<(String, i32)>>>,
    /// Leaders with a fetch loop running.
    running: RefCell<BTreeSet<i32>>,
    wake: LocalSender<()>,
    woken: RefCell<Option<LocalReceiver<()>>>,
}

impl Fetchers {
    pub fn new() -> Self {
        let (wake, woken) = local_channel::new_unbounded();
        Fetchers { followed: RefCell::default(), running: RefCell::default(), wake, woken: RefCell::new(Some(woken)) }
    }

    /// From now on follows exactly `followed` (topic and partition, by leader).
    pub fn follow(&self, followed: BTreeMap<i32, BTreeSet<(String, i32)>>) {
        if *self.followed.borrow() != followed {
            self.followed.replace(followed);
            let _ = self.wake.try_send(());
        }
    }

    fn followed_on(&self, leader: i32) -> BTreeSet<(String, i32)> {
        self.followed.borrow().get(&leader).cloned().unwrap_or_default()
    }

    /// Starts a fetch loop for each leader followed that has none, each time
    /// what is followed changes, until the shard stops. Spawned once per shard.
    pub async fn supervise(shard: Rc<Shard>) {
        let Some(woken) = shard.fetchers().woken.borrow_mut().take() else { return };
        while woken.recv().await.is_some() {
            let fetchers = shard.fetchers();
            let leaders: Vec<i32> = fetchers.followed.borrow().keys().copied().collect();
            for leader in leaders {
                if fetchers.running.borrow_mut().insert(leader) {
                    weir_runtime::spawn_local(fetch_from(shard.clone(), leader)).detach();
                }
            }
        }
    }
}

/// Fetches from `leader` the partitions followed on it, until there are none.
async fn fetch_from(shard: Rc<Shard>, leader: i32) {
    let mut connection: Option<BrokerConnection> = None;
    loop {
        let partitions = shard.fetchers().followed_on(leader);
        if partitions.is_empty() {
            shard.fetchers().running.borrow_mut().remove(&leader);
            return;
        }
        let snapshot = shard.metadata();
        let Some(broker) = snapshot.brokers.iter().find(|b| b.id == leader) else {
            weir_runtime::clock::sleep(BACKOFF).await;
            continue;
        };
        if connection.is_none() {
            match BrokerConnection::open(&broker.address(), "weir-replica-fetcher").await {
                Ok(opened) => connection = Some(opened),
                Err(e) => {
                    tracing::debug!(leader, "cannot connect to the leader to fetch: {e}");
                    weir_runtime::clock::sleep(BACKOFF).await;
                    continue;
                }
            }
        }
        let request = fetch_request(&shard, &partitions);
        let connected = connection.as_mut().expect("connected above");
        let answer: anyhow::Result<FetchResponse> = connected.call(ApiKey::Fetch, FETCH_VERSION, &request).await;
        let response = match answer {
            Ok(response) if response.error_code == 0 => response,
            Ok(response) => {
                tracing::debug!(leader, code = response.error_code, "the leader refused a fetch");
                weir_runtime::clock::sleep(BACKOFF).await;
                continue;
            }
            Err(e) => {
                tracing::debug!(leader, "fetching from the leader: {e}");
                connection = None;
                weir_runtime::clock::sleep(BACKOFF).await;
                continue;
            }
        };
        let mut refused = false;
        for topic in response.responses {
            for data in topic.partitions {
                refused |= !copy(&shard, &topic.topic.0, data).await;
            }
        }
        if refused {
            // Leadership moved or the log refused the bytes: wait for new
            // metadata rather than asking again at once.
            weir_runtime::clock::sleep(BACKOFF).await;
        }
    }
}

/// One fetch for `partitions`, each from its log end, with the epoch of its
/// last batch (KIP-320) and the leader epoch it believes current.
fn fetch_request(shard: &Shard, partitions: &BTreeSet<(String, i32)>) -> FetchRequest {
    let snapshot = shard.metadata();
    let mut topics: Vec<FetchTopic> = Vec::new();
    for (topic, index) in partitions {
        let (Ok(partition), Some(state)) = (shard.partition(topic, *index), snapshot.partition(topic, *index)) else {
            continue;
        };
        let log = &partition.log;
        let last_fetched_epoch = log.leader_epochs().last().map_or(-1, |e| e.epoch);
        let fetch = FetchPartition::default()
            .with_partition(*index)
            .with_current_leader_epoch(state.leader_epoch)
            .with_fetch_offset(log.log_end_offset())
            .with_last_fetched_epoch(last_fetched_epoch)
            .with_log_start_offset(log.log_start_offset())
            .with_partition_max_bytes(PARTITION_MAX_BYTES);
        match topics.last_mut() {
            Some(last) if &*last.topic.0 == topic.as_str() => last.partitions.push(fetch),
            _ => topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partitions(vec![fetch]),
            ),
        }
    }
    FetchRequest::default()
        .with_replica_id(BrokerId(shard.config().node_id))
        .with_max_wait_ms(FETCH_WAIT_MS)
        .with_min_bytes(1)
        .with_max_bytes(FETCH_MAX_BYTES)
        .with_session_epoch(-1)
        .with_topics(topics)
}

/// Copies one partition's answer into its log: truncates where the
/// leader's history diverges, appends the batches, takes the high
/// watermark. False when it could not (the leader refused, the log failed).
async fn copy(shard: &Shard, topic: &str, data: PartitionData) -> bool {
    let Ok(partition) = shard.partition(topic, data.partition_index) else { return true };
    if partition.role.get() != Role::Follower {
        return true; // it leads since this fetch was sent: what came is not to be copied
    }
    let log = &partition.log;
    if data.error_code != 0 {
        tracing::debug!(
            topic,
            partition = data.partition_index,
            code = data.error_code,
            "the leader refused a partition"
        );
        return false;
    }
    let copied = async {
        if data.diverging_epoch.epoch >= 0 {
            let to = data.diverging_epoch.end_offset.min(log.log_end_offset());
            tracing::info!(topic, partition = data.partition_index, to, "truncating to the leader's history");
            partition.forget_producers();
            log.truncate_to(to).await?;
            return Ok(());
        }
        if let Some(records) = data.records.filter(|r| !r.is_empty()) {
            log.append_replicated(records).await?;
        }
        log.advance_high_watermark(data.high_watermark);
        Ok::<(), weir_engine::EngineError>(())
    };
    match copied.await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(topic, partition = data.partition_index, "copying the leader's batches: {e}");
            false
        }
    }
}
