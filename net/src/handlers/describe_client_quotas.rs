//! DescribeClientQuotas: the entities a filter matches, with their quotas,
//! from this broker's image. Needs DESCRIBE_CONFIGS on the cluster.

use super::{message, str_bytes, ClientInfo};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{DescribeClientQuotasRequest, DescribeClientQuotasResponse};
use weir_shards::metadata::acl::Operation;
use weir_shards::metadata::quota::{ClientQuota, QuotaFilter, CLIENT_ID, USER};
use weir_shards::Shard;

pub fn handle(
    shard: &Shard,
    client: &ClientInfo,
    request: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    let refused = |code: i16, why: String| {
        DescribeClientQuotasResponse::default().with_error_code(code).with_error_message(message(why))
    };
    if !client.may_on_cluster(shard, Operation::DescribeConfigs) {
        return refused(ResponseError::ClusterAuthorizationFailed.code(), "Cluster authorization failed.".into());
    }
    let components = (request.components.iter()).map(|c| (c.entity_type.as_str(), c.match_type, c._match.as_deref()));
    let filter = match QuotaFilter::from_wire(components, request.strict) {
        Ok(filter) => filter,
        Err(refusal) => return refused(super::quota_error_code(&refusal), refusal.message),
    };
    let snapshot = shard.metadata();
    let entries = snapshot.quotas.iter().filter(|q| filter.matches(&q.entity)).map(entry).collect();
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}

fn entry(quota: &ClientQuota) -> EntryData {
    let parts = [(USER, &quota.entity.user), (CLIENT_ID, &quota.entity.client_id)];
    let entity = (parts.into_iter())
        .filter_map(|(entity_type, name)| Some((entity_type, name.as_ref()?)))
        .map(|(entity_type, name)| {
            EntityData::default()
                .with_entity_type(str_bytes(entity_type))
                .with_entity_name(name.to_wire().map(str_bytes))
        })
        .collect();
    let values =
        quota.quotas.iter().map(|(key, value)| ValueData::default().with_key(str_bytes(key.name())).with_value(*value));
    EntryData::default().with_entity(entity).with_values(values.collect())
}
