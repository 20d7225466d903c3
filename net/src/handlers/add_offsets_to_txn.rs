//! AddOffsetsToTxn: the group's `__consumer_offsets` partition joins the
//! producer's transaction, before TxnOffsetCommit writes offsets there.
//! With ACLs it needs WRITE on the transactional id and READ on the group.

use super::ClientInfo;
use crate::errors::txn_result_code;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};
use weir_shards::groups::{offsets_partition_of, OFFSETS_TOPIC};
use weir_shards::Shard;

/// The first version that knows PRODUCER_FENCED.
const PRODUCER_FENCED_VERSION: i16 = 2;

pub async fn handle(
    shard: &Shard,
    client: &ClientInfo,
    version: i16,
    request: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    if let Some(code) = client.refused_transaction_or_group(shard, &request.transactional_id.0, &request.group_id.0) {
        return AddOffsetsToTxnResponse::default().with_error_code(code);
    }
    if shard.ensure_offsets_topic().await.is_err() {
        return AddOffsetsToTxnResponse::default().with_error_code(ResponseError::CoordinatorNotAvailable.code());
    }
    let partition = (OFFSETS_TOPIC.to_string(), offsets_partition_of(&request.group_id.0));
    let (producer_id, epoch) = (request.producer_id.0, request.producer_epoch);
    let results = shard.add_partitions_to_txn(&request.transactional_id.0, producer_id, epoch, vec![partition]).await;
    let code = results.first().map_or(0, |r| txn_result_code(r, version >= PRODUCER_FENCED_VERSION));
    AddOffsetsToTxnResponse::default().with_error_code(code)
}
