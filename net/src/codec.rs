//! Kafka framing: a 4-byte big-endian length, then a request header and body.

use crate::chunked::ChunkedBuf;
use bytes::{Buf, Bytes, BytesMut};
use futures::io::{AsyncRead, AsyncReadExt};
use kafka_protocol::messages::{ApiKey, FetchResponse, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::{Decodable, Encodable};
use std::io;
use std::mem::MaybeUninit;

/// The smallest possible request: api key, api version, correlation id.
const MIN_REQUEST_BYTES: usize = 8;

#[derive(thiserror::Error, Debug)]
pub enum FrameError {
    #[error("frame length {0} is outside {1}..={2}")]
    BadLength(i64, usize, usize),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Reads a frame's 4-byte length and checks it against `max_bytes`; returns
/// the payload length. `Ok(None)` when the peer closed between frames.
/// The payload is read separately ([`read_frame_payload`]) so the caller can
/// wait for room for it first.
pub async fn read_frame_length<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_bytes: usize,
) -> Result<Option<usize>, FrameError> {
    read_length(reader, MIN_REQUEST_BYTES, max_bytes).await
}

/// Reads the 4-byte length of a bare SASL token (after a v0 SaslHandshake,
/// KIP-152: no Kafka header, any length up to `max_bytes`, even 0).
pub async fn read_sasl_token_length<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_bytes: usize,
) -> Result<Option<usize>, FrameError> {
    read_length(reader, 0, max_bytes).await
}

async fn read_length<R: AsyncRead + Unpin>(
    reader: &mut R,
    min_bytes: usize,
    max_bytes: usize,
) -> Result<Option<usize>, FrameError> {
    let mut len = [0u8; 4];
    let mut filled = 0;
    while filled < len.len() {
        match reader.read(&mut len[filled..]).await? {
            0 if filled == 0 => return Ok(None),
            0 => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
            n => filled += n,
        }
    }
    let len = i32::from_be_bytes(len);
    if len < min_bytes as i32 || len as usize > max_bytes {
        return Err(FrameError::BadLength(i64::from(len), min_bytes, max_bytes));
    }
    Ok(Some(len as usize))
}

/// A reader whose `poll_read` only writes into the buffer it is given, so it
/// may be given memory not initialised yet: a frame's payload is read
/// straight into fresh capacity, not zeroed first (zeroing was ~15% of a
/// produce-heavy broker's CPU).
///
/// # Safety
/// `poll_read` must never read `buf`, and the count it returns must be
/// bytes it wrote at the start of `buf`.
pub unsafe trait WriteOnlyRead: AsyncRead {}

// SAFETY: copies out of the cursor's slice into `buf`.
unsafe impl<T: AsRef<[u8]> + Unpin> WriteOnlyRead for futures::io::Cursor<T> {}
// SAFETY: copies out of its own buffer into `buf`, or hands `buf` to the
// inner reader, which only writes.
unsafe impl<R: WriteOnlyRead> WriteOnlyRead for futures::io::BufReader<R> {}
// SAFETY: hands `buf` to the shared reader, which only writes.
unsafe impl<R: WriteOnlyRead> WriteOnlyRead for futures::io::ReadHalf<R> {}

/// Reads a frame's payload of `len` bytes (from [`read_frame_length`]); a
/// connection closed before its end is an `UnexpectedEof` error.
pub async fn read_frame_payload<R: WriteOnlyRead + Unpin>(reader: &mut R, len: usize) -> Result<Bytes, FrameError> {
    let mut payload = BytesMut::with_capacity(len);
    while payload.len() < len {
        let filled = payload.len();
        let unfilled = &mut payload.spare_capacity_mut()[..len - filled];
        // SAFETY: `R: WriteOnlyRead` never reads the uninitialised bytes
        // behind this slice; it only writes them.
        let unfilled = unsafe { &mut *(unfilled as *mut [MaybeUninit<u8>] as *mut [u8]) };
        let n = reader.read(unfilled).await?;
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
        // SAFETY: the reader wrote the first `n` bytes after the length
        // (`WriteOnlyRead`'s contract), and `n` is at most what was left.
        unsafe { payload.set_len(filled + n) };
    }
    Ok(payload.freeze())
}

/// A request whose header has been decoded; `body` is what follows it.
pub struct RequestFrame {
    pub api_key: ApiKey,
    pub header: RequestHeader,
    pub body: Bytes,
}

#[derive(thiserror::Error, Debug)]
pub enum HeaderError {
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    #[error("malformed request header: {0}")]
    Malformed(String),
}

