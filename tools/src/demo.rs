//! `weir demo clicks`: seeded, reproducible click events for the click-stream
//! showcase (examples/clickstream), produced idempotently with acks=all and
//! optionally written, in production order with their partitions and offsets,
//! to a JSONL file that examples/clickstream/check.py recomputes results from.
//!
//! The model (all times are synthetic event times, never wall-clock):
//! - the simulated period starts at 2026-01-01T00:00:00Z;
//! - users first arrive over 12 s of event time per user (at least 10
//!   minutes) and then visit in sessions: a session is a run of 1 to 40
//!   clicks 2 s to 10 minutes apart, and the user's next session starts 31
//!   minutes to 4 hours after the previous one ended (more than the pipeline's
//!   30-minute inactivity gap, so each generated session is one session);
//! - pages follow a Zipf-like law (weight 1/rank^1.1); a session's first click
//!   has an external referrer, later ones the previous page;
//! - every timestamp is distinct, so a session's entry and exit pages are well
//!   defined;
//! - events go out in event-time order except about 2% of them, held back and
//!   produced once 1 to 150 s of later event time has gone out (out of order;
//!   those held back longer than a window's grace are late);
//! - `--events N` produces the N earliest events (the held-back ones among
//!   them at the end, if their time has not come), `--duration` as many as
//!   that time allows.

use crate::produce::{murmur2_partition, partition_count};
use crate::topics::topic_name;
use crate::Bootstrap;
use anyhow::{bail, Context};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{InitProducerIdRequest, ProduceRequest, ProduceResponse};
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use weir_client::Client;
use weir_engine::records::RecordsBuilder;

const T0_MS: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const SECTIONS: [&str; 4] = ["product", "blog", "docs", "cart"];
const REFERRERS: [&str; 5] =
    ["https://www.google.com/", "https://news.ycombinator.com/", "https://t.co/", "https://duckduckgo.com/", ""];
const AGENTS: [&str; 5] = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0 Mobile Safari/537.36",
];
const ZIPF_EXPONENT: f64 = 1.1;
const ARRIVAL_MS_PER_USER: i64 = 12_000;
const MIN_ARRIVAL_SPAN_MS: i64 = 600_000;
const MEAN_CLICKS_PER_SESSION: f64 = 6.0;
const MAX_CLICKS_PER_SESSION: u64 = 40;
const MIN_CLICK_GAP_MS: i64 = 2_000;
const MEAN_EXTRA_CLICK_GAP_MS: f64 = 45_000.0;
const MAX_CLICK_GAP_MS: i64 = 10 * 60_000;
const MIN_SESSION_GAP_MS: i64 = 31 * 60_000;
const MAX_SESSION_GAP_MS: i64 = 4 * 3_600_000;
const OUT_OF_ORDER_SHARE: f64 = 0.02;
const MIN_HOLD_BACK_MS: i64 = 1_000;
const MAX_HOLD_BACK_MS: i64 = 150_000;

/// Records per partition in one request. Small: a consumer gets at least a whole batch of a
/// partition at a time, so big batches would make the input partitions
/// interleave coarsely in event time downstream.
const BATCH_RECORDS: usize = 10;
/// How long a paced event may wait for others to share its request (librdkafka's linger.ms).
const LINGER: Duration = Duration::from_millis(5);
/// How long a request is retried (across broker restarts) before the run fails.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(120);
const RETRY_BACKOFF: Duration = Duration::from_millis(200);

#[derive(clap::Subcommand)]
pub enum DemoCommand {
    /// Produce seeded, realistic click events (JSON, keyed by user) for examples/clickstream.
    Clicks(ClicksArgs),
}

