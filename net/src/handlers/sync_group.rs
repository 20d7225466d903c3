//! SyncGroup: the leader hands out assignments; everyone waits for theirs.

use super::{str_bytes, ClientInfo};
use crate::errors::group_error_code;
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use weir_shards::groups::SyncRequest;
use weir_shards::Shard;

pub async fn handle(shard: &Shard, client: &ClientInfo, version: i16, request: SyncGroupRequest) -> SyncGroupResponse {
    let group_id = request.group_id.0.to_string();
    if let Some(code) = client.refused_on_group(shard, &group_id) {
        return SyncGroupResponse::default().with_error_code(code);
    }
    let sync = SyncRequest {
        group_id: group_id.clone(),
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.map(|i| i.to_string()),
        generation: request.generation_id,
        protocol_type: request.protocol_type.map(|p| p.to_string()),
        protocol: request.protocol_name.map(|p| p.to_string()),
        assignments: request.assignments.into_iter().map(|a| (a.member_id.to_string(), a.assignment)).collect(),
    };
    let synced = shard.sync_group(sync).await;
    let mut response =
        SyncGroupResponse::default().with_error_code(group_error_code(synced.error)).with_assignment(synced.assignment);
    if version >= 5 {
        response.protocol_type = synced.protocol_type.map(str_bytes);
        response.protocol_name = synced.protocol.map(str_bytes);
    }
    response
}
