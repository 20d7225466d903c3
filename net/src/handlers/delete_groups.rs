//! DeleteGroups: only groups without members; their offsets go too.

use crate::errors::group_result_code;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};
use weir_shards::Shard;

pub async fn handle(shard: &Shard, request: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::new();
    for group_id in request.groups_names {
        let result = shard.delete_group(&group_id.0).await;
        results
            .push(DeletableGroupResult::default().with_group_id(group_id).with_error_code(group_result_code(&result)));
    }
    DeleteGroupsResponse::default().with_results(results)
}
