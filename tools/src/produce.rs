//! `weir produce`: one message per line of standard input.

use crate::topics::{metadata, topic_name};
use crate::Bootstrap;
use anyhow::{bail, Context};
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::ProduceRequest;
use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal};
use weir_client::Client;
use weir_engine::now_ms;
use weir_engine::records::RecordsBuilder;

/// A request is sent once this many lines are waiting (or at end of input;
/// from a terminal, every line is sent as it is typed).
const LINES_PER_REQUEST: usize = 1000;
const BYTES_PER_REQUEST: usize = 512 * 1024;

#[derive(clap::Args)]
pub struct ProduceArgs {
    /// Topic to write to (created if the broker auto-creates topics).
    #[arg(long, short = 't')]
    topic: String,
    /// Split each line at the first occurrence of this into key and value.
    #[arg(long)]
    key_separator: Option<String>,
    /// Write every message to this partition instead of choosing by key.
    #[arg(long, short = 'p')]
    partition: Option<i32>,
    /// 0 (no answer), 1 (leader wrote it) or all (on stable storage).
    #[arg(long, default_value = "all", value_parser = ["0", "1", "all", "-1"])]
    acks: String,
    #[command(flatten)]
    bootstrap: Bootstrap,
}

pub fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let acks: i16 = match args.acks.as_str() {
        "0" => 0,
        "1" => 1,
        _ => -1,
    };
    let mut client = Client::connect(&args.bootstrap.bootstrap)?;
    let partitions = partition_count(&mut client, &args.topic)?;
    if let Some(p) = args.partition {
        if !(0..partitions).contains(&p) {
            bail!("topic '{}' has partitions 0..{}, not {p}", args.topic, partitions - 1);
        }
    }
    let interactive = std::io::stdin().is_terminal();
    let mut pending: BTreeMap<i32, RecordsBuilder> = BTreeMap::new();
    let (mut pending_lines, mut pending_bytes, mut produced, mut round_robin) = (0usize, 0usize, 0u64, 0i32);
    for line in std::io::stdin().lock().lines() {
        let line = line.context("reading standard input")?;
        let (key, value) = match &args.key_separator {
            Some(sep) => match line.split_once(sep.as_str()) {
                Some((k, v)) => (Some(Bytes::copy_from_slice(k.as_bytes())), v.to_string()),
                None => (None, line),
            },
            None => (None, line),
        };
        let partition = match (args.partition, &key) {
            (Some(p), _) => p,
            (None, Some(key)) => murmur2_partition(key, partitions),
            (None, None) => {
                round_robin = (round_robin + 1) % partitions;
                round_robin
            }
        };
        pending_bytes += value.len() + key.as_ref().map_or(0, |k| k.len());
        pending.entry(partition).or_default().push(key.as_deref(), Some(value.as_bytes()), &[], now_ms());
        pending_lines += 1;
        if interactive || pending_lines >= LINES_PER_REQUEST || pending_bytes >= BYTES_PER_REQUEST {
            produced += send(&mut client, &args.topic, acks, &mut pending)?;
            (pending_lines, pending_bytes) = (0, 0);
        }
    }
    produced += send(&mut client, &args.topic, acks, &mut pending)?;
    eprintln!("produced {produced} messages to {}", args.topic);
    Ok(())
}

/// The topic's partition count, asking the broker to auto-create it.
pub(crate) fn partition_count(client: &mut Client, topic: &str) -> anyhow::Result<i32> {
    let response = metadata(client, Some(&[topic]), true)?;
    let t = response.topics.first().context("the broker returned no topic metadata")?;
    if let Some(e) = ResponseError::try_from_code(t.error_code) {
        bail!("topic '{topic}': {e:?}: {e}");
    }
    Ok(t.partitions.len() as i32)
}

/// Sends one request with a batch per partition; returns how many were acknowledged.
fn send(
    client: &mut Client,
    topic: &str,
    acks: i16,
    pending: &mut BTreeMap<i32, RecordsBuilder>,
) -> anyhow::Result<u64> {
    if pending.is_empty() {
        return Ok(0);
    }
    let count: u64 = pending.values().map(|batch| batch.records_count() as u64).sum();
    let mut partition_data = Vec::new();
    for (partition, batch) in std::mem::take(pending) {
        partition_data.push(PartitionProduceData::default().with_index(partition).with_records(Some(batch.finish())));
    }
    let request = ProduceRequest::default().with_acks(acks).with_timeout_ms(30_000).with_topic_data(vec![
        TopicProduceData::default().with_name(topic_name(topic)).with_partition_data(partition_data),
    ]);
    if acks == 0 {
        client.send_no_response(&request, 9)?;
        return Ok(count);
    }
    let response = client.send(&request, 9)?;
    for t in &response.responses {
        for p in &t.partition_responses {
            if let Some(e) = ResponseError::try_from_code(p.error_code) {
                let detail = p.error_message.as_ref().map_or(String::new(), |m| format!(" ({})", &**m));
                bail!("producing to {topic}/{}: {e:?}: {e}{detail}", p.index);
            }
        }
    }
    Ok(count)
}

/// The Java client's default partitioner: murmur2 of the key, made positive.
pub(crate) fn murmur2_partition(key: &[u8], partitions: i32) -> i32 {
    ((murmur2(key) & 0x7fff_ffff) % partitions as u32) as i32
}

fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_client() {
        // Values from Kafka's UtilsTest.testMurmur2.
        assert_eq!(murmur2(b"21") as i32, -973932308);
        assert_eq!(murmur2(b"foobar") as i32, -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string") as i32, -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string") as i32, -1486304829);
        assert_eq!(murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") as i32, -58897971);
        assert_eq!(murmur2(b"abc") as i32, 479470107);
    }
}
