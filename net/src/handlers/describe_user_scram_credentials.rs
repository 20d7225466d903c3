//! DescribeUserScramCredentials (KIP-554): each user's SCRAM mechanisms and
//! iteration counts (never a salt or key). No users named: every user with a
//! credential. Needs DESCRIBE on the cluster.

use super::{message, str_bytes, ClientInfo};
use crate::sasl::scram::ScramMechanism;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse};
use std::collections::BTreeMap;
use weir_shards::metadata::acl::Operation;
use weir_shards::metadata::ScramCredential;
use weir_shards::Shard;

pub fn handle(
    shard: &Shard,
    client: &ClientInfo,
    request: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    if !client.may_on_cluster(shard, Operation::Describe) {
        let refused = ResponseError::ClusterAuthorizationFailed;
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(refused.code())
            .with_error_message(message("Cluster authorization failed."));
    }
    let metadata = shard.metadata();
    let credentials = &metadata.scram_credentials;
    let named: Vec<String> = request.users.unwrap_or_default().into_iter().map(|u| u.name.to_string()).collect();
    let results = if named.is_empty() {
        credentials.iter().map(|(user, by_mechanism)| described(user, by_mechanism)).collect()
    } else {
        named
            .iter()
            .map(|user| {
                let failed = |error: ResponseError, why: String| {
                    DescribeUserScramCredentialsResult::default()
                        .with_user(str_bytes(user.as_str()))
                        .with_error_code(error.code())
                        .with_error_message(message(why))
                };
                if named.iter().filter(|other| *other == user).count() > 1 {
                    let why = format!(
                        "Cannot describe SCRAM credentials for the same user twice in a single request: {user}"
                    );
                    return failed(ResponseError::DuplicateResource, why);
                }
                match credentials.get(user) {
                    Some(by_mechanism) => described(user, by_mechanism),
                    None => failed(
                        ResponseError::ResourceNotFound,
                        format!("Attempt to describe a user credential that does not exist: {user}"),
                    ),
                }
            })
            .collect()
    };
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

fn described(user: &str, by_mechanism: &BTreeMap<String, ScramCredential>) -> DescribeUserScramCredentialsResult {
    let infos = by_mechanism
        .iter()
        .filter_map(|(name, credential)| {
            let mechanism = ScramMechanism::from_name(name)?;
            let iterations = i32::try_from(credential.iterations).unwrap_or(i32::MAX);
            Some(CredentialInfo::default().with_mechanism(mechanism.code()).with_iterations(iterations))
        })
        .collect();
    DescribeUserScramCredentialsResult::default().with_user(str_bytes(user)).with_credential_infos(infos)
}
