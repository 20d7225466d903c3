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

use crate::codec::{decode_header, read_frame_length, read_frame_payload, read_sasl_token_length, ResponseFrame};
use crate::handlers;
use crate::sasl::{self, Authenticator};
use bytes::Bytes;
use futures::channel::oneshot;
use futures::future::{select, Either};
use futures::io::{AsyncWriteExt, BufReader};
use kafka_protocol::messages::ApiKey;
use std::cell::Cell;
use std::os::fd::{AsRawFd, FromRawFd};
use std::pin::pin;
use std::rc::Rc;
use std::time::{Duration, Instant};
use weir_runtime::channels::local_channel::{self, LocalSender};
use weir_runtime::net::{TcpListener, TcpStream};
use weir_runtime::sync::{Semaphore, StaticPermit};
use weir_shards::{ConnectionPermit, SecurityProtocol, Shard, ShutdownSignal};

/// How long shutdown waits for connections to finish their in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// A failed SASL authentication is answered this late (Kafka's
/// `connection.failed.authentication.delay.ms`), which slows a client
/// guessing passwords, whose retries follow the answer.
const FAILED_AUTHENTICATION_DELAY: Duration = Duration::from_millis(100);
/// Read buffer per connection.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Accepts connections on this shard's `listener` until shutdown, then lets the open ones
/// finish what they have in flight (bounded by `SHUTDOWN_GRACE`).
pub async fn serve_shard(shard: Rc<Shard>, listener: TcpListener, shutdown: ShutdownSignal) -> Result<(), String> {
    if shard.id() == weir_shards::ownership::CONTROLLER_SHARD {
        start_admin_endpoint(&shard, &shutdown);
    }
    shard.metrics().serving.set(true);
    let open_connections = Rc::new(Cell::new(0usize));
    loop {
        let accepted = match select(pin!(listener.accept()), pin!(shutdown.wait())).await {
            Either::Left((accepted, _)) => accepted,
            Either::Right(_) => break,
        };
        match accepted {
            Ok(stream) => {
                let Some(permit) = admit(&shard, &stream) else { continue };
                let (shard, shutdown, open) = (shard.clone(), shutdown.clone(), open_connections.clone());
                open.set(open.get() + 1);
                shard.metrics().connection_opened();
                weir_runtime::spawn_local(async move {
                    serve_connection(shard.clone(), stream, shutdown).await;
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
    shard.metrics().serving.set(false);
    let waited = Instant::now();
    while open_connections.get() > 0 && waited.elapsed() < SHUTDOWN_GRACE {
        weir_runtime::clock::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
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

async fn serve_connection(shard: Rc<Shard>, stream: TcpStream, shutdown: ShutdownSignal) {
    let peer = stream.peer_addr().map_or_else(|_| "?".to_string(), |a| a.to_string());
    let _ = stream.set_nodelay(true);
    let (reader, writer) = match split(stream) {
        Ok(halves) => halves,
        Err(e) => {
            tracing::warn!(%peer, "cannot set up connection: {e}");
            return;
        }
    };
    let config = shard.config();
    let stall = Duration::from_millis(config.response_write_timeout_ms);
    let (responses, pending) = local_channel::new_bounded(config.max_in_flight_per_connection);
    let writer_task = weir_runtime::spawn_local(write_responses(shard.clone(), writer, stall, pending));
    let socket = reader.as_raw_fd();
    let reading = pin!(read_requests(&shard, reader, &peer, &shutdown, responses));
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
    reader: TcpStream,
    peer: &str,
    shutdown: &ShutdownSignal,
    responses: LocalSender<(ResponseTask, StaticPermit)>,
) {
    let config = shard.config();
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, reader);
    let max_frame = config.socket_request_max_bytes;
    let idle = Duration::from_millis(config.connections_max_idle_ms);
    // Bytes of the frames whose answers are not written yet.
    let budget_bytes = config.queued_max_request_bytes as u64;
    let budget = Rc::new(Semaphore::new(budget_bytes));
    // Resolves once the previous Fetch's answer is written (or dropped).
    let mut previous_fetch_written: Option<oneshot::Receiver<()>> = None;
    let mut authenticator = (config.security_protocol() == SecurityProtocol::SaslPlaintext)
        .then(|| Authenticator::new(config.sasl_enabled_mechanisms.clone(), config.connections_max_reauth_ms));
    loop {
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
        let client = handlers::ClientInfo {
            client_id: frame.header.client_id.as_ref().map_or_else(String::new, |c| c.to_string()),
            host: format!("/{}", peer.rsplit_once(':').map_or(peer, |(host, _)| host)),
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
    mut writer: TcpStream,
    stall: Duration,
    pending: local_channel::LocalReceiver<(ResponseTask, StaticPermit)>,
) {
    while let Some((task, _permit)) = pending.recv().await {
        match task.await {
            Ok(Answer { frame: Some(response), .. }) => {
                if let Err(e) = write_chunks(&mut writer, response.chunks(), stall).await {
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
    let _ = writer.close().await;
}

/// At most this many chunks go to one `sendmsg` (Linux allows 1024).
const MAX_IOVECS: usize = 64;

/// Writes `chunks` in order, as many per `sendmsg` as the socket takes
/// (glommio's TcpStream writes one buffer per call, which for a Fetch
/// response would be a send per partition); when the socket is full, waits
/// for room with glommio's own write, which sends part of the first chunk.
/// Fails with `TimedOut` when the socket has had no room for `stall`.
async fn write_chunks(writer: &mut TcpStream, chunks: &[Bytes], stall: Duration) -> std::io::Result<()> {
    // The first unsent byte: chunk `index`, at `offset`.
    let (mut index, mut offset) = (0, 0);
    while index < chunks.len() {
        if offset == chunks[index].len() {
            (index, offset) = (index + 1, 0);
            continue;
        }
        let mut sent = match send_vectored(writer.as_raw_fd(), &chunks[index..], offset) {
            Some(sent) => sent?,
            None => weir_runtime::clock::timeout(stall, writer.write(&chunks[index][offset..]))
                .await
                .ok_or(std::io::ErrorKind::TimedOut)??,
        };
        if sent == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while sent > 0 {
            let step = sent.min(chunks[index].len() - offset);
            (sent, offset) = (sent - step, offset + step);
            if offset == chunks[index].len() {
                (index, offset) = (index + 1, 0);
            }
        }
    }
    Ok(())
}

/// One non-blocking `sendmsg` of the chunks from `offset` into the first;
/// `None` when the socket has no room.
fn send_vectored(fd: std::os::fd::RawFd, chunks: &[Bytes], offset: usize) -> Option<std::io::Result<usize>> {
    let mut iov = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; MAX_IOVECS];
    let mut count = 0;
    for (i, chunk) in chunks.iter().take(MAX_IOVECS).enumerate() {
        let part = if i == 0 { &chunk[offset..] } else { &chunk[..] };
        iov[count] = libc::iovec { iov_base: part.as_ptr() as *mut libc::c_void, iov_len: part.len() };
        count += 1;
    }
    // SAFETY: an all-zero msghdr is valid (no name, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = count as _;
    loop {
        // SAFETY: `msg` points at `count` iovecs over live `Bytes`; sendmsg only reads them.
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
