//! The shard's side of consumer groups: routing group requests to the owning
//! shard, running them on its `GroupCoordinator`, and persisting offsets and
//! group metadata in `__consumer_offsets`.

use super::{IfRequesterLeaves, Shard};
use crate::error::TopicError;
use crate::groups::consumer::{
    ConsumerGroupDescription, ConsumerHeartbeat, ConsumerHeartbeatResponse, TopicInfo, Topics,
};
use crate::groups::log_records::{decode_batches, encode_batch, OffsetsEntry, OffsetsRecord};
use crate::groups::{
    offsets_partition_of, CommittedOffset, GroupDescription, GroupError, GroupListing, JoinRequest, JoinResponse,
    MemberRef, SyncRequest, SyncResponse, OFFSETS_TOPIC, OFFSETS_TOPIC_PARTITIONS,
};
use crate::messages::{FetchedOffsets, GroupResult, OffsetQuery, OffsetToCommit, TxnCommit, TxnOffsetError};
use crate::metadata::NewTopic;
use futures::channel::oneshot;
use futures::future::{join_all, LocalBoxFuture};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Instant;
use weir_engine::batch::RawHeader;
use weir_engine::records::RecordsBuilder;
use weir_engine::{now_ms, Durability, PartitionLog};

/// Kafka's `offset.metadata.max.bytes`.
const MAX_OFFSET_METADATA_BYTES: usize = 4096;
/// Read size while replaying `__consumer_offsets` at start.
const REPLAY_READ_BYTES: usize = 1 << 20;

impl Shard {
    /// Creates `__consumer_offsets` if it does not exist yet (as Kafka does on
    /// the first FindCoordinator).
    pub async fn ensure_offsets_topic(&self) -> Result<(), TopicError> {
        if self.metadata().topic(OFFSETS_TOPIC).is_some() {
            return Ok(());
        }
        let topic =
            NewTopic { name: OFFSETS_TOPIC.into(), partitions: OFFSETS_TOPIC_PARTITIONS, replication_factor: -1 };
        match self.create_topics_unchecked(vec![topic]).await.pop() {
            Some(Ok(_)) | Some(Err(TopicError::AlreadyExists)) => Ok(()),
            Some(Err(e)) => Err(e),
            None => Err(TopicError::ControllerUnavailable),
        }
    }

    /// Runs `work` on the shard that owns `group_id` (it holds the group's
    /// `__consumer_offsets` partition); `unavailable()` answers when that
    /// shard cannot serve the group (yet).
    async fn on_group_owner<T, W>(
        &self,
        group_id: &str,
        if_requester_leaves: IfRequesterLeaves,
        unavailable: impl FnOnce() -> T,
        work: W,
    ) -> T
    where
        T: Send + 'static,
        W: for<'a> FnOnce(&'a Shard, &'a str, Instant) -> LocalBoxFuture<'a, T> + Send + 'static,
    {
        let partition = offsets_partition_of(group_id);
        self.on_coordinator(OFFSETS_TOPIC, partition, group_id, if_requester_leaves, unavailable, |shard, id| {
            work(shard, id, weir_runtime::clock::now())
        })
        .await
    }

    /// JoinGroup: answered when the group's rebalance completes.
    pub async fn join_group(&self, req: JoinRequest) -> JoinResponse {
        let group_id = req.group_id.clone();
        self.on_group_owner(&group_id, IfRequesterLeaves::Finish, JoinResponse::unavailable, |shard, _, now| {
            Box::pin(async move {
                let (respond, answer) = oneshot::channel();
                let topics = shard.consumer_topics();
                shard.groups.borrow_mut().join(now, &topics, req, respond);
                shard.persist_group_changes();
                answer.await.unwrap_or_else(|_| JoinResponse::unavailable())
            })
        })
        .await
    }

