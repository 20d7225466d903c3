//! AlterConfigs: replaces the whole set of a topic's configs, of the
//! dynamic broker configs or of a consumer group's (what is not in the request goes back to its
//! default). Also what IncrementalAlterConfigs shares with it: the resource
//! checks (with ACLs ALTER_CONFIGS on the resource, as Kafka) and the one
//! call to the controller.

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_GROUP, RESOURCE_TOPIC};
use super::{message, ClientInfo};
use crate::errors::topic_error_code;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use weir_shards::metadata::acl::Operation;
use weir_shards::metadata::{ConfigAlteration, ConfigTarget};
use weir_shards::Shard;

pub async fn handle(shard: &Shard, client: &ClientInfo, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let resources = request.resources.iter().map(|r| Resource {
        resource_type: r.resource_type,
        name: &r.resource_name,
        alteration: Ok(ConfigAlteration::Replace(
            r.configs.iter().map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string()))).collect(),
        )),
    });
    let responses = alter(shard, client, resources, request.validate_only).await;
    AlterConfigsResponse::default().with_responses(responses)
}

/// Answers every resource of an AlterConfigs or IncrementalAlterConfigs
/// request, in request order: INVALID_REQUEST for a resource type that cannot
/// be altered, Kafka's authorization error where ALTER_CONFIGS is refused,
/// INVALID_CONFIG for an alteration that cannot be read, and the
/// controller's answer (one call for all the rest) otherwise.
pub async fn alter<'a, R: ResourceResponse>(
    shard: &Shard,
    client: &ClientInfo,
    resources: impl ExactSizeIterator<Item = Resource<'a>>,
    validate_only: bool,
) -> Vec<R> {
    let mut responses = Vec::with_capacity(resources.len());
    let mut alterations = Vec::new();
    let mut altered = Vec::new();
    for resource in resources {
        let mut response = R::new(resource.resource_type, resource.name.clone());
        let target = target_of(shard, resource.resource_type, resource.name);
        let refused = client.refused_configs(shard, Operation::AlterConfigs, resource.resource_type, resource.name);
        let alteration = match (target, refused) {
            (Err(why), _) => Err((ResponseError::InvalidRequest, why)),
            (Ok(_), Some(refused)) => Err((refused, refused.to_string())),
            (Ok(target), None) => {
                resource.alteration.map(|a| (target, a)).map_err(|why| (ResponseError::InvalidConfig, why))
            }
        };
        match alteration {
            Ok(alteration) => {
                alterations.push(alteration);
                altered.push(responses.len());
            }
            Err((error, why)) => response.set_error(error.code(), message(why)),
        }
        responses.push(response);
    }
    let results = shard.alter_configs(alterations, validate_only).await;
    for (i, result) in altered.into_iter().zip(results) {
        if let Err(e) = result {
            responses[i].set_error(topic_error_code(&e), message(&e));
        }
    }
    responses
}

/// Whose configs a resource names, or why it cannot be altered: a topic,
/// this broker (its node id), the cluster-wide broker default (the empty
/// name) or a consumer group.
fn target_of(shard: &Shard, resource_type: i8, name: &str) -> Result<ConfigTarget, String> {
    match resource_type {
        RESOURCE_TOPIC => Ok(ConfigTarget::Topic(name.to_string())),
        RESOURCE_BROKER if name.is_empty() => Ok(ConfigTarget::ClusterDefault),
        RESOURCE_BROKER if name == shard.config().node_id.to_string() => Ok(ConfigTarget::Broker),
        RESOURCE_BROKER => Err(format!("this is broker {}, not '{name}'", shard.config().node_id)),
        RESOURCE_GROUP if !name.is_empty() => Ok(ConfigTarget::Group(name.to_string())),
        other => Err(format!("resource type {other} is not supported")),
    }
}

/// A resource of either request: what it names and the alteration it asks
/// for, or why that cannot be read.
pub struct Resource<'a> {
    pub resource_type: i8,
    pub name: &'a StrBytes,
    pub alteration: Result<ConfigAlteration, String>,
}

/// The two AlterConfigs response types have the same shape.
pub trait ResourceResponse {
    fn new(resource_type: i8, resource_name: StrBytes) -> Self;
    fn set_error(&mut self, code: i16, message: Option<StrBytes>);
}

impl ResourceResponse for AlterConfigsResourceResponse {
    fn new(resource_type: i8, resource_name: StrBytes) -> Self {
        Self::default().with_resource_type(resource_type).with_resource_name(resource_name)
    }
    fn set_error(&mut self, code: i16, message: Option<StrBytes>) {
        self.error_code = code;
        self.error_message = message;
    }
}

impl ResourceResponse for kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse {
    fn new(resource_type: i8, resource_name: StrBytes) -> Self {
        Self::default().with_resource_type(resource_type).with_resource_name(resource_name)
    }
    fn set_error(&mut self, code: i16, message: Option<StrBytes>) {
        self.error_code = code;
        self.error_message = message;
    }
}
