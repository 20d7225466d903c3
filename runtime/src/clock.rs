//! The clock Weir reads, and its timers.
//!
//! Everything time-based (flush.ms, segment.ms, retention, transaction and
//! session timeouts, idle connections, request deadlines) reads [`now`] or
//! [`now_ms`] and waits with [`sleep`], never the system clock directly, so
//! that a test can make an hour pass without waiting an hour: it installs a
//! [`TestClock`] on the threads it runs (like tokio's `time::pause`, the
//! clock belongs to the executor's thread; a broker installs one on every
//! shard) and moves it forward with [`TestClock::advance`] or [`advance`].
//!
//! A test clock runs with real time and adds what it was advanced by: time
//! never freezes, so request deadlines still end and clients keep working,
//! and a test that needs something not to happen yet gives it a deadline
//! far beyond the test's own run (an hour, not 30 ms).

use std::cell::RefCell;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

thread_local! {
    static INSTALLED: RefCell<Option<TestClock>> = const { RefCell::new(None) };
}

/// How often a sleeper under a test clock looks whether an advance has
/// ended its sleep (an advance on another thread cannot wake it: see
/// ARCHITECTURE.md, no glommio waker crosses threads).
const TEST_CLOCK_POLL: Duration = Duration::from_millis(5);

/// Real time plus however far the test has moved it; clones share one
/// offset, so every thread that installed a clone sees the same time.
#[derive(Clone, Debug, Default)]
pub struct TestClock {
    ahead_ns: Arc<AtomicU64>,
}

impl TestClock {
    pub fn new() -> TestClock {
        TestClock::default()
    }

    /// Makes this the clock of the calling thread.
    pub fn install(&self) {
        INSTALLED.with(|c| *c.borrow_mut() = Some(self.clone()));
    }

    /// Moves this clock (on every thread that installed it) forward.
    pub fn advance(&self, by: Duration) {
        self.ahead_ns.fetch_add(u64::try_from(by.as_nanos()).unwrap_or(u64::MAX), Ordering::SeqCst);
    }

    fn ahead(&self) -> Duration {
        Duration::from_nanos(self.ahead_ns.load(Ordering::SeqCst))
    }
}

/// Moves the calling thread's test clock forward; false if it has none.
pub fn advance(by: Duration) -> bool {
    INSTALLED.with(|c| c.borrow().as_ref().map(|clock| clock.advance(by)).is_some())
}

/// How far the calling thread's test clock is ahead of real time; `None`
/// without a test clock.
fn ahead() -> Option<Duration> {
    INSTALLED.with(|c| c.borrow().as_ref().map(TestClock::ahead))
}

/// Monotonic time, for deadlines and ages.
pub fn now() -> Instant {
    let now = Instant::now();
    ahead().map_or(now, |ahead| now + ahead)
}

/// Wall-clock time in milliseconds since the Unix epoch, for record
/// timestamps and time-based retention.
pub fn now_ms() -> i64 {
    let wall = SystemTime::now() + ahead().unwrap_or_default();
    wall.duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Waits until [`now`] has moved on by `duration` from this call.
pub fn sleep(duration: Duration) -> impl Future<Output = ()> {
    let deadline = ahead().map(|_| now() + duration);
    async move {
        let Some(deadline) = deadline else {
            return glommio::timer::sleep(duration).await;
        };
        loop {
            let left = deadline.saturating_duration_since(now());
            if left.is_zero() {
                return;
            }
            glommio::timer::sleep(left.min(TEST_CLOCK_POLL)).await;
        }
    }
}

/// `future`'s output, or `None` if [`sleep`]`(duration)` ends first.
pub async fn timeout<T>(duration: Duration, future: impl Future<Output = T>) -> Option<T> {
    let (mut future, mut timer) = (pin!(future), pin!(sleep(duration)));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(value) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(value));
        }
        timer.as_mut().poll(cx).map(|()| None)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_advance_ends_a_sleep_and_moves_both_clocks() {
        crate::LocalExecutor::default().run(async {
            let (start, start_ms) = (now(), now_ms());
            let clock = TestClock::new();
            clock.install();
            let asleep = Instant::now();
            let sleeper = crate::spawn_local(sleep(Duration::from_secs(3600)));
            let other_thread = clock.clone();
            std::thread::spawn(move || other_thread.advance(Duration::from_secs(3600))).join().unwrap();
            sleeper.await;
            assert!(asleep.elapsed() < Duration::from_secs(60), "the advance, not real time, ended the sleep");
            assert!(now() >= start + Duration::from_secs(3600));
            assert!(now_ms() >= start_ms + 3_600_000);
            // A timeout ends when an advance passes its deadline, too. The
            // mover keeps advancing: glommio may run it before the timeout
            // below has taken its deadline.
            let mover = clock.clone();
            crate::spawn_local(async move {
                loop {
                    sleep(Duration::from_millis(10)).await;
                    mover.advance(Duration::from_secs(3600));
                }
            })
            .detach();
            assert_eq!(timeout(Duration::from_secs(3600), std::future::pending::<()>()).await, None);
            assert_eq!(timeout(Duration::from_secs(3600), async { 7 }).await, Some(7));
        });
    }
}
