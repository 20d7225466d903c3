//! One-shot answers between shards that never move a waker to another thread.
//!
//! glommio 0.9 lets a task's waker be woken or dropped on another thread, but
//! that path races with the owning executor over the task's reference count:
//! a task can be freed twice ("free(): double free detected in tcache 2",
//! reproduced by bench/abort_loop.sh). So here each waker stays in a table of
//! the shard whose task it wakes, and the other shard only says "look at
//! entry k" through a mesh of its own (glommio's shared channels wake their
//! peer executor without handing it a waker). The value itself travels in an
//! `Arc` of plain data.
//!
//! [`channel`] is made on the requesting shard; the [`ReplySender`] goes to
//! the owner with the work, the [`ReplyReceiver`] stays and is awaited.

use futures::channel::oneshot::Canceled;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use weir_runtime::channels::channel_mesh::{MeshBuilder, Senders};
use weir_runtime::channels::shared_channel::ConnectedReceiver;

/// Wake notices one shard may have queued for another before one is sent
/// from a task of its own instead.
const WAKE_CHANNEL_CAPACITY: usize = 1024;

/// "Wake your entry k": the only thing that crosses threads to wake a task.
pub(crate) type WakeMesh = MeshBuilder<u64, weir_runtime::channels::channel_mesh::Full>;

pub(crate) fn wake_mesh(shard_count: usize) -> WakeMesh {
    MeshBuilder::full(shard_count, WAKE_CHANNEL_CAPACITY)
}

/// This shard's wakers, by key, and its way to tell other shards to wake theirs.
struct Wakers {
    shard: usize,
    next_key: Cell<u64>,
    waiting: RefCell<HashMap<u64, Option<Waker>>>,
    peers: Senders<u64>,
}

thread_local! {
    static WAKERS: RefCell<Option<Rc<Wakers>>> = const { RefCell::new(None) };
}

/// Joins the wake mesh on this shard's thread: from now on replies can be
/// made here, and wake notices from the other shards are served.
pub(crate) async fn join(mesh: WakeMesh) -> Result<(), ()> {
    let (peers, mut receivers) = mesh.join().await.map_err(drop)?;
    let wakers = Rc::new(Wakers {
        shard: peers.peer_id(),
        next_key: Cell::new(0),
        waiting: RefCell::new(HashMap::new()),
        peers,
    });
    for (_, from_peer) in receivers.streams() {
        weir_runtime::spawn_local(serve_wakes(wakers.clone(), from_peer)).detach();
    }
    WAKERS.with(|w| *w.borrow_mut() = Some(wakers));
    Ok(())
}

/// Leaves the wake mesh as the shard stops, inside its executor.
pub(crate) fn leave() {
    WAKERS.with(|w| w.borrow_mut().take());
}

async fn serve_wakes(wakers: Rc<Wakers>, from_peer: ConnectedReceiver<u64>) {
    while let Some(key) = from_peer.recv().await {
        wakers.wake_local(key);
    }
}

impl Wakers {
    fn current() -> Option<Rc<Wakers>> {
        WAKERS.try_with(|w| w.borrow().clone()).ok().flatten()
    }

    fn register(&self) -> u64 {
        let key = self.next_key.get();
        self.next_key.set(key + 1);
        self.waiting.borrow_mut().insert(key, None);
        key
    }

    fn set_waker(&self, key: u64, waker: &Waker) {
        if let Some(slot) = self.waiting.borrow_mut().get_mut(&key) {
            if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
                *slot = Some(waker.clone());
            }
        }
    }

    fn forget(&self, key: u64) {
        self.waiting.borrow_mut().remove(&key);
    }

    /// A key of a finished wait (forgotten) is ignored: keys are never reused.
    fn wake_local(&self, key: u64) {
        let waker = self.waiting.borrow_mut().get_mut(&key).and_then(Option::take);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn wake(self: &Rc<Self>, (shard, key): (usize, u64)) {
        if shard == self.shard {
            return self.wake_local(key);
        }
        // The notice must not be lost: when the channel is full, a task of
        // its own waits for room. An error means that shard stopped.
        if self.peers.try_send_to(shard, key).is_err() {
            let wakers = self.clone();
            weir_runtime::spawn_local(async move {
                let _ = wakers.peers.send_to(shard, key).await;
            })
            .detach();
        }
    }
}

