//! ConsumerGroupDescribe (KIP-848): a consumer-protocol group's epochs,
//! assignor and members with their current and target assignments. With
//! ACLs a group needs DESCRIBE (else GROUP_AUTHORIZATION_FAILED).

use super::{str_bytes, ClientInfo};
use crate::errors::group_error_code;
use kafka_protocol::messages::consumer_group_describe_response::{Assignment, DescribedGroup, Member, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, GroupId, TopicName};
use uuid::Uuid;
use weir_shards::metadata::acl::Operation;
use weir_shards::Shard;

/// The member types of v1: 0 a member of the classic protocol, 1 of the consumer protocol.
const CLASSIC_MEMBER_TYPE: i8 = 0;
const CONSUMER_MEMBER_TYPE: i8 = 1;

fn assignment(partitions: Vec<(Uuid, String, Vec<i32>)>) -> Assignment {
    Assignment::default().with_topic_partitions(
        partitions
            .into_iter()
            .map(|(id, name, parts)| {
                TopicPartitions::default()
                    .with_topic_id(id)
                    .with_topic_name(TopicName(str_bytes(name)))
                    .with_partitions(parts)
            })
            .collect(),
    )
}

pub async fn handle(
    shard: &Shard,
    client: &ClientInfo,
    version: i16,
    request: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let mut groups = Vec::new();
    for group_id in request.group_ids {
        if let Some(code) = client.refused_group_operation(shard, Operation::Describe, &group_id.0) {
            groups.push(DescribedGroup::default().with_group_id(group_id).with_error_code(code));
            continue;
        }
        let described = shard.consumer_group_describe(&group_id.0).await;
        let described = match described {
            Ok(d) => d,
            Err(e) => {
                let message = format!("Group {} not found.", &*group_id.0);
                groups.push(
                    DescribedGroup::default()
                        .with_group_id(GroupId(group_id.0))
                        .with_error_code(group_error_code(Some(e)))
                        .with_error_message(Some(str_bytes(message))),
                );
                continue;
            }
        };
        let members = described
            .members
            .into_iter()
            .map(|m| {
                let member_type = if m.classic { CLASSIC_MEMBER_TYPE } else { CONSUMER_MEMBER_TYPE };
                let member = Member::default()
                    .with_member_id(str_bytes(m.member_id))
                    .with_instance_id(m.instance_id.map(str_bytes))
                    .with_rack_id(m.rack_id.map(str_bytes))
                    .with_member_epoch(m.member_epoch)
                    .with_client_id(str_bytes(m.client_id))
                    .with_client_host(str_bytes(m.client_host))
                    .with_subscribed_topic_names(
                        m.subscribed_topic_names.into_iter().map(|n| TopicName(str_bytes(n))).collect(),
                    )
                    .with_subscribed_topic_regex(m.subscribed_topic_regex.map(str_bytes))
                    .with_assignment(assignment(m.assignment))
                    .with_target_assignment(assignment(m.target_assignment));
                if version >= 1 {
                    member.with_member_type(member_type)
                } else {
                    member
                }
            })
            .collect();
        groups.push(
            DescribedGroup::default()
                .with_group_id(GroupId(group_id.0))
                .with_group_state(str_bytes(described.state.name()))
                .with_group_epoch(described.epoch)
                .with_assignment_epoch(described.assignment_epoch)
                .with_assignor_name(str_bytes(described.assignor))
                .with_members(members)
                .with_authorized_operations(i32::MIN),
        );
    }
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
