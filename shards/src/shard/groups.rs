//! Consumer-group requests from any shard, routed to the shard that holds
//! the group's `__consumer_offsets` partition and answered there by its
//! [`GroupService`].

use super::{IfRequesterLeaves, Shard};
use crate::error::TopicError;
use crate::groups::consumer::{
    ConsumerGroupDescription, ConsumerHeartbeat, ConsumerHeartbeatResponse, TopicInfo, Topics,
};
use crate::groups::{
    offsets_partition_of, GroupDescription, GroupError, GroupListing, GroupService, JoinRequest, JoinResponse,
    MemberRef, SyncRequest, SyncResponse, OFFSETS_TOPIC, OFFSETS_TOPIC_PARTITIONS,
};
use crate::messages::{FetchedOffsets, GroupResult, OffsetQuery, OffsetToCommit, TxnCommit, TxnOffsetError};
use crate::metadata::BrokerRegistration;
use futures::future::{join_all, LocalBoxFuture};
use std::time::Instant;

impl Shard {
    /// Creates `__consumer_offsets` if it does not exist yet (as Kafka does on
    /// the first FindCoordinator).
    pub async fn ensure_offsets_topic(&self) -> Result<(), TopicError> {
        let replicas = self.config.offsets_topic_replication_factor;
        self.ensure_internal_topic(OFFSETS_TOPIC, OFFSETS_TOPIC_PARTITIONS, replicas).await
    }

    /// The broker that coordinates `group_id`: the leader of its
    /// `__consumer_offsets` partition, if it is registered.
    pub fn group_coordinator(&self, group_id: &str) -> Option<BrokerRegistration> {
        self.partition_leader(OFFSETS_TOPIC, offsets_partition_of(group_id))
    }

