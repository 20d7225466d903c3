//! CreatePartitions: raise topics' partition counts through the controller
//! shard, with the checks and messages of Kafka's controller. A topic named
//! twice is INVALID_REQUEST (answered first, once per name, as Kafka does).
//! With ACLs a topic needs ALTER (else TOPIC_AUTHORIZATION_FAILED).

use super::{message, ClientInfo};
use crate::errors::topic_error_code;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse, TopicName};
use std::collections::{BTreeSet, HashSet};
use weir_shards::metadata::acl::Operation;
use weir_shards::metadata::PartitionIncrease;
use weir_shards::{Shard, TopicError};

pub async fn handle(shard: &Shard, client: &ClientInfo, request: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let mut seen = HashSet::new();
    let duplicates: BTreeSet<TopicName> =
        request.topics.iter().filter(|t| !seen.insert(&t.name)).map(|t| t.name.clone()).collect();
    let mut results: Vec<CreatePartitionsTopicResult> = duplicates
        .iter()
        .map(|name| {
            CreatePartitionsTopicResult::default()
                .with_name(name.clone())
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(message("Duplicate topic name."))
        })
        .collect();
    let (names, increases): (Vec<TopicName>, Vec<PartitionIncrease>) = request
        .topics
        .into_iter()
        .filter(|t| !duplicates.contains(&t.name))
        .filter(|t| {
            let allowed = client.may_on_topic(shard, Operation::Alter, &t.name.0);
            if !allowed {
                let e = TopicError::AuthorizationFailed;
                let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
                results.push(result.with_error_code(topic_error_code(&e)).with_error_message(message(&e)));
            }
            allowed
        })
        .map(|t| {
            let assignments =
                t.assignments.map(|a| a.into_iter().map(|a| a.broker_ids.into_iter().map(|b| b.0).collect()).collect());
            (t.name.clone(), PartitionIncrease { name: t.name.0.to_string(), count: t.count, assignments })
        })
        .unzip();
    let outcomes =
        if increases.is_empty() { Vec::new() } else { shard.create_partitions(increases, request.validate_only).await };
    results.extend(names.into_iter().zip(outcomes).map(|(name, outcome)| {
        let result = CreatePartitionsTopicResult::default().with_name(name);
        match outcome {
            Ok(_) => result,
            Err(e) => result.with_error_code(topic_error_code(&e)).with_error_message(message(&e)),
        }
    }));
    CreatePartitionsResponse::default().with_results(results)
}
