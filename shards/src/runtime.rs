//! Starting and stopping the shards: one pinned glommio executor per shard.

use crate::config::{BrokerConfig, Listener};
use crate::controller::Controller;
use crate::deleted_dirs;
use crate::listen::{self, ShardListener};
use crate::messages::ShardMessage;
use crate::metadata::MetadataStore;
use crate::ownership::CONTROLLER_SHARD;
use crate::replication::Fetchers;
use crate::reply;
use crate::shard::{Shard, SharedState};
use crate::throttle::QuotaRates;
use futures::channel::oneshot;
use futures::future::{select, Either, FutureExt, LocalBoxFuture, Shared};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, Once};
use std::time::{Duration, Instant};
use weir_quorum::QuorumConfig;
use weir_runtime::channels::channel_mesh::MeshBuilder;
use weir_runtime::channels::shared_channel::ConnectedReceiver;
use weir_runtime::clock::TestClock;
use weir_runtime::{
    CpuSet, Latency, LocalExecutorBuilder, LocalExecutorPoolBuilder, Placement, PoolPlacement, Shares, TaskQueueHandle,
};

/// Messages one shard may have queued for another before senders wait.
const MESH_CHANNEL_CAPACITY: usize = 1024;
/// How often group sessions and rebalance deadlines are checked.
const GROUP_TICK: Duration = Duration::from_millis(100);
/// Kafka checks for timed-out transactions every 10 s; a finer tick ends them closer to their timeout.
const TRANSACTION_TICK: Duration = Duration::from_millis(500);
/// Shortest interval between two retention or compaction passes.
const MIN_MAINTENANCE_INTERVAL_MS: u64 = 10;
/// How often each shard measures how late its timers run.
const SCHEDULING_PROBE_INTERVAL: Duration = Duration::from_millis(100);
/// How often each shard looks whether the broker was asked to stop.
const STOP_POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How long the other shards have to stop after one panicked; then the
/// process exits without waiting for them (the logs recover from that too).
const PANIC_STOP_GRACE: Duration = Duration::from_secs(10);

#[derive(thiserror::Error, Debug)]
pub enum RuntimeError {
    #[error("{0}")]
    Setup(String),
    #[error("shard failed: {0}")]
    Shard(String),
}

/// Resolves when the broker is asked to stop. Cheap to clone; it belongs to
/// one shard (see `watch_for_stop`).
#[derive(Clone)]
pub struct ShutdownSignal(Shared<oneshot::Receiver<()>>);

impl ShutdownSignal {
    pub async fn wait(&self) {
        // A dropped sender also means stop.
        let _ = self.0.clone().await;
    }
}

