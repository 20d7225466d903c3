//! Fetch's reads: one message per owner shard reads all of a fetch's
//! partitions there. For a long poll the same message goes on waiting on the
//! owner until one of its partitions moves past what was read, then reads
//! them again, so a long poll costs one message per owner shard, not a read,
//! a wait and a re-read per partition.

use super::{FetchedPartition, Partition, Shard};
use crate::error::PartitionError;
use crate::messages::{ShardMessage, ShardTask};
use crate::reply;
use futures::future::{join_all, select, select_all, Either, LocalBoxFuture};
use std::collections::BTreeMap;
use std::pin::pin;
use std::time::Duration;
use weir_engine::{EngineError, ReadLimit};

/// What a fetch reads from one partition.
#[derive(Debug, Clone)]
pub struct PartitionRead {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// At most this many bytes of records; 0: only the partition's offsets.
    pub max_bytes: usize,
    /// The epoch of the last batch the fetcher has (Fetch v12+), -1: none.
    /// When this log's history differs there, the answer is the diverging
    /// epoch instead of records (KIP-320).
    pub last_fetched_epoch: i32,
    /// The follower broker that fetches (Fetch's replica id), `None` for a
    /// consumer. A follower reads up to the log end, and its offset tells
    /// the leader how far it has copied.
    pub replica: Option<i32>,
}

/// A long poll the owners take part in: after their read, each owner waits
/// up to `timeout` for one of its partitions to move, unless what it read
/// already reaches `min_bytes` (then the fetch is answered anyway).
#[derive(Debug, Clone, Copy)]
pub struct LongPoll {
    pub min_bytes: usize,
    pub timeout: Duration,
}

pub type ReadResult = Result<FetchedPartition, PartitionError>;

/// How much longer an owner waits than the requester: the requester's own
/// deadline ends a long poll (and drops the owners' waits) first, so an
/// owner never re-reads for a fetch that is about to be answered anyway.
const REQUESTER_DECIDES: Duration = Duration::from_secs(1);

/// A fetch's results in request order, and the owners still waiting to read
/// their partitions again once one of them moves. Dropping it ends those
/// waits on the owners.
#[derive(Default)]
pub struct PartitionReads<'a> {
    pub results: Vec<ReadResult>,
    rereads: Vec<Reread<'a>>,
}

/// An owner's promise to read its partitions again after one moves: their
/// positions in the results, and the new results (`None`: it gave up).
struct Reread<'a> {
    positions: Vec<usize>,
    results: LocalBoxFuture<'a, Option<Vec<ReadResult>>>,
}

impl<'a> PartitionReads<'a> {
    /// Appends a later round's reads after these.
    pub fn extend(&mut self, later: PartitionReads<'a>) {
        let shift = self.results.len();
        self.results.extend(later.results);
        self.rereads.extend(later.rereads.into_iter().map(|mut r| {
            r.positions.iter_mut().for_each(|p| *p += shift);
            r
        }));
    }

    /// Waits for the next owner that saw one of its partitions move and read
    /// them again, and takes its results in place of the old ones; false
    /// when no owner is waiting (any more).
    pub async fn reread(&mut self) -> bool {
        while !self.rereads.is_empty() {
            let (answer, done, _) = select_all(self.rereads.iter_mut().map(|r| r.results.as_mut())).await;
            let done = self.rereads.swap_remove(done);
            if let Some(results) = answer {
                for (position, result) in done.positions.into_iter().zip(results) {
                    self.results[position] = result;
                }
                return true;
            }
        }
        false
    }
}

