//! Kafka's ISR replication, as a shard takes part in it. A partition's
//! leader learns how far each follower has copied from the offsets its
//! fetches ask for, and moves the high watermark to the least log end among
//! the in-sync replicas ([`FollowerProgress`]); acks=all waits for the high
//! watermark to pass the batch. The leader asks the controller to drop a
//! follower that has not caught up for `replica.lag.time.max.ms` from the
//! ISR, and to take back one that holds the high watermark again
//! ([`FollowerProgress::isr_change`]). A follower copies the leader's
//! batches, unchanged, with the fetches of its shard's [`Fetchers`].

mod fetcher;

pub(crate) use fetcher::Fetchers;

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What a leader knows of its followers' logs, from their fetches.
#[derive(Default)]
pub(crate) struct FollowerProgress {
    /// Each follower's log end offset: the offset its last fetch asked from.
    log_ends: RefCell<HashMap<i32, i64>>,
    /// When each follower last held everything the leader had (Kafka's
    /// lastCaughtUpTime), or when this leadership began.
    caught_up: RefCell<HashMap<i32, Instant>>,
}

impl FollowerProgress {
    /// `follower` fetched from `offset` at `now`, when the leader's log
    /// ended at `leader_end`: it holds everything below `offset`.
    pub fn fetched(&self, follower: i32, offset: i64, leader_end: i64, now: Instant) {
        self.log_ends.borrow_mut().insert(follower, offset);
        if offset >= leader_end {
            self.caught_up.borrow_mut().insert(follower, now);
        }
    }

    /// The ISR this leader should ask for at `now`, if it differs from
    /// `isr`: without the followers that have not caught up for `max_lag`,
    /// with the replicas out of it whose log reaches `in_sync_from` (the
    /// high watermark, and the start of this leader's epoch: Kafka's
    /// maybeShrinkIsr and maybeExpandIsr).
    pub fn isr_change(
        &self,
        (replicas, isr, leader): (&[i32], &[i32], i32),
        in_sync_from: i64,
        now: Instant,
        max_lag: Duration,
    ) -> Option<Vec<i32>> {
        let (log_ends, caught_up) = (self.log_ends.borrow(), self.caught_up.borrow());
        let in_sync = |replica: &i32| {
            if *replica == leader {
                return true;
            }
            match isr.contains(replica) {
                true => caught_up.get(replica).is_some_and(|at| now.saturating_duration_since(*at) <= max_lag),
                false => log_ends.get(replica).is_some_and(|end| *end >= in_sync_from),
            }
        };
        let next: Vec<i32> = replicas.iter().copied().filter(in_sync).collect();
        let (mut sorted_next, mut sorted_isr) = (next.clone(), isr.to_vec());
        sorted_next.sort_unstable();
        sorted_isr.sort_unstable();
        (sorted_next != sorted_isr).then_some(next)
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

    /// A new leadership from `now`: followers are known again from their
    /// next fetches, and those in the ISR have `replica.lag.time.max.ms`
    /// from now to show they keep up.
    pub fn lead(&self, isr: &[i32], now: Instant) {
        self.log_ends.borrow_mut().clear();
        *self.caught_up.borrow_mut() = isr.iter().map(|&replica| (replica, now)).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_high_watermark_is_the_least_log_end_in_the_isr() {
        let (progress, now) = (FollowerProgress::default(), Instant::now());
        assert_eq!(progress.high_watermark(&[1], 1, 10), 10, "a leader alone");
        assert_eq!(progress.high_watermark(&[1, 2, 3], 1, 10), 0, "followers not heard from");
        progress.fetched(2, 7, 10, now);
        progress.fetched(3, 9, 10, now);
        assert_eq!(progress.high_watermark(&[1, 2, 3], 1, 10), 7);
        assert_eq!(progress.high_watermark(&[1, 3], 1, 10), 9, "a follower out of the ISR does not hold it back");
        progress.fetched(2, 10, 10, now);
        progress.fetched(3, 10, 10, now);
        assert_eq!(progress.high_watermark(&[1, 2, 3], 1, 10), 10);
        progress.lead(&[1, 2], now);
        assert_eq!(progress.high_watermark(&[1, 2], 1, 10), 0);
    }

    #[test]
    fn a_follower_behind_too_long_leaves_the_isr_and_one_caught_up_rejoins() {
        let (progress, start, lag) = (FollowerProgress::default(), Instant::now(), Duration::from_secs(10));
        let replicas = [1, 2, 3];
        progress.lead(&replicas, start);
        let later = |s| start + Duration::from_secs(s);
        assert_eq!(progress.isr_change((&replicas, &replicas, 1), 0, later(5), lag), None, "within the grace");
        progress.fetched(2, 50, 50, later(8)); // caught up
        progress.fetched(3, 40, 50, later(8)); // behind
        assert_eq!(progress.isr_change((&replicas, &replicas, 1), 40, later(12), lag), Some(vec![1, 2]));
        // Out of the ISR, 3 rejoins once its log reaches the high watermark
        // and the start of this leader's epoch.
        let isr = [1, 2];
        assert_eq!(progress.isr_change((&replicas, &isr, 1), 45, later(13), lag), None);
        progress.fetched(3, 45, 60, later(14));
        assert_eq!(progress.isr_change((&replicas, &isr, 1), 45, later(14), lag), Some(vec![1, 2, 3]));
        assert_eq!(progress.isr_change((&replicas, &isr, 1), 46, later(14), lag), None, "not at the epoch's start yet");
    }
}
