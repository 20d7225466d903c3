//! LeaveGroup: one member (v0-2) or a batch of members (v3+) leave.

use super::{str_bytes, ClientInfo};
use crate::errors::group_result_code;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use weir_shards::groups::MemberRef;
use weir_shards::Shard;

const BATCH_VERSION: i16 = 3;

pub async fn handle(
    shard: &Shard,
    client: &ClientInfo,
    version: i16,
    request: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let group_id = request.group_id.0.to_string();
    if let Some(code) = client.refused_on_group(shard, &group_id) {
        return LeaveGroupResponse::default().with_error_code(code);
    }
    let members: Vec<MemberRef> = if version >= BATCH_VERSION {
        request
            .members
            .iter()
            .map(|m| MemberRef {
                member_id: m.member_id.to_string(),
                instance_id: m.group_instance_id.as_ref().map(|i| i.to_string()),
            })
            .collect()
    } else {
        vec![MemberRef { member_id: request.member_id.to_string(), instance_id: None }]
    };
    let results = shard.leave_group(&group_id, members).await;
    if version < BATCH_VERSION {
        return LeaveGroupResponse::default().with_error_code(results.first().map_or(0, group_result_code));
    }
    let members = request
        .members
        .into_iter()
        .zip(&results)
        .map(|(m, result)| {
            MemberResponse::default()
                .with_member_id(str_bytes(m.member_id.to_string()))
                .with_group_instance_id(m.group_instance_id)
                .with_error_code(group_result_code(result))
        })
        .collect();
    LeaveGroupResponse::default().with_members(members)
}
