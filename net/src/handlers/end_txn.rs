//! EndTxn: commit or abort the producer's transaction. Answered once the
//! decision is persisted; the markers are written before that too unless a
//! partition cannot take one now (then the coordinator retries them).

use crate::errors::txn_result_code;
use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};
use weir_shards::messages::{TxnOp, TxnReply};
use weir_shards::Shard;

/// The first version that knows PRODUCER_FENCED.
const PRODUCER_FENCED_VERSION: i16 = 2;

pub async fn handle(shard: &Shard, version: i16, request: EndTxnRequest) -> EndTxnResponse {
    let op =
        TxnOp::EndTxn { producer_id: request.producer_id.0, epoch: request.producer_epoch, commit: request.committed };
    let TxnReply::Done(result) = shard.txn_op(&request.transactional_id.0, op).await else {
        unreachable!("EndTxn answered with another reply");
    };
    EndTxnResponse::default().with_error_code(txn_result_code(&result, version >= PRODUCER_FENCED_VERSION))
}
