//! Where a new partition's replicas go: spread over the brokers so that
//! leaders (the first replica) are balanced, each broker's followers come
//! from different brokers, and, when brokers name racks (`broker_rack`),
//! each partition's replicas sit on as many racks as they can. Kafka's
//! placement follows the same rules; this is written from them, not from
//! its code.

use crate::error::TopicError;

/// A broker that can take replicas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerSlot {
    pub id: i32,
    pub rack: Option<String>,
}

/// Replica lists for partitions `first..first + count`, `replication_factor`
/// each, leaders going round the brokers from `start` (a random start in
/// Kafka spreads topics created one after another; the controller passes
/// one). Brokers are taken in id order, alternating racks when every broker
/// has one.
pub fn assign_replicas(
    first: i32,
    count: i32,
    replication_factor: i16,
    brokers: &[BrokerSlot],
    start: usize,
) -> Result<Vec<Vec<i32>>, TopicError> {
    let n = brokers.len();
    let rf = usize::try_from(replication_factor).unwrap_or(0);
    if rf == 0 || rf > n {
        return Err(TopicError::InvalidReplicationFactor { asked: replication_factor, brokers: n });
    }
    let ordered = rack_alternated(brokers);
    let rack_of = |id: i32| brokers.iter().find(|b| b.id == id).and_then(|b| b.rack.as_deref());
    let rack_count = {
        let mut racks: Vec<&str> = brokers.iter().filter_map(|b| b.rack.as_deref()).collect();
        racks.sort_unstable();
        racks.dedup();
        // The rack rule holds only when every broker names a rack.
        if brokers.iter().all(|b| b.rack.is_some()) {
            racks.len()
        } else {
            0
        }
    };
    Ok((first..first + count)
        .map(|partition| {
            let p = partition as usize + start;
            let leader = p % n;
            // Followers step from the leader by a shift that changes every
            // round of the brokers, so a broker's followers vary.
            let shift = if n > 1 { 1 + (p / n) % (n - 1) } else { 0 };
            let mut replicas = vec![ordered[leader]];
            let mut at = leader;
            while replicas.len() < rf {
                at = (at + shift) % n;
                let racks_used: Vec<Option<&str>> = replicas.iter().map(|&id| rack_of(id)).collect();
                let every_rack_used = racks_used.len() >= rack_count;
                // The first broker from `at` on that is not taken and, until
                // every rack has a replica, on a rack without one.
                let fits = |i: &usize| {
                    let id = ordered[*i];
                    !replicas.contains(&id) && (every_rack_used || !racks_used.contains(&rack_of(id)))
                };
                at = (0..n).map(|j| (at + j) % n).find(fits).expect("rf <= brokers leaves a broker free");
                replicas.push(ordered[at]);
            }
            replicas
        })
        .collect())
}

/// Broker ids in id order, or, when every broker names a rack, taken one
/// rack after another (rack a's first, rack b's first, ..., rack a's
/// second, ...), so that neighbours in the list are on different racks.
fn rack_alternated(brokers: &[BrokerSlot]) -> Vec<i32> {
    let mut sorted = brokers.to_vec();
    sorted.sort_by_key(|b| b.id);
    if sorted.iter().any(|b| b.rack.is_none()) {
        return sorted.iter().map(|b| b.id).collect();
    }
    let mut racks: Vec<(&str, Vec<i32>)> = Vec::new();
    for b in &sorted {
        let rack = b.rack.as_deref().expect("checked above");
        match racks.iter_mut().find(|(r, _)| *r == rack) {
            Some((_, ids)) => ids.push(b.id),
            None => racks.push((rack, vec![b.id])),
        }
    }
    racks.sort_by(|a, b| a.0.cmp(b.0));
    let rounds = racks.iter().map(|(_, ids)| ids.len()).max().unwrap_or(0);
    (0..rounds).flat_map(|round| racks.iter().filter_map(move |(_, ids)| ids.get(round).copied())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn brokers(racks: &[Option<&str>]) -> Vec<BrokerSlot> {
        racks.iter().enumerate().map(|(i, r)| BrokerSlot { id: i as i32 + 1, rack: r.map(str::to_string) }).collect()
    }

    #[test]
    fn leaders_and_replicas_are_spread_evenly_and_never_repeat_a_broker() {
        let six = brokers(&[None; 6]);
        let assigned = assign_replicas(0, 60, 3, &six, 0).unwrap();
        let mut leaders = BTreeMap::new();
        let mut replicas = BTreeMap::new();
        let mut follower_pairs = BTreeSet::new();
        for r in &assigned {
            assert_eq!(r.len(), 3);
            assert_eq!(r.iter().collect::<BTreeSet<_>>().len(), 3, "{r:?} repeats a broker");
            *leaders.entry(r[0]).or_insert(0) += 1;
            for b in r {
                *replicas.entry(*b).or_insert(0) += 1;
            }
            follower_pairs.insert((r[0], r[1]));
        }
        assert!(leaders.values().all(|&n| n == 10), "leaders {leaders:?}");
        assert!(replicas.values().all(|&n| n == 30), "replicas {replicas:?}");
        assert!(follower_pairs.len() > 6, "a leader's first follower varies: {follower_pairs:?}");
        assert_eq!(assign_replicas(0, 2, 1, &six, 4).unwrap(), [vec![5], vec![6]], "leaders start at `start`");
    }

    #[test]
    fn with_racks_each_partition_spans_as_many_racks_as_it_can() {
        let racked = brokers(&[Some("a"), Some("a"), Some("b"), Some("b"), Some("c"), Some("c")]);
        let rack_of = |id: i32| racked[id as usize - 1].rack.clone();
        for r in assign_replicas(0, 30, 3, &racked, 0).unwrap() {
            let racks: BTreeSet<_> = r.iter().map(|&id| rack_of(id)).collect();
            assert_eq!(racks.len(), 3, "{r:?} on racks {racks:?}");
        }
        // Not every broker names a rack: ids in order, no rack rule.
        let mixed = brokers(&[Some("a"), None, Some("b")]);
        assert_eq!(assign_replicas(0, 1, 3, &mixed, 0).unwrap()[0].len(), 3);
    }

    #[test]
    fn a_replication_factor_the_brokers_cannot_meet_is_refused() {
        let one = brokers(&[None]);
        assert_eq!(assign_replicas(0, 3, 1, &one, 0).unwrap(), [vec![1], vec![1], vec![1]]);
        for rf in [0, -1, 2] {
            let refused = assign_replicas(0, 1, rf, &one, 0).unwrap_err();
            assert_eq!(refused, TopicError::InvalidReplicationFactor { asked: rf, brokers: 1 });
        }
        assert_eq!(
            TopicError::InvalidReplicationFactor { asked: 3, brokers: 1 }.to_string(),
            "Unable to replicate the partition 3 time(s): The target replication factor of 3 cannot be reached \
             because only 1 broker(s) are registered."
        );
    }
}
