//! Which shard owns which partition.

/// The shard that owns `partition` of `topic` among `shards` shards.
///
/// The topic name's hash offsets the start so that the first partitions of
/// different topics do not all land on shard 0; consecutive partitions of one
/// topic go to consecutive shards.
pub fn owner_of(topic: &str, partition: i32, shards: usize) -> usize {
    // FNV-1a: stable across runs and Rust versions, unlike std's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in topic.bytes() {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    ((hash as usize).wrapping_add(partition as usize)) % shards
}

/// The controller shard: owns the metadata store and serialises topic changes.
pub const CONTROLLER_SHARD: usize = 0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_of_a_topic_spread_over_all_shards() {
        let owners: std::collections::HashSet<_> = (0..8).map(|p| owner_of("t", p, 4)).collect();
        assert_eq!(owners.len(), 4);
        assert_eq!(owner_of("t", 5, 4), owner_of("t", 5, 4));
        assert!((0..100).all(|p| owner_of("x", p, 3) < 3));
    }
}