/// Runs the broker until SIGINT or SIGTERM: claims every listener's address
/// (see [`listen`]), starts one executor per shard, recovers each shard's
/// partitions, binds each shard's listeners, then runs `serve` on every
/// shard. Once every shard listens, the bound addresses are reported
/// ([`listen::report`]).
/// If any shard's `serve` fails, or any shard thread panics, every shard is
/// stopped and the error returned. A broker of a cluster first runs the
/// controlled shutdown ([`wait_for_handover`]). A second signal exits at
/// once (the logs recover from that too).
pub fn run<F, Fut>(config: BrokerConfig, serve: F) -> Result<(), RuntimeError>
where
    F: Fn(Rc<Shard>, Vec<ShardListener>, ShutdownSignal) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), String>> + 'static,
{
    let mut config = config;
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| RuntimeError::Setup(format!("cannot create data directory {}: {e}", config.data_dir.display())))?;
    // glommio opens directories by absolute path only: a relative one fails
    // later, partition by partition, with EBADF.
    config.data_dir = std::fs::canonicalize(&config.data_dir).map_err(|e| {
        RuntimeError::Setup(format!("cannot resolve data directory {}: {e}", config.data_dir.display()))
    })?;
    check_io_uring()?;
    let placement = placement(config.shard_count(), config.cpus().map_err(RuntimeError::Setup)?)?;
    let listeners = config.listeners().map_err(RuntimeError::Setup)?;
    let claims = (listeners.iter())
        .map(|l| listen::claim(&l.address, listen::CLAIM_WAIT))
        .collect::<Result<Vec<_>, _>>()
        .map_err(RuntimeError::Setup)?;
    // Only once the addresses are this process's: a broker that fails to
    // claim leaves the one serving alone.
    listen::forget(&config.data_dir);
    let addresses: Vec<SocketAddr> = claims.iter().map(listen::Claim::address).collect();
    config.bound_listeners = (listeners.into_iter().zip(&addresses))
        .map(|(listener, bound)| Listener { address: with_port(&listener.address, bound.port()), ..listener })
        .collect();
    let claims = Arc::new(Mutex::new(Some(claims)));
    let open_files = raise_open_files_limit();
    tracing::info!(open_files, "open-file limit (each client connection takes two)");
    let quorum = config.quorum().map_err(RuntimeError::Setup)?;
    let mut store = MetadataStore::load(&config.data_dir).map_err(RuntimeError::Setup)?;
    if quorum.is_none() {
        let registration = config.registration().map_err(RuntimeError::Setup)?;
        store
            .register_broker(registration)
            .map_err(|e| RuntimeError::Setup(format!("cannot register broker {}: {e}", config.node_id)))?;
    }
    let leftovers = deleted_dirs::leftovers(&config.data_dir)
        .map_err(|e| RuntimeError::Setup(format!("cannot read data directory {}: {e}", config.data_dir.display())))?;
    deleted_dirs::remove_in_background(leftovers);
    // A voter's shards start from nothing and serve once the quorum's image
    // is published to them.
    let snapshot = if quorum.is_some() { Arc::default() } else { store.snapshot() };
    let active_controller = Arc::new(AtomicI32::new(if quorum.is_some() { -1 } else { config.node_id }));
    let controlled_shutdown = Duration::from_millis(config.controlled_shutdown_timeout_ms);
    let controlled_shutdown = (quorum.is_some() && !controlled_shutdown.is_zero()).then_some(controlled_shutdown);
    let shard_count = config.shard_count();
    block_stop_signals();

    let store = Arc::new(Mutex::new(Some(store)));
    let supervision = Arc::new(Supervision::new(shard_count));
    install_panic_hook();
    let mesh = MeshBuilder::<ShardMessage, _>::full(shard_count, MESH_CHANNEL_CAPACITY);
    let wake_mesh = reply::wake_mesh(shard_count);
    let (max_connections, max_per_ip) = config.connection_limits(&snapshot.dynamic_broker_configs);
    let connections = Arc::new(ConnectionLimits::new(max_connections, max_per_ip));
    let quota_rates = Arc::new(QuotaRates::new(config.quota_window()));
    let data_dir = config.data_dir.clone();
    let reported = addresses.clone();
    let test_clock = config.test_clock.then(TestClock::new);
    let config = Arc::new(config);

    let handles = LocalExecutorPoolBuilder::new(placement)
        .name("weir-shard")
        .on_all_shards({
            let supervision = supervision.clone();
            move || {
                SUPERVISION.with(|s| *s.borrow_mut() = Some(supervision.clone()));
                if let Some(clock) = &test_clock {
                    clock.install();
                }
                async move {
                    let shard = ShardStart {
                        config,
                        connections,
                        quota_rates,
                        active_controller,
                        snapshot,
                        store,
                        quorum,
                        mesh,
                        wake_mesh,
                        claims,
                        addresses,
                    };
                    let result = shard_main(shard, &supervision, serve).await;
                    supervision.running.fetch_sub(1, Ordering::SeqCst);
                    result
                }
            }
        })
        .map_err(|e| RuntimeError::Setup(format!("cannot start shard executors: {e}")))?;

    let signalled = wait_for_stop(&supervision, shard_count, &data_dir, &reported);
    if let Some(timeout) = controlled_shutdown.filter(|_| signalled) {
        wait_for_handover(&supervision, shard_count, timeout);
    }
    // Dropping it (when this returns) tells the watchdog that all shards stopped.
    let _stopped = supervision.panic().map(|panic| {
        tracing::error!("{panic}; stopping the broker");
        exit_if_shards_hang()
    });
    supervision.stop.store(true, Ordering::SeqCst);
    let mut failure = None;
    for result in handles.join_all() {
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failure = Some(e),
            Err(e) => failure = Some(RuntimeError::Shard(e.to_string())),
        }
    }
    listen::forget(&data_dir);
    if let Some(panic) = supervision.panic() {
        return Err(RuntimeError::Shard(panic));
    }
    failure.map_or(Ok(()), Err)
}

