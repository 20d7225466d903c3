//! The threads that move data: a producer lane (one connection, a sender and
//! a receiver thread, up to `max_in_flight` requests outstanding) and a
//! consumer lane (one connection, one long-poll fetch at a time).

use crate::admin;
use crate::batch::{scan, Shape, Template};
use crate::pace::{sleep_until, Pacer};
use crate::stats::Latency;
use crate::wire::{decode_answer, response_correlation_id, Conn};
use anyhow::{anyhow, bail, Context};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{FetchRequest, ProduceRequest};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_client::group_member::GroupMember;

/// The run's time base: intended send times become wall-clock nanoseconds in
/// each message, and consumers turn their clock into the same scale.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    pub start: Instant,
    pub start_wall_ns: u64,
    pub warmup_end: Instant,
    /// When producers stop sending (None: after their message count).
    pub deadline: Option<Instant>,
}

impl Clock {
    pub fn wall_ns(&self, at: Instant) -> u64 {
        self.start_wall_ns + at.saturating_duration_since(self.start).as_nanos() as u64
    }

    /// Whether something sent at `at` counts (after the warm-up, before the deadline).
    pub fn measured(&self, at: Instant) -> bool {
        at >= self.warmup_end && self.deadline.is_none_or(|d| at < d)
    }
}

pub fn wall_clock_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// Counters every lane adds to; the main thread samples them.
#[derive(Default)]
pub struct Counters {
    pub produced_messages: AtomicU64,
    pub produced_bytes: AtomicU64,
    pub consumed_messages: AtomicU64,
    pub consumed_bytes: AtomicU64,
    /// Producers stop sending.
    pub stop_producing: AtomicBool,
    /// Consumers stop fetching.
    pub stop_consuming: AtomicBool,
}

/// One producer connection's work.
pub struct ProducerLane {
    pub addr: String,
    pub partitions: Vec<i32>,
    pub shape: Shape,
    /// Messages per second for this lane.
    pub rate: Option<f64>,
    /// Fraction of one batch interval to delay this lane's schedule by, so lanes interleave.
    pub phase: f64,
    /// Stop after this many messages.
    pub messages: Option<u64>,
    pub max_in_flight: usize,
    pub timeout: Duration,
    pub seed: u64,
}

struct InFlight {
    correlation_id: i32,
    intended: Instant,
    records: u64,
}

