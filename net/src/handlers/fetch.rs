//! Fetch: read every requested partition on its owner; if fewer than min_bytes
//! are ready, long-poll until new data is appended or max_wait_ms passes.
//! From v13 topics are named by id, and an id no topic has is
//! UNKNOWN_TOPIC_ID. A replica id (v15+: in replica_state) names a follower
//! broker: it reads up to the log end, and its offsets move the high
//! watermark; v17's replica_directory_id is ignored.
//! KIP-320: a current_leader_epoch (v9+) other than the partition's is
//! FENCED_LEADER_EPOCH or UNKNOWN_LEADER_EPOCH; a last_fetched_epoch (v12+)
//! whose history this log does not share is answered with the diverging
//! epoch to truncate to.

use super::ClientInfo;
use crate::errors::partition_error_code;
use futures::future::{select, Either};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint, PartitionData,
};
use kafka_protocol::messages::ProducerId;
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::pin::pin;
use std::time::Duration;
use uuid::Uuid;
use weir_shards::metadata::acl::Operation;
use weir_shards::metadata::quota::QuotaKey;
use weir_shards::{FetchedPartition, LongPoll, PartitionError, PartitionRead, PartitionReads, Shard};

/// Fetch's isolation_level for read_committed.
const READ_COMMITTED: i8 = 1;

/// Upper bound on a long poll, whatever the client asks for.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// The first version that names topics by id.
const TOPIC_ID_VERSION: i16 = 13;

struct Wanted {
    /// `None`: a topic id (v13+) that no topic has.
    topic: Option<TopicName>,
    topic_id: Uuid,
    partition: i32,
    offset: i64,
    max_bytes: usize,
    last_fetched_epoch: i32,
    /// FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH or
    /// TOPIC_AUTHORIZATION_FAILED: not read.
    refused: Option<i16>,
}

pub async fn handle(shard: &Shard, client: &ClientInfo, version: i16, request: FetchRequest) -> FetchResponse {
    let replica = if version >= 15 { request.replica_state.replica_id.0 } else { request.replica_id.0 };
    let replica = (replica >= 0).then_some(replica);
    // Kafka's checks: a follower needs CLUSTER_ACTION, a consumer READ on each topic.
    if replica.is_some() && !client.may_on_cluster(shard, Operation::ClusterAction) {
        return FetchResponse::default().with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    let may_read = |topic: &str| client.may_on_topic(shard, Operation::Read, topic);
    let snapshot = shard.metadata();
    let wanted: Vec<Wanted> = request
        .topics
        .iter()
        .flat_map(|t| {
            let (topic, topic_id) = if version >= TOPIC_ID_VERSION {
                let name = snapshot.topic_by_id(t.topic_id).map(|m| TopicName(StrBytes::from_string(m.name.clone())));
                (name, t.topic_id)
            } else {
                (Some(t.topic.clone()), Uuid::nil())
            };
            let snapshot = &snapshot;
            t.partitions.iter().map(move |p| {
                let leader_epoch = topic.as_ref().and_then(|t| snapshot.partition(&t.0, p.partition));
                Wanted {
                    topic: topic.clone(),
                    topic_id,
                    partition: p.partition,
                    offset: p.fetch_offset,
                    max_bytes: p.partition_max_bytes.max(0) as usize,
                    last_fetched_epoch: p.last_fetched_epoch,
                    refused: match topic.as_ref().is_some_and(|t| !may_read(&t.0)) {
                        true => Some(ResponseError::TopicAuthorizationFailed.code()),
                        false => leader_epoch
                            .and_then(|s| super::current_leader_epoch_error(p.current_leader_epoch, s.leader_epoch)),
                    },
                }
            })
        })
        .collect();
    let min_bytes = request.min_bytes.max(0) as usize;
    let asked = if request.max_bytes > 0 { request.max_bytes as usize } else { usize::MAX };
    let max_bytes = asked.min(shard.config().fetch_max_bytes);
    let wait = Duration::from_millis(request.max_wait_ms.max(0) as u64).min(MAX_WAIT);
    let deadline = weir_runtime::clock::now() + wait;
    let read_committed = request.isolation_level == READ_COMMITTED;

    let long_poll =
        |timeout: Duration| (min_bytes > 0 && !timeout.is_zero()).then_some(LongPoll { min_bytes, timeout });
    let mut reads = read_all(shard, &wanted, replica, read_committed, max_bytes, long_poll(wait)).await;
    loop {
        let results = &reads.results;
        let ready: usize = results.iter().map(|r| r.as_ref().map_or(0, |f| f.records.len())).sum();
        let any_error = results.iter().any(weir_shards::answers_at_once);
        let left = deadline.saturating_duration_since(weir_runtime::clock::now());
        if ready >= min_bytes || any_error || left.is_zero() || wanted.is_empty() {
            break;
        }
        // The owners wait on their partitions; the first to see one move reads them again.
        let reread = match select(pin!(reads.reread()), pin!(weir_runtime::clock::sleep(left))).await {
            Either::Left((reread, _)) => reread,
            Either::Right(_) => break,
        };
        if !reread {
            // No owner waits any more, and not enough is ready: ask them again.
            reads = read_all(shard, &wanted, replica, read_committed, max_bytes, long_poll(left)).await;
        }
    }
    let mut response = build_response(version, &wanted, reads.results, max_bytes);
    // Consumers' fetches count against their quota; followers' do not (Kafka
    // throttles replication by its own settings).
    if replica.is_none() {
        let partitions = response.responses.iter().flat_map(|t| &t.partitions);
        let bytes = partitions.map(|p| p.records.as_ref().map_or(0, |r| r.len())).sum();
        let principal = &client.requester.principal;
        response.throttle_time_ms =
            client.quotas.record(shard, principal, &client.client_id, QuotaKey::ConsumerByteRate, bytes);
    }
    if version >= 16 {
        add_leader_endpoint(shard, client, &mut response);
    }
    response
}

/// Reads the partitions in request order against the response's byte
/// budget, in rounds: a round reads at once (one message per owner shard)
/// the next partitions whose shares (each its partition_max_bytes, at most
/// what the budget has left) fit in the budget, so one fetch holds about
/// `max_bytes` however many partitions it names (plus one batch per
/// partition whose first batch is larger than its share, KIP-74).
/// Partitions after the budget is spent are answered with their offsets
/// only.
async fn read_all<'a>(
    shard: &'a Shard,
    wanted: &[Wanted],
    replica: Option<i32>,
    read_committed: bool,
    max_bytes: usize,
    long_poll: Option<LongPoll>,
) -> PartitionReads<'a> {
    let mut reads = PartitionReads::default();
    let mut left = max_bytes;
    while reads.results.len() < wanted.len() {
        let mut round = Vec::new();
        let mut planned = 0;
        for w in &wanted[reads.results.len()..] {
            let share = w.max_bytes.min(left - planned);
            if share == 0 && planned > 0 {
                break; // the budget is planned out: see what this round used first
            }
            planned += share;
            let readable = w.topic.as_ref().filter(|_| w.refused.is_none());
            round.push(readable.map(|topic| PartitionRead {
                topic: topic.0.to_string(),
                partition: w.partition,
                offset: w.offset,
                max_bytes: share,
                last_fetched_epoch: w.last_fetched_epoch,
                replica,
            }));
        }
        let read = shard.read_partitions(round, read_committed, long_poll).await;
        let used: usize = read.results.iter().map(|r| r.as_ref().map_or(0, |f| f.records.len())).sum();
        left = left.saturating_sub(used);
        reads.extend(read);
    }
    reads
}

