//! DescribeCluster: the cluster id, the controller and the unfenced brokers
//! (the fenced ones too with v2's include_fenced_brokers), as
//! AdminClient.describeCluster shows them. Brokers serve the broker
//! endpoint type only; a request for the controllers' endpoints gets Kafka's
//! MISMATCHED_ENDPOINT_TYPE (v0 has no endpoint type: always brokers).

use super::{message, str_bytes, ClientInfo};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;
use weir_shards::metadata::acl::{ResourceType, CLUSTER_NAME};
use weir_shards::Shard;

const BROKER_ENDPOINTS: i8 = 1;
const CONTROLLER_ENDPOINTS: i8 = 2;

pub fn handle(
    shard: &Shard,
    client: &ClientInfo,
    version: i16,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    if request.endpoint_type != BROKER_ENDPOINTS {
        let (error, why) = match request.endpoint_type {
            CONTROLLER_ENDPOINTS => (
                ResponseError::MismatchedEndpointType,
                "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER"
                    .to_string(),
            ),
            other => (ResponseError::UnsupportedEndpointType, format!("Unsupported endpoint type {other}")),
        };
        return DescribeClusterResponse::default().with_error_code(error.code()).with_error_message(message(why));
    }
    let snapshot = shard.metadata();
    // Fenced brokers only if asked for (v2), marked as such; those without
    // the client's listener never.
    let brokers = snapshot
        .brokers
        .iter()
        .filter(|b| !b.fenced || request.include_fenced_brokers)
        .filter_map(|b| {
            let (host, port) = b.endpoint(&client.listener.name)?;
            Some(
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(b.id))
                    .with_host(str_bytes(host))
                    .with_port(port)
                    .with_rack(b.rack.as_deref().map(str_bytes))
                    .with_is_fenced(b.fenced),
            )
        })
        .collect();
    let mut response = DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(snapshot.cluster_id.clone()))
        .with_controller_id(BrokerId(shard.active_controller()))
        .with_brokers(brokers);
    if version >= 1 {
        response.endpoint_type = BROKER_ENDPOINTS;
    }
    if request.include_cluster_authorized_operations {
        response.cluster_authorized_operations =
            client.authorized_operations(shard, ResourceType::Cluster, CLUSTER_NAME);
    }
    response
}
