//! DescribeTransactions: the coordinator's state of transactional ids. With
//! ACLs an id needs DESCRIBE (else TRANSACTIONAL_ID_AUTHORIZATION_FAILED).

use super::{str_bytes, ClientInfo};
use crate::errors::txn_error_code;
use futures::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName, TransactionalId,
};
use weir_shards::metadata::acl::{Operation, ResourceType};
use weir_shards::transactions::TxnError;
use weir_shards::Shard;

pub async fn handle(
    shard: &Shard,
    client: &ClientInfo,
    request: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let states = join_all(request.transactional_ids.into_iter().map(|id| async move {
        let state = TransactionState::default().with_transactional_id(id.clone());
        if !client.may(shard, Operation::Describe, ResourceType::TransactionalId, &id.0) {
            return state.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
        }
        let described =
            shard.describe_transaction(&id.0).await.and_then(|found| found.ok_or(TxnError::InvalidTransactionalId));
        match described {
            // Kafka answers TRANSACTIONAL_ID_NOT_FOUND for an id it does not know.
            Err(TxnError::InvalidTransactionalId) => state.with_error_code(TRANSACTIONAL_ID_NOT_FOUND),
            Err(e) => state.with_error_code(txn_error_code(e, true)),
            Ok(m) => {
                let mut topics: Vec<TopicData> = Vec::new();
                for (topic, partition) in &m.partitions {
                    match topics.last_mut() {
                        Some(t) if &*t.topic.0 == topic.as_str() => t.partitions.push(*partition),
                        _ => topics.push(
                            TopicData::default()
                                .with_topic(TopicName(str_bytes(topic.clone())))
                                .with_partitions(vec![*partition]),
                        ),
                    }
                }
                TransactionState::default()
                    .with_transactional_id(TransactionalId(str_bytes(m.transactional_id.clone())))
                    .with_transaction_state(str_bytes(m.state.name()))
                    .with_transaction_timeout_ms(m.timeout_ms)
                    .with_transaction_start_time_ms(m.start_ms)
                    .with_producer_id(ProducerId(m.producer_id))
                    .with_producer_epoch(m.epoch)
                    .with_topics(topics)
            }
        }
    }))
    .await;
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;