    /// Runs `work` with the group service on the shard that holds
    /// `group_id`'s partition; `unavailable(error)` answers when that shard
    /// cannot serve the group (yet).
    async fn on_group_owner<T, W>(
        &self,
        group_id: &str,
        if_requester_leaves: IfRequesterLeaves,
        unavailable: impl FnOnce(GroupError) -> T,
        work: W,
    ) -> T
    where
        T: Send + 'static,
        W: for<'a> FnOnce(&'a Shard, &'a GroupService, &'a str, Instant) -> LocalBoxFuture<'a, T> + Send + 'static,
    {
        let partition = offsets_partition_of(group_id);
        let group_id = group_id.to_string();
        let owner = self.owner(OFFSETS_TOPIC, partition);
        let answer = self
            .on_shard(owner, if_requester_leaves, move |shard| {
                Box::pin(async move {
                    shard.groups.serves(&group_id)?;
                    Ok(work(shard, &shard.groups, &group_id, weir_runtime::clock::now()).await)
                })
            })
            .await;
        match answer {
            Ok(Ok(answered)) => answered,
            Ok(Err(not_serving)) => unavailable(not_serving),
            Err(_gone) => unavailable(GroupError::CoordinatorNotAvailable),
        }
    }

    /// JoinGroup: answered when the group's rebalance completes.
    pub async fn join_group(&self, req: JoinRequest) -> JoinResponse {
        let group_id = req.group_id.clone();
        self.on_group_owner(&group_id, IfRequesterLeaves::Finish, JoinResponse::failed, |shard, groups, _, now| {
            Box::pin(async move { groups.join(now, &shard.consumer_topics(), req).await })
        })
        .await
    }

    /// SyncGroup: answered once the leader has sent the assignment.
    pub async fn sync_group(&self, req: SyncRequest) -> SyncResponse {
        let group_id = req.group_id.clone();
        self.on_group_owner(&group_id, IfRequesterLeaves::Finish, SyncResponse::failed, |_, groups, _, now| {
            Box::pin(groups.sync(now, req))
        })
        .await
    }

    /// Heartbeat of a classic member.
    pub async fn group_heartbeat(
        &self,
        group_id: &str,
        member_id: String,
        instance_id: Option<String>,
        generation: i32,
    ) -> GroupResult<()> {
        self.on_group_owner(group_id, IfRequesterLeaves::Finish, Err, move |shard, groups, group_id, now| {
            Box::pin(async move {
                let topics = shard.consumer_topics();
                groups.heartbeat(now, &topics, group_id, &member_id, instance_id.as_deref(), generation)
            })
        })
        .await
    }

    /// LeaveGroup: one result per member, in request order.
    pub async fn leave_group(&self, group_id: &str, members: Vec<MemberRef>) -> Vec<GroupResult<()>> {
        let failed = each(members.len());
        self.on_group_owner(group_id, IfRequesterLeaves::Finish, failed, |_, groups, group_id, now| {
            Box::pin(async move { groups.leave(now, group_id, &members) })
        })
        .await
    }

    /// OffsetCommit: one result per offset, in request order.
    pub async fn offset_commit(
        &self,
        group_id: &str,
        member_id: String,
        instance_id: Option<String>,
        generation: i32,
        offsets: Vec<OffsetToCommit>,
    ) -> Vec<GroupResult<()>> {
        let failed = each(offsets.len());
        self.on_group_owner(group_id, IfRequesterLeaves::Finish, failed, move |shard, groups, group_id, _| {
            Box::pin(async move {
                let metadata = shard.metadata();
                let instance_id = instance_id.as_deref();
                groups.commit_offsets(&metadata, group_id, &member_id, instance_id, generation, offsets).await
            })
        })
        .await
    }

    /// TxnOffsetCommit: one result per offset, in request order. The
    /// producer's transaction coordinator verifies the commit first
    /// (KIP-890).
    pub async fn txn_offset_commit(&self, group_id: &str, commit: TxnCommit) -> Vec<Result<(), TxnOffsetError>> {
        let count = commit.offsets.len();
        let failed = move |e| vec![Err(TxnOffsetError::Group(e)); count];
        self.on_group_owner(group_id, IfRequesterLeaves::Finish, failed, move |shard, groups, group_id, _| {
            Box::pin(async move {
                let (id, producer_id, epoch) = (&commit.transactional_id, commit.producer_id, commit.epoch);
                let partition = offsets_partition_of(group_id);
                if let Err(e) = shard.verify_txn_partition(id, producer_id, epoch, OFFSETS_TOPIC, partition).await {
                    return vec![Err(TxnOffsetError::Txn(e)); count];
                }
                groups.commit_offsets_in_txn(&shard.metadata(), group_id, commit).await
            })
        })
        .await
    }

    /// OffsetFetch. Err: the member check failed for the whole group.
    pub async fn offset_fetch(&self, group_id: &str, query: OffsetQuery) -> GroupResult<FetchedOffsets> {
        self.on_group_owner(group_id, IfRequesterLeaves::Stop, Err, move |_, groups, group_id, _| {
            Box::pin(async move { groups.committed_offsets(group_id, query) })
        })
        .await
    }

    /// ConsumerGroupHeartbeat (KIP-848).
    pub async fn consumer_group_heartbeat(&self, req: ConsumerHeartbeat) -> ConsumerHeartbeatResponse {
        let group_id = req.group_id.clone();
        let failed = |e| ConsumerHeartbeatResponse { error: Some(e), ..Default::default() };
        self.on_group_owner(&group_id, IfRequesterLeaves::Finish, failed, |shard, groups, group_id, now| {
            Box::pin(async move {
                let topics = shard.consumer_topics();
                let metadata = shard.metadata();
                let set = |name: &str| metadata.group_configs.get(group_id)?.get(name)?.parse::<u64>().ok();
                let timing = (set("consumer.session.timeout.ms"), set("consumer.heartbeat.interval.ms"));
                groups.consumer_heartbeat(now, &topics, timing, req)
            })
        })
        .await
    }

    /// ConsumerGroupDescribe.
    pub async fn consumer_group_describe(&self, group_id: &str) -> GroupResult<ConsumerGroupDescription> {
        self.on_group_owner(group_id, IfRequesterLeaves::Stop, Err, |_, groups, group_id, _| {
            Box::pin(async move { groups.describe_consumer(group_id) })
        })
        .await
    }

    /// DescribeGroups, for one group.
    pub async fn describe_group(&self, group_id: &str) -> GroupDescription {
        let failed = |e| GroupDescription::failed(group_id, e);
        self.on_group_owner(group_id, IfRequesterLeaves::Stop, failed, |_, groups, group_id, _| {
            Box::pin(async move { groups.describe(group_id) })
        })
        .await
    }

    /// DeleteGroups, for one group.
    pub async fn delete_group(&self, group_id: &str) -> GroupResult<()> {
        self.on_group_owner(group_id, IfRequesterLeaves::Finish, Err, |_, groups, group_id, _| {
            Box::pin(groups.delete_group(group_id))
        })
        .await
    }

    /// OffsetDelete: Err for the whole group, else one result per partition.
    pub async fn offset_delete(
        &self,
        group_id: &str,
        partitions: Vec<(String, i32)>,
    ) -> GroupResult<Vec<GroupResult<()>>> {
        self.on_group_owner(group_id, IfRequesterLeaves::Finish, Err, |_, groups, group_id, _| {
            Box::pin(groups.delete_offsets(group_id, partitions))
        })
        .await
    }

    /// Every group of every shard.
    pub async fn list_groups(&self) -> Vec<GroupListing> {
        let lists = join_all((0..self.shard_count).map(|owner| {
            self.on_shard(owner, IfRequesterLeaves::Stop, |shard| Box::pin(async move { shard.groups.list() }))
        }))
        .await;
        lists.into_iter().flat_map(Result::unwrap_or_default).collect()
    }

    /// The topics a consumer-protocol group may subscribe to (internal ones left out).
    fn consumer_topics(&self) -> Topics {
        self.metadata()
            .topics
            .values()
            .filter(|t| !super::is_internal_topic(&t.name))
            .map(|t| (t.name.clone(), TopicInfo { id: t.id, partitions: t.partitions }))
            .collect()
    }

    /// Session expiry and rebalance deadlines; called periodically.
    pub fn tick_groups(&self) {
        self.groups.tick(weir_runtime::clock::now());
    }
}

/// A failure for each of `count` items.
fn each(count: usize) -> impl FnOnce(GroupError) -> Vec<GroupResult<()>> {
    move |e| vec![Err(e); count]
}
