//! The hostile crowd of a load run (`weir bench crowd`, tools/tests/broker/load.rs):
//! many connections that hold a place at the broker without useful work, to
//! show that its limits keep a real client's traffic flowing and its memory
//! bounded.
//!
//! - idle: connects, asks ApiVersions once, then holds the connection.
//! - garbage: sends bytes that are no Kafka request; the broker must close it.
//! - slow readers: pipeline Metadata and Fetch requests as fast as the socket
//!   takes them and never read an answer (small socket buffers, so the
//!   broker's writes stall soon and the crowd costs the kernel little).
//!
//! [`run`] measures an e2e run alone, then the same run among the crowd.

use crate::params::{Mode, Params};
use crate::report::Report;
use anyhow::{bail, Context};
use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, FetchRequest, MetadataRequest, RequestHeader, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_client::codec::encode_request;

/// Requests one slow reader pipelines before it stops writing.
const SLOW_REQUESTS: usize = 256;
/// Socket buffer sizes of a slow reader.
const SLOW_SOCKET_BUFFER_BYTES: libc::c_int = 16 << 10;
/// How long the broker gets to close a garbage connection.
const GARBAGE_CLOSE_WAIT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How many connections of each kind.
#[derive(Clone, Copy, Debug, clap::Args, serde::Serialize)]
pub struct CrowdSize {
    /// Connections that ask ApiVersions once and then hold their place.
    #[arg(long, default_value_t = 5000)]
    pub idle: usize,
    /// Connections that send bytes that are no Kafka request.
    #[arg(long, default_value_t = 500)]
    pub garbage: usize,
    /// Connections that pipeline Metadata and Fetch requests and never read the answers.
    #[arg(long, default_value_t = 500)]
    pub slow: usize,
}

/// `weir bench crowd`: an e2e run alone, then among a crowd.
#[derive(clap::Args, Clone, Debug)]
pub struct CrowdArgs {
    #[command(flatten)]
    pub params: Params,
    #[command(flatten)]
    pub size: CrowdSize,
    /// Process id of the broker, to report its resident memory (local brokers only).
    #[arg(long)]
    pub broker_pid: Option<u32>,
}

/// The figures of a crowd run.
pub struct CrowdReport {
    pub alone: Report,
    pub among_crowd: Report,
    pub size: CrowdSize,
    pub gathered_s: f64,
    /// Crowd connections the broker held at the end of the crowded run.
    pub held: usize,
    pub idle_open: usize,
    pub garbage_closed: usize,
    pub slow_closed: usize,
    /// Broker VmRSS: after the run alone, and the peak during the crowded run.
    pub rss_alone: Option<u64>,
    pub rss_peak_among_crowd: Option<u64>,
}

/// Runs `args.params` as an e2e run alone, gathers the crowd, runs it again.
/// Slow readers fetch the run's topic.
pub fn run(args: &CrowdArgs) -> anyhow::Result<CrowdReport> {
    let open_files = raise_open_files_limit();
    let needed = (args.size.idle + args.size.garbage + args.size.slow) as u64 + 100;
    if open_files < needed {
        bail!("the open-file limit is {open_files}; the crowd needs {needed} (raise `ulimit -Hn`)");
    }
    let alone = crate::run::run(Mode::E2e, &args.params, false)?;
    let rss_alone = args.broker_pid.map(rss_bytes).transpose()?;
    let sampler = args.broker_pid.map(RssPeak::sample);
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&args.params.bootstrap)?
        .next()
        .context("--bootstrap resolves to no address")?;
    let started = Instant::now();
    let crowd = Crowd::gather(addr, args.size, &args.params.topic)?;
    let gathered_s = started.elapsed().as_secs_f64();
    let among_crowd = crate::run::run(Mode::E2e, &args.params, false)?;
    Ok(CrowdReport {
        alone,
        among_crowd,
        size: args.size,
        gathered_s,
        held: crowd.held(),
        idle_open: crowd.idle_open(),
        garbage_closed: crowd.garbage_closed,
        slow_closed: crowd.slow_closed(),
        rss_alone,
        rss_peak_among_crowd: sampler.map(RssPeak::stop),
    })
}