impl Shard {
    /// Reads `reads`, in request order, with one message per owner shard;
    /// `None` stands for a partition the requester could not name (an
    /// unknown topic id) and is answered UNKNOWN_TOPIC_OR_PARTITION. With a
    /// long poll the owners then wait as [`LongPoll`] says:
    /// [`PartitionReads::reread`] collects what they read again.
    pub async fn read_partitions(
        &self,
        reads: Vec<Option<PartitionRead>>,
        read_committed: bool,
        long_poll: Option<LongPoll>,
    ) -> PartitionReads<'_> {
        let metadata = self.metadata();
        let mut results: Vec<Option<ReadResult>> = Vec::with_capacity(reads.len());
        let mut by_owner: BTreeMap<usize, (Vec<usize>, Vec<PartitionRead>)> = BTreeMap::new();
        for (position, read) in reads.into_iter().enumerate() {
            match read {
                Some(read) if metadata.has_partition(&read.topic, read.partition) => {
                    let owned = by_owner.entry(self.owner(&read.topic, read.partition)).or_default();
                    owned.0.push(position);
                    owned.1.push(read);
                    results.push(None);
                }
                _ => results.push(Some(Err(PartitionError::UnknownTopicOrPartition))),
            }
        }
        let asked = by_owner.into_iter().map(|(owner, (positions, reads))| async move {
            (positions, self.read_on(owner, reads, read_committed, long_poll).await)
        });
        let mut rereads = Vec::new();
        for (positions, (read, reread)) in join_all(asked).await {
            for (&position, result) in positions.iter().zip(read) {
                results[position] = Some(result);
            }
            if let Some(results) = reread {
                rereads.push(Reread { positions, results });
            }
        }
        let results = results.into_iter().map(|r| r.expect("every read is answered")).collect();
        PartitionReads { results, rereads }
    }

    /// One owner's part of a fetch: its results now and, for a long poll,
    /// a future of the results after one of its partitions moved.
    async fn read_on(
        &self,
        owner: usize,
        reads: Vec<PartitionRead>,
        read_committed: bool,
        long_poll: Option<LongPoll>,
    ) -> (Vec<ReadResult>, Option<LocalBoxFuture<'_, Option<Vec<ReadResult>>>>) {
        if owner == self.id {
            let results = self.read_owned(&reads, read_committed).await;
            let reread = wait_offsets(&reads, &results, read_committed, long_poll).map(move |(beyond, timeout)| {
                let reread: LocalBoxFuture<'_, _> =
                    Box::pin(
                        async move { Some(self.reread_when_moved(&reads, &beyond, read_committed, timeout).await) },
                    );
                reread
            });
            return (results, reread);
        }
        let count = reads.len();
        let (mut first_reply, first) = reply::channel::<Vec<ReadResult>>();
        let (mut later_reply, later) = reply::channel::<Vec<ReadResult>>();
        let task: ShardTask = Box::new(move |shard| {
            Box::pin(async move {
                let requester_gone = first_reply.cancellation();
                let read = pin!(shard.read_owned(&reads, read_committed));
                let Either::Left((results, _)) = select(read, pin!(requester_gone)).await else { return };
                let wait = wait_offsets(&reads, &results, read_committed, long_poll);
                if first_reply.send(results).is_err() {
                    return;
                }
                if let Some((beyond, timeout)) = wait {
                    let reread = pin!(shard.reread_when_moved(&reads, &beyond, read_committed, timeout));
                    let moved = match select(reread, pin!(later_reply.cancellation())).await {
                        Either::Left((results, _)) => Some(results),
                        Either::Right(_) => None,
                    };
                    if let Some(results) = moved {
                        let _ = later_reply.send(results);
                    }
                }
            })
        });
        if self.peers.send_to(owner, ShardMessage::Run(task)).await.is_err() {
            return (unavailable(count), None);
        }
        match first.await {
            Ok(results) => {
                let reread: LocalBoxFuture<'_, _> = Box::pin(async move { later.await.ok() });
                (results, long_poll.map(|_| reread))
            }
            Err(_) => (unavailable(count), None),
        }
    }

    /// Reads partitions this shard owns; a `max_bytes` of 0 reads only the
    /// offsets.
    async fn read_owned(&self, reads: &[PartitionRead], read_committed: bool) -> Vec<ReadResult> {
        join_all(reads.iter().map(|r| async move {
            let partition = self.led_partition(&r.topic, r.partition)?;
            let diverging_epoch = diverging_epoch(&partition.log, r.last_fetched_epoch, r.offset)?;
            if let (Some(follower), None) = (r.replica, diverging_epoch) {
                self.follower_fetched(&partition, follower, r.offset);
            }
            if r.max_bytes > 0 && diverging_epoch.is_none() {
                return match r.replica {
                    Some(_) => partition.read_for_follower(r.offset, r.max_bytes).await,
                    None => partition.read(r.offset, r.max_bytes, read_committed).await,
                };
            }
            Ok(FetchedPartition {
                records: bytes::Bytes::new(),
                high_watermark: partition.log.high_watermark(),
                last_stable_offset: partition.last_stable_offset().await?,
                log_start_offset: partition.log.log_start_offset(),
                aborted_transactions: None,
                diverging_epoch,
            })
        }))
        .await
    }

    /// Waits until one of `reads` moves past its offset in `beyond` (its
    /// high watermark, read_committed: its last stable offset), or
    /// `timeout`; then reads them all again.
    async fn reread_when_moved(
        &self,
        reads: &[PartitionRead],
        beyond: &[Option<i64>],
        read_committed: bool,
        timeout: Duration,
    ) -> Vec<ReadResult> {
        let waits = reads.iter().zip(beyond).filter_map(|(r, beyond)| {
            let beyond = (*beyond)?;
            Some(Box::pin(async move {
                let Ok(partition) = self.partition(&r.topic, r.partition) else { return };
                if r.replica.is_some() {
                    let log_end = partition.log.wait_beyond_limit(beyond, ReadLimit::LogEnd);
                    select(pin!(log_end), pin!(weir_runtime::clock::sleep(timeout))).await;
                } else if read_committed {
                    // An error ends the wait; the re-read reports it.
                    let _ = partition.wait_stable_beyond(beyond, timeout).await;
                } else {
                    select(pin!(partition.log.wait_beyond(beyond)), pin!(weir_runtime::clock::sleep(timeout))).await;
                }
            }))
        });
        select_all(waits).await;
        self.read_owned(reads, read_committed).await
    }
}

