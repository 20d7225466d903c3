//! The controller: where topic and config changes are decided and
//! committed, and producer ids handed out, one change at a time. It lives
//! on [`CONTROLLER_SHARD`]; other shards reach it with
//! `Shard::on_controller`. Each committed change is published to every
//! shard (`Shard::publish_metadata`).
//!
//! A broker that is its own controller (no quorum configured) commits to
//! its [`MetadataStore`]. In a cluster, one voter of the metadata quorum,
//! its leader, is the active controller: the other brokers' controllers
//! send it their requests ([`Request`], through `ask_leader`); it plans
//! them against the newest image and commits the records to the quorum's
//! log ([`quorum`]), and every broker publishes what its copy applies.
//! Every broker also sends it a heartbeat every
//! `broker_heartbeat_interval_ms`, outside the log; it fences a broker
//! silent for `broker_session_timeout_ms` ([`sessions`]), electing new
//! leaders for the partitions it led. A broker that stops asks for the same
//! in its heartbeats first (controlled shutdown), so that its partitions
//! move before it goes rather than a session timeout after. Leadership
//! goes back to the preferred replicas when asked (ElectLeaders) and, every
//! `leader_imbalance_check_interval_seconds`, where too many of a broker's
//! preferred partitions are led elsewhere (automatic leader balance).
//!
//! [`CONTROLLER_SHARD`]: crate::ownership::CONTROLLER_SHARD

mod quorum;
mod sessions;

use crate::config::BrokerConfig;
use crate::error::TopicError;
use crate::messages::TopicResults;
use crate::metadata::acl::AclChange;
use crate::metadata::quota::QuotaAlteration;
use crate::metadata::{
    AlterPartition, BrokerRegistration, ConfigAlteration, ConfigScope, ConfigTarget, Election, ElectionResults,
    MetadataChanges, MetadataSnapshot, MetadataStore, NewTopic, PartitionIncrease, PartitionState, ProducerIdBlock,
    ScramChange, TopicConfigs, TopicPartition,
};
use crate::shard::{is_internal_topic, Shard};
use crate::topic_config::{dynamic_broker_config_name, DynamicBrokerConfigs};
use futures::future::LocalBoxFuture;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sessions::{BrokerSessions, SessionChanges};
use std::cell::{Cell, OnceCell, RefCell};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;
use weir_quorum::{AskHandler, QuorumConfig, QuorumError, QuorumNode, QuorumStatus};
use weir_runtime::sync::{Permit, Semaphore};

pub(crate) use quorum::{ImageFeed, MetadataMachine};

/// How long a change waits for an active controller (through elections)
/// before it is answered as unavailable.
const DECIDE_TIMEOUT: Duration = Duration::from_secs(15);
/// The pause between tries while no controller answers.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// How long a decided change waits for this broker's shards to serve it
/// (a broker cut off from the quorum may not get it soon).
const PUBLISH_WAIT: Duration = Duration::from_secs(15);
/// How often the active controller looks for expired broker sessions (and
/// fenced brokers heard from again): fencing comes at most this late after
/// the session timeout.
const SESSION_CHECK_EVERY: Duration = Duration::from_millis(100);
/// How long the active controller, shutting down, waits for the voter it
/// hands the quorum's leadership to to take over (an election round trip).
const QUORUM_HANDOVER_WAIT: Duration = Duration::from_secs(2);
/// How often a broker shutting down looks whether the image it serves
/// still has it lead a partition.
const HANDOVER_CHECK_EVERY: Duration = Duration::from_millis(50);

pub(crate) struct Controller {
    metadata: Metadata,
    /// One change at a time, so that each is planned against the image the
    /// one before left, and snapshots are published in order.
    changes: Semaphore,
    /// This broker's producer ids (each broker reserves its own blocks).
    producer_ids: RefCell<ProducerIdBlock>,
    /// Set once this broker began its controlled shutdown: its heartbeats
    /// ask the active controller to keep it fenced from then on.
    shutting_down: Cell<bool>,
    config: Arc<BrokerConfig>,
}

/// Where the metadata is decided and kept.
enum Metadata {
    /// A broker that is its own controller.
    Own(RefCell<MetadataStore>),
    /// A voter of the metadata quorum.
    Quorum {
        /// Set once the quorum started, after the shard (which its
        /// `ask_leader` handler reaches) exists.
        node: OnceCell<QuorumNode<MetadataMachine>>,
        feed: Rc<ImageFeed>,
        /// What a new cluster starts from: the `metadata.toml` of a broker
        /// that was its own controller (an upgrade), or only a new cluster id.
        import: Arc<MetadataSnapshot>,
        /// While this voter is the active controller: the brokers' sessions.
        sessions: RefCell<BrokerSessions>,
    },
}

