//! `weir groups list|describe|delete|reset-offsets`, over the Kafka protocol.

use crate::topics::{partition_offsets, topic_name};
use crate::Bootstrap;
use anyhow::{bail, Context};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest, GroupId, ListGroupsRequest,
    OffsetCommitRequest, OffsetFetchRequest,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use weir_client::group_member::decode_assignment;
use weir_client::Client;

#[derive(clap::Subcommand)]
pub enum GroupsCommand {
    /// List consumer groups with their state.
    List {
        #[command(flatten)]
        bootstrap: Bootstrap,
    },
    /// Members, their partitions, committed offsets and lag of a group.
    Describe {
        group: String,
        #[command(flatten)]
        bootstrap: Bootstrap,
    },
    /// Delete a group without members, and its committed offsets.
    Delete {
        group: String,
        #[command(flatten)]
        bootstrap: Bootstrap,
    },
    /// Move a group's committed offsets of a topic (the group must have no members).
    /// Shows the plan; applies it only with --execute.
    ResetOffsets {
        group: String,
        #[arg(long, short = 't')]
        topic: String,
        #[command(flatten)]
        to: ResetTarget,
        /// Commit the new offsets (without it, only print them).
        #[arg(long)]
        execute: bool,
        #[command(flatten)]
        bootstrap: Bootstrap,
    },
}

#[derive(clap::Args)]
#[group(required = true, multiple = false)]
pub struct ResetTarget {
    /// The earliest offset of each partition.
    #[arg(long)]
    to_earliest: bool,
    /// The end of each partition (skip everything there is now).
    #[arg(long)]
    to_latest: bool,
    /// This offset in every partition (clamped to the partition's range).
    #[arg(long)]
    to_offset: Option<i64>,
}

pub fn run(command: GroupsCommand) -> anyhow::Result<()> {
    match command {
        GroupsCommand::List { bootstrap } => list(&bootstrap.bootstrap),
        GroupsCommand::Describe { group, bootstrap } => describe(&bootstrap.bootstrap, &group),
        GroupsCommand::Delete { group, bootstrap } => delete(&bootstrap.bootstrap, &group),
        GroupsCommand::ResetOffsets { group, topic, to, execute, bootstrap } => {
            reset_offsets(&bootstrap.bootstrap, &group, &topic, &to, execute)
        }
    }
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub(crate) fn fail_on(code: i16, what: &str) -> anyhow::Result<()> {
    match ResponseError::try_from_code(code) {
        Some(e) => bail!("{what}: {e:?}: {e}"),
        None => Ok(()),
    }
}

/// A connection to the group's coordinator.
fn coordinator(bootstrap: &str, group: &str) -> anyhow::Result<Client> {
    let mut client = Client::connect(bootstrap)?;
    let found = client.send(&FindCoordinatorRequest::default().with_key(str_bytes(group)), 3)?;
    fail_on(found.error_code, &format!("finding the coordinator of group '{group}'"))?;
    let address = format!("{}:{}", &*found.host, found.port);
    if address == bootstrap {
        return Ok(client);
    }
    Client::connect(&address)
}

fn list(bootstrap: &str) -> anyhow::Result<()> {
    let mut client = Client::connect(bootstrap)?;
    let response = client.send(&ListGroupsRequest::default(), 4)?;
    fail_on(response.error_code, "listing groups")?;
    let mut groups: Vec<_> = response.groups.iter().collect();
    groups.sort_by(|a, b| a.group_id.0.cmp(&b.group_id.0));
    println!("{:<40} {:<10} state", "group", "protocol");
    for g in groups {
        println!("{:<40} {:<10} {}", &*g.group_id.0, &*g.protocol_type, &*g.group_state);
    }
    Ok(())
}

/// Committed offsets of a group: (topic, partition) -> offset.
fn committed(client: &mut Client, group: &str) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let request = OffsetFetchRequest::default().with_group_id(GroupId(str_bytes(group))).with_topics(None);
    let response = client.send(&request, 7)?;
    fail_on(response.error_code, &format!("fetching offsets of group '{group}'"))?;
    let mut offsets = BTreeMap::new();
    for t in &response.topics {
        for p in &t.partitions {
            if p.committed_offset >= 0 {
                offsets.insert((t.name.0.to_string(), p.partition_index), p.committed_offset);
            }
        }
    }
    Ok(offsets)
}

