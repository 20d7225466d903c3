//! The broker's metrics in Prometheus' text format, and the error code each
//! response is counted under.
//!
//! Each shard counts in its own [`weir_shards::ShardMetrics`] (plain cells);
//! the admin endpoint gathers every shard's [`ShardStats`] and renders them
//! here, one series per shard (label `shard`), and the consumer groups'
//! offsets, whose lag joins a coordinator's figures to a partition owner's.

use kafka_protocol::messages::*;
use std::collections::HashMap;
use std::fmt::Write;
use weir_shards::{GroupOffsetStats, HistogramSnapshot, ShardStats, LATENCY_BUCKETS_US};

/// The error code a response is counted under in `weir_requests_total`: its
/// top-level error code if that is not NONE, else the first non-NONE code of
/// its topics, partitions, groups or resources, else NONE (0).
pub trait ResponseErrorCode {
    fn error_code(&self) -> i16;
}

fn first_error(top: i16, codes: impl IntoIterator<Item = i16>) -> i16 {
    if top != 0 {
        return top;
    }
    codes.into_iter().find(|&c| c != 0).unwrap_or(0)
}

macro_rules! top_level_error_code {
    ($($response:ty),* $(,)?) => {$(
        impl ResponseErrorCode for $response {
            fn error_code(&self) -> i16 {
                self.error_code
            }
        }
    )*};
}

top_level_error_code!(
    ApiVersionsResponse,
    DescribeClusterResponse,
    JoinGroupResponse,
    SyncGroupResponse,
    HeartbeatResponse,
    InitProducerIdResponse,
    AddOffsetsToTxnResponse,
    EndTxnResponse,
    ConsumerGroupHeartbeatResponse,
    SaslHandshakeResponse,
    SaslAuthenticateResponse,
);

macro_rules! error_code_with {
    ($($response:ty => |$r:ident| $top:expr, $codes:expr;)*) => {$(
        impl ResponseErrorCode for $response {
            fn error_code(&self) -> i16 {
                let $r = self;
                first_error($top, $codes)
            }
        }
    )*};
}

error_code_with! {
    MetadataResponse => |r| r.error_code, r.topics.iter().map(|t| t.error_code);
    ProduceResponse => |r| 0, r.responses.iter().flat_map(|t| t.partition_responses.iter().map(|p| p.error_code));
    FetchResponse => |r| r.error_code, r.responses.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code));
    ListOffsetsResponse => |r| 0, r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code));
    OffsetForLeaderEpochResponse => |r| 0, r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code));
    CreateTopicsResponse => |r| 0, r.topics.iter().map(|t| t.error_code);
    DeleteTopicsResponse => |r| 0, r.responses.iter().map(|t| t.error_code);
    CreatePartitionsResponse => |r| 0, r.results.iter().map(|t| t.error_code);
    FindCoordinatorResponse => |r| r.error_code, r.coordinators.iter().map(|c| c.error_code);
    LeaveGroupResponse => |r| r.error_code, r.members.iter().map(|m| m.error_code);
    ListGroupsResponse => |r| r.error_code, [];
    OffsetCommitResponse => |r| 0, r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code));
    OffsetFetchResponse => |r| r.error_code, r.groups.iter().map(|g| g.error_code)
        .chain(r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)))
        .chain(r.groups.iter().flat_map(|g| g.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code))));
    DescribeGroupsResponse => |r| 0, r.groups.iter().map(|g| g.error_code);
    ConsumerGroupDescribeResponse => |r| 0, r.groups.iter().map(|g| g.error_code);
    DeleteGroupsResponse => |r| 0, r.results.iter().map(|g| g.error_code);
    OffsetDeleteResponse => |r| r.error_code, r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code));
    DeleteRecordsResponse => |r| 0, r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code));
    DescribeConfigsResponse => |r| 0, r.results.iter().map(|c| c.error_code);
    AlterConfigsResponse => |r| 0, r.responses.iter().map(|c| c.error_code);
    IncrementalAlterConfigsResponse => |r| 0, r.responses.iter().map(|c| c.error_code);
    AddPartitionsToTxnResponse => |r| r.error_code,
        r.results_by_topic_v3_and_below.iter()
            .chain(r.results_by_transaction.iter().flat_map(|t| &t.topic_results))
            .flat_map(|t| t.results_by_partition.iter().map(|p| p.partition_error_code));
    WriteTxnMarkersResponse => |r| 0,
        r.markers.iter().flat_map(|m| &m.topics).flat_map(|t| t.partitions.iter().map(|p| p.error_code));
    TxnOffsetCommitResponse => |r| 0, r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code));
    DescribeProducersResponse => |r| 0, r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code));
    DescribeTransactionsResponse => |r| 0, r.transaction_states.iter().map(|t| t.error_code);
    ListTransactionsResponse => |r| r.error_code, [];
    DescribeLogDirsResponse => |r| r.error_code, r.results.iter().map(|d| d.error_code);
    DescribeTopicPartitionsResponse => |r| 0, r.topics.iter().map(|t| t.error_code);
    DescribeUserScramCredentialsResponse => |r| r.error_code, r.results.iter().map(|u| u.error_code);
    AlterUserScramCredentialsResponse => |r| 0, r.results.iter().map(|u| u.error_code);
    CreateAclsResponse => |r| 0, r.results.iter().map(|a| a.error_code);
    DescribeAclsResponse => |r| r.error_code, [];
    DeleteAclsResponse => |r| 0, r.filter_results.iter().map(|f| f.error_code);
    ElectLeadersResponse => |r| r.error_code,
        r.replica_election_results.iter().flat_map(|t| t.partition_result.iter().map(|p| p.error_code));
    AlterPartitionReassignmentsResponse => |r| r.error_code,
        r.responses.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code));
    ListPartitionReassignmentsResponse => |r| r.error_code, [];
    DescribeQuorumResponse => |r| r.error_code, r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code));
    DescribeClientQuotasResponse => |r| r.error_code, [];
    AlterClientQuotasResponse => |r| 0, r.entries.iter().map(|e| e.error_code);
}

