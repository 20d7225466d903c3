//! FindCoordinator: this broker coordinates every group and transactional
//! id (single node). The first request of each kind creates
//! `__consumer_offsets` or `__transaction_state`, as Kafka does.

use super::{message, str_bytes};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use weir_shards::Shard;

const GROUP_KEY_TYPE: i8 = 0;
const TRANSACTION_KEY_TYPE: i8 = 1;

pub async fn handle(shard: &Shard, version: i16, request: FindCoordinatorRequest) -> FindCoordinatorResponse {
    let keys: Vec<String> = if version >= 4 {
        request.coordinator_keys.iter().map(|k| k.to_string()).collect()
    } else {
        vec![request.key.to_string()]
    };
    let (host, port) = shard.config().advertised_host_port().unwrap_or_else(|_| ("127.0.0.1".into(), 9092));
    let node = BrokerId(shard.config().node_id);
    let created = match request.key_type {
        GROUP_KEY_TYPE => shard.ensure_offsets_topic().await.map_err(|e| e.to_string()),
        TRANSACTION_KEY_TYPE => shard.ensure_transaction_topic().await.map_err(|e| e.to_string()),
        other => Err(format!("unknown coordinator key type {other}")),
    };
    let error = created.err().map(|text| {
        let code = if (GROUP_KEY_TYPE..=TRANSACTION_KEY_TYPE).contains(&request.key_type) {
            ResponseError::CoordinatorNotAvailable
        } else {
            ResponseError::InvalidRequest
        };
        (code.code(), text)
    });
    let mut response = FindCoordinatorResponse::default();
    if version >= 4 {
        response.coordinators = keys
            .into_iter()
            .map(|key| {
                let c = Coordinator::default().with_key(str_bytes(key));
                match &error {
                    Some((code, text)) => c
                        .with_error_code(*code)
                        .with_error_message(message(text))
                        .with_node_id(BrokerId(-1))
                        .with_port(-1),
                    None => c.with_node_id(node).with_host(str_bytes(host.clone())).with_port(port),
                }
            })
            .collect();
        return response;
    }
    match error {
        Some((code, text)) => {
            response.error_code = code;
            response.node_id = BrokerId(-1);
            response.port = -1;
            if version >= 1 {
                response.error_message = message(text);
            }
        }
        None => {
            response.node_id = node;
            response.host = str_bytes(host);
            response.port = port;
        }
    }
    response
}
