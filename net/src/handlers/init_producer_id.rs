//! InitProducerId: producer ids for idempotent producers, and for
//! transactional ones the id and next epoch kept by the transaction
//! coordinator (which fences the previous producer of the transactional id
//! and aborts its open transaction).

use super::ClientInfo;
use crate::errors::txn_error_code;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use weir_shards::metadata::acl::{Operation, ResourceType};
use weir_shards::Shard;

/// The first version that knows PRODUCER_FENCED.
const PRODUCER_FENCED_VERSION: i16 = 4;

pub async fn handle(
    shard: &Shard,
    client: &ClientInfo,
    version: i16,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let refuse = |code: i16| {
        InitProducerIdResponse::default().with_error_code(code).with_producer_id(ProducerId(-1)).with_producer_epoch(-1)
    };
    // v3+ (KIP-360): a producer that lost track of its sequences asks for the
    // next epoch of the id it has.
    let claimed = (version >= 3 && request.producer_id.0 >= 0 && request.producer_epoch >= 0)
        .then_some((request.producer_id.0, request.producer_epoch));
    // Kafka's checks: WRITE on the transactional id; an idempotent producer
    // IDEMPOTENT_WRITE on the cluster or WRITE on some topic.
    let allowed = match &request.transactional_id {
        Some(id) => client.may(shard, Operation::Write, ResourceType::TransactionalId, id),
        None => client.may_write_idempotently(shard),
    };
    if !allowed {
        let refused = match request.transactional_id {
            Some(_) => ResponseError::TransactionalIdAuthorizationFailed,
            None => ResponseError::ClusterAuthorizationFailed,
        };
        return refuse(refused.code());
    }
    if let Some(transactional_id) = &request.transactional_id {
        let timeout_ms = request.transaction_timeout_ms;
        return match shard.init_transactional_producer_id(&transactional_id.0, timeout_ms, claimed).await {
            Ok((id, epoch)) => {
                InitProducerIdResponse::default().with_producer_id(ProducerId(id)).with_producer_epoch(epoch)
            }
            Err(e) => refuse(txn_error_code(e, version >= PRODUCER_FENCED_VERSION)),
        };
    }
    if let Some((id, epoch)) = claimed.filter(|(_, epoch)| *epoch < i16::MAX - 1) {
        return InitProducerIdResponse::default().with_producer_id(ProducerId(id)).with_producer_epoch(epoch + 1);
    }
    match shard.allocate_producer_id().await {
        Ok(id) => InitProducerIdResponse::default().with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => {
            tracing::warn!("allocating a producer id failed: {e}");
            refuse(ResponseError::CoordinatorNotAvailable.code())
        }
    }
}
