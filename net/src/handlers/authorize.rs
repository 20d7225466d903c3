//! The authorizer: whether a request's principal may do an operation on a
//! resource, by the ACLs in the metadata (`weir_shards::metadata::acl`),
//! `super_users` and `allow_everyone_if_no_acl_found`. With `acl_enabled`
//! off every request is allowed, as before ACLs.

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_GROUP, RESOURCE_TOPIC};
use super::ClientInfo;
use kafka_protocol::error::ResponseError;
use std::collections::HashSet;
use weir_shards::metadata::acl::{self, Operation, ResourceType, CLUSTER_NAME};
use weir_shards::Shard;

impl ClientInfo {
    /// Whether this client may do `operation` on the resource `name`.
    pub fn may(&self, shard: &Shard, operation: Operation, resource_type: ResourceType, name: &str) -> bool {
        let config = shard.config();
        if !config.acl_enabled || config.is_super_user(&self.requester.principal) {
            return true;
        }
        let acls = &shard.metadata().acls;
        acl::authorize(acls, &self.requester, operation, resource_type, name, config.allow_everyone_if_no_acl_found)
    }

    pub fn may_on_topic(&self, shard: &Shard, operation: Operation, topic: &str) -> bool {
        self.may(shard, operation, ResourceType::Topic, topic)
    }

    /// GROUP_AUTHORIZATION_FAILED unless this client may READ `group`
    /// (Kafka's check of the classic group APIs).
    pub fn refused_on_group(&self, shard: &Shard, group: &str) -> Option<i16> {
        self.refused_group_operation(shard, Operation::Read, group)
    }

    /// GROUP_AUTHORIZATION_FAILED unless this client may do `operation` on
    /// `group`.
    pub fn refused_group_operation(&self, shard: &Shard, operation: Operation, group: &str) -> Option<i16> {
        let refused = !self.may(shard, operation, ResourceType::Group, group);
        refused.then(|| ResponseError::GroupAuthorizationFailed.code())
    }

    /// TOPIC_AUTHORIZATION_FAILED unless this client may do `operation` on
    /// `topic` (the per-partition answer of ListOffsets, DeleteRecords, ...).
    pub fn refused_topic_operation(&self, shard: &Shard, operation: Operation, topic: &str) -> Option<i16> {
        let refused = !self.may_on_topic(shard, operation, topic);
        refused.then(|| ResponseError::TopicAuthorizationFailed.code())
    }

    /// The topics of `names` this client may not do `operation` on.
    pub fn refused_topics<'a>(
        &self,
        shard: &Shard,
        operation: Operation,
        names: impl IntoIterator<Item = &'a str>,
    ) -> HashSet<String> {
        names.into_iter().filter(|name| !self.may_on_topic(shard, operation, name)).map(str::to_string).collect()
    }

    /// TRANSACTIONAL_ID_AUTHORIZATION_FAILED unless this client may WRITE
    /// `transactional_id` (Kafka's check of the transaction APIs).
    pub fn refused_transaction(&self, shard: &Shard, transactional_id: &str) -> Option<i16> {
        let refused = !self.may(shard, Operation::Write, ResourceType::TransactionalId, transactional_id);
        refused.then(|| ResponseError::TransactionalIdAuthorizationFailed.code())
    }

    /// Kafka's check of the config APIs: `operation` (DESCRIBE_CONFIGS or
    /// ALTER_CONFIGS) on the topic, the group, or the cluster for a broker's
    /// configs (`resource_type` as those APIs code it); the error if
    /// refused. A type they do not serve is theirs to refuse.
    pub fn refused_configs(
        &self,
        shard: &Shard,
        operation: Operation,
        resource_type: i8,
        name: &str,
    ) -> Option<ResponseError> {
        let (resource, name, refused) = match resource_type {
            RESOURCE_TOPIC => (ResourceType::Topic, name, ResponseError::TopicAuthorizationFailed),
            RESOURCE_GROUP => (ResourceType::Group, name, ResponseError::GroupAuthorizationFailed),
            RESOURCE_BROKER => (ResourceType::Cluster, CLUSTER_NAME, ResponseError::ClusterAuthorizationFailed),
            _ => return None,
        };
        (!self.may(shard, operation, resource, name)).then_some(refused)
    }

    /// The transaction APIs' checks that name a group (AddOffsetsToTxn,
    /// TxnOffsetCommit): WRITE on the transactional id, then READ on the
    /// group; the code of the first refused.
    pub fn refused_transaction_or_group(&self, shard: &Shard, transactional_id: &str, group: &str) -> Option<i16> {
        self.refused_transaction(shard, transactional_id).or_else(|| self.refused_on_group(shard, group))
    }

    pub fn may_on_cluster(&self, shard: &Shard, operation: Operation) -> bool {
        self.may(shard, operation, ResourceType::Cluster, CLUSTER_NAME)
    }

    /// IDEMPOTENT_WRITE on the cluster, or WRITE on some topic (Kafka 3+'s
    /// check of an idempotent producer's InitProducerId).
    pub fn may_write_idempotently(&self, shard: &Shard) -> bool {
        let config = shard.config();
        if !config.acl_enabled || config.is_super_user(&self.requester.principal) {
            return true;
        }
        let acls = &shard.metadata().acls;
        self.may_on_cluster(shard, Operation::IdempotentWrite)
            || acl::authorize_any(acls, &self.requester, Operation::Write, ResourceType::Topic)
    }

    /// The operations this client may do on the resource, as the bit field
    /// Kafka reports when asked (`include_*_authorized_operations`; bit n is
    /// the operation with code n).
    pub fn authorized_operations(&self, shard: &Shard, resource_type: ResourceType, name: &str) -> i32 {
        (resource_type.operations().iter())
            .filter(|op| self.may(shard, **op, resource_type, name))
            .fold(0, |field, op| field | 1 << *op as i32)
    }
}

/// A request's partition codes in order, each partition given by its topic
/// (the offset APIs, which check each topic): TOPIC_AUTHORIZATION_FAILED
/// for those of `refused` topics, else the next of `results` (the answers
/// of the partitions asked for).
pub fn codes_with_refused<'a>(
    partitions: impl Iterator<Item = &'a str>,
    refused: &HashSet<String>,
    mut results: impl Iterator<Item = i16>,
) -> Vec<i16> {
    let refusal = ResponseError::TopicAuthorizationFailed.code();
    partitions.map(|topic| if refused.contains(topic) { refusal } else { results.next().unwrap_or(0) }).collect()
}
