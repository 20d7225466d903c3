//! The metadata of a cluster: the image is the state machine of the
//! metadata quorum (`weir-quorum`, on shard 0 of every voter). Commands are
//! the records a change is made of; every voter applies them in log order,
//! and each applied image is published to the voter's shards.

use crate::metadata::{
    LegacyBrokerRegistration, MetadataRecord, MetadataSnapshot, ScramCredential, TopicConfigs, TopicMetadata,
};
use crate::shard::Shard;
use crate::topic_config::DynamicBrokerConfigs;
use futures::channel::oneshot;
use serde::Deserialize;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
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
        encode_image(&self.image)
    }

    fn restore(&mut self, snapshot: &[u8]) -> io::Result<()> {
        let image = decode_image(snapshot)?;
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

/// A snapshot's bytes: the image as JSON, by field name, so that a field
/// added to the image later (with `#[serde(default)]`) still reads the
/// snapshots written before it. (Committed records stay postcard, by
/// position: a change of layout is a new `MetadataRecord` variant.)
fn encode_image(image: &MetadataSnapshot) -> Vec<u8> {
    serde_json::to_vec(image).expect("the metadata image always encodes")
}

/// Reads a snapshot: JSON, or the postcard of builds before JSON (whose
/// first byte, the version's varint, may also be `{`, hence the fallback).
fn decode_image(snapshot: &[u8]) -> io::Result<MetadataSnapshot> {
    let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidData, format!("metadata snapshot: {e}"));
    if snapshot.first() != Some(&b'{') {
        return decode_postcard_image(snapshot).map_err(|e| invalid(e.to_string()));
    }
    serde_json::from_slice(snapshot)
        .or_else(|json| decode_postcard_image(snapshot).map_err(|_| invalid(json.to_string())))
}

/// The image as builds before JSON snapshots wrote it: postcard, by
/// position, these fields only. Frozen: what came later is JSON's.
#[derive(Deserialize)]
struct PostcardImage {
    version: u64,
    cluster_id: String,
    next_producer_id: i64,
    topics: BTreeMap<String, TopicMetadata>,
    dynamic_broker_configs: DynamicBrokerConfigs,
    group_configs: BTreeMap<String, TopicConfigs>,
    scram_credentials: BTreeMap<String, BTreeMap<String, ScramCredential>>,
    brokers: Vec<LegacyBrokerRegistration>,
}

