//! Transactions (KIP-98): the transaction coordinator's state and its rules.
//!
//! Each transactional id is owned by one shard: the owner of its
//! `__transaction_state` partition (Kafka's rule, `abs(java_hash(id)) % 50`).
//! The owner's [`TxnService`] keeps a [`TxnMetadata`] per id, persists every
//! change as a record of Kafka's transaction log schema in that partition
//! before it answers (`log_records`), and replays the partition when it
//! loads it. The rules here are plain functions of the metadata; the service
//! does the I/O.

pub mod log_records;
pub mod markers;
mod service;

pub(crate) use service::TxnService;

use std::collections::BTreeSet;

pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";
/// Kafka's `transaction.state.log.num.partitions` default.
pub const TRANSACTION_STATE_PARTITIONS: i32 = 50;
/// Kafka's `transaction.max.timeout.ms` default.
pub const MAX_TRANSACTION_TIMEOUT_MS: i32 = 900_000;

/// The `__transaction_state` partition that holds `transactional_id`.
pub fn transaction_partition_of(transactional_id: &str) -> i32 {
    crate::groups::java_hash_partition(transactional_id, TRANSACTION_STATE_PARTITIONS)
}

/// Kafka's transaction states, with their numbers in the transaction log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    Empty = 0,
    Ongoing = 1,
    PrepareCommit = 2,
    PrepareAbort = 3,
    CompleteCommit = 4,
    CompleteAbort = 5,
}

impl TxnState {
    pub fn from_i8(n: i8) -> Option<TxnState> {
        Some(match n {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            _ => return None,
        })
    }

    /// The names DescribeTransactions and ListTransactions use.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }

    fn is_prepare(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// Transaction errors, each one Kafka error code at the protocol edge.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnError {
    #[error("the coordinator is not available")]
    CoordinatorNotAvailable,
    #[error("the coordinator is loading the transactions' state")]
    CoordinatorLoadInProgress,
    #[error("this broker does not coordinate the transactional id")]
    NotCoordinator,
    #[error("the producer id does not belong to this transactional id")]
    InvalidProducerIdMapping,
    /// PRODUCER_FENCED, or INVALID_PRODUCER_EPOCH for request versions before it existed.
    #[error("the producer has been fenced by a newer epoch")]
    ProducerFenced,
    #[error("another operation on this transaction is in progress")]
    ConcurrentTransactions,
    #[error("the operation is not valid in the transaction's state")]
    InvalidTxnState,
    #[error("transaction timeout outside 1..=transaction.max.timeout.ms")]
    InvalidTransactionTimeout,
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    #[error("not attempted: another partition of the request failed")]
    OperationNotAttempted,
    #[error("invalid transactional id")]
    InvalidTransactionalId,
    /// A marker from a coordinator older than one that wrote a marker of
    /// the producer to the partition.
    #[error("a newer transaction coordinator wrote this producer's markers")]
    CoordinatorFenced,
}

impl TxnError {
    /// The error a Kafka error code from another broker's coordinator
    /// names; one with no counterpart here is COORDINATOR_NOT_AVAILABLE,
    /// which the asker retries.
    pub fn from_code(code: i16) -> TxnError {
        use kafka_protocol::error::ResponseError as E;
        let known = [
            (E::CoordinatorLoadInProgress, TxnError::CoordinatorLoadInProgress),
            (E::NotCoordinator, TxnError::NotCoordinator),
            (E::InvalidProducerIdMapping, TxnError::InvalidProducerIdMapping),
            (E::ProducerFenced, TxnError::ProducerFenced),
            (E::InvalidProducerEpoch, TxnError::ProducerFenced),
            (E::ConcurrentTransactions, TxnError::ConcurrentTransactions),
            (E::InvalidTxnState, TxnError::InvalidTxnState),
            (E::UnknownTopicOrPartition, TxnError::UnknownTopicOrPartition),
            (E::TransactionCoordinatorFenced, TxnError::CoordinatorFenced),
        ];
        known.into_iter().find(|(error, _)| error.code() == code).map_or(TxnError::CoordinatorNotAvailable, |(_, e)| e)
    }
}

/// What the coordinator knows of one transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    pub epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// The partitions in the ongoing (or preparing) transaction.
    pub partitions: BTreeSet<(String, i32)>,
    /// When the ongoing transaction started (-1 without one).
    pub start_ms: i64,
    pub last_update_ms: i64,
}