#[derive(clap::Args)]
pub struct ClicksArgs {
    /// Topic to write to (created if the broker auto-creates topics).
    #[arg(long, short = 't', default_value = "clicks")]
    topic: String,
    /// Events to produce (default 3000 unless --duration is given).
    #[arg(long, conflicts_with = "duration")]
    events: Option<u64>,
    /// Produce for this many seconds of wall-clock time instead of a count.
    #[arg(long)]
    duration: Option<f64>,
    /// Events per second of wall-clock time; 0: as fast as it can. Only the
    /// pacing changes: the events and their event times are the same at any rate.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Seed: the same seed, users and pages give the same events.
    #[arg(long, default_value_t = 16)]
    seed: u64,
    /// Users (default: one per 20 events, at least 5; with --duration, per
    /// 20 of rate x duration, or 1000 at an unlimited rate).
    #[arg(long)]
    users: Option<u32>,
    /// Distinct pages.
    #[arg(long, default_value_t = 40)]
    pages: u32,
    /// Also write the events produced, in order, as JSONL with `_partition`,
    /// `_offset` and `_sent` (wall-clock seconds of the produce call) added.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    bootstrap: Bootstrap,
}

pub fn run(command: DemoCommand) -> anyhow::Result<()> {
    match command {
        DemoCommand::Clicks(args) => clicks(args),
    }
}

/// One click event, as produced (the message value) and as in the JSONL file.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Click {
    user_id: String,
    session_cookie: String,
    page: String,
    referrer: String,
    /// Event time, ms since the epoch; also the record's timestamp.
    ts: i64,
    user_agent: &'static str,
}

/// SplitMix64: a small, seedable generator; the generator's output must
/// depend on nothing but the seed.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Exponentially distributed with this mean.
    fn exponential(&mut self, mean: f64) -> f64 {
        -(1.0 - self.unit()).ln() * mean
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

struct Session {
    cookie: String,
    clicks_left: u64,
    referrer: String,
}

struct User {
    agent: &'static str,
    session: Option<Session>,
}

/// An event held back to go out of order, released once the in-order events
/// reach `release` (ties by the order they were held).
struct Held {
    release: i64,
    seq: u64,
    click: Click,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.release, self.seq) == (other.release, other.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.release, self.seq).cmp(&(other.release, other.seq))
    }
}

/// The click events in production order.
pub struct Generator {
    rng: Rng,
    pages: Vec<String>,
    /// Cumulative Zipf weights of `pages`, for sampling.
    cumulative: Vec<f64>,
    users: Vec<User>,
    /// (next click or session start, user index), earliest first.
    next: BinaryHeap<Reverse<(i64, u32)>>,
    last_ts: i64,
    /// In-order events still to draw; None: no limit.
    left: Option<u64>,
    seq: u64,
    held: BinaryHeap<Reverse<Held>>,
    ready: VecDeque<Click>,
}

impl Generator {
    /// `events`: how many in-order events to draw (the held-back ones among
    /// them come out at the end); None: until `stop`.
    pub fn new(seed: u64, users: u32, pages: u32, events: Option<u64>) -> Generator {
        let mut rng = Rng(seed);
        let pages: Vec<String> = (0..pages.max(1) as usize)
            .map(|k| match k {
                0 => "/".to_string(),
                // 10 pages a section, sections in turn, numbered on past 40.
                k => format!("/{}/{}", SECTIONS[(k - 1) / 10 % 4], (k - 1) % 10 + 10 * ((k - 1) / 40)),
            })
            .collect();
        let mut total = 0.0;
        let cumulative = (1..=pages.len())
            .map(|rank| {
                total += 1.0 / (rank as f64).powf(ZIPF_EXPONENT);
                total
            })
            .collect();
        let span = MIN_ARRIVAL_SPAN_MS.max(i64::from(users) * ARRIVAL_MS_PER_USER) as u64;
        let mut next = BinaryHeap::new();
        let users = (0..users)
            .map(|u| {
                next.push(Reverse((T0_MS + rng.below(span) as i64, u)));
                User { agent: rng.pick(&AGENTS), session: None }
            })
            .collect();
        Generator {
            rng,
            pages,
            cumulative,
            users,
            next,
            last_ts: i64::MIN,
            left: events,
            seq: 0,
            held: BinaryHeap::new(),
            ready: VecDeque::new(),
        }
    }

