//! The connection loop of one shard: accept, read frames, answer in order.
//!
//! Each connection has a reader task and a writer task. The reader decodes
//! frames and starts a task per request, up to `max_in_flight_per_connection`
//! at once and up to `queued_max_request_bytes` of in-flight frames (then it
//! stops reading: backpressure, applied after a frame's length and before its
//! payload, so no connection holds more); the writer sends the answers in
//! request order, as Kafka requires, and gives each request's bytes back once
//! its answer is written.
//!
//! A Fetch is handled only once the connection's previous Fetch answer is
//! written: an answer can be `fetch_max_bytes` large, and a client that
//! pipelines fetches without reading them must not make the broker hold
//! many (Kafka holds one answer per connection).
//!
//! A connection whose answers cannot be written for
//! `response_write_timeout_ms` (the client does not read them) is reset.
//!
//! A new connection over `max_connections` or `max_connections_per_ip` (all
//! shards together) is closed at once; one that sends no request for
//! `connections_max_idle_ms` is closed.
//!
//! On a SASL listener the reader holds the connection's
//! [`Authenticator`]: it answers SaslHandshake and SaslAuthenticate itself,
//! in order (their answers still queue behind earlier ones), and closes the
//! connection on a request it may not serve yet (before authentication,
//! after the session expired) or after a failed exchange's answer. Until
//! authenticated, a frame may be at most `sasl::MAX_RECEIVE_BYTES`.
//!
//! On a TLS listener (SSL, SASL_SSL) a connection first completes a TLS
//! handshake (within `TLS_HANDSHAKE_TIMEOUT`; a failure, such as a client
//! speaking plaintext, closes it with a log line naming the peer). Its reader
//! and writer then share the one rustls session (`futures::io::split`, a lock
//! only held inside a poll, so they never wait on each other). The writer
//! hands a response's chunks to rustls as one vectored write: rustls fills
//! whole records from them and encrypts into its own buffer, the one copy of
//! the record bytes a TLS fetch costs.

use crate::codec::{
    decode_header, read_frame_length, read_frame_payload, read_sasl_token_length, ResponseFrame, WriteOnlyRead,
};
use crate::handlers;
use crate::sasl::{self, Authenticator};
use crate::throttle::ConnectionQuotas;
use bytes::Bytes;
use futures::channel::oneshot;
use futures::future::{select, Either};
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, WriteHalf};
use futures_rustls::server::TlsStream;
use kafka_protocol::messages::ApiKey;
use std::cell::Cell;
use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd};
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use weir_runtime::channels::local_channel::{self, LocalSender};
use weir_runtime::net::{TcpListener, TcpStream};
use weir_runtime::sync::{Semaphore, StaticPermit};
use weir_shards::listen::ShardListener;
use weir_shards::metadata::acl::Requester;
use weir_shards::metadata::quota::QuotaKey;
use weir_shards::{ConnectionPermit, Listener, Shard, ShutdownSignal};

