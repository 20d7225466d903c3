//! Kafka's ISR replication, as a shard takes part in it. A partition's
//! leader learns how far each follower has copied from the offsets its
//! fetches ask for, and moves the high watermark to the least log end among
//! the in-sync replicas ([`FollowerProgress`]); acks=all waits for the high
//! watermark to pass the batch. A follower copies the leader's batches,
//! unchanged, with the fetches of its shard's [`Fetchers`].

mod fetcher;

pub(crate) use fetcher::Fetchers;

use std::cell::RefCell;
use std::collections::HashMap;

/// What a leader knows of its followers' logs, from their fetches.
#[derive(Default)]
pub(crate) struct FollowerProgress {
    /// Each follower's log end offset: the offset its last fetch asked from.
    log_ends: RefCell<HashMap<i32, i64>>,
}

impl FollowerProgress {
    /// `follower` fetched from `offset`: it holds everything below it.
    pub fn fetched(&self, follower: i32, offset: i64) {
        self.log_ends.borrow_mut().insert(follower, offset);
    }

    /// The high watermark the in-sync replicas `isr` allow: the least of
    /// their log ends, this leader's (`leader`) being `leader_end`. A
    /// follower that has not fetched yet holds nothing known.
    pub fn high_watermark(&self, isr: &[i32], leader: i32, leader_end: i64) -> i64 {
        let log_ends = self.log_ends.borrow();
        let end_of = |replica: &i32| match *replica == leader {
            true => leader_end,
            false => log_ends.get(replica).copied().unwrap_or(0),
        };
        isr.iter().map(end_of).min().unwrap_or(leader_end)
    }

    /// Forgets every follower (a new leadership starts from their next fetches).
    pub fn clear(&self) {
        self.log_ends.borrow_mut().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_high_watermark_is_the_least_log_end_in_the_isr() {
        let progress = FollowerProgress::default();
        assert_eq!(progress.high_watermark(&[1], 1, 10), 10, "a leader alone");
        assert_eq!(progress.high_watermark(&[1, 2, 3], 1, 10), 0, "followers not heard from");
        progress.fetched(2, 7);
        progress.fetched(3, 9);
        assert_eq!(progress.high_watermark(&[1, 2, 3], 1, 10), 7);
        assert_eq!(progress.high_watermark(&[1, 3], 1, 10), 9, "a follower out of the ISR does not hold it back");
        progress.fetched(2, 10);
        progress.fetched(3, 10);
        assert_eq!(progress.high_watermark(&[1, 2, 3], 1, 10), 10);
        progress.clear();
        assert_eq!(progress.high_watermark(&[1, 2], 1, 10), 0);
    }
}
