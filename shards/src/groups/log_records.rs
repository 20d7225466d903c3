//! The records of `__consumer_offsets`, in Kafka's own key/value schemas:
//! offset commit key v1 / value v3, group metadata key v2 / value v3 (with its
//! members, their subscriptions and assignments, as Kafka writes them: a
//! restarted coordinator keeps them until their sessions time out), and for
//! groups of the consumer
//! protocol (KIP-848) Kafka's ConsumerGroupMetadata record (key v3 / value v0:
//! the group epoch; members, their assignments and the target assignment are
//! not persisted, members rejoin). A null value is a tombstone.

use super::coordinator::{GroupMetadata, MemberMetadata};
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

fn put_bytes(buf: &mut BytesMut, b: &[u8]) {
    buf.put_i32(b.len() as i32);
    buf.put_slice(b);
}

/// Bytes (a null reads as empty).
fn get_bytes(buf: &mut Bytes) -> Option<Bytes> {
    if buf.remaining() < 4 {
        return None;
    }
    let len = buf.get_i32();
    if len < 0 {
        return Some(Bytes::new());
    }
    if buf.remaining() < len as usize {
        return None;
    }
    Some(buf.split_to(len as usize))
}

fn get_i32(buf: &mut Bytes) -> Option<i32> {
    (buf.remaining() >= 4).then(|| buf.get_i32())
}

/// One member of GroupMetadataValue v3 (Kafka's MemberMetadata): member_id,
/// group_instance_id (v3+), client_id, client_host, rebalance_timeout (v1+),
/// session_timeout, subscription, assignment.
fn put_member(buf: &mut BytesMut, m: &MemberMetadata) {
    put_string(buf, &m.member_id);
    put_nullable_string(buf, m.instance_id.as_deref());
    put_string(buf, &m.client_id);
    put_string(buf, &m.client_host);
    buf.put_i32(m.rebalance_timeout_ms);
    buf.put_i32(m.session_timeout_ms);
    put_bytes(buf, &m.subscription);
    put_bytes(buf, &m.assignment);
}

