//! The coordinators (groups, transactions) follow this broker's leadership
//! of their partitions: a partition's state is loaded when this broker
//! becomes its leader and dropped when another broker leads it, so that
//! only the leader serves its keys, from state replayed up to the log end
//! of its leadership (Kafka's onElection / onResignation).

use super::{Partition, Shard};
use crate::coordinator_partitions::LoadTicket;
use crate::groups::OFFSETS_TOPIC;
use crate::transactions::TRANSACTION_STATE_TOPIC;
use std::rc::Rc;

/// A coordinator's partition to load for a new leadership.
pub(super) enum CoordinatorLoad {
    Groups(LoadTicket),
    Transactions(LoadTicket),
}

impl Shard {
    /// Where `partition` holds a coordinator's state: this broker leads it
    /// in leader epoch `epoch` (the load to run, unless its state is loaded
    /// for that leadership already), or another broker leads it (`None`:
    /// its state is dropped).
    pub(super) fn coordinate(&self, partition: &Partition, epoch: Option<i32>) -> Option<CoordinatorLoad> {
        let index = partition.index;
        match (partition.topic.as_str(), epoch) {
            (OFFSETS_TOPIC, Some(epoch)) => self.groups.lead(index, epoch).map(CoordinatorLoad::Groups),
            (OFFSETS_TOPIC, None) => {
                self.groups.resign(index);
                None
            }
            (TRANSACTION_STATE_TOPIC, Some(epoch)) => {
                self.transactions.lead(index, epoch).map(CoordinatorLoad::Transactions)
            }
            (TRANSACTION_STATE_TOPIC, None) => {
                self.transactions.resign(index);
                None
            }
            _ => None,
        }
    }

    /// Replays a coordinator's partition; its keys are served once it returns.
    pub(super) async fn load_coordinator(&self, partition: Rc<Partition>, load: CoordinatorLoad) {
        match load {
            CoordinatorLoad::Groups(ticket) => self.groups.load(partition, ticket).await,
            CoordinatorLoad::Transactions(ticket) => self.transactions.load(partition, ticket).await,
        }
    }

    /// `coordinate` for a new image: a load runs in the background
    /// (requests for its keys get COORDINATOR_LOAD_IN_PROGRESS meanwhile).
    pub(super) fn coordinate_in_background(&self, partition: &Rc<Partition>, epoch: Option<i32>) {
        let Some(load) = self.coordinate(partition, epoch) else { return };
        let Some(shard) = self.me.upgrade() else { return };
        let partition = partition.clone();
        weir_runtime::spawn_local(async move { shard.load_coordinator(partition, load).await }).detach();
    }
}
