//! Fetch: read every requested partition on its owner; if fewer than min_bytes
//! are ready, long-poll until new data is appended or max_wait_ms passes.
//! From v13 topics are named by id, and an id no topic has is
//! UNKNOWN_TOPIC_ID; v15's replica_state and v17's replica_directory_id
//! concern follower brokers and are ignored, as the replica id was.

use crate::errors::partition_error_code;
use futures::future::{join_all, select, select_all};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint, PartitionData,
};
use kafka_protocol::messages::ProducerId;
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::pin::pin;
use std::time::{Duration, Instant};
use uuid::Uuid;
use weir_shards::{FetchedPartition, PartitionError, Shard};

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
}

pub async fn handle(shard: &Shard, version: i16, request: FetchRequest) -> FetchResponse {
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
            t.partitions.iter().map(move |p| Wanted {
                topic: topic.clone(),
                topic_id,
                partition: p.partition,
                offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as usize,
            })
        })
        .collect();
    let min_bytes = request.min_bytes.max(0) as usize;
    let asked = if request.max_bytes > 0 { request.max_bytes as usize } else { usize::MAX };
    let max_bytes = asked.min(shard.config().fetch_max_bytes);
    let wait = Duration::from_millis(request.max_wait_ms.max(0) as u64).min(MAX_WAIT);
    let deadline = Instant::now() + wait;
    let read_committed = request.isolation_level == READ_COMMITTED;

    let mut results = read_all(shard, &wanted, read_committed, max_bytes).await;
    loop {
        let ready: usize = results.iter().map(|r| r.as_ref().map_or(0, |f| f.records.len())).sum();
        let any_error = results.iter().any(Result::is_err);
        let left = deadline.saturating_duration_since(Instant::now());
        if ready >= min_bytes || any_error || left.is_zero() || wanted.is_empty() {
            break;
        }
        wait_for_any(shard, &wanted, left, read_committed).await;
        results = read_all(shard, &wanted, read_committed, max_bytes).await;
    }
    let mut response = build_response(version, &wanted, results, max_bytes);
    if version >= 16 {
        add_leader_endpoint(shard, &mut response);
    }
    response
}

/// Reads the partitions in request order against the response's byte
/// budget, in rounds: a round reads at once the next partitions whose shares
/// (each its partition_max_bytes, at most what the budget has left) fit in
/// the budget, so one fetch holds about `max_bytes` however many partitions
/// it names (plus one batch per partition whose first batch is larger than
/// its share, KIP-74). Partitions after the budget is spent are answered
/// with their offsets only.
async fn read_all(
    shard: &Shard,
    wanted: &[Wanted],
    read_committed: bool,
    max_bytes: usize,
) -> Vec<Result<FetchedPartition, PartitionError>> {
    let mut results = Vec::with_capacity(wanted.len());
    let mut left = max_bytes;
    while results.len() < wanted.len() {
        let mut round = Vec::new();
        let mut planned = 0;
        for w in &wanted[results.len()..] {
            let share = w.max_bytes.min(left - planned);
            if share == 0 && planned > 0 {
                break; // the budget is planned out: see what this round used first
            }
            planned += share;
            round.push((w, share));
        }
        let read = join_all(round.iter().map(|&(w, share)| async move {
            match &w.topic {
                None => Err(PartitionError::UnknownTopicOrPartition), // answered UNKNOWN_TOPIC_ID
                Some(_) if share == 0 => offsets_only(shard, w).await,
                Some(topic) => shard.fetch(&topic.0, w.partition, w.offset, share, read_committed).await,
            }
        }))
        .await;
        let used: usize = read.iter().map(|r| r.as_ref().map_or(0, |f| f.records.len())).sum();
        left = left.saturating_sub(used);
        results.extend(read);
    }
    results
}

/// A partition's offsets and no records: what a fetch past the budget gets.
async fn offsets_only(shard: &Shard, w: &Wanted) -> Result<FetchedPartition, PartitionError> {
    let topic = w.topic.as_ref().ok_or(PartitionError::UnknownTopicOrPartition)?;
    let offsets = shard.offsets(&topic.0, w.partition).await?;
    Ok(FetchedPartition {
        records: bytes::Bytes::new(),
        high_watermark: offsets.high_watermark,
        last_stable_offset: offsets.last_stable_offset,
        log_start_offset: offsets.log_start_offset,
        aborted_transactions: None,
    })
}

/// Resolves when any partition's high watermark (read_committed: last
/// stable offset) passes its fetch offset, or after `timeout`.
async fn wait_for_any(shard: &Shard, wanted: &[Wanted], timeout: Duration, read_committed: bool) {
    let waits = wanted.iter().filter_map(|w| {
        let topic = w.topic.as_ref()?;
        Some(Box::pin(shard.wait_beyond(&topic.0, w.partition, w.offset, timeout, read_committed)))
    });
    let timer = pin!(glommio::timer::sleep(timeout));
    // An unknown topic is an error, answered at once: every partition waited on is known.
    select(select_all(waits), timer).await;
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
                data.error_code = match w.topic {
                    None => ResponseError::UnknownTopicId.code(),
                    Some(_) => partition_error_code(&e),
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
fn add_leader_endpoint(shard: &Shard, response: &mut FetchResponse) {
    let partitions = response.responses.iter_mut().flat_map(|t| &mut t.partitions);
    if let Some(endpoint) = super::point_to_leader!(shard, partitions, LeaderIdAndEpoch, NodeEndpoint) {
        response.node_endpoints = vec![endpoint];
    }
}
