//! Heartbeat: keeps a member's session alive; tells it when to rejoin.

use crate::errors::group_result_code;
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use weir_shards::Shard;

pub async fn handle(shard: &Shard, request: HeartbeatRequest) -> HeartbeatResponse {
    let group_id = request.group_id.0.to_string();
    let member_id = request.member_id.to_string();
    let instance_id = request.group_instance_id.map(|i| i.to_string());
    let result = shard.group_heartbeat(&group_id, member_id, instance_id, request.generation_id).await;
    HeartbeatResponse::default().with_error_code(group_result_code(&result))
}
