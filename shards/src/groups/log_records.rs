//! The records of `__consumer_offsets`, in Kafka's own key/value schemas:
//! offset commit key v1 / value v3, group metadata key v2 / value v3 (with no
//! members: after a restart members rejoin), and for groups of the consumer
//! protocol (KIP-848) Kafka's ConsumerGroupMetadata record (key v3 / value v0:
//! the group epoch; members, their assignments and the target assignment are
//! not persisted, members rejoin). A null value is a tombstone.

use super::coordinator::GroupMetadata;
use super::CommittedOffset;
use crate::transactions::markers::control_commits;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::records::RecordBatchDecoder;
use weir_engine::records::RecordsBuilder;

const OFFSET_KEY_VERSION: i16 = 1;
const OFFSET_VALUE_VERSION: i16 = 3;
const GROUP_KEY_VERSION: i16 = 2;
const GROUP_VALUE_VERSION: i16 = 3;
const CONSUMER_GROUP_KEY_VERSION: i16 = 3;
const CONSUMER_GROUP_VALUE_VERSION: i16 = 0;

/// One decoded record of `__consumer_offsets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetsRecord {
    Commit {
        group_id: String,
        topic: String,
        partition: i32,
        offset: Option<CommittedOffset>,
    },
    Group {
        group_id: String,
        metadata: Option<GroupMetadata>,
    },
    /// A consumer-protocol group and its epoch.
    ConsumerGroup {
        group_id: String,
        epoch: Option<i32>,
    },
}

fn put_string(buf: &mut BytesMut, s: &str) {
    buf.put_i16(s.len() as i16);
    buf.put_slice(s.as_bytes());
}

fn put_nullable_string(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_string(buf, s),
        None => buf.put_i16(-1),
    }
}

fn get_nullable_string(buf: &mut Bytes) -> Option<Option<String>> {
    if buf.remaining() < 2 {
        return None;
    }
    let len = buf.get_i16();
    if len < 0 {
        return Some(None);
    }
    if buf.remaining() < len as usize {
        return None;
    }
    Some(Some(String::from_utf8_lossy(&buf.split_to(len as usize)).into_owned()))
}

fn get_string(buf: &mut Bytes) -> Option<String> {
    get_nullable_string(buf)?
}

impl OffsetsRecord {
    fn key(&self) -> Bytes {
        let mut key = BytesMut::new();
        match self {
            OffsetsRecord::Commit { group_id, topic, partition, .. } => {
                key.put_i16(OFFSET_KEY_VERSION);
                put_string(&mut key, group_id);
                put_string(&mut key, topic);
                key.put_i32(*partition);
            }
            OffsetsRecord::Group { group_id, .. } => {
                key.put_i16(GROUP_KEY_VERSION);
                put_string(&mut key, group_id);
            }
            OffsetsRecord::ConsumerGroup { group_id, .. } => {
                key.put_i16(CONSUMER_GROUP_KEY_VERSION);
                put_string(&mut key, group_id);
            }
        }
        key.freeze()
    }

    fn value(&self) -> Option<Bytes> {
        let mut value = BytesMut::new();
        match self {
            OffsetsRecord::Commit { offset: Some(o), .. } => {
                value.put_i16(OFFSET_VALUE_VERSION);
                value.put_i64(o.offset);
                value.put_i32(o.leader_epoch);
                put_string(&mut value, o.metadata.as_deref().unwrap_or(""));
                value.put_i64(o.commit_timestamp_ms);
            }
            OffsetsRecord::Group { metadata: Some(m), .. } => {
                value.put_i16(GROUP_VALUE_VERSION);
                put_string(&mut value, &m.protocol_type);
                value.put_i32(m.generation);
                put_nullable_string(&mut value, m.protocol.as_deref());
                put_nullable_string(&mut value, m.leader.as_deref());
                value.put_i64(0); // current_state_timestamp
                value.put_i32(0); // members: not persisted
            }
            OffsetsRecord::ConsumerGroup { epoch: Some(epoch), .. } => {
                value.put_i16(CONSUMER_GROUP_VALUE_VERSION);
                value.put_i32(*epoch);
                value.put_u8(0); // no tagged fields (the value schema is flexible)
            }
            OffsetsRecord::Commit { offset: None, .. }
            | OffsetsRecord::Group { metadata: None, .. }
            | OffsetsRecord::ConsumerGroup { epoch: None, .. } => return None,
        }
        Some(value.freeze())
    }