    /// SyncGroup: answered once the leader has sent the assignment.
    pub async fn sync_group(&self, req: SyncRequest) -> SyncResponse {
        let group_id = req.group_id.clone();
        self.on_group_owner(&group_id, IfRequesterLeaves::Finish, SyncResponse::unavailable, |shard, _, now| {
            Box::pin(async move {
                let (respond, answer) = oneshot::channel();
                shard.groups.borrow_mut().sync(now, req, respond);
                shard.persist_group_changes();
                answer.await.unwrap_or_else(|_| SyncResponse::unavailable())
            })
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
        self.on_group_owner(group_id, IfRequesterLeaves::Finish, unavailable, move |shard, group_id, now| {
            Box::pin(async move {
                let topics = shard.consumer_topics();
                let mut groups = shard.groups.borrow_mut();
                groups.heartbeat(now, &topics, group_id, &member_id, instance_id.as_deref(), generation)
            })
        })
        .await
    }

    /// LeaveGroup: one result per member, in request order.
    pub async fn leave_group(&self, group_id: &str, members: Vec<MemberRef>) -> Vec<GroupResult<()>> {
        let count = members.len();
        self.on_group_owner(
            group_id,
            IfRequesterLeaves::Finish,
            || unavailable_each(count),
            |shard, group_id, now| {
                Box::pin(async move {
                    let results = shard.groups.borrow_mut().leave(now, group_id, &members);
                    shard.persist_group_changes();
                    results
                })
            },
        )
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
        let count = offsets.len();
        self.on_group_owner(
            group_id,
            IfRequesterLeaves::Finish,
            || unavailable_each(count),
            move |shard, group_id, _| {
                Box::pin(async move {
                    shard.commit_offsets(group_id, &member_id, instance_id.as_deref(), generation, offsets).await
                })
            },
        )
        .await
    }

    /// TxnOffsetCommit: one result per offset, in request order.
    pub async fn txn_offset_commit(&self, group_id: &str, commit: TxnCommit) -> Vec<Result<(), TxnOffsetError>> {
        let count = commit.offsets.len();
        let unavailable = move || vec![Err(TxnOffsetError::Group(GroupError::CoordinatorNotAvailable)); count];
        self.on_group_owner(group_id, IfRequesterLeaves::Finish, unavailable, |shard, group_id, _| {
            Box::pin(shard.commit_offsets_in_txn(group_id, commit))
        })
        .await
    }

    /// OffsetFetch. Err: the member check failed for the whole group.
    pub async fn offset_fetch(&self, group_id: &str, query: OffsetQuery) -> GroupResult<FetchedOffsets> {
        self.on_group_owner(group_id, IfRequesterLeaves::Stop, unavailable, move |shard, group_id, _| {
            Box::pin(async move { shard.committed_offsets(group_id, query) })
        })
        .await
    }

    /// ConsumerGroupHeartbeat (KIP-848).
    pub async fn consumer_group_heartbeat(&self, req: ConsumerHeartbeat) -> ConsumerHeartbeatResponse {
        let group_id = req.group_id.clone();
        let unavailable =
            || ConsumerHeartbeatResponse { error: Some(GroupError::CoordinatorNotAvailable), ..Default::default() };
        self.on_group_owner(&group_id, IfRequesterLeaves::Finish, unavailable, |shard, group_id, now| {
            Box::pin(async move {
                let topics = shard.consumer_topics();
                let metadata = shard.metadata();
                let set = |name: &str| metadata.group_configs.get(group_id)?.get(name)?.parse::<u64>().ok();
                let timing = (set("consumer.session.timeout.ms"), set("consumer.heartbeat.interval.ms"));
                let response = shard.groups.borrow_mut().consumer_heartbeat(now, &topics, timing, req);
                shard.persist_group_changes();
                response
            })
        })
        .await
    }

    /// ConsumerGroupDescribe.
    pub async fn consumer_group_describe(&self, group_id: &str) -> GroupResult<ConsumerGroupDescription> {
        self.on_group_owner(group_id, IfRequesterLeaves::Stop, unavailable, |shard, group_id, _| {
            Box::pin(async move { shard.groups.borrow().describe_consumer(group_id) })
        })
        .await
    }

    /// DescribeGroups, for one group.
    pub async fn describe_group(&self, group_id: &str) -> GroupDescription {
        let unavailable = || GroupDescription::unavailable(group_id);
        self.on_group_owner(group_id, IfRequesterLeaves::Stop, unavailable, |shard, group_id, _| {
            Box::pin(async move { shard.groups.borrow().describe(group_id) })
        })
        .await
    }

    /// DeleteGroups, for one group.
    pub async fn delete_group(&self, group_id: &str) -> GroupResult<()> {
        self.on_group_owner(group_id, IfRequesterLeaves::Finish, unavailable, |shard, group_id, _| {
            Box::pin(shard.delete_owned_group(group_id))
        })
        .await
    }

    /// OffsetDelete: Err for the whole group, else one result per partition.
    pub async fn offset_delete(
        &self,
        group_id: &str,
        partitions: Vec<(String, i32)>,
    ) -> GroupResult<Vec<GroupResult<()>>> {
        self.on_group_owner(group_id, IfRequesterLeaves::Finish, unavailable, |shard, group_id, _| {
            Box::pin(shard.delete_offsets(group_id, partitions))
        })
        .await
    }

    /// Every group of every shard.
    pub async fn list_groups(&self) -> Vec<GroupListing> {
        let lists = join_all((0..self.shard_count).map(|owner| {
            self.on_shard(owner, IfRequesterLeaves::Stop, |shard| Box::pin(async move { shard.groups.borrow().list() }))
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

    fn offsets_log(&self, group_id: &str) -> Option<Rc<PartitionLog>> {
        self.partition(OFFSETS_TOPIC, offsets_partition_of(group_id)).ok().map(|p| p.log.clone())
    }

    /// OffsetFetch on the group's owner.
    fn committed_offsets(&self, group_id: &str, query: OffsetQuery) -> GroupResult<FetchedOffsets> {
        let OffsetQuery { partitions, require_stable, member } = query;
        let groups = self.groups.borrow();
        groups.validate_fetch(group_id, member.as_ref().map(|(id, epoch)| (id.as_str(), *epoch)))?;
        let offsets: Vec<((String, i32), Option<CommittedOffset>)> = match partitions {
            None => groups.all_committed(group_id).into_iter().map(|(k, v)| (k, Some(v))).collect(),
            Some(partitions) => partitions
                .into_iter()
                .map(|(topic, p)| {
                    let committed = groups.committed(group_id, &topic, p).cloned();
                    ((topic, p), committed)
                })
                .collect(),
        };
        // KIP-447: a read_committed consumer waits for offsets still in a transaction.
        let unstable = |(t, p): &(String, i32)| require_stable && groups.has_pending(group_id, t, *p);
        Ok(offsets
            .into_iter()
            .map(|(k, v)| {
                let v = if unstable(&k) { Err(GroupError::UnstableOffsetCommit) } else { Ok(v) };
                (k, v)
            })
            .collect())
    }

    async fn commit_offsets(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        offsets: Vec<OffsetToCommit>,
    ) -> Vec<Result<(), GroupError>> {
        if let Err(e) = self.groups.borrow().validate_commit(group_id, member_id, instance_id, generation) {
            return vec![Err(e); offsets.len()];
        }
        let mut results = self.check_offsets(&offsets);
        let accepted: Vec<&OffsetToCommit> =
            offsets.iter().zip(&results).filter(|(_, r)| r.is_ok()).map(|(o, _)| o).collect();
        if accepted.is_empty() {
            return results;
        }
        let records = commit_records(group_id, &accepted);
        if let Err(e) = self.append_offsets_records(group_id, &records, RecordsBuilder::new()).await {
            tracing::warn!(group = group_id, "persisting offsets failed: {e}");
            for r in results.iter_mut().filter(|r| r.is_ok()) {
                *r = Err(GroupError::CoordinatorNotAvailable);
            }
            return results;
        }
        let mut groups = self.groups.borrow_mut();
        for o in accepted {
            groups.apply_commit(group_id, &o.topic, o.partition, o.offset.clone());
        }
        results
    }

    /// Each offset's own checks: a known partition, metadata within the limit.
    fn check_offsets(&self, offsets: &[OffsetToCommit]) -> Vec<Result<(), GroupError>> {
        let metadata = self.metadata();
        offsets
            .iter()
            .map(|o| {
                if !metadata.has_partition(&o.topic, o.partition) {
                    Err(GroupError::UnknownTopicOrPartition)
                } else if o.offset.metadata.as_ref().is_some_and(|m| m.len() > MAX_OFFSET_METADATA_BYTES) {
                    Err(GroupError::OffsetMetadataTooLarge)
                } else {
                    Ok(())
                }
            })
            .collect()
    }

    /// TxnOffsetCommit: the offsets are written to the group's partition as
    /// part of the producer's transaction and applied by its commit marker.
    async fn commit_offsets_in_txn(&self, group_id: &str, commit: TxnCommit) -> Vec<Result<(), TxnOffsetError>> {
        let count = commit.offsets.len();
        let partition = offsets_partition_of(group_id);
        let verified = self
            .verify_txn_partition(&commit.transactional_id, commit.producer_id, commit.epoch, OFFSETS_TOPIC, partition)
            .await;
        if let Err(e) = verified {
            return vec![Err(TxnOffsetError::Txn(e)); count];
        }
        // v3+ clients name their member and generation (KIP-447); older ones send none.
        if commit.generation >= 0 || !commit.member_id.is_empty() {
            let valid = self.groups.borrow().validate_commit(
                group_id,
                &commit.member_id,
                commit.instance_id.as_deref(),
                commit.generation,
            );
            if let Err(e) = valid {
                return vec![Err(TxnOffsetError::Group(e)); count];
            }
        }
        let mut results: Vec<Result<(), TxnOffsetError>> =
            self.check_offsets(&commit.offsets).into_iter().map(|r| r.map_err(TxnOffsetError::Group)).collect();
        let accepted: Vec<&OffsetToCommit> =
            commit.offsets.iter().zip(&results).filter(|(_, r)| r.is_ok()).map(|(o, _)| o).collect();
        if accepted.is_empty() {
            return results;
        }
        let records = commit_records(group_id, &accepted);
        let batch = RecordsBuilder::new().producer(commit.producer_id, commit.epoch, -1).transactional();
        if let Err(e) = self.append_offsets_records(group_id, &records, batch).await {
            tracing::warn!(group = group_id, "persisting transactional offsets failed: {e}");
            for r in results.iter_mut().filter(|r| r.is_ok()) {
                *r = Err(TxnOffsetError::Group(GroupError::CoordinatorNotAvailable));
            }
            return results;
        }
        let mut groups = self.groups.borrow_mut();
        for o in accepted {
            groups.add_pending(commit.producer_id, group_id, &o.topic, o.partition, o.offset.clone());
        }
        results
    }

    async fn delete_owned_group(&self, group_id: &str) -> Result<(), GroupError> {
        self.groups.borrow().check_deletable(group_id)?;
        let committed = self.groups.borrow().all_committed(group_id);
        let mut records: Vec<OffsetsRecord> = committed
            .into_iter()
            .map(|((topic, partition), _)| OffsetsRecord::Commit {
                group_id: group_id.to_string(),
                topic,
                partition,
                offset: None,
            })
            .collect();
        records.push(OffsetsRecord::Group { group_id: group_id.to_string(), metadata: None });
        records.push(OffsetsRecord::ConsumerGroup { group_id: group_id.to_string(), epoch: None });
        self.append_offsets_records(group_id, &records, RecordsBuilder::new())
            .await
            .map_err(|_| GroupError::CoordinatorNotAvailable)?;
        self.groups.borrow_mut().remove_group(group_id);
        Ok(())
    }

    async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        let checks: Vec<Result<(), GroupError>> = {
            let groups = self.groups.borrow();
            groups.check_offset_deletable(group_id, "").or_else(|e| match e {
                GroupError::GroupSubscribedToTopic => Ok(()),
                other => Err(other),
            })?;
            partitions.iter().map(|(topic, _)| groups.check_offset_deletable(group_id, topic)).collect()
        };
        let records: Vec<OffsetsRecord> = partitions
            .iter()
            .zip(&checks)
            .filter(|(_, c)| c.is_ok())
            .map(|((topic, partition), _)| OffsetsRecord::Commit {
                group_id: group_id.to_string(),
                topic: topic.clone(),
                partition: *partition,
                offset: None,
            })
            .collect();
        if !records.is_empty() {
            self.append_offsets_records(group_id, &records, RecordsBuilder::new())
                .await
                .map_err(|_| GroupError::CoordinatorNotAvailable)?;
            let mut groups = self.groups.borrow_mut();
            for ((topic, partition), _) in partitions.iter().zip(&checks).filter(|(_, c)| c.is_ok()) {
                groups.remove_commit(group_id, topic, *partition);
            }
        }
        Ok(checks)
    }

    /// Appends records with acks=all durability.
    async fn append_offsets_records(
        &self,
        group_id: &str,
        records: &[OffsetsRecord],
        batch: RecordsBuilder,
    ) -> Result<(), String> {
        let log = self.offsets_log(group_id).ok_or("offsets partition not open here")?;
        log.append(encode_batch(records, now_ms(), batch), Durability::Synced)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// Writes the metadata of groups whose generation or state changed. Not
    /// awaited: members do not wait for it (after a restart they rejoin anyway).
    pub(crate) fn persist_group_changes(&self) {
        let (changed, consumer) = {
            let mut groups = self.groups.borrow_mut();
            (groups.take_changed(), groups.take_changed_consumer())
        };
        let mut by_partition: BTreeMap<i32, Vec<OffsetsRecord>> = BTreeMap::new();
        for metadata in changed {
            by_partition
                .entry(offsets_partition_of(&metadata.group_id))
                .or_default()
                .push(OffsetsRecord::Group { group_id: metadata.group_id.clone(), metadata: Some(metadata) });
        }
        for (group_id, epoch) in consumer {
            by_partition
                .entry(offsets_partition_of(&group_id))
                .or_default()
                .push(OffsetsRecord::ConsumerGroup { group_id, epoch: Some(epoch) });
        }
        for (partition, records) in by_partition {
            let Ok(log) = self.partition(OFFSETS_TOPIC, partition).map(|p| p.log.clone()) else { continue };
            let batch = encode_batch(&records, now_ms(), RecordsBuilder::new());
            // Spawned tasks first run in spawn order, so group records keep their order.
            weir_runtime::spawn_local(async move {
                if let Err(e) = log.append(batch, Durability::Written).await {
                    tracing::warn!(partition, "persisting group metadata failed: {e}");
                }
            })
            .detach();
        }
    }

    /// Session expiry and rebalance deadlines; called periodically.
    pub fn tick_groups(&self) {
        self.groups.borrow_mut().tick(weir_runtime::clock::now());
        self.persist_group_changes();
    }

    /// Replays a `__consumer_offsets` partition into the coordinator (at start).
    pub(crate) async fn replay_offsets_partition(&self, partition: i32, log: &PartitionLog) {
        let mut offset = log.log_start_offset();
        let end = log.high_watermark();
        let mut replayed = 0usize;
        while offset < end {
            let batches = match log.read(offset, REPLAY_READ_BYTES).await {
                Ok(b) if !b.is_empty() => b,
                Ok(_) => break,
                Err(e) => {
                    tracing::error!(partition, offset, "replaying __consumer_offsets failed: {e}");
                    return;
                }
            };
            offset = match offset_after(&batches) {
                Some(next) => next,
                None => break,
            };
            let records = match decode_batches(batches) {
                Ok(records) => records,
                Err(e) => {
                    tracing::error!(partition, "undecodable __consumer_offsets batch: {e}");
                    continue;
                }
            };
            let mut groups = self.groups.borrow_mut();
            for entry in records {
                replayed += 1;
                let record = match entry {
                    OffsetsEntry::Record(record) => record,
                    OffsetsEntry::Transactional {
                        producer_id,
                        record: OffsetsRecord::Commit { group_id, topic, partition: p, offset: Some(o) },
                    } => {
                        groups.add_pending(producer_id, &group_id, &topic, p, o);
                        continue;
                    }
                    OffsetsEntry::Transactional { .. } => continue,
                    OffsetsEntry::Marker { producer_id, commit } => {
                        groups.end_txn(producer_id, commit, partition);
                        continue;
                    }
                };
                match record {
                    OffsetsRecord::Commit { group_id, topic, partition, offset: Some(o) } => {
                        groups.apply_commit(&group_id, &topic, partition, o)
                    }
                    OffsetsRecord::Commit { group_id, topic, partition, offset: None } => {
                        groups.remove_commit(&group_id, &topic, partition)
                    }
                    OffsetsRecord::Group { metadata: Some(m), .. } => groups.restore_group(m),
                    OffsetsRecord::Group { group_id, metadata: None } => groups.remove_group(&group_id),
                    OffsetsRecord::ConsumerGroup { group_id, epoch: Some(epoch) } => {
                        groups.restore_consumer_group(&group_id, epoch)
                    }
                    OffsetsRecord::ConsumerGroup { group_id, epoch: None } => groups.remove_group(&group_id),
                }
            }
        }
        if replayed > 0 {
            tracing::info!(partition, records = replayed, "restored consumer group state");
        }
    }
}

/// The offset following the last batch in `batches`.
pub(super) fn offset_after(batches: &[u8]) -> Option<i64> {
    let (mut pos, mut next) = (0, None);
    while let Some(header) = batches.get(pos..).and_then(RawHeader::of) {
        next = Some(header.last_offset() + 1);
        pos += header.total_len();
    }
    next
}

/// The records of accepted offset commits.
fn commit_records(group_id: &str, accepted: &[&OffsetToCommit]) -> Vec<OffsetsRecord> {
    accepted
        .iter()
        .map(|o| OffsetsRecord::Commit {
            group_id: group_id.to_string(),
            topic: o.topic.clone(),
            partition: o.partition,
            offset: Some(o.offset.clone()),
        })
        .collect()
}

/// What a group request gets when its owner cannot serve it (yet).
fn unavailable<T>() -> GroupResult<T> {
    Err(GroupError::CoordinatorNotAvailable)
}

fn unavailable_each(count: usize) -> Vec<GroupResult<()>> {
    vec![unavailable(); count]
}
