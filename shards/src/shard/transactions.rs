//! Transaction requests from any shard, routed to the shard that holds the
//! transactional id's `__transaction_state` partition and answered there by
//! its [`TxnService`]; and the markers it writes, on each partition's owner.

use super::{IfRequesterLeaves, Shard};
use crate::error::{PartitionError, TopicError};
use crate::groups::OFFSETS_TOPIC;
use crate::messages::ProducerDescription;
use crate::metadata::BrokerRegistration;
use crate::transactions::{
    transaction_partition_of, TxnError, TxnMetadata, TxnService, TRANSACTION_STATE_PARTITIONS, TRANSACTION_STATE_TOPIC,
};
use futures::future::{join_all, LocalBoxFuture};
use std::rc::Rc;

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
    /// this producer may go to the partition (KIP-890's verification).
    pub(crate) async fn verify_txn_partition(
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

    /// Writes a transaction's marker to a partition, on its owner. The group
    /// coordinator there applies or drops the transaction's offsets.
    pub(crate) async fn write_txn_marker(
        &self,
        topic: &str,
        partition: i32,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<(), PartitionError> {
        self.on_partition_owner(topic, partition, IfRequesterLeaves::Finish, move |shard, partition| {
            Box::pin(async move {
                partition.write_marker(producer_id, epoch, commit).await?;
                if partition.topic == OFFSETS_TOPIC {
                    shard.groups.end_txn(producer_id, commit, partition.index);
                }
                Ok(())
            })
        })
        .await
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