fn describe(bootstrap: &str, group: &str) -> anyhow::Result<()> {
    let mut client = coordinator(bootstrap, group)?;
    let response = client.send(&DescribeGroupsRequest::default().with_groups(vec![GroupId(str_bytes(group))]), 5)?;
    let described = response.groups.first().context("the broker described no group")?;
    fail_on(described.error_code, &format!("describing group '{group}'"))?;
    let offsets = committed(&mut client, group)?;
    if &*described.group_state == "Dead" && offsets.is_empty() {
        bail!("group '{group}' does not exist");
    }
    println!(
        "group {group}  state {}  protocol {} {}  members {}",
        &*described.group_state,
        &*described.protocol_type,
        &*described.protocol_data,
        described.members.len()
    );
    let mut owner: BTreeMap<(String, i32), String> = BTreeMap::new();
    for m in &described.members {
        for (topic, partitions) in decode_assignment(m.member_assignment.clone()) {
            for p in partitions {
                owner.insert((topic.clone(), p), format!("{} ({}{})", &*m.member_id, &*m.client_id, &*m.client_host));
            }
        }
    }
    let mut keys: Vec<(String, i32)> = offsets.keys().chain(owner.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    let mut ends: BTreeMap<String, Vec<(i64, i64)>> = BTreeMap::new();
    println!("{:<30} {:>9} {:>12} {:>12} {:>10}  member", "topic", "partition", "committed", "end", "lag");
    for (topic, partition) in keys {
        if !ends.contains_key(&topic) {
            let count = partition_count(&mut client, &topic)?;
            ends.insert(topic.clone(), partition_offsets(&mut client, &topic, count)?);
        }
        let end = ends[&topic].get(partition as usize).map_or(-1, |(_, latest)| *latest);
        let committed = offsets.get(&(topic.clone(), partition)).copied();
        let lag = committed.map_or_else(|| "-".to_string(), |c| (end - c).max(0).to_string());
        let member = owner.get(&(topic.clone(), partition)).map_or("-", String::as_str);
        let committed = committed.map_or_else(|| "-".to_string(), |c| c.to_string());
        println!("{topic:<30} {partition:>9} {committed:>12} {end:>12} {lag:>10}  {member}");
    }
    Ok(())
}

/// The partition count of a topic (its metadata, no auto-creation).
fn partition_count(client: &mut Client, topic: &str) -> anyhow::Result<i32> {
    let response = crate::topics::metadata(client, Some(&[topic]), false)?;
    let t = response.topics.first().context("no metadata")?;
    fail_on(t.error_code, &format!("topic '{topic}'"))?;
    Ok(t.partitions.len() as i32)
}

fn delete(bootstrap: &str, group: &str) -> anyhow::Result<()> {
    let mut client = coordinator(bootstrap, group)?;
    let response =
        client.send(&DeleteGroupsRequest::default().with_groups_names(vec![GroupId(str_bytes(group))]), 2)?;
    for result in &response.results {
        fail_on(result.error_code, &format!("cannot delete group '{group}'"))?;
    }
    println!("deleted group {group}");
    Ok(())
}

fn reset_offsets(bootstrap: &str, group: &str, topic: &str, to: &ResetTarget, execute: bool) -> anyhow::Result<()> {
    let mut client = coordinator(bootstrap, group)?;
    let count = partition_count(&mut client, topic)?;
    let bounds = partition_offsets(&mut client, topic, count)?;
    let current = committed(&mut client, group)?;
    let targets: Vec<(i32, i64)> = bounds
        .iter()
        .enumerate()
        .map(|(p, &(earliest, latest))| {
            let offset = match (to.to_earliest, to.to_latest, to.to_offset) {
                (true, _, _) => earliest,
                (_, true, _) => latest,
                (_, _, Some(o)) => o.clamp(earliest, latest),
                _ => unreachable!("clap requires one target"),
            };
            (p as i32, offset)
        })
        .collect();
    println!("{:<30} {:>9} {:>12} {:>12}", "topic", "partition", "current", "new");
    for (p, offset) in &targets {
        let now = current.get(&(topic.to_string(), *p)).map_or_else(|| "-".to_string(), |c| c.to_string());
        println!("{topic:<30} {p:>9} {now:>12} {offset:>12}");
    }
    if !execute {
        println!("(dry run: add --execute to commit these offsets)");
        return Ok(());
    }
    // Generation -1 and no member id: the commit of a group with no members.
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default().with_name(topic_name(topic)).with_partitions(
            targets
                .iter()
                .map(|&(p, offset)| {
                    OffsetCommitRequestPartition::default().with_partition_index(p).with_committed_offset(offset)
                })
                .collect(),
        )]);
    let response = client.send(&request, 8)?;
    for t in &response.topics {
        for p in &t.partitions {
            if p.error_code == ResponseError::UnknownMemberId.code() {
                bail!("group '{group}' has active members: stop its consumers before resetting offsets");
            }
            fail_on(p.error_code, &format!("committing {topic}/{}", p.partition_index))?;
        }
    }
    println!("offsets of group {group} on {topic} reset");
    Ok(())
}
