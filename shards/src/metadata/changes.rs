//! Changes to the metadata as records (Kafka's metadata records, coarser):
//! the controller plans a change against the current image, which yields the
//! records that make it; committing them (to `metadata.toml`, or the
//! quorum's log) and applying them in order on every broker gives every
//! broker the same image. [`MetadataSnapshot::apply`] is that one
//! deterministic step; it never fails, so planning checks everything first.

use super::{
    plan_topic, MetadataSnapshot, NewTopic, PartitionIncrease, PartitionState, ScramChange, ScramCredential,
    TopicConfigs, TopicDefaults, TopicMetadata,
};
use crate::error::TopicError;
use crate::placement::{assign_replicas, BrokerSlot};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Producer ids are reserved a block at a time, as Kafka hands them out, so
/// InitProducerId commits once per block rather than once per producer. A
/// restart, or a new active controller, abandons the rest of a block.
pub const PRODUCER_ID_BLOCK: i64 = 1000;

/// The reserved producer ids the controller hands out.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ProducerIdBlock {
    next: i64,
    end: i64,
}

impl ProducerIdBlock {
    /// The next id; `None` once the block is used up (reserve another with
    /// [`MetadataChanges::reserve_producer_ids`]).
    pub fn take(&mut self) -> Option<i64> {
        let id = self.next;
        (id < self.end).then(|| {
            self.next += 1;
            id
        })
    }
}

/// One change to the metadata image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// The cluster's id, set once when the cluster forms.
    ClusterId(String),
    /// A topic created or changed, whole as it now is.
    Topic(TopicMetadata),
    RemoveTopic(String),
    /// The dynamic configs of the cluster (`cluster_default`) or of this
    /// broker, replaced.
    DynamicBrokerConfigs {
        cluster_default: bool,
        configs: TopicConfigs,
    },
    /// A group's configs, replaced; empty removes them.
    GroupConfigs {
        group: String,
        configs: TopicConfigs,
    },
    /// A user's credentials by mechanism, replaced; empty removes the user.
    ScramCredentials {
        user: String,
        credentials: BTreeMap<String, ScramCredential>,
    },
    /// Producer ids below this may have been handed out.
    ProducerIdsUpTo(i64),
    /// A broker (re)registered: how clients reach it, where it stands.
    Broker(BrokerRegistration),
}

/// A broker as it registered with the controller (Kafka's
/// RegisterBrokerRecord).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub id: i32,
    /// New at every start of the broker process: tells a restart from a
    /// registration sent twice.
    pub incarnation: Uuid,
    /// Where clients connect (the advertised listener).
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl BrokerRegistration {
    pub fn slot(&self) -> BrokerSlot {
        BrokerSlot { id: self.id, rack: self.rack.clone() }
    }
}

impl MetadataSnapshot {
    /// Applies one committed record; returns the topic a `RemoveTopic`
    /// removed.
    pub fn apply(&mut self, record: MetadataRecord) -> Option<TopicMetadata> {
        self.version += 1;
        match record {
            MetadataRecord::ClusterId(id) => self.cluster_id = id,
            MetadataRecord::Topic(topic) => {
                self.topics.insert(topic.name.clone(), topic);
            }
            MetadataRecord::RemoveTopic(name) => return self.topics.remove(&name),
            MetadataRecord::DynamicBrokerConfigs { cluster_default, configs } => {
                let dynamic = &mut self.dynamic_broker_configs;
                *(if cluster_default { &mut dynamic.cluster_default } else { &mut dynamic.broker }) = configs;
            }
            MetadataRecord::GroupConfigs { group, configs } if configs.is_empty() => {
                self.group_configs.remove(&group);
            }
            MetadataRecord::GroupConfigs { group, configs } => {
                self.group_configs.insert(group, configs);
            }
            MetadataRecord::ScramCredentials { user, credentials } if credentials.is_empty() => {
                self.scram_credentials.remove(&user);
            }
            MetadataRecord::ScramCredentials { user, credentials } => {
                self.scram_credentials.insert(user, credentials);
            }
            MetadataRecord::ProducerIdsUpTo(end) => self.next_producer_id = self.next_producer_id.max(end),
            MetadataRecord::Broker(broker) => match self.brokers.binary_search_by_key(&broker.id, |b| b.id) {
                Ok(i) => self.brokers[i] = broker,
                Err(i) => self.brokers.insert(i, broker),
            },
        }
        None
    }

