//! ListTransactions: every transactional id of every coordinator shard,
//! filtered by state, producer id and (v1+) how long the transaction has run.
//! With ACLs only the ids the client may DESCRIBE, as Kafka.

use super::{str_bytes, ClientInfo};
use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId};
use weir_shards::metadata::acl::{Operation, ResourceType};
use weir_shards::transactions::{TxnMetadata, TxnState};
use weir_shards::Shard;

const STATES: [TxnState; 6] = [
    TxnState::Empty,
    TxnState::Ongoing,
    TxnState::PrepareCommit,
    TxnState::PrepareAbort,
    TxnState::CompleteCommit,
    TxnState::CompleteAbort,
];

pub async fn handle(shard: &Shard, client: &ClientInfo, request: ListTransactionsRequest) -> ListTransactionsResponse {
    let describable =
        |m: &TxnMetadata| client.may(shard, Operation::Describe, ResourceType::TransactionalId, &m.transactional_id);
    let wanted_state = |m: &TxnMetadata| {
        request.state_filters.is_empty() || request.state_filters.iter().any(|s| &**s == m.state.name())
    };
    let wanted_producer = |m: &TxnMetadata| {
        request.producer_id_filters.is_empty() || request.producer_id_filters.contains(&ProducerId(m.producer_id))
    };
    // v1 (KIP-994): only transactions running longer than this many ms; -1 for all.
    let now = weir_engine::now_ms();
    let wanted_age = |m: &TxnMetadata| {
        request.duration_filter < 0 || (m.start_ms >= 0 && now.saturating_sub(m.start_ms) > request.duration_filter)
    };
    let states = shard
        .list_transactions()
        .await
        .into_iter()
        .filter(|m| wanted_state(m) && wanted_producer(m) && wanted_age(m) && describable(m))
        .map(|m| {
            TransactionState::default()
                .with_transactional_id(TransactionalId(str_bytes(m.transactional_id)))
                .with_producer_id(ProducerId(m.producer_id))
                .with_transaction_state(str_bytes(m.state.name()))
        })
        .collect();
    let unknown = request.state_filters.into_iter().filter(|s| !STATES.iter().any(|k| k.name() == &**s)).collect();
    ListTransactionsResponse::default().with_transaction_states(states).with_unknown_state_filters(unknown)
}
