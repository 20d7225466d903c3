//! Latency histograms and the figures reported from them.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::time::Duration;

/// Latencies are recorded in microseconds, 1 µs to 10 minutes, 3 significant digits.
const LOWEST_US: u64 = 1;
const HIGHEST_US: u64 = 600_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;

/// The percentiles every report shows.
pub const REPORTED: [(f64, &str); 5] =
    [(50.0, "p50"), (90.0, "p90"), (99.0, "p99"), (99.9, "p99.9"), (99.99, "p99.99")];

/// One latency histogram (microseconds).
#[derive(Clone, Debug)]
pub struct Latency {
    histogram: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

impl Latency {
    pub fn new() -> Latency {
        let histogram = Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS).expect("valid bounds");
        Latency { histogram }
    }

    /// Records one latency, clamped into the histogram's range.
    pub fn record(&mut self, latency: Duration) {
        self.record_n(latency, 1);
    }

    /// Records `n` messages that had the same latency.
    pub fn record_n(&mut self, latency: Duration, n: u64) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(HIGHEST_US).clamp(LOWEST_US, HIGHEST_US);
        self.histogram.record_n(us, n).expect("clamped into range");
    }

    pub fn merge(&mut self, other: &Latency) {
        self.histogram.add(&other.histogram).expect("same bounds");
    }

    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// The summary in milliseconds, or `None` when nothing was recorded.
    pub fn summary(&self) -> Option<Percentiles> {
        if self.histogram.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        let at = |q: f64| ms(self.histogram.value_at_percentile(q));
        Some(Percentiles {
            count: self.histogram.len(),
            mean_ms: self.histogram.mean() / 1000.0,
            p50_ms: at(50.0),
            p90_ms: at(90.0),
            p99_ms: at(99.0),
            p99_9_ms: at(99.9),
            p99_99_ms: at(99.99),
            max_ms: ms(self.histogram.max()),
        })
    }

    /// (percentile, milliseconds) points for a percentile chart, from p0 to p99.999 and max.
    pub fn curve(&self) -> Vec<(f64, f64)> {
        if self.histogram.is_empty() {
            return Vec::new();
        }
        let mut points = Vec::new();
        // Evenly spaced in "nines": x = -log10(1 - q/100) from 0 to 5.
        for i in 0..=100 {
            let nines = f64::from(i) * 0.05;
            let q = 100.0 * (1.0 - 10f64.powf(-nines));
            points.push((q, self.histogram.value_at_percentile(q) as f64 / 1000.0));
        }
        points.push((100.0, self.histogram.max() as f64 / 1000.0));
        points
    }
}

/// Latency figures of one kind, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Percentiles {
    /// Messages (or requests, for produce latency) measured.
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    #[serde(rename = "p99.9_ms")]
    pub p99_9_ms: f64,
    #[serde(rename = "p99.99_ms")]
    pub p99_99_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    /// "p50 1.23  p90 ...  max 9.87 ms" for the summary.
    pub fn line(&self) -> String {
        format!(
            "p50 {}  p90 {}  p99 {}  p99.9 {}  p99.99 {}  max {} ms",
            ms(self.p50_ms),
            ms(self.p90_ms),
            ms(self.p99_ms),
            ms(self.p99_9_ms),
            ms(self.p99_99_ms),
            ms(self.max_ms)
        )
    }
}

/// Milliseconds with three significant-ish digits.
pub fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut l = Latency::new();
        for us in 1..=10_000u64 {
            l.record(Duration::from_micros(us));
        }
        let s = l.summary().unwrap();
        assert_eq!(s.count, 10_000);
        let close = |a: f64, b: f64| (a - b).abs() <= b * 0.002 + 0.001;
        assert!(close(s.p50_ms, 5.0), "{s:?}");
        assert!(close(s.p90_ms, 9.0), "{s:?}");
        assert!(close(s.p99_ms, 9.9), "{s:?}");
        assert!(close(s.max_ms, 10.0), "{s:?}");
        assert!(s.p50_ms <= s.p90_ms && s.p90_ms <= s.p99_ms && s.p99_ms <= s.p99_9_ms);
        assert!(s.p99_9_ms <= s.p99_99_ms && s.p99_99_ms <= s.max_ms);
    }

    #[test]
    fn merge_adds_counts_and_keeps_the_worst() {
        let mut a = Latency::new();
        let mut b = Latency::new();
        a.record_n(Duration::from_millis(1), 99);
        b.record(Duration::from_secs(2));
        a.merge(&b);
        let s = a.summary().unwrap();
        assert_eq!(s.count, 100);
        assert!((s.max_ms - 2000.0).abs() < 2.0);
        assert!((s.p50_ms - 1.0).abs() < 0.01);
    }

    #[test]
    fn out_of_range_values_are_clamped_not_lost() {
        let mut l = Latency::new();
        l.record(Duration::ZERO);
        l.record(Duration::from_secs(100_000));
        assert_eq!(l.count(), 2);
        assert!(Latency::new().summary().is_none());
    }

    #[test]
    fn curve_rises_to_the_max() {
        let mut l = Latency::new();
        for us in 1..=1000u64 {
            l.record(Duration::from_micros(us * 10));
        }
        let c = l.curve();
        assert!(c.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        assert_eq!(c.last().unwrap().0, 100.0);
    }
}