    /// Draws no more in-order events: what is held back comes out next, then the end.
    pub fn stop(&mut self) {
        self.left = Some(0);
    }

    fn page(&mut self) -> String {
        let x = self.rng.unit() * self.cumulative.last().copied().unwrap_or(0.0);
        let rank = self.cumulative.partition_point(|&c| c <= x).min(self.pages.len() - 1);
        self.pages[rank].clone()
    }

    /// The next event in event-time order, or None without users.
    fn next_in_order(&mut self) -> Option<Click> {
        let Reverse((due, u)) = self.next.pop()?;
        // Distinct timestamps; a bump keeps event-time order.
        let ts = due.max(self.last_ts + 1);
        self.last_ts = ts;
        let page = self.page();
        let rng = &mut self.rng;
        let user = &mut self.users[u as usize];
        let session = user.session.get_or_insert_with(|| Session {
            // A random (version 4) UUID, as hex.
            cookie: format!(
                "{:032x}",
                (u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64())) & !(0xf000u128 << 64 | 0xc << 60)
                    | 0x4000u128 << 64
                    | 0x8 << 60
            ),
            clicks_left: (rng.exponential(MEAN_CLICKS_PER_SESSION) as u64 + 1).min(MAX_CLICKS_PER_SESSION),
            referrer: rng.pick(&REFERRERS).to_string(),
        });
        let referrer = std::mem::replace(&mut session.referrer, format!("https://shop.example{page}"));
        let click = Click {
            user_id: format!("u{u:05}"),
            session_cookie: session.cookie.clone(),
            page,
            referrer,
            ts,
            user_agent: user.agent,
        };
        session.clicks_left -= 1;
        let next = if session.clicks_left > 0 {
            ts + MAX_CLICK_GAP_MS.min(MIN_CLICK_GAP_MS + rng.exponential(MEAN_EXTRA_CLICK_GAP_MS) as i64)
        } else {
            user.session = None;
            ts + MIN_SESSION_GAP_MS + rng.below((MAX_SESSION_GAP_MS - MIN_SESSION_GAP_MS) as u64) as i64
        };
        self.next.push(Reverse((next, u)));
        Some(click)
    }
}

impl Iterator for Generator {
    type Item = Click;

    fn next(&mut self) -> Option<Click> {
        while self.ready.is_empty() {
            let click = match self.left {
                Some(0) => None,
                _ => self.next_in_order(),
            };
            let Some(click) = click else {
                return self.held.pop().map(|Reverse(h)| h.click);
            };
            self.left = self.left.map(|n| n - 1);
            while self.held.peek().is_some_and(|Reverse(h)| h.release <= click.ts) {
                let Reverse(h) = self.held.pop().expect("peeked");
                self.ready.push_back(h.click);
            }
            if self.rng.unit() < OUT_OF_ORDER_SHARE {
                let hold = MIN_HOLD_BACK_MS + self.rng.below((MAX_HOLD_BACK_MS - MIN_HOLD_BACK_MS + 1) as u64) as i64;
                self.held.push(Reverse(Held { release: click.ts + hold, seq: self.seq, click }));
            } else {
                self.ready.push_back(click);
            }
            self.seq += 1;
        }
        self.ready.pop_front()
    }
}

/// A line of the JSONL file: the event and where it went.
#[derive(Serialize)]
struct Delivered<'a> {
    #[serde(flatten)]
    click: &'a Click,
    #[serde(rename = "_partition")]
    partition: i32,
    #[serde(rename = "_offset")]
    offset: i64,
    #[serde(rename = "_sent")]
    sent: f64,
}

/// A record to produce: key, value and timestamp.
type Record<'a> = (&'a [u8], Vec<u8>, i64);

/// An idempotent producer over the tools' blocking client: one request in
/// flight, retried with the same sequence numbers (so never written twice)
/// across errors and broker restarts until DELIVERY_TIMEOUT.
struct Producer {
    bootstrap: String,
    client: Client,
    topic: String,
    producer_id: i64,
    epoch: i16,
    /// Next sequence number per partition.
    sequences: Vec<i32>,
}

