//! `weir cluster status`: the brokers, the active controller, and the
//! partitions that are short of replicas, without a leader or led by another
//! than their preferred replica, over the Kafka protocol (DescribeCluster
//! and Metadata), from any broker of the cluster. `weir cluster
//! elect-leaders`: leadership back to the preferred replicas (ElectLeaders).

use crate::topics::{check, metadata};
use crate::Bootstrap;
use anyhow::bail;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, ElectLeadersRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use weir_client::Client;

#[derive(clap::Subcommand)]
pub enum ClusterCommand {
    /// Brokers (fenced ones marked), the active controller, and the
    /// under-replicated and offline partitions of every topic.
    Status {
        #[command(flatten)]
        bootstrap: Bootstrap,
    },
    /// Moves the leadership of partitions back to their preferred (first) replica where it is in
    /// sync (ElectLeaders); with --unclean, gives partitions without a leader one, in sync or not.
    ElectLeaders {
        #[command(flatten)]
        bootstrap: Bootstrap,
        /// Only this topic's partitions [default: every partition].
        #[arg(long)]
        topic: Option<String>,
        /// Only this partition of --topic.
        #[arg(long, requires = "topic")]
        partition: Option<i32>,
        /// Unclean election: a replica out of the ISR may lead, losing what it lacks.
        #[arg(long)]
        unclean: bool,
    },
}

pub fn run(command: ClusterCommand) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Status { bootstrap } => status(&bootstrap.bootstrap),
        ClusterCommand::ElectLeaders { bootstrap, topic, partition, unclean } => {
            elect_leaders(&bootstrap.bootstrap, topic.as_deref(), partition, unclean)
        }
    }
}

fn status(bootstrap: &str) -> anyhow::Result<()> {
    let mut client = Client::connect(bootstrap)?;
    let cluster = client.send(&DescribeClusterRequest::default().with_include_fenced_brokers(true), 2)?;
    check(cluster.error_code, cluster.error_message.as_ref(), "cannot describe the cluster")?;
    println!("cluster {}  controller {}", &*cluster.cluster_id, cluster.controller_id.0);
    println!("{:>6} {:>24} {:>10} {:>8}", "broker", "address", "rack", "state");
    for broker in &cluster.brokers {
        let address = format!("{}:{}", &*broker.host, broker.port);
        let rack = broker.rack.as_deref().unwrap_or("-");
        let state = if broker.is_fenced { "fenced" } else { "active" };
        println!("{:>6} {address:>24} {rack:>10} {state:>8}", broker.broker_id.0);
    }
    let topics = metadata(&mut client, None, false)?;
    let ids = |ids: &[BrokerId]| ids.iter().map(|id| id.0.to_string()).collect::<Vec<_>>().join(",");
    let (mut partitions, mut unhealthy) = (0, Vec::new());
    for topic in &topics.topics {
        let name = topic.name.as_ref().map_or("?", |n| &**n);
        for p in &topic.partitions {
            partitions += 1;
            let preferred = p.replica_nodes.first() == Some(&p.leader_id);
            let state = match (p.leader_id.0 < 0, p.isr_nodes.len() < p.replica_nodes.len(), preferred) {
                (true, _, _) => "offline",
                (false, true, _) => "under-replicated",
                (false, false, false) => "not-preferred",
                (false, false, true) => continue,
            };
            let (replicas, isr) = (ids(&p.replica_nodes), ids(&p.isr_nodes));
            unhealthy.push(format!(
                "{name}-{}  {state}  leader {}  replicas {replicas}  isr {isr}",
                p.partition_index, p.leader_id.0
            ));
        }
    }
    let count = |state: &str| unhealthy.iter().filter(|line| line.contains(&format!("  {state}  "))).count();
    println!(
        "partitions {partitions} in {} topics: {} under-replicated, {} offline, {} led by another than their \
         preferred replica",
        topics.topics.len(),
        count("under-replicated"),
        count("offline"),
        count("not-preferred")
    );
    for line in unhealthy {
        println!("  {line}");
    }
    Ok(())
}

fn elect_leaders(bootstrap: &str, topic: Option<&str>, partition: Option<i32>, unclean: bool) -> anyhow::Result<()> {
    let mut client = Client::connect(bootstrap)?;
    let partitions = match (topic, partition) {
        (None, _) => None,
        (Some(topic), Some(partition)) => Some((topic, vec![partition])),
        (Some(topic), None) => {
            let described = metadata(&mut client, Some(&[topic]), false)?;
            let named = described.topics.first().ok_or_else(|| anyhow::anyhow!("no metadata for '{topic}'"))?;
            check(named.error_code, None, &format!("cannot elect the leaders of '{topic}'"))?;
            Some((topic, named.partitions.iter().map(|p| p.partition_index).collect()))
        }
    };
    let partitions = partitions.map(|(topic, partitions)| {
        let name = TopicName(StrBytes::from_string(topic.to_string()));
        vec![TopicPartitions::default().with_topic(name).with_partitions(partitions)]
    });
    let request =
        ElectLeadersRequest::default().with_election_type(i8::from(unclean)).with_topic_partitions(partitions);
    let response = client.send(&request, 2)?;
    check(response.error_code, None, "cannot elect leaders")?;
    let mut failed = 0;
    for topic in &response.replica_election_results {
        for p in &topic.partition_result {
            let name = format!("{}-{}", &*topic.topic.0, p.partition_id);
            match ResponseError::try_from_code(p.error_code) {
                None => println!("{name}  elected"),
                Some(error) => {
                    failed += usize::from(error != ResponseError::ElectionNotNeeded);
                    let message = p.error_message.as_deref().map_or_else(|| error.to_string(), str::to_string);
                    println!("{name}  {error:?}: {message}");
                }
            }
        }
    }
    if failed > 0 {
        bail!("{failed} partitions got no new leader");
    }
    Ok(())
}