/// A change asked of the active controller.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Request {
    CreateTopics(Vec<(NewTopic, TopicConfigs)>),
    AlterConfigs {
        alterations: Vec<(ConfigTarget, ConfigAlteration)>,
        validate_only: bool,
    },
    CreatePartitions {
        increases: Vec<PartitionIncrease>,
        validate_only: bool,
    },
    DeleteTopics(Vec<String>),
    AlterScramCredentials(Vec<(String, Vec<ScramChange>)>),
    ReserveProducerIds,
    RegisterBroker(BrokerRegistration),
    /// A partition's leader, `requester`, replaces its ISR.
    AlterPartition {
        requester: i32,
        alteration: AlterPartition,
    },
    ChangeAcls(AclChange),
    /// ElectLeaders for these partitions; `None`: every partition.
    ElectLeaders {
        election: Election,
        partitions: Option<Vec<TopicPartition>>,
    },
    /// AlterPartitionReassignments: each partition to its target replicas,
    /// or (`None`) back from the move in progress.
    AlterReassignments {
        reassignments: Vec<(TopicPartition, Option<Vec<i32>>)>,
        allow_replication_factor_change: bool,
    },
    /// AlterClientQuotas, checked.
    AlterClientQuotas(Vec<QuotaAlteration>),
}

/// What a broker asks the active controller: a change to decide, or that
/// it is alive (answered from memory, never logged, and not queued behind
/// changes), and whether it wants to shut down (Kafka's WantShutDown). The
/// encoding is postcard's, by position: every voter must run the same
/// build (a broker of another one gets its questions refused).
#[derive(Debug, Serialize, Deserialize)]
enum Question {
    Change(Request),
    Heartbeat {
        id: i32,
        incarnation: Uuid,
        wants_shutdown: bool,
    },
    /// DescribeQuorum: the leader's view (new variants go last: brokers of
    /// an older build answer one they do not know with nothing).
    DescribeQuorum,
}

/// Why DescribeQuorum has no answer.
#[derive(Debug)]
pub enum QuorumUnknown {
    /// This broker is its own controller: there is no quorum.
    NoQuorum,
    /// The quorum's leader could not be asked.
    Unavailable(QuorumError),
}

/// The active controller's answer, one result per item asked.
#[derive(Debug, Serialize, Deserialize)]
enum Decision {
    Topics(TopicResults),
    Done(Vec<Result<(), TopicError>>),
    ProducerIds(Result<ProducerIdBlock, TopicError>),
    Partition(Result<PartitionState, TopicError>),
    Elections(Result<ElectionResults, TopicError>),
}

impl Request {
    /// How many results the answer has.
    fn items(&self) -> usize {
        match self {
            Request::CreateTopics(topics) => topics.len(),
            Request::AlterConfigs { alterations, .. } => alterations.len(),
            Request::CreatePartitions { increases, .. } => increases.len(),
            Request::DeleteTopics(names) => names.len(),
            Request::AlterScramCredentials(users) => users.len(),
            Request::ChangeAcls(change) => change.acls().len(),
            Request::AlterReassignments { reassignments, .. } => reassignments.len(),
            Request::AlterClientQuotas(alterations) => alterations.len(),
            Request::ReserveProducerIds
            | Request::RegisterBroker(_)
            | Request::AlterPartition { .. }
            | Request::ElectLeaders { .. } => 1,
        }
    }

    /// The answer when no controller decided it.
    fn unavailable(&self) -> Decision {
        let count = self.items();
        match self {
            Request::CreateTopics(_) | Request::CreatePartitions { .. } | Request::DeleteTopics(_) => {
                Decision::Topics(vec![Err(TopicError::ControllerUnavailable); count])
            }
            Request::ReserveProducerIds => Decision::ProducerIds(Err(TopicError::ControllerUnavailable)),
            Request::AlterPartition { .. } => Decision::Partition(Err(TopicError::ControllerUnavailable)),
            Request::ElectLeaders { .. } => Decision::Elections(Err(TopicError::ControllerUnavailable)),
            _ => Decision::Done(vec![Err(TopicError::ControllerUnavailable); count]),
        }
    }
}