    /// The records that build this image from an empty one; brokers are
    /// left out (they register anew).
    fn as_records(&self) -> Vec<MetadataRecord> {
        let dynamic = &self.dynamic_broker_configs;
        let mut records = vec![
            MetadataRecord::ClusterId(self.cluster_id.clone()),
            MetadataRecord::ProducerIdsUpTo(self.next_producer_id),
            MetadataRecord::DynamicBrokerConfigs { cluster_default: true, configs: dynamic.cluster_default.clone() },
            MetadataRecord::DynamicBrokerConfigs { cluster_default: false, configs: dynamic.broker.clone() },
        ];
        records.extend(self.topics.values().cloned().map(MetadataRecord::Topic));
        records.extend(
            self.group_configs.iter().map(|(group, configs)| MetadataRecord::GroupConfigs {
                group: group.clone(),
                configs: configs.clone(),
            }),
        );
        records.extend(self.scram_credentials.iter().map(|(user, credentials)| MetadataRecord::ScramCredentials {
            user: user.clone(),
            credentials: credentials.clone(),
        }));
        records
    }

    /// The registered brokers replicas may be placed on.
    pub fn broker_slots(&self) -> Vec<BrokerSlot> {
        self.brokers.iter().map(BrokerRegistration::slot).collect()
    }
}

/// Changes planned one after another, each against the image the ones
/// before it leave, to be committed together: each planning method checks
/// its change and, if it is good, records it.
pub struct MetadataChanges {
    image: MetadataSnapshot,
    records: Vec<MetadataRecord>,
}

impl MetadataChanges {
    pub fn new(current: &MetadataSnapshot) -> Self {
        MetadataChanges { image: current.clone(), records: Vec::new() }
    }

