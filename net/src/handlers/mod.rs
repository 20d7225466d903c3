//! One module per Kafka API. `decode` turns a frame into a typed request (or a
//! reason to close the connection); `handle` answers it on the connection's shard.

mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod alter_client_quotas;
mod alter_configs;
mod alter_partition_reassignments;
mod alter_user_scram_credentials;
mod api_versions;
mod authorize;
mod consumer_group_describe;
mod consumer_group_heartbeat;
mod create_acls;
mod create_partitions;
mod create_topics;
mod delete_acls;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_acls;
mod describe_client_quotas;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_log_dirs;
mod describe_producers;
mod describe_quorum;
mod describe_topic_partitions;
mod describe_transactions;
mod describe_user_scram_credentials;
mod elect_leaders;
mod end_txn;
mod fetch;
mod find_coordinator;
mod heartbeat;
mod incremental_alter_configs;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
mod list_offsets;
mod list_partition_reassignments;
mod list_transactions;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod produce;
pub(crate) use produce::ProduceTurn;
mod sasl_authenticate;
mod sasl_handshake;
mod sync_group;
mod txn_offset_commit;
mod write_txn_markers;

use crate::apis::{supported_range, PRODUCE_RECORD_BATCH_MIN_VERSION};
use crate::codec::{encode_fetch_response, encode_response, RequestFrame, ResponseFrame};
use crate::metrics::ResponseErrorCode;
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::rc::Rc;
use weir_shards::metadata::acl::Requester;
use weir_shards::{Listener, Shard};

/// Who sent a request, for JoinGroup's member descriptions.
pub struct ClientInfo {
    pub client_id: String,
    pub host: String,
    /// Who asks, for the ACLs (`authorize.rs`).
    pub requester: Requester,
    /// The listener the request came in on: brokers are named to it by
    /// their endpoints of its name.
    pub listener: Rc<Listener>,
    /// A Produce's place in its connection's line of produces.
    pub produce_turn: Option<ProduceTurn>,
    /// A Produce's throttle time, counted as it was read.
    pub produce_throttle_ms: i32,
    /// The connection's quotas and mute.
    pub quotas: Rc<crate::throttle::ConnectionQuotas>,
}

/// Why a connection must be closed instead of answered (as Kafka does).
#[derive(thiserror::Error, Debug)]
pub enum DecodeError {
    #[error("{0:?} v{1} is not supported")]
    UnsupportedVersion(ApiKey, i16),
    #[error("{0:?} is not implemented")]
    NotImplemented(ApiKey),
    #[error("malformed {0:?} v{1}: {2}")]
    Malformed(ApiKey, i16, String),
}

/// A decoded request and the bytes left after its body, which are ignored as
/// Kafka ignores them (librdkafka's all-topics Metadata v9+ leaves three).
pub struct Decoded {
    pub request: Request,
    pub ignored_bytes: usize,
}

/// Builds `Request`, `decode` and `handle` from the table in `apis.rs`.
macro_rules! requests {
    (
        |$shard:ident, $version:ident, $client:ident, $request:ident, $reply:ident|
        $( $api:ident($type:ty) $min:literal ..= $max:literal => $answer:expr; )*
    ) => {
        /// A decoded request with the version it was sent at.
        pub enum Request {
            /// An ApiVersions request at a version we do not speak: answered at v0 with
            /// UNSUPPORTED_VERSION and our ranges, so the client can downgrade.
            ApiVersionsUnsupported,
            $( $api($type), )*
        }

        pub fn decode(frame: &mut RequestFrame) -> Result<Decoded, DecodeError> {
            let key = frame.api_key;
            let version = frame.header.request_api_version;
            let Some((min, max)) = supported_range(key) else {
                return Err(DecodeError::NotImplemented(key));
            };
            if key == ApiKey::ApiVersions && !(min..=max).contains(&version) {
                return Ok(Decoded { request: Request::ApiVersionsUnsupported, ignored_bytes: 0 });
            }
            let in_range = (min..=max).contains(&version);
            if !in_range || (key == ApiKey::Produce && version < PRODUCE_RECORD_BATCH_MIN_VERSION) {
                return Err(DecodeError::UnsupportedVersion(key, version));
            }
            let body = &mut frame.body;
            // Decodes the body from the front of `body`, leaving what follows it there.
            let request = match key {
                $( ApiKey::$api => <$type>::decode(body, version).map(Request::$api), )*
                other => return Err(DecodeError::NotImplemented(other)),
            };
            let request = request.map_err(|e| DecodeError::Malformed(key, version, e.to_string()))?;
            Ok(Decoded { request, ignored_bytes: body.len() })
        }

        /// Answers a request; `None` means no response is sent (Produce with acks=0).
        pub async fn handle(
            $shard: Rc<Shard>,
            key: ApiKey,
            $version: i16,
            correlation_id: i32,
            $client: ClientInfo,
            request: Request,
        ) -> anyhow::Result<Option<ResponseFrame>> {
            let _in_flight = $shard.metrics().requests_in_flight.enter();
            let $reply = Reply { shard: &$shard, key, version: $version, correlation_id };
            match request {
                Request::ApiVersionsUnsupported => {
                    Reply { version: 0, ..$reply }.body(&api_versions::unsupported())
                }
                $( Request::$api($request) => $answer, )*
            }
        }
    };
}
crate::apis::api_table!(requests);

