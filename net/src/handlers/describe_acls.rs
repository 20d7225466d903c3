//! DescribeAcls: the ACLs a filter matches, grouped by resource pattern.
//! Needs DESCRIBE on the cluster.

use super::{message, str_bytes, ClientInfo};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};
use std::collections::BTreeMap;
use weir_shards::metadata::acl::{AclFilter, Operation};
use weir_shards::Shard;

pub fn handle(shard: &Shard, client: &ClientInfo, request: DescribeAclsRequest) -> DescribeAclsResponse {
    let refused = |error: ResponseError, why: String| {
        DescribeAclsResponse::default().with_error_code(error.code()).with_error_message(message(why))
    };
    if !client.may_on_cluster(shard, Operation::Describe) {
        return refused(ResponseError::ClusterAuthorizationFailed, "Cluster authorization failed.".into());
    }
    let filter = AclFilter {
        resource_type: request.resource_type_filter,
        name: request.resource_name_filter.map(|n| n.to_string()),
        pattern: request.pattern_type_filter,
        principal: request.principal_filter.map(|p| p.to_string()),
        host: request.host_filter.map(|h| h.to_string()),
        operation: request.operation,
        permission: request.permission_type,
    };
    if let Err(why) = filter.check() {
        return refused(ResponseError::InvalidRequest, why);
    }
    let mut by_pattern: BTreeMap<_, Vec<AclDescription>> = BTreeMap::new();
    for acl in shard.metadata().acls.iter().filter(|acl| filter.matches(acl)) {
        let description = AclDescription::default()
            .with_principal(str_bytes(&acl.principal))
            .with_host(str_bytes(&acl.host))
            .with_operation(acl.operation as i8)
            .with_permission_type(acl.permission as i8);
        by_pattern.entry((acl.resource_type, acl.name.clone(), acl.pattern)).or_default().push(description);
    }
    let resources = by_pattern.into_iter().map(|((resource_type, name, pattern), acls)| {
        DescribeAclsResource::default()
            .with_resource_type(resource_type as i8)
            .with_resource_name(str_bytes(name))
            .with_pattern_type(pattern as i8)
            .with_acls(acls)
    });
    DescribeAclsResponse::default().with_resources(resources.collect())
}
