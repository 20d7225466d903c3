//! Transaction requests from any shard, routed to the shard that holds the
//! transactional id's `__transaction_state` partition and answered there by
//! its [`TxnService`]; and the markers it writes, on each partition's owner.

use super::{IfRequesterLeaves, Shard};
use crate::error::{PartitionError, TopicError};
use crate::groups::OFFSETS_TOPIC;
use crate::messages::ProducerDescription;
use crate::metadata::BrokerRegistration;
use crate::transactions::markers::TxnMarker;
use crate::transactions::{
    transaction_partition_of, TxnError, TxnMetadata, TxnService, TRANSACTION_STATE_PARTITIONS, TRANSACTION_STATE_TOPIC,
};
use futures::future::{join_all, LocalBoxFuture};
use kafka_protocol::messages::add_partitions_to_txn_request::{AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction};
use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, ProducerId, TopicName, TransactionalId,
    WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::rc::Rc;

/// WriteTxnMarkers v1 (flexible), as Kafka's coordinators send it.
const WRITE_TXN_MARKERS_VERSION: i16 = 1;
/// AddPartitionsToTxn v4: the brokers' batched form, with verify only.
const VERIFY_VERSION: i16 = 4;

impl Shard {
    /// Creates `__transaction_state` if it does not exist yet (on the first
    /// FindCoordinator for a transaction, as Kafka does).
    pub async fn ensure_transaction_topic(&self) -> Result<(), TopicError> {
        let replicas = self.config.transaction_state_log_replication_factor;
        self.ensure_internal_topic(TRANSACTION_STATE_TOPIC, TRANSACTION_STATE_PARTITIONS, replicas).await
    }

    /// The broker that coordinates `transactional_id`: the leader of its
    /// `__transaction_state` partition, if it is registered.
    pub fn transaction_coordinator(&self, transactional_id: &str) -> Option<BrokerRegistration> {
        self.partition_leader(TRANSACTION_STATE_TOPIC, transaction_partition_of(transactional_id))
    }

