//! Quota enforcement: the rate of each quota's entity over a window of
//! samples, and Kafka's throttle time for a client over its quota
//! (`ClientQuotaManager`, with `quota.window.num` samples of
//! `quota.window.size.seconds`).
//!
//! A broker measures each entity once, whichever shards its connections
//! are on, as Kafka measures per broker: a `Rate` is shared by every shard
//! and recorded to with atomics, no lock. The map from entity to rate
//! (`QuotaRates`) has a lock, taken only when a connection resolves its
//! quota (its first request, or a new metadata image), never per request.

use crate::metadata::quota::{QuotaKey, SensorKey};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A sample packs its window's number (low `WINDOW_BITS` bits of it) above
/// the amount recorded in it, so that moving to a new window and adding to
/// it is one compare-and-swap.
const WINDOW_BITS: u32 = 24;
const AMOUNT_BITS: u32 = 64 - WINDOW_BITS;
const AMOUNT_MAX: u64 = (1 << AMOUNT_BITS) - 1;
const WINDOW_MASK: u64 = (1 << WINDOW_BITS) - 1;

/// How rates are measured (Kafka's `quota.window.num` and
/// `quota.window.size.seconds`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaWindow {
    pub samples: u32,
    pub sample_ms: u64,
}

/// An amount per second (bytes, or thread time) over the last `samples`
/// windows of `sample_ms`, windows aligned on the clock.
pub struct Rate {
    window: QuotaWindow,
    samples: Box<[AtomicU64]>,
}

impl Rate {
    pub fn new(window: QuotaWindow) -> Rate {
        assert!(window.samples > 0 && window.sample_ms > 0, "a rate needs samples: {window:?}");
        Rate { window, samples: (0..window.samples).map(|_| AtomicU64::new(0)).collect() }
    }

    fn window_of(&self, now_ms: u64) -> u64 {
        now_ms / self.window.sample_ms
    }

    fn slot(&self, window: u64) -> &AtomicU64 {
        &self.samples[(window % self.window.samples as u64) as usize]
    }

    /// Adds `amount` at `now_ms`.
    pub fn record(&self, now_ms: u64, amount: u64) {
        let window = self.window_of(now_ms);
        let tag = (window & WINDOW_MASK) << AMOUNT_BITS;
        let slot = self.slot(window);
        let mut current = slot.load(Ordering::Relaxed);
        loop {
            let next = match current & !AMOUNT_MAX == tag {
                true => tag | (current & AMOUNT_MAX).saturating_add(amount).min(AMOUNT_MAX),
                false => tag | amount.min(AMOUNT_MAX), // an older window's sample: start this one
            };
            match slot.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(seen) => current = seen,
            }
        }
    }

    /// The amount recorded in the windows still measured, and when the
    /// oldest of those with any amount began.
    fn total(&self, now_ms: u64) -> (u64, Option<u64>) {
        let newest = self.window_of(now_ms);
        let (mut total, mut oldest) = (0u64, None);
        for age in (0..self.window.samples as u64).rev() {
            let Some(window) = newest.checked_sub(age) else { continue };
            let sample = self.slot(window).load(Ordering::Relaxed);
            let amount = sample & AMOUNT_MAX;
            if sample >> AMOUNT_BITS == window & WINDOW_MASK && amount > 0 {
                total = total.saturating_add(amount);
                oldest.get_or_insert(window * self.window.sample_ms);
            }
        }
        (total, oldest)
    }

    /// Kafka's window of a rate (`Rate.windowSize`): from the oldest sample
    /// to now, but never less than all samples but one, so a new client is
    /// measured as if it had been quiet before, not over the moment it ran.
    fn window_ms(&self, now_ms: u64, oldest_ms: u64) -> u64 {
        let QuotaWindow { samples, sample_ms } = self.window;
        let elapsed = now_ms.saturating_sub(oldest_ms);
        elapsed.max((samples as u64 - 1) * sample_ms + elapsed % sample_ms).max(1)
    }

    /// The amount per second at `now_ms`.
    pub fn per_second(&self, now_ms: u64) -> f64 {
        match self.total(now_ms) {
            (_, None) => 0.0,
            (total, Some(oldest)) => total as f64 * 1000.0 / self.window_ms(now_ms, oldest) as f64,
        }
    }

    /// Kafka's throttle time for a client whose rate is over `quota`
    /// (`ClientQuotaManager.throttleTime`): how long it must stay quiet for
    /// its rate over the window to come down to the quota, at most the
    /// whole window (`samples` × `sample_ms`); 0 at or under the quota.
    pub fn throttle_ms(&self, now_ms: u64, quota: f64) -> u64 {
        let (total, Some(oldest)) = self.total(now_ms) else { return 0 };
        let window_ms = self.window_ms(now_ms, oldest) as f64;
        let rate = total as f64 * 1000.0 / window_ms;
        if rate <= quota {
            return 0;
        }
        let most = self.window.samples as u64 * self.window.sample_ms;
        (((rate - quota) / quota * window_ms).round() as u64).min(most)
    }

    /// Nothing recorded in the windows measured.
    fn is_idle(&self, now_ms: u64) -> bool {
        self.total(now_ms).1.is_none()
    }
}

