//! `weir cluster status`: the brokers, the active controller, and the
//! partitions that are short of replicas or without a leader, over the Kafka
//! protocol (DescribeCluster and Metadata), from any broker of the cluster.

use crate::topics::{check, metadata};
use crate::Bootstrap;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest};
use weir_client::Client;

#[derive(clap::Subcommand)]
pub enum ClusterCommand {
    /// Brokers (fenced ones marked), the active controller, and the
    /// under-replicated and offline partitions of every topic.
    Status {
        #[command(flatten)]
        bootstrap: Bootstrap,
    },
}

pub fn run(command: ClusterCommand) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Status { bootstrap } => status(&bootstrap.bootstrap),
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
            let state = match (p.leader_id.0 < 0, p.isr_nodes.len() < p.replica_nodes.len()) {
                (true, _) => "offline",
                (false, true) => "under-replicated",
                (false, false) => continue,
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
        "partitions {partitions} in {} topics: {} under-replicated, {} offline",
        topics.topics.len(),
        count("under-replicated"),
        count("offline")
    );
    for line in unhealthy {
        println!("  {line}");
    }
    Ok(())
}