/// `listen` with its port replaced by the bound one (the host as written,
/// so the advertised address, which defaults to it, keeps a host name).
fn with_port(listen: &str, port: u16) -> String {
    let host = listen.rsplit_once(':').map_or(listen, |(host, _)| host);
    format!("{host}:{port}")
}

/// What the shard threads tell the main thread.
struct Supervision {
    /// Shards whose main task has not ended.
    running: AtomicUsize,
    /// Shards whose Kafka listener is bound.
    listening: AtomicUsize,
    /// The first panic on a shard thread: which shard, where, the message.
    panic: Mutex<Option<String>>,
    /// Set once to stop every shard.
    stop: AtomicBool,
    /// Set once, on the first stop signal of a broker of a cluster: shard 0
    /// runs the controlled shutdown while every shard serves on.
    leaving: AtomicBool,
    /// Set by shard 0 once the controlled shutdown is over.
    handed_over: AtomicBool,
}

impl Supervision {
    fn new(shard_count: usize) -> Supervision {
        Supervision {
            running: AtomicUsize::new(shard_count),
            listening: AtomicUsize::new(0),
            panic: Mutex::new(None),
            stop: AtomicBool::new(false),
            leaving: AtomicBool::new(false),
            handed_over: AtomicBool::new(false),
        }
    }

    fn panic(&self) -> Option<String> {
        self.panic.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether all `shard_count` shards run on, none ended (failed) or panicked.
    fn all_running(&self, shard_count: usize) -> bool {
        self.running.load(Ordering::SeqCst) == shard_count && self.panic().is_none()
    }
}

thread_local! {
    /// Set on each shard thread: where its panic is reported.
    static SUPERVISION: RefCell<Option<Arc<Supervision>>> = const { RefCell::new(None) };
    /// This thread's shard id, once it joined the mesh.
    static SHARD_ID: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Adds to the process's panic hook: a panic on a shard thread is recorded
/// for the main thread, which then stops the broker. A panic that only killed
/// the thread would leave the broker serving without that shard (its
/// partitions and groups answering retriable errors forever). The previous
/// hook still runs (it prints the panic and, if asked, a backtrace).
fn install_panic_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let supervision = SUPERVISION.try_with(|s| s.try_borrow().ok().and_then(|s| s.clone())).ok().flatten();
            if let Some(supervision) = supervision {
                let shard = match SHARD_ID.try_with(Cell::get).ok().flatten() {
                    Some(id) => format!("shard {id}"),
                    None => format!("shard thread {}", std::thread::current().name().unwrap_or("?")),
                };
                let payload = info.payload();
                let message = payload
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("(no message)");
                let place = info.location().map_or_else(String::new, |l| format!(" at {l}"));
                let mut first = supervision.panic.lock().unwrap_or_else(|e| e.into_inner());
                first.get_or_insert_with(|| format!("{shard} panicked{place}: {message}"));
            }
            previous(info);
        }));
    });
}

/// After a shard panicked, the others are asked to stop; should one of them
/// hang (waiting on the dead shard, say), the process exits after
/// `PANIC_STOP_GRACE` anyway. Dropping the returned sender calls that off.
fn exit_if_shards_hang() -> mpsc::Sender<()> {
    let (stopped, wait) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if wait.recv_timeout(PANIC_STOP_GRACE) == Err(mpsc::RecvTimeoutError::Timeout) {
            tracing::error!("shards did not stop within {PANIC_STOP_GRACE:?} of a shard panic: exiting now");
            std::process::exit(1);
        }
    });
    stopped
}