impl Decision {
    /// Every result that planned a change fails with `error`.
    fn fail(&mut self, error: &TopicError) {
        fn fail_all<T>(results: &mut [Result<T, TopicError>], error: &TopicError) {
            results.iter_mut().filter(|r| r.is_ok()).for_each(|r| *r = Err(error.clone()));
        }
        match self {
            Decision::Topics(results) => fail_all(results, error),
            Decision::Done(results) => fail_all(results, error),
            Decision::ProducerIds(result) => fail_all(std::slice::from_mut(result), error),
            Decision::Partition(result) => fail_all(std::slice::from_mut(result), error),
            Decision::Elections(Ok(results)) => {
                results.iter_mut().for_each(|(_, r)| fail_all(std::slice::from_mut(r), error))
            }
            Decision::Elections(Err(_)) => {}
        }
    }

    fn into_topics(self, count: usize) -> TopicResults {
        match self {
            Decision::Topics(results) if results.len() == count => results,
            _ => vec![Err(TopicError::ControllerUnavailable); count],
        }
    }

    fn into_done(self, count: usize) -> Vec<Result<(), TopicError>> {
        match self {
            Decision::Done(results) if results.len() == count => results,
            _ => vec![Err(TopicError::ControllerUnavailable); count],
        }
    }
}

impl Controller {
    /// The controller of a broker that is its own.
    pub fn own(store: MetadataStore, config: Arc<BrokerConfig>) -> Self {
        Controller::new(Metadata::Own(RefCell::new(store)), config)
    }

    /// The controller of a quorum voter; [`start_quorum`](Self::start_quorum)
    /// starts its quorum. `import` is what a new cluster starts from.
    pub fn voter(import: Arc<MetadataSnapshot>, config: Arc<BrokerConfig>) -> Self {
        let sessions = RefCell::new(BrokerSessions::new(Duration::from_millis(config.broker_session_timeout_ms)));
        let metadata = Metadata::Quorum { node: OnceCell::new(), feed: ImageFeed::new(), import, sessions };
        Controller::new(metadata, config)
    }

    fn new(metadata: Metadata, config: Arc<BrokerConfig>) -> Self {
        Controller {
            metadata,
            changes: Semaphore::new(1),
            producer_ids: RefCell::default(),
            shutting_down: Cell::new(false),
            config,
        }
    }

    /// Starts this voter's quorum node, publishes what it applies to the
    /// shards of `shard`'s broker, and registers the broker; returns once
    /// it is registered (a quorum has formed), its heartbeats started.
    pub async fn start_quorum(&self, shard: &Rc<Shard>, quorum: QuorumConfig) -> Result<(), String> {
        let Metadata::Quorum { node, feed, .. } = &self.metadata else { return Ok(()) };
        let started = QuorumNode::start(quorum, MetadataMachine::new(feed.clone()), ask_handler(Rc::downgrade(shard)));
        let started = started.await.map_err(|e| format!("cannot start the metadata quorum: {e}"))?;
        let leaders = started.leader_changes();
        let _ = node.set(started);
        weir_runtime::spawn_local(feed.clone().publish(shard.clone())).detach();
        let follower = shard.clone();
        weir_runtime::spawn_local(async move {
            let mut leaders = std::pin::pin!(leaders);
            while let Some(leader) = leaders.next().await {
                let leader = leader.and_then(|id| i32::try_from(id).ok()).unwrap_or(-1);
                tracing::info!(leader, "active controller");
                follower.set_active_controller(leader);
            }
        })
        .detach();
        let registration = self.config.registration()?;
        loop {
            let registered = self.decide(shard, Request::RegisterBroker(registration.clone())).await.into_done(1);
            match registered.into_iter().next() {
                Some(Ok(())) => break,
                Some(Err(e)) => tracing::warn!("registering with the metadata quorum: {e}; trying again"),
                None => {}
            }
            weir_runtime::clock::sleep(RETRY_PAUSE).await;
        }
        weir_runtime::spawn_local(send_heartbeats(shard.clone())).detach();
        weir_runtime::spawn_local(watch_sessions(shard.clone())).detach();
        if self.config.auto_leader_rebalance_enable {
            weir_runtime::spawn_local(balance_leaders(shard.clone())).detach();
        }
        Ok(())
    }

    /// This voter's quorum node, once started.
    fn quorum_node(&self) -> Option<&QuorumNode<MetadataMachine>> {
        match &self.metadata {
            Metadata::Own(_) => None,
            Metadata::Quorum { node, .. } => node.get(),
        }
    }

    /// The sessions of the active controller, kept in the term it leads in
    /// now; `None` unless this voter leads.
    fn led_sessions(&self) -> Option<(&QuorumNode<MetadataMachine>, &RefCell<BrokerSessions>)> {
        let Metadata::Quorum { node, sessions, .. } = &self.metadata else { return None };
        let node = node.get().filter(|node| node.is_leader())?;
        sessions.borrow_mut().lead_in(node.metrics().current_term);
        Some((node, sessions))
    }

