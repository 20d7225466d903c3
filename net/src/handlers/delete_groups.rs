//! DeleteGroups: only groups without members; their offsets go too.

use crate::errors::group_result_code;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};
use weir_shards::messages::{GroupOp, GroupReply};
use weir_shards::Shard;

pub async fn handle(shard: &Shard, request: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::new();
    for group_id in request.groups_names {
        let GroupReply::Delete(result) = shard.group_op(&group_id.0, GroupOp::Delete).await else {
            unreachable!("DeleteGroups answered with another reply");
        };
        results
            .push(DeletableGroupResult::default().with_group_id(group_id).with_error_code(group_result_code(&result)));
    }
    DeleteGroupsResponse::default().with_results(results)
}
