//! The metadata of a cluster: the image is the state machine of the
//! metadata quorum (`weir-quorum`, on shard 0 of every voter). Commands are
//! the records a change is made of; every voter applies them in log order,
//! and each applied image is published to the voter's shards.

use crate::metadata::{MetadataRecord, MetadataSnapshot, TopicMetadata};
use crate::shard::Shard;
use futures::channel::oneshot;
use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use weir_quorum::StateMachine;
use weir_runtime::channels::local_channel::{self, LocalReceiver, LocalSender};

/// The metadata image as the quorum's replicated state machine.
pub(crate) struct MetadataMachine {
    image: Arc<MetadataSnapshot>,
    feed: Rc<ImageFeed>,
}

impl MetadataMachine {
    pub fn new(feed: Rc<ImageFeed>) -> Self {
        MetadataMachine { image: Arc::default(), feed }
    }

    /// The image as applied here (not necessarily the newest committed).
    pub fn image(&self) -> Arc<MetadataSnapshot> {
        self.image.clone()
    }
}

impl StateMachine for MetadataMachine {
    type Command = Vec<MetadataRecord>;
    /// The image's version once the records are applied: a broker that
    /// asked for the change waits until its shards serve that version.
    type Response = u64;

    fn apply(&mut self, records: Vec<MetadataRecord>) -> u64 {
        let image = Arc::make_mut(&mut self.image);
        let removed = records.into_iter().filter_map(|record| image.apply(record)).collect();
        self.feed.push(self.image.clone(), removed);
        self.image.version
    }

    fn snapshot(&self) -> Vec<u8> {
        postcard::to_stdvec(&*self.image).expect("the metadata image always encodes")
    }

    fn restore(&mut self, snapshot: &[u8]) -> io::Result<()> {
        let image: MetadataSnapshot =
            postcard::from_bytes(snapshot).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        // Topics gone (or recreated) since the image this replaces: their
        // logs go too.
        let removed = (self.image.topics.values())
            .filter(|old| image.topic(&old.name).is_none_or(|new| new.id != old.id))
            .cloned()
            .collect();
        self.image = Arc::new(image);
        self.feed.push(self.image.clone(), removed);
        Ok(())
    }
}

/// Applied images on their way to the shards: the state machine pushes
/// each one, the publisher gives the newest to every shard (coalescing
/// those that came meanwhile), and callers wait for a version to be
/// served.
pub(crate) struct ImageFeed {
    pending: RefCell<Option<(Arc<MetadataSnapshot>, Vec<TopicMetadata>)>>,
    wake: LocalSender<()>,
    woken: RefCell<Option<LocalReceiver<()>>>,
    published: Cell<u64>,
    waiters: RefCell<Vec<(u64, oneshot::Sender<()>)>>,
}

impl ImageFeed {
    pub fn new() -> Rc<Self> {
        let (wake, woken) = local_channel::new_unbounded();
        Rc::new(ImageFeed {
            pending: RefCell::default(),
            wake,
            woken: RefCell::new(Some(woken)),
            published: Cell::new(0),
            waiters: RefCell::default(),
        })
    }

    fn push(&self, image: Arc<MetadataSnapshot>, removed: Vec<TopicMetadata>) {
        let mut pending = self.pending.borrow_mut();
        let removed = match pending.take() {
            Some((_, mut earlier)) => {
                earlier.extend(removed);
                earlier
            }
            None => removed,
        };
        *pending = Some((image, removed));
        let _ = self.wake.try_send(());
    }

    /// Publishes applied images to every shard of `shard`'s broker, in
    /// order, until the broker stops. Started once, on the controller shard.
    pub async fn publish(self: Rc<Self>, shard: Rc<Shard>) {
        let Some(woken) = self.woken.borrow_mut().take() else { return };
        while woken.recv().await.is_some() {
            let Some((image, removed)) = self.pending.borrow_mut().take() else { continue };
            let version = image.version;
            shard.publish_metadata(image, dedup_removed(removed)).await;
            self.published.set(version);
            let mut waiters = self.waiters.borrow_mut();
            for (_, waiter) in waiters.extract_if(.., |(wanted, _)| *wanted <= version) {
                let _ = waiter.send(());
            }
        }
    }

    /// Waits until the shards serve `version` or a newer image.
    pub async fn published(&self, version: u64) {
        if self.published.get() >= version {
            return;
        }
        let (waiter, served) = oneshot::channel();
        self.waiters.borrow_mut().push((version, waiter));
        let _ = served.await;
    }
}

/// A topic removed twice between publications (removed, recreated,
/// removed) is handed to the shards once per id.
fn dedup_removed(removed: Vec<TopicMetadata>) -> Vec<TopicMetadata> {
    let mut seen = BTreeSet::new();
    removed.into_iter().filter(|t| seen.insert(t.id)).collect()
}
