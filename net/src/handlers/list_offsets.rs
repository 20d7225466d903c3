//! ListOffsets: the earliest (-2) and latest (-1) offsets of partitions, the
//! record with the largest timestamp (-3, v7+), or the first offset whose
//! record timestamp is at least the given one (what offsetsForTimes uses).
//! Without tiered storage, as Kafka has it then: the earliest local offset
//! (-4, v8+) is the earliest offset, and the latest tiered offset (-5, v9+)
//! is -1 with no leader epoch. v10's timeout_ms bounds remote reads: none here.
//! A timestamp lookup answers only offsets below the high watermark (the
//! last stable offset for read_committed; v0-1, without an isolation level,
//! anything in the log), as Kafka: a record not yet replicated may be lost.
//! A leader new in its epoch answers the latest offset, and a timestamp
//! lookup with nothing below its high watermark, OFFSET_NOT_AVAILABLE
//! (retriable) until its high watermark reaches the epoch's start (KIP-207,
//! to clients that send an isolation level, v2+ as in Kafka): before, it
//! may be below an offset the old leader already gave out.
//! With ACLs a topic needs DESCRIBE (else TOPIC_AUTHORIZATION_FAILED).

use super::ClientInfo;
use crate::errors::partition_error_code;
use futures::future::join_all;
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use weir_shards::metadata::acl::Operation;
use weir_shards::{PartitionError, PartitionOffsets, Shard};

const LATEST_TIMESTAMP: i64 = -1;
const EARLIEST_TIMESTAMP: i64 = -2;
const EARLIEST_LOCAL_TIMESTAMP: i64 = -4;
const LATEST_TIERED_TIMESTAMP: i64 = -5;
const READ_COMMITTED: i8 = 1;
/// The first version with an isolation level, to which KIP-207 applies.
const KIP_207_VERSION: i16 = 2;

pub async fn handle(
    shard: &Shard,
    client: &ClientInfo,
    version: i16,
    request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let read_committed = request.isolation_level == READ_COMMITTED;
    let topics = join_all(request.topics.into_iter().map(|topic| async move {
        let refused = client.refused_topic_operation(shard, Operation::Describe, &topic.name.0);
        let partitions = join_all(topic.partitions.iter().map(|p| {
            let name = &topic.name.0;
            async move {
                let mut response = ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
                if let Some(code) = refused {
                    return response.with_error_code(code).with_offset(-1);
                }
                // KIP-320: the client's view of the leader epoch (v4+, -1: none).
                let leader_epoch = shard.metadata().partition(name, p.partition_index).map(|s| s.leader_epoch);
                if let Some(code) =
                    leader_epoch.and_then(|epoch| super::current_leader_epoch_error(p.current_leader_epoch, epoch))
                {
                    return response.with_error_code(code).with_offset(-1);
                }
                match lookup(shard, name, p.partition_index, p.timestamp, (read_committed, version)).await {
                    Ok((offset, timestamp)) => {
                        response.offset = offset;
                        response.timestamp = timestamp;
                        // -1 where no offset is found, as Kafka's absent epoch.
                        // (Kafka gives the epoch of the batch holding the
                        // offset; the same while leadership never moves.)
                        if version >= 4 && offset >= 0 {
                            response.leader_epoch = super::leader_of(shard, name, p.partition_index).1;
                        }
                    }
                    Err(e) => {
                        response.error_code = partition_error_code(&e);
                        response.offset = -1;
                    }
                }
                response
            }
        }))
        .await;
        ListOffsetsTopicResponse::default().with_name(topic.name.clone()).with_partitions(partitions)
    }))
    .await;
    ListOffsetsResponse::default().with_topics(topics)
}

/// (offset, timestamp) for one partition; (-1, -1) when no record matches.
async fn lookup(
    shard: &Shard,
    topic: &str,
    partition: i32,
    timestamp: i64,
    (read_committed, version): (bool, i16),
) -> Result<(i64, i64), PartitionError> {
    match timestamp {
        EARLIEST_TIMESTAMP | EARLIEST_LOCAL_TIMESTAMP => {
            Ok((shard.offsets(topic, partition).await?.log_start_offset, -1))
        }
        LATEST_TIERED_TIMESTAMP => shard.offsets(topic, partition).await.map(|_| (-1, -1)),
        LATEST_TIMESTAMP => {
            let offsets = shard.offsets(topic, partition).await?;
            Ok((latest(&offsets, read_committed, version)?, -1))
        }
        // MAX_TIMESTAMP (-3) and real timestamps: the time index.
        _ => {
            let (found, offsets) = shard.offset_for_timestamp(topic, partition, timestamp).await?;
            by_timestamp(found, &offsets, read_committed, version)
        }
    }
}

