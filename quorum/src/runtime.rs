//! openraft's [`AsyncRuntime`] on Weir's runtime, for one shard's thread.
//!
//! - Tasks are `weir_runtime::spawn_local` tasks. openraft drops join
//!   handles of tasks that must go on running, as tokio allows; glommio
//!   cancels a task whose handle is dropped, so [`JoinHandle`] detaches it
//!   instead.
//! - Time is `weir_runtime::clock`, so a test clock moves Raft's election
//!   and heartbeat timers too.
//! - Channels and the lock are tokio's runtime-free `sync` channels and
//!   futures' oneshot and mutex: glommio has no watch, oneshot, async mutex
//!   or cloneable local sender. They are thread-safe types, but every end
//!   stays on the one shard that runs Raft, so no waker crosses threads
//!   (ARCHITECTURE.md: glommio 0.9 frees a task twice when one does).
//! - `spawn_blocking` runs the closure in place: the default starts a
//!   thread and wakes the task from it.

use std::fmt;
use std::future::Future;
use std::ops::{Add, AddAssign, Sub, SubAssign};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use openraft_rt::{AsyncRuntime, OptionalSend};
use weir_runtime::{clock, LocalExecutor, LocalExecutorBuilder, Placement, Task};

/// The runtime openraft's type config names (`AsyncRuntime = WeirRuntime`).
/// Only tests build one (`new`, `block_on`): the broker runs Raft on its
/// shard's executor.
pub struct WeirRuntime {
    executor: LocalExecutor,
}

impl fmt::Debug for WeirRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WeirRuntime")
    }
}

/// A task's handle that detaches the task when dropped (see the module doc).
pub struct JoinHandle<T>(Option<Task<T>>);

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.detach();
        }
    }
}

impl<T> Future for JoinHandle<T> {
    /// A panicking task takes its executor down with it, so the join itself
    /// never fails.
    type Output = Result<T, std::convert::Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let task = self.0.as_mut().expect("a join handle polled after it completed");
        Pin::new(task).poll(cx).map(Ok)
    }
}

/// An instant of `weir_runtime::clock`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instant(std::time::Instant);

impl Add<Duration> for Instant {
    type Output = Self;
    fn add(self, by: Duration) -> Self {
        Instant(self.0 + by)
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, by: Duration) {
        self.0 += by;
    }
}

impl Sub<Duration> for Instant {
    type Output = Self;
    fn sub(self, by: Duration) -> Self {
        Instant(self.0 - by)
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, earlier: Instant) -> Duration {
        self.0 - earlier.0
    }
}

impl SubAssign<Duration> for Instant {
    fn sub_assign(&mut self, by: Duration) {
        self.0 -= by;
    }
}

impl openraft_rt::Instant for Instant {
    fn now() -> Self {
        Instant(clock::now())
    }
}

/// `clock::sleep`'s future is unnameable, hence the box.
pub type Sleep = Pin<Box<dyn Future<Output = ()>>>;

fn sleep_until(deadline: Instant) -> Sleep {
    Box::pin(clock::sleep(deadline.0.saturating_duration_since(clock::now())))
}

/// A timeout ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed;

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline elapsed")
    }
}

pin_project_lite::pin_project! {
    /// `fut`, unless `deadline` comes first.
    pub struct Timeout<F> {
        #[pin]
        fut: F,
        deadline: Sleep,
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(value) = this.fut.poll(cx) {
            return Poll::Ready(Ok(value));
        }
        this.deadline.as_mut().poll(cx).map(|()| Err(Elapsed))
    }
}