fn build_response(
    version: i16,
    wanted: &[Wanted],
    results: Vec<Result<FetchedPartition, PartitionError>>,
    max_bytes: usize,
) -> FetchResponse {
    let mut budget = max_bytes;
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    for (w, result) in wanted.iter().zip(results) {
        let mut data = PartitionData::default().with_partition_index(w.partition);
        match result {
            Ok(fetched) => {
                data.high_watermark = fetched.high_watermark;
                data.last_stable_offset = fetched.last_stable_offset;
                data.aborted_transactions = fetched.aborted_transactions.map(|aborted| {
                    aborted
                        .into_iter()
                        .map(|(id, first)| {
                            AbortedTransaction::default().with_producer_id(ProducerId(id)).with_first_offset(first)
                        })
                        .collect()
                });
                if version >= 5 {
                    data.log_start_offset = fetched.log_start_offset;
                }
                if let Some((epoch, end_offset)) = fetched.diverging_epoch {
                    data.diverging_epoch = EpochEndOffset::default().with_epoch(epoch).with_end_offset(end_offset);
                }
                // The first non-empty partition always goes whole (KIP-74); later
                // ones only while they fit in the response's max_bytes.
                let size = fetched.records.len();
                if size <= budget || budget == max_bytes {
                    budget = budget.saturating_sub(size);
                    data.records = Some(fetched.records);
                } else {
                    data.records = Some(bytes::Bytes::new());
                }
            }
            Err(e) => {
                data.error_code = match (&w.topic, w.refused) {
                    (None, _) => ResponseError::UnknownTopicId.code(),
                    (Some(_), Some(code)) => code,
                    (Some(_), None) => partition_error_code(&e),
                };
                data.high_watermark = -1;
                data.records = Some(bytes::Bytes::new());
            }
        }
        // A topic is answered by name before v13 and by id from it.
        let (name, id) = match (version >= TOPIC_ID_VERSION, &w.topic) {
            (true, _) => (TopicName::default(), w.topic_id),
            (false, name) => (name.clone().unwrap_or_default(), Uuid::nil()),
        };
        match topics.last_mut() {
            Some(last) if last.topic == name && last.topic_id == id => last.partitions.push(data),
            _ => topics
                .push(FetchableTopicResponse::default().with_topic(name).with_topic_id(id).with_partitions(vec![data])),
        }
    }
    FetchResponse::default().with_responses(topics)
}

/// v16+: see [`super::point_to_leader`].
fn add_leader_endpoint(shard: &Shard, client: &ClientInfo, response: &mut FetchResponse) {
    let snapshot = shard.metadata();
    let partitions = response.responses.iter_mut().flat_map(|t| {
        // v13+ names topics by id.
        let name = snapshot.topic_by_id(t.topic_id).map_or(&*t.topic.0, |topic| topic.name.as_str());
        t.partitions.iter_mut().map(move |p| (name, p.partition_index, p))
    });
    response.node_endpoints = super::point_to_leader!(shard, client, partitions, LeaderIdAndEpoch, NodeEndpoint);
}
