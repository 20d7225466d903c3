//! AlterUserScramCredentials (KIP-554): upsert or delete users' SCRAM
//! credentials. The client sends SaltedPassword (never the password); the
//! broker keeps StoredKey and ServerKey made from it, in the metadata store
//! through the controller. Each user's changes are checked as Kafka checks
//! them and applied all or none; results in the order users first appear.
//! Needs ALTER on the cluster.

use super::{message, str_bytes, ClientInfo};
use crate::errors::topic_error_code;
use crate::sasl::scram::{ScramMechanism, MAX_ITERATIONS, MIN_ITERATIONS};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse};
use weir_shards::metadata::acl::Operation;
use weir_shards::metadata::ScramChange;
use weir_shards::{Shard, TopicError};

/// One user's changes, or why they are refused.
type Checked = Result<Vec<ScramChange>, (ResponseError, String)>;

pub async fn handle(
    shard: &Shard,
    client: &ClientInfo,
    request: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    // Kafka: ALTER on the cluster, else every user is refused.
    let may_alter = client.may_on_cluster(shard, Operation::Alter);
    let mut users: Vec<(String, Checked)> = Vec::new();
    let mut seen: Vec<(String, i8)> = Vec::new();
    let deletions = request.deletions.into_iter().map(|d| (d.name.to_string(), d.mechanism, None));
    let upsertions = request
        .upsertions
        .into_iter()
        .map(|u| (u.name.to_string(), u.mechanism, Some((u.iterations, u.salt, u.salted_password))));
    for (user, code, upsert) in deletions.chain(upsertions) {
        let change = match may_alter {
            true => check(&user, code, upsert, &seen),
            false => Err((ResponseError::ClusterAuthorizationFailed, "Cluster authorization failed.".into())),
        };
        seen.push((user.clone(), code));
        let entry = match users.iter_mut().position(|(u, _)| *u == user) {
            Some(at) => &mut users[at].1,
            None => {
                users.push((user, Ok(Vec::new())));
                &mut users.last_mut().expect("just pushed").1
            }
        };
        match (entry.as_mut(), change) {
            (Ok(changes), Ok(change)) => changes.push(change),
            (Ok(_), Err(refused)) => *entry = Err(refused),
            (Err(_), _) => {} // the first error stands
        }
    }
    let accepted: Vec<(String, Vec<ScramChange>)> =
        users.iter().filter_map(|(user, checked)| Some((user.clone(), checked.as_ref().ok()?.clone()))).collect();
    let mut applied = if accepted.is_empty() { Vec::new() } else { shard.alter_scram_credentials(accepted).await };
    applied.reverse();
    let results = users
        .into_iter()
        .map(|(user, checked)| {
            let outcome = match checked {
                Err(refused) => Err(refused),
                Ok(_) => match applied.pop().unwrap_or(Err(TopicError::ControllerUnavailable)) {
                    Ok(()) => Ok(()),
                    Err(TopicError::Unknown) => Err((
                        ResponseError::ResourceNotFound,
                        "Attempt to delete a user credential that does not exist".into(),
                    )),
                    Err(e) => Err((
                        ResponseError::try_from_code(topic_error_code(&e)).unwrap_or(ResponseError::UnknownServerError),
                        e.to_string(),
                    )),
                },
            };
            let result = AlterUserScramCredentialsResult::default().with_user(str_bytes(user));
            match outcome {
                Ok(()) => result,
                Err((error, why)) => result.with_error_code(error.code()).with_error_message(message(why)),
            }
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}

/// One deletion (`upsert` None) or upsertion, checked as Kafka checks it.
fn check(
    user: &str,
    code: i8,
    upsert: Option<(i32, bytes::Bytes, bytes::Bytes)>,
    seen: &[(String, i8)],
) -> Result<ScramChange, (ResponseError, String)> {
    if user.is_empty() {
        return Err((ResponseError::UnacceptableCredential, "Username must not be empty".into()));
    }
    let mechanism = ScramMechanism::from_code(code)
        .ok_or((ResponseError::UnsupportedSaslMechanism, "Unknown SCRAM mechanism".into()))?;
    if seen.iter().any(|(u, c)| u == user && *c == code) {
        let why = "A user credential cannot be altered twice in the same request";
        return Err((ResponseError::DuplicateResource, why.into()));
    }
    let Some((iterations, salt, salted_password)) = upsert else {
        return Ok(ScramChange::Delete { mechanism: mechanism.name().into() });
    };
    let unacceptable = |why: &str| Err((ResponseError::UnacceptableCredential, why.to_string()));
    let iterations = match u32::try_from(iterations) {
        Ok(i) if i < MIN_ITERATIONS => return unacceptable("Too few iterations"),
        Ok(i) if i > MAX_ITERATIONS => return unacceptable("Too many iterations"),
        Ok(i) => i,
        Err(_) => return unacceptable("Too few iterations"),
    };
    if salt.is_empty() {
        return unacceptable("Salt must not be empty");
    }
    if salted_password.len() != mechanism.hash_len() {
        return unacceptable("Salted password has the wrong length for the mechanism");
    }
    let credential = mechanism.credential(&salted_password, &salt, iterations);
    Ok(ScramChange::Upsert { mechanism: mechanism.name().into(), credential })
}
