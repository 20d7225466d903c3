//! IncrementalAlterConfigs (KIP-339): SET, DELETE, APPEND and SUBTRACT on a
//! topic's configs or the dynamic broker configs, applied by the controller
//! to the current set.

use super::alter_configs::{alter, Resource};
use super::ClientInfo;
use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use weir_shards::metadata::{ConfigAlteration, ConfigOp};
use weir_shards::Shard;

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

pub async fn handle(
    shard: &Shard,
    client: &ClientInfo,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let resources = request.resources.iter().map(|r| Resource {
        resource_type: r.resource_type,
        name: &r.resource_name,
        alteration: config_ops(r).map(ConfigAlteration::Incremental),
    });
    let responses = alter(shard, client, resources, request.validate_only).await;
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