/// How long shutdown waits for connections to finish their in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// A failed SASL authentication is answered this late (Kafka's
/// `connection.failed.authentication.delay.ms`), which slows a client
/// guessing passwords, whose retries follow the answer.
const FAILED_AUTHENTICATION_DELAY: Duration = Duration::from_millis(100);
/// Read buffer per connection.
const READ_BUFFER_BYTES: usize = 64 * 1024;
/// A TLS connection must finish its handshake within this long.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections on each of this shard's `listeners` until shutdown,
/// then lets the open ones finish what they have in flight (bounded by
/// `SHUTDOWN_GRACE`).
pub async fn serve_shard(
    shard: Rc<Shard>,
    listeners: Vec<ShardListener>,
    shutdown: ShutdownSignal,
) -> Result<(), String> {
    if shard.id() == weir_shards::ownership::CONTROLLER_SHARD {
        start_admin_endpoint(&shard, &shutdown);
    }
    // The TLS listeners share the one certificate.
    let tls = match listeners.iter().any(|l| l.listener.protocol.is_tls()) {
        true => Some(Rc::new(crate::tls::TlsAcceptors::new(shard.config())?)),
        false => None,
    };
    shard.metrics().serving.set(true);
    let open_connections = Rc::new(Cell::new(0usize));
    let accepting = listeners.into_iter().map(|ShardListener { listener, socket }| {
        let tls = tls.clone().filter(|_| listener.protocol.is_tls());
        accept(shard.clone(), listener, socket, tls, shutdown.clone(), open_connections.clone())
    });
    futures::future::join_all(accepting).await;
    shard.metrics().serving.set(false);
    let waited = Instant::now();
    while open_connections.get() > 0 && waited.elapsed() < SHUTDOWN_GRACE {
        weir_runtime::clock::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Accepts connections on one listener until shutdown, each served in a
/// task of its own, counted in `open_connections`.
async fn accept(
    shard: Rc<Shard>,
    listener: Rc<Listener>,
    socket: TcpListener,
    tls: Option<Rc<crate::tls::TlsAcceptors>>,
    shutdown: ShutdownSignal,
    open_connections: Rc<Cell<usize>>,
) {
    loop {
        let accepted = match select(pin!(socket.accept()), pin!(shutdown.wait())).await {
            Either::Left((accepted, _)) => accepted,
            Either::Right(_) => break,
        };
        match accepted {
            Ok(stream) => {
                let Some(permit) = admit(&shard, &stream) else { continue };
                let (shard, shutdown, open) = (shard.clone(), shutdown.clone(), open_connections.clone());
                open.set(open.get() + 1);
                shard.metrics().connection_opened();
                let tls = tls.as_ref().map(|tls| tls.acceptor());
                let listener = listener.clone();
                weir_runtime::spawn_local(async move {
                    serve_connection(shard.clone(), listener, stream, shutdown, tls).await;
                    drop(permit);
                    shard.metrics().connection_closed();
                    open.set(open.get() - 1);
                })
                .detach();
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(shard = shard.id(), "accept failed: {e}");
                weir_runtime::clock::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Counts a new connection against the broker-wide limits; over them, the
/// connection is closed at once (as Kafka does).
fn admit(shard: &Shard, stream: &TcpStream) -> Option<ConnectionPermit> {
    let peer = stream.peer_addr().ok()?; // already gone
    match shard.connections().admit(peer.ip()) {
        Ok(permit) => Some(permit),
        Err(why) => {
            shard.metrics().connection_refused(why);
            tracing::debug!(%peer, "closing new connection: {why:?}");
            None
        }
    }
}

/// Starts the admin HTTP endpoint on this shard, if one is configured. A
/// failure to bind is logged and the broker serves Kafka without it.
fn start_admin_endpoint(shard: &Rc<Shard>, shutdown: &ShutdownSignal) {
    let address = &shard.config().admin_listen;
    if address.is_empty() {
        return;
    }
    match crate::admin::bind(address) {
        Ok(listener) => {
            tracing::info!(admin = %address, "admin endpoint serving /health and /metrics");
            weir_runtime::spawn_local(crate::admin::serve(shard.clone(), listener, shutdown.clone())).detach();
        }
        Err(e) => tracing::error!(admin = %address, "cannot listen on the admin address, serving without it: {e}"),
    }
}

async fn serve_connection(
    shard: Rc<Shard>,
    listener: Rc<Listener>,
    stream: TcpStream,
    shutdown: ShutdownSignal,
    tls: Option<futures_rustls::TlsAcceptor>,
) {
    let peer = stream.peer_addr().map_or_else(|_| "?".to_string(), |a| a.to_string());
    let _ = stream.set_nodelay(true);
    let socket = stream.as_raw_fd();
    let Some(acceptor) = tls else {
        match split(stream) {
            Ok((reader, writer)) => {
                let connection = Connection { listener, peer: &peer, principal: ANONYMOUS };
                run_connection(shard, reader, writer, socket, connection, shutdown).await
            }
            Err(e) => tracing::warn!(%peer, "cannot set up connection: {e}"),
        }
        return;
    };
    let handshake = weir_runtime::clock::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(VectoredStream(stream)));
    let stream = match select(pin!(handshake), pin!(shutdown.wait())).await {
        Either::Left((Some(Ok(stream)), _)) => stream,
        Either::Left((Some(Err(e)), _)) => {
            shard.metrics().connection_tls_failed();
            tracing::info!(%peer, "closing connection: TLS handshake failed: {e}");
            return;
        }
        Either::Left((None, _)) => {
            shard.metrics().connection_tls_failed();
            tracing::info!(%peer, "closing connection: no TLS handshake within {TLS_HANDSHAKE_TIMEOUT:?}");
            return;
        }
        Either::Right(_) => return,
    };
    let session = stream.get_ref().1;
    let principal = crate::tls::principal(session);
    tracing::debug!(
        %peer,
        %principal,
        version = ?session.protocol_version(),
        cipher_suite = ?session.negotiated_cipher_suite().map(|suite| suite.suite()),
        "TLS connection"
    );
    let (reader, writer) = stream.split();
    let connection = Connection { listener, peer: &peer, principal: &principal };
    run_connection(shard, EofIsClose(reader), writer, socket, connection, shutdown).await;
}

/// A TLS reader whose peer's close without a close_notify alert reads as an
/// end of stream: Kafka's clients close so, and a cut inside a frame is
/// still an error of the frame's read.
struct EofIsClose<R>(R);

impl<R: AsyncRead + Unpin> AsyncRead for EofIsClose<R> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<std::io::Result<usize>> {
        match Pin::new(&mut self.0).poll_read(cx, buf) {
            Poll::Ready(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => Poll::Ready(Ok(0)),
            other => other,
        }
    }
}

// SAFETY: hands `buf` to the inner reader, which only writes.
unsafe impl<R: WriteOnlyRead + Unpin> WriteOnlyRead for EofIsClose<R> {}
// SAFETY: glommio's unbuffered stream reads with recv(2) straight into `buf`.
unsafe impl WriteOnlyRead for TcpStream {}
// SAFETY: rustls reads the socket into its own buffer and copies the
// decrypted bytes into `buf`.
unsafe impl WriteOnlyRead for TlsStream<VectoredStream> {}

/// Serves a connection, plaintext or TLS, through its two halves; `socket`
/// is its descriptor, reset when the answers cannot be written.
async fn run_connection<R, W>(
    shard: Rc<Shard>,
    reader: R,
    writer: W,
    socket: std::os::fd::RawFd,
    connection: Connection<'_>,
    shutdown: ShutdownSignal,
) where
    R: WriteOnlyRead + Unpin,
    W: ResponseWriter,
{
    let config = shard.config();
    let stall = Duration::from_millis(config.response_write_timeout_ms);
    let (responses, pending) = local_channel::new_bounded(config.max_in_flight_per_connection);
    let writer_task = weir_runtime::spawn_local(write_responses(shard.clone(), writer, stall, pending));
    let peer = connection.peer;
    let reading = pin!(read_requests(&shard, reader, connection, &shutdown, responses));
    match select(reading, writer_task).await {
        // The writer sends what is in flight, then the connection closes.
        Either::Left((_, writer_task)) => {
            let _ = writer_task.await;
        }
        // The writer failed (or stalled): stop reading too (dropping the reader
        // drops the requests in flight) and reset the connection. A plain
        // close would queue a FIN behind the unsent answers, which a client
        // that does not read never gets, and the kernel would keep them.
        Either::Right(_) => {
            tracing::info!(%peer, "resetting connection: its responses could not be written");
            reset_on_close(socket);
        }
    }
}

/// Who a connection is, as its requests' answers and checks need it.
struct Connection<'a> {
    /// The listener it came in on: its security protocol, and the name
    /// whose addresses Metadata and the like answer with.
    listener: Rc<Listener>,
    peer: &'a str,
    /// Its principal before any SASL (its certificate's, or anonymous).
    principal: &'a str,
}

/// The principal of a connection that names no one: PLAINTEXT, or TLS
/// without a client certificate (Kafka's `User:ANONYMOUS`).
const ANONYMOUS: &str = "User:ANONYMOUS";

/// Makes closing `socket` send a reset and drop unsent data (SO_LINGER 0).
fn reset_on_close(socket: std::os::fd::RawFd) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    let len = size_of::<libc::linger>() as libc::socklen_t;
    // SAFETY: setsockopt on a descriptor the connection's reader still owns,
    // with a valid linger struct.
    unsafe { libc::setsockopt(socket, libc::SOL_SOCKET, libc::SO_LINGER, std::ptr::addr_of!(linger).cast(), len) };
}

/// Reads requests until the peer closes or sends something malformed, the
/// connection idles, or the broker stops; starts a task per request and
/// queues it for the writer.
async fn read_requests(
    shard: &Rc<Shard>,
    reader: impl WriteOnlyRead + Unpin,
    connection: Connection<'_>,
    shutdown: &ShutdownSignal,
    responses: LocalSender<(ResponseTask, StaticPermit)>,
) {
    let Connection { listener, peer, principal } = connection;
    let config = shard.config();
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, reader);
    let max_frame = config.socket_request_max_bytes;
    let idle = Duration::from_millis(config.connections_max_idle_ms);
    // Bytes of the frames whose answers are not written yet.
    let budget_bytes = config.queued_max_request_bytes as u64;
    let budget = Rc::new(Semaphore::new(budget_bytes));
    // Resolves once the previous Fetch's answer is written (or dropped).
    let mut previous_fetch_written: Option<oneshot::Receiver<()>> = None;
    let mut previous_produce_placed: Option<oneshot::Receiver<()>> = None;
    let mut authenticator = (listener.protocol.is_sasl())
        .then(|| Authenticator::new(config.sasl_enabled_mechanisms.clone(), config.connections_max_reauth_ms));
    let quotas = Rc::new(ConnectionQuotas::default());
    loop {
        // A throttled client's connection reads nothing until its throttle
        // time is over (KIP-219); its answers still go out meanwhile.
        if let Either::Right(_) = select(pin!(quotas.unmuted()), pin!(shutdown.wait())).await {
            break;
        }
        let unauthenticated = authenticator.as_ref().is_some_and(|a| a.session().is_none());
        let max_frame = if unauthenticated { max_frame.min(sasl::MAX_RECEIVE_BYTES) } else { max_frame };
        let raw_token = authenticator.as_ref().is_some_and(Authenticator::expects_raw_token);
        let read_length = async {
            match raw_token {
                true => read_sasl_token_length(&mut reader, max_frame).await,
                false => read_frame_length(&mut reader, max_frame).await,
            }
        };
        let Some(len) = unless_idle_or_stopping(shard, peer, read_length, idle, shutdown).await else {
            break;
        };
        let len = match len {
            Ok(Some(len)) => len,
            Ok(None) => break,
            Err(e) => {
                tracing::info!(%peer, "closing connection: {e}");
                break;
            }
        };
        let frame_bytes = len + 4;
        // Backpressure before the payload is read, so a connection holds at
        // most its budget: wait until the answers already written free
        // enough of it. A frame larger than the whole budget waits for all.
        let wanted = (frame_bytes as u64).min(budget_bytes);
        let permit = match select(pin!(budget.acquire_static_permit(wanted)), pin!(shutdown.wait())).await {
            Either::Left((Ok(permit), _)) => permit,
            _ => break,
        };
        let Some(payload) =
            unless_idle_or_stopping(shard, peer, read_frame_payload(&mut reader, len), idle, shutdown).await
        else {
            break;
        };
        shard.metrics().add_bytes_in(frame_bytes);
        if let (true, Some(authenticator), Ok(token)) = (raw_token, authenticator.as_mut(), payload.as_ref()) {
            // A bare token after a v0 SaslHandshake; a failure closes without an answer.
            let answer = authenticator.authenticate(-1, token, &shard.metadata(), weir_runtime::clock::now_ms());
            log_sasl_outcome(peer, &answer, authenticator);
            if answer.close {
                shard.metrics().connection_sasl_closed();
                break;
            }
            let mut frame = Vec::with_capacity(4 + answer.token.len());
            frame.extend_from_slice(&(answer.token.len() as u32).to_be_bytes());
            frame.extend_from_slice(&answer.token);
            let frame = ResponseFrame::Whole(Bytes::from(frame));
            if !queue_answer(&responses, frame, permit, None).await {
                break;
            }
            continue;
        }
        let decoded = payload.map_err(anyhow::Error::from).and_then(|payload| Ok(decode_header(payload)?));
        let mut frame = match decoded {
            Ok(frame) => frame,
            Err(e) => {
                tracing::info!(%peer, "closing connection: {e}");
                break;
            }
        };
        let (key, version, correlation_id) =
            (frame.api_key, frame.header.request_api_version, frame.header.correlation_id);
        let request = match handlers::decode(&mut frame) {
            Ok(handlers::Decoded { request, ignored_bytes }) => {
                if ignored_bytes > 0 {
                    tracing::debug!(%peer, "{key:?} v{version}: ignored {ignored_bytes} bytes after the request body");
                    shard.metrics().add_request_bytes_ignored(ignored_bytes);
                }
                request
            }
            Err(e) => {
                tracing::info!(%peer, "closing connection: {e}");
                break;
            }
        };
        if let Some(authenticator) = authenticator.as_mut() {
            let now_ms = weir_runtime::clock::now_ms();
            if let Err(refused) = authenticator.may_serve(key, now_ms) {
                tracing::info!(%peer, "closing connection: {refused}");
                shard.metrics().connection_sasl_closed();
                break;
            }
            let answer = match &request {
                handlers::Request::SaslHandshake(r) => authenticator.handshake(version, r.mechanism.as_str()),
                handlers::Request::SaslAuthenticate(r) => {
                    authenticator.authenticate(version, &r.auth_bytes, &shard.metadata(), now_ms)
                }
                _ => sasl::Answer::none(),
            };
            if key == ApiKey::SaslHandshake || key == ApiKey::SaslAuthenticate {
                log_sasl_outcome(peer, &answer, authenticator);
                let frame = match handlers::sasl_answer(shard, key, version, correlation_id, &answer) {
                    Ok(frame) => frame,
                    Err(e) => {
                        tracing::error!(%peer, "cannot encode a SASL answer, closing the connection: {e:#}");
                        break;
                    }
                };
                let delay = (answer.error_code != 0 && answer.close).then_some(FAILED_AUTHENTICATION_DELAY);
                if answer.close {
                    shard.metrics().connection_sasl_closed();
                }
                if !queue_answer(&responses, frame, permit, delay).await || answer.close {
                    break; // a failed exchange: its answer is sent, then the connection closes
                }
                continue;
            }
        }
        let produce_turn = (key == ApiKey::Produce).then(|| {
            let (placed, turn_of_next) = oneshot::channel();
            handlers::ProduceTurn { after: previous_produce_placed.replace(turn_of_next), placed }
        });
        let ip = peer.rsplit_once(':').map_or(peer, |(host, _)| host);
        // A SASL session's user, else the connection's (its certificate's).
        let principal = match authenticator.as_ref().and_then(Authenticator::session) {
            Some(session) => format!("User:{}", session.user),
            None => principal.to_string(),
        };
        let client_id = frame.header.client_id.as_ref().map_or_else(String::new, |c| c.to_string());
        // A Produce is counted against its quota as it is read, so that a
        // client over it is muted before the reader takes its next request
        // (Kafka reads one request of a connection at a time).
        let produce_throttle_ms = match key {
            ApiKey::Produce => quotas.record(shard, &principal, &client_id, QuotaKey::ProducerByteRate, frame_bytes),
            _ => 0,
        };
        let client = handlers::ClientInfo {
            client_id,
            host: format!("/{ip}"),
            requester: Requester { principal, host: ip.to_string() },
            listener: listener.clone(),
            produce_turn,
            produce_throttle_ms,
            quotas: quotas.clone(),
        };
        let fetch_turn = (key == ApiKey::Fetch).then(|| {
            let (written, turn_of_next) = oneshot::channel();
            FetchTurn { after: previous_fetch_written.replace(turn_of_next), written }
        });
        let task =
            weir_runtime::spawn_local(answer(shard.clone(), key, version, correlation_id, client, request, fetch_turn));
        if responses.send((task, permit)).await.is_err() {
            break; // the writer failed: the connection is done
        }
    }
}

/// Queues an answer made without a task (the SASL ones) behind those in
/// flight, sent after `delay`; false when the writer is gone.
async fn queue_answer(
    responses: &LocalSender<(ResponseTask, StaticPermit)>,
    frame: ResponseFrame,
    permit: StaticPermit,
    delay: Option<Duration>,
) -> bool {
    let task = weir_runtime::spawn_local(async move {
        if let Some(delay) = delay {
            weir_runtime::clock::sleep(delay).await;
        }
        Ok(Answer { frame: Some(frame), _fetch_written: None })
    });
    responses.send((task, permit)).await.is_ok()
}

/// Logs a SASL answer's outcome: a failure with the peer and Kafka's
/// message (never a token or a password), a success with the user.
fn log_sasl_outcome(peer: &str, answer: &sasl::Answer, authenticator: &Authenticator) {
    if answer.error_code != 0 {
        let why = answer.error_message.as_deref().unwrap_or("");
        tracing::info!(%peer, error_code = answer.error_code, "SASL: {why}");
    } else if answer.session_established {
        if let Some(session) = authenticator.session() {
            tracing::debug!(%peer, user = %session.user, mechanism = session.mechanism, "SASL authenticated");
        }
    }
}

/// Runs one read of the connection unless the broker stops or the
/// connection stays idle for `idle` first (`None`: close the connection).
async fn unless_idle_or_stopping<T>(
    shard: &Shard,
    peer: &str,
    read: impl std::future::Future<Output = T>,
    idle: Duration,
    shutdown: &ShutdownSignal,
) -> Option<T> {
    let (stopping, idle_timer) = (pin!(shutdown.wait()), pin!(weir_runtime::clock::sleep(idle)));
    match select(pin!(read), select(stopping, idle_timer)).await {
        Either::Left((done, _)) => Some(done),
        Either::Right((Either::Left(_), _)) => None, // shutdown
        Either::Right((Either::Right(_), _)) => {
            shard.metrics().connection_idle_closed();
            tracing::debug!(%peer, "closing connection idle for {idle:?}");
            None
        }
    }
}

/// Two handles on one socket (a dup'd descriptor), so the reader and the writer
/// each own theirs and share no lock.
fn split(stream: TcpStream) -> std::io::Result<(TcpStream, TcpStream)> {
    // SAFETY: dup of a descriptor we own; the new one is owned by the new TcpStream.
    let fd = unsafe { libc::fcntl(stream.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh, open socket descriptor nothing else owns.
    let writer = unsafe { TcpStream::from_raw_fd(fd) };
    Ok((stream, writer))
}

/// A Fetch's place in the connection's line of fetches: it starts `after`
/// the previous one's answer is written, and its own answer, once written
/// (or dropped), lets the next start. Handed over in request order, so a
/// later fetch can never hold the turn an earlier one waits for.
struct FetchTurn {
    after: Option<oneshot::Receiver<()>>,
    written: oneshot::Sender<()>,
}

/// An answer for the writer (`None`: the request wants none), holding a
/// Fetch's turn until the answer is written.
struct Answer {
    frame: Option<ResponseFrame>,
    _fetch_written: Option<oneshot::Sender<()>>,
}

/// Answers a request and records the latency of produce and fetch. A Fetch
/// first waits for its turn.
async fn answer(
    shard: Rc<Shard>,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    client: handlers::ClientInfo,
    request: handlers::Request,
    fetch_turn: Option<FetchTurn>,
) -> anyhow::Result<Answer> {
    let fetch_written = match fetch_turn {
        Some(FetchTurn { after, written }) => {
            if let Some(previous) = after {
                let _ = previous.await; // written, or dropped with its connection
            }
            Some(written)
        }
        None => None,
    };
    if key == ApiKey::Fetch {
        // A fetch read before its connection was muted waits out the mute.
        client.quotas.unmuted().await;
    }
    let started = Instant::now();
    let frame = handlers::handle(shard.clone(), key, version, correlation_id, client, request).await?;
    match key {
        ApiKey::Produce => shard.metrics().produce_latency.record(started.elapsed()),
        ApiKey::Fetch => shard.metrics().fetch_latency.record(started.elapsed()),
        _ => {}
    }
    Ok(Answer { frame, _fetch_written: fetch_written })
}

type ResponseTask = weir_runtime::Task<anyhow::Result<Answer>>;

/// Writes the answers in request order; each request's permit (its share of
/// `queued_max_request_bytes`) is given back, and a Fetch's turn passed on,
/// once its answer is written.
async fn write_responses(
    shard: Rc<Shard>,
    mut writer: impl ResponseWriter,
    stall: Duration,
    pending: local_channel::LocalReceiver<(ResponseTask, StaticPermit)>,
) {
    while let Some((task, _permit)) = pending.recv().await {
        match task.await {
            Ok(Answer { frame: Some(response), .. }) => {
                if let Err(e) = writer.write_chunks(response.chunks(), stall).await {
                    tracing::debug!("write failed: {e}");
                    return;
                }
                shard.metrics().add_bytes_out(response.wire_bytes());
            }
            Ok(Answer { frame: None, .. }) => {}
            Err(e) => {
                tracing::error!("cannot encode a response, closing the connection: {e:#}");
                return;
            }
        }
    }
    writer.close_write().await;
}

/// The writing half of a connection, plaintext or TLS.
trait ResponseWriter: 'static {
    /// Writes `chunks` in order; fails with `TimedOut` when the socket has
    /// had no room for `stall`.
    async fn write_chunks(&mut self, chunks: &[Bytes], stall: Duration) -> std::io::Result<()>;
    /// Ends the connection's writing (a TLS close_notify, then FIN).
    async fn close_write(&mut self);
}

impl ResponseWriter for TcpStream {
    async fn write_chunks(&mut self, chunks: &[Bytes], stall: Duration) -> std::io::Result<()> {
        write_chunks(self, chunks, stall).await
    }

    async fn close_write(&mut self) {
        let _ = self.close().await;
    }
}

impl ResponseWriter for WriteHalf<TlsStream<VectoredStream>> {
    /// Hands rustls the unsent chunks in one vectored write (it takes what
    /// fits its buffer, a 64 KiB default, as whole records), then flushes.
    async fn write_chunks(&mut self, chunks: &[Bytes], stall: Duration) -> std::io::Result<()> {
        let mut unsent = Unsent::new(chunks);
        while !unsent.is_empty() {
            let slices: Vec<IoSlice<'_>> = unsent.parts().map(IoSlice::new).collect();
            let sent = weir_runtime::clock::timeout(stall, self.write_vectored(&slices))
                .await
                .ok_or(std::io::ErrorKind::TimedOut)??;
            unsent.advance(sent)?;
        }
        weir_runtime::clock::timeout(stall, self.flush()).await.ok_or(std::io::ErrorKind::TimedOut)?
    }

    async fn close_write(&mut self) {
        let _ = self.close().await;
    }
}

/// At most this many chunks go to one `sendmsg` (Linux allows 1024).
const MAX_IOVECS: usize = 64;

/// The unsent part of a response's chunks: chunk `index` from `offset` on.
struct Unsent<'a> {
    chunks: &'a [Bytes],
    index: usize,
    offset: usize,
}

impl<'a> Unsent<'a> {
    fn new(chunks: &'a [Bytes]) -> Self {
        let mut unsent = Unsent { chunks, index: 0, offset: 0 };
        unsent.skip_finished();
        unsent
    }

    fn is_empty(&self) -> bool {
        self.index == self.chunks.len()
    }

    /// The unsent bytes, at most `MAX_IOVECS` slices of them, in order.
    fn parts(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        let offset = self.offset;
        let chunks = self.chunks;
        chunks[self.index..].iter().take(MAX_IOVECS).enumerate().map(move |(i, chunk)| match i {
            0 => &chunk[offset..],
            _ => &chunk[..],
        })
    }

    /// Marks `sent` more bytes sent; none at all is `WriteZero`.
    fn advance(&mut self, mut sent: usize) -> std::io::Result<()> {
        if sent == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while sent > 0 && !self.is_empty() {
            let step = sent.min(self.chunks[self.index].len() - self.offset);
            (sent, self.offset) = (sent - step, self.offset + step);
            self.skip_finished();
        }
        Ok(())
    }

    fn skip_finished(&mut self) {
        while !self.is_empty() && self.offset == self.chunks[self.index].len() {
            (self.index, self.offset) = (self.index + 1, 0);
        }
    }
}

/// Writes `chunks` in order, as many per `sendmsg` as the socket takes
/// (glommio's TcpStream writes one buffer per call, which for a Fetch
/// response would be a send per partition); when the socket is full, waits
/// for room with glommio's own write, which sends part of the first chunk.
/// Fails with `TimedOut` when the socket has had no room for `stall`.
async fn write_chunks(writer: &mut TcpStream, chunks: &[Bytes], stall: Duration) -> std::io::Result<()> {
    let mut unsent = Unsent::new(chunks);
    while !unsent.is_empty() {
        let sent = match send_vectored(writer.as_raw_fd(), unsent.parts()) {
            Some(sent) => sent?,
            None => {
                let first = unsent.parts().next().unwrap_or_default();
                weir_runtime::clock::timeout(stall, writer.write(first)).await.ok_or(std::io::ErrorKind::TimedOut)??
            }
        };
        unsent.advance(sent)?;
    }
    Ok(())
}

/// One non-blocking `sendmsg` of `parts` (at most `MAX_IOVECS` are taken);
/// `None` when the socket has no room.
fn send_vectored<'a>(fd: std::os::fd::RawFd, parts: impl Iterator<Item = &'a [u8]>) -> Option<std::io::Result<usize>> {
    let mut iov = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; MAX_IOVECS];
    let mut count = 0;
    for part in parts.take(MAX_IOVECS) {
        iov[count] = libc::iovec { iov_base: part.as_ptr() as *mut libc::c_void, iov_len: part.len() };
        count += 1;
    }
    // SAFETY: an all-zero msghdr is valid (no name, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = count as _;
    loop {
        // SAFETY: `msg` points at `count` iovecs over live buffers; sendmsg only reads them.
        let sent = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
        if sent >= 0 {
            return Some(Ok(sent as usize));
        }
        let e = std::io::Error::last_os_error();
        match e.kind() {
            std::io::ErrorKind::Interrupted => continue,
            std::io::ErrorKind::WouldBlock => return None,
            _ => return Some(Err(e)),
        }
    }
}