/// The name Kafka gives an API key, for the `api` label.
fn api_name(key: i16) -> String {
    ApiKey::try_from(key).map_or_else(|_| format!("ApiKey{key}"), |k| format!("{k:?}"))
}

/// A Prometheus label value: backslash, double quote and newline escaped.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// (name, type, help, value) of a per-shard series.
type ShardSeries = (&'static str, &'static str, &'static str, fn(&ShardStats) -> u64);
/// (name, help, histogram) of a per-shard histogram.
type ShardHistogram = (&'static str, &'static str, fn(&ShardStats) -> &HistogramSnapshot);
/// (name, help, value) of a per-partition gauge.
type PartitionSeries = (&'static str, &'static str, fn(&weir_shards::PartitionStats) -> String);

/// Renders every shard's figures; a shard that did not answer is reported
/// with `weir_shard_up 0` and nothing else.
pub fn render(shards: &[Option<ShardStats>]) -> String {
    let mut out = String::new();
    let answered = || shards.iter().flatten();
    family(&mut out, "weir_shard_up", "gauge", "1 if the shard answered and its Kafka listener is serving.");
    for (id, stats) in shards.iter().enumerate() {
        let up = stats.as_ref().is_some_and(|s| s.serving);
        let _ = writeln!(out, "weir_shard_up{{shard=\"{id}\"}} {}", u8::from(up));
    }
    family(&mut out, "weir_requests_total", "counter", "Requests answered, by API and error code (0: NONE).");
    for s in answered() {
        for ((key, code), n) in &s.requests {
            let _ = writeln!(
                out,
                "weir_requests_total{{shard=\"{}\",api=\"{}\",error_code=\"{code}\"}} {n}",
                s.shard,
                api_name(*key)
            );
        }
    }
    family(
        &mut out,
        "weir_shard_cpu_seconds_total",
        "counter",
        "CPU time of the shard's thread (its busy time), by mode.",
    );
    for s in answered() {
        for (mode, time) in [("user", s.cpu_time.0), ("system", s.cpu_time.1)] {
            let busy = seconds(u64::try_from(time.as_micros()).unwrap_or(u64::MAX));
            let _ = writeln!(out, "weir_shard_cpu_seconds_total{{shard=\"{}\",mode=\"{mode}\"}} {busy}", s.shard);
        }
    }
    let per_shard: [ShardSeries; 16] = [
        ("weir_bytes_in_total", "counter", "Request bytes read, framing included.", |s| s.bytes_in),
        ("weir_bytes_out_total", "counter", "Response bytes written, framing included.", |s| s.bytes_out),
        ("weir_connections_open", "gauge", "Client connections open on the shard.", |s| s.connections_open),
        ("weir_connections_accepted_total", "counter", "Client connections admitted.", |s| s.connections_accepted),
        (
            "weir_connections_idle_closed_total",
            "counter",
            "Connections closed after connections_max_idle_ms without a request.",
            |s| s.connections_idle_closed,
        ),
        (
            "weir_connections_sasl_closed_total",
            "counter",
            "Connections closed by SASL: a failed authentication, a request before it or after the session expired.",
            |s| s.connections_sasl_closed,
        ),
        (
            "weir_connections_tls_failed_total",
            "counter",
            "Connections closed by a failed TLS handshake (a client speaking plaintext, an untrusted certificate, ...).",
            |s| s.connections_tls_failed,
        ),
        (
            "weir_producer_state_replayed_bytes_total",
            "counter",
            "Log bytes read to rebuild producer state: the log after the newest snapshot.",
            |s| s.producer_state_replayed_bytes,
        ),
        (
            "weir_request_bytes_ignored_total",
            "counter",
            "Bytes after a request body, ignored as Kafka ignores them.",
            |s| s.request_bytes_ignored,
        ),
        (
            "weir_shard_mesh_messages_served_total",
            "counter",
            "Messages from other shards served: work a request needed from a shard other than its connection's.",
            |s| s.mesh_messages_served,
        ),
        (
            "weir_connections_refused_max_connections_total",
            "counter",
            "New connections closed at once: max_connections reached.",
            |s| s.refused_max_connections,
        ),
        (
            "weir_connections_refused_max_connections_per_ip_total",
            "counter",
            "New connections closed at once: max_connections_per_ip reached.",
            |s| s.refused_max_connections_per_ip,
        ),
        (
            "weir_shard_requests_in_flight",
            "gauge",
            "Kafka requests the shard is answering (long-poll fetches included).",
            |s| s.requests_in_flight,
        ),
        (
            "weir_shard_peer_requests_in_flight",
            "gauge",
            "Messages from other shards taken off the mesh and not answered yet.",
            |s| s.peer_requests_in_flight,
        ),
        (
            "weir_shard_appends_queued",
            "gauge",
            "Appends waiting for their partition's writer, the shard's partitions together.",
            |s| s.appends_queued,
        ),
        (
            "weir_under_replicated_partitions",
            "gauge",
            "Partitions the shard leads with fewer in-sync replicas than replicas (Kafka's UnderReplicatedPartitions).",
            |s| s.partitions.iter().filter(|p| p.leader && p.in_sync_replicas < p.replicas).count() as u64,
        ),
    ];
    for (name, kind, help, value) in per_shard {
        family(&mut out, name, kind, help);
        for s in answered() {
            let _ = writeln!(out, "{name}{{shard=\"{}\"}} {}", s.shard, value(s));
        }
    }
    let histograms: [ShardHistogram; 3] = [
        ("weir_produce_latency_seconds", "Produce requests, from decoded to answered.", |s| &s.produce_latency),
        ("weir_fetch_latency_seconds", "Fetch requests, from decoded to answered (long polls included).", |s| {
            &s.fetch_latency
        }),
        (
            "weir_shard_scheduling_delay_seconds",
            "How much later than asked a 100 ms timer ran: time the shard was busy with other tasks.",
            |s| &s.scheduling_delay,
        ),
    ];
    for (name, help, histogram) in histograms {
        family(&mut out, name, "histogram", help);
        for s in answered() {
            render_histogram(&mut out, name, s.shard, histogram(s));
        }
    }
    let partitions: [PartitionSeries; 7] = [
        ("weir_partition_log_end_offset", "The partition's log end offset.", |p| p.log_end_offset.to_string()),
        ("weir_partition_high_watermark", "The partition's high watermark: what its in-sync replicas hold.", |p| {
            p.high_watermark.to_string()
        }),
        ("weir_partition_log_start_offset", "The partition's log start offset.", |p| p.log_start_offset.to_string()),
        ("weir_partition_size_bytes", "Bytes of the partition's segments.", |p| p.size_bytes.to_string()),
        ("weir_partition_leader", "1 where this broker leads the partition, 0 where it follows.", |p| {
            u8::from(p.leader).to_string()
        }),
        ("weir_partition_replicas", "The partition's replicas.", |p| p.replicas.to_string()),
        ("weir_partition_in_sync_replicas", "The partition's in-sync replicas.", |p| p.in_sync_replicas.to_string()),
    ];
    for (name, help, value) in partitions {
        family(&mut out, name, "gauge", help);
        for s in answered() {
            for p in &s.partitions {
                let _ = writeln!(
                    out,
                    "{name}{{shard=\"{}\",topic=\"{}\",partition=\"{}\"}} {}",
                    s.shard,
                    label(&p.topic),
                    p.partition,
                    value(p)
                );
            }
        }
    }
    render_group_offsets(&mut out, shards);
    out
}

/// Each group's committed offsets (from the group's coordinator) and lag
/// behind the log end offset (from the partition's owner), as Kafka's
/// consumer-group tools show them. No lag for a partition whose owner did not
/// answer or for a committed offset below 0 (none).
fn render_group_offsets(out: &mut String, shards: &[Option<ShardStats>]) {
    let log_end: HashMap<(&str, i32), i64> = shards
        .iter()
        .flatten()
        .flat_map(|s| s.partitions.iter().map(|p| ((p.topic.as_str(), p.partition), p.high_watermark)))
        .collect();
    let offsets = || shards.iter().flatten().flat_map(|s| &s.group_offsets);
    let series = |o: &GroupOffsetStats| {
        format!("{{group=\"{}\",topic=\"{}\",partition=\"{}\"}}", label(&o.group), label(&o.topic), o.partition)
    };
    family(out, "weir_group_committed_offset", "gauge", "The group's committed offset of the partition.");
    for o in offsets() {
        let _ = writeln!(out, "weir_group_committed_offset{} {}", series(o), o.committed_offset);
    }
    family(out, "weir_group_lag", "gauge", "The partition's log end offset minus the group's committed offset.");
    for o in offsets().filter(|o| o.committed_offset >= 0) {
        if let Some(end) = log_end.get(&(o.topic.as_str(), o.partition)) {
            // The owner's figures may be older than the coordinator's: never below 0.
            let _ = writeln!(out, "weir_group_lag{} {}", series(o), (end - o.committed_offset).max(0));
        }
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn render_histogram(out: &mut String, name: &str, shard: usize, h: &HistogramSnapshot) {
    let mut cumulative = 0u64;
    for (i, count) in h.counts.iter().enumerate() {
        cumulative += count;
        let le = LATENCY_BUCKETS_US.get(i).map_or_else(|| "+Inf".to_string(), |&us| seconds(us));
        let _ = writeln!(out, "{name}_bucket{{shard=\"{shard}\",le=\"{le}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_sum{{shard=\"{shard}\"}} {}", seconds(h.sum_us));
    let _ = writeln!(out, "{name}_count{{shard=\"{shard}\"}} {cumulative}");
}

/// Microseconds as decimal seconds, without float rounding noise.
fn seconds(us: u64) -> String {
    let (whole, frac) = (us / 1_000_000, us % 1_000_000);
    if frac == 0 {
        return whole.to_string();
    }
    format!("{whole}.{frac:06}").trim_end_matches('0').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn seconds_print_exactly() {
        assert_eq!(seconds(500), "0.0005");
        assert_eq!(seconds(2_500_000), "2.5");
        assert_eq!(seconds(30_000_000), "30");
    }

    #[test]
    fn error_code_is_the_first_error() {
        assert_eq!(first_error(0, [0, 3, 6]), 3);
        assert_eq!(first_error(15, [3]), 15);
        assert_eq!(first_error(0, []), 0);
    }

    #[test]
    fn renders_counters_histograms_and_partitions() {
        let stats = ShardStats {
            requests: vec![((0, 0), 5), ((0, 3), 1)],
            bytes_in: 100,
            bytes_out: 50,
            connections_open: 2,
            connections_accepted: 3,
            connections_idle_closed: 1,
            connections_sasl_closed: 4,
            connections_tls_failed: 2,
            producer_state_replayed_bytes: 77,
            request_bytes_ignored: 3,
            mesh_messages_served: 5,
            produce_latency: HistogramSnapshot {
                counts: {
                    let mut c = vec![0; LATENCY_BUCKETS_US.len() + 1];
                    c[0] = 2;
                    c[LATENCY_BUCKETS_US.len()] = 1;
                    c
                },
                sum_us: 31_000_000,
            },
            cpu_time: (Duration::from_micros(1_250_000), Duration::from_millis(20)),
            requests_in_flight: 4,
            peer_requests_in_flight: 2,
            appends_queued: 9,
            partitions: vec![weir_shards::PartitionStats {
                topic: "t".into(),
                partition: 0,
                log_start_offset: 0,
                high_watermark: 7,
                log_end_offset: 9,
                size_bytes: 4096,
                leader: true,
                replicas: 3,
                in_sync_replicas: 2,
            }],
            ..idle_shard(1)
        };
        let text = render(&[None, Some(stats)]);
        for sample in [
            "weir_shard_up{shard=\"0\"} 0",
            "weir_shard_up{shard=\"1\"} 1",
            "weir_requests_total{shard=\"1\",api=\"Produce\",error_code=\"3\"} 1",
            "weir_produce_latency_seconds_bucket{shard=\"1\",le=\"0.0005\"} 2",
            "weir_produce_latency_seconds_bucket{shard=\"1\",le=\"+Inf\"} 3",
            "weir_produce_latency_seconds_count{shard=\"1\"} 3",
            "weir_partition_log_end_offset{shard=\"1\",topic=\"t\",partition=\"0\"} 9",
            "weir_partition_high_watermark{shard=\"1\",topic=\"t\",partition=\"0\"} 7",
            "weir_partition_in_sync_replicas{shard=\"1\",topic=\"t\",partition=\"0\"} 2",
            "weir_under_replicated_partitions{shard=\"1\"} 1",
            "weir_partition_size_bytes{shard=\"1\",topic=\"t\",partition=\"0\"} 4096",
            "weir_connections_idle_closed_total{shard=\"1\"} 1",
            "weir_connections_sasl_closed_total{shard=\"1\"} 4",
            "weir_connections_tls_failed_total{shard=\"1\"} 2",
            "weir_producer_state_replayed_bytes_total{shard=\"1\"} 77",
            "weir_request_bytes_ignored_total{shard=\"1\"} 3",
            "weir_shard_mesh_messages_served_total{shard=\"1\"} 5",
            "weir_shard_cpu_seconds_total{shard=\"1\",mode=\"user\"} 1.25",
            "weir_shard_cpu_seconds_total{shard=\"1\",mode=\"system\"} 0.02",
            "weir_shard_requests_in_flight{shard=\"1\"} 4",
            "weir_shard_peer_requests_in_flight{shard=\"1\"} 2",
            "weir_shard_appends_queued{shard=\"1\"} 9",
            "weir_shard_scheduling_delay_seconds_count{shard=\"1\"} 0",
        ] {
            assert!(text.lines().any(|line| line == sample), "no {sample} in\n{text}");
        }
    }

    fn idle_shard(shard: usize) -> ShardStats {
        let empty = HistogramSnapshot { counts: vec![0; LATENCY_BUCKETS_US.len() + 1], sum_us: 0 };
        ShardStats {
            shard,
            serving: true,
            requests: Vec::new(),
            bytes_in: 0,
            bytes_out: 0,
            connections_open: 0,
            connections_accepted: 0,
            refused_max_connections: 0,
            refused_max_connections_per_ip: 0,
            connections_idle_closed: 0,
            connections_sasl_closed: 0,
            connections_tls_failed: 0,
            producer_state_replayed_bytes: 0,
            request_bytes_ignored: 0,
            mesh_messages_served: 0,
            produce_latency: empty.clone(),
            fetch_latency: empty.clone(),
            cpu_time: (Duration::ZERO, Duration::ZERO),
            requests_in_flight: 0,
            peer_requests_in_flight: 0,
            appends_queued: 0,
            scheduling_delay: empty,
            partitions: Vec::new(),
            group_offsets: Vec::new(),
        }
    }

    #[test]
    fn group_lag_joins_the_coordinators_offsets_to_the_owners_log_ends() {
        let partition = |partition, high_watermark| weir_shards::PartitionStats {
            topic: "t".into(),
            partition,
            log_start_offset: 0,
            high_watermark,
            log_end_offset: high_watermark,
            size_bytes: 0,
            leader: true,
            replicas: 1,
            in_sync_replicas: 1,
        };
        let committed = |group: &str, partition, committed_offset| GroupOffsetStats {
            group: group.into(),
            topic: "t".into(),
            partition,
            committed_offset,
        };
        // Shard 0 coordinates the groups; shard 1 owns partition 0, shard 2
        // (down) partition 1.
        let coordinator = ShardStats {
            group_offsets: vec![
                committed("g", 0, 30),
                committed("g", 1, 5),
                committed("late", 0, 120),
                committed("n", 0, -1),
            ],
            ..idle_shard(0)
        };
        let owner = ShardStats { partitions: vec![partition(0, 100)], ..idle_shard(1) };
        let text = render(&[Some(coordinator), Some(owner), None]);
        assert!(text.contains("weir_group_committed_offset{group=\"g\",topic=\"t\",partition=\"0\"} 30"), "{text}");
        assert!(text.contains("weir_group_committed_offset{group=\"g\",topic=\"t\",partition=\"1\"} 5"));
        assert!(text.contains("weir_group_lag{group=\"g\",topic=\"t\",partition=\"0\"} 70"));
        assert!(!text.contains("weir_group_lag{group=\"g\",topic=\"t\",partition=\"1\"}"), "owner down: no lag");
        assert!(text.contains("weir_group_lag{group=\"late\",topic=\"t\",partition=\"0\"} 0"), "never below 0");
        assert!(!text.contains("weir_group_lag{group=\"n\""), "no lag without a committed offset");
    }
}
