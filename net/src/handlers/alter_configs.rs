//! AlterConfigs: replaces the whole set of a topic's configs (what is not in
//! the request goes back to its default). Broker settings are read-only.

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::message;
use crate::errors::topic_error_code;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use weir_shards::metadata::ConfigAlteration;
use weir_shards::Shard;

pub async fn handle(shard: &Shard, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses: Vec<AlterConfigsResourceResponse> = Vec::new();
    let mut alterations = Vec::new();
    for resource in &request.resources {
        let mut response = AlterConfigsResourceResponse::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        if let Some(why) = unsupported_resource(resource.resource_type) {
            response.error_code = ResponseError::InvalidRequest.code();
            response.error_message = message(why);
        } else {
            let pairs = resource.configs.iter().map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())));
            alterations.push((resource.resource_name.to_string(), ConfigAlteration::Replace(pairs.collect())));
        }
        responses.push(response);
    }
    apply(shard, alterations, request.validate_only, responses.iter_mut().filter(|r| r.error_code == 0)).await;
    AlterConfigsResponse::default().with_responses(responses)
}

/// Why configs of `resource_type` cannot be altered, if they cannot.
pub fn unsupported_resource(resource_type: i8) -> Option<String> {
    match resource_type {
        RESOURCE_TOPIC => None,
        RESOURCE_BROKER => Some("broker configs are static: set them in the broker's config file".into()),
        other => Some(format!("resource type {other} is not supported")),
    }
}

/// Sends the alterations to the controller and fills in each response's error.
pub async fn apply<'a, R: ResourceResponse + 'a>(
    shard: &Shard,
    alterations: Vec<(String, ConfigAlteration)>,
    validate_only: bool,
    responses: impl Iterator<Item = &'a mut R>,
) {
    let results = shard.alter_topic_configs(alterations, validate_only).await;
    for (response, result) in responses.zip(results) {
        if let Err(e) = result {
            response.set_error(topic_error_code(&e), message(&e));
        }
    }
}

/// The two AlterConfigs response types have the same shape.
pub trait ResourceResponse {
    fn set_error(&mut self, code: i16, message: Option<kafka_protocol::protocol::StrBytes>);
}

impl ResourceResponse for AlterConfigsResourceResponse {
    fn set_error(&mut self, code: i16, message: Option<kafka_protocol::protocol::StrBytes>) {
        self.error_code = code;
        self.error_message = message;
    }
}

impl ResourceResponse for kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse {
    fn set_error(&mut self, code: i16, message: Option<kafka_protocol::protocol::StrBytes>) {
        self.error_code = code;
        self.error_message = message;
    }
}
