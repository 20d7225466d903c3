//! Changes to the metadata as records (Kafka's metadata records, coarser):
//! the controller plans a change against the current image, which yields the
//! records that make it; committing them (to `metadata.toml`, or the
//! quorum's log) and applying them in order on every broker gives every
//! broker the same image. [`MetadataSnapshot::apply`] is that one
//! deterministic step; it never fails, so planning checks everything first.

use super::acl::{AclBinding, AclChange};
use super::quota::{QuotaAlteration, QuotaEntity, Quotas};
use super::{
    check_assignments, plan_topic, MetadataSnapshot, NewTopic, PartitionIncrease, PartitionState, Reassignment,
    ScramChange, ScramCredential, TopicConfigs, TopicDefaults, TopicMetadata,
};
use crate::config::SecurityProtocol;
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
    /// A broker (re)registered, as builds before named listeners recorded
    /// it (one address); still read from their logs, no longer written.
    Broker(LegacyBrokerRegistration),
    /// A broker fenced (its session with the active controller expired) or
    /// unfenced (heard from again); Kafka's BrokerRegistrationChangeRecord.
    BrokerFenced {
        id: i32,
        fenced: bool,
    },
    /// One partition's replicas and leadership, replaced (Kafka's
    /// PartitionChangeRecord): an election or an ISR change, without
    /// rewriting the whole topic.
    PartitionChange {
        topic: String,
        partition: i32,
        state: PartitionState,
    },
    /// An ACL created (CreateAcls).
    CreateAcl(AclBinding),
    /// An ACL removed (DeleteAcls).
    RemoveAcl(AclBinding),
    /// A partition's reassignment begun or replaced (`Some`), or ended
    /// (`None`: completed or cancelled, by the PartitionChange before it).
    Reassignment {
        topic: String,
        partition: i32,
        reassignment: Option<Reassignment>,
    },
    /// A quota entity's quotas, replaced; empty removes the entity
    /// (AlterClientQuotas).
    ClientQuotas {
        entity: QuotaEntity,
        quotas: Quotas,
    },
    /// A broker (re)registered: how the clients of each of its listeners,
    /// and other brokers, reach it; where it stands.
    RegisterBroker(BrokerRegistration),
}

/// AlterPartition for one partition (Kafka's AlterPartitionRequest
/// partition data): its leader asks for `isr` as the ISR, naming the epochs
/// it knows the partition in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterPartition {
    pub topic: String,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub isr: Vec<i32>,
}

/// ElectLeaders' election types (Kafka's ElectionType).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Election {
    /// The first replica leads, if it is an unfenced in-sync replica.
    Preferred,
    /// A partition without a leader gets one, from outside the ISR if no
    /// member of it is unfenced (which may lose acknowledged records).
    Unclean,
}

/// A partition named by topic and index.
pub type TopicPartition = (String, i32);

/// ElectLeaders' outcome for each partition.
pub type ElectionResults = Vec<(TopicPartition, Result<(), TopicError>)>;

/// A broker as it registered with the controller (Kafka's
/// RegisterBrokerRecord).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub id: i32,
    /// New at every start of the broker process: tells a restart from a
    /// registration sent twice.
    pub incarnation: Uuid,
    /// Where other brokers connect: the advertised address of its
    /// inter-broker listener (of its first listener for a broker alone
    /// without one). A registration without `endpoints` (from before named
    /// listeners) gives it to the clients of every listener.
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
    /// Fenced by the active controller: its session expired. A fenced
    /// broker leads nothing, is in no ISR it could be removed from, is not
    /// listed to clients and gets no new replicas. Absent from files
    /// written before fencing: unfenced.
    #[serde(default)]
    pub fenced: bool,
    /// Its advertised listeners, one per listener name. Absent from the
    /// files (`metadata.toml`, JSON snapshots) of builds before them.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
}

/// One advertised listener of a broker (Kafka's BrokerEndpoint).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The listener name, upper case.
    pub listener: String,
    pub host: String,
    pub port: i32,
    pub protocol: SecurityProtocol,
}

/// A registration as `MetadataRecord::Broker` and the postcard snapshots
/// of builds before named listeners hold it (by position: frozen).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyBrokerRegistration {
    pub id: i32,
    pub incarnation: Uuid,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
    pub fenced: bool,
}

