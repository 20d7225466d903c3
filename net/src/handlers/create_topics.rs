//! CreateTopics: through the controller shard, which persists the metadata.
//! Topic configs are validated here (INVALID_CONFIG per topic); from v5 the
//! response lists every config of a created topic with its source.

use super::describe_configs::topic_entries;
use super::{message, str_bytes};
use crate::errors::topic_error_code;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use weir_shards::metadata::{validate_topic_configs, validate_topic_name, TopicConfigs};
use weir_shards::{NewTopic, Shard, TopicError, TopicMetadata};

pub async fn handle(shard: &Shard, version: i16, request: CreateTopicsRequest) -> CreateTopicsResponse {
    // Topics whose configs do not validate are answered without asking the controller.
    let mut results: Vec<Option<Result<TopicMetadata, TopicError>>> = Vec::new();
    let mut to_create = Vec::new();
    for t in &request.topics {
        let new_topic = match new_topic(t, shard.config().node_id) {
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
                        response.replication_factor = 1;
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
/// Kafka requires); with one broker, each partition's replicas are it alone.
fn new_topic(topic: &CreatableTopic, node_id: i32) -> Result<NewTopic, TopicError> {
    let name = topic.name.0.to_string();
    if topic.assignments.is_empty() {
        return Ok(NewTopic { name, partitions: topic.num_partitions, replication_factor: topic.replication_factor });
    }
    if topic.num_partitions != -1 || topic.replication_factor != -1 {
        return Err(TopicError::InvalidRequest(
            "Both numPartitions or replicationFactor and replicasAssignments were set. \
             Both cannot be used at the same time."
                .into(),
        ));
    }
    let mut indexes: Vec<i32> = topic.assignments.iter().map(|a| a.partition_index).collect();
    indexes.sort_unstable();
    if indexes.iter().zip(0..).any(|(&index, expected)| index != expected) {
        return Err(TopicError::InvalidReplicaAssignment(
            "partitions should be a consecutive 0-based integer sequence".into(),
        ));
    }
    for assignment in &topic.assignments {
        let replicas: Vec<i32> = assignment.broker_ids.iter().map(|b| b.0).collect();
        let problem = match replicas.as_slice() {
            [] => "The manual partition assignment includes an empty replica list.".to_string(),
            [only] if *only == node_id => continue,
            [first, ..] if replicas.iter().all(|&b| b == node_id) => {
                format!("The manual partition assignment includes the broker {first} more than once.")
            }
            _ => {
                let unknown = replicas.iter().find(|&&b| b != node_id).unwrap_or(&node_id);
                format!("The manual partition assignment includes broker {unknown}, but no such broker is registered.")
            }
        };
        return Err(TopicError::InvalidReplicaAssignment(problem));
    }
    Ok(NewTopic { name, partitions: topic.assignments.len() as i32, replication_factor: 1 })
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
    validate_topic_name(&topic.name)?;
    if shard.metadata().topic(&topic.name).is_some() {
        return Err(TopicError::AlreadyExists);
    }
    if topic.partitions == 0 || topic.partitions > weir_shards::metadata::MAX_PARTITIONS {
        return Err(TopicError::InvalidPartitions(topic.partitions));
    }
    if topic.replication_factor == 0 || topic.replication_factor > 1 {
        return Err(TopicError::InvalidReplicationFactor(topic.replication_factor));
    }
    let partitions = if topic.partitions < 0 { shard.config().default_partitions } else { topic.partitions };
    Ok(TopicMetadata { name: topic.name.clone(), id: Default::default(), partitions, configs })
}
