//! Produce: validate and append each partition's batches on its owning shard.
//! An unknown topic is UNKNOWN_TOPIC_OR_PARTITION, never auto-created: as in
//! Kafka, only Metadata creates topics (clients ask for it there first).

use super::message;
use crate::errors::partition_error_code;
use bytes::Bytes;
use futures::future::{join_all, select, Either};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;
use std::pin::pin;
use std::rc::Rc;
use std::time::{Duration, Instant};
use weir_engine::Durability;
use weir_shards::shard::ProducedPartition;
use weir_shards::topic_config::CLEANUP_POLICY;
use weir_shards::{PartitionError, Shard};

/// Returns `None` for acks=0: the client expects no response at all.
pub async fn handle(shard: &Rc<Shard>, version: i16, request: ProduceRequest) -> Option<ProduceResponse> {
    // acks=-1 waits for the write to be durable until `timeout_ms` after the
    // request came (Kafka's wait for the in-sync replicas); negative is 0.
    let deadline = Instant::now() + Duration::from_millis(request.timeout_ms.max(0) as u64);
    let durability = match request.acks {
        0 | 1 => Ok(Durability::Written),
        -1 => Ok(Durability::Synced),
        _ => Err(ResponseError::InvalidRequiredAcks.code()),
    };
    let transactional_id = request.transactional_id.as_ref().map(|id| id.0.to_string());
    let transactional_id = transactional_id.as_deref();
    let topics = join_all(request.topic_data.into_iter().map(|topic| async move {
        let partitions = join_all(topic.partition_data.into_iter().map(|data| {
            let name = topic.name.0.clone();
            async move {
                let refused = data.records.as_ref().and_then(|r| topic_refuses(shard, &name, request.acks, r));
                let result = match (durability, data.records) {
                    (Err(code), _) => Err((code, None)),
                    (Ok(_), None) => Err((ResponseError::CorruptMessage.code(), Some("no records".to_string()))),
                    (Ok(_), Some(_)) if refused.is_some() => Err(refused.expect("checked")),
                    (Ok(Durability::Synced), Some(records)) => {
                        let transactional_id = transactional_id.map(str::to_string);
                        durable_by(shard.clone(), name, data.index, records, transactional_id, deadline).await
                    }
                    (Ok(durability), Some(records)) => {
                        shard.produce(&name, data.index, records, durability, transactional_id).await.map_err(error_of)
                    }
                };
                partition_response(version, data.index, result)
            }
        }))
        .await;
        TopicProduceResponse::default().with_name(topic.name).with_partition_responses(partitions)
    }))
    .await;
    (request.acks != 0).then(|| ProduceResponse::default().with_responses(topics))
}

type PartitionResult = Result<ProducedPartition, (i16, Option<String>)>;

/// What the topic's configs refuse before the append, as Kafka: acks=all
/// with `min.insync.replicas` above the one replica a single broker has
/// (NOT_ENOUGH_REPLICAS), and a record without a key on a compacted topic
/// (INVALID_RECORD, the whole batch; records of any codec are read).
fn topic_refuses(shard: &Shard, topic: &str, acks: i16, records: &Bytes) -> Option<(i16, Option<String>)> {
    let metadata = shard.metadata();
    let configs = &metadata.topic(topic)?.configs;
    let value = |name| shard.config().topic_config_value(&metadata.dynamic_broker_configs, topic, configs, name);
    let min_isr = value("min.insync.replicas");
    if acks == -1 && min_isr.parse::<i32>().is_ok_and(|n| n > 1) {
        let why = format!("min.insync.replicas is {min_isr}; this topic has one in-sync replica");
        return Some((ResponseError::NotEnoughReplicas.code(), Some(why)));
    }
    if !value(CLEANUP_POLICY).split(',').any(|p| p == "compact") {
        return None;
    }
    // A payload that does not decode is left to the log's validation.
    let batches = RecordBatchDecoder::decode_all(&mut records.clone()).ok()?;
    let keyless = batches.iter().flat_map(|b| &b.records).any(|r| r.key.is_none() && !r.control);
    keyless.then(|| {
        let why = format!("compacted topic '{topic}' cannot accept a record without a key");
        (ResponseError::InvalidRecord.code(), Some(why))
    })
}

fn error_of(e: PartitionError) -> (i16, Option<String>) {
    (partition_error_code(&e), Some(e.to_string()))
}

/// A durable append, answered REQUEST_TIMED_OUT if it is not done by
/// `deadline`. An append cannot be abandoned halfway, so it runs in a task
/// of its own that completes after the answer; a producer that retries the
/// batch idempotently gets its offsets back as a duplicate.
async fn durable_by(
    shard: Rc<Shard>,
    topic: StrBytes,
    partition: i32,
    records: Bytes,
    transactional_id: Option<String>,
    deadline: Instant,
) -> PartitionResult {
    let timeout = deadline.saturating_duration_since(Instant::now());
    let append = glommio::spawn_local(async move {
        shard.produce(&topic, partition, records, Durability::Synced, transactional_id.as_deref()).await
    });
    match select(append.detach(), pin!(glommio::timer::sleep(timeout))).await {
        Either::Left((Some(result), _)) => result.map_err(error_of),
        Either::Left((None, _)) => Err(error_of(PartitionError::ShardUnavailable)), // the task did not finish
        Either::Right(_) => Err((
            ResponseError::RequestTimedOut.code(),
            Some("the write was not durable within timeout_ms; it completes in the background".to_string()),
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
        Err((code, text)) => {
            response.error_code = code;
            response.base_offset = -1;
            if version >= 8 {
                response.error_message = text.and_then(message);
            }
        }
    }
    response
}