impl Producer {
    fn connect(bootstrap: &str, topic: &str) -> anyhow::Result<Producer> {
        let mut client = Client::connect(bootstrap)?;
        let partitions = partition_count(&mut client, topic)?;
        if partitions < 1 {
            bail!("topic '{topic}' has no partitions");
        }
        let deadline = Instant::now() + DELIVERY_TIMEOUT;
        // No transactional id: an idempotent producer (the default is an empty id).
        let request = InitProducerIdRequest::default().with_transactional_id(None);
        let response = loop {
            let response = client.send(&request, 4)?;
            match ResponseError::try_from_code(response.error_code) {
                None => break response,
                Some(e) if e.is_retriable() && Instant::now() < deadline => std::thread::sleep(RETRY_BACKOFF),
                Some(e) => bail!("InitProducerId: {e:?}: {e}"),
            }
        };
        Ok(Producer {
            bootstrap: bootstrap.to_string(),
            client,
            topic: topic.to_string(),
            producer_id: response.producer_id.0,
            epoch: response.producer_epoch,
            sequences: vec![0; partitions as usize],
        })
    }

    fn partitions(&self) -> i32 {
        self.sequences.len() as i32
    }

    /// Produces `batches` (records by partition, in order) and returns each
    /// partition's base offset once all are on stable storage.
    fn send(&mut self, batches: &[Vec<Record>]) -> anyhow::Result<Vec<i64>> {
        let mut partition_data = Vec::new();
        for (partition, records) in batches.iter().enumerate().filter(|(_, r)| !r.is_empty()) {
            let mut batch = RecordsBuilder::new().producer(self.producer_id, self.epoch, self.sequences[partition]);
            for (key, value, ts) in records {
                batch.push(Some(key), Some(value), &[], *ts);
            }
            partition_data
                .push(PartitionProduceData::default().with_index(partition as i32).with_records(Some(batch.finish())));
        }
        let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(30_000).with_topic_data(vec![
            TopicProduceData::default().with_name(topic_name(&self.topic)).with_partition_data(partition_data),
        ]);
        let deadline = Instant::now() + DELIVERY_TIMEOUT;
        let response = loop {
            match self.try_send(&request) {
                Ok(Some(response)) => break response,
                Ok(None) if Instant::now() < deadline => {}
                Ok(None) => bail!("producing to {}: retriable errors for {DELIVERY_TIMEOUT:?}", self.topic),
                Err(e) if Instant::now() < deadline => {
                    eprintln!("weir demo clicks: {e:#}; retrying");
                    std::thread::sleep(RETRY_BACKOFF);
                    // A broker restarting refuses connections for a while.
                    match Client::connect(&self.bootstrap) {
                        Ok(client) => self.client = client,
                        Err(e) => eprintln!("weir demo clicks: {e:#}"),
                    }
                }
                Err(e) => return Err(e.context(format!("producing to {}", self.topic))),
            }
        };
        let mut offsets = vec![-1; batches.len()];
        for p in response.responses.iter().flat_map(|t| &t.partition_responses) {
            if let Some(offset) = usize::try_from(p.index).ok().and_then(|i| offsets.get_mut(i)) {
                *offset = p.base_offset;
            }
        }
        for (partition, records) in batches.iter().enumerate().filter(|(_, r)| !r.is_empty()) {
            if offsets[partition] < 0 {
                bail!("the broker did not answer for {}/{partition}", self.topic);
            }
            // Sequence numbers wrap from i32::MAX to 0, as in Kafka.
            let next = (i64::from(self.sequences[partition]) + records.len() as i64) % (i64::from(i32::MAX) + 1);
            self.sequences[partition] = next as i32;
        }
        Ok(offsets)
    }

