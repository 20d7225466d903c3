//! A shard's counters and histograms, and the figures the admin endpoint
//! gathers from every shard.

use super::{Role, Shard};
use crate::messages::ShardMessage;
use crate::reply;
use futures::future::{join_all, select, Either};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::pin::pin;
use std::rc::Rc;
use std::time::Duration;

/// Upper bounds, in microseconds, of the latency histogram buckets; one more
/// bucket (+Inf) holds the rest.
pub const LATENCY_BUCKETS_US: [u64; 15] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000, 30_000_000,
];

/// A latency histogram of one shard: a count per bucket and the sum.
#[derive(Default)]
pub struct Histogram {
    counts: [Cell<u64>; LATENCY_BUCKETS_US.len() + 1],
    sum_us: Cell<u64>,
}

impl Histogram {
    pub fn record(&self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BUCKETS_US.iter().position(|&bound| us <= bound).unwrap_or(LATENCY_BUCKETS_US.len());
        bump(&self.counts[bucket], 1);
        bump(&self.sum_us, us);
    }

    fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot { counts: self.counts.iter().map(Cell::get).collect(), sum_us: self.sum_us.get() }
    }
}

/// A histogram's figures: `counts[i]` fell in bucket `i` (not cumulative).
#[derive(Clone, Debug, Default)]
pub struct HistogramSnapshot {
    pub counts: Vec<u64>,
    pub sum_us: u64,
}

fn bump(cell: &Cell<u64>, n: u64) {
    cell.set(cell.get().saturating_add(n));
}

/// A count of pieces of work in progress on one shard: each is counted while
/// the guard [`InFlight::enter`] returns lives, however its task ends.
#[derive(Default)]
pub struct InFlight(Rc<Cell<u64>>);

