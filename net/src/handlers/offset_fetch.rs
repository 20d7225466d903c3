//! OffsetFetch: committed offsets of one group (v1-7) or several (v8).

use super::str_bytes;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};
use std::collections::BTreeMap;
use weir_shards::groups::CommittedOffset;
use weir_shards::messages::{GroupOp, GroupReply};
use weir_shards::Shard;

const MULTI_GROUP_VERSION: i16 = 8;

/// Committed offsets by topic, then partition; `None` where nothing is committed.
type Committed = BTreeMap<String, Vec<(i32, Option<CommittedOffset>)>>;

async fn fetch(shard: &Shard, group_id: &str, wanted: Option<Vec<(String, i32)>>) -> Committed {
    let GroupReply::Offsets(offsets) = shard.group_op(group_id, GroupOp::FetchOffsets(wanted)).await else {
        unreachable!("OffsetFetch answered with another reply");
    };
    let mut by_topic: Committed = BTreeMap::new();
    for ((topic, partition), committed) in offsets {
        by_topic.entry(topic).or_default().push((partition, committed));
    }
    by_topic
}

fn offset_fields(committed: &Option<CommittedOffset>) -> (i64, i32, String) {
    match committed {
        Some(c) => (c.offset, c.leader_epoch, c.metadata.clone().unwrap_or_default()),
        None => (-1, -1, String::new()),
    }
}

pub async fn handle(shard: &Shard, version: i16, request: OffsetFetchRequest) -> OffsetFetchResponse {
    if version >= MULTI_GROUP_VERSION {
        let mut groups = Vec::new();
        for group in request.groups {
            let wanted = group.topics.map(|topics| {
                topics.iter().flat_map(|t| t.partition_indexes.iter().map(|&p| (t.name.0.to_string(), p))).collect()
            });
            let committed = fetch(shard, &group.group_id.0, wanted).await;
            let topics = committed
                .into_iter()
                .map(|(topic, partitions)| {
                    let partitions = partitions
                        .iter()
                        .map(|(p, c)| {
                            let (offset, epoch, metadata) = offset_fields(c);
                            OffsetFetchResponsePartitions::default()
                                .with_partition_index(*p)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(epoch)
                                .with_metadata(Some(str_bytes(metadata)))
                        })
                        .collect();
                    OffsetFetchResponseTopics::default()
                        .with_name(TopicName(str_bytes(topic)))
                        .with_partitions(partitions)
                })
                .collect();
            groups
                .push(OffsetFetchResponseGroup::default().with_group_id(GroupId(group.group_id.0)).with_topics(topics));
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = request.topics.map(|topics| {
        topics.iter().flat_map(|t| t.partition_indexes.iter().map(|&p| (t.name.0.to_string(), p))).collect()
    });
    let committed = fetch(shard, &request.group_id.0, wanted).await;
    let topics = committed
        .into_iter()
        .map(|(topic, partitions)| {
            let partitions = partitions
                .iter()
                .map(|(p, c)| {
                    let (offset, epoch, metadata) = offset_fields(c);
                    let partition = OffsetFetchResponsePartition::default()
                        .with_partition_index(*p)
                        .with_committed_offset(offset)
                        .with_metadata(Some(str_bytes(metadata)));
                    if version >= 5 {
                        partition.with_committed_leader_epoch(epoch)
                    } else {
                        partition
                    }
                })
                .collect();
            OffsetFetchResponseTopic::default().with_name(TopicName(str_bytes(topic))).with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}
