//! Requests this broker sends another at the other's inter-broker listener
//! (the address its registration names), as a Kafka broker does: a
//! follower's fetches, the transaction coordinator's markers
//! (WriteTxnMarkers) and a partition leader's question to a remote
//! transaction coordinator (KIP-890's AddPartitionsToTxn, verify only).

use bytes::{Bytes, BytesMut};
use futures::future::{select, Either};
use futures::{AsyncReadExt, AsyncWriteExt};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::cell::RefCell;
use std::collections::HashMap;
use std::pin::pin;
use std::time::Duration;
use weir_runtime::net::TcpStream;

/// A response larger than this is refused rather than allocated.
const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// One connection to another broker; one request at a time.
pub(crate) struct BrokerConnection {
    stream: TcpStream,
    next_correlation_id: i32,
    client_id: &'static str,
}

impl BrokerConnection {
    /// `client_id` names this side in the other broker's logs.
    pub async fn open(address: &str, client_id: &'static str) -> std::io::Result<BrokerConnection> {
        let stream = TcpStream::connect(address).await.map_err(|e| std::io::Error::other(e.to_string()))?;
        stream.set_nodelay(true).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(BrokerConnection { stream, next_correlation_id: 0, client_id })
    }

    /// Sends one request and reads its answer.
    pub async fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        request: &Req,
    ) -> anyhow::Result<Resp> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str(self.client_id)));
        let frame = weir_client::codec::encode_request(&header, key, request)?;
        self.stream.write_all(&frame).await?;
        let mut length = [0u8; 4];
        self.stream.read_exact(&mut length).await?;
        let length = usize::try_from(i32::from_be_bytes(length))?;
        anyhow::ensure!(length <= MAX_RESPONSE_BYTES, "a {key:?} response of {length} bytes");
        let mut frame = BytesMut::zeroed(length);
        self.stream.read_exact(&mut frame).await?;
        let (answered, response) = weir_client::codec::decode_response::<Resp>(key, version, Bytes::from(frame))?;
        anyhow::ensure!(answered == correlation_id, "response {answered} to request {correlation_id}");
        Ok(response)
    }
}

/// A shard's idle connections to other brokers for occasional requests
/// (markers, verification), by broker id. A caller takes one (or opens
/// one), and gives it back only after a whole exchange, so a connection is
/// never shared by two requests in flight and one that failed is dropped.
#[derive(Default)]
pub(crate) struct BrokerConnections {
    idle: RefCell<HashMap<i32, Vec<BrokerConnection>>>,
}

/// How long a request to another broker may take (Kafka's inter-broker
/// `request.timeout.ms` is 30 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CLIENT_ID: &str = "weir-broker";

impl BrokerConnections {
    /// Sends `request` to broker `broker` at `address` and reads its answer.
    pub async fn call<Req: Encodable, Resp: Decodable>(
        &self,
        broker: i32,
        address: &str,
        key: ApiKey,
        version: i16,
        request: &Req,
    ) -> anyhow::Result<Resp> {
        let idle = self.idle.borrow_mut().get_mut(&broker).and_then(Vec::pop);
        let exchange = async {
            let mut connection = match idle {
                Some(connection) => connection,
                None => BrokerConnection::open(address, CLIENT_ID).await?,
            };
            let response = connection.call(key, version, request).await?;
            Ok::<_, anyhow::Error>((connection, response))
        };
        match select(pin!(exchange), pin!(weir_runtime::clock::sleep(REQUEST_TIMEOUT))).await {
            Either::Left((answered, _)) => {
                let (connection, response) = answered?;
                self.idle.borrow_mut().entry(broker).or_default().push(connection);
                Ok(response)
            }
            Either::Right(_) => anyhow::bail!("no answer from broker {broker} to {key:?} in {REQUEST_TIMEOUT:?}"),
        }
    }
}