    /// A heartbeat from broker `id` in `incarnation`, on the active
    /// controller: whether it is the registered incarnation (`None` unless
    /// this voter leads). One that wants to shut down is fenced at the next
    /// session check, which moves the leadership of its partitions.
    fn heartbeat(&self, id: i32, incarnation: Uuid, wants_shutdown: bool) -> Option<bool> {
        let (node, sessions) = self.led_sessions()?;
        let image = node.read(MetadataMachine::image);
        Some(sessions.borrow_mut().heard(&image, id, incarnation, wants_shutdown, weir_runtime::clock::now()))
    }

    /// This broker's heartbeat as it stands.
    fn own_heartbeat(&self) -> Question {
        let (id, incarnation) = (self.config.node_id, self.config.incarnation);
        Question::Heartbeat { id, incarnation, wants_shutdown: self.shutting_down.get() }
    }

    /// Controlled shutdown (KIP-631): has the active controller fence this
    /// broker, which takes it out of every ISR and gives each partition it
    /// leads another in-sync replica as leader (or none, where it is the
    /// last one), and returns once the image this broker serves has it
    /// fenced, so that its clients were told to go elsewhere and no leader
    /// waits for it as a follower. Every heartbeat asks for it from now on,
    /// the first at once. The caller bounds the wait: without an active
    /// controller, nothing moves.
    pub async fn shut_down_controlled(&self, shard: &Shard) {
        let Some(node) = self.quorum_node() else { return };
        if !self.serves_self_unfenced(shard) {
            return;
        }
        let leading = shard.metadata().partitions_led_by(self.config.node_id);
        tracing::info!("controlled shutdown: leading {leading} partitions, asking the controller to move them");
        self.shutting_down.set(true);
        send_heartbeat(node, &self.own_heartbeat(), self.heartbeat_interval()).await;
        while self.serves_self_unfenced(shard) {
            weir_runtime::clock::sleep(HANDOVER_CHECK_EVERY).await;
        }
        tracing::info!("controlled shutdown: fenced, this broker leads nothing now");
        // The active controller stopping would leave the quorum leaderless
        // for an election timeout and more (the followers grant it a lease):
        // another voter takes over now instead.
        if node.is_leader() {
            let moved = node.hand_over_leadership(QUORUM_HANDOVER_WAIT).await;
            tracing::info!(?moved, "controlled shutdown: metadata quorum leadership handed to another voter");
        }
        tracing::info!("controlled shutdown: stopping");
    }

    /// Whether the image `shard` serves has this process registered and
    /// unfenced (not so before it registered).
    fn serves_self_unfenced(&self, shard: &Shard) -> bool {
        let (id, incarnation) = (self.config.node_id, self.config.incarnation);
        shard.metadata().unfenced_brokers().any(|b| b.id == id && b.incarnation == incarnation)
    }

    fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.config.broker_heartbeat_interval_ms)
    }

    /// On the active controller: fences the brokers whose session expired
    /// and unfences those heard from again (checked first against the
    /// image applied here, so that nothing is committed while nothing is
    /// due).
    async fn check_sessions(&self, shard: &Shard) {
        let Some((node, sessions)) = self.led_sessions() else { return };
        let now = weir_runtime::clock::now();
        if sessions.borrow_mut().changes(&node.read(MetadataMachine::image), now).is_empty() {
            return;
        }
        let mut planned = SessionChanges::default();
        let decided = self.commit_planned(shard, |changes| {
            planned = self.plan_sessions(changes, now);
            Decision::Done(Vec::new())
        });
        match decided.await {
            Ok(_) if planned.is_empty() => {}
            Ok(_) => tracing::info!(fenced = ?planned.fence, unfenced = ?planned.unfence, "broker sessions changed"),
            Err(e) => tracing::warn!("fencing or unfencing brokers: {e}"),
        }
    }

    /// Plans the fencing and unfencing the sessions call for against the
    /// newest image.
    fn plan_sessions(&self, changes: &mut MetadataChanges, now: Instant) -> SessionChanges {
        let Metadata::Quorum { sessions, .. } = &self.metadata else { return SessionChanges::default() };
        let due = sessions.borrow_mut().changes(changes.image(), now);
        due.fence.iter().for_each(|&id| changes.fence_broker(id));
        due.unfence.iter().for_each(|&id| changes.unfence_broker(id));
        due
    }

    /// On the active controller: automatic leader balance, the partitions
    /// of brokers over `leader_imbalance_per_broker_percentage` led by their
    /// preferred replicas again (where in sync and unfenced).
    async fn balance_leaders(&self, shard: &Shard) {
        if !self.quorum_node().is_some_and(QuorumNode::is_leader) {
            return;
        }
        let percentage = self.config.leader_imbalance_per_broker_percentage;
        let mut moved = Vec::new();
        let decided = self.commit_planned(shard, |changes| {
            moved = changes.balance_leaders(percentage);
            Decision::Done(Vec::new())
        });
        match decided.await {
            Ok(_) if moved.is_empty() => {}
            Ok(_) => tracing::info!(?moved, "leadership balanced back to the preferred replicas"),
            Err(e) => tracing::warn!("balancing leadership: {e}"),
        }
    }

    async fn one_change_at_a_time(&self) -> Permit<'_> {
        self.changes.acquire_permit(1).await.expect("the controller's semaphore is never closed")
    }

    /// Has `request` decided by the active controller (this one, or
    /// another voter), then waits until this broker's shards serve the
    /// result.
    async fn decide(&self, shard: &Shard, request: Request) -> Decision {
        let (node, feed) = match &self.metadata {
            Metadata::Own(_) => {
                let unavailable = request.unavailable();
                return self.decide_here(shard, request).await.map_or(unavailable, |(_, decision)| decision);
            }
            Metadata::Quorum { node, feed, .. } => match node.get() {
                Some(node) => (node, feed),
                None => return request.unavailable(),
            },
        };
        let deadline = weir_runtime::clock::now() + DECIDE_TIMEOUT;
        loop {
            let answer = if node.is_leader() {
                self.decide_here(shard, request.clone()).await
            } else {
                ask_active_controller(node, &Question::Change(request.clone())).await
            };
            match answer {
                Ok((version, decision)) => {
                    if weir_runtime::clock::timeout(PUBLISH_WAIT, feed.published(version)).await.is_none() {
                        tracing::warn!(version, "a decided metadata change is not applied here yet");
                    }
                    return decision;
                }
                Err(e) if e.is_retriable() && weir_runtime::clock::now() < deadline => {
                    tracing::debug!("no active controller yet: {e}");
                    weir_runtime::clock::sleep(RETRY_PAUSE).await;
                }
                Err(e) => {
                    tracing::warn!("the metadata quorum did not decide a change: {e}");
                    return request.unavailable();
                }
            }
        }
    }

    /// Decides `request` as the active controller: plans it against the
    /// newest image and commits its records. Returns the image version
    /// that holds them.
    async fn decide_here(&self, shard: &Shard, request: Request) -> Result<(u64, Decision), QuorumError> {
        self.commit_planned(shard, |changes| self.plan(changes, request)).await
    }

    /// As the active controller, plans a change with `plan` against the
    /// newest image and commits its records; returns the image version
    /// that holds them.
    async fn commit_planned(
        &self,
        shard: &Shard,
        plan: impl FnOnce(&mut MetadataChanges) -> Decision,
    ) -> Result<(u64, Decision), QuorumError> {
        let _serial = self.one_change_at_a_time().await;
        let image = match &self.metadata {
            Metadata::Own(store) => store.borrow().snapshot(),
            Metadata::Quorum { node, .. } => {
                let node = node.get().ok_or(QuorumError::NoLeader)?;
                node.ensure_linearizable().await?;
                node.read(MetadataMachine::image)
            }
        };
        let mut changes = MetadataChanges::new(&image);
        if let Metadata::Quorum { import, .. } = &self.metadata {
            if image.cluster_id.is_empty() {
                changes.import(import);
            }
        }
        let mut decision = plan(&mut changes);
        if changes.is_empty() {
            return Ok((image.version, decision));
        }
        match &self.metadata {
            Metadata::Own(store) => {
                let committed = store.borrow_mut().commit(changes);
                match committed {
                    Ok(deleted) => {
                        let snapshot = store.borrow().snapshot();
                        shard.publish_metadata(snapshot.clone(), deleted).await;
                        Ok((snapshot.version, decision))
                    }
                    Err(e) => {
                        decision.fail(&e);
                        Ok((image.version, decision))
                    }
                }
            }
            Metadata::Quorum { node, .. } => {
                let node = node.get().ok_or(QuorumError::NoLeader)?;
                let version = node.write(&changes.into_records()).await?;
                Ok((version, decision))
            }
        }
    }

    /// Plans `request` against the image of `changes`.
    fn plan(&self, changes: &mut MetadataChanges, request: Request) -> Decision {
        match request {
            Request::CreateTopics(topics) => {
                let defaults = self.config.topic_defaults();
                Decision::Topics(topics.iter().map(|(t, configs)| changes.create_topic(t, configs, defaults)).collect())
            }
            Request::AlterConfigs { alterations, validate_only } => Decision::Done(
                alterations
                    .iter()
                    .map(|(target, alteration)| self.alter(changes, target, alteration, validate_only))
                    .collect(),
            ),
            Request::CreatePartitions { increases, validate_only } => {
                let mut add = |increase: &PartitionIncrease| match is_internal_topic(&increase.name) {
                    true => Err(TopicError::InvalidName(format!("'{}' is reserved for the broker", increase.name))),
                    false => changes.add_partitions(increase, validate_only),
                };
                Decision::Topics(increases.iter().map(&mut add).collect())
            }
            Request::DeleteTopics(names) => {
                Decision::Topics(names.iter().map(|name| changes.delete_topic(name)).collect())
            }
            Request::AlterScramCredentials(users) => Decision::Done(changes.alter_scram_credentials(&users)),
            Request::ChangeAcls(change) => Decision::Done(changes.change_acls(&change)),
            Request::ReserveProducerIds => Decision::ProducerIds(Ok(changes.reserve_producer_ids())),
            Request::RegisterBroker(broker) => {
                changes.fence_replaced_incarnation(&broker);
                changes.register_broker(broker);
                Decision::Done(vec![Ok(())])
            }
            Request::AlterPartition { requester, alteration } => {
                Decision::Partition(changes.alter_partition(requester, &alteration))
            }
            Request::ElectLeaders { election, partitions } => {
                Decision::Elections(Ok(changes.elect_leaders(election, partitions.as_deref())))
            }
            Request::AlterReassignments { reassignments, allow_replication_factor_change } => Decision::Done(
                (reassignments.iter())
                    .map(|((topic, partition), target)| {
                        changes.reassign(topic, *partition, target.as_deref(), allow_replication_factor_change)
                    })
                    .collect(),
            ),
            Request::AlterClientQuotas(alterations) => Decision::Done(changes.alter_client_quotas(&alterations)),
        }
    }

    /// Plans one config alteration (with `validate_only`, checks it only).
    fn alter(
        &self,
        changes: &mut MetadataChanges,
        target: &ConfigTarget,
        alteration: &ConfigAlteration,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let image = changes.image();
        let dynamic = &image.dynamic_broker_configs;
        match target {
            ConfigTarget::Topic(name) => {
                let current = image.topic(name).ok_or(TopicError::Unknown)?;
                let unset = TopicConfigs::new();
                let default = |config: &str| self.config.topic_config_value(dynamic, name, &unset, config);
                let configs = alteration.apply(ConfigScope::Topic, &current.configs, default)?;
                if !validate_only {
                    changes.set_topic_configs(name, configs)?;
                }
            }
            ConfigTarget::Broker | ConfigTarget::ClusterDefault => {
                let cluster_default = *target == ConfigTarget::ClusterDefault;
                let current = if cluster_default { &dynamic.cluster_default } else { &dynamic.broker };
                let static_layers = DynamicBrokerConfigs::default();
                let default = |config: &str| {
                    dynamic_broker_config_name(config).map_or_else(String::new, |name| {
                        self.config.broker_config_chain(&static_layers, name).swap_remove(0).value
                    })
                };
                let configs = alteration.apply(ConfigScope::Broker, current, default)?;
                if !validate_only {
                    changes.set_dynamic_broker_configs(cluster_default, configs);
                }
            }
            ConfigTarget::Group(group) => {
                let unset = TopicConfigs::new();
                let current = image.group_configs.get(group).unwrap_or(&unset);
                let configs = alteration.apply(ConfigScope::Group, current, |_| String::new())?;
                if !validate_only {
                    changes.set_group_configs(group, configs);
                }
            }
        }
        Ok(())
    }

    /// Creates topics (configs validated by the caller); results in request order.
    pub async fn create_topics(&self, shard: &Shard, topics: Vec<(NewTopic, TopicConfigs)>) -> TopicResults {
        let count = topics.len();
        self.decide(shard, Request::CreateTopics(topics)).await.into_topics(count)
    }

    /// Changes topic, group or dynamic broker configs; with
    /// `validate_only`, nothing changes.
    pub async fn alter_configs(
        &self,
        shard: &Shard,
        alterations: Vec<(ConfigTarget, ConfigAlteration)>,
        validate_only: bool,
    ) -> Vec<Result<(), TopicError>> {
        let count = alterations.len();
        self.decide(shard, Request::AlterConfigs { alterations, validate_only }).await.into_done(count)
    }

    /// Raises topics' partition counts (each result holds the topic as it
    /// is, or would be with `validate_only`). The partition count of an
    /// internal topic is the broker's: groups and transactional ids are
    /// hashed over it.
    pub async fn create_partitions(
        &self,
        shard: &Shard,
        increases: Vec<PartitionIncrease>,
        validate_only: bool,
    ) -> TopicResults {
        let count = increases.len();
        self.decide(shard, Request::CreatePartitions { increases, validate_only }).await.into_topics(count)
    }

    pub async fn delete_topics(&self, shard: &Shard, names: Vec<String>) -> TopicResults {
        let count = names.len();
        self.decide(shard, Request::DeleteTopics(names)).await.into_topics(count)
    }

    /// Changes users' SCRAM credentials (checked by the caller), each user's
    /// all or none; results in the order of `users`.
    pub async fn alter_scram_credentials(
        &self,
        shard: &Shard,
        users: Vec<(String, Vec<ScramChange>)>,
    ) -> Vec<Result<(), TopicError>> {
        let count = users.len();
        self.decide(shard, Request::AlterScramCredentials(users)).await.into_done(count)
    }

    /// Creates or removes ACLs; results in the order of the change's ACLs.
    pub async fn change_acls(&self, shard: &Shard, change: AclChange) -> Vec<Result<(), TopicError>> {
        let count = change.acls().len();
        self.decide(shard, Request::ChangeAcls(change)).await.into_done(count)
    }

    /// Applies AlterClientQuotas' checked alterations; a result for each.
    pub async fn alter_client_quotas(
        &self,
        shard: &Shard,
        alterations: Vec<QuotaAlteration>,
    ) -> Vec<Result<(), TopicError>> {
        let count = alterations.len();
        self.decide(shard, Request::AlterClientQuotas(alterations)).await.into_done(count)
    }

    /// AlterPartition, from this broker as the partition's leader: its ISR
    /// replaced if the epochs are the partition's (Kafka's checks:
    /// [`MetadataChanges::alter_partition`]); the partition's state then,
    /// served by this broker's shards.
    pub async fn alter_partition(
        &self,
        shard: &Shard,
        alteration: AlterPartition,
    ) -> Result<PartitionState, TopicError> {
        let request = Request::AlterPartition { requester: self.config.node_id, alteration };
        match self.decide(shard, request).await {
            Decision::Partition(result) => result,
            _ => Err(TopicError::ControllerUnavailable),
        }
    }

    /// DescribeQuorum: the metadata quorum as its leader sees it, asked of
    /// the leader where this voter does not lead.
    pub async fn quorum_status(&self) -> Result<QuorumStatus, QuorumUnknown> {
        let node = match &self.metadata {
            Metadata::Own(_) => return Err(QuorumUnknown::NoQuorum),
            Metadata::Quorum { node, .. } => node.get().ok_or(QuorumUnknown::Unavailable(QuorumError::NoLeader))?,
        };
        match node.status() {
            Some(status) => Ok(status),
            None => ask_active_controller(node, &Question::DescribeQuorum).await.map_err(QuorumUnknown::Unavailable),
        }
    }

    /// ElectLeaders: the partitions named (`None`: every one that needs
    /// it) led as `election` asks, each partition's outcome, served by this
    /// broker's shards when it returns. Kafka checks CLUSTER_AUTHORIZATION
    /// (Alter on the cluster) first; that comes with ACLs.
    pub async fn elect_leaders(
        &self,
        shard: &Shard,
        election: Election,
        partitions: Option<Vec<TopicPartition>>,
    ) -> Result<ElectionResults, TopicError> {
        match self.decide(shard, Request::ElectLeaders { election, partitions }).await {
            Decision::Elections(results) => results,
            _ => Err(TopicError::ControllerUnavailable),
        }
    }

    /// AlterPartitionReassignments: each partition moving to its target
    /// replicas, or (`None`) its move cancelled; results in request order,
    /// served by this broker's shards when it returns. The moves complete
    /// later, as the new replicas catch up. (Kafka checks Alter on the
    /// cluster first; that comes with ACLs.)
    pub async fn alter_reassignments(
        &self,
        shard: &Shard,
        reassignments: Vec<(TopicPartition, Option<Vec<i32>>)>,
        allow_replication_factor_change: bool,
    ) -> Vec<Result<(), TopicError>> {
        let count = reassignments.len();
        let request = Request::AlterReassignments { reassignments, allow_replication_factor_change };
        self.decide(shard, request).await.into_done(count)
    }

    /// A producer id never handed out before (ids are reserved in blocks).
    pub async fn allocate_producer_id(&self, shard: &Shard) -> Result<i64, TopicError> {
        if let Some(id) = self.producer_ids.borrow_mut().take() {
            return Ok(id);
        }
        let mut block = match self.decide(shard, Request::ReserveProducerIds).await {
            Decision::ProducerIds(reserved) => reserved?,
            _ => return Err(TopicError::ControllerUnavailable),
        };
        let id = block.take().ok_or(TopicError::ControllerUnavailable)?;
        *self.producer_ids.borrow_mut() = block;
        Ok(id)
    }
}