/// Run `wake` with this thread's wakers, if it is a shard thread still
/// running (a reply dropped while a thread unwinds wakes nobody: its shard
/// is stopping, and the broker with it).
fn with_wakers(wake: impl FnOnce(&Rc<Wakers>)) {
    if let Some(wakers) = Wakers::current() {
        wake(&wakers);
    }
}

struct Slot<T> {
    value: Mutex<Option<T>>,
    /// The sender sent, or was dropped without sending.
    sender_done: AtomicBool,
    receiver_gone: AtomicBool,
    /// Where the receiver waits: its shard and key there.
    receiver_waits: (usize, u64),
    /// Where the sender waits for the receiver to go, once it does.
    sender_waits: Mutex<Option<(usize, u64)>>,
}

/// A new reply channel, made on (and for) the requesting shard's thread.
///
/// # Panics
/// Off a shard thread that joined the wake mesh.
pub fn channel<T: Send>() -> (ReplySender<T>, ReplyReceiver<T>) {
    let wakers = Wakers::current().expect("replies are made on shard threads");
    let key = wakers.register();
    let slot = Arc::new(Slot {
        value: Mutex::new(None),
        sender_done: AtomicBool::new(false),
        receiver_gone: AtomicBool::new(false),
        receiver_waits: (wakers.shard, key),
        sender_waits: Mutex::new(None),
    });
    (ReplySender { slot: slot.clone(), done: false }, ReplyReceiver { slot, wakers, key })
}

/// The owner's half: answers once, or learns that nobody waits any more.
pub struct ReplySender<T> {
    slot: Arc<Slot<T>>,
    done: bool,
}

impl<T> ReplySender<T> {
    /// Hands `value` to the requester; gives it back if the requester is gone.
    pub fn send(mut self, value: T) -> Result<(), T> {
        if self.slot.receiver_gone.load(Ordering::SeqCst) {
            return Err(value);
        }
        *self.slot.value.lock().unwrap_or_else(|e| e.into_inner()) = Some(value);
        self.finish();
        Ok(())
    }

    fn finish(&mut self) {
        self.done = true;
        self.slot.sender_done.store(true, Ordering::SeqCst);
        // A receiver that is gone needs no notice (a long poll answered
        // early drops its owners' second answers).
        if !self.slot.receiver_gone.load(Ordering::SeqCst) {
            let receiver = self.slot.receiver_waits;
            with_wakers(|wakers| wakers.wake(receiver));
        }
    }

    /// Resolves once the requester dropped its [`ReplyReceiver`].
    pub fn cancellation(&mut self) -> Cancellation<'_, T> {
        Cancellation { sender: self, key: None }
    }
}

impl<T> Drop for ReplySender<T> {
    fn drop(&mut self) {
        if !self.done {
            self.finish();
        }
    }
}

/// [`ReplySender::cancellation`]'s future.
pub struct Cancellation<'a, T> {
    sender: &'a ReplySender<T>,
    /// This wait's key on the sender's shard, once polled there.
    key: Option<(Rc<Wakers>, u64)>,
}

impl<T> Future for Cancellation<'_, T> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let slot = &this.sender.slot;
        if slot.receiver_gone.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        let (wakers, key) = this.key.get_or_insert_with(|| {
            let wakers = Wakers::current().expect("replies are awaited on shard threads");
            let key = wakers.register();
            *slot.sender_waits.lock().unwrap_or_else(|e| e.into_inner()) = Some((wakers.shard, key));
            (wakers, key)
        });
        wakers.set_waker(*key, cx.waker());
        // Checked again after saying where to wake us: the receiver reads
        // `sender_waits` only after it marks itself gone.
        if slot.receiver_gone.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl<T> Drop for Cancellation<'_, T> {
    fn drop(&mut self) {
        if let Some((wakers, key)) = self.key.take() {
            *self.sender.slot.sender_waits.lock().unwrap_or_else(|e| e.into_inner()) = None;
            wakers.forget(key);
        }
    }
}