impl CrowdReport {
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let mib = |b: Option<u64>| b.map_or("-".to_string(), |b| format!("{} MiB", b >> 20));
        let (s, total) = (self.size, self.size.idle + self.size.garbage + self.size.slow);
        let _ = writeln!(
            out,
            "crowd: {total} connections ({} idle, {} garbage, {} slow readers) opened in {:.1} s",
            s.idle, s.garbage, s.slow, self.gathered_s
        );
        let _ = writeln!(
            out,
            "  held at the end: {} (idle {}/{}); garbage closed {}/{}; slow readers closed {}/{}",
            self.held, self.idle_open, s.idle, self.garbage_closed, s.garbage, self.slow_closed, s.slow
        );
        let _ = writeln!(
            out,
            "  broker RSS: {} after the run alone, {} peak among the crowd",
            mib(self.rss_alone),
            mib(self.rss_peak_among_crowd)
        );
        for (name, report) in [("alone", &self.alone), ("among the crowd", &self.among_crowd)] {
            let rate = |t: &Option<crate::report::Throughput>| {
                t.as_ref().map_or("-".to_string(), |t| format!("{:.0} msg/s {:.1} MB/s", t.messages_per_s, t.mb_per_s))
            };
            let p99 = report.e2e_latency.as_ref().map_or("-".to_string(), |l| format!("{:.2} ms", l.p99_ms));
            let _ = writeln!(
                out,
                "  real client {name}: produce {}, consume {}, e2e p99 {p99}",
                rate(&report.produce),
                rate(&report.consume)
            );
        }
        out
    }
}

/// The highest VmRSS of a process, sampled every 50 ms until stopped.
pub struct RssPeak {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    sampler: std::thread::JoinHandle<()>,
}

impl RssPeak {
    pub fn sample(pid: u32) -> RssPeak {
        let (peak, stop) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
        let sampler = std::thread::spawn({
            let (peak, stop) = (peak.clone(), stop.clone());
            move || {
                while !stop.load(Ordering::SeqCst) {
                    if let Ok(rss) = rss_bytes(pid) {
                        peak.fetch_max(rss, Ordering::SeqCst);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        });
        RssPeak { peak, stop, sampler }
    }

    /// Stops sampling; the peak seen.
    pub fn stop(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.sampler.join();
        self.peak.load(Ordering::SeqCst)
    }
}

/// The crowd's connections, held until it is dropped.
pub struct Crowd {
    idle: Vec<TcpStream>,
    slow: Vec<TcpStream>,
    /// Garbage connections the broker closed within `GARBAGE_CLOSE_WAIT`.
    pub garbage_closed: usize,
    /// Request bytes the slow readers got into their sockets.
    pub slow_bytes_sent: u64,
}

impl Crowd {
    /// Opens every connection of `size` to `addr`. Slow readers fetch
    /// partition 0 of `topic` from its start, 64 KiB at a time: give it a few
    /// MiB so that their answers outgrow the socket buffers.
    pub fn gather(addr: SocketAddr, size: CrowdSize, topic: &str) -> anyhow::Result<Crowd> {
        let mut idle = Vec::with_capacity(size.idle);
        for _ in 0..size.idle {
            let mut stream = connect(addr)?;
            stream.write_all(&API_VERSIONS_V0)?;
            read_answer(&mut stream).context("an idle connection's ApiVersions was not answered")?;
            idle.push(stream);
        }
        let mut garbage = Vec::with_capacity(size.garbage);
        for i in 0..size.garbage {
            let mut stream = connect(addr)?;
            // A broker may close before all of it is written: that is the point.
            let _ = stream.write_all(GARBAGE[i % GARBAGE.len()]);
            garbage.push(stream);
        }
        let deadline = Instant::now() + GARBAGE_CLOSE_WAIT;
        let garbage_closed =
            garbage.iter().filter(|s| peer_closed(s, deadline.saturating_duration_since(Instant::now()))).count();
        let requests = slow_requests(topic)?;
        let mut slow = Vec::with_capacity(size.slow);
        let mut slow_bytes_sent = 0;
        for _ in 0..size.slow {
            let mut stream = connect(addr)?;
            small_buffers(&stream)?;
            stream.set_nonblocking(true)?;
            slow_bytes_sent += write_until_blocked(&mut stream, &requests)?;
            slow.push(stream);
        }
        Ok(Crowd { idle, slow, garbage_closed, slow_bytes_sent })
    }

    /// Connections of the crowd the broker holds open now.
    pub fn held(&self) -> usize {
        self.idle.iter().chain(&self.slow).filter(|s| !peer_closed(s, Duration::ZERO)).count()
    }

    /// Idle connections the broker holds open now.
    pub fn idle_open(&self) -> usize {
        self.idle.iter().filter(|s| !peer_closed(s, Duration::ZERO)).count()
    }

    /// Slow readers the broker has closed.
    pub fn slow_closed(&self) -> usize {
        self.slow.iter().filter(|s| peer_closed(s, Duration::ZERO)).count()
    }
}

fn connect(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(CONNECT_TIMEOUT))?;
    stream.set_write_timeout(Some(CONNECT_TIMEOUT))?;
    Ok(stream)
}

/// ApiVersions v0, correlation id 7, no client id.
const API_VERSIONS_V0: [u8; 14] = [0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 7, 0xff, 0xff];

/// Each garbage connection sends one of these.
const GARBAGE: [&[u8]; 4] = [
    // A negative frame length.
    &[0xff, 0xff, 0xff, 0xf0, 1, 2, 3],
    // An API key that does not exist.
    &[0, 0, 0, 10, 0x7f, 0x7f, 0, 0, 0, 0, 0, 1, 0xff, 0xff],
    // Metadata v9 whose client id claims more bytes than the frame has.
    &[0, 0, 0, 12, 0, 3, 0, 9, 0, 0, 0, 1, 0x7f, 0xff, 0, 0],
    // A frame length over socket.request.max.bytes (2 GiB - 1).
    &[0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0],
];

fn read_answer(stream: &mut TcpStream) -> anyhow::Result<()> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let len = i32::from_be_bytes(len);
    if !(4..1 << 20).contains(&len) {
        bail!("answer of {len} bytes");
    }
    stream.read_exact(&mut vec![0u8; len as usize])?;
    Ok(())
}

/// What one slow reader writes: Metadata (all topics) and Fetch requests in turn.
fn slow_requests(topic: &str) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    for id in 0..SLOW_REQUESTS as i32 {
        if id % 2 == 0 {
            let header = RequestHeader::default()
                .with_request_api_key(ApiKey::Metadata as i16)
                .with_request_api_version(9)
                .with_correlation_id(id);
            out.extend_from_slice(&encode_request(&header, ApiKey::Metadata, &MetadataRequest::default())?);
        } else {
            out.extend_from_slice(&fetch_frame(topic, id, 0, 64 << 10)?);
        }
    }
    Ok(out)
}