/// The next step of an EndTxn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndStep {
    /// Write this Prepare state, then the markers, then complete.
    Prepare(TxnMetadata),
    /// A retry of an EndTxn that already completed.
    AlreadyDone,
}

impl TxnMetadata {
    /// Checks that a request comes from the current producer of this id.
    pub fn check_producer(&self, producer_id: i64, epoch: i16) -> Result<(), TxnError> {
        if producer_id != self.producer_id {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        if epoch != self.epoch {
            return Err(TxnError::ProducerFenced);
        }
        Ok(())
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: the metadata to persist, or
    /// `None` when every partition is already in the ongoing transaction.
    pub fn add_partitions(&self, partitions: &[(String, i32)], now_ms: i64) -> Result<Option<TxnMetadata>, TxnError> {
        if self.state.is_prepare() {
            return Err(TxnError::ConcurrentTransactions);
        }
        let ongoing = self.state == TxnState::Ongoing;
        if ongoing && partitions.iter().all(|p| self.partitions.contains(p)) {
            return Ok(None);
        }
        let mut next = self.clone();
        if !ongoing {
            next.partitions.clear();
            next.start_ms = now_ms;
        }
        next.state = TxnState::Ongoing;
        next.partitions.extend(partitions.iter().cloned());
        next.last_update_ms = now_ms;
        Ok(Some(next))
    }

    /// EndTxn: commit or abort the ongoing transaction.
    pub fn end(&self, commit: bool, now_ms: i64) -> Result<EndStep, TxnError> {
        match (self.state, commit) {
            (TxnState::Ongoing, _) => {
                let mut next = self.clone();
                next.state = if commit { TxnState::PrepareCommit } else { TxnState::PrepareAbort };
                next.last_update_ms = now_ms;
                Ok(EndStep::Prepare(next))
            }
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(EndStep::AlreadyDone),
            (TxnState::PrepareCommit | TxnState::PrepareAbort, _) => Err(TxnError::ConcurrentTransactions),
            _ => Err(TxnError::InvalidTxnState),
        }
    }

    /// The state after every marker of a Prepare state is written.
    pub fn completed(&self, now_ms: i64) -> TxnMetadata {
        let state = match self.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            TxnState::PrepareAbort => TxnState::CompleteAbort,
            other => other,
        };
        TxnMetadata { state, partitions: BTreeSet::new(), start_ms: -1, last_update_ms: now_ms, ..self.clone() }
    }

    /// Aborting with the next epoch (a new producer of the id, or a
    /// timeout): the old producer's requests are fenced from now on.
    /// `None` when there is no ongoing transaction or the epoch is exhausted.
    pub fn fenced_abort(&self, now_ms: i64) -> Option<TxnMetadata> {
        if self.state != TxnState::Ongoing || self.epoch >= i16::MAX - 1 {
            return None;
        }
        Some(TxnMetadata {
            epoch: self.epoch + 1,
            state: TxnState::PrepareAbort,
            last_update_ms: now_ms,
            ..self.clone()
        })
    }

    /// Whether the ongoing transaction has run past its timeout.
    pub fn timed_out(&self, now_ms: i64) -> bool {
        self.state == TxnState::Ongoing && now_ms.saturating_sub(self.start_ms) > i64::from(self.timeout_ms)
    }

    /// Whether the coordinator may forget the id (Kafka's
    /// `transactional.id.expiration.ms`): no transaction in progress and no
    /// state change for `expiration_ms`.
    pub fn expired(&self, now_ms: i64, expiration_ms: i64) -> bool {
        let idle = matches!(self.state, TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort);
        idle && now_ms.saturating_sub(self.last_update_ms) >= expiration_ms
    }

    /// Whether a transactional batch of this producer may go to `partition`.
    pub fn verify_partition(&self, producer_id: i64, epoch: i16, topic: &str, partition: i32) -> Result<(), TxnError> {
        self.check_producer(producer_id, epoch)?;
        if self.state != TxnState::Ongoing || !self.partitions.contains(&(topic.to_string(), partition)) {
            return Err(TxnError::InvalidTxnState);
        }
        Ok(())
    }
}

/// InitProducerId with a transactional id: the metadata to persist before
/// answering, and whether an ongoing transaction must first be aborted
/// (`prior` is what to abort, already with the bumped epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitStep {
    pub abort_first: Option<TxnMetadata>,
    pub next: TxnMetadata,
}

