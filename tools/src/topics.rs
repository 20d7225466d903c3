//! `weir topics create|list|describe|alter|delete`, over the Kafka protocol.

use crate::Bootstrap;
use anyhow::bail;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest,
    IncrementalAlterConfigsRequest, ListOffsetsRequest, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use weir_client::Client;

#[derive(clap::Subcommand)]
pub enum TopicsCommand {
    /// Create a topic.
    Create {
        name: String,
        /// Number of partitions [default: the broker's default].
        #[arg(long, short = 'p')]
        partitions: Option<i32>,
        /// Replicas of each partition [default: the broker's default].
        #[arg(long, short = 'r')]
        replication_factor: Option<i16>,
        /// A topic config, e.g. `retention.ms=3600000` (repeatable).
        #[arg(long = "config", short = 'c', value_name = "NAME=VALUE", value_parser = parse_config)]
        configs: Vec<(String, String)>,
        #[command(flatten)]
        bootstrap: Bootstrap,
    },
    /// List topic names.
    List {
        #[command(flatten)]
        bootstrap: Bootstrap,
    },
    /// Show partitions with their leader, replicas, in-sync replicas, earliest
    /// and latest offsets, and the topic's configs.
    Describe {
        name: String,
        #[command(flatten)]
        bootstrap: Bootstrap,
    },
    /// Add partitions, set topic configs, or return configs to the broker default.
    Alter {
        name: String,
        /// The new partition count: partitions are only ever added, never removed.
        #[arg(long, short = 'p')]
        partitions: Option<i32>,
        /// A topic config to set, e.g. `cleanup.policy=compact` (repeatable).
        #[arg(long = "config", short = 'c', value_name = "NAME=VALUE", value_parser = parse_config)]
        configs: Vec<(String, String)>,
        /// A topic config to return to the default (repeatable).
        #[arg(long = "delete-config", value_name = "NAME")]
        delete_configs: Vec<String>,
        #[command(flatten)]
        bootstrap: Bootstrap,
    },
    /// Delete a topic and all its data.
    Delete {
        name: String,
        #[command(flatten)]
        bootstrap: Bootstrap,
    },
}

pub fn run(command: TopicsCommand) -> anyhow::Result<()> {
    match command {
        TopicsCommand::Create { name, partitions, replication_factor, configs, bootstrap } => {
            create(&bootstrap.bootstrap, &name, (partitions, replication_factor), &configs)
        }
        TopicsCommand::List { bootstrap } => list(&bootstrap.bootstrap),
        TopicsCommand::Describe { name, bootstrap } => describe(&bootstrap.bootstrap, &name),
        TopicsCommand::Alter { name, partitions, configs, delete_configs, bootstrap } => {
            alter(&bootstrap.bootstrap, &name, partitions, &configs, &delete_configs)
        }
        TopicsCommand::Delete { name, bootstrap } => delete(&bootstrap.bootstrap, &name),
    }
}

/// `NAME=VALUE`.
fn parse_config(arg: &str) -> Result<(String, String), String> {
    match arg.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => Ok((name.trim().to_string(), value.to_string())),
        _ => Err(format!("'{arg}' is not NAME=VALUE")),
    }
}

pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// Fails with the broker's message when `code` is an error.
pub(crate) fn check(code: i16, message: Option<&StrBytes>, what: &str) -> anyhow::Result<()> {
    if let Some(error) = ResponseError::try_from_code(code) {
        match message {
            Some(text) => bail!("{what}: {error:?}: {}", &**text),
            None => bail!("{what}: {error:?}: {error}"),
        }
    }
    Ok(())
}

/// Creates `name` with (partitions, replication factor), each the broker's
/// default when `None`.
fn create(
    bootstrap: &str,
    name: &str,
    (partitions, replication_factor): (Option<i32>, Option<i16>),
    configs: &[(String, String)],
) -> anyhow::Result<()> {
    let mut client = Client::connect(bootstrap)?;
    let configs = configs
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(k.clone()))
                .with_value(Some(v.clone().into()))
        })
        .collect();
    let topic = CreatableTopic::default()
        .with_name(topic_name(name))
        .with_num_partitions(partitions.unwrap_or(-1))
        .with_replication_factor(replication_factor.unwrap_or(-1))
        .with_configs(configs);
    let request = CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(30_000);
    let response = client.send(&request, 7)?;
    for result in &response.topics {
        check(result.error_code, result.error_message.as_ref(), &format!("cannot create topic '{name}'"))?;
        println!("created topic {name}");
    }
    Ok(())
}