/// This shard's stop signal. The main thread only sets a flag, which a task
/// here polls: a waker woken from another thread can free its task twice
/// in glommio 0.9 (see [`reply`]).
fn watch_for_stop(supervision: Arc<Supervision>) -> ShutdownSignal {
    let (stop, stopped) = oneshot::channel();
    weir_runtime::spawn_local(async move {
        set_by_main_thread(&supervision.stop).await;
        let _ = stop.send(());
    })
    .detach();
    ShutdownSignal(stopped.shared())
}

/// Returns once the main thread set `flag`, polled: no waker crosses threads.
async fn set_by_main_thread(flag: &AtomicBool) {
    while !flag.load(Ordering::SeqCst) {
        weir_runtime::clock::sleep(STOP_POLL_INTERVAL).await;
    }
}

/// On shard 0 of a broker of a cluster: once the main thread asks (a stop
/// signal came), runs the controlled shutdown, then tells it.
async fn hand_over_when_leaving(shard: Rc<Shard>, supervision: Arc<Supervision>) {
    set_by_main_thread(&supervision.leaving).await;
    if let Some(controller) = shard.controller() {
        controller.shut_down_controlled(&shard).await;
    }
    supervision.handed_over.store(true, Ordering::SeqCst);
}

/// What every shard starts from.
struct ShardStart {
    config: Arc<BrokerConfig>,
    connections: Arc<ConnectionLimits>,
    quota_rates: Arc<QuotaRates>,
    active_controller: Arc<AtomicI32>,
    snapshot: Arc<crate::MetadataSnapshot>,
    store: Arc<Mutex<Option<MetadataStore>>>,
    /// The metadata quorum this broker votes in, if any.
    quorum: Option<QuorumConfig>,
    mesh: MeshBuilder<ShardMessage, weir_runtime::channels::channel_mesh::Full>,
    wake_mesh: reply::WakeMesh,
    /// The claimed listen addresses, one per listener in the order of
    /// `bound_listeners`, and their sockets (shard 0's listeners).
    claims: Arc<Mutex<Option<Vec<listen::Claim>>>>,
    addresses: Vec<SocketAddr>,
}

async fn shard_main<F, Fut>(start: ShardStart, supervision: &Arc<Supervision>, serve: F) -> Result<(), RuntimeError>
where
    F: Fn(Rc<Shard>, Vec<ShardListener>, ShutdownSignal) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let ShardStart {
        config,
        connections,
        quota_rates,
        active_controller,
        snapshot,
        store,
        quorum,
        mesh,
        wake_mesh,
        claims,
        addresses,
    } = start;
    let listeners = config.bound_listeners.clone();
    let (senders, mut receivers) =
        mesh.join().await.map_err(|_| RuntimeError::Shard("cannot join the shard mesh".into()))?;
    reply::join(wake_mesh).await.map_err(|_| RuntimeError::Shard("cannot join the shard wake mesh".into()))?;
    let id = senders.peer_id();
    SHARD_ID.with(|s| s.set(Some(id)));
    let store = if id == CONTROLLER_SHARD { store.lock().expect("startup lock").take() } else { None };
    let controller = store.map(|store| match quorum {
        Some(_) => Controller::voter(store.snapshot(), config.clone()),
        None => Controller::own(store, config.clone()),
    });
    let stop = watch_for_stop(supervision.clone());
    let shard = Rc::new_cyclic(|me| {
        let shared = SharedState { connections, quota_rates, active_controller };
        Shard::new(id, config, shared, snapshot, controller, senders).living_in(me.clone())
    });
    if id == CONTROLLER_SHARD && quorum.is_some() {
        weir_runtime::spawn_local(hand_over_when_leaving(shard.clone(), supervision.clone())).detach();
    }
    shard.open_owned_partitions(&shard.metadata()).await;
    shard.take_roles(&shard.metadata());
    for (_, from_peer) in receivers.streams() {
        weir_runtime::spawn_local(serve_peer(shard.clone(), from_peer)).detach();
    }
    if let Some(quorum) = quorum {
        // Until a quorum forms (shard 0 starts this voter and registers the
        // broker; the others wait for its first image), or the broker stops.
        let joined: LocalBoxFuture<'_, Result<(), String>> = match shard.controller() {
            Some(controller) => Box::pin(controller.start_quorum(&shard, quorum)),
            None => Box::pin(async {
                shard.first_metadata().await;
                Ok(())
            }),
        };
        let ended = match select(joined, pin!(stop.wait())).await {
            Either::Left((Ok(()), _)) => None,
            Either::Left((Err(e), _)) => Some(Err(RuntimeError::Shard(format!("shard {id}: {e}")))),
            Either::Right(_) => Some(Ok(())),
        };
        if let Some(ended) = ended {
            shard.close_all().await;
            reply::leave();
            return ended;
        }
    }
    weir_runtime::spawn_local(Fetchers::supervise(shard.clone())).detach();
    weir_runtime::spawn_local(maintain_isr(shard.clone())).detach();
    weir_runtime::spawn_local(tick_groups(shard.clone())).detach();
    weir_runtime::spawn_local(tick_transactions(shard.clone())).detach();
    spawn_maintenance(&shard);
    weir_runtime::spawn_local(probe_scheduling_delay(shard.clone())).detach();
    tracing::debug!(shard = id, "shard ready");
    let claims = if id == 0 { claims.lock().expect("startup lock").take() } else { None };
    let sockets = match claims {
        Some(claims) => Ok(claims.into_iter().map(listen::Claim::into_listener).collect()),
        None => (addresses.iter())
            .map(|&address| listen::bind_shard(address).map_err(|e| format!("cannot listen on {address}: {e}")))
            .collect::<Result<Vec<_>, String>>(),
    };
    let served = match sockets {
        Ok(sockets) => {
            supervision.listening.fetch_add(1, Ordering::SeqCst);
            let listeners = (listeners.into_iter().zip(sockets))
                .map(|(listener, socket)| ShardListener { listener: Rc::new(listener), socket })
                .collect();
            serve(shard.clone(), listeners, stop).await
        }
        Err(e) => Err(e),
    };
    shard.close_all().await;
    reply::leave();
    served.map_err(|e| RuntimeError::Shard(format!("shard {id}: {e}")))
}

