//! EndTxn: commit or abort the producer's transaction. Answered once the
//! decision is persisted; the markers are written before that too unless a
//! partition cannot take one now (then the coordinator retries them).
//! With ACLs it needs WRITE on the transactional id.

use super::ClientInfo;
use crate::errors::txn_result_code;
use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};
use weir_shards::Shard;

/// The first version that knows PRODUCER_FENCED.
const PRODUCER_FENCED_VERSION: i16 = 2;

pub async fn handle(shard: &Shard, client: &ClientInfo, version: i16, request: EndTxnRequest) -> EndTxnResponse {
    if let Some(code) = client.refused_transaction(shard, &request.transactional_id.0) {
        return EndTxnResponse::default().with_error_code(code);
    }
    let (producer_id, epoch) = (request.producer_id.0, request.producer_epoch);
    let result = shard.end_txn(&request.transactional_id.0, producer_id, epoch, request.committed).await;
    EndTxnResponse::default().with_error_code(txn_result_code(&result, version >= PRODUCER_FENCED_VERSION))
}
