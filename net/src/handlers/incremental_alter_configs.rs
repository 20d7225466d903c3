//! IncrementalAlterConfigs (KIP-339): SET, DELETE, APPEND and SUBTRACT on a
//! topic's configs, applied by the controller to the current set.

use super::alter_configs::{alter, ConfigResource};
use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use weir_shards::metadata::{ConfigAlteration, ConfigOp};
use weir_shards::Shard;

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

pub async fn handle(shard: &Shard, request: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse {
    let responses = alter(shard, &request.resources, request.validate_only).await;
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

impl ConfigResource for AlterConfigsResource {
    fn resource_type(&self) -> i8 {
        self.resource_type
    }
    fn resource_name(&self) -> &StrBytes {
        &self.resource_name
    }
    fn alteration(&self) -> Result<ConfigAlteration, String> {
        config_ops(self).map(ConfigAlteration::Incremental)
    }
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
