//! DeleteGroups: only groups without members; their offsets go too. With
//! ACLs a group needs DELETE (else GROUP_AUTHORIZATION_FAILED).

use super::ClientInfo;
use crate::errors::group_result_code;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};
use weir_shards::metadata::acl::Operation;
use weir_shards::Shard;

pub async fn handle(shard: &Shard, client: &ClientInfo, request: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::new();
    for group_id in request.groups_names {
        let code = match client.refused_group_operation(shard, Operation::Delete, &group_id.0) {
            Some(refused) => refused,
            None => group_result_code(&shard.delete_group(&group_id.0).await),
        };
        results.push(DeletableGroupResult::default().with_group_id(group_id).with_error_code(code));
    }
    DeleteGroupsResponse::default().with_results(results)
}
