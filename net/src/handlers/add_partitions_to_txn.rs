//! AddPartitionsToTxn: partitions join the producer's transaction before its
//! first batch to them (v0-3, from producers); v4 is the brokers' batched
//! form (KIP-890), through which another broker's partition leader asks
//! this coordinator to verify a transactional batch (verify only). With
//! ACLs v0-3 need WRITE on the transactional id and on each topic (if a
//! topic is refused, the others are OPERATION_NOT_ATTEMPTED), v4
//! CLUSTER_ACTION on the cluster, as Kafka.

use super::answer_partitions;
use super::authorize::codes_with_refused;
use super::ClientInfo;
use crate::errors::txn_result_code;
use futures::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::{AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction};
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};
use weir_shards::metadata::acl::Operation;
use weir_shards::transactions::TxnError;
use weir_shards::Shard;

/// The first version that knows PRODUCER_FENCED.
const PRODUCER_FENCED_VERSION: i16 = 2;
/// The first version of the brokers' batched form.
const BATCHED_VERSION: i16 = 4;

pub async fn handle(
    shard: &Shard,
    client: &ClientInfo,
    version: i16,
    request: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    if version >= BATCHED_VERSION {
        // Kafka: the brokers' form needs CLUSTER_ACTION.
        if !client.may_on_cluster(shard, Operation::ClusterAction) {
            return AddPartitionsToTxnResponse::default()
                .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
        }
        let results = join_all(request.transactions.into_iter().map(|t| answer_transaction(shard, t))).await;
        return AddPartitionsToTxnResponse::default().with_results_by_transaction(results);
    }
    let partitions = partitions_of(&request.v3_and_below_topics);
    let (producer_id, epoch) = (request.v3_and_below_producer_id.0, request.v3_and_below_producer_epoch);
    let id = &request.v3_and_below_transactional_id.0;
    let topics = request.v3_and_below_topics;
    let refused_topics = || client.refused_topics(shard, Operation::Write, partitions.iter().map(|(t, _)| t.as_str()));
    let refused = match client.refused_transaction(shard, id) {
        Some(code) => Some(vec![code; partitions.len()]),
        None => Some(refused_topics()).filter(|refused| !refused.is_empty()).map(|refused| {
            let not_attempted = std::iter::repeat(ResponseError::OperationNotAttempted.code());
            codes_with_refused(partitions.iter().map(|(t, _)| t.as_str()), &refused, not_attempted)
        }),
    };
    if let Some(codes) = refused {
        let topics = answer_topics(topics, codes.into_iter());
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(topics);
    }
    let results = shard.add_partitions_to_txn(id, producer_id, epoch, partitions).await;
    let fenced_known = version >= PRODUCER_FENCED_VERSION;
    let topics = answer_topics(topics, results.iter().map(|r| txn_result_code(r, fenced_known)));
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(topics)
}

/// One transaction of a batched request: its partitions verified (verify
/// only: already in the transaction?) or added.
async fn answer_transaction(shard: &Shard, t: AddPartitionsToTxnTransaction) -> AddPartitionsToTxnResult {
    let (id, producer_id, epoch) = (&t.transactional_id.0, t.producer_id.0, t.producer_epoch);
    let partitions = partitions_of(&t.topics);
    let results: Vec<Result<(), TxnError>> = if t.verify_only {
        let verify =
            partitions.iter().map(|(topic, p)| shard.verify_txn_partition_here(id, producer_id, epoch, topic, *p));
        join_all(verify).await
    } else {
        shard.add_partitions_to_txn(id, producer_id, epoch, partitions).await
    };
    let topics = answer_topics(t.topics, results.iter().map(|r| txn_result_code(r, true)));
    AddPartitionsToTxnResult::default().with_transactional_id(t.transactional_id).with_topic_results(topics)
}

fn partitions_of(topics: &[AddPartitionsToTxnTopic]) -> Vec<(String, i32)> {
    topics.iter().flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), *p))).collect()
}

/// The topics' answers, one code per partition in request order.
fn answer_topics(
    topics: Vec<AddPartitionsToTxnTopic>,
    codes: impl Iterator<Item = i16>,
) -> Vec<AddPartitionsToTxnTopicResult> {
    answer_partitions(
        topics,
        |t| &t.partitions,
        codes,
        |p, code| AddPartitionsToTxnPartitionResult::default().with_partition_index(*p).with_partition_error_code(code),
        |t, partitions| {
            AddPartitionsToTxnTopicResult::default().with_name(t.name).with_results_by_partition(partitions)
        },
    )
}