impl InFlight {
    pub fn enter(&self) -> InFlightGuard {
        bump(&self.0, 1);
        InFlightGuard(self.0.clone())
    }

    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

pub struct InFlightGuard(Rc<Cell<u64>>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        debug_assert!(self.0.get() > 0);
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// The counters of one shard, moved by its connections and handlers. Plain
/// cells: only the shard's own thread touches them, and nothing locks.
#[derive(Default)]
pub struct ShardMetrics {
    /// The shard's Kafka listener is accepting connections.
    pub serving: Cell<bool>,
    /// Requests answered, by (API key, error code).
    requests: RefCell<BTreeMap<(i16, i16), u64>>,
    bytes_in: Cell<u64>,
    bytes_out: Cell<u64>,
    connections_open: Cell<u64>,
    connections_accepted: Cell<u64>,
    refused_max_connections: Cell<u64>,
    refused_max_connections_per_ip: Cell<u64>,
    connections_idle_closed: Cell<u64>,
    /// Closed by SASL: a failed authentication, a request before it or after the session expired.
    connections_sasl_closed: Cell<u64>,
    /// Closed by a failed TLS handshake (or none within its time).
    connections_tls_failed: Cell<u64>,
    /// Log bytes read to rebuild producer state (the tail after a snapshot).
    producer_state_replayed_bytes: Cell<u64>,
    /// Bytes after a request body, ignored as Kafka ignores them.
    request_bytes_ignored: Cell<u64>,
    /// Messages from other shards taken off the mesh (the admin endpoint's
    /// requests for figures left out): the cost of work done off its shard.
    mesh_messages_served: Cell<u64>,
    pub produce_latency: Histogram,
    pub fetch_latency: Histogram,
    /// Kafka requests being answered (from decoded to answered; long polls included).
    pub requests_in_flight: InFlight,
    /// Messages from other shards being served (taken off the mesh, not answered yet).
    pub peer_requests_in_flight: InFlight,
    /// How much later than asked a periodic timer ran: time the shard's
    /// thread was too busy with other tasks to run it.
    pub scheduling_delay: Histogram,
}

impl ShardMetrics {
    pub fn count_request(&self, api_key: i16, error_code: i16) {
        *self.requests.borrow_mut().entry((api_key, error_code)).or_insert(0) += 1;
    }
    pub fn add_bytes_in(&self, n: usize) {
        bump(&self.bytes_in, n as u64);
    }
    pub fn add_bytes_out(&self, n: usize) {
        bump(&self.bytes_out, n as u64);
    }
    pub fn connection_opened(&self) {
        bump(&self.connections_accepted, 1);
        bump(&self.connections_open, 1);
    }
    pub fn connection_closed(&self) {
        debug_assert!(self.connections_open.get() > 0);
        self.connections_open.set(self.connections_open.get().saturating_sub(1));
    }
    pub fn connection_refused(&self, why: crate::runtime::ConnectionRefused) {
        match why {
            crate::runtime::ConnectionRefused::MaxConnections => bump(&self.refused_max_connections, 1),
            crate::runtime::ConnectionRefused::MaxConnectionsPerIp => bump(&self.refused_max_connections_per_ip, 1),
        }
    }
    pub fn connection_idle_closed(&self) {
        bump(&self.connections_idle_closed, 1);
    }
    pub fn connection_sasl_closed(&self) {
        bump(&self.connections_sasl_closed, 1);
    }
    pub fn connection_tls_failed(&self) {
        bump(&self.connections_tls_failed, 1);
    }
    pub fn add_producer_state_replayed_bytes(&self, n: u64) {
        bump(&self.producer_state_replayed_bytes, n);
    }
    pub fn add_request_bytes_ignored(&self, n: usize) {
        bump(&self.request_bytes_ignored, n as u64);
    }
    pub fn mesh_message_served(&self) {
        bump(&self.mesh_messages_served, 1);
    }
}

/// What one shard reports to the admin endpoint.
#[derive(Clone, Debug)]
pub struct ShardStats {
    pub shard: usize,
    pub serving: bool,
    /// ((API key, error code), requests), sorted.
    pub requests: Vec<((i16, i16), u64)>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub connections_open: u64,
    pub connections_accepted: u64,
    pub refused_max_connections: u64,
    pub refused_max_connections_per_ip: u64,
    pub connections_idle_closed: u64,
    pub connections_sasl_closed: u64,
    pub connections_tls_failed: u64,
    pub producer_state_replayed_bytes: u64,
    pub request_bytes_ignored: u64,
    pub mesh_messages_served: u64,
    pub produce_latency: HistogramSnapshot,
    pub fetch_latency: HistogramSnapshot,
    /// CPU time of the shard's thread: (user, system).
    pub cpu_time: (Duration, Duration),
    pub requests_in_flight: u64,
    pub peer_requests_in_flight: u64,
    /// Appends waiting for their partition's writer, all partitions together.
    pub appends_queued: u64,
    pub scheduling_delay: HistogramSnapshot,
    /// The partitions this shard owns, sorted.
    pub partitions: Vec<PartitionStats>,
    /// The committed offsets of the groups this shard coordinates, sorted.
    pub group_offsets: Vec<GroupOffsetStats>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupOffsetStats {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub committed_offset: i64,
}

#[derive(Clone, Debug)]
pub struct PartitionStats {
    pub topic: String,
    pub partition: i32,
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub log_end_offset: i64,
    pub size_bytes: u64,
    /// Whether this broker leads it (else it follows).
    pub leader: bool,
    /// Its replicas and in-sync replicas in the metadata image.
    pub replicas: usize,
    pub in_sync_replicas: usize,
}

/// How long the admin endpoint waits for a shard's figures.
const STATS_TIMEOUT: Duration = Duration::from_secs(2);

impl Shard {
    /// This shard's counters, the figures of the partitions it owns and the
    /// offsets of the groups it coordinates. Runs on the shard's own thread
    /// (its CPU time is read here).
    pub fn stats(&self) -> ShardStats {
        let m = &self.metrics;
        let open = self.partitions.borrow().all_open();
        let appends_queued = open.iter().map(|p| p.log.queued_appends() as u64).sum();
        let snapshot = self.metadata();
        let partitions = open
            .iter()
            .map(|p| {
                let state = snapshot.partition(&p.topic, p.index);
                PartitionStats {
                    topic: p.topic.clone(),
                    partition: p.index,
                    log_start_offset: p.log.log_start_offset(),
                    high_watermark: p.log.high_watermark(),
                    log_end_offset: p.log.log_end_offset(),
                    size_bytes: p.log.size_bytes(),
                    leader: matches!(p.role.get(), Role::Leader(_)),
                    replicas: state.map_or(1, |s| s.replicas.len()),
                    in_sync_replicas: state.map_or(1, |s| s.isr.len()),
                }
            })
            .collect();
        let mut group_offsets: Vec<GroupOffsetStats> = self
            .groups
            .every_committed_offset()
            .into_iter()
            .map(|(group, topic, partition, committed_offset)| GroupOffsetStats {
                group,
                topic,
                partition,
                committed_offset,
            })
            .collect();
        group_offsets.sort();
        ShardStats {
            shard: self.id,
            serving: m.serving.get(),
            requests: m.requests.borrow().iter().map(|(k, v)| (*k, *v)).collect(),
            bytes_in: m.bytes_in.get(),
            bytes_out: m.bytes_out.get(),
            connections_open: m.connections_open.get(),
            connections_accepted: m.connections_accepted.get(),
            refused_max_connections: m.refused_max_connections.get(),
            refused_max_connections_per_ip: m.refused_max_connections_per_ip.get(),
            connections_idle_closed: m.connections_idle_closed.get(),
            connections_sasl_closed: m.connections_sasl_closed.get(),
            connections_tls_failed: m.connections_tls_failed.get(),
            producer_state_replayed_bytes: m.producer_state_replayed_bytes.get(),
            request_bytes_ignored: m.request_bytes_ignored.get(),
            mesh_messages_served: m.mesh_messages_served.get(),
            produce_latency: m.produce_latency.snapshot(),
            fetch_latency: m.fetch_latency.snapshot(),
            cpu_time: crate::runtime::thread_cpu_time(),
            requests_in_flight: m.requests_in_flight.get(),
            peer_requests_in_flight: m.peer_requests_in_flight.get(),
            appends_queued,
            scheduling_delay: m.scheduling_delay.snapshot(),
            partitions,
            group_offsets,
        }
    }

    /// Every shard's stats, in shard order; `None` for a shard that did not
    /// answer within `STATS_TIMEOUT`.
    pub async fn gather_stats(&self) -> Vec<Option<ShardStats>> {
        let ask = |peer: usize| async move {
            if peer == self.id {
                return Some(self.stats());
            }
            let asked = async {
                let (reply, answer) = reply::channel();
                self.peers.send_to(peer, ShardMessage::Stats { reply }).await.ok()?;
                answer.await.ok()
            };
            match select(pin!(asked), pin!(weir_runtime::clock::sleep(STATS_TIMEOUT))).await {
                Either::Left((stats, _)) => stats,
                Either::Right(_) => None,
            }
        };
        join_all((0..self.shard_count).map(ask)).await
    }
}