impl Shard {
    /// A follower of `partition` (which this broker leads) fetched from
    /// `offset`: the high watermark moves to what every in-sync replica holds.
    fn follower_fetched(&self, partition: &Partition, follower: i32, offset: i64) {
        let now = weir_runtime::clock::now();
        partition.followers.fetched(follower, offset, partition.log.log_end_offset(), now);
        let me = self.config().node_id;
        let snapshot = self.metadata();
        let Some(state) = snapshot.partition(&partition.topic, partition.index) else { return };
        self.follower_may_rejoin(partition, state, follower, offset);
        if state.isr != [me] {
            let log = &partition.log;
            log.advance_high_watermark(partition.followers.high_watermark(&state.isr, me, log.log_end_offset()));
        }
    }
}

/// The results of reads whose owner shard is gone.
fn unavailable(count: usize) -> Vec<ReadResult> {
    (0..count).map(|_| Err(PartitionError::ShardUnavailable)).collect()
}

/// Where an owner's long-poll wait starts, per partition (`None`: not
/// waited on, its read failed), and for how long; `None` when there is
/// nothing to wait for: no long poll, what was read is enough, or every
/// read failed (the fetch is answered at once).
fn wait_offsets(
    reads: &[PartitionRead],
    results: &[ReadResult],
    read_committed: bool,
    long_poll: Option<LongPoll>,
) -> Option<(Vec<Option<i64>>, Duration)> {
    let long_poll = long_poll?;
    let ready: usize = results.iter().map(|r| r.as_ref().map_or(0, |f| f.records.len())).sum();
    if ready >= long_poll.min_bytes || results.iter().any(answers_at_once) {
        return None;
    }
    // Past what was read: records appended after it, not records the read
    // left out for its byte limit, so a partial read does not spin.
    let beyond = reads
        .iter()
        .zip(results)
        .map(|(r, result)| {
            let seen = result.as_ref().ok()?;
            Some(match r.replica {
                // A follower asks from its log end: it waits for more of the log.
                Some(_) => r.offset,
                None => r.offset.max(if read_committed { seen.last_stable_offset } else { seen.high_watermark }),
            })
        })
        .collect();
    Some((beyond, long_poll.timeout + REQUESTER_DECIDES))
}

/// True when a fetch with this result is answered without waiting: the
/// read failed, or the fetcher must truncate first.
pub fn answers_at_once(result: &ReadResult) -> bool {
    result.as_ref().map_or(true, |f| f.diverging_epoch.is_some())
}

/// Kafka's check of a fetcher's history (KIP-320): the fetcher's last
/// batch is of `last_fetched_epoch` and it asks from `offset`; when this log
/// has no such epoch, or that epoch ends before `offset`, the fetcher's
/// history diverged: (the largest epoch at most its one here, where that
/// ends), to truncate to. An epoch past this log's, or an offset below its
/// start, is out of range, as Kafka answers.
fn diverging_epoch(
    log: &weir_engine::PartitionLog,
    last_fetched_epoch: i32,
    offset: i64,
) -> Result<Option<(i32, i64)>, PartitionError> {
    if last_fetched_epoch < 0 {
        return Ok(None);
    }
    let (epoch, end) = log.end_offset_for_epoch(last_fetched_epoch);
    let (start, log_end) = (log.log_start_offset(), log.log_end_offset());
    if epoch < 0 || end < 0 || offset < start {
        return Err(EngineError::OffsetOutOfRange { requested: offset, start, end: log_end }.into());
    }
    Ok((epoch < last_fetched_epoch || end < offset).then_some((epoch, end)))
}
