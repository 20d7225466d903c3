//! JoinGroup: waits on the group's owner until the rebalance completes.

use super::{str_bytes, ClientInfo};
use crate::errors::group_error_code;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use weir_shards::groups::JoinRequest;
use weir_shards::Shard;

/// From v4 a new member is first told its id (MEMBER_ID_REQUIRED, KIP-394).
const KNOWN_MEMBER_ID_VERSION: i16 = 4;
/// v7 made the protocol name nullable and added the protocol type.
const NULLABLE_PROTOCOL_VERSION: i16 = 7;

pub async fn handle(shard: &Shard, version: i16, client: &ClientInfo, request: JoinGroupRequest) -> JoinGroupResponse {
    let group_id = request.group_id.0.to_string();
    if let Some(code) = client.refused_on_group(shard, &group_id) {
        return JoinGroupResponse::default().with_error_code(code).with_generation_id(-1);
    }
    let join = JoinRequest {
        group_id: group_id.clone(),
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.map(|i| i.to_string()),
        client_id: client.client_id.clone(),
        client_host: client.host.clone(),
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout: the session timeout stands in (as in Kafka).
        rebalance_timeout_ms: if version == 0 || request.rebalance_timeout_ms < 0 {
            request.session_timeout_ms
        } else {
            request.rebalance_timeout_ms
        },
        protocol_type: request.protocol_type.to_string(),
        protocols: request.protocols.into_iter().map(|p| (p.name.to_string(), p.metadata)).collect(),
        require_known_member_id: version >= KNOWN_MEMBER_ID_VERSION,
    };
    let joined = shard.join_group(join).await;
    let mut response = JoinGroupResponse::default()
        .with_error_code(group_error_code(joined.error))
        .with_generation_id(if joined.error.is_some() { -1 } else { joined.generation })
        .with_leader(str_bytes(joined.leader))
        .with_member_id(str_bytes(joined.member_id))
        .with_members(
            joined
                .members
                .into_iter()
                .map(|m| {
                    let member = JoinGroupResponseMember::default()
                        .with_member_id(str_bytes(m.member_id))
                        .with_metadata(m.metadata);
                    if version >= 5 {
                        member.with_group_instance_id(m.instance_id.map(str_bytes))
                    } else {
                        member
                    }
                })
                .collect(),
        );
    if version >= NULLABLE_PROTOCOL_VERSION {
        response.protocol_type = joined.protocol_type.map(str_bytes);
        response.protocol_name = joined.protocol.map(str_bytes);
    } else {
        response.protocol_name = Some(str_bytes(joined.protocol.unwrap_or_default()));
    }
    response
}
