//! DeleteTopics: through the controller; owners close and remove the logs.

use super::message;
use super::ClientInfo;
use crate::errors::topic_error_code;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use weir_shards::metadata::acl::Operation;
use weir_shards::{Shard, TopicError};

pub async fn handle(
    shard: &Shard,
    client: &ClientInfo,
    version: i16,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    // v6 names topics in `topics` (by name or id); earlier versions in `topic_names`.
    let names: Vec<Option<TopicName>> = if version >= 6 {
        request.topics.into_iter().map(|t| t.name).collect()
    } else {
        request.topic_names.into_iter().map(Some).collect()
    };
    // Each name with whether the client may delete it (Kafka: DELETE on the topic).
    let may_delete = |name: TopicName| {
        let allowed = client.may_on_topic(shard, Operation::Delete, &name.0);
        (name, allowed)
    };
    let names: Vec<Option<(TopicName, bool)>> = names.into_iter().map(|name| name.map(may_delete)).collect();
    let allowed = names.iter().flatten().filter(|(_, allowed)| *allowed);
    let known: Vec<String> = allowed.map(|(name, _)| name.0.to_string()).collect();
    let mut results = shard.delete_topics(known).await.into_iter();
    let responses = names
        .into_iter()
        .map(|name| {
            let mut response = DeletableTopicResult::default();
            match name {
                None => response.error_code = ResponseError::UnknownTopicId.code(),
                Some((name, allowed)) => {
                    let result = match allowed {
                        true => results.next().expect("one result per named topic it may delete"),
                        false => Err(TopicError::AuthorizationFailed),
                    };
                    if let (Ok(deleted), true) = (&result, version >= 6) {
                        response.topic_id = deleted.id;
                    }
                    if let Err(e) = result {
                        response.error_code = topic_error_code(&e);
                        if version >= 5 {
                            response.error_message = message(&e);
                        }
                    }
                    response.name = Some(name);
                }
            }
            response
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}
