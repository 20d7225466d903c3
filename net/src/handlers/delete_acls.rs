//! DeleteAcls: each filter's matching ACLs, removed together through the
//! controller and listed in the answer. Needs ALTER on the cluster.

use super::{message, str_bytes, ClientInfo};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::{DeleteAclsFilterResult, DeleteAclsMatchingAcl};
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse};
use weir_shards::metadata::acl::{AclBinding, AclChange, AclFilter, Operation};
use weir_shards::Shard;

pub async fn handle(shard: &Shard, client: &ClientInfo, request: DeleteAclsRequest) -> DeleteAclsResponse {
    let failed = |error: ResponseError, why: String| {
        DeleteAclsFilterResult::default().with_error_code(error.code()).with_error_message(message(why))
    };
    if !client.may_on_cluster(shard, Operation::Alter) {
        let refused = request
            .filters
            .iter()
            .map(|_| failed(ResponseError::ClusterAuthorizationFailed, "Cluster authorization failed.".into()));
        return DeleteAclsResponse::default().with_filter_results(refused.collect());
    }
    let metadata = shard.metadata();
    let matched: Vec<Result<Vec<AclBinding>, String>> = (request.filters.iter().map(filter))
        .map(|filter| {
            let filter = filter?;
            Ok(metadata.acls.iter().filter(|acl| filter.matches(acl)).cloned().collect())
        })
        .collect();
    let doomed: Vec<AclBinding> = matched.iter().flatten().flatten().cloned().collect();
    let removal = match doomed.is_empty() {
        true => Ok(()),
        false => {
            shard.change_acls(AclChange::Remove(doomed)).await.into_iter().collect::<Result<Vec<()>, _>>().map(drop)
        }
    };
    let results = matched.into_iter().map(|matched| match (matched, &removal) {
        (Err(why), _) => failed(ResponseError::InvalidRequest, why),
        (Ok(_), Err(e)) => DeleteAclsFilterResult::default()
            .with_error_code(crate::errors::topic_error_code(e))
            .with_error_message(message(e)),
        (Ok(acls), Ok(())) => DeleteAclsFilterResult::default().with_matching_acls(acls.iter().map(matching).collect()),
    });
    DeleteAclsResponse::default().with_filter_results(results.collect())
}

fn filter(filter: &DeleteAclsFilter) -> Result<AclFilter, String> {
    let filter = AclFilter {
        resource_type: filter.resource_type_filter,
        name: filter.resource_name_filter.as_ref().map(|n| n.to_string()),
        pattern: filter.pattern_type_filter,
        principal: filter.principal_filter.as_ref().map(|p| p.to_string()),
        host: filter.host_filter.as_ref().map(|h| h.to_string()),
        operation: filter.operation,
        permission: filter.permission_type,
    };
    filter.check()?;
    Ok(filter)
}

fn matching(acl: &AclBinding) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_resource_type(acl.resource_type as i8)
        .with_resource_name(str_bytes(&acl.name))
        .with_pattern_type(acl.pattern as i8)
        .with_principal(str_bytes(&acl.principal))
        .with_host(str_bytes(&acl.host))
        .with_operation(acl.operation as i8)
        .with_permission_type(acl.permission as i8)
}
