//! The group coordinator of one shard as a service: the [`GroupCoordinator`]
//! state machine over the `__consumer_offsets` partitions this shard holds.
//! Each request is answered from the state machine and persisted in the
//! group's partition: offsets with acks=all before the answer, group
//! metadata in the background. A partition's groups are served once it is
//! loaded ([`CoordinatorPartitions`]). Requests reach the service through
//! `Shard::on_group_owner`, on the shard that holds the group's partition.

use super::consumer::{ConsumerGroupDescription, ConsumerHeartbeat, ConsumerHeartbeatResponse, Topics};
use super::log_records::{decode_batches, encode_batch, OffsetsEntry, OffsetsRecord};
use super::{
    offsets_partition_of, CommittedOffset, GroupConfig, GroupCoordinator, GroupDescription, GroupError, GroupListing,
    JoinRequest, JoinResponse, MemberRef, SyncRequest, SyncResponse,
};
use crate::coordinator_partitions::{CoordinatorPartitions, LoadTicket, NotServing};
use crate::messages::{FetchedOffsets, GroupResult, OffsetQuery, OffsetToCommit, TxnCommit, TxnOffsetError};
use crate::metadata::MetadataSnapshot;
use crate::shard::Partition;
use futures::channel::oneshot;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Instant;
use weir_engine::records::RecordsBuilder;
use weir_engine::{now_ms, Durability};

/// Kafka's `offset.metadata.max.bytes`.
const MAX_OFFSET_METADATA_BYTES: usize = 4096;

pub(crate) struct GroupService {
    coordinator: RefCell<GroupCoordinator>,
    partitions: CoordinatorPartitions,
}

impl From<NotServing> for GroupError {
    fn from(why: NotServing) -> Self {
        match why {
            NotServing::Loading => GroupError::CoordinatorLoadInProgress,
            NotServing::NotHere => GroupError::CoordinatorNotAvailable,
            NotServing::NotCoordinator => GroupError::NotCoordinator,
        }
    }
}

impl GroupService {
    pub fn new(config: GroupConfig) -> Self {
        GroupService { coordinator: RefCell::new(GroupCoordinator::new(config)), partitions: Default::default() }
    }

    /// Whether this service serves `group_id` now.
    pub fn serves(&self, group_id: &str) -> Result<(), GroupError> {
        self.partitions.get(offsets_partition_of(group_id)).map(drop).map_err(GroupError::from)
    }

    /// JoinGroup: answered when the group's rebalance completes.
    pub async fn join(&self, now: Instant, topics: &Topics, req: JoinRequest) -> JoinResponse {
        let (respond, answer) = oneshot::channel();
        self.coordinator.borrow_mut().join(now, topics, req, respond);
        self.persist_changes();
        answer.await.unwrap_or_else(|_| JoinResponse::failed(GroupError::CoordinatorNotAvailable))
    }

    /// SyncGroup: answered once the leader has sent the assignment.
    pub async fn sync(&self, now: Instant, req: SyncRequest) -> SyncResponse {
        let (respond, answer) = oneshot::channel();
        self.coordinator.borrow_mut().sync(now, req, respond);
        self.persist_changes();
        answer.await.unwrap_or_else(|_| SyncResponse::failed(GroupError::CoordinatorNotAvailable))
    }