/// The client connections of the whole broker, counted at accept and close
/// only (never on the request path), against `max_connections` and
/// `max_connections_per_ip`.
pub struct ConnectionLimits {
    /// `max.connections` and `max.connections.per.ip`, changed at runtime by
    /// dynamic broker configs.
    max_total: AtomicUsize,
    max_per_ip: AtomicUsize,
    open: Mutex<OpenConnections>,
}

#[derive(Default)]
struct OpenConnections {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Why a new connection was closed at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionRefused {
    MaxConnections,
    MaxConnectionsPerIp,
}

/// One admitted connection; dropping it gives its place back.
pub struct ConnectionPermit {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl ConnectionLimits {
    pub fn new(max_total: usize, max_per_ip: usize) -> ConnectionLimits {
        ConnectionLimits {
            max_total: AtomicUsize::new(max_total),
            max_per_ip: AtomicUsize::new(max_per_ip),
            open: Mutex::new(OpenConnections::default()),
        }
    }

    /// New limits for connections accepted from now on (those open stay).
    pub fn set_limits(&self, max_total: usize, max_per_ip: usize) {
        self.max_total.store(max_total, Ordering::Relaxed);
        self.max_per_ip.store(max_per_ip, Ordering::Relaxed);
    }

    /// Counts a new connection from `ip`, or says which limit it is over.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionPermit, ConnectionRefused> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.total >= self.max_total.load(Ordering::Relaxed) {
            return Err(ConnectionRefused::MaxConnections);
        }
        let from_ip = open.per_ip.entry(ip).or_insert(0);
        if *from_ip >= self.max_per_ip.load(Ordering::Relaxed) {
            return Err(ConnectionRefused::MaxConnectionsPerIp);
        }
        *from_ip += 1;
        open.total += 1;
        Ok(ConnectionPermit { limits: self.clone(), ip })
    }

    /// Connections open now, all shards together.
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(|e| e.into_inner());
        assert!(open.total > 0, "connection count underflow");
        open.total -= 1;
        let from_ip = open.per_ip.get_mut(&self.ip).expect("an admitted IP is counted");
        *from_ip -= 1;
        if *from_ip == 0 {
            open.per_ip.remove(&self.ip);
        }
    }
}

