//! Produce: validate and append each partition's batches on its owning shard.
//! An unknown topic is UNKNOWN_TOPIC_OR_PARTITION, never auto-created: as in
//! Kafka, only Metadata creates topics (clients ask for it there first).
//! v10 and v11 answer as v9, plus KIP-951's leader hint on NOT_LEADER_OR_FOLLOWER.

use super::message;
use super::ClientInfo;
use crate::errors::partition_error_code;
use bytes::Bytes;
use futures::channel::oneshot;
use futures::future::{join, join_all, select, Either};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use std::pin::pin;
use std::rc::Rc;
use std::time::{Duration, Instant};
use weir_engine::batch::{self, RawHeader};
use weir_engine::compression::{with_codec, Codec};
use weir_engine::Durability;
use weir_shards::metadata::acl::{Operation, ResourceType};
use weir_shards::shard::{Placed, ProducedPartition};
use weir_shards::topic_config::CLEANUP_POLICY;
use weir_shards::{PartitionError, Shard};

/// A Produce's place in its connection's line of produces: its batches are
/// placed in their producers' sequences `after` the previous request's
/// were, and `placed` is dropped once its own are (see `Placed`).
pub struct ProduceTurn {
    pub after: Option<oneshot::Receiver<()>>,
    pub placed: oneshot::Sender<()>,
}

/// Returns `None` for acks=0: the client expects no response at all.
pub async fn handle(
    shard: &Rc<Shard>,
    client: &ClientInfo,
    version: i16,
    request: ProduceRequest,
    turn: Option<ProduceTurn>,
) -> Option<ProduceResponse> {
    let (after, turn_placed) = turn.map_or((None, None), |turn| (turn.after, Some(turn.placed)));
    if let Some(previous) = after {
        let _ = previous.await; // placed, or dropped with its request
    }
    // acks=-1 waits for the write to be durable until `timeout_ms` after the
    // request came (Kafka's wait for the in-sync replicas); negative is 0.
    let deadline = weir_runtime::clock::now() + Duration::from_millis(request.timeout_ms.max(0) as u64);
    let durability = match request.acks {
        0 | 1 => Ok(Durability::Written),
        -1 => Ok(Durability::Synced),
        _ => Err(ResponseError::InvalidRequiredAcks.code()),
    };
    let transactional_id = request.transactional_id.as_ref().map(|id| id.0.to_string());
    let transactional_id = transactional_id.as_deref();
    // Kafka's checks: WRITE on the transactional id, then on each topic.
    let txn_refused = transactional_id
        .filter(|id| !client.may(shard, Operation::Write, ResourceType::TransactionalId, id))
        .map(|_| ResponseError::TransactionalIdAuthorizationFailed.code());
    // One channel per partition, made before any is appended: the turn
    // passes once every partition's batch is placed.
    let mut placements = Vec::new();
    let topic_data: Vec<_> = (request.topic_data.into_iter())
        .map(|topic| {
            let partitions: Vec<_> = (topic.partition_data.into_iter())
                .map(|data| {
                    let (placed, placement) = oneshot::channel();
                    placements.push(placement);
                    (data, Placed(placed))
                })
                .collect();
            (topic.name, partitions)
        })
        .collect();
    let turn_passes = async move {
        join_all(placements).await;
        drop(turn_placed);
    };
    let topics = join_all(topic_data.into_iter().map(|(topic_name, partitions)| async move {
        let topic_refused = (!client.may_on_topic(shard, Operation::Write, &topic_name.0))
            .then(|| ResponseError::TopicAuthorizationFailed.code());
        let durability = txn_refused.or(topic_refused).map_or(durability, Err);
        let partitions = join_all(partitions.into_iter().map(|(data, placed)| {
            let name = topic_name.0.clone();
            async move {
                let records = data.records.map(|r| as_topic_takes(shard, &name, r));
                let result = match (durability, records) {
                    (Err(code), _) => Err(Refused { code, message: None, record_errors: Vec::new() }),
                    (Ok(_), None) => Err(Refused::new(ResponseError::CorruptMessage, "no records")),
                    (Ok(_), Some(Err(refused))) => Err(refused),
                    (Ok(Durability::Synced), Some(Ok(records))) => {
                        let transactional_id = transactional_id.map(str::to_string);
                        let append = Append { topic: name, partition: data.index, records, transactional_id, placed };
                        durable_by(shard.clone(), append, deadline).await
                    }
                    (Ok(durability), Some(Ok(records))) => {
                        (shard.produce(&name, data.index, records, durability, transactional_id, placed))
                            .await
                            .map_err(error_of)
                    }
                };
                partition_response(version, data.index, result)
            }
        }))
        .await;
        TopicProduceResponse::default().with_name(topic_name).with_partition_responses(partitions)
    }));
    let (topics, ()) = join(topics, turn_passes).await;
    let mut response = ProduceResponse::default().with_responses(topics);
    if version >= 10 {
        let partitions = response
            .responses
            .iter_mut()
            .flat_map(|t| t.partition_responses.iter_mut().map(|p| (&*t.name.0, p.index, p)));
        response.node_endpoints =
            super::point_to_leader!(shard.as_ref(), client, partitions, LeaderIdAndEpoch, NodeEndpoint);
    }
    response.throttle_time_ms = client.produce_throttle_ms;
    (request.acks != 0).then_some(response)
}

type PartitionResult = Result<ProducedPartition, Refused>;

/// Why a partition's records were not appended. `record_errors` holds the
/// index and reason of each record that failed validation (Produce v8+): a
/// client fails those records with the error and the rest of the batch with
/// its own "invalid different record" error, as Kafka's LogValidator tells it.
struct Refused {
    code: i16,
    message: Option<String>,
    record_errors: Vec<(i32, String)>,
}