fn decode_postcard_image(snapshot: &[u8]) -> postcard::Result<MetadataSnapshot> {
    let image: PostcardImage = postcard::from_bytes(snapshot)?;
    Ok(MetadataSnapshot {
        version: image.version,
        cluster_id: image.cluster_id,
        next_producer_id: image.next_producer_id,
        topics: image.topics,
        dynamic_broker_configs: image.dynamic_broker_configs,
        group_configs: image.group_configs,
        scram_credentials: image.scram_credentials,
        brokers: image.brokers.into_iter().map(Into::into).collect(),
        ..MetadataSnapshot::default()
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::acl::{AclBinding, Operation, PatternType, Permission, ResourceType};
    use crate::metadata::{BrokerRegistration, Endpoint, PartitionState};
    use crate::SecurityProtocol::{Plaintext, SaslSsl};
    use uuid::Uuid;

    /// A broker as builds before named listeners registered it.
    fn legacy_broker() -> LegacyBrokerRegistration {
        LegacyBrokerRegistration {
            id: 1,
            incarnation: Uuid::from_u128(7),
            host: "h".into(),
            port: 9092,
            rack: Some("r".into()),
            fenced: false,
        }
    }

    /// An image with something in every field.
    fn image() -> MetadataSnapshot {
        let credential =
            ScramCredential { salt: vec![1, 2], stored_key: vec![3], server_key: vec![4], iterations: 4096 };
        let configs = TopicConfigs::from([("retention.ms".to_string(), "1000".to_string())]);
        let records = vec![
            MetadataRecord::ClusterId("c".into()),
            MetadataRecord::Broker(legacy_broker()),
            MetadataRecord::RegisterBroker(BrokerRegistration {
                id: 2,
                incarnation: Uuid::new_v4(),
                host: "h2".into(),
                port: 9092,
                rack: None,
                fenced: false,
                endpoints: vec![
                    Endpoint { listener: "INTERNAL".into(), host: "h2".into(), port: 9092, protocol: Plaintext },
                    Endpoint { listener: "EXTERNAL".into(), host: "e2".into(), port: 9093, protocol: SaslSsl },
                ],
            }),
            MetadataRecord::Topic(TopicMetadata {
                name: "t".into(),
                id: Uuid::new_v4(),
                partitions: 1,
                configs: configs.clone(),
                assignment: vec![PartitionState::new(vec![1])],
            }),
            MetadataRecord::DynamicBrokerConfigs { cluster_default: true, configs: configs.clone() },
            MetadataRecord::GroupConfigs { group: "g".into(), configs },
            MetadataRecord::ScramCredentials {
                user: "u".into(),
                credentials: BTreeMap::from([("SCRAM-SHA-256".to_string(), credential)]),
            },
            MetadataRecord::ProducerIdsUpTo(1000),
            MetadataRecord::CreateAcl(AclBinding {
                resource_type: ResourceType::Topic,
                name: "t".into(),
                pattern: PatternType::Literal,
                principal: "User:u".into(),
                host: "*".into(),
                operation: Operation::Read,
                permission: Permission::Allow,
            }),
        ];
        let mut image = MetadataSnapshot::default();
        records.into_iter().for_each(|record| _ = image.apply(record));
        image
    }

    #[test]
    fn a_snapshot_reads_back_as_the_image_it_was() {
        let image = image();
        let snapshot = encode_image(&image);
        assert_eq!(encode_image(&decode_image(&snapshot).unwrap()), snapshot);
    }

    /// The image read from its JSON snapshot without `field`, as a build
    /// before that field wrote it.
    fn read_without(field: &str) -> MetadataSnapshot {
        let mut fields: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&encode_image(&image())).unwrap();
        fields.remove(field).unwrap();
        decode_image(&serde_json::to_vec(&fields).unwrap()).unwrap()
    }

    #[test]
    fn a_snapshot_without_a_field_added_later_reads_with_its_default() {
        let image = read_without("brokers");
        assert!(image.brokers.is_empty());
        assert!(image.topic("t").is_some());
    }

    #[test]
    fn a_snapshot_without_acls_reads_with_none() {
        let image = read_without("acls");
        assert!(image.acls.is_empty());
        assert!(image.topic("t").is_some() && image.scram_credentials.contains_key("u"));
    }

    #[test]
    fn a_snapshot_of_a_build_before_named_listeners_reads_its_brokers_with_one_address_for_all() {
        let mut fields: serde_json::Value = serde_json::from_slice(&encode_image(&image())).unwrap();
        for broker in fields["brokers"].as_array_mut().unwrap() {
            broker.as_object_mut().unwrap().remove("endpoints").unwrap();
        }
        let image = decode_image(&serde_json::to_vec(&fields).unwrap()).unwrap();
        let old = image.brokers.iter().find(|b| b.id == 2).unwrap();
        assert!(old.endpoints.is_empty());
        assert_eq!((old.endpoint("EXTERNAL"), old.endpoint("ANY")), (Some(("h2", 9092)), Some(("h2", 9092))));
    }

    #[test]
    fn a_committed_record_of_a_build_before_named_listeners_still_applies() {
        // Its layout: variant 7 (a varint, as postcard writes an enum's
        // index), then the registration's six fields by position.
        let committed = postcard::to_stdvec(&(7u32, legacy_broker())).unwrap();
        let record: MetadataRecord = postcard::from_bytes(&committed).unwrap();
        assert_eq!(record, MetadataRecord::Broker(legacy_broker()));
        let mut image = MetadataSnapshot::default();
        image.apply(record);
        let broker = &image.brokers[0];
        assert_eq!((broker.address(), broker.endpoint("INTERNAL")), ("h:9092".to_string(), Some(("h", 9092))));
        // A registration with listeners lists the broker only to its own.
        let named = self::image();
        let named = named.brokers.iter().find(|b| b.id == 2).unwrap();
        assert_eq!((named.endpoint("EXTERNAL"), named.endpoint("OTHER")), (Some(("e2", 9093)), None));
    }

    #[test]
    fn a_snapshot_of_an_earlier_build_reads_as_postcard() {
        // Builds before JSON snapshots had no ACLs, no reassignments and
        // no named listeners.
        let image = MetadataSnapshot { acls: Default::default(), ..image() };
        let legacy_brokers = vec![legacy_broker()];
        let image = MetadataSnapshot { brokers: vec![legacy_broker().into()], ..image };
        // The version's varint is the first byte: 123 is `{`.
        for version in [image.version, 123] {
            // Their layout: these fields in this order (a tuple is encoded as a struct).
            let legacy = postcard::to_stdvec(&(
                version,
                &image.cluster_id,
                image.next_producer_id,
                &image.topics,
                &image.dynamic_broker_configs,
                &image.group_configs,
                &image.scram_credentials,
                &legacy_brokers,
            ))
            .unwrap();
            let read = decode_image(&legacy).unwrap();
            assert_eq!(read.version, version);
            assert_eq!(encode_image(&MetadataSnapshot { version: image.version, ..read }), encode_image(&image));
        }
    }

    #[test]
    fn a_damaged_snapshot_is_an_error() {
        let snapshot = encode_image(&image());
        for damaged in [&snapshot[..snapshot.len() / 2], &[0xff; 3][..]] {
            assert_eq!(decode_image(damaged).unwrap_err().kind(), io::ErrorKind::InvalidData);
        }
    }
}
