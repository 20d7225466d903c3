//! A small blocking Kafka client for the `weir` tools and the bench: one
//! connection, versions negotiated with ApiVersions, requests answered in order.

use crate::codec::{decode_response, encode_request};
use anyhow::{anyhow, bail, Context};
use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader};
use kafka_protocol::protocol::{Request, StrBytes};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longer than any long poll the tools ask for.
const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// Responses larger than this are refused rather than allocated.
const MAX_RESPONSE_BYTES: usize = 256 << 20;

/// What a client talks over: a TCP stream, or a TLS stream over one.
pub trait Transport: Read + Write + Send {}
impl<T: Read + Write + Send> Transport for T {}

pub struct Client {
    stream: Box<dyn Transport>,
    next_correlation_id: i32,
    /// Broker's (min, max) version per API key.
    versions: HashMap<i16, (i16, i16)>,
}

impl Client {
    /// Connects to the first address that answers of `bootstrap`: host:port,
    /// or several separated by commas (Kafka's bootstrap.servers).
    pub fn connect(bootstrap: &str) -> anyhow::Result<Client> {
        let mut last_error = anyhow!("no host:port in '{bootstrap}'");
        for server in bootstrap.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let addrs = match server.to_socket_addrs() {
                Ok(addrs) => addrs,
                Err(e) => {
                    last_error = anyhow!("cannot resolve '{server}': {e}");
                    continue;
                }
            };
            for addr in addrs {
                match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                    Ok(stream) => {
                        stream.set_read_timeout(Some(IO_TIMEOUT))?;
                        stream.set_write_timeout(Some(IO_TIMEOUT))?;
                        stream.set_nodelay(true)?;
                        return Client::over(stream);
                    }
                    Err(e) => last_error = anyhow!("cannot connect to {server} ({addr}): {e}"),
                }
            }
        }
        Err(last_error)
    }

    /// A client over a connected `stream` (a TLS one, say); negotiates versions.
    pub fn over(stream: impl Transport + 'static) -> anyhow::Result<Client> {
        let mut client = Client { stream: Box::new(stream), next_correlation_id: 0, versions: HashMap::new() };
        client.negotiate_versions()?;
        Ok(client)
    }

    fn negotiate_versions(&mut self) -> anyhow::Result<()> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("weir"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut response: ApiVersionsResponse = self.send_at(&request, 3)?;
        if response.error_code == ResponseError::UnsupportedVersion.code() {
            response = self.send_at(&ApiVersionsRequest::default(), 0)?;
        }
        if response.error_code != 0 {
            bail!("ApiVersions failed with error code {}", response.error_code);
        }
        self.versions = response.api_keys.iter().map(|k| (k.api_key, (k.min_version, k.max_version))).collect();
        Ok(())
    }

    /// The version to use for `R`: the highest both sides support, at most `max`.
    pub fn version_for<R: Request>(&self, max: i16) -> anyhow::Result<i16> {
        let key = ApiKey::try_from(R::KEY).map_err(|_| anyhow!("unknown api key {}", R::KEY))?;
        let (broker_min, broker_max) =
            *self.versions.get(&R::KEY).ok_or_else(|| anyhow!("the broker does not support {key:?}"))?;
        let version = broker_max.min(max).min(R::VERSIONS.max);
        if version < broker_min.max(R::VERSIONS.min) {
            bail!("no common version of {key:?}: broker has {broker_min}..={broker_max}, we have up to {max}");
        }
        Ok(version)
    }

    /// Sends `request` at the best common version up to `max` and waits for the answer.
    pub fn send<R: Request>(&mut self, request: &R, max: i16) -> anyhow::Result<R::Response> {
        let version = self.version_for::<R>(max)?;
        self.send_at(request, version)
    }

    /// Sends without waiting for an answer (Produce with acks=0).
    pub fn send_no_response<R: Request>(&mut self, request: &R, max: i16) -> anyhow::Result<()> {
        let version = self.version_for::<R>(max)?;
        self.write_request(request, version).map(drop)
    }

    fn write_request<R: Request>(&mut self, request: &R, version: i16) -> anyhow::Result<(ApiKey, i32)> {
        let key = ApiKey::try_from(R::KEY).map_err(|_| anyhow!("unknown api key {}", R::KEY))?;
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("weir")));
        let frame = encode_request(&header, key, request)?;
        self.stream.write_all(&frame).with_context(|| format!("sending {key:?}"))?;
        Ok((key, correlation_id))
    }

    fn send_at<R: Request>(&mut self, request: &R, version: i16) -> anyhow::Result<R::Response> {
        let (key, correlation_id) = self.write_request(request, version)?;
        let frame = self.read_frame().with_context(|| format!("reading the {key:?} response"))?;
        let (answered, response) = decode_response::<R::Response>(key, version, frame)?;
        if answered != correlation_id {
            bail!("response correlation id {answered} does not match request {correlation_id}");
        }
        Ok(response)
    }

    fn read_frame(&mut self) -> anyhow::Result<Bytes> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => anyhow!("the broker closed the connection"),
            _ => e.into(),
        })?;
        let len = i32::from_be_bytes(len);
        let len = usize::try_from(len).ok().filter(|&n| n <= MAX_RESPONSE_BYTES);
        let len = len.ok_or_else(|| anyhow!("bad response length"))?;
        let mut frame = BytesMut::zeroed(len);
        self.stream.read_exact(&mut frame)?;
        Ok(frame.freeze())
    }
}
