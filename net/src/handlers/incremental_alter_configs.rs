//! IncrementalAlterConfigs (KIP-339): SET, DELETE, APPEND and SUBTRACT on a
//! topic's configs, applied by the controller to the current set.

use super::alter_configs::{apply, unsupported_resource};
use super::message;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use weir_shards::metadata::{ConfigAlteration, ConfigOp};
use weir_shards::Shard;

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

pub async fn handle(shard: &Shard, request: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse {
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
            match config_ops(resource) {
                Ok(ops) => alterations.push((resource.resource_name.to_string(), ConfigAlteration::Incremental(ops))),
                Err(why) => {
                    response.error_code = ResponseError::InvalidConfig.code();
                    response.error_message = message(why);
                }
            }
        }
        responses.push(response);
    }
    apply(shard, alterations, request.validate_only, responses.iter_mut().filter(|r| r.error_code == 0)).await;
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

fn config_ops(resource: &AlterConfigsResource) -> Result<Vec<ConfigOp>, String> {
    resource
        .configs
        .iter()
        .map(|c| {
            let name = c.name.to_string();
            let value =
                || c.value.as_ref().map(|v| v.to_string()).ok_or_else(|| format!("{name}: a value is required"));
            Ok(match c.config_operation {
                SET => ConfigOp::Set(name.clone(), value()?),
                DELETE => ConfigOp::Delete(name),
                APPEND => ConfigOp::Append(name.clone(), value()?),
                SUBTRACT => ConfigOp::Subtract(name.clone(), value()?),
                other => return Err(format!("{name}: unknown operation {other}")),
            })
        })
        .collect()
}