/// Splits a frame into its decoded header and the undecoded body.
pub fn decode_header(mut frame: Bytes) -> Result<RequestFrame, HeaderError> {
    debug_assert!(frame.len() >= MIN_REQUEST_BYTES, "read_frame_length enforces the minimum");
    let raw_key = (&frame[0..2]).get_i16();
    let version = (&frame[2..4]).get_i16();
    let api_key = ApiKey::try_from(raw_key).map_err(|_| HeaderError::UnknownApiKey(raw_key))?;
    let newer_api_versions =
        api_key == ApiKey::ApiVersions && crate::apis::supported_range(api_key).is_some_and(|(_, max)| version > max);
    if newer_api_versions {
        // A version newer than ours may have a header we cannot parse; the
        // v0 answer only needs the correlation id, which never moves.
        let correlation_id = (&frame[4..8]).get_i32();
        let header = RequestHeader::default()
            .with_request_api_key(raw_key)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id);
        return Ok(RequestFrame { api_key, header, body: Bytes::new() });
    }
    let header_version = api_key.request_header_version(version);
    let header =
        RequestHeader::decode(&mut frame, header_version).map_err(|e| HeaderError::Malformed(e.to_string()))?;
    Ok(RequestFrame { api_key, header, body: frame })
}

/// A response frame as the connection writer sends it.
pub enum ResponseFrame {
    /// One buffer (every API but Fetch).
    Whole(Bytes),
    /// Small encoded pieces around record bytes passed through from the log
    /// or its cache (Fetch), to be written in order.
    Chunks(Vec<Bytes>),
}

impl ResponseFrame {
    pub fn chunks(&self) -> &[Bytes] {
        match self {
            ResponseFrame::Whole(bytes) => std::slice::from_ref(bytes),
            ResponseFrame::Chunks(chunks) => chunks,
        }
    }

    /// Bytes on the wire, length prefix included.
    pub fn wire_bytes(&self) -> usize {
        self.chunks().iter().map(Bytes::len).sum()
    }
}

/// Encodes a whole response frame: length, header for `api_key`/`version`, body.
pub fn encode_response<T: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
) -> anyhow::Result<Bytes> {
    let size = response_size(api_key, version, body)?;
    let mut buf = BytesMut::with_capacity(4 + size);
    encode_response_into(&mut buf, api_key, version, correlation_id, body, size)?;
    debug_assert_eq!(buf.len(), 4 + size);
    Ok(buf.freeze())
}

/// Encodes a Fetch response frame like [`encode_response`], with each
/// partition's records passed through as its own chunk.
pub fn encode_fetch_response(version: i16, correlation_id: i32, body: &FetchResponse) -> anyhow::Result<ResponseFrame> {
    let records = body.responses.iter().flat_map(|t| &t.partitions).filter_map(|p| p.records.clone());
    encode_response_chunks(ApiKey::Fetch, version, correlation_id, body, records).map(ResponseFrame::Chunks)
}

/// Encodes a response frame like [`encode_response`], as chunks in which each
/// of `pass_through` (byte fields of `body`, in encoding order) is its own
/// chunk, the same memory, not a copy.
fn encode_response_chunks<T: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
    pass_through: impl IntoIterator<Item = Bytes>,
) -> anyhow::Result<Vec<Bytes>> {
    let size = response_size(api_key, version, body)?;
    let mut buf = ChunkedBuf::new(4 + size, pass_through);
    encode_response_into(&mut buf, api_key, version, correlation_id, body, size)?;
    debug_assert_eq!(buf.offset(), 4 + size);
    Ok(buf.finish())
}

/// Header and body size of a response, without the length prefix.
fn response_size<T: Encodable>(api_key: ApiKey, version: i16, body: &T) -> anyhow::Result<usize> {
    let header_version = api_key.response_header_version(version);
    Ok(ResponseHeader::default().compute_size(header_version)? + body.compute_size(version)?)
}

