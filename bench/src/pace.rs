//! Rate pacing: when each batch is meant to go out. Latency is measured from
//! that intended time, not from when the sender got round to it, so a broker
//! that stalls the sender is charged for the wait (coordinated omission).

use std::time::{Duration, Instant};

/// Records per batch when sending `rate` messages/s on one connection: a batch
/// leaves when full or when its first message has waited `linger_ms`.
pub fn records_per_batch(batch_size: usize, rate: Option<f64>, linger_ms: f64) -> usize {
    match rate {
        None => batch_size,
        Some(rate) => {
            let arrived_in_linger = (rate * linger_ms / 1000.0).floor();
            let n = if arrived_in_linger.is_finite() { arrived_in_linger as usize } else { batch_size };
            n.clamp(1, batch_size)
        }
    }
}

/// Fixed-interval schedule of batches: batch `k` is due at `start + k * interval`.
#[derive(Clone, Copy, Debug)]
pub struct Pacer {
    start: Instant,
    interval: Duration,
}

impl Pacer {
    /// A pacer sending `records_per_batch`-record batches at `rate` messages/s.
    pub fn new(start: Instant, rate: f64, records_per_batch: usize) -> Pacer {
        assert!(rate.is_finite() && rate > 0.0, "rate must be positive");
        let interval = Duration::from_secs_f64(records_per_batch as f64 / rate);
        Pacer { start, interval: interval.max(Duration::from_nanos(1)) }
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// When batch `k` is due.
    pub fn due(&self, k: u64) -> Instant {
        // u128 nanoseconds: no overflow for any realistic k.
        let nanos = self.interval.as_nanos().saturating_mul(u128::from(k));
        self.start + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX / 2))
    }
}

/// Sleeps until `at`, spinning for the last stretch so short intervals stay accurate.
pub fn sleep_until(at: Instant) {
    const SPIN: Duration = Duration::from_micros(100);
    loop {
        let now = Instant::now();
        if now >= at {
            return;
        }
        let left = at - now;
        if left > SPIN {
            std::thread::sleep(left - SPIN);
        } else {
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_fill_to_what_arrives_within_the_linger() {
        assert_eq!(records_per_batch(100, None, 5.0), 100);
        assert_eq!(records_per_batch(100, Some(1_000_000.0), 5.0), 100);
        assert_eq!(records_per_batch(100, Some(10_000.0), 5.0), 50);
        assert_eq!(records_per_batch(100, Some(10.0), 5.0), 1);
        assert_eq!(records_per_batch(100, Some(10_000.0), 0.0), 1);
    }

    #[test]
    fn schedule_is_evenly_spaced_from_the_start() {
        let start = Instant::now();
        let pacer = Pacer::new(start, 1000.0, 10);
        assert_eq!(pacer.interval(), Duration::from_millis(10));
        assert_eq!(pacer.due(0), start);
        assert_eq!(pacer.due(100), start + Duration::from_secs(1));
        // Being late never moves the schedule: due times depend on k alone.
        assert_eq!(pacer.due(7) - pacer.due(6), Duration::from_millis(10));
    }

    #[test]
    fn sleep_until_waits_at_least_until_then() {
        let at = Instant::now() + Duration::from_millis(3);
        sleep_until(at);
        assert!(Instant::now() >= at);
    }
}
