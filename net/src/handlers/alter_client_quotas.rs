//! AlterClientQuotas: each entity's changes checked as Kafka's controller
//! checks them (INVALID_REQUEST or UNSUPPORTED_VERSION with the reason),
//! the valid ones applied together through the controller unless
//! `validate_only`. Needs ALTER_CONFIGS on the cluster.

use super::{message, ClientInfo};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_client_quotas_request::EntryData;
use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData as EntryResult};
use kafka_protocol::messages::{AlterClientQuotasRequest, AlterClientQuotasResponse};
use weir_shards::metadata::acl::Operation;
use weir_shards::metadata::quota::{entity_from_wire, op_from_wire, QuotaAlteration, QuotaRefusal};
use weir_shards::Shard;

pub async fn handle(
    shard: &Shard,
    client: &ClientInfo,
    request: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    let allowed = client.may_on_cluster(shard, Operation::AlterConfigs);
    let checked: Vec<Result<QuotaAlteration, (i16, String)>> = (request.entries.iter())
        .map(|entry| match allowed {
            false => Err((ResponseError::ClusterAuthorizationFailed.code(), "Cluster authorization failed.".into())),
            true => alteration(entry).map_err(|refusal| (super::quota_error_code(&refusal), refusal.message)),
        })
        .collect();
    let valid: Vec<QuotaAlteration> = checked.iter().flatten().cloned().collect();
    let mut applied = match request.validate_only || valid.is_empty() {
        true => vec![Ok(()); valid.len()],
        false => shard.alter_client_quotas(valid).await,
    }
    .into_iter();
    let results = (request.entries.into_iter().zip(checked))
        .map(|(entry, checked)| {
            let outcome = match checked.map(|_| applied.next()) {
                Err(refused) => Err(refused),
                Ok(Some(Ok(()))) => Ok(()),
                Ok(Some(Err(e))) => Err((crate::errors::topic_error_code(&e), e.to_string())),
                // The controller answers one result per alteration.
                Ok(None) => Err((ResponseError::UnknownServerError.code(), "no result".into())),
            };
            let entity = (entry.entity.into_iter())
                .map(|e| EntityData::default().with_entity_type(e.entity_type).with_entity_name(e.entity_name))
                .collect();
            let result = EntryResult::default().with_entity(entity);
            match outcome {
                Ok(()) => result,
                Err((code, why)) => result.with_error_code(code).with_error_message(message(why)),
            }
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(results)
}

/// An entry's entity and ops, checked.
fn alteration(entry: &EntryData) -> Result<QuotaAlteration, QuotaRefusal> {
    let parts = entry.entity.iter().map(|e| (e.entity_type.as_str(), e.entity_name.as_deref()));
    let entity = entity_from_wire(parts)?;
    let ops =
        (entry.ops.iter()).map(|op| op_from_wire(op.key.as_str(), op.value, op.remove)).collect::<Result<_, _>>()?;
    Ok(QuotaAlteration { entity, ops })
}