fn encode_response_into<B: ByteBufMut, T: Encodable>(
    buf: &mut B,
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
    size: usize,
) -> anyhow::Result<()> {
    let header_version = api_key.response_header_version(version);
    buf.put_i32(i32::try_from(size)?);
    ResponseHeader::default().with_correlation_id(correlation_id).encode(buf, header_version)?;
    body.encode(buf, version)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::MetadataRequest;
    use weir_client::codec::encode_request;

    #[test]
    fn request_round_trips_through_header_decoding() {
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::Metadata as i16)
            .with_request_api_version(9)
            .with_correlation_id(42);
        let frame = encode_request(&header, ApiKey::Metadata, &MetadataRequest::default()).unwrap();
        let decoded = decode_header(frame.slice(4..)).unwrap();
        assert_eq!(decoded.api_key, ApiKey::Metadata);
        assert_eq!(decoded.header.correlation_id, 42);
        let mut body = decoded.body;
        MetadataRequest::decode(&mut body, 9).unwrap();
    }

    /// A Fetch response with every field `version` has set to a non-default
    /// value: several topics and partitions, records empty, absent and large,
    /// partition errors, aborted transactions, v12's tagged fields, v13's topic
    /// ids and v16's node endpoints.
    fn fetch_response(version: i16, records: &[Option<Bytes>]) -> FetchResponse {
        use kafka_protocol::messages::fetch_response::*;
        use kafka_protocol::messages::{BrokerId, ProducerId, TopicName};
        use kafka_protocol::protocol::StrBytes;
        let partition = |i: usize, records: &Option<Bytes>| {
            let mut p = PartitionData::default()
                .with_partition_index(i as i32)
                .with_error_code(if i % 3 == 2 { 1 } else { 0 })
                .with_high_watermark(1000 + i as i64)
                .with_last_stable_offset(900 + i as i64)
                .with_records(records.clone());
            if i.is_multiple_of(2) {
                p.aborted_transactions = Some(
                    (0..i)
                        .map(|t| {
                            AbortedTransaction::default().with_producer_id(ProducerId(t as i64)).with_first_offset(7)
                        })
                        .collect(),
                );
            }
            if version >= 5 {
                p.log_start_offset = 10 + i as i64;
            }
            if version >= 11 {
                p.preferred_read_replica = BrokerId(i as i32 % 2 - 1);
            }
            if version >= 12 && i == 1 {
                p.diverging_epoch = EpochEndOffset::default().with_epoch(3).with_end_offset(500);
                p.current_leader = LeaderIdAndEpoch::default().with_leader_id(BrokerId(2)).with_leader_epoch(4);
                p.snapshot_id = SnapshotId::default().with_end_offset(40).with_epoch(1);
            }
            p
        };
        let topics = records
            .chunks(3)
            .enumerate()
            .map(|(t, chunk)| {
                let topic = FetchableTopicResponse::default()
                    .with_partitions(chunk.iter().enumerate().map(|(i, r)| partition(t * 3 + i, r)).collect());
                if version >= 13 {
                    topic.with_topic_id(uuid::Uuid::from_u128(t as u128 + 1))
                } else {
                    topic.with_topic(TopicName(StrBytes::from_string(format!("topic-{t}"))))
                }
            })
            .collect();
        let mut response = FetchResponse::default().with_throttle_time_ms(5).with_responses(topics);
        if version >= 7 {
            response.error_code = 0;
            response.session_id = 77;
        }
        if version >= 16 {
            let endpoint = NodeEndpoint::default().with_node_id(BrokerId(2)).with_port(9092);
            response.node_endpoints = vec![endpoint.with_host(StrBytes::from_static_str("127.0.0.2"))];
        }
        response
    }

    #[test]
    fn chunked_fetch_responses_equal_kafka_protocol_and_pass_records_through() {
        let batch = |len: usize, fill: u8| Some(Bytes::from(vec![fill; len]));
        let cases: Vec<Vec<Option<Bytes>>> = vec![
            vec![],
            vec![None],
            vec![Some(Bytes::new())],
            vec![batch(1, 1)],
            vec![batch(300, 2), None, Some(Bytes::new()), batch(70_000, 3), batch(5, 4), None, batch(128, 5)],
            // A slice of a larger buffer, as the read cache serves it.
            vec![Some(Bytes::from(vec![9u8; 4096]).slice(100..3000)), batch(1, 6)],
        ];
        for version in 4..=17 {
            for records in &cases {
                let response = fetch_response(version, records);
                let expected = encode_response(ApiKey::Fetch, version, 42, &response).unwrap();
                let frame = encode_fetch_response(version, 42, &response).unwrap();
                let joined: Vec<u8> = frame.chunks().iter().flat_map(|c| c.iter().copied()).collect();
                assert_eq!(joined, expected[..], "version {version}, {} partitions", records.len());
                assert_eq!(frame.wire_bytes(), expected.len());
                let passed: Vec<&Bytes> = records.iter().flatten().filter(|r| !r.is_empty()).collect();
                let same_memory: Vec<&Bytes> = frame
                    .chunks()
                    .iter()
                    .filter(|c| passed.iter().any(|r| r.as_ptr() == c.as_ptr() && r.len() == c.len()))
                    .collect();
                assert_eq!(same_memory.len(), passed.len(), "version {version}: every records chunk is passed through");
                let small = frame.chunks().len() - passed.len();
                assert!(small <= passed.len() + 1, "version {version}: {small} small chunks around records");
            }
        }
    }

    #[test]
    fn unknown_api_key_is_reported() {
        let frame = Bytes::from_static(&[0x7f, 0x00, 0, 0, 0, 0, 0, 1, 0xff, 0xff]);
        assert!(matches!(decode_header(frame), Err(HeaderError::UnknownApiKey(0x7f00))));
    }

    #[test]
    fn bad_lengths_are_refused() {
        let run = |bytes: &'static [u8]| {
            futures::executor::block_on(async {
                let mut reader = futures::io::Cursor::new(bytes);
                match read_frame_length(&mut reader, 100).await? {
                    Some(len) => read_frame_payload(&mut reader, len).await.map(Some),
                    None => Ok(None),
                }
            })
        };
        assert!(matches!(run(&[0, 0, 0, 3, 1, 2, 3]), Err(FrameError::BadLength(3, 8, 100))));
        assert!(matches!(run(&[0xff, 0xff, 0xff, 0xff]), Err(FrameError::BadLength(-1, 8, 100))));
        assert!(matches!(run(&[0, 0, 1, 0]), Err(FrameError::BadLength(256, 8, 100))));
        assert!(matches!(run(&[0, 0, 0, 9, 1]), Err(FrameError::Io(_))));
        assert!(matches!(run(&[0, 0]), Err(FrameError::Io(_))));
        assert!(matches!(run(&[]), Ok(None)));
        assert!(matches!(run(&[0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]), Ok(Some(p)) if p.len() == 8));
    }
}