/// Answers another shard's messages; each in its own task so a long wait
/// (a long-poll fetch) does not hold up the ones behind it.
/// Each is counted in flight from the moment it is taken off the mesh, so
/// work the shard has no time to start yet shows as a backlog; except the
/// admin endpoint's request for figures, which would count itself.
async fn serve_peer(shard: Rc<Shard>, from_peer: ConnectedReceiver<ShardMessage>) {
    while let Some(msg) = from_peer.recv().await {
        let counted = !matches!(msg, ShardMessage::Stats { .. });
        if counted {
            shard.metrics().mesh_message_served();
        }
        let in_flight = counted.then(|| shard.metrics().peer_requests_in_flight.enter());
        let shard = shard.clone();
        weir_runtime::spawn_local(async move {
            shard.handle_message(msg).await;
            drop(in_flight);
        })
        .detach();
    }
}

/// Records how much later than asked a short sleep ends: on a shard whose
/// thread is busy, a woken task waits behind the others.
async fn probe_scheduling_delay(shard: Rc<Shard>) {
    loop {
        let asleep = Instant::now();
        weir_runtime::clock::sleep(SCHEDULING_PROBE_INTERVAL).await;
        shard.metrics().scheduling_delay.record(asleep.elapsed().saturating_sub(SCHEDULING_PROBE_INTERVAL));
    }
}

/// CPU time the calling thread has used: (user, system). Called on a shard,
/// it is that shard's busy time (an idle glommio executor sleeps in the kernel).
pub(crate) fn thread_cpu_time() -> (Duration, Duration) {
    // SAFETY: getrusage fills the zeroed struct we own.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_THREAD, &mut usage) != 0 {
            return (Duration::ZERO, Duration::ZERO);
        }
        usage
    };
    let duration = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    (duration(usage.ru_utime), duration(usage.ru_stime))
}

/// Session expiry and rebalance deadlines of the groups this shard owns.
async fn tick_groups(shard: Rc<Shard>) {
    loop {
        weir_runtime::clock::sleep(GROUP_TICK).await;
        shard.tick_groups();
    }
}

/// The ISR of the partitions this shard leads, every half
/// `replica.lag.time.max.ms` (as Kafka checks), and whenever a follower
/// catches up.
async fn maintain_isr(shard: Rc<Shard>) {
    let every = Duration::from_millis(shard.config().replica_lag_time_max_ms / 2).max(Duration::from_millis(100));
    loop {
        shard.isr_wake().wait(every).await;
        shard.maintain_isr().await;
    }
}

/// Transactions of this shard's ids left half-ended or past their timeout.
async fn tick_transactions(shard: Rc<Shard>) {
    loop {
        weir_runtime::clock::sleep(TRANSACTION_TICK).await;
        shard.tick_transactions();
    }
}

/// The maintenance task queue's share of a busy shard against the default
/// queue's 1,000 (requests, the mesh, the log writers): a tenth, so a long
/// pass (a compaction) slows requests by at most about a tenth.
const MAINTENANCE_SHARES: usize = 100;

/// Runs `pass` on the shard every `ms` (at least
/// `MIN_MAINTENANCE_INTERVAL_MS`), one pass at a time, in a task of its own
/// in the maintenance queue, so that a long pass holds up no other.
fn spawn_every<F, Fut>(shard: &Rc<Shard>, queue: TaskQueueHandle, ms: u64, pass: F)
where
    F: Fn(Rc<Shard>) -> Fut + 'static,
    Fut: Future<Output = ()>,
{
    let interval = Duration::from_millis(ms.max(MIN_MAINTENANCE_INTERVAL_MS));
    let shard = shard.clone();
    let every = async move {
        loop {
            weir_runtime::clock::sleep(interval).await;
            pass(shard.clone()).await;
        }
    };
    weir_runtime::spawn_local_into(every, queue).expect("the maintenance queue exists").detach();
}