    /// The image with the changes so far.
    pub fn image(&self) -> &MetadataSnapshot {
        &self.image
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn into_records(self) -> Vec<MetadataRecord> {
        self.records
    }

    fn push(&mut self, record: MetadataRecord) {
        self.image.apply(record.clone());
        self.records.push(record);
    }

    /// Forms a new cluster from `image` (a one-broker Weir's
    /// `metadata.toml`, or only a new cluster id): its cluster id, topics,
    /// configs, credentials and producer ids.
    pub fn import(&mut self, image: &MetadataSnapshot) {
        for record in image.as_records() {
            self.push(record);
        }
    }

    /// A new topic (configs already validated), placed on the registered
    /// brokers.
    pub fn create_topic(
        &mut self,
        topic: &NewTopic,
        configs: &TopicConfigs,
        defaults: TopicDefaults,
    ) -> Result<TopicMetadata, TopicError> {
        let created = plan_topic(&self.image, topic, configs, defaults)?;
        self.push(MetadataRecord::Topic(created.clone()));
        Ok(created)
    }

    /// Replaces the explicit configs of a topic (already validated).
    pub fn set_topic_configs(&mut self, name: &str, configs: TopicConfigs) -> Result<TopicMetadata, TopicError> {
        let mut topic = self.image.topic(name).ok_or(TopicError::Unknown)?.clone();
        topic.configs = configs;
        self.push(MetadataRecord::Topic(topic.clone()));
        Ok(topic)
    }

    /// Raises a topic's partition count (checked with
    /// [`PartitionIncrease::check`]); returns the topic as it is then. With
    /// `validate_only` nothing is recorded.
    pub fn add_partitions(
        &mut self,
        increase: &PartitionIncrease,
        validate_only: bool,
    ) -> Result<TopicMetadata, TopicError> {
        let current = self.image.topic(&increase.name).ok_or(TopicError::Unknown)?;
        let brokers = self.image.broker_slots();
        let ids: Vec<i32> = brokers.iter().map(|b| b.id).collect();
        increase.check(current, &ids)?;
        let added = increase.count - current.partitions;
        let replicas = match &increase.assignments {
            Some(given) => given.clone(),
            None => {
                let rf = i16::try_from(current.replication_factor()).unwrap_or(i16::MAX);
                assign_replicas(current.partitions, added, rf, &brokers, current.partitions as usize)?
            }
        };
        let mut grown = TopicMetadata { partitions: increase.count, ..current.clone() };
        grown.assignment.extend(replicas.into_iter().map(PartitionState::new));
        if !validate_only {
            self.push(MetadataRecord::Topic(grown.clone()));
        }
        Ok(grown)
    }

    /// Replaces the dynamic broker configs of this broker (`cluster_default`
    /// false) or of the whole cluster (already validated).
    pub fn set_dynamic_broker_configs(&mut self, cluster_default: bool, configs: TopicConfigs) {
        self.push(MetadataRecord::DynamicBrokerConfigs { cluster_default, configs });
    }

    /// Replaces the configs set on consumer group `group` (already validated).
    pub fn set_group_configs(&mut self, group: &str, configs: TopicConfigs) {
        self.push(MetadataRecord::GroupConfigs { group: group.to_string(), configs });
    }

    /// Applies each user's SCRAM changes (checked by the caller: known
    /// mechanisms, acceptable iterations, no duplicates), all of a user's or
    /// none: deleting a credential the user does not have is
    /// `TopicError::Unknown` for that user. Results in the order of `users`.
    pub fn alter_scram_credentials(&mut self, users: &[(String, Vec<ScramChange>)]) -> Vec<Result<(), TopicError>> {
        users
            .iter()
            .map(|(user, changes)| {
                let mut credentials = self.image.scram_credentials.get(user).cloned().unwrap_or_default();
                for change in changes {
                    match change {
                        ScramChange::Delete { mechanism } => {
                            credentials.remove(mechanism).ok_or(TopicError::Unknown)?;
                        }
                        ScramChange::Upsert { mechanism, credential } => {
                            credentials.insert(mechanism.clone(), credential.clone());
                        }
                    }
                }
                self.push(MetadataRecord::ScramCredentials { user: user.clone(), credentials });
                Ok(())
            })
            .collect()
    }

    /// Removes a topic; returns what it was.
    pub fn delete_topic(&mut self, name: &str) -> Result<TopicMetadata, TopicError> {
        let removed = self.image.topic(name).ok_or(TopicError::Unknown)?.clone();
        self.push(MetadataRecord::RemoveTopic(name.to_string()));
        Ok(removed)
    }

    /// Reserves the next block of producer ids.
    pub fn reserve_producer_ids(&mut self) -> ProducerIdBlock {
        let next = self.image.next_producer_id;
        self.push(MetadataRecord::ProducerIdsUpTo(next + PRODUCER_ID_BLOCK));
        ProducerIdBlock { next, end: next + PRODUCER_ID_BLOCK }
    }

    /// Registers a broker, or a new start of one. Partitions the image has
    /// no assignment for (a `metadata.toml` written before Weir kept them,
    /// by a one-broker Weir) become this broker's alone, in leader epoch 0,
    /// as they were.
    pub fn register_broker(&mut self, broker: BrokerRegistration) {
        let alone = PartitionState::new(vec![broker.id]);
        let unassigned: Vec<TopicMetadata> =
            (self.image.topics.values()).filter(|t| t.assignment.len() < t.partitions as usize).cloned().collect();
        for mut topic in unassigned {
            let missing = topic.partitions as usize - topic.assignment.len();
            topic.assignment.extend(std::iter::repeat_n(alone.clone(), missing));
            self.push(MetadataRecord::Topic(topic));
        }
        if self.image.brokers.iter().all(|b| *b != broker) {
            self.push(MetadataRecord::Broker(broker));
        }
    }
}
