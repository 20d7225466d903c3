//! `weir consume`: print a topic's messages, from the beginning or the end.

use crate::topics::{metadata, partition_offsets, topic_name};
use crate::Bootstrap;
use anyhow::{bail, Context};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::FetchRequest;
use kafka_protocol::records::RecordBatchDecoder;
use std::io::Write;
use std::time::{Duration, Instant};
use weir_client::group_member::GroupMember;
use weir_client::Client;

const FETCH_WAIT_MS: i32 = 500;
/// How often a group member commits its position.
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);
const PARTITION_MAX_BYTES: i32 = 1 << 20;
const FETCH_MAX_BYTES: i32 = 50 << 20;

#[derive(clap::Args)]
pub struct ConsumeArgs {
    #[arg(long, short = 't')]
    topic: String,
    /// Start at the earliest offset instead of the end.
    #[arg(long)]
    from_beginning: bool,
    /// Only this partition.
    #[arg(long, short = 'p', conflicts_with = "group")]
    partition: Option<i32>,
    /// Consume as a member of this consumer group: the group assigns the
    /// partitions, reading starts at its committed offsets, and the position is
    /// committed every second and on exit.
    #[arg(long, short = 'g')]
    group: Option<String>,
    /// Print each key before its value, separated by --key-separator.
    #[arg(long)]
    print_keys: bool,
    /// Print partition and offset before each message.
    #[arg(long)]
    print_offsets: bool,
    #[arg(long, default_value = "\t")]
    key_separator: String,
    /// Exit after this many messages.
    #[arg(long, short = 'n')]
    max_messages: Option<u64>,
    /// Exit once no message arrived for this many milliseconds [default: never].
    #[arg(long)]
    idle_timeout_ms: Option<u64>,
    #[command(flatten)]
    bootstrap: Bootstrap,
}

pub fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    let mut client = Client::connect(&args.bootstrap.bootstrap)?;
    let response = metadata(&mut client, Some(&[&args.topic]), false)?;
    let topic = response.topics.first().context("the broker returned no topic metadata")?;
    if let Some(e) = ResponseError::try_from_code(topic.error_code) {
        bail!("topic '{}': {e:?}: {e}", args.topic);
    }
    let partition_count = topic.partitions.len() as i32;
    let partitions: Vec<i32> = match args.partition {
        Some(p) if (0..partition_count).contains(&p) => vec![p],
        Some(p) => bail!("topic '{}' has partitions 0..{}, not {p}", args.topic, partition_count - 1),
        None => (0..partition_count).collect(),
    };
    let bounds = partition_offsets(&mut client, &args.topic, partition_count)?;
    let start = |p: i32| if args.from_beginning { bounds[p as usize].0 } else { bounds[p as usize].1 };
    let mut member = match &args.group {
        Some(group) => Some(GroupMember::join(&args.bootstrap.bootstrap, group, &args.topic, partition_count)?),
        None => None,
    };
    let mut next = match member.as_mut() {
        Some((member, assigned)) => group_positions(member, assigned, &start)?,
        None => partitions.iter().map(|&p| (p, start(p))).collect(),
    };
    let mut last_commit = Instant::now();

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let (mut printed, mut last_message) = (0u64, Instant::now());
    'consume: loop {
        if let Some((member, _)) = member.as_mut() {
            if last_commit.elapsed() >= COMMIT_INTERVAL {
                member.commit(&next)?;
                last_commit = Instant::now();
            }
            if let Some(assigned) = member.heartbeat_if_due()? {
                next = group_positions(member, &assigned, &start)?;
            }
            if next.is_empty() {
                // More members than partitions: wait for a rebalance to give us some.
                std::thread::sleep(Duration::from_millis(FETCH_WAIT_MS as u64));
                continue;
            }
        }
        let request = FetchRequest::default()
            .with_replica_id((-1).into())
            .with_max_wait_ms(FETCH_WAIT_MS)
            .with_min_bytes(1)
            .with_max_bytes(FETCH_MAX_BYTES)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default().with_topic(topic_name(&args.topic)).with_partitions(
                next.iter()
                    .map(|&(p, offset)| {
                        FetchPartition::default()
                            .with_partition(p)
                            .with_fetch_offset(offset)
                            .with_partition_max_bytes(PARTITION_MAX_BYTES)
                    })
                    .collect(),
            )]);
        let response = client.send(&request, 12)?;
        for data in response.responses.iter().flat_map(|t| &t.partitions) {
            let slot = next
                .iter_mut()
                .find(|(p, _)| *p == data.partition_index)
                .context("answer for a partition not asked for")?;
            if data.error_code == ResponseError::OffsetOutOfRange.code() {
                let earliest = partition_offsets(&mut client, &args.topic, partition_count)?[slot.0 as usize].0;
                eprintln!("weir: partition {} offset {} is out of range; continuing at {earliest}", slot.0, slot.1);
                slot.1 = earliest;
                continue;
            }
            if let Some(e) = ResponseError::try_from_code(data.error_code) {
                bail!("fetching {}/{}: {e:?}: {e}", args.topic, slot.0);
            }
            let Some(mut records) = data.records.clone() else {
                continue;
            };
            while !records.is_empty() {
                let set = RecordBatchDecoder::decode(&mut records).context("decoding a record batch")?;
                let start = slot.1;
                for record in set.records.iter().filter(|r| r.offset >= start) {
                    if args.print_offsets {
                        write!(out, "{}:{}{}", slot.0, record.offset, args.key_separator)?;
                    }
                    if args.print_keys {
                        out.write_all(record.key.as_deref().unwrap_or(b""))?;
                        out.write_all(args.key_separator.as_bytes())?;
                    }
                    out.write_all(record.value.as_deref().unwrap_or(b""))?;
                    out.write_all(b"\n")?;
                    slot.1 = record.offset + 1;
                    printed += 1;
                    last_message = Instant::now();
                    if args.max_messages.is_some_and(|max| printed >= max) {
                        break 'consume;
                    }
                }
            }
        }
        out.flush()?;
        if args.idle_timeout_ms.is_some_and(|ms| last_message.elapsed() >= Duration::from_millis(ms)) {
            break;
        }
    }
    out.flush()?;
    if let Some((mut member, _)) = member {
        member.commit(&next)?;
        member.leave()?;
    }
    Ok(())
}

/// Where a group member starts on `assigned`: the committed offsets, else `start`.
fn group_positions(
    member: &mut GroupMember,
    assigned: &[i32],
    start: &impl Fn(i32) -> i64,
) -> anyhow::Result<Vec<(i32, i64)>> {
    let committed = member.committed(assigned)?;
    Ok(assigned.iter().map(|&p| (p, committed.get(&p).copied().unwrap_or_else(|| start(p)))).collect())
}