/// Validates an InitProducerId and plans it. `new_producer_id` is a fresh id,
/// used when the id is new or its epoch is exhausted. `expected` is the
/// (producer id, epoch) a v3+ client claims to hold (KIP-360), if any.
pub fn plan_init(
    current: Option<&TxnMetadata>,
    transactional_id: &str,
    timeout_ms: i32,
    expected: Option<(i64, i16)>,
    new_producer_id: impl FnOnce() -> i64,
    now_ms: i64,
) -> Result<InitStep, TxnError> {
    if transactional_id.is_empty() {
        return Err(TxnError::InvalidTransactionalId);
    }
    if timeout_ms <= 0 || timeout_ms > MAX_TRANSACTION_TIMEOUT_MS {
        return Err(TxnError::InvalidTransactionTimeout);
    }
    let Some(current) = current else {
        if expected.is_some() {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        return Ok(InitStep {
            abort_first: None,
            next: TxnMetadata {
                transactional_id: transactional_id.to_string(),
                producer_id: new_producer_id(),
                epoch: 0,
                timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                start_ms: -1,
                last_update_ms: now_ms,
            },
        });
    };
    if current.state.is_prepare() {
        return Err(TxnError::ConcurrentTransactions);
    }
    if let Some((producer_id, epoch)) = expected {
        // A retry of an InitProducerId that was answered may carry the epoch
        // it was given; an older one is a zombie.
        if producer_id != current.producer_id {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        if epoch != current.epoch {
            return Err(TxnError::ProducerFenced);
        }
    }
    let abort_first = current.fenced_abort(now_ms);
    let base = abort_first.as_ref().map_or_else(|| current.clone(), |a| a.completed(now_ms));
    let (producer_id, epoch) =
        if base.epoch >= i16::MAX - 1 { (new_producer_id(), 0) } else { (base.producer_id, base.epoch + 1) };
    let next = TxnMetadata {
        producer_id,
        epoch,
        timeout_ms,
        state: TxnState::Empty,
        partitions: BTreeSet::new(),
        start_ms: -1,
        last_update_ms: now_ms,
        ..base
    };
    Ok(InitStep { abort_first, next })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init(current: Option<&TxnMetadata>) -> Result<InitStep, TxnError> {
        plan_init(current, "t", 60_000, None, || 42, 1)
    }

    #[test]
    fn init_allocates_then_bumps_and_aborts_an_ongoing_transaction() {
        let first = init(None).unwrap().next;
        assert_eq!((first.producer_id, first.epoch, first.state), (42, 0, TxnState::Empty));
        let again = init(Some(&first)).unwrap();
        assert_eq!((again.abort_first, again.next.epoch), (None, 1));
        let ongoing = again.next.add_partitions(&[("a".into(), 0)], 5).unwrap().unwrap();
        let fenced = init(Some(&ongoing)).unwrap();
        let abort = fenced.abort_first.unwrap();
        assert_eq!((abort.state, abort.epoch, abort.partitions.len()), (TxnState::PrepareAbort, 2, 1));
        assert_eq!((fenced.next.epoch, fenced.next.state), (3, TxnState::Empty));
        assert!(fenced.next.partitions.is_empty());
        assert_eq!(ongoing.check_producer(42, 1), Ok(()));
        assert_eq!(fenced.next.check_producer(42, 1), Err(TxnError::ProducerFenced));
    }

    #[test]
    fn init_validates_timeout_and_claimed_epoch() {
        assert_eq!(plan_init(None, "t", 0, None, || 1, 0), Err(TxnError::InvalidTransactionTimeout));
        assert_eq!(plan_init(None, "t", 900_001, None, || 1, 0), Err(TxnError::InvalidTransactionTimeout));
        assert_eq!(plan_init(None, "", 1000, None, || 1, 0), Err(TxnError::InvalidTransactionalId));
        let m = init(None).unwrap().next;
        assert_eq!(plan_init(Some(&m), "t", 1000, Some((42, 0)), || 1, 0).unwrap().next.epoch, 1);
        assert_eq!(plan_init(Some(&m), "t", 1000, Some((42, 3)), || 1, 0), Err(TxnError::ProducerFenced));
        assert_eq!(plan_init(Some(&m), "t", 1000, Some((7, 0)), || 1, 0), Err(TxnError::InvalidProducerIdMapping));
        let exhausted = TxnMetadata { epoch: i16::MAX - 1, ..m };
        let next = plan_init(Some(&exhausted), "t", 1000, None, || 99, 0).unwrap().next;
        assert_eq!((next.producer_id, next.epoch), (99, 0), "a new producer id once epochs run out");
    }

    #[test]
    fn end_commits_aborts_and_answers_retries() {
        let m = init(None).unwrap().next;
        assert_eq!(m.end(true, 2), Err(TxnError::InvalidTxnState), "nothing to commit");
        let ongoing = m.add_partitions(&[("a".into(), 0), ("b".into(), 1)], 2).unwrap().unwrap();
        assert_eq!(ongoing.add_partitions(&[("a".into(), 0)], 3), Ok(None), "already added");
        let EndStep::Prepare(prepare) = ongoing.end(true, 4).unwrap() else { panic!() };
        assert_eq!(prepare.state, TxnState::PrepareCommit);
        assert_eq!(prepare.add_partitions(&[("c".into(), 0)], 5), Err(TxnError::ConcurrentTransactions));
        assert_eq!(prepare.end(true, 5), Err(TxnError::ConcurrentTransactions));
        let done = prepare.completed(6);
        assert_eq!((done.state, done.partitions.len()), (TxnState::CompleteCommit, 0));
        assert_eq!(done.end(true, 7), Ok(EndStep::AlreadyDone));
        assert_eq!(done.end(false, 7), Err(TxnError::InvalidTxnState));
        let next = done.add_partitions(&[("c".into(), 0)], 8).unwrap().unwrap();
        assert_eq!((next.state, next.start_ms, next.partitions.len()), (TxnState::Ongoing, 8, 1));
    }

    #[test]
    fn partitions_are_verified_and_timeouts_detected() {
        let m = init(None).unwrap().next;
        assert_eq!(m.verify_partition(42, 0, "a", 0), Err(TxnError::InvalidTxnState));
        let ongoing = m.add_partitions(&[("a".into(), 0)], 1000).unwrap().unwrap();
        assert_eq!(ongoing.verify_partition(42, 0, "a", 0), Ok(()));
        assert_eq!(ongoing.verify_partition(42, 0, "a", 1), Err(TxnError::InvalidTxnState));
        assert_eq!(ongoing.verify_partition(42, 1, "a", 0), Err(TxnError::ProducerFenced));
        assert!(!ongoing.timed_out(61_000));
        assert!(ongoing.timed_out(61_001));
        assert_eq!(ongoing.fenced_abort(0).unwrap().epoch, 1);
    }

    #[test]
    fn idle_ids_expire_unless_a_transaction_is_in_progress() {
        let m = init(None).unwrap().next;
        assert!(!m.expired(100, 100) && m.expired(101, 100), "last changed at 1");
        let ongoing = m.add_partitions(&[("a".into(), 0)], 5).unwrap().unwrap();
        assert!(!ongoing.expired(i64::MAX, 100));
        let EndStep::Prepare(prepare) = ongoing.end(false, 6).unwrap() else { panic!() };
        assert!(!prepare.expired(i64::MAX, 100));
        assert!(prepare.completed(7).expired(107, 100));
    }
}
