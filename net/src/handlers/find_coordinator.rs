//! FindCoordinator: this broker coordinates every group (single node). The
//! first request creates `__consumer_offsets`, as Kafka does.

use super::{message, str_bytes};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use weir_shards::Shard;

const GROUP_KEY_TYPE: i8 = 0;

pub async fn handle(shard: &Shard, version: i16, request: FindCoordinatorRequest) -> FindCoordinatorResponse {
    let keys: Vec<String> = if version >= 4 {
        request.coordinator_keys.iter().map(|k| k.to_string()).collect()
    } else {
        vec![request.key.to_string()]
    };
    let (host, port) = shard.config().advertised_host_port().unwrap_or_else(|_| ("127.0.0.1".into(), 9092));
    let node = BrokerId(shard.config().node_id);
    let error = if request.key_type != GROUP_KEY_TYPE {
        // Transaction coordinators come with transactions.
        Some((ResponseError::CoordinatorNotAvailable.code(), "transactions are not supported yet".to_string()))
    } else {
        shard.ensure_offsets_topic().await.err().map(|e| (ResponseError::CoordinatorNotAvailable.code(), e.to_string()))
    };
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
