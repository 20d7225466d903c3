//! The authorizer: whether a request's principal may do an operation on a
//! resource, by the ACLs in the metadata (`weir_shards::metadata::acl`),
//! `super_users` and `allow_everyone_if_no_acl_found`. With `acl_enabled`
//! off every request is allowed, as before ACLs.

use super::ClientInfo;
use kafka_protocol::error::ResponseError;
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
        let refused = !self.may(shard, Operation::Read, ResourceType::Group, group);
        refused.then(|| ResponseError::GroupAuthorizationFailed.code())
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
