//! WriteTxnMarkers (v0-1, from other brokers' transaction coordinators):
//! ends producers' transactions in partitions this broker leads, each
//! answered once the in-sync replicas hold its marker.

use super::ClientInfo;
use crate::errors::partition_error_code;
use futures::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use weir_shards::metadata::acl::Operation;
use weir_shards::transactions::markers::TxnMarker;
use weir_shards::Shard;

pub async fn handle(shard: &Shard, client: &ClientInfo, request: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse {
    // Kafka: only brokers (CLUSTER_ACTION) write markers; every partition is refused otherwise.
    let refused = (!client.may_on_cluster(shard, Operation::ClusterAction))
        .then(|| ResponseError::ClusterAuthorizationFailed.code());
    let markers = join_all(request.markers.into_iter().map(|m| async move {
        let marker = TxnMarker {
            producer_id: m.producer_id.0,
            epoch: m.producer_epoch,
            commit: m.transaction_result,
            coordinator_epoch: m.coordinator_epoch,
        };
        let topics = join_all(m.topics.into_iter().map(|topic| async move {
            let name = &topic.name;
            let partitions = join_all(topic.partition_indexes.iter().map(|&index| async move {
                let code = match refused {
                    Some(code) => code,
                    None => {
                        shard.write_txn_marker(name, index, marker).await.err().map_or(0, |e| partition_error_code(&e))
                    }
                };
                WritableTxnMarkerPartitionResult::default().with_partition_index(index).with_error_code(code)
            }))
            .await;
            WritableTxnMarkerTopicResult::default().with_name(topic.name).with_partitions(partitions)
        }))
        .await;
        WritableTxnMarkerResult::default().with_producer_id(m.producer_id).with_topics(topics)
    }))
    .await;
    WriteTxnMarkersResponse::default().with_markers(markers)
}