/// Every entity's rate on this broker, by quota key and entity, shared by
/// every shard.
pub struct QuotaRates {
    window: QuotaWindow,
    rates: Mutex<HashMap<(QuotaKey, SensorKey), Arc<Rate>>>,
}

impl QuotaRates {
    pub fn new(window: QuotaWindow) -> QuotaRates {
        QuotaRates { window, rates: Mutex::new(HashMap::new()) }
    }

    /// The rate of `key` counted for `entity`. Rates no connection holds
    /// and with nothing in their window are dropped meanwhile: forgetting
    /// them changes no client's throttle.
    pub fn rate(&self, key: QuotaKey, entity: SensorKey, now_ms: u64) -> Arc<Rate> {
        let mut rates = self.rates.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        rates.retain(|_, rate| Arc::strong_count(rate) > 1 || !rate.is_idle(now_ms));
        rates.entry((key, entity)).or_insert_with(|| Arc::new(Rate::new(self.window))).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KAFKA: QuotaWindow = QuotaWindow { samples: 11, sample_ms: 1000 };

    #[test]
    fn a_new_client_is_measured_over_all_samples_but_one() {
        let rate = Rate::new(KAFKA);
        rate.record(5_000, 10_000);
        // 10 000 bytes over 10 windows of a second (the first just begun).
        assert_eq!(rate.per_second(5_000), 1000.0);
        assert_eq!(rate.per_second(5_500), 10_000.0 / 10.5);
    }

    #[test]
    fn a_steady_client_is_measured_at_its_rate() {
        let rate = Rate::new(KAFKA);
        for second in 0..30 {
            rate.record(second * 1000, 2000);
        }
        // The last 11 windows hold 22 000 bytes; the window runs from the
        // oldest's start (19 s) to now.
        let now = 29_999;
        assert!((rate.per_second(now) - 22_000.0 / 10.999).abs() < 1e-6);
        // Old windows are forgotten.
        assert_eq!(rate.per_second(100_000), 0.0);
    }

    #[test]
    fn the_throttle_brings_the_rate_back_to_the_quota() {
        let rate = Rate::new(KAFKA);
        let quota = 1000.0;
        // 15 000 bytes in the first window: 1500/s over the 10 s window,
        // 50% over, so 5 s of silence (Kafka: (rate - quota) / quota × window).
        rate.record(0, 15_000);
        assert_eq!(rate.throttle_ms(0, quota), 5_000);
        // As in Kafka, the window stays at its minimum (10 s, plus the part
        // of the current second) until more time than that has passed, so
        // the client is throttled again until the sample leaves the window.
        assert_eq!(rate.throttle_ms(5_000, quota), 5_000);
        assert_eq!(rate.throttle_ms(10_999, quota), 4_001);
        assert_eq!(rate.throttle_ms(11_000, quota), 0);
        // At or under the quota: no throttle.
        let under = Rate::new(KAFKA);
        under.record(0, 10_000);
        assert_eq!(under.throttle_ms(0, quota), 0);
    }

    #[test]
    fn a_throttle_is_at_most_the_whole_window() {
        let rate = Rate::new(KAFKA);
        rate.record(0, 1 << 30);
        assert_eq!(rate.throttle_ms(0, 1.0), 11_000);
    }

    #[test]
    fn shards_recording_at_once_lose_nothing() {
        let rate = Arc::new(Rate::new(KAFKA));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let rate = rate.clone();
                std::thread::spawn(move || (0..10_000).for_each(|_| rate.record(1_234, 3)))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(rate.total(1_500).0, 4 * 10_000 * 3);
    }

    #[test]
    fn entities_share_a_rate_while_someone_holds_it() {
        let rates = QuotaRates::new(KAFKA);
        let entity = || SensorKey { user: None, client_id: Some("c".into()) };
        let held = rates.rate(QuotaKey::ProducerByteRate, entity(), 0);
        held.record(0, 100);
        assert_eq!(rates.rate(QuotaKey::ProducerByteRate, entity(), 0).total(0).0, 100);
        assert_eq!(rates.rate(QuotaKey::ConsumerByteRate, entity(), 0).total(0).0, 0);
        drop(held);
        // Unheld but not idle: kept, so a client cannot reset its rate by reconnecting.
        assert_eq!(rates.rate(QuotaKey::ProducerByteRate, entity(), 5_000).total(5_000).0, 100);
        // Unheld and idle: a fresh one.
        assert_eq!(rates.rate(QuotaKey::ProducerByteRate, entity(), 60_000).total(0).0, 0);
    }
}