/// Asks the active controller `question`; `NotLeader` if the voter asked
/// no longer leads. The answer is `(u64, Decision)` to a change, `bool` to
/// a heartbeat.
async fn ask_active_controller<A: DeserializeOwned>(
    node: &QuorumNode<MetadataMachine>,
    question: &Question,
) -> Result<A, QuorumError> {
    let question = postcard::to_stdvec(question).map_err(|e| QuorumError::Codec(e.to_string()))?;
    let answer = node.ask_leader(question).await?;
    let answer: Option<A> = postcard::from_bytes(&answer).map_err(|e| QuorumError::Codec(e.to_string()))?;
    answer.ok_or(QuorumError::NotLeader { leader: None })
}

/// Sends the broker's heartbeat to the active controller every
/// `broker_heartbeat_interval_ms` while the broker runs.
async fn send_heartbeats(shard: Rc<Shard>) {
    while let Some(controller) = shard.controller() {
        let Some(node) = controller.quorum_node() else { return };
        let interval = controller.heartbeat_interval();
        send_heartbeat(node, &controller.own_heartbeat(), interval).await;
        weir_runtime::clock::sleep(interval).await;
    }
}

/// Sends one heartbeat to the active controller; waits at most `interval`
/// (a dead controller's successor gets the next).
async fn send_heartbeat(node: &QuorumNode<MetadataMachine>, heartbeat: &Question, interval: Duration) {
    match weir_runtime::clock::timeout(interval, ask_active_controller::<bool>(node, heartbeat)).await {
        Some(Ok(true)) => {}
        Some(Ok(false)) => tracing::warn!("the active controller knows another process as this broker"),
        Some(Err(e)) => tracing::debug!("heartbeat: {e}"),
        None => tracing::debug!("heartbeat: no answer in {interval:?}"),
    }
}