/// Runs a producer lane to its end; returns its produce latencies (per message).
pub fn produce(lane: ProducerLane, clock: Clock, counters: Arc<Counters>) -> anyhow::Result<Latency> {
    let mut conn = Conn::connect(&lane.addr, lane.timeout)?;
    let version = conn.version_for::<ProduceRequest>(3, 9)?;
    let mut templates = lane
        .partitions
        .iter()
        .enumerate()
        .map(|(i, &p)| Template::new(&lane.shape, p, version, lane.seed.wrapping_add(i as u64 * 7919)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let records = lane.shape.records as u64;
    let payload = (lane.shape.message_size as u64) * records;
    let answered = lane.shape.acks != 0;
    let pacer = lane.rate.map(|rate| {
        let p = Pacer::new(clock.start, rate, lane.shape.records);
        Pacer::new(clock.start + p.interval().mul_f64(lane.phase), rate, lane.shape.records)
    });

    // Receiver: matches answers to requests in order (Kafka answers a connection in order).
    let (tx, rx) = mpsc::sync_channel::<InFlight>(lane.max_in_flight - 1);
    let receiver = if answered {
        let mut reader = conn.split()?;
        let counters = counters.clone();
        Some(std::thread::Builder::new().name("bench-ack".into()).spawn(move || -> anyhow::Result<Latency> {
            let mut latency = Latency::new();
            while let Ok(f) = rx.recv() {
                let frame = reader.read_frame()?;
                let now = Instant::now();
                let answered_id = response_correlation_id(&frame)?;
                if answered_id != f.correlation_id {
                    bail!("answer {answered_id} does not match request {}", f.correlation_id);
                }
                let response = decode_answer::<ProduceRequest>(frame, version, f.correlation_id)?;
                for p in response.responses.iter().flat_map(|t| &t.partition_responses) {
                    if let Some(e) = ResponseError::try_from_code(p.error_code).filter(|_| p.error_code != 0) {
                        let detail = p.error_message.as_ref().map_or(String::new(), |m| format!(" ({})", &**m));
                        bail!("producing to partition {}: {e:?}: {e}{detail}", p.index);
                    }
                }
                counters.produced_messages.fetch_add(f.records, Ordering::Relaxed);
                counters.produced_bytes.fetch_add(payload, Ordering::Relaxed);
                if clock.measured(f.intended) {
                    latency.record_n(now.saturating_duration_since(f.intended), f.records);
                }
            }
            Ok(latency)
        })?)
    } else {
        drop(rx);
        None
    };

    let sent = send_loop(&lane, &mut conn, &mut templates, pacer, clock, &counters, answered.then_some(&tx));
    drop(tx);
    let latency = match receiver {
        Some(handle) => {
            let received = handle.join().map_err(|_| anyhow!("the receiver thread panicked"))?;
            // The receiver's error explains a send that failed because it went away.
            match (received, sent) {
                (Err(e), _) => return Err(e),
                (Ok(_), Err(e)) => return Err(e),
                (Ok(latency), Ok(())) => latency,
            }
        }
        None => {
            sent?;
            Latency::new()
        }
    };
    conn.shutdown();
    Ok(latency)
}

fn send_loop(
    lane: &ProducerLane,
    conn: &mut Conn,
    templates: &mut [Template],
    pacer: Option<Pacer>,
    clock: Clock,
    counters: &Counters,
    in_flight: Option<&mpsc::SyncSender<InFlight>>,
) -> anyhow::Result<()> {
    let records = lane.shape.records as u64;
    let payload = lane.shape.message_size as u64 * records;
    let mut k = 0u64;
    loop {
        if counters.stop_producing.load(Ordering::Relaxed) || lane.messages.is_some_and(|m| k * records >= m) {
            return Ok(());
        }
        let intended = match pacer {
            Some(p) => {
                let due = p.due(k);
                if clock.deadline.is_some_and(|d| due >= d) {
                    return Ok(());
                }
                sleep_until(due);
                due
            }
            None => {
                let now = Instant::now();
                if clock.deadline.is_some_and(|d| now >= d) {
                    return Ok(());
                }
                now
            }
        };
        let correlation_id = conn.next_correlation_id();
        let template = &mut templates[(k % templates.len() as u64) as usize];
        let frame = template.frame(correlation_id, k * records, clock.wall_ns(intended))?;
        if let Some(tx) = in_flight {
            // Blocks while max_in_flight requests await answers.
            tx.send(InFlight { correlation_id, intended, records })
                .map_err(|_| anyhow!("the connection to {} failed", lane.addr))?;
        }
        conn.write_frame(frame)?;
        if in_flight.is_none() {
            counters.produced_messages.fetch_add(records, Ordering::Relaxed);
            counters.produced_bytes.fetch_add(payload, Ordering::Relaxed);
        }
        k += 1;
    }
}

/// A consumer that gets its partitions from a consumer group.
pub struct GroupLane {
    pub name: String,
    /// Partitions of the topic.
    pub partitions: i32,
}

/// How often a group consumer commits its position.
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// One consumer connection's work.
pub struct ConsumerLane {
    /// `Some`: `partitions` is ignored; the group assigns them.
    pub group: Option<GroupLane>,
    pub addr: String,
    pub topic: String,
    pub partitions: Vec<i32>,
    /// Start at the latest offsets (else the earliest).
    pub from_latest: bool,
    /// Stop once every partition reaches the latest offset seen at the start.
    pub stop_at_end: bool,
    /// Read send times from the values and record end-to-end latency.
    pub e2e: bool,
    pub max_wait_ms: i32,
    pub partition_max_bytes: i32,
    pub timeout: Duration,
}

/// Connects and finds the start offsets, says `ready`, waits for the clock on
/// `go`, then fetches until told to stop (or, with `stop_at_end`, until caught up).
/// Returns the end-to-end latencies of the measured messages.
pub fn consume(
    lane: ConsumerLane,
    ready: mpsc::Sender<()>,
    go: mpsc::Receiver<Clock>,
    counters: Arc<Counters>,
) -> anyhow::Result<Latency> {
    let mut conn = Conn::connect(&lane.addr, lane.timeout)?;
    let version = conn.version_for::<FetchRequest>(4, 12)?;
    conn.set_read_timeout(lane.timeout + Duration::from_millis(lane.max_wait_ms as u64))?;
    let mut member = None;
    let mut partitions = lane.partitions.clone();
    let all_partitions: Vec<i32> = match &lane.group {
        Some(group) => {
            let (joined, assigned) = GroupMember::join(&lane.addr, &group.name, &lane.topic, group.partitions)?;
            member = Some(joined);
            partitions = assigned;
            (0..group.partitions).collect()
        }
        None => lane.partitions.clone(),
    };
    let ends =
        if lane.stop_at_end { Some(admin::offsets(&mut conn, &lane.topic, &all_partitions, true)?) } else { None };
    let mut next = start_positions(&mut conn, member.as_mut(), &lane, &partitions)?;
    let mut last_commit = Instant::now();
    let _ = ready.send(());
    let clock = go.recv().context("the run was abandoned before it started")?;
    let topic = admin::topic_name(&lane.topic);
    let mut latency = Latency::new();
    loop {
        if counters.stop_consuming.load(Ordering::Relaxed) {
            break;
        }
        if let Some(member) = member.as_mut() {
            if last_commit.elapsed() >= COMMIT_INTERVAL {
                member.commit(&next)?;
                last_commit = Instant::now();
            }
            if let Some(assigned) = member.heartbeat_if_due()? {
                next = start_positions(&mut conn, Some(member), &lane, &assigned)?;
            }
        }
        let wanted: Vec<(i32, i64)> = match &ends {
            Some(ends) => next.iter().copied().filter(|(p, o)| *o < ends[p]).collect(),
            None => next.clone(),
        };
        if wanted.is_empty() {
            break;
        }
        let request = FetchRequest::default()
            .with_replica_id((-1).into())
            .with_max_wait_ms(lane.max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(i32::MAX)
            .with_isolation_level(0)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default().with_topic(topic.clone()).with_partitions(
                wanted
                    .iter()
                    .map(|&(p, offset)| {
                        FetchPartition::default()
                            .with_partition(p)
                            .with_fetch_offset(offset)
                            .with_partition_max_bytes(lane.partition_max_bytes)
                    })
                    .collect(),
            )]);
        let response = conn.roundtrip(&request, version)?;
        if response.error_code != 0 {
            let e = ResponseError::try_from_code(response.error_code);
            bail!("fetch failed: {e:?} (error code {})", response.error_code);
        }
        let now_wall = clock.wall_ns(Instant::now());
        let (warm_ns, end_ns) = (clock.wall_ns(clock.warmup_end), clock.deadline.map(|d| clock.wall_ns(d)));
        for data in response.responses.iter().flat_map(|t| &t.partitions) {
            let slot = next
                .iter_mut()
                .find(|(p, _)| *p == data.partition_index)
                .ok_or_else(|| anyhow!("answer for partition {} not asked for", data.partition_index))?;
            if let Some(e) = ResponseError::try_from_code(data.error_code).filter(|_| data.error_code != 0) {
                bail!("fetching {}/{} at offset {}: {e:?}: {e}", lane.topic, slot.0, slot.1);
            }
            let Some(records) = &data.records else { continue };
            let s = scan(records, slot.1, |sent| {
                if lane.e2e && sent >= warm_ns && end_ns.is_none_or(|e| sent < e) {
                    latency.record(Duration::from_nanos(now_wall.saturating_sub(sent)));
                }
            })?;
            slot.1 = s.next_offset;
            counters.consumed_messages.fetch_add(s.messages, Ordering::Relaxed);
            counters.consumed_bytes.fetch_add(s.payload_bytes, Ordering::Relaxed);
        }
    }
    if let Some(mut member) = member {
        member.commit(&next)?;
        member.leave()?;
    }
    conn.shutdown();
    Ok(latency)
}

/// Where to start reading `partitions`: the group's committed offsets where
/// there are some, else the earliest or latest offsets.
fn start_positions(
    conn: &mut Conn,
    member: Option<&mut GroupMember>,
    lane: &ConsumerLane,
    partitions: &[i32],
) -> anyhow::Result<Vec<(i32, i64)>> {
    let committed = match member {
        Some(member) => member.committed(partitions)?,
        None => Default::default(),
    };
    let fallback = admin::offsets(conn, &lane.topic, partitions, lane.from_latest)?;
    Ok(partitions.iter().map(|p| (*p, committed.get(p).copied().unwrap_or(fallback[p]))).collect())
}
