//! Request frames out and response frames in, as a client sees them (the
//! broker's side, requests in and responses out, is `weir_net::codec`).

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

/// Encodes a whole request frame, its 4-byte length first.
pub fn encode_request<T: Encodable>(header: &RequestHeader, api_key: ApiKey, body: &T) -> anyhow::Result<Bytes> {
    let header_version = api_key.request_header_version(header.request_api_version);
    let version = header.request_api_version;
    let size = header.compute_size(header_version)? + body.compute_size(version)?;
    let mut buf = BytesMut::with_capacity(4 + size);
    buf.put_i32(i32::try_from(size)?);
    header.encode(&mut buf, header_version)?;
    body.encode(&mut buf, version)?;
    Ok(buf.freeze())
}

/// Splits a response frame (after its length) into correlation id and body.
pub fn decode_response<T: Decodable>(api_key: ApiKey, version: i16, mut frame: Bytes) -> anyhow::Result<(i32, T)> {
    let header = ResponseHeader::decode(&mut frame, api_key.response_header_version(version))?;
    let body = T::decode(&mut frame, version)?;
    Ok((header.correlation_id, body))
}