/// The answer of a connection's `sasl::Authenticator` to SaslHandshake or
/// SaslAuthenticate (`key`), encoded and counted as the table's answers are.
pub fn sasl_answer(
    shard: &Shard,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    answer: &crate::sasl::Answer,
) -> anyhow::Result<ResponseFrame> {
    let reply = Reply { shard, key, version, correlation_id };
    let frame = match key {
        ApiKey::SaslHandshake => reply.body(&sasl_handshake::response(answer))?,
        _ => reply.body(&sasl_authenticate::response(answer))?,
    };
    Ok(frame.expect("a body is always answered"))
}

/// How an answer leaves: encoded at the request's key, version and
/// correlation id, and counted under its error code.
#[derive(Clone, Copy)]
struct Reply<'a> {
    shard: &'a Shard,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
}

impl Reply<'_> {
    fn count(&self, error_code: i16) {
        self.shard.metrics().count_request(self.key as i16, error_code);
    }

    fn body(&self, body: &dyn EncodeAt) -> anyhow::Result<Option<ResponseFrame>> {
        self.count(body.error_code());
        let frame = body.encode_frame(self.key, self.version, self.correlation_id)?;
        Ok(Some(ResponseFrame::Whole(frame)))
    }

    /// Fetch responses pass their record bytes through uncopied.
    fn fetch(&self, response: &FetchResponse) -> anyhow::Result<Option<ResponseFrame>> {
        self.count(ResponseErrorCode::error_code(response));
        encode_fetch_response(self.version, self.correlation_id, response).map(Some)
    }

    /// No answer (Produce with acks=0): counted as a success, as its errors
    /// are not reported.
    fn nothing(&self) -> anyhow::Result<Option<ResponseFrame>> {
        self.count(0);
        Ok(None)
    }
}

/// Object-safe encoding of any response body into a whole frame, and the
/// error code it is counted under.
trait EncodeAt {
    fn encode_frame(&self, key: ApiKey, version: i16, correlation_id: i32) -> anyhow::Result<Bytes>;
    fn error_code(&self) -> i16;
}

impl<T: Encodable + ResponseErrorCode> EncodeAt for T {
    fn encode_frame(&self, key: ApiKey, version: i16, correlation_id: i32) -> anyhow::Result<Bytes> {
        encode_response(key, version, correlation_id, self)
    }
    fn error_code(&self) -> i16 {
        ResponseErrorCode::error_code(self)
    }
}

/// Kafka's check of the leader epoch a client believes current (-1: none
/// given) against the partition's: older is FENCED_LEADER_EPOCH, newer
/// UNKNOWN_LEADER_EPOCH.
fn current_leader_epoch_error(current_leader_epoch: i32, leader_epoch: i32) -> Option<i16> {
    match current_leader_epoch {
        -1 => None,
        epoch if epoch == leader_epoch => None,
        epoch if epoch < leader_epoch => Some(ResponseError::FencedLeaderEpoch.code()),
        _ => Some(ResponseError::UnknownLeaderEpoch.code()),
    }
}

/// The partition's leader and leader epoch (-1, -1 when it is unknown).
fn leader_of(shard: &Shard, topic: &str, partition: i32) -> (i32, i32) {
    shard.metadata().partition(topic, partition).map_or((-1, -1), |p| (p.leader, p.leader_epoch))
}

/// The error of a refused quota request: UNSUPPORTED_VERSION for an entity
/// type Kafka does not know, else INVALID_REQUEST.
fn quota_error_code(refusal: &weir_shards::metadata::quota::QuotaRefusal) -> i16 {
    match refusal.unsupported {
        true => ResponseError::UnsupportedVersion.code(),
        false => ResponseError::InvalidRequest.code(),
    }
}

/// Error messages go out as `StrBytes`.
fn message(text: impl ToString) -> Option<StrBytes> {
    Some(StrBytes::from_string(text.to_string()))
}

fn str_bytes(text: impl Into<String>) -> StrBytes {
    StrBytes::from_string(text.into())
}