/// Metadata for `names`, or for all topics.
pub fn metadata(client: &mut Client, names: Option<&[&str]>, auto_create: bool) -> anyhow::Result<MetadataResponse> {
    let topics = names
        .map(|names| names.iter().map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n)))).collect());
    let request = MetadataRequest::default().with_topics(topics).with_allow_auto_topic_creation(auto_create);
    client.send(&request, 12)
}

fn list(bootstrap: &str) -> anyhow::Result<()> {
    let mut client = Client::connect(bootstrap)?;
    let response = metadata(&mut client, None, false)?;
    let mut names: Vec<_> = response.topics.iter().filter_map(|t| t.name.as_ref()).map(|n| n.0.to_string()).collect();
    names.sort();
    for name in names {
        println!("{name}");
    }
    Ok(())
}

/// (earliest, latest) offset of every partition of `topic`, by partition.
pub fn partition_offsets(client: &mut Client, topic: &str, partitions: i32) -> anyhow::Result<Vec<(i64, i64)>> {
    let offsets = offsets_where_led(client, topic, partitions)?.into_iter().enumerate();
    offsets
        .map(|(p, offsets)| {
            offsets.ok_or_else(|| {
                anyhow::anyhow!(
                    "offsets of {topic}/{p}: another broker leads it (the weir tools ask their --bootstrap broker)"
                )
            })
        })
        .collect()
}

/// (earliest, latest) offset of every partition of `topic` the client's
/// broker leads, by partition; `None` for those another broker leads.
fn offsets_where_led(client: &mut Client, topic: &str, partitions: i32) -> anyhow::Result<Vec<Option<(i64, i64)>>> {
    let mut offsets = vec![Some((0, 0)); partitions as usize];
    for (timestamp, earliest) in [(-2, true), (-1, false)] {
        let request =
            ListOffsetsRequest::default().with_replica_id((-1).into()).with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(
                    (0..partitions)
                        .map(|p| ListOffsetsPartition::default().with_partition_index(p).with_timestamp(timestamp))
                        .collect(),
                )]);
        let response = client.send(&request, 7)?;
        for t in &response.topics {
            for p in &t.partitions {
                let slot = offsets
                    .get_mut(p.partition_index as usize)
                    .ok_or_else(|| anyhow::anyhow!("broker answered for unknown partition {}", p.partition_index))?;
                if p.error_code == ResponseError::NotLeaderOrFollower.code() {
                    *slot = None;
                    continue;
                }
                check(p.error_code, None, &format!("offsets of {topic}/{}", p.partition_index))?;
                if let Some(slot) = slot {
                    if earliest {
                        slot.0 = p.offset;
                    } else {
                        slot.1 = p.offset;
                    }
                }
            }
        }
    }
    Ok(offsets)
}

fn describe(bootstrap: &str, name: &str) -> anyhow::Result<()> {
    let mut client = Client::connect(bootstrap)?;
    let response = metadata(&mut client, Some(&[name]), false)?;
    let topic = response.topics.first().ok_or_else(|| anyhow::anyhow!("no metadata for '{name}'"))?;
    check(topic.error_code, None, &format!("cannot describe topic '{name}'"))?;
    let partitions = topic.partitions.len() as i32;
    // One line, before the partition table (scripts read the table's rows).
    let configs: Vec<String> = topic_configs(&mut client, name)?
        .into_iter()
        .map(|(config, value, set)| format!("{}{config}={value}", if set { "*" } else { "" }))
        .collect();
    println!(
        "topic {name}  id {}  partitions {partitions}  configs (*: set on the topic): {}",
        topic.topic_id,
        configs.join(" ")
    );
    let offsets = offsets_where_led(&mut client, name, partitions)?;
    println!(
        "{:>9} {:>6} {:>6} {:>12} {:>12} {:>15} {:>15} {:>12}",
        "partition", "leader", "epoch", "replicas", "isr", "earliest", "latest", "messages"
    );
    let list = |ids: &[kafka_protocol::messages::BrokerId]| {
        ids.iter().map(|id| id.0.to_string()).collect::<Vec<_>>().join(",")
    };
    for p in &topic.partitions {
        // A partition another broker leads: its offsets are that broker's to give.
        let (earliest, latest, messages) = match offsets[p.partition_index as usize] {
            Some((earliest, latest)) => (earliest.to_string(), latest.to_string(), (latest - earliest).to_string()),
            None => ("-".into(), "-".into(), "-".into()),
        };
        println!(
            "{:>9} {:>6} {:>6} {:>12} {:>12} {:>15} {:>15} {:>12}",
            p.partition_index,
            p.leader_id.0,
            p.leader_epoch,
            list(&p.replica_nodes),
            list(&p.isr_nodes),
            earliest,
            latest,
            messages
        );
    }
    Ok(())
}

