//! Quota enforcement: how far each quota entity is ahead of its quota,
//! and the throttle time of a client over it.
//!
//! Kafka measures byte rates over `quota.window.num` samples of
//! `quota.window.size.seconds` and throttles by (rate - quota) / quota ×
//! window. Measured here with a client that sends as fast as it can (as
//! librdkafka does), that formula throttles in bursts: a whole window's
//! worth at line speed, then a throttle of about a sample, because the
//! window it divides by shrinks by a sample at each sample boundary; the
//! rate over a few seconds swung between 0.3 and 2.4 times the quota. So the
//! throttle is the token bucket Kafka uses for its controller mutation
//! quota (KIP-599), with the same burst (the quota over the whole window):
//! a client may run ahead of its quota by at most the window's bytes, and
//! is throttled for exactly the time its quota needs to earn back the rest.
//! Over any span longer than the window it gets its quota, within one
//! request.
//!
//! A broker measures each entity once, whichever shards its connections
//! are on, as Kafka measures per broker: a `Bucket` is shared by every
//! shard and updated with one compare-and-swap, no lock. The map from
//! entity to bucket (`QuotaRates`) has a lock, taken only when a
//! connection resolves its quota (its first request, or a new metadata
//! image), never per request.

use crate::metadata::quota::{QuotaKey, SensorKey};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// How quotas are measured (Kafka's `quota.window.num` and
/// `quota.window.size.seconds`): a client may run ahead of its quota by
/// the quota over the whole window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaWindow {
    pub samples: u32,
    pub sample_ms: u64,
}

impl QuotaWindow {
    fn ms(self) -> f64 {
        self.samples as f64 * self.sample_ms as f64
    }
}

/// One entity's use of a quota, as the time (ms, an `f64`'s bits) at which
/// it will have earned what it used: each amount moves it on by amount /
/// quota, and it never lags now by more than the window (the burst).
pub struct Bucket {
    window_ms: f64,
    earned_at_ms: AtomicU64,
}

impl Bucket {
    pub fn new(window: QuotaWindow) -> Bucket {
        assert!(window.samples > 0 && window.sample_ms > 0, "a quota needs a window: {window:?}");
        // Full from the start: nothing used, ever.
        Bucket { window_ms: window.ms(), earned_at_ms: AtomicU64::new(f64::NEG_INFINITY.to_bits()) }
    }

    /// Counts `amount` at `now_ms` against `quota` (per second); returns
    /// the throttle time: how long until the quota has earned what is used
    /// beyond the burst (0 within it). A full bucket's time is now less
    /// the window, so the burst brings it to now.
    pub fn record(&self, now_ms: u64, amount: u64, quota: f64) -> u64 {
        let now = now_ms as f64;
        let cost_ms = amount as f64 * 1000.0 / quota;
        let mut current = self.earned_at_ms.load(Ordering::Relaxed);
        loop {
            let earned_at = f64::from_bits(current).max(now - self.window_ms) + cost_ms;
            match self.earned_at_ms.compare_exchange_weak(
                current,
                earned_at.to_bits(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return (earned_at - now).max(0.0).round() as u64,
                Err(seen) => current = seen,
            }
        }
    }

    /// Nothing used within the window: the bucket is full, as a new one.
    fn is_full(&self, now_ms: u64) -> bool {
        f64::from_bits(self.earned_at_ms.load(Ordering::Relaxed)) <= now_ms as f64 - self.window_ms
    }
}

/// Every entity's bucket on this broker, by quota key and entity, shared
/// by every shard.
pub struct QuotaRates {
    window: QuotaWindow,
    rates: Mutex<HashMap<(QuotaKey, SensorKey), Arc<Bucket>>>,
}

impl QuotaRates {
    pub fn new(window: QuotaWindow) -> QuotaRates {
        QuotaRates { window, rates: Mutex::new(HashMap::new()) }
    }