/// The per-partition answers to a request that names topics and their
/// partitions, in request order: `codes` gives each partition's error code in
/// that order (0 where it runs short), `partition` builds a partition's answer
/// and `topic` a topic's from its partitions' answers.
fn answer_partitions<T, P, RP, RT>(
    topics: Vec<T>,
    partitions_of: impl Fn(&T) -> &[P],
    mut codes: impl Iterator<Item = i16>,
    partition: impl Fn(&P, i16) -> RP,
    topic: impl Fn(T, Vec<RP>) -> RT,
) -> Vec<RT> {
    topics
        .into_iter()
        .map(|t| {
            let answers = partitions_of(&t).iter().map(|p| partition(p, codes.next().unwrap_or(0))).collect();
            topic(t, answers)
        })
        .collect()
}

/// [`answer_partitions`] for the response types whose topics have `name` and
/// `partitions` and whose partitions have `partition_index` and `error_code`
/// (OffsetCommit, OffsetDelete, TxnOffsetCommit: the same fields in different
/// generated types).
macro_rules! answer_partition_codes {
    ($topics:expr, $codes:expr, $topic:ident, $partition:ident) => {
        super::answer_partitions(
            $topics,
            |t| &t.partitions,
            $codes,
            |p, code| $partition::default().with_partition_index(p.partition_index).with_error_code(code),
            |t, partitions| $topic::default().with_name(t.name).with_partitions(partitions),
        )
    };
}
use answer_partition_codes;

/// KIP-951 (Fetch v16+, Produce v10+): each partition answered
/// NOT_LEADER_OR_FOLLOWER names its leader and leader epoch in
/// `current_leader`, and the response's `node_endpoints` name those
/// leaders, so the client needs no Metadata round trip. `$partitions`
/// yields (topic name, partition index, `&mut` partition answer); `$leader`
/// and `$endpoint` are the response's generated types of the same shape.
macro_rules! point_to_leader {
    ($shard:expr, $client:expr, $partitions:expr, $leader:ident, $endpoint:ident) => {{
        let not_leader = kafka_protocol::error::ResponseError::NotLeaderOrFollower.code();
        let mut leaders = std::collections::BTreeSet::new();
        for (topic, index, p) in $partitions.filter(|(_, _, p)| p.error_code == not_leader) {
            let (leader, epoch) = super::leader_of($shard, topic, index);
            p.current_leader =
                $leader::default().with_leader_id(kafka_protocol::messages::BrokerId(leader)).with_leader_epoch(epoch);
            leaders.insert(leader);
        }
        let snapshot = $shard.metadata();
        let registered = snapshot.unfenced_brokers().filter(|b| leaders.contains(&b.id));
        let endpoint = |b: &weir_shards::metadata::BrokerRegistration| {
            let (host, port) = b.endpoint(&$client.listener.name)?;
            Some(
                $endpoint::default()
                    .with_node_id(kafka_protocol::messages::BrokerId(b.id))
                    .with_host(super::str_bytes(host))
                    .with_port(port)
                    .with_rack(b.rack.as_deref().map(super::str_bytes)),
            )
        };
        registered.filter_map(endpoint).collect::<Vec<_>>()
    }};
}
use point_to_leader;

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::RequestHeader;

    fn frame(key: ApiKey, version: i16, body: &[u8]) -> RequestFrame {
        let header = RequestHeader::default().with_request_api_key(key as i16).with_request_api_version(version);
        RequestFrame { api_key: key, header, body: Bytes::copy_from_slice(body) }
    }

    #[test]
    fn bytes_after_the_body_are_ignored_as_kafka_ignores_them() {
        // librdkafka's all-topics Metadata v12: a 4-byte placeholder where the
        // compact array count (one byte, 0 = null = all topics) goes, then its
        // allow_auto_topic_creation, include_topic_authorized_operations and
        // empty tags. Kafka reads the fields from the placeholder and ignores
        // the last three bytes.
        let mut all_topics = frame(ApiKey::Metadata, 12, &[0, 0, 0, 0, 1, 0, 0]);
        let Ok(Decoded { request: Request::Metadata(request), ignored_bytes }) = decode(&mut all_topics) else {
            panic!("librdkafka's all-topics Metadata v12 was refused");
        };
        assert_eq!(request.topics, None);
        assert_eq!(ignored_bytes, 3);

        let mut exact = frame(ApiKey::Metadata, 12, &[0, 1, 0, 0]);
        let Ok(Decoded { ignored_bytes: 0, .. }) = decode(&mut exact) else {
            panic!("an exact body was not taken whole")
        };
    }

    #[test]
    fn a_body_too_short_is_still_malformed() {
        // A compact array of two topics, then nothing.
        let mut short = frame(ApiKey::Metadata, 12, &[3]);
        assert!(matches!(decode(&mut short), Err(DecodeError::Malformed(ApiKey::Metadata, 12, _))));
        let mut empty = frame(ApiKey::Produce, 9, &[]);
        assert!(matches!(decode(&mut empty), Err(DecodeError::Malformed(ApiKey::Produce, 9, _))));
    }
}
