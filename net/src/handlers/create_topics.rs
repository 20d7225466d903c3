//! CreateTopics: through the controller shard, which persists the metadata.
//! Topic configs are validated here (INVALID_CONFIG per topic); from v5 the
//! response lists every config of a created topic with its source.

use super::describe_configs::topic_entries;
use super::{message, str_bytes, ClientInfo};
use crate::errors::topic_error_code;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use weir_shards::metadata::acl::Operation;
use weir_shards::metadata::{plan_topic, validate_topic_configs, TopicConfigs};
use weir_shards::{NewTopic, Shard, TopicError, TopicMetadata};

pub async fn handle(
    shard: &Shard,
    client: &ClientInfo,
    version: i16,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    // Topics whose configs do not validate are answered without asking the controller.
    let mut results: Vec<Option<Result<TopicMetadata, TopicError>>> = Vec::new();
    let mut to_create = Vec::new();
    let may_create_any = client.may_on_cluster(shard, Operation::Create);
    for t in &request.topics {
        if !may_create_any && !client.may_on_topic(shard, Operation::Create, &t.name.0) {
            results.push(Some(Err(TopicError::AuthorizationFailed)));
            continue;
        }
        let new_topic = match new_topic(t) {
            Ok(new_topic) => new_topic,
            Err(e) => {
                results.push(Some(Err(e)));
                continue;
            }
        };
        match configs_of(t) {
            Err(e) => results.push(Some(Err(e))),
            Ok(configs) if request.validate_only => results.push(Some(validate_only(shard, &new_topic, configs))),
            Ok(configs) => {
                results.push(None);
                to_create.push((new_topic, configs));
            }
        }
    }
    let mut created =
        if to_create.is_empty() { Vec::new() } else { shard.create_topics_with_configs(to_create).await }.into_iter();
    let results = results.into_iter().map(|r| r.unwrap_or_else(|| created.next().unwrap_or(Err(TopicError::Unknown))));
    let topics = request
        .topics
        .into_iter()
        .zip(results)
        .map(|(requested, result)| {
            let mut response = CreatableTopicResult::default().with_name(requested.name);
            match result {
                Ok(topic) => {
                    if version >= 5 {
                        response.num_partitions = topic.partitions;
                        response.replication_factor = topic.replication_factor() as i16;
                        response.configs = Some(config_results(shard, &topic));
                    }
                    if version >= 7 && !request.validate_only {
                        response.topic_id = topic.id;
                    }
                }
                Err(e) => {
                    response.error_code = topic_error_code(&e);
                    response.error_message = message(&e);
                }
            }
            response
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

/// The topic an entry asks for. Explicit replica assignments give the
/// partition count (numPartitions and replicationFactor are then -1, as
/// Kafka requires); the controller checks their brokers.
fn new_topic(topic: &CreatableTopic) -> Result<NewTopic, TopicError> {
    let name = topic.name.0.to_string();
    if topic.assignments.is_empty() {
        let (partitions, replication_factor) = (topic.num_partitions, topic.replication_factor);
        return Ok(NewTopic { name, partitions, replication_factor, assignments: None });
    }
    if topic.num_partitions != -1 || topic.replication_factor != -1 {
        return Err(TopicError::InvalidRequest(
            "Both numPartitions or replicationFactor and replicasAssignments were set. \
             Both cannot be used at the same time."
                .into(),
        ));
    }
    let mut assignments: Vec<_> = topic.assignments.iter().collect();
    assignments.sort_by_key(|a| a.partition_index);
    if assignments.iter().zip(0..).any(|(a, expected)| a.partition_index != expected) {
        return Err(TopicError::InvalidReplicaAssignment(
            "partitions should be a consecutive 0-based integer sequence".into(),
        ));
    }
    let lists = assignments.iter().map(|a| a.broker_ids.iter().map(|b| b.0).collect()).collect();
    Ok(NewTopic { name, partitions: -1, replication_factor: -1, assignments: Some(lists) })
}

fn configs_of(topic: &CreatableTopic) -> Result<TopicConfigs, TopicError> {
    validate_topic_configs(topic.configs.iter().map(|c| (&*c.name, c.value.as_deref())))
}

fn config_results(shard: &Shard, topic: &TopicMetadata) -> Vec<CreatableTopicConfigs> {
    topic_entries(shard.config(), &shard.metadata().dynamic_broker_configs, topic)
        .into_iter()
        .map(|entry| {
            CreatableTopicConfigs::default()
                .with_name(str_bytes(entry.name))
                .with_value(Some(str_bytes(entry.value)))
                .with_read_only(entry.read_only)
                .with_config_source(entry.source)
        })
        .collect()
}

/// The checks a real create would make, without creating; the topic as it
/// would be (its id is not reported).
fn validate_only(shard: &Shard, topic: &NewTopic, configs: TopicConfigs) -> Result<TopicMetadata, TopicError> {
    let planned = plan_topic(&shard.metadata(), topic, &configs, shard.config().topic_defaults())?;
    Ok(TopicMetadata { id: Default::default(), ..planned })
}