/// glommio's TcpStream with a vectored write (`sendmsg`), so that rustls
/// sends its queue of encrypted records in one call rather than one per
/// record; when the socket is full it waits with glommio's own write.
pub struct VectoredStream(TcpStream);

impl AsRawFd for VectoredStream {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

impl AsyncRead for VectoredStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for VectoredStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match send_vectored(self.0.as_raw_fd(), bufs.iter().map(|b| &b[..])) {
            Some(sent) => Poll::Ready(sent),
            None => {
                let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| &b[..]);
                Pin::new(&mut self.0).poll_write(cx, first)
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::AsyncReadExt;

    #[test]
    fn chunks_arrive_whole_and_in_order_through_a_full_socket() {
        weir_runtime::LocalExecutorBuilder::default().make().expect("executor").run(async {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let address = listener.local_addr().expect("address");
            // Many small chunks and some larger than a socket buffer, so the
            // writer meets a full socket and resumes mid-chunk.
            let chunks: Vec<Bytes> = (0..300usize)
                .map(|i| Bytes::from(vec![i as u8; if i % 50 == 7 { 3 << 20 } else { 1 + i * 13 % 200 }]))
                .collect();
            let expected: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
            let reader = weir_runtime::spawn_local(async move {
                let mut stream = listener.accept().await.expect("accept");
                weir_runtime::clock::sleep(Duration::from_millis(50)).await; // let the socket fill
                let mut received = Vec::new();
                stream.read_to_end(&mut received).await.expect("read");
                received
            });
            let mut writer = TcpStream::connect(address).await.expect("connect");
            write_chunks(&mut writer, &chunks, Duration::from_secs(60)).await.expect("write");
            writer.close().await.expect("close");
            let received = reader.await;
            assert_eq!(received.len(), expected.len());
            assert!(received == expected, "bytes differ");
        });
    }
}
