//! Heartbeat: keeps a member's session alive; tells it when to rejoin.

use super::ClientInfo;
use crate::errors::group_result_code;
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use weir_shards::Shard;

pub async fn handle(shard: &Shard, client: &ClientInfo, request: HeartbeatRequest) -> HeartbeatResponse {
    let group_id = request.group_id.0.to_string();
    if let Some(code) = client.refused_on_group(shard, &group_id) {
        return HeartbeatResponse::default().with_error_code(code);
    }
    let member_id = request.member_id.to_string();
    let instance_id = request.group_instance_id.map(|i| i.to_string());
    let result = shard.group_heartbeat(&group_id, member_id, instance_id, request.generation_id).await;
    HeartbeatResponse::default().with_error_code(group_result_code(&result))
}
