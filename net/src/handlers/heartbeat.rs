//! Heartbeat: keeps a member's session alive; tells it when to rejoin.

use crate::errors::group_result_code;
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use weir_shards::messages::{GroupOp, GroupReply};
use weir_shards::Shard;

pub async fn handle(shard: &Shard, request: HeartbeatRequest) -> HeartbeatResponse {
    let group_id = request.group_id.0.to_string();
    let op = GroupOp::Heartbeat {
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.map(|i| i.to_string()),
        generation: request.generation_id,
    };
    let GroupReply::Heartbeat(result) = shard.group_op(&group_id, op).await else {
        unreachable!("Heartbeat answered with another reply");
    };
    HeartbeatResponse::default().with_error_code(group_result_code(&result))
}