/// The periodic passes over this shard's partitions and transactional ids:
/// retention, then producer state snapshots of the logs that rolled or grew
/// (`log_retention_check_interval_ms`); compaction (`log_cleaner_backoff_ms`);
/// expiry of idle producer ids (`producer_id_expiration_check_interval_ms`)
/// and transactional ids
/// (`transaction_remove_expired_transaction_cleanup_interval_ms`). Each pass
/// takes one log at a time; the engine yields between its steps. They run
/// in a task queue of their own with a small share of the shard
/// (`MAINTENANCE_SHARES`), so that they never delay requests by much.
fn spawn_maintenance(shard: &Rc<Shard>) {
    let c = shard.config();
    let queue = weir_runtime::executor().create_task_queue(
        Shares::Static(MAINTENANCE_SHARES),
        Latency::NotImportant,
        "maintenance",
    );
    spawn_every(shard, queue, c.log_retention_check_interval_ms, |s| async move {
        s.enforce_retention().await;
        s.snapshot_producers(false).await;
    });
    spawn_every(shard, queue, c.log_cleaner_backoff_ms, |s| async move { s.compact_logs().await });
    spawn_every(shard, queue, c.producer_id_expiration_check_interval_ms, |s| async move { s.expire_producers() });
    let txn_ids_interval = c.transaction_remove_expired_transaction_cleanup_interval_ms;
    spawn_every(shard, queue, txn_ids_interval, |s| async move { s.expire_transactional_ids().await });
}

/// One executor per core where there are enough cores; more shards than cores
/// (useful to exercise cross-shard paths) share them. The cores are the
/// online ones, or those of the cpuset (`cpus`).
fn placement(shard_count: usize, cpus: Option<Vec<usize>>) -> Result<PoolPlacement, RuntimeError> {
    let online = CpuSet::online().ok();
    let cores = match (online, cpus) {
        (Some(online), Some(wanted)) => {
            let cores = online.filter(|core| wanted.contains(&core.cpu));
            if cores.len() < wanted.len() {
                let online: Vec<usize> =
                    CpuSet::online().map(|c| c.into_iter().map(|l| l.cpu).collect()).unwrap_or_default();
                return Err(RuntimeError::Setup(format!(
                    "cpuset {wanted:?} names cores that are not online (online: {online:?})"
                )));
            }
            Some(cores)
        }
        (online, _) => online,
    };
    let count = cores.as_ref().map_or(0, CpuSet::len);
    Ok(match cores {
        Some(cores) if shard_count <= count => PoolPlacement::MaxSpread(shard_count, Some(cores)),
        Some(cores) => PoolPlacement::Fenced(shard_count, cores),
        None => PoolPlacement::Unbound(shard_count),
    })
}

/// Builds and drops one executor so that a missing io_uring fails here with
/// advice, not later inside a shard thread.
fn check_io_uring() -> Result<(), RuntimeError> {
    LocalExecutorBuilder::new(Placement::Unbound).make().map(drop).map_err(|e| {
        RuntimeError::Setup(format!(
            "io_uring could not be set up ({e}). Weir needs Linux 5.8 or newer with io_uring \
             allowed (kernel.io_uring_disabled=0; containers: a seccomp profile that permits \
             io_uring_setup/io_uring_enter) and a locked-memory limit of at least 512 KiB \
             (`ulimit -l`, or LimitMEMLOCK= in a systemd unit)."
        ))
    })
}

/// Raises the soft open-file limit to the hard one: the default soft limit
/// (often 1024) would cap the broker at a few hundred connections. Returns
/// the limit in force.
fn raise_open_files_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        }
    }
    limit.rlim_cur
}

fn stop_signal_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    }
}

/// Blocks SIGINT/SIGTERM in this thread and so in every thread it starts,
/// so they are only ever taken by `sigtimedwait` below.
fn block_stop_signals() {
    let set = stop_signal_set();
    // SAFETY: `set` is a valid, initialised signal set.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

fn take_stop_signal(timeout: Duration) -> bool {
    let set = stop_signal_set();
    let ts = libc::timespec { tv_sec: timeout.as_secs() as _, tv_nsec: timeout.subsec_nanos() as _ };
    // SAFETY: valid set and timespec; a null siginfo pointer is allowed.
    unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &ts) > 0 }
}

