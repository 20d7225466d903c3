//! Setting up a run: the topic (created if missing), who leads each
//! partition, and where each partition starts and ends.

use crate::wire::Conn;
use anyhow::{anyhow, bail, Context};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{CreateTopicsRequest, ListOffsetsRequest, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The topic as the cluster has it.
#[derive(Debug, Clone)]
pub struct Topic {
    pub name: String,
    /// host:port of the leader of each partition, by partition index.
    pub leaders: Vec<String>,
}

pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

fn metadata(conn: &mut Conn, topic: &str) -> anyhow::Result<MetadataResponse> {
    let version = conn.version_for::<MetadataRequest>(1, 12)?;
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(topic_name(topic)))]))
        .with_allow_auto_topic_creation(false);
    conn.roundtrip(&request, version)
}

/// Finds `topic`, creating it with `partitions` if it does not exist, and
/// waits (up to `timeout`) until every partition has a leader.
pub fn ensure_topic(conn: &mut Conn, topic: &str, partitions: i32, timeout: Duration) -> anyhow::Result<Topic> {
    let deadline = Instant::now() + timeout;
    let mut created = false;
    loop {
        let response = metadata(conn, topic)?;
        let brokers: HashMap<i32, String> =
            response.brokers.iter().map(|b| (b.node_id.0, format!("{}:{}", &*b.host, b.port))).collect();
        let t = response.topics.first().ok_or_else(|| anyhow!("the broker returned no metadata for '{topic}'"))?;
        let code = t.error_code;
        if code == ResponseError::UnknownTopicOrPartition.code() && !created {
            create_topic(conn, topic, partitions)?;
            created = true;
        } else if let Some(e) = ResponseError::try_from_code(code).filter(|_| code != 0) {
            if !e.is_retriable() || Instant::now() >= deadline {
                bail!("topic '{topic}': {e:?}: {e}");
            }
        } else {
            let mut leaders = vec![None; t.partitions.len()];
            for p in &t.partitions {
                let slot = leaders.get_mut(p.partition_index as usize).ok_or_else(|| {
                    anyhow!("metadata names partition {} of {}", p.partition_index, t.partitions.len())
                })?;
                *slot = brokers.get(&p.leader_id.0).cloned();
            }
            if !leaders.is_empty() && leaders.iter().all(Option::is_some) {
                let leaders: Vec<String> = leaders.into_iter().flatten().collect();
                if leaders.len() as i32 != partitions {
                    eprintln!(
                        "weir bench: topic '{topic}' already has {} partitions (not {partitions}); using them all",
                        leaders.len()
                    );
                }
                return Ok(Topic { name: topic.to_string(), leaders });
            }
        }
        if Instant::now() >= deadline {
            bail!("topic '{topic}' has no leader for every partition after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn create_topic(conn: &mut Conn, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let version = conn.version_for::<CreateTopicsRequest>(2, 7)?;
    let request = CreateTopicsRequest::default().with_timeout_ms(30_000).with_topics(vec![CreatableTopic::default()
        .with_name(topic_name(topic))
        .with_num_partitions(partitions)
        .with_replication_factor(if version >= 4 { -1 } else { 1 })]);
    let response = conn.roundtrip(&request, version)?;
    for t in &response.topics {
        let code = t.error_code;
        if code != 0 && code != ResponseError::TopicAlreadyExists.code() {
            let e = ResponseError::try_from_code(code).map_or(format!("error code {code}"), |e| format!("{e:?}: {e}"));
            let detail = t.error_message.as_ref().map_or(String::new(), |m| format!(" ({})", &**m));
            bail!("cannot create topic '{topic}' with {partitions} partitions: {e}{detail}");
        }
    }
    Ok(())
}

/// The earliest (`latest = false`) or latest offset of each of `partitions`, asked of `conn`.
pub fn offsets(conn: &mut Conn, topic: &str, partitions: &[i32], latest: bool) -> anyhow::Result<HashMap<i32, i64>> {
    let version = conn.version_for::<ListOffsetsRequest>(1, 7)?;
    let timestamp = if latest { -1 } else { -2 };
    let request =
        ListOffsetsRequest::default().with_replica_id((-1).into()).with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(
                partitions
                    .iter()
                    .map(|&p| ListOffsetsPartition::default().with_partition_index(p).with_timestamp(timestamp))
                    .collect(),
            )]);
    let response = conn.roundtrip(&request, version)?;
    let mut out = HashMap::new();
    for p in response.topics.iter().flat_map(|t| &t.partitions) {
        if let Some(e) = ResponseError::try_from_code(p.error_code).filter(|_| p.error_code != 0) {
            bail!("offsets of {topic}/{}: {e:?}: {e}", p.partition_index);
        }
        out.insert(p.partition_index, p.offset);
    }
    for p in partitions {
        out.get(p).with_context(|| format!("the broker gave no offset for {topic}/{p}"))?;
    }
    Ok(out)
}

/// Partitions `0..count` dealt round-robin to `workers` workers; with more
/// workers than partitions, worker `i` takes partition `i % count`.
pub fn share(count: i32, workers: usize) -> Vec<Vec<i32>> {
    assert!(count > 0 && workers > 0);
    let mut out = vec![Vec::new(); workers];
    for p in 0..count {
        out[p as usize % workers].push(p);
    }
    for (i, parts) in out.iter_mut().enumerate() {
        if parts.is_empty() {
            parts.push((i % count as usize) as i32);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::share;

    #[test]
    fn partitions_are_dealt_evenly() {
        assert_eq!(share(5, 2), vec![vec![0, 2, 4], vec![1, 3]]);
        assert_eq!(share(1, 1), vec![vec![0]]);
        assert_eq!(share(2, 4), vec![vec![0], vec![1], vec![0], vec![1]]);
    }
}