impl From<LegacyBrokerRegistration> for BrokerRegistration {
    fn from(legacy: LegacyBrokerRegistration) -> Self {
        let LegacyBrokerRegistration { id, incarnation, host, port, rack, fenced } = legacy;
        BrokerRegistration { id, incarnation, host, port, rack, fenced, endpoints: Vec::new() }
    }
}

impl BrokerRegistration {
    pub fn slot(&self) -> BrokerSlot {
        BrokerSlot { id: self.id, rack: self.rack.clone() }
    }

    /// Where other brokers connect to it: `host:port`.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Where the clients of listener `listener` are told it is (Kafka lists
    /// a broker to a connection only with the connection's listener name):
    /// its endpoint of that name; a registration from before named
    /// listeners has one address for all.
    pub fn endpoint(&self, listener: &str) -> Option<(&str, i32)> {
        match self.endpoints.is_empty() {
            true => Some((&self.host, self.port)),
            false => self.endpoints.iter().find(|e| e.listener == listener).map(|e| (e.host.as_str(), e.port)),
        }
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
            MetadataRecord::RemoveTopic(name) => {
                self.reassignments.remove(&name);
                return self.topics.remove(&name);
            }
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
            MetadataRecord::Broker(legacy) => self.put_broker(legacy.into()),
            MetadataRecord::RegisterBroker(broker) => self.put_broker(broker),
            MetadataRecord::BrokerFenced { id, fenced } => {
                if let Some(broker) = self.brokers.iter_mut().find(|b| b.id == id) {
                    broker.fenced = fenced;
                }
            }
            MetadataRecord::PartitionChange { topic, partition, state } => {
                let topic = self.topics.get_mut(&topic);
                if let Some(current) = topic.and_then(|t| t.assignment.get_mut(usize::try_from(partition).ok()?)) {
                    *current = state;
                }
            }
            MetadataRecord::CreateAcl(acl) => {
                self.acls.insert(acl);
            }
            MetadataRecord::RemoveAcl(acl) => {
                self.acls.remove(&acl);
            }
            MetadataRecord::Reassignment { topic, partition, reassignment: Some(moving) } => {
                self.reassignments.entry(topic).or_default().insert(partition, moving);
            }
            MetadataRecord::Reassignment { topic, partition, reassignment: None } => {
                if let Some(moving) = self.reassignments.get_mut(&topic) {
                    moving.remove(&partition);
                    if moving.is_empty() {
                        self.reassignments.remove(&topic);
                    }
                }
            }
            MetadataRecord::ClientQuotas { entity, quotas } => self.quotas.set(entity, quotas),
        }
        None
    }

    /// Adds or replaces the registration of `broker.id`.
    fn put_broker(&mut self, broker: BrokerRegistration) {
        match self.brokers.binary_search_by_key(&broker.id, |b| b.id) {
            Ok(i) => self.brokers[i] = broker,
            Err(i) => self.brokers.insert(i, broker),
        }
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
        records.extend(self.acls.iter().cloned().map(MetadataRecord::CreateAcl));
        for (topic, partitions) in &self.reassignments {
            records.extend(partitions.iter().map(|(&partition, moving)| MetadataRecord::Reassignment {
                topic: topic.clone(),
                partition,
                reassignment: Some(moving.clone()),
            }));
        }
        records.extend(
            self.quotas
                .iter()
                .map(|q| MetadataRecord::ClientQuotas { entity: q.entity.clone(), quotas: q.quotas.clone() }),
        );
        records
    }

    /// The registered brokers replicas may be placed on: the unfenced ones.
    pub fn broker_slots(&self) -> Vec<BrokerSlot> {
        self.unfenced_brokers().map(BrokerRegistration::slot).collect()
    }

    /// The registered brokers that are not fenced: those clients are told of.
    pub fn unfenced_brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.iter().filter(|b| !b.fenced)
    }

    /// Whether broker `id` is registered and not fenced.
    pub fn is_unfenced(&self, id: i32) -> bool {
        self.unfenced_brokers().any(|b| b.id == id)
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
    /// configs, credentials, ACLs and producer ids.
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

    /// Creates or removes ACLs (created ones checked by the caller).
    /// Creating one that exists, or removing one already gone (another
    /// DeleteAcls took it), changes nothing, as in Kafka.
    pub fn change_acls(&mut self, change: &AclChange) -> Vec<Result<(), TopicError>> {
        let create = matches!(change, AclChange::Create(_));
        let acls = change.acls();
        for acl in acls {
            match (create, self.image.acls.contains(acl)) {
                (true, false) => self.push(MetadataRecord::CreateAcl(acl.clone())),
                (false, true) => self.push(MetadataRecord::RemoveAcl(acl.clone())),
                _ => {}
            }
        }
        vec![Ok(()); acls.len()]
    }

    /// Applies AlterClientQuotas' alterations (checked by the caller), each
    /// to the entity's quotas as the earlier ones left them.
    pub fn alter_client_quotas(&mut self, alterations: &[QuotaAlteration]) -> Vec<Result<(), TopicError>> {
        for alteration in alterations {
            let quotas = alteration.applied_to(self.image.quotas.get(&alteration.entity));
            self.push(MetadataRecord::ClientQuotas { entity: alteration.entity.clone(), quotas });
        }
        vec![Ok(()); alterations.len()]
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

    /// Registers a broker, or a new start of one, unfenced. Partitions the
    /// image has no assignment for (a `metadata.toml` written before Weir
    /// kept them, by a one-broker Weir) become this broker's alone, in
    /// leader epoch 0, as they were. A broker that was fenced leads again
    /// the partitions it was the last in-sync replica of.
    pub fn register_broker(&mut self, broker: BrokerRegistration) {
        let alone = PartitionState::new(vec![broker.id]);
        let unassigned: Vec<TopicMetadata> =
            (self.image.topics.values()).filter(|t| t.assignment.len() < t.partitions as usize).cloned().collect();
        for mut topic in unassigned {
            let missing = topic.partitions as usize - topic.assignment.len();
            topic.assignment.extend(std::iter::repeat_n(alone.clone(), missing));
            self.push(MetadataRecord::Topic(topic));
        }
        let broker = BrokerRegistration { fenced: false, ..broker };
        if self.image.brokers.iter().all(|b| *b != broker) {
            self.push(MetadataRecord::RegisterBroker(broker.clone()));
            self.elect_offline_leaders();
        }
    }

    /// Fences broker `id` (its session expired), as KRaft does: it leaves
    /// the ISR of every partition (unless it is the last member: the ISR is
    /// never emptied, so the partition can come back with it), and each
    /// partition it led gets the first unfenced replica of the ISR, in
    /// replica order, as leader, or none (-1: offline; never a replica
    /// outside the ISR, as unclean election is off). A broker already
    /// fenced, or not registered, changes nothing.
    pub fn fence_broker(&mut self, id: i32) {
        if !self.image.is_unfenced(id) {
            return;
        }
        self.push(MetadataRecord::BrokerFenced { id, fenced: true });
        self.change_partitions(|state| state.isr.contains(&id), |state| state.isr.retain(|&r| r != id));
    }

    /// Fences broker `broker.id` if another process of it (another
    /// incarnation) is registered: a broker restarted before its session
    /// expired may have lost what it had not flushed, so it must not lead
    /// on as if nothing happened. Kafka refuses its registration until the
    /// old session expires, then fences it; this fences it at once.
    pub fn fence_replaced_incarnation(&mut self, broker: &BrokerRegistration) {
        if self.image.brokers.iter().any(|b| b.id == broker.id && b.incarnation != broker.incarnation) {
            self.fence_broker(broker.id);
        }
    }

    /// Unfences broker `id` (heard from again): partitions without a leader
    /// whose ISR holds it get it as leader. It rejoins other ISRs through
    /// their leaders (AlterPartition) once caught up.
    pub fn unfence_broker(&mut self, id: i32) {
        if self.image.is_unfenced(id) || self.image.brokers.iter().all(|b| b.id != id) {
            return;
        }
        self.push(MetadataRecord::BrokerFenced { id, fenced: false });
        self.elect_offline_leaders();
    }

    /// Elects a leader, where the ISR has an unfenced member, for every
    /// partition that has none.
    fn elect_offline_leaders(&mut self) {
        self.change_partitions(|state| state.leader == -1, |_| {});
    }

    /// For each partition `which` picks: applies `change` to its ISR (not
    /// emptying it), then keeps the leader if it is still an unfenced ISR
    /// member or elects a new one; records each partition that changed,
    /// with partition_epoch + 1 (and leader_epoch + 1 for a new leader).
    fn change_partitions(&mut self, which: impl Fn(&PartitionState) -> bool, change: impl Fn(&mut PartitionState)) {
        let mut changed = Vec::new();
        for topic in self.image.topics.values() {
            for (index, current) in topic.assignment.iter().enumerate().filter(|(_, p)| which(p)) {
                if let Some(state) = self.changed(current, &change) {
                    changed.push((topic.name.clone(), index as i32, state));
                }
            }
        }
        for (topic, partition, state) in changed {
            self.push(MetadataRecord::PartitionChange { topic, partition, state });
        }
    }

    /// [`change_partitions`](Self::change_partitions) for one partition.
    fn change_partition(&mut self, topic: &str, partition: i32, change: impl FnOnce(&mut PartitionState)) {
        let Some(current) = self.image.partition(topic, partition) else { return };
        if let Some(state) = self.changed(current, change) {
            self.push(MetadataRecord::PartitionChange { topic: topic.to_string(), partition, state });
        }
    }

    /// `current` after `change`, with the leader kept or elected and the
    /// epochs raised as [`change_partitions`](Self::change_partitions)
    /// says; `None` if nothing changed.
    fn changed(&self, current: &PartitionState, change: impl FnOnce(&mut PartitionState)) -> Option<PartitionState> {
        let mut state = current.clone();
        change(&mut state);
        if state.isr.is_empty() {
            state.isr = current.isr.clone();
        }
        let eligible = |r: &i32| state.isr.contains(r) && self.image.is_unfenced(*r);
        if !eligible(&state.leader) {
            state.leader = state.replicas.iter().copied().find(eligible).unwrap_or(-1);
        }
        if state == *current {
            return None;
        }
        if state.leader != current.leader {
            state.leader_epoch += 1;
        }
        state.partition_epoch += 1;
        Some(state)
    }

    /// AlterPartitionReassignments for one partition (KIP-455): moves it
    /// to the `target` replicas, or with `None` cancels the move in
    /// progress, back to the replicas it started from. Kafka's checks in
    /// Kafka's order: the partition exists, a cancel has a move to cancel
    /// (else NO_REASSIGNMENT_IN_PROGRESS), the target is a non-empty list
    /// of registered brokers, each once (else INVALID_REPLICA_ASSIGNMENT),
    /// and, unless `allow_rf_change` (KIP-860), as long as the replicas it
    /// replaces. A move in progress is replaced, from the replicas it
    /// started from. While it moves the partition's replicas are the target
    /// followed by those it leaves; it completes at once if the target's
    /// new replicas are in sync already, else when its leader takes the
    /// last of them into the ISR ([`alter_partition`](Self::alter_partition)).
    pub fn reassign(
        &mut self,
        topic: &str,
        partition: i32,
        target: Option<&[i32]>,
        allow_rf_change: bool,
    ) -> Result<(), TopicError> {
        let current = self.image.partition(topic, partition).ok_or(TopicError::Unknown)?;
        let in_progress = self.image.reassignment(topic, partition).cloned();
        let adding = in_progress.as_ref().map_or(&[][..], |m| &m.adding);
        let original: Vec<i32> = current.replicas.iter().copied().filter(|r| !adding.contains(r)).collect();
        let (replicas, moving) = match target {
            None if in_progress.is_none() => return Err(TopicError::NoReassignmentInProgress),
            None => (original.clone(), None),
            Some(target) => {
                let registered: Vec<i32> = self.image.brokers.iter().map(|b| b.id).collect();
                check_assignments(&[target.to_vec()], &registered, None)?;
                if !allow_rf_change && target.len() != original.len() {
                    return Err(TopicError::ReplicationFactorChange { from: original.len(), to: target.len() });
                }
                let adding: Vec<i32> = target.iter().copied().filter(|r| !original.contains(r)).collect();
                let removing: Vec<i32> = original.iter().copied().filter(|r| !target.contains(r)).collect();
                let replicas = target.iter().chain(&removing).copied().collect();
                let moving = (!adding.is_empty() || !removing.is_empty()).then_some(Reassignment { adding, removing });
                (replicas, moving)
            }
        };
        self.change_partition(topic, partition, |state| {
            state.isr.retain(|r| replicas.contains(r));
            if state.isr.is_empty() {
                // Every in-sync replica was one the cancelled move added: as
                // Kafka, the first original replica leads, which may lose
                // records (an unclean election).
                state.isr = vec![original[0]];
            }
            state.replicas = replicas;
        });
        if moving.is_some() || in_progress.is_some() {
            let topic = topic.to_string();
            self.push(MetadataRecord::Reassignment { topic, partition, reassignment: moving });
        }
        self.complete_reassignment(topic, partition);
        Ok(())
    }

    /// Completes the move of `partition` once every replica it adds is in
    /// the ISR and the ISR holds a replica of the target: the replicas it
    /// leaves go (from the ISR too), a leader among them gives way to the
    /// first target replica in sync (a new leader epoch), and the move is
    /// cleared, in the same change.
    fn complete_reassignment(&mut self, topic: &str, partition: i32) {
        let (Some(current), Some(moving)) =
            (self.image.partition(topic, partition), self.image.reassignment(topic, partition))
        else {
            return;
        };
        let caught_up = moving.adding.iter().all(|r| current.isr.contains(r));
        if !caught_up || current.isr.iter().all(|r| moving.removing.contains(r)) {
            return;
        }
        let removing = moving.removing.clone();
        self.change_partition(topic, partition, |state| {
            state.replicas.retain(|r| !removing.contains(r));
            state.isr.retain(|r| !removing.contains(r));
        });
        self.push(MetadataRecord::Reassignment { topic: topic.to_string(), partition, reassignment: None });
    }

    /// ElectLeaders for `partitions`, or, with `None`, for every partition,
    /// leaving out those that need no election (as Kafka answers it).
    pub fn elect_leaders(&mut self, election: Election, partitions: Option<&[TopicPartition]>) -> ElectionResults {
        let every: Vec<TopicPartition>;
        let named = match partitions {
            Some(named) => named,
            None => {
                let topics = self.image.topics.values();
                every = topics.flat_map(|t| (0..t.partitions).map(|p| (t.name.clone(), p))).collect();
                &every
            }
        };
        let results = named
            .iter()
            .map(|(topic, partition)| ((topic.clone(), *partition), self.elect_leader(election, topic, *partition)));
        let results: ElectionResults = results.collect();
        match partitions {
            Some(_) => results,
            None => results.into_iter().filter(|(_, r)| *r != Err(TopicError::ElectionNotNeeded)).collect(),
        }
    }

    /// Automatic leader balance (Kafka's `auto.leader.rebalance.enable`):
    /// for each broker that does not lead more than `percentage` percent of
    /// the partitions it is the preferred replica of, elects it where it is
    /// an unfenced in-sync replica. Returns the partitions that moved.
    pub fn balance_leaders(&mut self, percentage: u32) -> Vec<TopicPartition> {
        // By preferred replica: how many partitions it prefers, and those it does not lead.
        let mut preferred: BTreeMap<i32, (usize, Vec<TopicPartition>)> = BTreeMap::new();
        for topic in self.image.topics.values() {
            for (index, state) in topic.assignment.iter().enumerate() {
                let Some(&first) = state.replicas.first() else { continue };
                let (total, elsewhere) = preferred.entry(first).or_default();
                *total += 1;
                if state.leader != first {
                    elsewhere.push((topic.name.clone(), index as i32));
                }
            }
        }
        let imbalanced =
            preferred.into_values().filter(|(total, elsewhere)| elsewhere.len() * 100 > total * percentage as usize);
        let due: Vec<TopicPartition> = imbalanced.flat_map(|(_, elsewhere)| elsewhere).collect();
        due.into_iter()
            .filter(|(topic, partition)| self.elect_leader(Election::Preferred, topic, *partition).is_ok())
            .collect()
    }

    /// Elects a leader of one partition, as Kafka's controller does: a new
    /// leader epoch and partition epoch, followed by every broker as any
    /// leadership change.
    fn elect_leader(&mut self, election: Election, topic: &str, partition: i32) -> Result<(), TopicError> {
        let current = self.image.partition(topic, partition).ok_or(TopicError::Unknown)?;
        let mut state = current.clone();
        let unfenced = |id: &i32| self.image.is_unfenced(*id);
        match election {
            Election::Preferred => {
                let preferred = current.replicas[0];
                if current.leader == preferred {
                    return Err(TopicError::ElectionNotNeeded);
                }
                if !current.isr.contains(&preferred) || !unfenced(&preferred) {
                    return Err(TopicError::PreferredLeaderNotAvailable);
                }
                state.leader = preferred;
            }
            Election::Unclean => {
                if current.leader >= 0 {
                    return Err(TopicError::ElectionNotNeeded);
                }
                let in_sync = current.replicas.iter().copied().find(|r| current.isr.contains(r) && unfenced(r));
                state.leader = match in_sync {
                    Some(leader) => leader,
                    None => {
                        let leader = current.replicas.iter().copied().find(unfenced);
                        let leader = leader.ok_or(TopicError::EligibleLeadersNotAvailable)?;
                        // It alone holds what the partition has now.
                        state.isr = vec![leader];
                        leader
                    }
                };
            }
        }
        state.leader_epoch += 1;
        state.partition_epoch += 1;
        self.push(MetadataRecord::PartitionChange { topic: topic.to_string(), partition, state });
        Ok(())
    }

    /// AlterPartition from broker `requester`: the partition's ISR
    /// replaced, with Kafka's checks in Kafka's order: the leader epoch
    /// must be the current one (else FENCED_LEADER_EPOCH), the requester
    /// its leader (else INVALID_REQUEST), the partition epoch the current
    /// one (else INVALID_UPDATE_VERSION: another change came first), every
    /// member a replica and unfenced (else INELIGIBLE_REPLICA), the leader
    /// among them. Returns the partition's state then (partition_epoch + 1
    /// if the ISR changed; a reassignment whose new replicas are all in the
    /// ISR now completes in the same change).
    pub fn alter_partition(
        &mut self,
        requester: i32,
        alteration: &AlterPartition,
    ) -> Result<PartitionState, TopicError> {
        let AlterPartition { topic, partition, leader_epoch, partition_epoch, isr } = alteration;
        let (partition, leader_epoch, partition_epoch) = (*partition, *leader_epoch, *partition_epoch);
        let current = self.image.partition(topic, partition).ok_or(TopicError::Unknown)?;
        if leader_epoch != current.leader_epoch {
            return Err(TopicError::FencedLeaderEpoch);
        }
        if requester != current.leader {
            return Err(TopicError::InvalidRequest(format!(
                "broker {requester} does not lead {topic}-{partition}: {} does",
                current.leader
            )));
        }
        if partition_epoch != current.partition_epoch {
            return Err(TopicError::InvalidUpdateVersion);
        }
        let mut unique = isr.clone();
        unique.sort_unstable();
        unique.dedup();
        if unique.len() != isr.len() {
            return Err(TopicError::InvalidRequest(format!("the ISR {isr:?} names a broker twice")));
        }
        if let Some(ineligible) = isr.iter().find(|r| !current.replicas.contains(r) || !self.image.is_unfenced(**r)) {
            return Err(TopicError::IneligibleReplica(format!(
                "broker {ineligible} is not an unfenced replica of {topic}-{partition}"
            )));
        }
        if !isr.contains(&current.leader) {
            return Err(TopicError::InvalidRequest(format!("the ISR {isr:?} leaves out the leader")));
        }
        if *isr == current.isr {
            return Ok(current.clone());
        }
        let state = PartitionState { isr: isr.clone(), partition_epoch: partition_epoch + 1, ..current.clone() };
        self.push(MetadataRecord::PartitionChange { topic: topic.clone(), partition, state });
        self.complete_reassignment(topic, partition);
        self.image.partition(topic, partition).cloned().ok_or(TopicError::Unknown)
    }
}