impl AsyncRuntime for WeirRuntime {
    type JoinError = std::convert::Infallible;
    type JoinHandle<T: OptionalSend + 'static> = JoinHandle<T>;
    type Sleep = Sleep;
    type Instant = Instant;
    type TimeoutError = Elapsed;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = Timeout<T>;
    type ThreadLocalRng = rand::rngs::ThreadRng;
    type Mpsc = mpsc::Channels;
    type Watch = watch::Channels;
    type Oneshot = oneshot::Channels;
    type Mutex<T: OptionalSend + 'static> = Mutex<T>;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        JoinHandle(Some(weir_runtime::spawn_local(future)))
    }

    fn sleep(duration: Duration) -> Sleep {
        Box::pin(clock::sleep(duration))
    }

    fn sleep_until(deadline: Instant) -> Sleep {
        sleep_until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(duration: Duration, fut: F) -> Timeout<F> {
        Timeout { fut, deadline: Box::pin(clock::sleep(duration)) }
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(deadline: Instant, fut: F) -> Timeout<F> {
        Timeout { fut, deadline: sleep_until(deadline) }
    }

    fn is_panic(never: &Self::JoinError) -> bool {
        match *never {}
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        rand::rng()
    }

    fn new(_threads: usize) -> Self {
        let executor = LocalExecutorBuilder::new(Placement::Unbound).make().expect("a glommio executor");
        WeirRuntime { executor }
    }

    fn block_on<F, T>(&mut self, future: F) -> T
    where
        F: Future<Output = T>,
    {
        self.executor.run(future)
    }

    async fn spawn_blocking<F, T>(f: F) -> Result<T, std::io::Error>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        Ok(f())
    }
}

/// openraft's lock, held across awaits.
pub struct Mutex<T>(futures::lock::Mutex<T>);

impl<T: OptionalSend + 'static> openraft_rt::Mutex<T> for Mutex<T> {
    type Guard<'a> = futures::lock::MutexGuard<'a, T>;

    fn new(value: T) -> Self {
        Mutex(futures::lock::Mutex::new(value))
    }

    async fn lock(&self) -> Self::Guard<'_> {
        self.0.lock().await
    }
}

pub mod mpsc {
    //! Bounded multi-producer channels with weak senders.

    use openraft_rt::{Mpsc, MpscReceiver, MpscSender, MpscWeakSender, OptionalSend, SendError, TryRecvError};
    use tokio::sync::mpsc as tokio_mpsc;

    pub struct Channels;
    pub struct Sender<T>(tokio_mpsc::Sender<T>);
    pub struct Receiver<T>(tokio_mpsc::Receiver<T>);
    pub struct WeakSender<T>(tokio_mpsc::WeakSender<T>);

    impl<T> Clone for Sender<T> {
        fn clone(&self) -> Self {
            Sender(self.0.clone())
        }
    }

    impl<T> Clone for WeakSender<T> {
        fn clone(&self) -> Self {
            WeakSender(self.0.clone())
        }
    }

    impl Mpsc for Channels {
        type Sender<T: OptionalSend> = Sender<T>;
        type Receiver<T: OptionalSend> = Receiver<T>;
        type WeakSender<T: OptionalSend> = WeakSender<T>;

        fn channel<T: OptionalSend>(capacity: usize) -> (Sender<T>, Receiver<T>) {
            let (sender, receiver) = tokio_mpsc::channel(capacity);
            (Sender(sender), Receiver(receiver))
        }
    }

    impl<T: OptionalSend> MpscSender<Channels, T> for Sender<T> {
        async fn send(&self, message: T) -> Result<(), SendError<T>> {
            self.0.send(message).await.map_err(|e| SendError(e.0))
        }

        fn downgrade(&self) -> WeakSender<T> {
            WeakSender(self.0.downgrade())
        }
    }

    impl<T: OptionalSend> MpscReceiver<T> for Receiver<T> {
        async fn recv(&mut self) -> Option<T> {
            self.0.recv().await
        }

        fn try_recv(&mut self) -> Result<T, TryRecvError> {
            self.0.try_recv().map_err(|e| match e {
                tokio_mpsc::error::TryRecvError::Empty => TryRecvError::Empty,
                tokio_mpsc::error::TryRecvError::Disconnected => TryRecvError::Disconnected,
            })
        }
    }

    impl<T: OptionalSend> MpscWeakSender<Channels, T> for WeakSender<T> {
        fn upgrade(&self) -> Option<Sender<T>> {
            self.0.upgrade().map(Sender)
        }
    }
}

pub mod watch {
    //! A value that receivers see change (Raft's metrics and progress).