    /// Runs `work` with the transaction service on the shard that holds
    /// `transactional_id`'s partition; `unavailable(error)` answers when
    /// that shard cannot serve it (yet).
    async fn on_txn_coordinator<T, W>(
        &self,
        transactional_id: &str,
        if_requester_leaves: IfRequesterLeaves,
        unavailable: impl FnOnce(TxnError) -> T,
        work: W,
    ) -> T
    where
        T: Send + 'static,
        W: for<'a> FnOnce(&'a Shard, &'a TxnService, &'a str) -> LocalBoxFuture<'a, T> + Send + 'static,
    {
        let owner = self.owner(TRANSACTION_STATE_TOPIC, transaction_partition_of(transactional_id));
        let id = transactional_id.to_string();
        let answer = self
            .on_shard(owner, if_requester_leaves, move |shard| {
                Box::pin(async move {
                    shard.transactions.serves(&id)?;
                    Ok(work(shard, &shard.transactions, &id).await)
                })
            })
            .await;
        match answer {
            Ok(Ok(answered)) => answered,
            Ok(Err(not_serving)) => unavailable(not_serving),
            Err(_gone) => unavailable(TxnError::CoordinatorNotAvailable),
        }
    }

    /// InitProducerId of a transactional producer: (producer id, epoch).
    /// `expected`: the producer id and epoch a v3+ client holds (KIP-360).
    pub async fn init_transactional_producer_id(
        &self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), TxnError> {
        self.on_txn_coordinator(transactional_id, IfRequesterLeaves::Finish, Err, move |shard, txns, id| {
            Box::pin(txns.init_producer(shard, id, timeout_ms, expected))
        })
        .await
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: one result per partition, in request order.
    pub async fn add_partitions_to_txn(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: Vec<(String, i32)>,
    ) -> Vec<Result<(), TxnError>> {
        let metadata = self.metadata();
        if partitions.iter().any(|(t, p)| !metadata.has_partition(t, *p)) {
            let refuse = |(t, p): &(String, i32)| match metadata.has_partition(t, *p) {
                true => Err(TxnError::OperationNotAttempted),
                false => Err(TxnError::UnknownTopicOrPartition),
            };
            return partitions.iter().map(refuse).collect();
        }
        let count = partitions.len();
        let failed = move |e| vec![Err(e); count];
        self.on_txn_coordinator(transactional_id, IfRequesterLeaves::Finish, failed, move |_, txns, id| {
            Box::pin(txns.add_partitions(id, producer_id, epoch, partitions))
        })
        .await
    }

    /// EndTxn: commits or aborts the producer's transaction.
    pub async fn end_txn(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<(), TxnError> {
        self.on_txn_coordinator(transactional_id, IfRequesterLeaves::Finish, Err, move |shard, txns, id| {
            Box::pin(txns.end(shard, id, producer_id, epoch, commit))
        })
        .await
    }

    /// DescribeTransactions, for one id; None where the coordinator does not know it.
    pub async fn describe_transaction(&self, transactional_id: &str) -> Result<Option<TxnMetadata>, TxnError> {
        self.on_txn_coordinator(transactional_id, IfRequesterLeaves::Stop, Err, |_, txns, id| {
            Box::pin(async move { Ok(txns.describe(id)) })
        })
        .await
    }

    /// Every transaction of every shard.
    pub async fn list_transactions(&self) -> Vec<TxnMetadata> {
        let lists = join_all((0..self.shard_count).map(|owner| {
            self.on_shard(owner, IfRequesterLeaves::Stop, |shard| Box::pin(async move { shard.transactions.list() }))
        }))
        .await;
        lists.into_iter().flat_map(Result::unwrap_or_default).collect()
    }

    /// Asks the coordinator whether a transactional batch (or offsets) of
    /// this producer may go to the partition (KIP-890's verification): the
    /// coordinator here, or another broker's with AddPartitionsToTxn v4
    /// (verify only), as Kafka's partition leaders do.
    pub(crate) async fn verify_txn_partition(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), TxnError> {
        let Some(coordinator) = self.elsewhere(self.transaction_coordinator(transactional_id)) else {
            return self.verify_txn_partition_here(transactional_id, producer_id, epoch, topic, partition).await;
        };
        let request = verify_request(transactional_id, producer_id, epoch, topic, partition);
        let answer: anyhow::Result<AddPartitionsToTxnResponse> = self
            .broker_connections
            .call(coordinator.id, &coordinator.address(), ApiKey::AddPartitionsToTxn, VERIFY_VERSION, &request)
            .await;
        match answer {
            Ok(response) => verified(&response),
            Err(e) => {
                tracing::debug!(coordinator = coordinator.id, "verifying a transactional batch: {e}");
                Err(TxnError::CoordinatorNotAvailable)
            }
        }
    }

    /// The verification by this broker's coordinator (NOT_COORDINATOR if it
    /// is not the id's): what AddPartitionsToTxn v4 with verify only asks.
    pub async fn verify_txn_partition_here(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), TxnError> {
        let topic = topic.to_string();
        self.on_txn_coordinator(transactional_id, IfRequesterLeaves::Stop, Err, move |_, txns, id| {
            Box::pin(async move { txns.verify_partition(id, producer_id, epoch, &topic, partition) })
        })
        .await
    }

    /// Writes a transaction's marker to a partition led here, on its owner
    /// (for WriteTxnMarkers, or the coordinator here). The group coordinator
    /// there applies or drops the transaction's offsets.
    pub async fn write_txn_marker(&self, topic: &str, partition: i32, marker: TxnMarker) -> Result<(), PartitionError> {
        self.on_partition_owner(topic, partition, IfRequesterLeaves::Finish, move |shard, partition| {
            Box::pin(async move {
                partition.write_marker(marker).await?;
                if partition.topic == OFFSETS_TOPIC {
                    shard.groups.end_txn(marker.producer_id, marker.commit, partition.index);
                }
                Ok(())
            })
        })
        .await
    }

    /// Writes a transaction's marker to each of `partitions`: here where this
    /// broker leads them, else with one WriteTxnMarkers to each leader.
    /// Returns the partitions not written, each with why.
    pub(crate) async fn write_txn_markers(
        &self,
        partitions: Vec<(String, i32)>,
        marker: TxnMarker,
    ) -> Vec<((String, i32), String)> {
        let mut here = Vec::new();
        let mut by_leader: BTreeMap<i32, (BrokerRegistration, Vec<(String, i32)>)> = BTreeMap::new();
        for (topic, partition) in partitions {
            match self.elsewhere(self.partition_leader(&topic, partition)) {
                Some(leader) => by_leader.entry(leader.id).or_insert((leader, Vec::new())).1.push((topic, partition)),
                None => here.push((topic, partition)),
            }
        }
        let written_here = join_all(here.into_iter().map(|(topic, partition)| async move {
            let written = self.write_txn_marker(&topic, partition, marker).await;
            written.err().map(|e| ((topic, partition), e.to_string()))
        }));
        let sent = join_all(
            by_leader.into_values().map(|(leader, partitions)| self.send_txn_markers(leader, partitions, marker)),
        );
        let (written_here, sent) = futures::future::join(written_here, sent).await;
        written_here.into_iter().flatten().chain(sent.into_iter().flatten()).collect()
    }

    /// WriteTxnMarkers to `leader` for `partitions`: returns those it did not write.
    async fn send_txn_markers(
        &self,
        leader: BrokerRegistration,
        partitions: Vec<(String, i32)>,
        marker: TxnMarker,
    ) -> Vec<((String, i32), String)> {
        let request = markers_request(&partitions, marker);
        let answer: anyhow::Result<WriteTxnMarkersResponse> = self
            .broker_connections
            .call(leader.id, &leader.address(), ApiKey::WriteTxnMarkers, WRITE_TXN_MARKERS_VERSION, &request)
            .await;
        let response = match answer {
            Ok(response) => response,
            Err(e) => return partitions.into_iter().map(|p| (p, format!("broker {}: {e}", leader.id))).collect(),
        };
        let codes: BTreeMap<(String, i32), i16> = response
            .markers
            .iter()
            .flat_map(|m| &m.topics)
            .flat_map(|t| t.partitions.iter().map(|p| ((t.name.to_string(), p.partition_index), p.error_code)))
            .collect();
        let not_written = |p: (String, i32)| match codes.get(&p) {
            Some(0) => None,
            Some(code) => Some((p, format!("broker {} answered error {code}", leader.id))),
            None => Some((p, format!("broker {} did not answer for it", leader.id))),
        };
        partitions.into_iter().filter_map(not_written).collect()
    }

    /// `broker`, if it is another broker than this one.
    fn elsewhere(&self, broker: Option<BrokerRegistration>) -> Option<BrokerRegistration> {
        broker.filter(|b| b.id != self.config.node_id)
    }

    /// Forgets idle transactional ids (`transactional_id_expiration_ms`).
    pub(crate) async fn expire_transactional_ids(&self) {
        let expiration_ms = i64::try_from(self.config.transactional_id_expiration_ms).unwrap_or(i64::MAX);
        self.transactions.expire_ids(expiration_ms).await;
    }

    /// Finishes or aborts the transactions due; called periodically.
    pub fn tick_transactions(self: &Rc<Self>) {
        TxnService::tick(self);
    }

    /// DescribeProducers: the producers of one partition.
    pub async fn describe_producers(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Vec<ProducerDescription>, PartitionError> {
        self.on_partition_owner(topic, partition, IfRequesterLeaves::Stop, move |_, partition| {
            Box::pin(async move { partition.describe_producers().await })
        })
        .await
    }
}

/// AddPartitionsToTxn v4 asking whether the producer's transaction holds the partition.
fn verify_request(id: &str, producer_id: i64, epoch: i16, topic: &str, partition: i32) -> AddPartitionsToTxnRequest {
    let topic = AddPartitionsToTxnTopic::default()
        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
        .with_partitions(vec![partition]);
    let transaction = AddPartitionsToTxnTransaction::default()
        .with_transactional_id(TransactionalId(StrBytes::from_string(id.to_string())))
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(epoch)
        .with_verify_only(true)
        .with_topics(vec![topic]);
    AddPartitionsToTxnRequest::default().with_transactions(vec![transaction])
}

/// The coordinator's verdict on the one partition `verify_request` asked about.
fn verified(response: &AddPartitionsToTxnResponse) -> Result<(), TxnError> {
    let results = response.results_by_transaction.iter().flat_map(|t| &t.topic_results);
    let partition_code = results.flat_map(|t| &t.results_by_partition).map(|p| p.partition_error_code).next();
    match (response.error_code, partition_code) {
        (0, Some(0)) => Ok(()),
        (0, None) => Err(TxnError::CoordinatorNotAvailable),
        (0, Some(code)) | (code, _) => Err(TxnError::from_code(code)),
    }
}

/// One WriteTxnMarkers marker for `partitions`.
fn markers_request(partitions: &[(String, i32)], marker: TxnMarker) -> WriteTxnMarkersRequest {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        topics.entry(topic).or_default().push(*partition);
    }
    let topics = topics.into_iter().map(|(name, indexes)| {
        WritableTxnMarkerTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.to_string())))
            .with_partition_indexes(indexes)
    });
    let marker = WritableTxnMarker::default()
        .with_producer_id(ProducerId(marker.producer_id))
        .with_producer_epoch(marker.epoch)
        .with_transaction_result(marker.commit)
        .with_coordinator_epoch(marker.coordinator_epoch)
        .with_topics(topics.collect());
    WriteTxnMarkersRequest::default().with_markers(vec![marker])
}