    /// Heartbeat of a classic member.
    pub fn heartbeat(
        &self,
        now: Instant,
        topics: &Topics,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> GroupResult<()> {
        self.coordinator.borrow_mut().heartbeat(now, topics, group_id, member_id, instance_id, generation)
    }

    /// LeaveGroup: one result per member, in request order.
    pub fn leave(&self, now: Instant, group_id: &str, members: &[MemberRef]) -> Vec<GroupResult<()>> {
        let results = self.coordinator.borrow_mut().leave(now, group_id, members);
        self.persist_changes();
        results
    }

    /// ConsumerGroupHeartbeat (KIP-848); `timing`: the group's own session
    /// timeout and heartbeat interval, where set.
    pub fn consumer_heartbeat(
        &self,
        now: Instant,
        topics: &Topics,
        timing: (Option<u64>, Option<u64>),
        req: ConsumerHeartbeat,
    ) -> ConsumerHeartbeatResponse {
        let response = self.coordinator.borrow_mut().consumer_heartbeat(now, topics, timing, req);
        self.persist_changes();
        response
    }

    pub fn describe_consumer(&self, group_id: &str) -> GroupResult<ConsumerGroupDescription> {
        self.coordinator.borrow().describe_consumer(group_id)
    }

    pub fn describe(&self, group_id: &str) -> GroupDescription {
        self.coordinator.borrow().describe(group_id)
    }

    pub fn list(&self) -> Vec<GroupListing> {
        self.coordinator.borrow().list()
    }

    /// (group, topic, partition, committed offset) of every group here.
    pub fn every_committed_offset(&self) -> Vec<(String, String, i32, i64)> {
        let coordinator = self.coordinator.borrow();
        let all = coordinator.every_committed_offset();
        all.map(|(group, topic, partition, offset)| (group.to_string(), topic.to_string(), partition, offset)).collect()
    }

    /// OffsetFetch.
    pub fn committed_offsets(&self, group_id: &str, query: OffsetQuery) -> GroupResult<FetchedOffsets> {
        let OffsetQuery { partitions, require_stable, member } = query;
        let groups = self.coordinator.borrow();
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

    /// OffsetCommit: one result per offset, in request order.
    pub async fn commit_offsets(
        &self,
        metadata: &MetadataSnapshot,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        offsets: Vec<OffsetToCommit>,
    ) -> Vec<GroupResult<()>> {
        if let Err(e) = self.coordinator.borrow().validate_commit(group_id, member_id, instance_id, generation) {
            return vec![Err(e); offsets.len()];
        }
        let mut results = check_offsets(metadata, &offsets);
        let accepted: Vec<&OffsetToCommit> =
            offsets.iter().zip(&results).filter(|(_, r)| r.is_ok()).map(|(o, _)| o).collect();
        if accepted.is_empty() {
            return results;
        }
        let records = commit_records(group_id, &accepted);
        if let Err(e) = self.append(group_id, &records, RecordsBuilder::new()).await {
            tracing::warn!(group = group_id, "persisting offsets failed: {e:?}");
            for r in results.iter_mut().filter(|r| r.is_ok()) {
                *r = Err(e);
            }
            return results;
        }
        let mut groups = self.coordinator.borrow_mut();
        for o in accepted {
            groups.apply_commit(group_id, &o.topic, o.partition, o.offset.clone());
        }
        results
    }

    /// TxnOffsetCommit, once its transaction coordinator has verified it:
    /// the offsets are written to the group's partition as part of the
    /// producer's transaction and applied by its commit marker.
    pub async fn commit_offsets_in_txn(
        &self,
        metadata: &MetadataSnapshot,
        group_id: &str,
        commit: TxnCommit,
    ) -> Vec<Result<(), TxnOffsetError>> {
        let count = commit.offsets.len();
        // v3+ clients name their member and generation (KIP-447); older ones send none.
        if commit.generation >= 0 || !commit.member_id.is_empty() {
            let valid = self.coordinator.borrow().validate_commit(
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
            check_offsets(metadata, &commit.offsets).into_iter().map(|r| r.map_err(TxnOffsetError::Group)).collect();
        let accepted: Vec<&OffsetToCommit> =
            commit.offsets.iter().zip(&results).filter(|(_, r)| r.is_ok()).map(|(o, _)| o).collect();
        if accepted.is_empty() {
            return results;
        }
        let records = commit_records(group_id, &accepted);
        let batch = RecordsBuilder::new().producer(commit.producer_id, commit.epoch, -1).transactional();
        if let Err(e) = self.append(group_id, &records, batch).await {
            tracing::warn!(group = group_id, "persisting transactional offsets failed: {e:?}");
            for r in results.iter_mut().filter(|r| r.is_ok()) {
                *r = Err(TxnOffsetError::Group(e));
            }
            return results;
        }
        let mut groups = self.coordinator.borrow_mut();
        for o in accepted {
            groups.add_pending(commit.producer_id, group_id, &o.topic, o.partition, o.offset.clone());
        }
        results
    }

    /// A transaction's marker was written to `offsets_partition`: its
    /// pending offsets there are applied (commit) or dropped (abort).
    pub fn end_txn(&self, producer_id: i64, commit: bool, offsets_partition: i32) {
        self.coordinator.borrow_mut().end_txn(producer_id, commit, offsets_partition);
    }

    /// DeleteGroups, for one group.
    pub async fn delete_group(&self, group_id: &str) -> GroupResult<()> {
        self.coordinator.borrow().check_deletable(group_id)?;
        let committed = self.coordinator.borrow().all_committed(group_id);
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
        self.append(group_id, &records, RecordsBuilder::new()).await?;
        self.coordinator.borrow_mut().remove_group(group_id);
        Ok(())
    }

    /// OffsetDelete: Err for the whole group, else one result per partition.
    pub async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: Vec<(String, i32)>,
    ) -> GroupResult<Vec<GroupResult<()>>> {
        let checks: Vec<GroupResult<()>> = {
            let groups = self.coordinator.borrow();
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
            self.append(group_id, &records, RecordsBuilder::new()).await?;
            let mut groups = self.coordinator.borrow_mut();
            for ((topic, partition), _) in partitions.iter().zip(&checks).filter(|(_, c)| c.is_ok()) {
                groups.remove_commit(group_id, topic, *partition);
            }
        }
        Ok(checks)
    }

    /// Session expiry and rebalance deadlines; called periodically.
    pub fn tick(&self, now: Instant) {
        self.coordinator.borrow_mut().tick(now);
        self.persist_changes();
    }

    /// Appends records to the group's partition, answered once the
    /// in-sync replicas hold them (acks=all).
    async fn append(&self, group_id: &str, records: &[OffsetsRecord], batch: RecordsBuilder) -> GroupResult<()> {
        let records = encode_batch(records, now_ms(), batch);
        Ok(self.partitions.append(offsets_partition_of(group_id), records).await?)
    }

    /// Writes the metadata of groups whose generation, state, membership or
    /// assignments changed (never for a heartbeat). Not awaited: members do
    /// not wait for it (a record lost in a crash leaves the one before, whose
    /// members rejoin or expire).
    fn persist_changes(&self) {
        let (changed, consumer) = {
            let mut groups = self.coordinator.borrow_mut();
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
        for (index, records) in by_partition {
            let Ok(partition) = self.partitions.get(index) else { continue };
            let batch = encode_batch(&records, now_ms(), RecordsBuilder::new());
            // Spawned tasks first run in spawn order, so group records keep their order.
            weir_runtime::spawn_local(async move {
                if let Err(e) = partition.log.append(batch, Durability::Written).await {
                    tracing::warn!(partition = index, "persisting group metadata failed: {e}");
                }
            })
            .detach();
        }
    }

    /// This broker leads `__consumer_offsets` partition `index` in leader
    /// epoch `epoch`: a ticket to `load` it, unless it is loaded (or
    /// loading) for that leadership already; what an older one loaded is
    /// dropped.
    pub fn lead(&self, index: i32, epoch: i32) -> Option<LoadTicket> {
        let ticket = self.partitions.lead(index, epoch)?;
        self.coordinator.borrow_mut().unload(index);
        Some(ticket)
    }

    /// Another broker leads `__consumer_offsets` partition `index`: its
    /// groups are dropped and get NOT_COORDINATOR.
    pub fn resign(&self, index: i32) {
        if self.partitions.resign(index) {
            self.coordinator.borrow_mut().unload(index);
            tracing::info!(partition = index, "no longer the coordinator of the partition's groups");
        }
    }

    /// Replays a `__consumer_offsets` partition into the state machine,
    /// then serves its groups.
    pub async fn load(&self, partition: Rc<Partition>, ticket: LoadTicket) {
        let index = partition.index;
        let mut replayed = 0usize;
        self.partitions
            .load(partition, ticket, |batches| {
                let records = match decode_batches(batches) {
                    Ok(records) => records,
                    Err(e) => {
                        tracing::error!(partition = index, "undecodable __consumer_offsets batch: {e}");
                        return;
                    }
                };
                replayed += records.len();
                let now = weir_runtime::clock::now();
                let mut groups = self.coordinator.borrow_mut();
                for entry in records {
                    apply_entry(&mut groups, index, now, entry);
                }
            })
            .await;
        if replayed > 0 {
            tracing::info!(partition = index, records = replayed, "restored consumer group state");
        }
    }
}

/// Applies one replayed record of `__consumer_offsets` partition `index`,
/// loaded at `now` (when restored members' sessions start).
fn apply_entry(groups: &mut GroupCoordinator, index: i32, now: Instant, entry: OffsetsEntry) {
    let record = match entry {
        OffsetsEntry::Record(record) => record,
        OffsetsEntry::Transactional {
            producer_id,
            record: OffsetsRecord::Commit { group_id, topic, partition, offset: Some(o) },
        } => return groups.add_pending(producer_id, &group_id, &topic, partition, o),
        OffsetsEntry::Transactional { .. } => return,
        OffsetsEntry::Marker { producer_id, commit } => return groups.end_txn(producer_id, commit, index),
    };
    match record {
        OffsetsRecord::Commit { group_id, topic, partition, offset: Some(o) } => {
            groups.apply_commit(&group_id, &topic, partition, o)
        }
        OffsetsRecord::Commit { group_id, topic, partition, offset: None } => {
            groups.remove_commit(&group_id, &topic, partition)
        }
        OffsetsRecord::Group { metadata: Some(m), .. } => groups.restore_group(now, m),
        OffsetsRecord::Group { group_id, metadata: None } => groups.remove_group(&group_id),
        OffsetsRecord::ConsumerGroup { group_id, epoch: Some(epoch) } => {
            groups.restore_consumer_group(&group_id, epoch)
        }
        OffsetsRecord::ConsumerGroup { group_id, epoch: None } => groups.remove_group(&group_id),
    }
}

/// Each offset's own checks: a known partition, metadata within the limit.
fn check_offsets(metadata: &MetadataSnapshot, offsets: &[OffsetToCommit]) -> Vec<GroupResult<()>> {
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