    /// One try: the response, None after a retriable partition error (with
    /// the back-off slept), or an error (connection errors included).
    fn try_send(&mut self, request: &ProduceRequest) -> anyhow::Result<Option<ProduceResponse>> {
        let response = self.client.send(request, 9)?;
        for p in response.responses.iter().flat_map(|t| &t.partition_responses) {
            match ResponseError::try_from_code(p.error_code) {
                None => {}
                // The same batch is still being written: its retry gets its offsets.
                Some(e) if e.is_retriable() || e == ResponseError::DuplicateSequenceNumber => {
                    std::thread::sleep(RETRY_BACKOFF);
                    return Ok(None);
                }
                Some(e) => {
                    let detail = p.error_message.as_ref().map_or(String::new(), |m| format!(" ({})", &**m));
                    bail!("producing to {}/{}: {e:?}: {e}{detail}", self.topic, p.index);
                }
            }
        }
        Ok(Some(response))
    }
}

fn clicks(args: ClicksArgs) -> anyhow::Result<()> {
    // Durations from these must not panic (negative, NaN or infinite).
    if !(args.rate.is_finite() && args.rate >= 0.0) {
        bail!("--rate must be 0 (unlimited) or a positive number of events per second");
    }
    if args.duration.is_some_and(|d| !(d.is_finite() && d >= 0.0)) {
        bail!("--duration must be a positive number of seconds");
    }
    let rate = (args.rate > 0.0).then_some(args.rate);
    let events = match (args.events, args.duration) {
        (Some(n), _) => Some(n),
        (None, Some(_)) => None,
        (None, None) => Some(3000),
    };
    let users = args.users.unwrap_or_else(|| {
        let expected = events.map(|n| n as f64).or_else(|| Some(rate? * args.duration?));
        expected.map_or(1000, |n| ((n / 20.0) as u32).max(5))
    });
    let mut generator = Generator::new(args.seed, users, args.pages, events);
    let mut producer = Producer::connect(&args.bootstrap.bootstrap, &args.topic)?;
    let mut out = match &args.out {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => None,
    };

    let started = Instant::now();
    let end = args.duration.map(|s| started + Duration::from_secs_f64(s));
    let (mut produced, mut out_of_order, mut max_ts, mut min_ts) = (0u64, 0u64, i64::MIN, i64::MAX);
    let (mut seen_users, mut seen_pages) = (HashSet::new(), HashSet::new());
    let mut upcoming = generator.next();
    // The request being filled: events with their partition and wall-clock time.
    let mut pending: Vec<(Click, i32, f64)> = Vec::new();
    let mut pending_per_partition = vec![0; producer.partitions() as usize];
    let mut first_pending_at = started;
    loop {
        let now = Instant::now();
        if end.is_some_and(|end| now >= end) {
            generator.stop();
        }
        let mut full = false;
        let mut due_at = None;
        while let Some(click) = upcoming.take() {
            // Past --duration, what is held back goes out unpaced.
            let due = match rate {
                Some(r) if end.is_none_or(|end| now < end) => started + Duration::from_secs_f64(produced as f64 / r),
                _ => now,
            };
            let partition = murmur2_partition(click.user_id.as_bytes(), producer.partitions());
            full = pending_per_partition[partition as usize] >= BATCH_RECORDS;
            if due > now || full {
                due_at = Some(due);
                upcoming = Some(click);
                break;
            }
            if pending.is_empty() {
                first_pending_at = now;
            }
            pending.push((click, partition, wall_clock_s()));
            pending_per_partition[partition as usize] += 1;
            produced += 1;
            upcoming = generator.next();
        }
        let linger_end = first_pending_at + LINGER;
        if !pending.is_empty() && (full || upcoming.is_none() || rate.is_none() || now >= linger_end) {
            let mut batches = vec![Vec::new(); producer.partitions() as usize];
            let values = pending.iter().map(|(c, _, _)| serde_json::to_vec(c)).collect::<Result<Vec<_>, _>>()?;
            for ((click, partition, _), value) in pending.iter().zip(values) {
                batches[*partition as usize].push((click.user_id.as_bytes(), value, click.ts));
            }
            let mut next_offsets = producer.send(&batches)?;
            pending_per_partition.fill(0);
            for (click, partition, sent) in pending.drain(..) {
                let offset = next_offsets[partition as usize];
                next_offsets[partition as usize] += 1;
                if click.ts < max_ts {
                    out_of_order += 1;
                }
                (max_ts, min_ts) = (max_ts.max(click.ts), min_ts.min(click.ts));
                seen_users.insert(click.user_id.clone());
                seen_pages.insert(click.page.clone());
                if let Some(out) = &mut out {
                    serde_json::to_writer(&mut *out, &Delivered { click: &click, partition, offset, sent })?;
                    out.write_all(b"\n")?;
                }
            }
        } else if upcoming.is_none() && pending.is_empty() {
            break;
        } else {
            // Nothing to send yet: wait for the next event's time or the linger's end.
            let wake = match (due_at, pending.is_empty()) {
                (Some(due), true) => due,
                (Some(due), false) => due.min(linger_end),
                (None, _) => linger_end,
            };
            let wake = end.map_or(wake, |end| wake.min(end));
            std::thread::sleep(wake.saturating_duration_since(Instant::now()));
        }
    }
    if let Some(mut out) = out {
        out.flush()?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!(
        "demo clicks: {produced} events, {} users, {} pages, {:.2} h of event time, {out_of_order} out of order, \
         produced in {elapsed:.2} s ({:.0} events/s) -> {}{}",
        seen_users.len(),
        seen_pages.len(),
        if produced > 0 { (max_ts - min_ts) as f64 / 3_600_000.0 } else { 0.0 },
        produced as f64 / elapsed.max(1e-9),
        args.topic,
        args.out.map_or(String::new(), |p| format!(", {}", p.display())),
    );
    Ok(())
}

fn wall_clock_s() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn events(seed: u64, n: u64) -> Vec<Click> {
        Generator::new(seed, (n / 20).max(5) as u32, 40, Some(n)).collect()
    }

    #[test]
    fn the_seed_decides_the_events() {
        let a = events(16, 5000);
        assert_eq!(a.len(), 5000);
        assert_eq!(a, events(16, 5000));
        assert_ne!(a, events(17, 5000));
        // A longer run starts the same: the first events do not depend on the count.
        let longer: Vec<Click> = Generator::new(16, 250, 40, Some(6000)).collect();
        let in_both = a.iter().filter(|c| longer.contains(c)).count();
        assert!(in_both > 4900, "{in_both}");
    }

    #[test]
    fn timestamps_are_distinct_and_cookies_are_uuids() {
        let clicks = events(1, 5000);
        let distinct: HashSet<i64> = clicks.iter().map(|c| c.ts).collect();
        assert_eq!(distinct.len(), clicks.len());
        assert!(clicks.iter().all(|c| c.ts >= T0_MS));
        for c in &clicks {
            let cookie = c.session_cookie.as_bytes();
            assert_eq!(cookie.len(), 32);
            assert_eq!(cookie[12], b'4', "{}", c.session_cookie);
            assert!(matches!(cookie[16], b'8' | b'9' | b'a' | b'b'), "{}", c.session_cookie);
        }
    }

    #[test]
    fn pages_follow_a_zipf_law() {
        let clicks = events(2, 40_000);
        let mut views: HashMap<&str, usize> = HashMap::new();
        for c in &clicks {
            *views.entry(&c.page).or_default() += 1;
        }
        assert_eq!(views.len(), 40);
        let generator = Generator::new(0, 5, 40, Some(0));
        let (first, second, tenth) = (views["/"], views[&*generator.pages[1]], views[&*generator.pages[9]]);
        // Expected ratios 2^1.1 = 2.14 and 10^1.1 = 12.6.
        let (r2, r10) = (first as f64 / second as f64, first as f64 / tenth as f64);
        assert!((1.9..2.4).contains(&r2), "{r2}");
        assert!((10.0..15.5).contains(&r10), "{r10}");
        // The top page alone takes 1 / H(40, 1.1), about 25%.
        let share = first as f64 / clicks.len() as f64;
        assert!((0.22..0.28).contains(&share), "{share}");
    }

    #[test]
    fn sessions_are_runs_of_clicks_separated_by_more_than_the_gap() {
        let clicks = events(3, 20_000);
        let mut by_user: HashMap<&str, Vec<&Click>> = HashMap::new();
        for c in &clicks {
            by_user.entry(&c.user_id).or_default().push(c);
        }
        let mut sessions = 0;
        for user_clicks in by_user.values_mut() {
            user_clicks.sort_by_key(|c| c.ts);
            assert!(user_clicks.windows(2).all(|w| w[0].user_agent == w[1].user_agent));
            sessions += 1;
            assert_ne!(&user_clicks[0].referrer[..user_clicks[0].referrer.len().min(20)], "https://shop.example");
            for w in user_clicks.windows(2) {
                let gap = w[1].ts - w[0].ts;
                if w[0].session_cookie == w[1].session_cookie {
                    assert!((MIN_CLICK_GAP_MS..=MAX_CLICK_GAP_MS + 100).contains(&gap), "{gap}");
                    assert_eq!(w[1].referrer, format!("https://shop.example{}", w[0].page));
                } else {
                    sessions += 1;
                    assert!(gap >= MIN_SESSION_GAP_MS, "{gap}");
                    assert!(REFERRERS.contains(&w[1].referrer.as_str()), "{}", w[1].referrer);
                }
            }
        }
        let cookies: HashSet<&str> = clicks.iter().map(|c| c.session_cookie.as_str()).collect();
        assert_eq!(cookies.len(), sessions);
        // About 6 clicks a session (the last sessions are cut short).
        let per_session = clicks.len() as f64 / sessions as f64;
        assert!((4.5..7.5).contains(&per_session), "{per_session}");
        // Users come back: many have more than one session.
        let returning =
            by_user.values().filter(|c| c.first().unwrap().session_cookie != c.last().unwrap().session_cookie);
        assert!(returning.count() > by_user.len() / 2);
    }

    #[test]
    fn about_two_percent_go_out_of_order_and_some_are_late() {
        let clicks = events(4, 50_000);
        let (mut behind, mut late, mut max_ts) = (0, 0, i64::MIN);
        for c in &clicks {
            if c.ts < max_ts {
                behind += 1;
                assert!(max_ts - c.ts <= MAX_HOLD_BACK_MS + MAX_CLICK_GAP_MS, "{}", max_ts - c.ts);
                // Late for a 1-minute window with check.py's 10 s grace (on
                // the events' overall order; per page, fewer are).
                if c.ts - c.ts % 60_000 + 60_000 <= max_ts - 10_000 {
                    late += 1;
                }
            }
            max_ts = max_ts.max(c.ts);
        }
        let share = f64::from(behind) / clicks.len() as f64;
        assert!((0.015..0.025).contains(&share), "{share}");
        assert!(late > 0 && late < behind, "{late} of {behind}");
    }

    #[test]
    fn stopping_drains_what_is_held_back() {
        let mut generator = Generator::new(5, 200, 40, None);
        let mut clicks: Vec<Click> = generator.by_ref().take(3000).collect();
        generator.stop();
        let drained: Vec<Click> = generator.collect();
        assert!(!drained.is_empty() && drained.len() < 200, "{}", drained.len());
        clicks.extend(drained);
        let distinct: HashSet<i64> = clicks.iter().map(|c| c.ts).collect();
        assert_eq!(distinct.len(), clicks.len());
    }

    #[test]
    fn page_names_extend_past_forty() {
        let generator = Generator::new(0, 5, 45, Some(0));
        assert_eq!(&generator.pages[..3], ["/", "/product/0", "/product/1"]);
        assert_eq!(generator.pages[39], "/cart/8");
        assert_eq!(generator.pages[40], "/cart/9");
        assert_eq!(generator.pages[41], "/product/10");
        assert_eq!(generator.pages.iter().collect::<HashSet<_>>().len(), 45);
    }
}
