//! AddPartitionsToTxn (v0-3, from producers): partitions join the producer's
//! transaction before its first batch to them.

use super::answer_partitions;
use crate::errors::txn_result_code;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};
use weir_shards::Shard;

/// The first version that knows PRODUCER_FENCED.
const PRODUCER_FENCED_VERSION: i16 = 2;

pub async fn handle(shard: &Shard, version: i16, request: AddPartitionsToTxnRequest) -> AddPartitionsToTxnResponse {
    let partitions: Vec<(String, i32)> = request
        .v3_and_below_topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), *p)))
        .collect();
    let (producer_id, epoch) = (request.v3_and_below_producer_id.0, request.v3_and_below_producer_epoch);
    let id = &request.v3_and_below_transactional_id.0;
    let results = shard.add_partitions_to_txn(id, producer_id, epoch, partitions).await;
    let topics = answer_partitions(
        request.v3_and_below_topics,
        |t| &t.partitions,
        results.iter().map(|r| txn_result_code(r, version >= PRODUCER_FENCED_VERSION)),
        |p, code| AddPartitionsToTxnPartitionResult::default().with_partition_index(*p).with_partition_error_code(code),
        |t, partitions| {
            AddPartitionsToTxnTopicResult::default().with_name(t.name).with_results_by_partition(partitions)
        },
    );
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(topics)
}