/// A Fetch v12 frame for partition 0 of `topic` from offset 0, waiting up to
/// `max_wait_ms` for a first byte.
pub fn fetch_frame(
    topic: &str,
    correlation_id: i32,
    max_wait_ms: i32,
    partition_max_bytes: i32,
) -> anyhow::Result<Bytes> {
    let version = 12;
    let request = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(partition_max_bytes)])]);
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Fetch as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id);
    encode_request(&header, ApiKey::Fetch, &request)
}

fn small_buffers(stream: &TcpStream) -> anyhow::Result<()> {
    for option in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        let size = SLOW_SOCKET_BUFFER_BYTES;
        let len = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: setsockopt with a valid int option value on a descriptor `stream` owns.
        let set = unsafe {
            libc::setsockopt(stream.as_raw_fd(), libc::SOL_SOCKET, option, std::ptr::addr_of!(size).cast(), len)
        };
        if set != 0 {
            return Err(std::io::Error::last_os_error()).context("setting a slow reader's socket buffers");
        }
    }
    Ok(())
}

/// Writes as much of `bytes` as a non-blocking socket takes now.
fn write_until_blocked(stream: &mut TcpStream, mut bytes: &[u8]) -> anyhow::Result<u64> {
    let mut sent = 0;
    while !bytes.is_empty() {
        match stream.write(bytes) {
            Ok(n) => {
                sent += n as u64;
                bytes = &bytes[n..];
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => return Err(e).context("a slow reader's write failed"),
        }
    }
    Ok(sent)
}

/// Whether the broker closed (or reset) the connection, waiting up to `wait`;
/// unread answers do not hide a close.
fn peer_closed(stream: &TcpStream, wait: Duration) -> bool {
    let mut fd = libc::pollfd { fd: stream.as_raw_fd(), events: libc::POLLRDHUP, revents: 0 };
    // SAFETY: one valid pollfd for a descriptor `stream` owns.
    let ready = unsafe { libc::poll(&mut fd, 1, wait.as_millis().min(i32::MAX as u128) as i32) };
    ready > 0 && fd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
}

/// Raises this process's open-file limit to its hard limit (a crowd needs a
/// descriptor per connection); returns the limit now in force.
pub fn raise_open_files_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    limit.rlim_cur
}

/// A process's resident memory (`VmRSS` of /proc/PID/status), in bytes.
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| format!("process {pid}"))?;
    let kib = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).context("no VmRSS line")?;
    Ok(kib.trim().trim_end_matches("kB").trim().parse::<u64>()? * 1024)
}