/// While this voter is the active controller, fences brokers whose
/// session expired and unfences those heard from again.
async fn watch_sessions(shard: Rc<Shard>) {
    while let Some(controller) = shard.controller() {
        weir_runtime::clock::sleep(SESSION_CHECK_EVERY).await;
        controller.check_sessions(&shard).await;
    }
}

/// While this voter is the active controller, balances leadership back to
/// the preferred replicas every `leader_imbalance_check_interval_seconds`.
async fn balance_leaders(shard: Rc<Shard>) {
    while let Some(controller) = shard.controller() {
        weir_runtime::clock::sleep(Duration::from_secs(controller.config.leader_imbalance_check_interval_seconds))
            .await;
        controller.balance_leaders(&shard).await;
    }
}

/// Answers other brokers' questions while this voter leads: changes
/// decided here, heartbeats noted; `None` if it no longer leads (they ask
/// again).
fn ask_handler(shard: Weak<Shard>) -> AskHandler {
    Rc::new(move |question: Vec<u8>| -> LocalBoxFuture<'static, Vec<u8>> {
        let shard = shard.clone();
        Box::pin(async move {
            let shard = shard.upgrade();
            let controller = shard.as_deref().and_then(Shard::controller);
            match (shard.as_deref(), controller, postcard::from_bytes::<Question>(&question)) {
                (Some(shard), Some(controller), Ok(Question::Change(request))) => {
                    postcard::to_stdvec(&controller.decide_here(shard, request).await.ok())
                }
                (_, Some(controller), Ok(Question::Heartbeat { id, incarnation, wants_shutdown })) => {
                    postcard::to_stdvec(&controller.heartbeat(id, incarnation, wants_shutdown))
                }
                (_, Some(controller), Ok(Question::DescribeQuorum)) => {
                    postcard::to_stdvec(&controller.quorum_node().and_then(QuorumNode::status))
                }
                (_, _, Err(e)) => {
                    tracing::warn!("a question for the controller did not decode: {e}");
                    postcard::to_stdvec(&None::<()>)
                }
                _ => postcard::to_stdvec(&None::<()>),
            }
            .unwrap_or_default()
        })
    })
}