/// Returns on the first stop signal (true), or as soon as any shard ended by
/// itself (it failed) or panicked. Reports the listen addresses once every
/// shard listens. After a signal, a thread waits for a second one and exits
/// at once.
fn wait_for_stop(
    supervision: &Supervision,
    shard_count: usize,
    data_dir: &std::path::Path,
    addresses: &[SocketAddr],
) -> bool {
    let mut reported = false;
    while supervision.all_running(shard_count) {
        if !reported && supervision.listening.load(Ordering::SeqCst) == shard_count {
            reported = true;
            match listen::report(data_dir, addresses) {
                Ok(()) => tracing::info!(?addresses, "every shard is listening"),
                Err(e) => {
                    tracing::error!(?addresses, "every shard is listening, but the addresses cannot be reported: {e}")
                }
            }
        }
        // Short waits until the address is reported: a client waits on it.
        if take_stop_signal(Duration::from_millis(if reported { 200 } else { 10 })) {
            tracing::info!("stopping: finishing in-flight work and closing logs (signal again to exit now)");
            std::thread::spawn(|| loop {
                if take_stop_signal(Duration::from_secs(3600)) {
                    tracing::warn!("second stop signal: exiting without a clean shutdown");
                    std::process::exit(130);
                }
            });
            return true;
        }
    }
    false
}

/// The controlled shutdown of a broker of a cluster: asks shard 0 to have
/// the active controller move the leadership of every partition this
/// broker leads, and waits until that is done, `timeout` passed, or a
/// shard ended or panicked. Every shard serves on meanwhile: clients finish
/// what they sent and are told the new leaders, followers copy the last
/// batches.
fn wait_for_handover(supervision: &Supervision, shard_count: usize, timeout: Duration) {
    supervision.leaving.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + timeout;
    while !supervision.handed_over.load(Ordering::SeqCst) && supervision.all_running(shard_count) {
        if Instant::now() >= deadline {
            tracing::warn!("controlled shutdown: partitions still led here after {timeout:?}; stopping anyway");
            return;
        }
        std::thread::sleep(STOP_POLL_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_limits_count_totals_and_ips() {
        let limits = Arc::new(ConnectionLimits::new(3, 2));
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let a1 = limits.admit(a).unwrap();
        let _a2 = limits.admit(a).unwrap();
        assert_eq!(limits.admit(a).err(), Some(ConnectionRefused::MaxConnectionsPerIp));
        let _b1 = limits.admit(b).unwrap();
        assert_eq!(limits.admit(b).err(), Some(ConnectionRefused::MaxConnections));
        assert_eq!(limits.open(), 3);
        drop(a1);
        assert_eq!(limits.open(), 2);
        let _a3 = limits.admit(a).unwrap();
    }

    /// The panic is triggered by the `serve` closure this test hands the real
    /// runtime: shard 1 panics once it listens, shard 0 serves until stopped.
    #[test]
    fn a_panic_on_one_shard_stops_every_shard_and_says_which() {
        let dir = tempfile::tempdir().unwrap();
        let config = BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            shards: 2,
            listen: "127.0.0.1:0".into(),
            ..BrokerConfig::default()
        };
        let result = run(config, |shard: Rc<Shard>, _listeners, stop: ShutdownSignal| async move {
            if shard.id() == 1 {
                panic!("deliberate test panic");
            }
            stop.wait().await;
            Ok(())
        });
        match result {
            Err(RuntimeError::Shard(message)) => {
                assert!(message.starts_with("shard 1 panicked at "), "{message}");
                assert!(message.ends_with(": deliberate test panic"), "{message}");
            }
            Err(other) => panic!("wrong error: {other}"),
            Ok(()) => panic!("the broker stopped cleanly after a shard panic"),
        }
        assert!(!listen::address_file(dir.path()).exists(), "a stopped broker leaves no address file");
    }

    #[test]
    fn the_bound_port_replaces_port_zero_and_keeps_the_host() {
        assert_eq!(with_port("localhost:0", 4321), "localhost:4321");
        assert_eq!(with_port("[::1]:0", 4321), "[::1]:4321");
        assert_eq!(with_port("127.0.0.1:9092", 9092), "127.0.0.1:9092");
    }
}
