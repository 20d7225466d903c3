//! `weir partitions reassign`: moves a partition onto other brokers, or
//! cancels its move (AlterPartitionReassignments); `weir partitions
//! reassignments`: the partitions moving (ListPartitionReassignments).

use crate::topics::{check, topic_name};
use crate::Bootstrap;
use anyhow::bail;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic};
use kafka_protocol::messages::list_partition_reassignments_response::OngoingTopicReassignment;
use kafka_protocol::messages::{AlterPartitionReassignmentsRequest, BrokerId, ListPartitionReassignmentsRequest};
use weir_client::Client;

#[derive(clap::Subcommand)]
pub enum PartitionsCommand {
    /// Moves a partition onto the brokers given, the first its preferred leader: the new ones
    /// copy its log, then the others drop theirs. Returns once the move began.
    Reassign {
        #[command(flatten)]
        bootstrap: Bootstrap,
        #[arg(long)]
        topic: String,
        #[arg(long)]
        partition: i32,
        /// The broker ids to hold its replicas, e.g. 4,2,3.
        #[arg(long, value_delimiter = ',', required_unless_present = "cancel", conflicts_with = "cancel")]
        replicas: Vec<i32>,
        /// Cancels the move in progress: back to the replicas it started from.
        #[arg(long)]
        cancel: bool,
    },
    /// The partitions moving: their replicas, those being added and those being removed.
    Reassignments {
        #[command(flatten)]
        bootstrap: Bootstrap,
        /// Only this topic's partitions [default: every topic].
        #[arg(long)]
        topic: Option<String>,
    },
}

pub fn run(command: PartitionsCommand) -> anyhow::Result<()> {
    match command {
        PartitionsCommand::Reassign { bootstrap, topic, partition, replicas, cancel } => {
            let target = (!cancel).then_some(replicas);
            reassign(&bootstrap.bootstrap, &topic, partition, target)
        }
        PartitionsCommand::Reassignments { bootstrap, topic } => reassignments(&bootstrap.bootstrap, topic.as_deref()),
    }
}

fn reassign(bootstrap: &str, topic: &str, partition: i32, target: Option<Vec<i32>>) -> anyhow::Result<()> {
    let mut client = Client::connect(bootstrap)?;
    let cancel = target.is_none();
    let replicas = target.map(|ids| ids.into_iter().map(BrokerId).collect());
    let named = ReassignablePartition::default().with_partition_index(partition).with_replicas(replicas);
    let request = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![ReassignableTopic::default().with_name(topic_name(topic)).with_partitions(vec![named])]);
    let response = client.send(&request, 0)?;
    check(response.error_code, response.error_message.as_ref(), "cannot reassign")?;
    let mut answers = response.responses.iter().flat_map(|t| &t.partitions);
    let answer = answers.find(|p| p.partition_index == partition);
    let answer = answer.ok_or_else(|| anyhow::anyhow!("no answer for {topic}-{partition}"))?;
    if let Some(error) = ResponseError::try_from_code(answer.error_code) {
        let message = answer.error_message.as_deref().map_or_else(|| error.to_string(), str::to_string);
        bail!("{topic}-{partition}  {error:?}: {message}");
    }
    println!("{topic}-{partition}  {}", if cancel { "move cancelled" } else { "moving" });
    Ok(())
}

fn reassignments(bootstrap: &str, topic: Option<&str>) -> anyhow::Result<()> {
    let mut client = Client::connect(bootstrap)?;
    let request = ListPartitionReassignmentsRequest::default().with_timeout_ms(30_000);
    let response = client.send(&request, 0)?;
    check(response.error_code, response.error_message.as_ref(), "cannot list reassignments")?;
    let ids = |ids: &[BrokerId]| ids.iter().map(|id| id.0.to_string()).collect::<Vec<_>>().join(",");
    let named = |moving: &&OngoingTopicReassignment| topic.is_none_or(|name| *moving.name.0 == *name);
    for moving in response.topics.iter().filter(named) {
        for p in &moving.partitions {
            println!(
                "{}-{}  replicas {}  adding {}  removing {}",
                &*moving.name.0,
                p.partition_index,
                ids(&p.replicas),
                ids(&p.adding_replicas),
                ids(&p.removing_replicas)
            );
        }
    }
    Ok(())
}
