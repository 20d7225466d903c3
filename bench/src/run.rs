//! One measured run: set up the topic, start consumer and producer lanes,
//! sample throughput every second, decide when it ends, gather the figures.

use crate::admin::{self, share};
use crate::batch::Shape;
use crate::fake;
use crate::pace::records_per_batch;
use crate::params::{Mode, Params, StartAt};
use crate::report::{Generator, Report, Sample, Throughput};
use crate::stats::Latency;
use crate::wire::Conn;
use crate::workers::{self, wall_clock_ns, Clock, ConsumerLane, Counters, GroupLane, ProducerLane};
use anyhow::{anyhow, bail};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// After producers stop, consumers get this long to catch up in e2e runs.
const CONSUMER_GRACE: Duration = Duration::from_secs(5);

enum Done {
    Producer(anyhow::Result<Latency>),
    Consumer(anyhow::Result<Latency>),
}

/// Counter values at one moment.
#[derive(Clone, Copy, Debug)]
struct Snap {
    at: Instant,
    produced_messages: u64,
    produced_bytes: u64,
    consumed_messages: u64,
    consumed_bytes: u64,
}

fn snap(c: &Counters, at: Instant) -> Snap {
    Snap {
        at,
        produced_messages: c.produced_messages.load(Ordering::Relaxed),
        produced_bytes: c.produced_bytes.load(Ordering::Relaxed),
        consumed_messages: c.consumed_messages.load(Ordering::Relaxed),
        consumed_bytes: c.consumed_bytes.load(Ordering::Relaxed),
    }
}

