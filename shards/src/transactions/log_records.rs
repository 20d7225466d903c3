//! The records of `__transaction_state`, in Kafka's transaction log schema:
//! key v0 (transactional id), value v0 (producer id and epoch, timeout,
//! state, partitions, timestamps). A null value is a tombstone.

use super::{TxnMetadata, TxnState};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::collections::BTreeSet;

const KEY_VERSION: i16 = 0;
const VALUE_VERSION: i16 = 0;

pub fn key(transactional_id: &str) -> Bytes {
    let mut key = BytesMut::with_capacity(4 + transactional_id.len());
    key.put_i16(KEY_VERSION);
    put_string(&mut key, transactional_id);
    key.freeze()
}

pub fn value(m: &TxnMetadata) -> Bytes {
    let mut v = BytesMut::new();
    v.put_i16(VALUE_VERSION);
    v.put_i64(m.producer_id);
    v.put_i16(m.epoch);
    v.put_i32(m.timeout_ms);
    v.put_i8(m.state as i8);
    // Partitions grouped by topic, as Kafka writes them.
    let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
    for (topic, partition) in &m.partitions {
        match topics.last_mut() {
            Some((t, ps)) if *t == topic.as_str() => ps.push(*partition),
            _ => topics.push((topic, vec![*partition])),
        }
    }
    v.put_i32(topics.len() as i32);
    for (topic, partitions) in topics {
        put_string(&mut v, topic);
        v.put_i32(partitions.len() as i32);
        partitions.iter().for_each(|p| v.put_i32(*p));
    }
    v.put_i64(m.last_update_ms);
    v.put_i64(m.start_ms);
    v.freeze()
}

fn put_string(buf: &mut BytesMut, s: &str) {
    buf.put_i16(s.len() as i16);
    buf.put_slice(s.as_bytes());
}

fn get_string(buf: &mut Bytes) -> Option<String> {
    if buf.remaining() < 2 {
        return None;
    }
    let len = usize::try_from(buf.get_i16()).ok()?;
    if buf.remaining() < len {
        return None;
    }
    Some(String::from_utf8_lossy(&buf.split_to(len)).into_owned())
}

/// The transactional id of a key; `None` for a key of an unknown schema.
pub fn decode_key(mut key: Bytes) -> Option<String> {
    if key.remaining() < 2 || key.get_i16() != KEY_VERSION {
        return None;
    }
    get_string(&mut key)
}

/// A value v0; `None` if malformed or of another version.
pub fn decode_value(transactional_id: String, mut v: Bytes) -> Option<TxnMetadata> {
    if v.remaining() < 2 + 8 + 2 + 4 + 1 + 4 {
        return None;
    }
    let version = v.get_i16();
    if version != VALUE_VERSION {
        return None;
    }
    let producer_id = v.get_i64();
    let epoch = v.get_i16();
    let timeout_ms = v.get_i32();
    let state = TxnState::from_i8(v.get_i8())?;
    let topics = v.get_i32();
    let mut partitions = BTreeSet::new();
    for _ in 0..topics.max(0) {
        let topic = get_string(&mut v)?;
        if v.remaining() < 4 {
            return None;
        }
        let count = usize::try_from(v.get_i32()).ok()?;
        if v.remaining() < count * 4 {
            return None;
        }
        for _ in 0..count {
            partitions.insert((topic.clone(), v.get_i32()));
        }
    }
    if v.remaining() < 16 {
        return None;
    }
    let last_update_ms = v.get_i64();
    let start_ms = v.get_i64();
    Some(TxnMetadata { transactional_id, producer_id, epoch, timeout_ms, state, partitions, start_ms, last_update_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips() {
        let m = TxnMetadata {
            transactional_id: "tx".into(),
            producer_id: 12,
            epoch: 3,
            timeout_ms: 60_000,
            state: TxnState::PrepareCommit,
            partitions: [("a".to_string(), 0), ("a".to_string(), 2), ("b".to_string(), 1)].into_iter().collect(),
            start_ms: 100,
            last_update_ms: 200,
        };
        assert_eq!(decode_key(key("tx")), Some("tx".to_string()));
        assert_eq!(decode_value("tx".into(), value(&m)), Some(m.clone()));
        let truncated = value(&m).slice(..20);
        assert_eq!(decode_value("tx".into(), truncated), None);
    }
}
