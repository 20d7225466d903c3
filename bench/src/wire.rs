//! One Kafka connection for the data path: versions negotiated once, then
//! frames written and read by separate threads (`split`), so several requests
//! can be in flight. Every socket operation has a timeout.

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader};
use kafka_protocol::protocol::{Request, StrBytes};
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;
use weir_client::codec::{decode_response, encode_request};

/// Responses larger than this are refused rather than allocated.
pub const MAX_RESPONSE_BYTES: usize = 256 << 20;

/// The writing half (or the whole connection before `split`).
pub struct Conn {
    stream: TcpStream,
    addr: String,
    next_correlation_id: i32,
    /// The broker's (min, max) version per API key.
    versions: HashMap<i16, (i16, i16)>,
}

/// The reading half of a split connection.
pub struct Reader {
    stream: TcpStream,
    addr: String,
}

impl Conn {
    /// Connects to `addr` with `timeout` on connect, reads and writes, and learns the broker's versions.
    pub fn connect(addr: &str, timeout: Duration) -> anyhow::Result<Conn> {
        let addrs = addr.to_socket_addrs().with_context(|| format!("cannot resolve '{addr}'"))?;
        let mut last_error = anyhow!("'{addr}' resolved to no address");
        for a in addrs {
            match TcpStream::connect_timeout(&a, timeout) {
                Ok(stream) => {
                    stream.set_read_timeout(Some(timeout))?;
                    stream.set_write_timeout(Some(timeout))?;
                    stream.set_nodelay(true)?;
                    let mut conn =
                        Conn { stream, addr: addr.to_string(), next_correlation_id: 0, versions: HashMap::new() };
                    conn.negotiate().with_context(|| format!("negotiating API versions with {addr}"))?;
                    return Ok(conn);
                }
                Err(e) => last_error = anyhow!("cannot connect to {addr} ({a}): {e}"),
            }
        }
        Err(last_error)
    }

    fn negotiate(&mut self) -> anyhow::Result<()> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("weir-bench"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut response: ApiVersionsResponse = self.roundtrip(&request, 3)?;
        if response.error_code == ResponseError::UnsupportedVersion.code() {
            response = self.roundtrip(&ApiVersionsRequest::default(), 0)?;
        }
        if response.error_code != 0 {
            bail!("ApiVersions failed with error code {}", response.error_code);
        }
        self.versions = response.api_keys.iter().map(|k| (k.api_key, (k.min_version, k.max_version))).collect();
        Ok(())
    }

    /// The highest version of `R` both sides support, at most `max` and at least `min`.
    pub fn version_for<R: Request>(&self, min: i16, max: i16) -> anyhow::Result<i16> {
        let key = api_key::<R>()?;
        let (broker_min, broker_max) =
            *self.versions.get(&R::KEY).ok_or_else(|| anyhow!("the broker does not support {key:?}"))?;
        let version = broker_max.min(max).min(R::VERSIONS.max);
        if version < broker_min.max(min).max(R::VERSIONS.min) {
            bail!("no common version of {key:?}: broker has {broker_min}..={broker_max}, we need {min}..={max}");
        }
        Ok(version)
    }

    /// A new correlation id.
    pub fn next_correlation_id(&mut self) -> i32 {
        let id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        id
    }

    /// Encodes `request` at `version` as a whole frame with a fresh correlation id.
    pub fn encode<R: Request>(&mut self, request: &R, version: i16) -> anyhow::Result<(i32, Bytes)> {
        let correlation_id = self.next_correlation_id();
        Ok((correlation_id, encode_frame(request, version, correlation_id)?))
    }

    /// Writes a whole frame.
    pub fn write_frame(&mut self, frame: &[u8]) -> anyhow::Result<()> {
        self.stream.write_all(frame).map_err(|e| io_error(e, &self.addr, "sending to"))
    }

    /// Sends `request` and waits for its answer (only before `split`).
    pub fn roundtrip<R: Request>(&mut self, request: &R, version: i16) -> anyhow::Result<R::Response> {
        let (correlation_id, frame) = self.encode(request, version)?;
        self.write_frame(&frame)?;
        let answer = read_frame(&mut self.stream, &self.addr)?;
        decode_answer::<R>(answer, version, correlation_id)
    }

    /// Sets the timeout of reads (a long poll needs its wait on top).
    pub fn set_read_timeout(&self, timeout: Duration) -> anyhow::Result<()> {
        Ok(self.stream.set_read_timeout(Some(timeout))?)
    }