    use openraft_rt::watch::{RecvError, SendError, Watch, WatchReceiver, WatchSender};
    use openraft_rt::{OptionalSend, OptionalSync};
    use tokio::sync::watch as tokio_watch;

    pub struct Channels;
    pub struct Sender<T>(tokio_watch::Sender<T>);
    pub struct Receiver<T>(tokio_watch::Receiver<T>);
    pub struct Ref<'a, T>(tokio_watch::Ref<'a, T>);

    impl<T> Clone for Sender<T> {
        fn clone(&self) -> Self {
            Sender(self.0.clone())
        }
    }

    impl<T> Clone for Receiver<T> {
        fn clone(&self) -> Self {
            Receiver(self.0.clone())
        }
    }

    impl<T> std::ops::Deref for Ref<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            &self.0
        }
    }

    impl Watch for Channels {
        type Sender<T: OptionalSend + OptionalSync> = Sender<T>;
        type Receiver<T: OptionalSend + OptionalSync> = Receiver<T>;
        type Ref<'a, T: OptionalSend + 'a> = Ref<'a, T>;

        fn channel<T: OptionalSend + OptionalSync>(initial: T) -> (Sender<T>, Receiver<T>) {
            let (sender, receiver) = tokio_watch::channel(initial);
            (Sender(sender), Receiver(receiver))
        }
    }

    impl<T: OptionalSend + OptionalSync> WatchSender<Channels, T> for Sender<T> {
        fn send(&self, value: T) -> Result<(), SendError<T>> {
            self.0.send(value).map_err(|e| SendError(e.0))
        }

        fn send_if_modified<F: FnOnce(&mut T) -> bool>(&self, modify: F) -> bool {
            self.0.send_if_modified(modify)
        }

        fn borrow_watched(&self) -> Ref<'_, T> {
            Ref(self.0.borrow())
        }

        fn subscribe(&self) -> Receiver<T> {
            Receiver(self.0.subscribe())
        }
    }

    impl<T: OptionalSend + OptionalSync> WatchReceiver<Channels, T> for Receiver<T> {
        async fn changed(&mut self) -> Result<(), RecvError> {
            self.0.changed().await.map_err(|_| RecvError(()))
        }

        fn borrow_watched(&self) -> Ref<'_, T> {
            Ref(self.0.borrow())
        }

        fn borrow_and_update(&mut self) -> Ref<'_, T> {
            Ref(self.0.borrow_and_update())
        }
    }
}

pub mod oneshot {
    //! One answer, once.

    use futures::channel::oneshot as futures_oneshot;
    use openraft_rt::{Oneshot, OneshotSender, OptionalSend};

    pub struct Channels;
    pub struct Sender<T>(futures_oneshot::Sender<T>);

    impl Oneshot for Channels {
        type Sender<T: OptionalSend> = Sender<T>;
        type Receiver<T: OptionalSend> = futures_oneshot::Receiver<T>;
        type ReceiverError = futures_oneshot::Canceled;

        fn channel<T: OptionalSend>() -> (Sender<T>, futures_oneshot::Receiver<T>) {
            let (sender, receiver) = futures_oneshot::channel();
            (Sender(sender), receiver)
        }
    }

    impl<T: OptionalSend> OneshotSender<T> for Sender<T> {
        fn send(self, value: T) -> Result<(), T> {
            self.0.send(value)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// openraft's own checks of a runtime: spawn, sleep, timeout, select,
    /// the channels, the mutex, task locals.
    #[test]
    fn passes_openrafts_runtime_suite() {
        openraft_rt::testing::Suite::<WeirRuntime>::test_all();
    }

    /// A dropped handle must not cancel its task (openraft drops them).
    #[test]
    fn a_dropped_join_handle_leaves_its_task_running() {
        let mut runtime = WeirRuntime::new(1);
        let (sender, receiver) = futures::channel::oneshot::channel();
        let ran = runtime.block_on(async move {
            drop(WeirRuntime::spawn(async move {
                WeirRuntime::sleep(Duration::from_millis(20)).await;
                let _ = sender.send(());
            }));
            receiver.await.is_ok()
        });
        assert!(ran, "the task whose handle was dropped never finished");
    }
}