/// The latest offset: the high watermark, read_committed's the last stable
/// offset.
fn latest(offsets: &PartitionOffsets, read_committed: bool, version: i16) -> Result<i64, PartitionError> {
    if lagging(offsets, version) {
        return Err(PartitionError::OffsetNotAvailable);
    }
    Ok(if read_committed { offsets.last_stable_offset } else { offsets.high_watermark })
}

/// A timestamp lookup's answer, if below what the client may read; else
/// none, or KIP-207's refusal from a leader still catching up.
fn by_timestamp(
    found: Option<(i64, i64)>,
    offsets: &PartitionOffsets,
    read_committed: bool,
    version: i16,
) -> Result<(i64, i64), PartitionError> {
    let readable = |offset| {
        version < KIP_207_VERSION
            || offset < if read_committed { offsets.last_stable_offset } else { offsets.high_watermark }
    };
    match found {
        Some((offset, timestamp)) if readable(offset) => Ok((offset, timestamp)),
        _ if lagging(offsets, version) => Err(PartitionError::OffsetNotAvailable),
        _ => Ok((-1, -1)),
    }
}

/// KIP-207: this leader's high watermark is below its epoch's start.
fn lagging(offsets: &PartitionOffsets, version: i16) -> bool {
    version >= KIP_207_VERSION && offsets.epoch_start_offset.is_some_and(|start| start > offsets.high_watermark)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_leader_gives_no_latest_offset_until_its_high_watermark_reaches_its_epoch_start() {
        let offsets = |high_watermark, epoch_start_offset| PartitionOffsets {
            log_start_offset: 0,
            high_watermark,
            last_stable_offset: high_watermark - 1,
            epoch_start_offset,
        };
        let unavailable = |result| matches!(result, Err(PartitionError::OffsetNotAvailable));
        assert!(unavailable(latest(&offsets(7, Some(9)), false, 2)));
        assert!(unavailable(latest(&offsets(7, Some(9)), true, 11)));
        assert_eq!(latest(&offsets(7, Some(9)), false, 1).ok(), Some(7), "v0-1 clients are answered as before KIP-207");
        assert_eq!(latest(&offsets(9, Some(9)), false, 2).ok(), Some(9));
        assert_eq!(latest(&offsets(9, Some(9)), true, 2).ok(), Some(8));
        assert_eq!(latest(&offsets(7, None), false, 2).ok(), Some(7), "not the leader's view");
    }

    #[test]
    fn a_timestamp_lookup_answers_only_offsets_below_the_high_watermark() {
        let offsets = |high_watermark, epoch_start_offset| PartitionOffsets {
            log_start_offset: 0,
            high_watermark,
            last_stable_offset: 5,
            epoch_start_offset,
        };
        let caught_up = offsets(7, Some(7));
        assert_eq!(by_timestamp(Some((6, 60)), &caught_up, false, 2).ok(), Some((6, 60)));
        assert_eq!(by_timestamp(Some((7, 70)), &caught_up, false, 2).ok(), Some((-1, -1)), "not replicated yet");
        assert_eq!(by_timestamp(Some((5, 50)), &caught_up, true, 2).ok(), Some((-1, -1)), "not stable yet");
        assert_eq!(by_timestamp(Some((7, 70)), &caught_up, false, 1).ok(), Some((7, 70)), "v0-1 as Kafka: the log end");
        assert_eq!(by_timestamp(None, &caught_up, false, 2).ok(), Some((-1, -1)));
        let lagging = offsets(7, Some(9));
        assert_eq!(by_timestamp(Some((6, 60)), &lagging, false, 2).ok(), Some((6, 60)), "below the high watermark");
        assert!(matches!(by_timestamp(Some((8, 80)), &lagging, false, 2), Err(PartitionError::OffsetNotAvailable)));
        assert!(matches!(by_timestamp(None, &lagging, false, 2), Err(PartitionError::OffsetNotAvailable)));
    }
}