/// A member of GroupMetadataValue `version` (0 to 3, the non-flexible ones).
fn get_member(buf: &mut Bytes, version: i16) -> Option<MemberMetadata> {
    let member_id = get_string(buf)?;
    let instance_id = if version >= 3 { get_nullable_string(buf)? } else { None };
    let client_id = get_string(buf)?;
    let client_host = get_string(buf)?;
    let rebalance_timeout_ms = if version >= 1 { get_i32(buf)? } else { -1 };
    let session_timeout_ms = get_i32(buf)?;
    // v0 has no rebalance timeout: the session timeout stands in for it, as in JoinGroup v0.
    let rebalance_timeout_ms = if version >= 1 { rebalance_timeout_ms } else { session_timeout_ms };
    let subscription = get_bytes(buf)?;
    let assignment = get_bytes(buf)?;
    Some(MemberMetadata {
        member_id,
        instance_id,
        client_id,
        client_host,
        rebalance_timeout_ms,
        session_timeout_ms,
        subscription,
        assignment,
    })
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
                value.put_i32(m.members.len() as i32);
                for member in &m.members {
                    put_member(&mut value, member);
                }
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
                        let version = v.get_i16();
                        let protocol_type = get_string(&mut v)?;
                        let generation = get_i32(&mut v)?;
                        let protocol = get_nullable_string(&mut v)?;
                        let leader = get_nullable_string(&mut v)?;
                        let mut members = Vec::new();
                        // v4+ is flexible (compact arrays): its members are not read.
                        if version <= 3 {
                            if version >= 2 {
                                if v.remaining() < 8 {
                                    return None;
                                }
                                let _current_state_timestamp = v.get_i64();
                            }
                            for _ in 0..get_i32(&mut v)?.max(0) {
                                members.push(get_member(&mut v, version)?);
                            }
                        }
                        Some(GroupMetadata {
                            group_id: group_id.clone(),
                            protocol_type,
                            generation,
                            protocol,
                            leader,
                            members,
                        })
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

    fn member(id: &str, instance: Option<&str>) -> MemberMetadata {
        MemberMetadata {
            member_id: id.into(),
            instance_id: instance.map(String::from),
            client_id: format!("client-{id}"),
            client_host: "/10.0.0.1".into(),
            rebalance_timeout_ms: 300_000,
            session_timeout_ms: 45_000,
            subscription: Bytes::from(format!("subscription-{id}")),
            assignment: Bytes::from(format!("assignment-{id}")),
        }
    }

    /// The value laid out by hand after Kafka's GroupMetadataValue.json (v3).
    #[test]
    fn group_metadata_value_v3_lays_out_members_as_kafka() {
        let record = OffsetsRecord::Group {
            group_id: "g".into(),
            metadata: Some(GroupMetadata {
                group_id: "g".into(),
                protocol_type: "consumer".into(),
                generation: 5,
                protocol: Some("range".into()),
                leader: Some("m".into()),
                members: vec![MemberMetadata {
                    member_id: "m".into(),
                    instance_id: None,
                    client_id: "c".into(),
                    client_host: "/h".into(),
                    rebalance_timeout_ms: 7,
                    session_timeout_ms: 6,
                    subscription: Bytes::from_static(b"S"),
                    assignment: Bytes::from_static(b"AA"),
                }],
            }),
        };
        let mut want = BytesMut::new();
        want.put_i16(3);
        put_string(&mut want, "consumer");
        want.put_i32(5); // generation
        put_string(&mut want, "range"); // protocol
        put_string(&mut want, "m"); // leader
        want.put_i64(0); // current_state_timestamp
        want.put_i32(1); // members
        put_string(&mut want, "m"); // member_id
        want.put_i16(-1); // group_instance_id: null
        put_string(&mut want, "c"); // client_id
        put_string(&mut want, "/h"); // client_host
        want.put_i32(7); // rebalance_timeout
        want.put_i32(6); // session_timeout
        want.put_i32(1); // subscription
        want.put_u8(b'S');
        want.put_i32(2); // assignment
        want.put_slice(b"AA");
        assert_eq!(record.value().unwrap(), want.freeze());
        assert_eq!(OffsetsRecord::decode(record.key(), record.value()), Some(record));
    }

    /// What Weir wrote before members were persisted: v3 with no members.
    #[test]
    fn group_metadata_without_members_still_decodes() {
        let mut value = BytesMut::new();
        value.put_i16(3);
        put_string(&mut value, "consumer");
        value.put_i32(9);
        put_string(&mut value, "range");
        put_nullable_string(&mut value, None);
        value.put_i64(0);
        value.put_i32(0);
        let mut key = BytesMut::new();
        key.put_i16(2);
        put_string(&mut key, "old");
        let decoded = OffsetsRecord::decode(key.freeze(), Some(value.freeze()));
        let want = GroupMetadata {
            group_id: "old".into(),
            protocol_type: "consumer".into(),
            generation: 9,
            protocol: Some("range".into()),
            leader: None,
            members: vec![],
        };
        assert_eq!(decoded, Some(OffsetsRecord::Group { group_id: "old".into(), metadata: Some(want) }));
    }

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
                    members: vec![],
                }),
            },
            OffsetsRecord::Group {
                group_id: "with-members".into(),
                metadata: Some(GroupMetadata {
                    group_id: "with-members".into(),
                    protocol_type: "consumer".into(),
                    generation: 3,
                    protocol: Some("cooperative-sticky".into()),
                    leader: Some("m1".into()),
                    members: vec![member("m1", Some("instance-1")), member("m2", None)],
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
        both.extend_from_slice(&crate::transactions::markers::marker_batch(
            crate::transactions::markers::TxnMarker { producer_id: 9, epoch: 1, commit: true, coordinator_epoch: 0 },
            6,
        ));
        assert_eq!(
            decode_batches(both.freeze()).unwrap(),
            vec![
                OffsetsEntry::Transactional { producer_id: 9, record: records[0].clone() },
                OffsetsEntry::Marker { producer_id: 9, commit: true }
            ]
        );
    }
}
