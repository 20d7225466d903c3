//! EndTxn: commit or abort the producer's transaction. Answered once the
//! decision is persisted; the markers are written before that too unless a
//! partition cannot take one now (then the coordinator retries them).

use crate::errors::txn_result_code;
use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};
use weir_shards::Shard;

/// The first version that knows PRODUCER_FENCED.
const PRODUCER_FENCED_VERSION: i16 = 2;

pub async fn handle(shard: &Shard, version: i16, request: EndTxnRequest) -> EndTxnResponse {
    let (producer_id, epoch) = (request.producer_id.0, request.producer_epoch);
    let result = shard.end_txn(&request.transactional_id.0, producer_id, epoch, request.committed).await;
    EndTxnResponse::default().with_error_code(txn_result_code(&result, version >= PRODUCER_FENCED_VERSION))
}