/// DESCRIBE_CONFIGS source of a config set on the topic itself.
const SOURCE_TOPIC: i8 = 1;
const RESOURCE_TOPIC: i8 = 2;

/// (name, value, set on the topic) of every config of `topic`.
pub fn topic_configs(client: &mut Client, topic: &str) -> anyhow::Result<Vec<(String, String, bool)>> {
    let resource = DescribeConfigsResource::default()
        .with_resource_type(RESOURCE_TOPIC)
        .with_resource_name(StrBytes::from_string(topic.to_string()))
        .with_configuration_keys(None);
    let response = client.send(&DescribeConfigsRequest::default().with_resources(vec![resource]), 4)?;
    let result = response.results.first().ok_or_else(|| anyhow::anyhow!("no configs for '{topic}'"))?;
    check(result.error_code, result.error_message.as_ref(), &format!("cannot describe configs of '{topic}'"))?;
    Ok(result
        .configs
        .iter()
        .map(|c| (c.name.to_string(), c.value.as_deref().unwrap_or("").to_string(), c.config_source == SOURCE_TOPIC))
        .collect())
}

fn alter(
    bootstrap: &str,
    name: &str,
    partitions: Option<i32>,
    set: &[(String, String)],
    delete: &[String],
) -> anyhow::Result<()> {
    if partitions.is_none() && set.is_empty() && delete.is_empty() {
        bail!("nothing to change: give --partitions N, --config NAME=VALUE or --delete-config NAME");
    }
    let mut client = Client::connect(bootstrap)?;
    if let Some(count) = partitions {
        add_partitions(&mut client, name, count)?;
    }
    if !set.is_empty() || !delete.is_empty() {
        alter_configs(&mut client, name, set, delete)?;
    }
    println!("altered topic {name}");
    Ok(())
}

fn add_partitions(client: &mut Client, name: &str, count: i32) -> anyhow::Result<()> {
    let topic = CreatePartitionsTopic::default().with_name(topic_name(name)).with_count(count).with_assignments(None);
    let request = CreatePartitionsRequest::default().with_topics(vec![topic]).with_timeout_ms(30_000);
    let response = client.send(&request, 3)?;
    for result in &response.results {
        check(result.error_code, result.error_message.as_ref(), &format!("cannot add partitions to '{name}'"))?;
    }
    Ok(())
}

fn alter_configs(client: &mut Client, name: &str, set: &[(String, String)], delete: &[String]) -> anyhow::Result<()> {
    const SET: i8 = 0;
    const DELETE: i8 = 1;
    let op = |config: &str, operation, value: Option<&String>| {
        AlterableConfig::default()
            .with_name(StrBytes::from_string(config.to_string()))
            .with_config_operation(operation)
            .with_value(value.map(|v| StrBytes::from_string(v.clone())))
    };
    let configs = set.iter().map(|(k, v)| op(k, SET, Some(v))).chain(delete.iter().map(|k| op(k, DELETE, None)));
    let resource = AlterConfigsResource::default()
        .with_resource_type(RESOURCE_TOPIC)
        .with_resource_name(StrBytes::from_string(name.to_string()))
        .with_configs(configs.collect());
    let response = client.send(&IncrementalAlterConfigsRequest::default().with_resources(vec![resource]), 1)?;
    for result in &response.responses {
        check(result.error_code, result.error_message.as_ref(), &format!("cannot alter topic '{name}'"))?;
    }
    Ok(())
}

fn delete(bootstrap: &str, name: &str) -> anyhow::Result<()> {
    let mut client = Client::connect(bootstrap)?;
    let request = DeleteTopicsRequest::default().with_topic_names(vec![topic_name(name)]).with_timeout_ms(30_000);
    let response = client.send(&request, 5)?;
    for result in &response.responses {
        check(result.error_code, result.error_message.as_ref(), &format!("cannot delete topic '{name}'"))?;
        println!("deleted topic {name}");
    }
    Ok(())
}
