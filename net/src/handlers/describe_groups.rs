//! DescribeGroups: state, protocol and members (with assignments) of groups.
//! With ACLs a group needs DESCRIBE (else GROUP_AUTHORIZATION_FAILED); the
//! operations the client may do on it are reported when asked.

use super::{str_bytes, ClientInfo};
use crate::errors::group_error_code;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse, GroupId};
use weir_shards::metadata::acl::{Operation, ResourceType};
use weir_shards::Shard;

pub async fn handle(
    shard: &Shard,
    client: &ClientInfo,
    version: i16,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let mut groups = Vec::new();
    for group_id in request.groups {
        if let Some(code) = client.refused_group_operation(shard, Operation::Describe, &group_id.0) {
            groups.push(DescribedGroup::default().with_group_id(group_id).with_error_code(code));
            continue;
        }
        let described = shard.describe_group(&group_id.0).await;
        let members = described
            .members
            .into_iter()
            .map(|m| {
                let member = DescribedGroupMember::default()
                    .with_member_id(str_bytes(m.member_id))
                    .with_client_id(str_bytes(m.client_id))
                    .with_client_host(str_bytes(m.client_host))
                    .with_member_metadata(m.metadata)
                    .with_member_assignment(m.assignment);
                if version >= 4 {
                    member.with_group_instance_id(m.instance_id.map(str_bytes))
                } else {
                    member
                }
            })
            .collect();
        if let Some(e) = described.error {
            // A consumer-protocol group is not described here (ConsumerGroupDescribe is), as Kafka.
            let message = (version >= 6).then(|| str_bytes(format!("Group {} is not a classic group.", &*group_id.0)));
            groups.push(
                DescribedGroup::default()
                    .with_group_id(GroupId(group_id.0))
                    .with_error_code(group_error_code(Some(e)))
                    .with_error_message(message)
                    .with_group_state(str_bytes("Dead")),
            );
            continue;
        }
        let described = DescribedGroup::default()
            .with_group_state(str_bytes(described.state.name()))
            .with_protocol_type(str_bytes(described.protocol_type))
            .with_protocol_data(str_bytes(described.protocol))
            .with_members(members);
        // v3+ (KIP-430): what the client may do on the group, when asked.
        let described = if request.include_authorized_operations {
            described.with_authorized_operations(client.authorized_operations(shard, ResourceType::Group, &group_id.0))
        } else {
            described
        };
        groups.push(described.with_group_id(GroupId(group_id.0)));
    }
    DescribeGroupsResponse::default().with_groups(groups)
}