/// Seconds of CPU this process has used (user + system).
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we pass; RUSAGE_SELF is always valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Runs `mode` with `params` and returns its report. `progress` prints a line a second.
pub fn run(mode: Mode, params: &Params, progress: bool) -> anyhow::Result<Report> {
    params.validate(mode).map_err(anyhow::Error::msg)?;
    let timeout = Duration::from_secs_f64(params.timeout);
    let (topic_name, leaders) = if params.dry_run {
        let addr = fake::start(params.acks.wire() != 0)?;
        (params.topic.clone(), vec![addr; params.partitions as usize])
    } else {
        let mut conn = Conn::connect(&params.bootstrap, timeout)?;
        let topic = admin::ensure_topic(&mut conn, &params.topic, params.partitions, timeout)?;
        (topic.name, topic.leaders)
    };
    let partitions = leaders.len() as i32;
    let counters = Arc::new(Counters::default());
    let (done_tx, done_rx) = mpsc::channel::<Done>();

    // Consumers first: in e2e they must know where the topic ends before anything is produced.
    let mut consumer_lanes = Vec::new();
    if mode.consumes() {
        // With a group, every consumer asks the group for its partitions (and
        // fetches from the bootstrap broker: single-node clusters only, for now).
        let lanes: Vec<(String, Vec<i32>)> = match &params.group {
            Some(_) => vec![(params.bootstrap.clone(), Vec::new()); params.consumers],
            None => share(partitions, params.consumers).iter().flat_map(|parts| by_leader(parts, &leaders)).collect(),
        };
        for (addr, parts) in lanes {
            {
                consumer_lanes.push(ConsumerLane {
                    group: params.group.clone().map(|name| GroupLane { name, partitions }),
                    addr,
                    topic: topic_name.clone(),
                    partitions: parts,
                    from_latest: params.start_at(mode) == StartAt::Latest,
                    stop_at_end: mode == Mode::Consume,
                    e2e: mode == Mode::E2e,
                    max_wait_ms: params.fetch_max_wait_ms,
                    partition_max_bytes: params.fetch_partition_max_bytes,
                    timeout,
                });
            }
        }
    }
    let consumers = consumer_lanes.len();
    let (ready_tx, ready_rx) = mpsc::channel();
    let mut gos = Vec::new();
    for lane in consumer_lanes {
        let (go_tx, go_rx) = mpsc::channel();
        gos.push(go_tx);
        let (ready, counters, done) = (ready_tx.clone(), counters.clone(), done_tx.clone());
        std::thread::Builder::new().name("bench-consume".into()).spawn(move || {
            let _ = done.send(Done::Consumer(workers::consume(lane, ready, go_rx, counters)));
        })?;
    }
    drop(ready_tx);
    for _ in 0..consumers {
        match ready_rx.recv_timeout(timeout + Duration::from_secs(1)) {
            Ok(()) => {}
            Err(_) => {
                // A consumer failed to start: its error is waiting.
                if let Ok(Done::Consumer(Err(e)) | Done::Producer(Err(e))) = done_rx.try_recv() {
                    return Err(e);
                }
                bail!("consumers did not start within {timeout:?}");
            }
        }
    }

    let records = records_per_batch(params.batch_size, params.rate, params.linger_ms);
    let shape = Shape {
        topic: topic_name.clone(),
        message_size: params.message_size,
        records,
        compression: params.compression,
        keys: params.keys,
        acks: params.acks.wire(),
        timeout_ms: (params.timeout * 1000.0).min(i32::MAX as f64) as i32,
        stamp: mode == Mode::E2e,
    };
    let mut producer_lanes = Vec::new();
    if mode.produces() {
        for (i, parts) in share(partitions, params.producers).into_iter().enumerate() {
            for (addr, parts) in by_leader(&parts, &leaders) {
                producer_lanes.push((i, addr, parts));
            }
        }
    }
    let producers = producer_lanes.len();
    let start = Instant::now() + Duration::from_millis(if producers > 0 { 50 } else { 0 });
    let warmup_end = start + Duration::from_secs_f64(params.warmup);
    let deadline = warmup_end + Duration::from_secs_f64(params.duration);
    let count_mode = params.messages.is_some() && mode.produces();
    let clock = Clock {
        start,
        start_wall_ns: wall_clock_ns() + start.saturating_duration_since(Instant::now()).as_nanos() as u64,
        warmup_end,
        deadline: (!count_mode).then_some(deadline),
    };
    let cpu_start = cpu_seconds();
    // Before any lane may start: a fast consumer can read a small topic
    // before the loop below takes its first look.
    let first = snap(&counters, start);
    for go in gos {
        let _ = go.send(clock);
    }
    for (n, (i, addr, parts)) in producer_lanes.into_iter().enumerate() {
        let lane = ProducerLane {
            addr,
            partitions: parts,
            shape: shape.clone(),
            rate: params.rate.map(|r| r / producers as f64),
            phase: n as f64 / producers as f64,
            messages: params.messages.map(|m| m.div_ceil(producers as u64)),
            max_in_flight: params.max_in_flight,
            timeout,
            seed: 0x5eed ^ (i as u64) << 32 ^ n as u64,
        };
        let (counters, done) = (counters.clone(), done_tx.clone());
        std::thread::Builder::new().name("bench-produce".into()).spawn(move || {
            let _ = done.send(Done::Producer(workers::produce(lane, clock, counters)));
        })?;
    }
    drop(done_tx);

    // Sample, print, and decide when the measured window ends.
    let (mut producers_left, mut consumers_left) = (producers, consumers);
    let (mut produce_latency, mut e2e_latency) = (Latency::new(), Latency::new());
    let mut samples: Vec<Snap> = vec![first];
    let mut warm = (warmup_end <= start).then_some(first);
    let mut end: Option<Snap> = None;
    let mut producers_done_at: Option<Instant> = None;
    let mut next_tick = start + Duration::from_secs(1);
    let stderr_is_terminal = progress && std::io::stderr().is_terminal();
    while producers_left + consumers_left > 0 {
        let now = Instant::now();
        let mut wake = next_tick;
        if warm.is_none() {
            wake = wake.min(warmup_end);
        }
        if end.is_none() && !count_mode {
            wake = wake.min(deadline);
        }
        match done_rx.recv_timeout(wake.saturating_duration_since(now)) {
            Ok(Done::Producer(result)) => {
                producers_left -= 1;
                produce_latency.merge(&result?);
            }
            Ok(Done::Consumer(result)) => {
                consumers_left -= 1;
                e2e_latency.merge(&result?);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => bail!("a worker thread vanished"),
        }
        let now = Instant::now();
        if warm.is_none() && now >= warmup_end {
            warm = Some(snap(&counters, now));
        }
        if now >= next_tick {
            let s = snap(&counters, now);
            if stderr_is_terminal {
                eprintln!("{}", progress_line(samples.last().expect("first sample"), &s, start));
            }
            samples.push(s);
            next_tick += Duration::from_secs(1);
        }
        if end.is_none() && !count_mode && now >= deadline {
            end = Some(snap(&counters, now));
            counters.stop_producing.store(true, Ordering::Relaxed);
            if mode == Mode::Consume {
                counters.stop_consuming.store(true, Ordering::Relaxed);
            }
        }
        if producers > 0 && producers_left == 0 {
            let done_at = *producers_done_at.get_or_insert(now);
            if end.is_none() {
                end = Some(snap(&counters, now));
            }
            let s = snap(&counters, now);
            if s.consumed_messages >= s.produced_messages || now >= done_at + CONSUMER_GRACE {
                counters.stop_consuming.store(true, Ordering::Relaxed);
            }
        }
        if producers == 0 && consumers_left == 0 && end.is_none() {
            end = Some(snap(&counters, now));
        }
    }
    let cpu = cpu_seconds() - cpu_start;
    // The last, partial second (or the only one of a short run).
    let last = snap(&counters, Instant::now());
    if last.at.saturating_duration_since(samples.last().expect("first sample").at) >= Duration::from_millis(1) {
        samples.push(last);
    }
    let end = end.ok_or_else(|| anyhow!("the run ended without a measured window"))?;
    let warm = match warm {
        Some(w) if w.at <= end.at => w,
        _ => bail!(
            "the run ended within the warm-up ({} s): lower --warmup or raise --messages/--duration",
            params.warmup
        ),
    };
    let seconds = end.at.saturating_duration_since(warm.at).as_secs_f64();
    if seconds <= 0.0 {
        bail!("the measured window is empty: lower --warmup or raise --messages/--duration");
    }
    let final_snap = snap(&counters, Instant::now());
    if mode.consumes() && final_snap.consumed_messages == 0 {
        match mode {
            Mode::Consume => bail!("topic '{topic_name}' had nothing to consume: run `weir bench produce` first"),
            _ => bail!("consumers received nothing of what was produced to '{topic_name}'"),
        }
    }
    let throughput = |messages: u64, bytes: u64| Throughput {
        messages,
        bytes,
        messages_per_s: messages as f64 / seconds,
        mb_per_s: bytes as f64 / seconds / 1e6,
    };
    let moved_bytes = final_snap.produced_bytes + final_snap.consumed_bytes;
    let timeline = samples
        .windows(2)
        .map(|w| {
            let dt = w[1].at.saturating_duration_since(w[0].at).as_secs_f64().max(1e-9);
            Sample {
                t_s: w[1].at.saturating_duration_since(start).as_secs_f64(),
                produce_messages_per_s: (w[1].produced_messages - w[0].produced_messages) as f64 / dt,
                produce_mb_per_s: (w[1].produced_bytes - w[0].produced_bytes) as f64 / dt / 1e6,
                consume_messages_per_s: (w[1].consumed_messages - w[0].consumed_messages) as f64 / dt,
                consume_mb_per_s: (w[1].consumed_bytes - w[0].consumed_bytes) as f64 / dt / 1e6,
            }
        })
        .collect();
    Ok(Report {
        mode,
        params: params.clone(),
        generator: Generator {
            version: env!("CARGO_PKG_VERSION"),
            partitions,
            producer_connections: producers,
            consumer_connections: consumers,
            records_per_batch: if mode.produces() { Some(records) } else { None },
            cpu_seconds: cpu,
            cpu_seconds_per_gb: if moved_bytes > 0 { Some(cpu / (moved_bytes as f64 / 1e9)) } else { None },
        },
        measured_seconds: seconds,
        produce: mode.produces().then(|| {
            throughput(end.produced_messages - warm.produced_messages, end.produced_bytes - warm.produced_bytes)
        }),
        consume: mode.consumes().then(|| {
            throughput(end.consumed_messages - warm.consumed_messages, end.consumed_bytes - warm.consumed_bytes)
        }),
        produce_latency: produce_latency.summary(),
        e2e_latency: e2e_latency.summary(),
        produce_latency_curve: produce_latency.curve(),
        e2e_latency_curve: e2e_latency.curve(),
        timeline,
    })
}

/// `parts` grouped by the address of their leader.
fn by_leader(parts: &[i32], leaders: &[String]) -> Vec<(String, Vec<i32>)> {
    let mut groups: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for &p in parts {
        groups.entry(leaders[p as usize].as_str()).or_default().push(p);
    }
    groups.into_iter().map(|(a, p)| (a.to_string(), p)).collect()
}

fn progress_line(prev: &Snap, now: &Snap, start: Instant) -> String {
    let dt = now.at.saturating_duration_since(prev.at).as_secs_f64().max(1e-9);
    let rate = |a: u64, b: u64| (b - a) as f64 / dt;
    format!(
        "[{:>5.0}s] produced {:>10.0} msg/s {:>9.1} MB/s | consumed {:>10.0} msg/s {:>9.1} MB/s",
        now.at.saturating_duration_since(start).as_secs_f64(),
        rate(prev.produced_messages, now.produced_messages),
        rate(prev.produced_bytes, now.produced_bytes) / 1e6,
        rate(prev.consumed_messages, now.consumed_messages),
        rate(prev.consumed_bytes, now.consumed_bytes) / 1e6,
    )
}