/// The requester's half: the answer, or `Canceled` if the sender was
/// dropped without one.
pub struct ReplyReceiver<T> {
    slot: Arc<Slot<T>>,
    wakers: Rc<Wakers>,
    key: u64,
}

impl<T> Future for ReplyReceiver<T> {
    type Output = Result<T, Canceled>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // The notice comes through this thread's mesh receiver after
        // `sender_done` is set, so a check after setting the waker misses nothing.
        self.wakers.set_waker(self.key, cx.waker());
        if !self.slot.sender_done.load(Ordering::SeqCst) {
            return Poll::Pending;
        }
        let value = self.slot.value.lock().unwrap_or_else(|e| e.into_inner()).take();
        Poll::Ready(value.ok_or(Canceled))
    }
}

impl<T> Drop for ReplyReceiver<T> {
    fn drop(&mut self) {
        self.wakers.forget(self.key);
        self.slot.receiver_gone.store(true, Ordering::SeqCst);
        let sender = *self.slot.sender_waits.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sender) = sender {
            self.wakers.wake(sender);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_runtime::{LocalExecutorPoolBuilder, PoolPlacement};

    /// What shard 0 hands shard 1 in each case: senders travel over a mesh
    /// like the work that carries them in the broker.
    enum Case {
        Answer(ReplySender<u32>),
        DropUnanswered(ReplySender<u32>),
        WaitForRequesterToGo(ReplySender<u32>),
        /// From shard 1: it saw all the cases through.
        Done,
    }

    /// Two executors on their own threads: an answer arrives, a sender
    /// dropped unanswered reads as `Canceled`, and a receiver dropped on
    /// shard 0 ends shard 1's wait for it (else the test hangs).
    #[test]
    fn replies_and_cancellations_cross_threads() {
        let mesh = MeshBuilder::<Case, _>::full(2, 4);
        let wakes = wake_mesh(2);
        let outcomes = LocalExecutorPoolBuilder::new(PoolPlacement::Unbound(2))
            .on_all_shards(move || async move {
                let (senders, mut receivers) = mesh.join().await.unwrap();
                join(wakes).await.unwrap();
                let outcome = if senders.peer_id() == 0 {
                    let (tx, rx) = channel();
                    senders.send_to(1, Case::Answer(tx)).await.ok().unwrap();
                    let answered = rx.await;
                    let (tx, rx) = channel();
                    senders.send_to(1, Case::DropUnanswered(tx)).await.ok().unwrap();
                    let dropped = rx.await;
                    let (tx, rx) = channel::<u32>();
                    senders.send_to(1, Case::WaitForRequesterToGo(tx)).await.ok().unwrap();
                    weir_runtime::clock::sleep(std::time::Duration::from_millis(50)).await;
                    drop(rx);
                    let (_, from_1) = receivers.streams().pop().unwrap();
                    assert!(matches!(from_1.recv().await, Some(Case::Done)));
                    format!("{answered:?} {dropped:?}")
                } else {
                    let (_, from_0) = receivers.streams().pop().unwrap();
                    let mut seen = Vec::new();
                    while let Some(case) = from_0.recv().await {
                        match case {
                            Case::Answer(tx) => seen.push(tx.send(7).is_ok()),
                            Case::DropUnanswered(tx) => drop(tx),
                            Case::WaitForRequesterToGo(mut tx) => {
                                tx.cancellation().await;
                                seen.push(tx.send(8).is_err());
                                senders.send_to(0, Case::Done).await.ok().unwrap();
                                break;
                            }
                            Case::Done => unreachable!("shard 0 sends no Done"),
                        }
                    }
                    format!("{seen:?}")
                };
                leave();
                outcome
            })
            .unwrap()
            .join_all();
        let outcomes: Vec<String> = outcomes.into_iter().map(Result::unwrap).collect();
        assert_eq!(outcomes, ["Ok(7) Err(Canceled)", "[true, true]"]);
    }
}