    /// A reading half; this stays the writing half.
    pub fn split(&self) -> anyhow::Result<Reader> {
        Ok(Reader { stream: self.stream.try_clone()?, addr: self.addr.clone() })
    }

    /// Closes both directions, which wakes a reader blocked on this socket.
    pub fn shutdown(&self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

impl Reader {
    /// The next response frame (after the length prefix).
    pub fn read_frame(&mut self) -> anyhow::Result<Bytes> {
        read_frame(&mut self.stream, &self.addr)
    }
}

fn api_key<R: Request>() -> anyhow::Result<ApiKey> {
    ApiKey::try_from(R::KEY).map_err(|_| anyhow!("unknown api key {}", R::KEY))
}

/// A whole request frame: length, header (client id "weir-bench"), body.
pub fn encode_frame<R: Request>(request: &R, version: i16, correlation_id: i32) -> anyhow::Result<Bytes> {
    let key = api_key::<R>()?;
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("weir-bench")));
    encode_request(&header, key, request)
}

/// Where the correlation id sits in a request frame (after length, api key, version).
pub const REQUEST_CORRELATION_AT: usize = 8;

/// Rewrites the correlation id of an encoded request frame.
pub fn patch_correlation_id(frame: &mut [u8], correlation_id: i32) {
    frame[REQUEST_CORRELATION_AT..REQUEST_CORRELATION_AT + 4].copy_from_slice(&correlation_id.to_be_bytes());
}

/// The correlation id of a response frame (the first field of every response header).
pub fn response_correlation_id(frame: &[u8]) -> anyhow::Result<i32> {
    let id = frame.get(..4).ok_or_else(|| anyhow!("response of {} bytes has no header", frame.len()))?;
    Ok(i32::from_be_bytes([id[0], id[1], id[2], id[3]]))
}

/// Decodes the answer to a request sent with `correlation_id`.
pub fn decode_answer<R: Request>(frame: Bytes, version: i16, correlation_id: i32) -> anyhow::Result<R::Response> {
    let key = api_key::<R>()?;
    let (answered, response) = decode_response::<R::Response>(key, version, frame)
        .with_context(|| format!("decoding a {key:?} v{version} response"))?;
    if answered != correlation_id {
        bail!("response correlation id {answered} does not match request {correlation_id}");
    }
    Ok(response)
}

fn read_frame(stream: &mut TcpStream, addr: &str) -> anyhow::Result<Bytes> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).map_err(|e| io_error(e, addr, "reading from"))?;
    let len = i32::from_be_bytes(len);
    let len = usize::try_from(len)
        .ok()
        .filter(|&n| n <= MAX_RESPONSE_BYTES)
        .ok_or_else(|| anyhow!("{addr} sent a response of bad length {len}"))?;
    let mut frame = vec![0u8; len];
    stream.read_exact(&mut frame).map_err(|e| io_error(e, addr, "reading from"))?;
    Ok(Bytes::from(frame))
}

/// Turns socket errors into messages a user can act on.
fn io_error(e: std::io::Error, addr: &str, doing: &str) -> anyhow::Error {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => {
            anyhow!("{doing} {addr} timed out: the broker stopped answering (see --timeout)")
        }
        ErrorKind::UnexpectedEof
        | ErrorKind::ConnectionReset
        | ErrorKind::BrokenPipe
        | ErrorKind::ConnectionAborted => {
            anyhow!("{addr} closed the connection ({e}): did the broker stop?")
        }
        _ => anyhow!("{doing} {addr}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::MetadataRequest;

    #[test]
    fn correlation_id_can_be_patched_in_an_encoded_frame() {
        let mut frame = encode_frame(&MetadataRequest::default(), 9, 7).unwrap().to_vec();
        patch_correlation_id(&mut frame, 123_456);
        let decoded = weir_net::codec::decode_header(Bytes::from(frame).slice(4..)).unwrap();
        assert_eq!(decoded.header.correlation_id, 123_456);
        assert_eq!(decoded.header.client_id.as_deref(), Some("weir-bench"));
    }

    #[test]
    fn unreachable_addresses_fail_quickly_with_a_message() {
        // Port 1 on localhost: nothing listens there.
        let err = Conn::connect("127.0.0.1:1", Duration::from_secs(2)).err().expect("nothing listens on port 1");
        assert!(err.to_string().contains("cannot connect to 127.0.0.1:1"), "{err}");
        let err = Conn::connect("no-such-host.invalid:9092", Duration::from_secs(2)).err().expect("bad name");
        assert!(err.to_string().contains("cannot resolve"), "{err}");
    }
}
