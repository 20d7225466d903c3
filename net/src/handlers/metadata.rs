//! Metadata: the unfenced brokers, and the topics asked for by name (auto-created if
//! allowed) or, from v10, by id. v13's top-level error_code is always 0 here
//! (Kafka sets it only when a request is refused whole).

use super::ClientInfo;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;
use weir_shards::metadata::acl::{Operation, ResourceType, CLUSTER_NAME};
use weir_shards::{MetadataSnapshot, Shard};

pub async fn handle(shard: &Shard, client: &ClientInfo, version: i16, request: MetadataRequest) -> MetadataResponse {
    // Each topic asked for by name, or (v10+) by id alone (the consumer
    // protocol assigns topics by id).
    let requested: Option<Vec<Result<String, Uuid>>> = match request.topics {
        // v0 has no null: an empty list means all topics.
        Some(topics) if !(version == 0 && topics.is_empty()) => {
            Some(topics.into_iter().map(|t| t.name.map(|n| n.0.to_string()).ok_or(t.topic_id)).collect())
        }
        _ => None,
    };
    // Kafka's checks: a topic asked for by name needs DESCRIBE; one to
    // auto-create needs CREATE on the cluster or on the topic.
    let describable = |name: &str| client.may_on_topic(shard, Operation::Describe, name);
    let may_create = |name: &str| {
        client.may_on_cluster(shard, Operation::Create) || client.may_on_topic(shard, Operation::Create, name)
    };
    let auto_create = shard.config().auto_create_topics && (version < 4 || request.allow_auto_topic_creation);
    if let Some(names) = requested.as_ref().filter(|_| auto_create) {
        let creatable = names.iter().flatten().filter(|name| describable(name) && may_create(name));
        auto_create_topics(shard, creatable.map(String::as_str)).await;
    }
    let snapshot = shard.metadata();
    let mut topics: Vec<MetadataResponseTopic> = match requested {
        // All topics: those the client may describe.
        None => (snapshot.topics.keys())
            .filter(|name| describable(name))
            .map(|name| describe_topic(&snapshot, name, version))
            .collect(),
        Some(names) => names
            .into_iter()
            .map(|name| match name {
                Ok(name) if !describable(&name) => refused_topic(&name),
                Ok(name) if auto_create && snapshot.topic(&name).is_none() && !may_create(&name) => {
                    refused_topic(&name)
                }
                Ok(name) => describe_topic(&snapshot, &name, version),
                Err(id) => match snapshot.topic_by_id(id) {
                    Some(topic) if !describable(&topic.name) => refused_topic(&topic.name),
                    Some(topic) => describe_topic(&snapshot, &topic.name, version),
                    None => MetadataResponseTopic::default()
                        .with_name(None)
                        .with_topic_id(id)
                        .with_error_code(ResponseError::UnknownTopicId.code()),
                },
            })
            .collect(),
    };
    // Fenced brokers are left out, as Kafka does: clients go to live ones;
    // so are those without the client's listener.
    let brokers = snapshot
        .unfenced_brokers()
        .filter_map(|b| {
            let (host, port) = b.endpoint(&client.listener.name)?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b.id))
                    .with_host(super::str_bytes(host))
                    .with_port(port)
                    .with_rack(b.rack.as_deref().map(super::str_bytes)),
            )
        })
        .collect();
    if request.include_topic_authorized_operations && version >= 8 {
        for topic in topics.iter_mut().filter(|t| t.error_code == 0) {
            let name = topic.name.as_ref().map_or("", |n| n.0.as_str());
            topic.topic_authorized_operations = client.authorized_operations(shard, ResourceType::Topic, name);
        }
    }
    let mut response = MetadataResponse::default().with_brokers(brokers).with_topics(topics);
    if version >= 1 {
        response.controller_id = BrokerId(shard.active_controller());
    }
    if version >= 2 {
        response.cluster_id = Some(StrBytes::from_string(snapshot.cluster_id.clone()));
    }
    // Asked for from v8 (the cluster's until v10).
    if request.include_cluster_authorized_operations && (8..=10).contains(&version) {
        response.cluster_authorized_operations =
            client.authorized_operations(shard, ResourceType::Cluster, CLUSTER_NAME);
    }
    response
}

/// A topic the client may not describe (or create): named, nothing else.
fn refused_topic(name: &str) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))
        .with_error_code(ResponseError::TopicAuthorizationFailed.code())
}

fn describe_topic(snapshot: &MetadataSnapshot, name: &str, version: i16) -> MetadataResponseTopic {
    let topic_name = TopicName(StrBytes::from_string(name.to_string()));
    let Some(topic) = snapshot.topic(name) else {
        let error = match weir_shards::metadata::validate_topic_name(name) {
            Ok(()) => ResponseError::UnknownTopicOrPartition,
            Err(_) => ResponseError::InvalidTopicException,
        };
        return MetadataResponseTopic::default().with_name(Some(topic_name)).with_error_code(error.code());
    };
    let partitions = (0..)
        .zip(&topic.assignment)
        .map(|(index, state)| {
            let mut partition = MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(BrokerId(state.leader))
                .with_replica_nodes(state.replicas.iter().copied().map(BrokerId).collect())
                .with_isr_nodes(state.isr.iter().copied().map(BrokerId).collect());
            if state.leader < 0 {
                partition.error_code = ResponseError::LeaderNotAvailable.code();
            }
            if version >= 5 {
                let fenced = state.replicas.iter().copied().filter(|&r| !snapshot.is_unfenced(r));
                partition.offline_replicas = fenced.map(BrokerId).collect();
            }
            if version >= 7 {
                partition.leader_epoch = state.leader_epoch;
            }
            partition
        })
        .collect();
    let mut response = MetadataResponseTopic::default().with_name(Some(topic_name)).with_partitions(partitions);
    if version >= 1 {
        response.is_internal = weir_shards::shard::is_internal_topic(name);
    }
    if version >= 10 {
        response.topic_id = topic.id;
    }
    response
}

/// Creates the named topics that do not exist yet, with the broker default
/// partition count, when `auto_create_topics` is on. Invalid names are left
/// for the caller to report.
async fn auto_create_topics<'a>(shard: &Shard, names: impl Iterator<Item = &'a str>) {
    if !shard.config().auto_create_topics {
        return;
    }
    let snapshot = shard.metadata();
    let missing: Vec<_> = names
        .filter(|name| snapshot.topic(name).is_none() && weir_shards::metadata::validate_topic_name(name).is_ok())
        .map(|name| weir_shards::NewTopic::with_partitions(name, -1))
        .collect();
    if missing.is_empty() {
        return;
    }
    for (topic, result) in missing.iter().zip(shard.create_topics(missing.clone()).await) {
        match result {
            Ok(created) => {
                tracing::info!(topic = %created.name, partitions = created.partitions, "auto-created topic")
            }
            // Another request may have created it meanwhile; that is fine.
            Err(weir_shards::TopicError::AlreadyExists) => {}
            Err(e) => tracing::warn!(topic = %topic.name, "auto-create failed: {e}"),
        }
    }
}