    /// Decodes a key and value; `None` for a record of a schema we do not know.
    pub fn decode(mut key: Bytes, value: Option<Bytes>) -> Option<OffsetsRecord> {
        if key.remaining() < 2 {
            return None;
        }
        match key.get_i16() {
            0 | 1 => {
                let group_id = get_string(&mut key)?;
                let topic = get_string(&mut key)?;
                if key.remaining() < 4 {
                    return None;
                }
                let partition = key.get_i32();
                let offset = match value {
                    None => None,
                    Some(v) => Some(decode_offset_value(v)?),
                };
                Some(OffsetsRecord::Commit { group_id, topic, partition, offset })
            }
            2 => {
                let group_id = get_string(&mut key)?;
                let metadata = match value {
                    None => None,
                    Some(mut v) => {
                        if v.remaining() < 2 {
                            return None;
                        }
                        let _version = v.get_i16();
                        let protocol_type = get_string(&mut v)?;
                        if v.remaining() < 4 {
                            return None;
                        }
                        let generation = v.get_i32();
                        let protocol = get_nullable_string(&mut v)?;
                        let leader = get_nullable_string(&mut v)?;
                        Some(GroupMetadata { group_id: group_id.clone(), protocol_type, generation, protocol, leader })
                    }
                };
                Some(OffsetsRecord::Group { group_id, metadata })
            }
            CONSUMER_GROUP_KEY_VERSION => {
                let group_id = get_string(&mut key)?;
                let epoch = match value {
                    None => None,
                    Some(mut v) if v.remaining() >= 6 => {
                        let _version = v.get_i16();
                        Some(v.get_i32())
                    }
                    Some(_) => return None,
                };
                Some(OffsetsRecord::ConsumerGroup { group_id, epoch })
            }
            _ => None,
        }
    }
}

/// Offset commit value versions 1 and 3 (what Kafka writes today; v2 adds an
/// expire timestamp after the commit timestamp, which is read past).
fn decode_offset_value(mut v: Bytes) -> Option<CommittedOffset> {
    if v.remaining() < 10 {
        return None;
    }
    let version = v.get_i16();
    let offset = v.get_i64();
    let leader_epoch = if version >= 3 && v.remaining() >= 4 { v.get_i32() } else { -1 };
    let metadata = get_string(&mut v)?;
    let commit_timestamp_ms = if v.remaining() >= 8 { v.get_i64() } else { 0 };
    Some(CommittedOffset {
        offset,
        leader_epoch,
        metadata: Some(metadata).filter(|m| !m.is_empty()),
        commit_timestamp_ms,
    })
}

/// `records` pushed into `batch`, an uncompressed RecordBatch v2 of the
/// broker (of a producer's transaction for TxnOffsetCommit).
pub fn encode_batch(records: &[OffsetsRecord], timestamp_ms: i64, mut batch: RecordsBuilder) -> Bytes {
    for r in records {
        batch.push(Some(&r.key()), r.value().as_deref(), &[], timestamp_ms);
    }
    batch.finish()
}

/// A record of `__consumer_offsets` with how it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetsEntry {
    Record(OffsetsRecord),
    /// Written by TxnOffsetCommit: applies when the producer's transaction commits.
    Transactional {
        producer_id: i64,
        record: OffsetsRecord,
    },
    /// The end of a producer's transaction.
    Marker {
        producer_id: i64,
        commit: bool,
    },
}

/// Every record in `batches` (concatenated RecordBatch v2 as read from the log).
pub fn decode_batches(mut batches: Bytes) -> Result<Vec<OffsetsEntry>, String> {
    let mut out = Vec::new();
    while batches.has_remaining() {
        let set = RecordBatchDecoder::decode(&mut batches).map_err(|e| e.to_string())?;
        for r in set.records {
            let Some(key) = r.key else { continue };
            if r.control {
                if let Some(commit) = control_commits(&key) {
                    out.push(OffsetsEntry::Marker { producer_id: r.producer_id, commit });
                }
                continue;
            }
            let Some(record) = OffsetsRecord::decode(key, r.value) else { continue };
            out.push(if r.transactional {
                OffsetsEntry::Transactional { producer_id: r.producer_id, record }
            } else {
                OffsetsEntry::Record(record)
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_a_batch() {
        let records = vec![
            OffsetsRecord::Commit {
                group_id: "g".into(),
                topic: "t".into(),
                partition: 3,
                offset: Some(CommittedOffset {
                    offset: 99,
                    leader_epoch: 2,
                    metadata: Some("meta".into()),
                    commit_timestamp_ms: 1234,
                }),
            },
            OffsetsRecord::Commit { group_id: "g".into(), topic: "t".into(), partition: 4, offset: None },
            OffsetsRecord::Group {
                group_id: "g".into(),
                metadata: Some(GroupMetadata {
                    group_id: "g".into(),
                    protocol_type: "consumer".into(),
                    generation: 7,
                    protocol: Some("range".into()),
                    leader: None,
                }),
            },
            OffsetsRecord::Group { group_id: "gone".into(), metadata: None },
            OffsetsRecord::ConsumerGroup { group_id: "kip848".into(), epoch: Some(12) },
            OffsetsRecord::ConsumerGroup { group_id: "kip848-gone".into(), epoch: None },
        ];
        let batch = encode_batch(&records, 5, RecordsBuilder::new());
        let header = weir_engine::batch::RawHeader::of(&batch).unwrap();
        assert_eq!(header.total_len(), batch.len(), "one batch for all records");
        let plain: Vec<OffsetsEntry> = records.iter().cloned().map(OffsetsEntry::Record).collect();
        assert_eq!(decode_batches(batch).unwrap(), plain);
        let mut both = BytesMut::from(
            &encode_batch(&records[..1], 5, RecordsBuilder::new().producer(9, 1, -1).transactional())[..],
        );
        both.extend_from_slice(&crate::transactions::markers::marker_batch(9, 1, true, 6));
        assert_eq!(
            decode_batches(both.freeze()).unwrap(),
            vec![
                OffsetsEntry::Transactional { producer_id: 9, record: records[0].clone() },
                OffsetsEntry::Marker { producer_id: 9, commit: true }
            ]
        );
    }
}
