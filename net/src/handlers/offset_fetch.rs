//! OffsetFetch: committed offsets of one group (v1-7) or several (v8+); v9+
//! names the consumer-protocol member asking, checked against its epoch.
//! With ACLs a group needs DESCRIBE (else GROUP_AUTHORIZATION_FAILED) and
//! a topic DESCRIBE: a topic named without it is TOPIC_AUTHORIZATION_FAILED
//! on each partition; a fetch of all topics leaves it out, as Kafka.

use super::{str_bytes, ClientInfo};
use crate::errors::group_error_code;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};
use std::collections::BTreeMap;
use weir_shards::groups::CommittedOffset;
use weir_shards::messages::OffsetQuery;
use weir_shards::metadata::acl::Operation;
use weir_shards::Shard;

const MULTI_GROUP_VERSION: i16 = 8;
/// The first version with require_stable (KIP-447).
const REQUIRE_STABLE_VERSION: i16 = 7;

/// Committed offsets by topic, then partition; `None` where nothing is
/// committed; an error code where the partition has none to give.
type Committed = BTreeMap<String, Vec<(i32, Result<Option<CommittedOffset>, i16>)>>;

/// The group's committed offsets, or the group's error code.
async fn fetch(
    shard: &Shard,
    client: &ClientInfo,
    group_id: &str,
    wanted: Option<Vec<(String, i32)>>,
    require_stable: bool,
    member: Option<(String, i32)>,
) -> Result<Committed, i16> {
    if let Some(code) = client.refused_group_operation(shard, Operation::Describe, group_id) {
        return Err(code);
    }
    let describable = |topic: &str| client.may_on_topic(shard, Operation::Describe, topic);
    let (refused, partitions): (Vec<_>, Option<Vec<_>>) = match wanted {
        Some(wanted) => {
            let (asked, refused): (Vec<_>, Vec<_>) = wanted.into_iter().partition(|(topic, _)| describable(topic));
            (refused, Some(asked))
        }
        None => (Vec::new(), None),
    };
    let all_topics = partitions.is_none();
    let offsets = shard.offset_fetch(group_id, OffsetQuery { partitions, require_stable, member }).await;
    let mut by_topic: Committed = BTreeMap::new();
    for ((topic, partition), committed) in offsets.map_err(|e| group_error_code(Some(e)))? {
        if all_topics && !describable(&topic) {
            continue;
        }
        let committed = committed.map_err(|e| group_error_code(Some(e)));
        by_topic.entry(topic).or_default().push((partition, committed));
    }
    for (topic, partition) in refused {
        by_topic.entry(topic).or_default().push((partition, Err(ResponseError::TopicAuthorizationFailed.code())));
    }
    Ok(by_topic)
}

/// (offset, leader epoch, metadata, error code) of one partition.
fn offset_fields(committed: &Result<Option<CommittedOffset>, i16>) -> (i64, i32, String, i16) {
    match committed {
        Ok(Some(c)) => (c.offset, c.leader_epoch, c.metadata.clone().unwrap_or_default(), 0),
        Ok(None) => (-1, -1, String::new(), 0),
        Err(code) => (-1, -1, String::new(), *code),
    }
}

/// The answer's topics, one a topic of `committed`: `partition` answers each
/// partition from its index and [`offset_fields`], `topic` each topic.
fn answer<RP, RT>(
    committed: Committed,
    partition: impl Fn(i32, (i64, i32, String, i16)) -> RP,
    topic: impl Fn(TopicName, Vec<RP>) -> RT,
) -> Vec<RT> {
    committed
        .into_iter()
        .map(|(name, partitions)| {
            let answers = partitions.iter().map(|(p, c)| partition(*p, offset_fields(c))).collect();
            topic(TopicName(str_bytes(name)), answers)
        })
        .collect()
}

pub async fn handle(
    shard: &Shard,
    client: &ClientInfo,
    version: i16,
    request: OffsetFetchRequest,
) -> OffsetFetchResponse {
    if version >= MULTI_GROUP_VERSION {
        let mut groups = Vec::new();
        for group in request.groups {
            let wanted = group.topics.map(|topics| {
                topics.iter().flat_map(|t| t.partition_indexes.iter().map(|&p| (t.name.0.to_string(), p))).collect()
            });
            // v9+: a member of a consumer-protocol group names itself and its epoch.
            let member = group.member_id.map(|id| (id.to_string(), group.member_epoch));
            let fetched = fetch(shard, client, &group.group_id.0, wanted, request.require_stable, member).await;
            let (committed, code) = match fetched {
                Ok(committed) => (committed, 0),
                Err(code) => (Committed::new(), code),
            };
            let topics = answer(
                committed,
                |p, (offset, epoch, metadata, code)| {
                    OffsetFetchResponsePartitions::default()
                        .with_partition_index(p)
                        .with_error_code(code)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(epoch)
                        .with_metadata(Some(str_bytes(metadata)))
                },
                |name, partitions| OffsetFetchResponseTopics::default().with_name(name).with_partitions(partitions),
            );
            groups.push(
                OffsetFetchResponseGroup::default()
                    .with_group_id(GroupId(group.group_id.0))
                    .with_error_code(code)
                    .with_topics(topics),
            );
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = request.topics.map(|topics| {
        topics.iter().flat_map(|t| t.partition_indexes.iter().map(|&p| (t.name.0.to_string(), p))).collect()
    });
    let require_stable = version >= REQUIRE_STABLE_VERSION && request.require_stable;
    let (committed, code) = match fetch(shard, client, &request.group_id.0, wanted, require_stable, None).await {
        Ok(committed) => (committed, 0),
        // v1 has no top-level error: it reads as a group without offsets.
        Err(code) => (Committed::new(), code),
    };
    let topics = answer(
        committed,
        |p, (offset, epoch, metadata, code)| {
            let partition = OffsetFetchResponsePartition::default()
                .with_partition_index(p)
                .with_error_code(code)
                .with_committed_offset(offset)
                .with_metadata(Some(str_bytes(metadata)));
            if version >= 5 {
                partition.with_committed_leader_epoch(epoch)
            } else {
                partition
            }
        },
        |name, partitions| OffsetFetchResponseTopic::default().with_name(name).with_partitions(partitions),
    );
    let response = OffsetFetchResponse::default().with_topics(topics);
    if version >= 2 {
        response.with_error_code(code)
    } else {
        response
    }
}
