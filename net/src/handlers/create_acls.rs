//! CreateAcls: each creation checked as Kafka checks it (INVALID_REQUEST
//! with the reason otherwise), the valid ones created together through the
//! controller. Needs ALTER on the cluster.

use super::{message, ClientInfo};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};
use weir_shards::metadata::acl::{AclBinding, AclChange, Operation, PatternType, Permission, ResourceType};
use weir_shards::Shard;

pub async fn handle(shard: &Shard, client: &ClientInfo, request: CreateAclsRequest) -> CreateAclsResponse {
    let failed =
        |code: i16, why: String| AclCreationResult::default().with_error_code(code).with_error_message(message(why));
    if !client.may_on_cluster(shard, Operation::Alter) {
        let refused = request
            .creations
            .iter()
            .map(|_| failed(ResponseError::ClusterAuthorizationFailed.code(), "Cluster authorization failed.".into()));
        return CreateAclsResponse::default().with_results(refused.collect());
    }
    let bindings: Vec<Result<AclBinding, String>> = request.creations.iter().map(binding).collect();
    let valid: Vec<AclBinding> = bindings.iter().flatten().cloned().collect();
    let mut created = shard.change_acls(AclChange::Create(valid)).await.into_iter();
    let results = bindings
        .into_iter()
        .map(|binding| match binding.map(|_| created.next()) {
            Err(why) => failed(ResponseError::InvalidRequest.code(), why),
            Ok(Some(Ok(()))) => AclCreationResult::default(),
            Ok(Some(Err(e))) => failed(crate::errors::topic_error_code(&e), e.to_string()),
            // The controller answers one result per binding asked for.
            Ok(None) => failed(ResponseError::UnknownServerError.code(), "no result".into()),
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

/// The binding a creation asks for, checked as Kafka checks it.
fn binding(creation: &AclCreation) -> Result<AclBinding, String> {
    let unknown = |what: &str, code: i8| format!("Invalid {what} {code}");
    let binding = AclBinding {
        resource_type: ResourceType::from_code(creation.resource_type)
            .ok_or_else(|| unknown("resource type", creation.resource_type))?,
        name: creation.resource_name.to_string(),
        pattern: PatternType::from_code(creation.resource_pattern_type)
            .ok_or_else(|| unknown("pattern type", creation.resource_pattern_type))?,
        principal: creation.principal.to_string(),
        host: creation.host.to_string(),
        operation: Operation::from_code(creation.operation).ok_or_else(|| unknown("operation", creation.operation))?,
        permission: Permission::from_code(creation.permission_type)
            .ok_or_else(|| unknown("permission type", creation.permission_type))?,
    };
    binding.check()?;
    Ok(binding)
}
