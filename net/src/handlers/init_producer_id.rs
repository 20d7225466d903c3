//! InitProducerId: producer ids for idempotent producers. Transactional ids
//! are refused until transactions exist.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use weir_shards::Shard;

pub async fn handle(shard: &Shard, version: i16, request: InitProducerIdRequest) -> InitProducerIdResponse {
    let refuse = |error: ResponseError| {
        InitProducerIdResponse::default()
            .with_error_code(error.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if request.transactional_id.is_some() {
        return refuse(ResponseError::TransactionalIdAuthorizationFailed);
    }
    // v3+ (KIP-360): a producer that lost track of its sequences asks for the
    // next epoch of the id it has.
    let bump = version >= 3 && request.producer_id.0 >= 0 && request.producer_epoch >= 0;
    if bump && request.producer_epoch < i16::MAX - 1 {
        return InitProducerIdResponse::default()
            .with_producer_id(request.producer_id)
            .with_producer_epoch(request.producer_epoch + 1);
    }
    match shard.allocate_producer_id().await {
        Ok(id) => InitProducerIdResponse::default().with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => {
            tracing::warn!("allocating a producer id failed: {e}");
            refuse(ResponseError::CoordinatorNotAvailable)
        }
    }
}
