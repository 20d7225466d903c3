//! The connection loop of one shard: accept, read frames, answer in order.
//!
//! Each connection has a reader task and a writer task. The reader decodes
//! frames and starts a task per request, up to `max_in_flight_per_connection`
//! at once (then it stops reading: backpressure); the writer sends the answers
//! in request order, as Kafka requires.

use crate::codec::{decode_header, read_frame};
use crate::handlers;
use bytes::Bytes;
use futures::future::{select, Either};
use futures_lite::io::{AsyncWriteExt, BufReader};
use glommio::channels::local_channel;
use glommio::net::{TcpListener, TcpStream};
use std::cell::Cell;
use std::os::fd::{AsRawFd, FromRawFd};
use std::pin::pin;
use std::rc::Rc;
use std::time::Duration;
use weir_shards::{Shard, ShutdownSignal};

/// How long shutdown waits for connections to finish their in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Read buffer per connection.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Accepts connections on this shard until shutdown, then lets the open ones
/// finish what they have in flight (bounded by `SHUTDOWN_GRACE`).
pub async fn serve_shard(shard: Rc<Shard>, shutdown: ShutdownSignal) -> Result<(), String> {
    let listener = TcpListener::bind(&shard.config().listen)
        .map_err(|e| format!("cannot listen on {}: {e}", shard.config().listen))?;
    let open_connections = Rc::new(Cell::new(0usize));
    loop {
        let accepted = match select(pin!(listener.accept()), pin!(shutdown.wait())).await {
            Either::Left((accepted, _)) => accepted,
            Either::Right(_) => break,
        };
        match accepted {
            Ok(stream) => {
                let (shard, shutdown, open) = (shard.clone(), shutdown.clone(), open_connections.clone());
                open.set(open.get() + 1);
                glommio::spawn_local(async move {
                    serve_connection(shard, stream, shutdown).await;
                    open.set(open.get() - 1);
                })
                .detach();
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(shard = shard.id(), "accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    let waited = std::time::Instant::now();
    while open_connections.get() > 0 && waited.elapsed() < SHUTDOWN_GRACE {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
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
    let (responses, pending) = local_channel::new_bounded(shard.config().max_in_flight_per_connection);
    let writer_task = glommio::spawn_local(write_responses(writer, pending));
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, reader);
    let max_frame = shard.config().socket_request_max_bytes;
    loop {
        let frame = match select(pin!(read_frame(&mut reader, max_frame)), pin!(shutdown.wait())).await {
            Either::Left((frame, _)) => frame,
            Either::Right(_) => break,
        };
        let mut frame = match frame {
            Ok(Some(frame)) => match decode_header(frame) {
                Ok(frame) => frame,
                Err(e) => {
                    tracing::info!(%peer, "closing connection: {e}");
                    break;
                }
            },
            Ok(None) => break,
            Err(e) => {
                tracing::info!(%peer, "closing connection: {e}");
                break;
            }
        };
        let (key, version, correlation_id) =
            (frame.api_key, frame.header.request_api_version, frame.header.correlation_id);
        let request = match handlers::decode(&mut frame) {
            Ok(request) => request,
            Err(e) => {
                tracing::info!(%peer, "closing connection: {e}");
                break;
            }
        };
        let client = handlers::ClientInfo {
            client_id: frame.header.client_id.as_ref().map_or_else(String::new, |c| c.to_string()),
            host: format!("/{}", peer.rsplit_once(':').map_or(peer.as_str(), |(host, _)| host)),
        };
        let task = glommio::spawn_local(handlers::handle(shard.clone(), key, version, correlation_id, client, request));
        if responses.send(task).await.is_err() {
            break; // the writer failed: the connection is done
        }
    }
    drop(responses);
    // The writer sends what is in flight, then the connection closes.
    let _ = writer_task.await;
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

type ResponseTask = glommio::Task<anyhow::Result<Option<Bytes>>>;

async fn write_responses<W: futures_lite::AsyncWrite + Unpin>(
    mut writer: W,
    pending: local_channel::LocalReceiver<ResponseTask>,
) {
    while let Some(task) = pending.recv().await {
        match task.await {
            Ok(Some(response)) => {
                if let Err(e) = writer.write_all(&response).await {
                    tracing::debug!("write failed: {e}");
                    return;
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!("cannot encode a response, closing the connection: {e:#}");
                return;
            }
        }
    }
    let _ = writer.close().await;
}
