//! The admin HTTP endpoint, served by the controller shard: `GET /health` and
//! `GET /metrics` (Prometheus text format); with `test_clock` set, also
//! `POST /test/clock?advance_ms=N`, which moves the broker's clock forward.
//!
//! A deliberately small HTTP/1.1 server: no request bodies, one request per connection
//! (`Connection: close`), a request head of at most `MAX_REQUEST_BYTES`
//! read within `REQUEST_TIMEOUT`, at most `MAX_CONNECTIONS` at once.

use crate::metrics;
use futures::future::{select, Either};
use futures::io::{AsyncReadExt, AsyncWriteExt};
use std::cell::Cell;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::pin::pin;
use std::rc::Rc;
use std::time::Duration;
use weir_runtime::net::{TcpListener, TcpStream};
use weir_shards::{Shard, ShutdownSignal};

/// Largest request head (request line and headers) read.
const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// Time a client has to send its request head.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Admin connections served at once; more are closed at once.
const MAX_CONNECTIONS: usize = 16;

/// Binds `admin_listen` without SO_REUSEPORT (so a second broker on the same
/// address fails to bind instead of sharing it silently).
pub fn bind(address: &str) -> std::io::Result<TcpListener> {
    let listener = std::net::TcpListener::bind(address)?;
    listener.set_nonblocking(true)?;
    // SAFETY: a bound, listening socket we own; ownership moves to glommio.
    Ok(unsafe { TcpListener::from_raw_fd(listener.into_raw_fd()) })
}

/// Serves the admin endpoint until shutdown.
pub async fn serve(shard: Rc<Shard>, listener: TcpListener, shutdown: ShutdownSignal) {
    let open = Rc::new(Cell::new(0usize));
    loop {
        let accepted = match select(pin!(listener.accept()), pin!(shutdown.wait())).await {
            Either::Left((accepted, _)) => accepted,
            Either::Right(_) => return,
        };
        match accepted {
            Ok(stream) if open.get() < MAX_CONNECTIONS => {
                open.set(open.get() + 1);
                let (shard, open) = (shard.clone(), open.clone());
                weir_runtime::spawn_local(async move {
                    if let Err(e) = serve_request(&shard, stream).await {
                        tracing::debug!("admin request failed: {e}");
                    }
                    open.set(open.get() - 1);
                })
                .detach();
            }
            Ok(stream) => drop(stream),
            Err(e) => {
                tracing::warn!("admin accept failed: {e}");
                weir_runtime::clock::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_request(shard: &Shard, mut stream: TcpStream) -> std::io::Result<()> {
    let head = match select(pin!(read_head(&mut stream)), pin!(weir_runtime::clock::sleep(REQUEST_TIMEOUT))).await {
        Either::Left((head, _)) => head?,
        Either::Right(_) => return Ok(()),
    };
    let (status, content_type, body) = match parse_request_line(&head) {
        Some(("GET", "/health", _)) => health(shard).await,
        Some(("GET", "/metrics", _)) => {
            let text = metrics::render(&shard.gather_stats().await);
            ("200 OK", "text/plain; version=0.0.4; charset=utf-8", text)
        }
        Some(("POST", "/test/clock", query)) => advance_test_clock(query),
        Some(("GET", _, _)) => ("404 Not Found", "text/plain", "not found\n".to_string()),
        Some(_) => ("405 Method Not Allowed", "text/plain", "GET only\n".to_string()),
        None => ("400 Bad Request", "text/plain", "bad request\n".to_string()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.close().await
}

/// 200 "ok" when every shard answered and is serving Kafka; 503 otherwise.
async fn health(shard: &Shard) -> (&'static str, &'static str, String) {
    let shards = shard.gather_stats().await;
    let down: Vec<usize> =
        shards.iter().enumerate().filter(|(_, s)| !s.as_ref().is_some_and(|s| s.serving)).map(|(id, _)| id).collect();
    if down.is_empty() {
        ("200 OK", "text/plain", "ok\n".to_string())
    } else {
        ("503 Service Unavailable", "text/plain", format!("shards not serving: {down:?}\n"))
    }
}

/// Moves the broker's test clock forward by the query's `advance_ms` (every
/// shard installed the same clock, so one advance here moves them all).
fn advance_test_clock(query: &str) -> (&'static str, &'static str, String) {
    let Some(ms) = query.strip_prefix("advance_ms=").and_then(|ms| ms.parse::<u64>().ok()) else {
        return ("400 Bad Request", "text/plain", "expected ?advance_ms=N\n".to_string());
    };
    if weir_runtime::clock::advance(Duration::from_millis(ms)) {
        ("200 OK", "text/plain", format!("advanced {ms} ms\n"))
    } else {
        ("404 Not Found", "text/plain", "no test clock: the broker runs with test_clock = false\n".to_string())
    }
}

/// Reads up to the blank line that ends the request head; a head longer
/// than `MAX_REQUEST_BYTES` is an error.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break; // a client may half-close after its request
        }
        head.extend_from_slice(&chunk[..n]);
        if head.len() > MAX_REQUEST_BYTES {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "request head too large"));
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// (method, path, query) of the request line; the query is "" when absent.
fn parse_request_line(head: &str) -> Option<(&str, &str, &str)> {
    let mut parts = head.lines().next()?.split_whitespace();
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if !version.starts_with("HTTP/1.") || parts.next().is_some() {
        return None;
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Some((method, path, query))
}

#[cfg(test)]
mod tests {
    use super::parse_request_line;

    #[test]
    fn request_lines() {
        assert_eq!(parse_request_line("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), Some(("GET", "/metrics", "")));
        assert_eq!(parse_request_line("GET /health?x=1 HTTP/1.0\r\n\r\n"), Some(("GET", "/health", "x=1")));
        assert_eq!(parse_request_line("POST /metrics HTTP/1.1\r\n\r\n"), Some(("POST", "/metrics", "")));
        assert_eq!(parse_request_line("garbage\r\n\r\n"), None);
        assert_eq!(parse_request_line(""), None);
    }
}
