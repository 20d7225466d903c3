//! CreateTopics: through the controller shard, which persists the metadata.

use super::message;
use crate::errors::topic_error_code;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use weir_shards::metadata::validate_topic_name;
use weir_shards::{NewTopic, Shard, TopicError, TopicMetadata};

pub async fn handle(shard: &Shard, version: i16, request: CreateTopicsRequest) -> CreateTopicsResponse {
    let new_topics: Vec<NewTopic> = request
        .topics
        .iter()
        .map(|t| NewTopic {
            name: t.name.0.to_string(),
            partitions: t.num_partitions,
            replication_factor: t.replication_factor,
        })
        .collect();
    let results: Vec<Result<Option<TopicMetadata>, TopicError>> = if request.validate_only {
        new_topics.iter().map(|t| validate_only(shard, t).map(|()| None)).collect()
    } else {
        shard.create_topics(new_topics).await.into_iter().map(|r| r.map(Some)).collect()
    };
    let topics = request
        .topics
        .into_iter()
        .zip(results)
        .map(|(requested, result)| {
            let mut response = CreatableTopicResult::default().with_name(requested.name);
            match result {
                Ok(created) => {
                    if version >= 5 {
                        let partitions = created.as_ref().map_or(requested.num_partitions, |c| c.partitions);
                        response.num_partitions = partitions;
                        response.replication_factor = 1;
                    }
                    if version >= 7 {
                        response.topic_id = created.map_or_else(Default::default, |c| c.id);
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

/// The checks a real create would make, without creating.
fn validate_only(shard: &Shard, topic: &NewTopic) -> Result<(), TopicError> {
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
    Ok(())
}