    /// The bucket of `key` counted for `entity`. Buckets no connection
    /// holds and full again are dropped meanwhile: forgetting them changes
    /// no client's throttle.
    pub fn bucket(&self, key: QuotaKey, entity: SensorKey, now_ms: u64) -> Arc<Bucket> {
        let mut rates = self.rates.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        rates.retain(|_, bucket| Arc::strong_count(bucket) > 1 || !bucket.is_full(now_ms));
        rates.entry((key, entity)).or_insert_with(|| Arc::new(Bucket::new(self.window))).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KAFKA: QuotaWindow = QuotaWindow { samples: 11, sample_ms: 1000 };

    #[test]
    fn a_new_client_may_burst_the_whole_window_then_is_throttled_by_what_its_quota_must_earn() {
        let bucket = Bucket::new(KAFKA);
        let quota = 1000.0;
        // 11 s of quota at once: within the burst.
        assert_eq!(bucket.record(100_000, 11_000, quota), 0);
        // 500 bytes more: half a second to earn them.
        assert_eq!(bucket.record(100_000, 500, quota), 500);
        // Half a second later they are earned; another 2000 bytes are 2 s ahead.
        assert_eq!(bucket.record(100_500, 2000, quota), 2000);
    }

    #[test]
    fn a_client_that_waits_out_its_throttles_runs_at_its_quota() {
        let bucket = Bucket::new(QuotaWindow { samples: 3, sample_ms: 1000 });
        let quota = 1_048_576.0;
        let (mut now, mut sent) = (0u64, 0u64);
        // Requests of 64 KiB, each sent as soon as the last throttle is over.
        while now < 30_000 {
            let throttle = bucket.record(now, 65_536, quota);
            sent += 65_536;
            now += throttle.max(1);
        }
        // The burst (3 s of quota) and one request above 30 s of quota.
        let expected = quota * 33.0;
        assert!((sent as f64 - expected).abs() <= 65_536.0 * 2.0, "sent {sent}, expected about {expected}");
    }

    #[test]
    fn quiet_time_refills_the_burst_but_no_more() {
        let bucket = Bucket::new(KAFKA);
        assert_eq!(bucket.record(0, 22_000, 1000.0), 11_000);
        // An hour of quiet earns the burst back, not an hour's worth.
        assert!(!bucket.is_full(11_000) && bucket.is_full(22_000));
        assert_eq!(bucket.record(3_600_000, 11_000, 1000.0), 0);
        assert_eq!(bucket.record(3_600_000, 1000, 1000.0), 1000);
    }

    #[test]
    fn shards_recording_at_once_lose_nothing() {
        let bucket = Arc::new(Bucket::new(KAFKA));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let bucket = bucket.clone();
                std::thread::spawn(move || {
                    (0..10_000).for_each(|_| {
                        bucket.record(0, 3, 1000.0);
                    })
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        // 120 000 bytes at 1000/s: 120 s, of which 11 are the burst.
        assert_eq!(bucket.record(0, 0, 1000.0), 109_000);
    }

    #[test]
    fn entities_share_a_bucket_while_someone_holds_it() {
        let rates = QuotaRates::new(KAFKA);
        let entity = || SensorKey { user: None, client_id: Some("c".into()) };
        let held = rates.bucket(QuotaKey::ProducerByteRate, entity(), 0);
        held.record(0, 12_000, 1000.0);
        let again = rates.bucket(QuotaKey::ProducerByteRate, entity(), 0);
        assert_eq!(again.record(0, 0, 1000.0), 1000);
        assert_eq!(rates.bucket(QuotaKey::ConsumerByteRate, entity(), 0).record(0, 0, 1000.0), 0);
        drop((held, again));
        // Unheld but not full: kept, so a client cannot reset its quota by reconnecting.
        assert_eq!(rates.bucket(QuotaKey::ProducerByteRate, entity(), 500).record(500, 0, 1000.0), 500);
        // Unheld and full again: a fresh one.
        assert_eq!(rates.bucket(QuotaKey::ProducerByteRate, entity(), 60_000).record(0, 0, 1000.0), 0);
    }
}