impl Refused {
    fn new(error: ResponseError, message: impl Into<String>) -> Refused {
        Refused { code: error.code(), message: Some(message.into()), record_errors: Vec::new() }
    }
}

/// The records as the topic's configs have them appended, as Kafka: on a
/// compacted topic a batch with a record without a key is INVALID_RECORD
/// (`min.insync.replicas` is the partition owner's check, against the ISR); with `compression.type` other than `producer`,
/// batches in another codec are recompressed. A payload that does not
/// validate is passed on untouched for the log to refuse.
fn as_topic_takes(shard: &Shard, topic: &str, records: Bytes) -> Result<Bytes, Refused> {
    let metadata = shard.metadata();
    let Some(configs) = metadata.topic(topic).map(|t| &t.configs) else { return Ok(records) };
    let value = |name| shard.config().topic_config_value(&metadata.dynamic_broker_configs, topic, configs, name);
    let compacted = value(CLEANUP_POLICY).split(',').any(|p| p == "compact");
    let target = Codec::by_name(&value("compression.type"));
    if !compacted && target.is_none() {
        return Ok(records);
    }
    let mut batches = Vec::new();
    let mut pos = 0;
    while pos < records.len() {
        let Ok(header) = batch::check_batch_at(&records[pos..]) else { return Ok(records) };
        batches.push(&records[pos..pos + header.total_len()]);
        pos += header.total_len();
    }
    let mut out = Vec::with_capacity(records.len());
    let mut keyless = Vec::new();
    let mut record_index = 0;
    for one in batches {
        let codec = Codec::of(one).map_err(|e| Refused::new(ResponseError::CorruptMessage, e))?;
        let control = RawHeader::of(one).is_some_and(RawHeader::is_control);
        let plain = if compacted && codec != Codec::None && !control {
            Some(with_codec(one, Codec::None, 0).map_err(|e| Refused::new(ResponseError::CorruptMessage, e))?)
        } else {
            None
        };
        if compacted && !control {
            let parsed = weir_engine::records::parse(plain.as_deref().unwrap_or(one))
                .map_err(|e| Refused::new(ResponseError::CorruptMessage, e))?;
            keyless.extend(parsed.iter().enumerate().filter(|(_, r)| r.key.is_none()).map(|(i, _)| record_index + i));
            record_index += parsed.len();
        }
        match target.filter(|&t| t != codec && !control) {
            Some(Codec::None) if plain.is_some() => out.extend_from_slice(plain.as_deref().expect("some")),
            Some(target) => {
                let level = target.level_config().map_or(-1, |name| value(name).parse().unwrap_or(-1));
                let recompressed =
                    with_codec(one, target, level).map_err(|e| Refused::new(ResponseError::CorruptMessage, e))?;
                out.extend_from_slice(&recompressed);
            }
            None => out.extend_from_slice(one),
        }
    }
    if !keyless.is_empty() {
        let why = format!("Compacted topic cannot accept message without key in topic '{topic}'");
        return Err(Refused {
            code: ResponseError::InvalidRecord.code(),
            message: Some(format!("{} record(s) rejected: {why}", keyless.len())),
            record_errors: keyless.into_iter().map(|i| (i as i32, why.clone())).collect(),
        });
    }
    Ok(Bytes::from(out))
}

fn error_of(e: PartitionError) -> Refused {
    Refused { code: partition_error_code(&e), message: Some(e.to_string()), record_errors: Vec::new() }
}

/// One partition's batch to append.
struct Append {
    topic: StrBytes,
    partition: i32,
    records: Bytes,
    transactional_id: Option<String>,
    placed: Placed,
}

/// A durable append, answered REQUEST_TIMED_OUT if it is not done by
/// `deadline`. An append cannot be abandoned halfway, so it runs in a task
/// of its own that completes after the answer; a producer that retries the
/// batch idempotently gets its offsets back as a duplicate.
async fn durable_by(shard: Rc<Shard>, append: Append, deadline: Instant) -> PartitionResult {
    let timeout = deadline.saturating_duration_since(weir_runtime::clock::now());
    let Append { topic, partition, records, transactional_id, placed } = append;
    let append = weir_runtime::spawn_local(async move {
        let transactional_id = transactional_id.as_deref();
        shard.produce(&topic, partition, records, Durability::Synced, transactional_id, placed).await
    });
    match select(append.detach(), pin!(weir_runtime::clock::sleep(timeout))).await {
        Either::Left((Some(result), _)) => result.map_err(error_of),
        Either::Left((None, _)) => Err(error_of(PartitionError::ShardUnavailable)), // the task did not finish
        Either::Right(_) => Err(Refused::new(
            ResponseError::RequestTimedOut,
            "the write was not durable within timeout_ms; it completes in the background",
        )),
    }
}

fn partition_response(version: i16, index: i32, result: PartitionResult) -> PartitionProduceResponse {
    let mut response = PartitionProduceResponse::default().with_index(index);
    match result {
        Ok(produced) => {
            response.base_offset = produced.info.base_offset;
            // -1 unless the topic uses LogAppendTime.
            response.log_append_time_ms = produced.info.log_append_time;
            if version >= 5 {
                response.log_start_offset = produced.log_start_offset;
            }
        }
        Err(refused) => {
            response.error_code = refused.code;
            response.base_offset = -1;
            if version >= 8 {
                response.error_message = refused.message.and_then(message);
                response.record_errors = refused
                    .record_errors
                    .into_iter()
                    .map(|(index, why)| {
                        BatchIndexAndErrorMessage::default()
                            .with_batch_index(index)
                            .with_batch_index_error_message(message(why))
                    })
                    .collect();
            }
        }
    }
    response
}
