//! OffsetFetch: committed offsets of one group (v1-7) or several (v8+); v9+
//! names the consumer-protocol member asking, checked against its epoch.

use super::str_bytes;
use crate::errors::group_error_code;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};
use std::collections::BTreeMap;
use weir_shards::groups::CommittedOffset;
use weir_shards::messages::{GroupResult, OffsetQuery};
use weir_shards::Shard;

const MULTI_GROUP_VERSION: i16 = 8;
/// The first version with require_stable (KIP-447).
const REQUIRE_STABLE_VERSION: i16 = 7;

/// Committed offsets by topic, then partition; `None` where nothing is committed.
type Committed = BTreeMap<String, Vec<(i32, GroupResult<Option<CommittedOffset>>)>>;

async fn fetch(
    shard: &Shard,
    group_id: &str,
    wanted: Option<Vec<(String, i32)>>,
    require_stable: bool,
    member: Option<(String, i32)>,
) -> GroupResult<Committed> {
    let offsets = shard.offset_fetch(group_id, OffsetQuery { partitions: wanted, require_stable, member }).await;
    let mut by_topic: Committed = BTreeMap::new();
    for ((topic, partition), committed) in offsets? {
        by_topic.entry(topic).or_default().push((partition, committed));
    }
    Ok(by_topic)
}

/// (offset, leader epoch, metadata, error code) of one partition.
fn offset_fields(committed: &GroupResult<Option<CommittedOffset>>) -> (i64, i32, String, i16) {
    match committed {
        Ok(Some(c)) => (c.offset, c.leader_epoch, c.metadata.clone().unwrap_or_default(), 0),
        Ok(None) => (-1, -1, String::new(), 0),
        Err(e) => (-1, -1, String::new(), group_error_code(Some(*e))),
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

pub async fn handle(shard: &Shard, version: i16, request: OffsetFetchRequest) -> OffsetFetchResponse {
    if version >= MULTI_GROUP_VERSION {
        let mut groups = Vec::new();
        for group in request.groups {
            let wanted = group.topics.map(|topics| {
                topics.iter().flat_map(|t| t.partition_indexes.iter().map(|&p| (t.name.0.to_string(), p))).collect()
            });
            // v9+: a member of a consumer-protocol group names itself and its epoch.
            let member = group.member_id.map(|id| (id.to_string(), group.member_epoch));
            let (committed, code) = match fetch(shard, &group.group_id.0, wanted, request.require_stable, member).await
            {
                Ok(committed) => (committed, 0),
                Err(e) => (Committed::new(), group_error_code(Some(e))),
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
    let committed = fetch(shard, &request.group_id.0, wanted, require_stable, None).await.unwrap_or_default();
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
    OffsetFetchResponse::default().with_topics(topics)
}
