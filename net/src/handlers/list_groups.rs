//! ListGroups: the groups of every shard, optionally filtered by state (v4+)
//! and type (v5+: "classic" or "consumer"). With ACLs only the groups the
//! client may DESCRIBE, or all with DESCRIBE on the cluster, as Kafka.

use super::{str_bytes, ClientInfo};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use weir_shards::metadata::acl::{Operation, ResourceType};
use weir_shards::Shard;

pub async fn handle(
    shard: &Shard,
    client: &ClientInfo,
    version: i16,
    request: ListGroupsRequest,
) -> ListGroupsResponse {
    let every_group = client.may_on_cluster(shard, Operation::Describe);
    let states: Vec<String> = request.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let types: Vec<String> = request.types_filter.iter().map(|s| s.to_lowercase()).collect();
    let mut groups = shard.list_groups().await;
    groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    let groups = groups
        .into_iter()
        .filter(|g| states.is_empty() || states.contains(&g.state.to_lowercase()))
        .filter(|g| types.is_empty() || types.iter().any(|t| t == g.group_type))
        .filter(|g| every_group || client.may(shard, Operation::Describe, ResourceType::Group, &g.group_id))
        .map(|g| {
            let listed = ListedGroup::default()
                .with_group_id(GroupId(str_bytes(g.group_id)))
                .with_protocol_type(str_bytes(g.protocol_type));
            let listed = if version >= 4 { listed.with_group_state(str_bytes(g.state)) } else { listed };
            if version >= 5 {
                listed.with_group_type(str_bytes(g.group_type))
            } else {
                listed
            }
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
