//! FindCoordinator: a group's or transactional id's coordinator is the
//! broker that leads its partition of `__consumer_offsets` or
//! `__transaction_state`. The first request of each kind creates the
//! topic, as Kafka does. With ACLs a key needs DESCRIBE on its group or
//! transactional id.

use super::{message, str_bytes, ClientInfo};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use weir_shards::metadata::acl::{Operation, ResourceType};
use weir_shards::Shard;

const GROUP_KEY_TYPE: i8 = 0;
const TRANSACTION_KEY_TYPE: i8 = 1;

pub async fn handle(
    shard: &Shard,
    client: &ClientInfo,
    version: i16,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let keys: Vec<String> = if version >= 4 {
        request.coordinator_keys.iter().map(|k| k.to_string()).collect()
    } else {
        vec![request.key.to_string()]
    };
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
    let coordinator = |key: &str| {
        let (resource_type, refused) = match request.key_type {
            GROUP_KEY_TYPE => (ResourceType::Group, ResponseError::GroupAuthorizationFailed),
            _ => (ResourceType::TransactionalId, ResponseError::TransactionalIdAuthorizationFailed),
        };
        if error.is_none() && !client.may(shard, Operation::Describe, resource_type, key) {
            return Err((refused.code(), refused.to_string()));
        }
        let broker = match request.key_type {
            GROUP_KEY_TYPE => shard.group_coordinator(key),
            _ => shard.transaction_coordinator(key),
        };
        let unavailable = |why: String| (ResponseError::CoordinatorNotAvailable.code(), why);
        if let Some(error) = &error {
            return Err(error.clone());
        }
        let broker = broker.ok_or_else(|| unavailable("no broker leads the key's partition".into()))?;
        // As Kafka: a coordinator without the client's listener is not available to it.
        let listener = &client.listener.name;
        let (host, port) = (broker.endpoint(listener))
            .ok_or_else(|| unavailable(format!("the coordinator has no listener {listener}")))?;
        Ok((broker.id, host.to_string(), port))
    };
    let mut response = FindCoordinatorResponse::default();
    if version >= 4 {
        response.coordinators = keys
            .into_iter()
            .map(|key| {
                let c = Coordinator::default().with_key(str_bytes(&key));
                match coordinator(&key) {
                    Err((code, text)) => c
                        .with_error_code(code)
                        .with_error_message(message(text))
                        .with_node_id(BrokerId(-1))
                        .with_port(-1),
                    Ok((id, host, port)) => c.with_node_id(BrokerId(id)).with_host(str_bytes(host)).with_port(port),
                }
            })
            .collect();
        return response;
    }
    match coordinator(&keys[0]) {
        Err((code, text)) => {
            response.error_code = code;
            response.node_id = BrokerId(-1);
            response.port = -1;
            if version >= 1 {
                response.error_message = message(text);
            }
        }
        Ok((id, host, port)) => {
            response.node_id = BrokerId(id);
            response.host = str_bytes(host);
            response.port = port;
        }
    }
    response
}
