//! The APIs and versions this broker implements. ApiVersions advertises exactly
//! this table and the dispatcher refuses anything outside it, so what clients
//! are told is what is implemented.

use kafka_protocol::messages::ApiKey;

pub struct SupportedApi {
    pub key: ApiKey,
    pub min: i16,
    pub max: i16,
}

/// The one table of implemented APIs, in the order ApiVersions lists them:
/// each row is an API, its request type, the versions served, and how
/// `handlers::handle` answers it (`shard`, `version` and `client` are the
/// request's, `request` its decoded body, `reply` encodes and counts the
/// answer). `SUPPORTED_APIS` below, and `Request`, `decode` and `handle` in
/// `handlers`, are all made from it by the macro named `$then`, so an API is
/// added by one row here and its module in `handlers`.
///
/// Produce starts at 0 because librdkafka disables features on a broker whose
/// Produce range does not (KAFKA-18659); v0-v2 (pre-v2 message formats) are
/// answered by closing the connection, as they cannot carry RecordBatch v2.
/// Fetch stops at 17 and Produce at 11, Metadata at 13 and ListOffsets at 10,
/// the newest Kafka 4.1 serves (Produce v12 is KIP-890 part 2's implicit
/// AddPartitionsToTxn, v13 and Fetch v18 not yet served by 4.1). The
/// KIP-848 consumer protocol is served: ConsumerGroupHeartbeat and
/// ConsumerGroupDescribe, OffsetCommit/OffsetFetch v9 (member epochs),
/// ListGroups v5 (group types), DescribeGroups v6; OffsetCommit and
/// OffsetFetch stop before v10 (topic ids).
/// DescribeConfigs starts at 1 (v0 was removed from Kafka 4 and from the
/// protocol crate); librdkafka and kafka-python speak v1 or v2.
/// SaslHandshake and SaslAuthenticate rows answer a PLAINTEXT listener
/// (ILLEGAL_SASL_STATE, as Kafka); on a SASL listener the connection loop
/// answers them with the connection's `sasl::Authenticator` before the table.
/// SaslHandshake v0 (bare tokens after it) is served, as librdkafka wants
/// it listed.
/// AddPartitionsToTxn v4 is the brokers' batched form (another broker's
/// partition leader verifying a transactional batch, KIP-890 part 1), as is
/// WriteTxnMarkers (another broker's transaction coordinator); the
/// transaction APIs stop before the versions of KIP-890 part 2 (epoch bump
/// per transaction, TRANSACTION_ABORTABLE). With `acl_enabled` both
/// inter-broker APIs need CLUSTER_ACTION on the cluster, as in Kafka.
/// ElectLeaders v0-v2 (v1 added the election type and the top-level
/// error), answered through the active controller as CreateTopics is, as is
/// AlterPartitionReassignments v0-v1 (v1: KIP-860's refusal to change the
/// replication factor); ListPartitionReassignments v0 from this broker's image.
/// DescribeQuorum v0-v1 from the metadata quorum's leader (v2 adds KIP-853's
/// voter directory ids and listeners).
/// DescribeClientQuotas and AlterClientQuotas v0-v1 (v1 is the flexible
/// encoding); quotas on `ip` entities are refused.
macro_rules! api_table {
    ($then:ident) => {
        $then! {
            |shard, version, client, request, reply|
            Produce(ProduceRequest) 0..=11 => {
                let mut client = client;
                let turn = client.produce_turn.take();
                match produce::handle(&shard, &client, version, request, turn).await {
                    Some(response) => reply.body(&response),
                    None => reply.nothing(),
                }
            };
            Fetch(FetchRequest) 4..=17 => reply.fetch(&fetch::handle(&shard, &client, version, request).await);
            ListOffsets(ListOffsetsRequest) 1..=10 => reply.body(&list_offsets::handle(&shard, &client, version, request).await);
            OffsetForLeaderEpoch(OffsetForLeaderEpochRequest) 2..=4 =>
                reply.body(&offset_for_leader_epoch::handle(&shard, &client, request).await);
            Metadata(MetadataRequest) 0..=13 => reply.body(&metadata::handle(&shard, &client, version, request).await);
            ApiVersions(ApiVersionsRequest) 0..=3 => reply.body(&api_versions::handle(request));
            CreateTopics(CreateTopicsRequest) 2..=7 =>
                reply.body(&create_topics::handle(&shard, &client, version, request).await);
            DeleteTopics(DeleteTopicsRequest) 1..=6 =>
                reply.body(&delete_topics::handle(&shard, &client, version, request).await);
            CreatePartitions(CreatePartitionsRequest) 0..=3 =>
                reply.body(&create_partitions::handle(&shard, &client, request).await);
            FindCoordinator(FindCoordinatorRequest) 0..=4 =>
                reply.body(&find_coordinator::handle(&shard, &client, version, request).await);
            InitProducerId(InitProducerIdRequest) 0..=4 =>
                reply.body(&init_producer_id::handle(&shard, &client, version, request).await);
            JoinGroup(JoinGroupRequest) 0..=9 =>
                reply.body(&join_group::handle(&shard, version, &client, request).await);
            SyncGroup(SyncGroupRequest) 0..=5 => reply.body(&sync_group::handle(&shard, &client, version, request).await);
            Heartbeat(HeartbeatRequest) 0..=4 => reply.body(&heartbeat::handle(&shard, &client, request).await);
            LeaveGroup(LeaveGroupRequest) 0..=5 => reply.body(&leave_group::handle(&shard, &client, version, request).await);
            OffsetCommit(OffsetCommitRequest) 2..=9 => reply.body(&offset_commit::handle(&shard, &client, request).await);
            OffsetFetch(OffsetFetchRequest) 1..=9 =>
                reply.body(&offset_fetch::handle(&shard, &client, version, request).await);
            ListGroups(ListGroupsRequest) 0..=5 => reply.body(&list_groups::handle(&shard, &client, version, request).await);
            DescribeGroups(DescribeGroupsRequest) 0..=6 =>
                reply.body(&describe_groups::handle(&shard, &client, version, request).await);
            ConsumerGroupHeartbeat(ConsumerGroupHeartbeatRequest) 0..=1 =>
                reply.body(&consumer_group_heartbeat::handle(&shard, &client, request).await);
            ConsumerGroupDescribe(ConsumerGroupDescribeRequest) 0..=1 =>
                reply.body(&consumer_group_describe::handle(&shard, &client, version, request).await);
            DeleteGroups(DeleteGroupsRequest) 0..=2 => reply.body(&delete_groups::handle(&shard, &client, request).await);
            OffsetDelete(OffsetDeleteRequest) 0..=0 => reply.body(&offset_delete::handle(&shard, &client, request).await);
            DeleteRecords(DeleteRecordsRequest) 0..=2 => reply.body(&delete_records::handle(&shard, &client, request).await);
            DescribeConfigs(DescribeConfigsRequest) 1..=4 =>
                reply.body(&describe_configs::handle(&shard, &client, version, request));
            DescribeCluster(DescribeClusterRequest) 0..=2 =>
                reply.body(&describe_cluster::handle(&shard, &client, version, request));
            AlterConfigs(AlterConfigsRequest) 0..=2 => reply.body(&alter_configs::handle(&shard, &client, request).await);
            IncrementalAlterConfigs(IncrementalAlterConfigsRequest) 0..=1 =>
                reply.body(&incremental_alter_configs::handle(&shard, &client, request).await);
            AddPartitionsToTxn(AddPartitionsToTxnRequest) 0..=4 =>
                reply.body(&add_partitions_to_txn::handle(&shard, &client, version, request).await);
            AddOffsetsToTxn(AddOffsetsToTxnRequest) 0..=3 =>
                reply.body(&add_offsets_to_txn::handle(&shard, &client, version, request).await);
            EndTxn(EndTxnRequest) 0..=3 => reply.body(&end_txn::handle(&shard, &client, version, request).await);
            TxnOffsetCommit(TxnOffsetCommitRequest) 0..=3 =>
                reply.body(&txn_offset_commit::handle(&shard, &client, version, request).await);
            WriteTxnMarkers(WriteTxnMarkersRequest) 0..=1 =>
                reply.body(&write_txn_markers::handle(&shard, &client, request).await);
            DescribeProducers(DescribeProducersRequest) 0..=0 =>
                reply.body(&describe_producers::handle(&shard, &client, request).await);
            DescribeTransactions(DescribeTransactionsRequest) 0..=0 =>
                reply.body(&describe_transactions::handle(&shard, &client, request).await);
            ListTransactions(ListTransactionsRequest) 0..=1 =>
                reply.body(&list_transactions::handle(&shard, &client, request).await);
            DescribeLogDirs(DescribeLogDirsRequest) 1..=4 =>
                reply.body(&describe_log_dirs::handle(&shard, &client, request).await);
            DescribeTopicPartitions(DescribeTopicPartitionsRequest) 0..=0 =>
                reply.body(&describe_topic_partitions::handle(&shard, &client, request));
            SaslHandshake(SaslHandshakeRequest) 0..=1 => reply.body(&sasl_handshake::handle(request));
            SaslAuthenticate(SaslAuthenticateRequest) 0..=2 => reply.body(&sasl_authenticate::handle(request));
            DescribeUserScramCredentials(DescribeUserScramCredentialsRequest) 0..=0 =>
                reply.body(&describe_user_scram_credentials::handle(&shard, &client, request));
            AlterUserScramCredentials(AlterUserScramCredentialsRequest) 0..=0 =>
                reply.body(&alter_user_scram_credentials::handle(&shard, &client, request).await);
            DescribeAcls(DescribeAclsRequest) 1..=3 => reply.body(&describe_acls::handle(&shard, &client, request));
            CreateAcls(CreateAclsRequest) 1..=3 => reply.body(&create_acls::handle(&shard, &client, request).await);
            DeleteAcls(DeleteAclsRequest) 1..=3 => reply.body(&delete_acls::handle(&shard, &client, request).await);
            ElectLeaders(ElectLeadersRequest) 0..=2 =>
                reply.body(&elect_leaders::handle(&shard, &client, version, request).await);
            AlterPartitionReassignments(AlterPartitionReassignmentsRequest) 0..=1 =>
                reply.body(&alter_partition_reassignments::handle(&shard, &client, request).await);
            ListPartitionReassignments(ListPartitionReassignmentsRequest) 0..=0 =>
                reply.body(&list_partition_reassignments::handle(&shard, &client, request));
            DescribeQuorum(DescribeQuorumRequest) 0..=1 =>
                reply.body(&describe_quorum::handle(&shard, &client, request).await);
            DescribeClientQuotas(DescribeClientQuotasRequest) 0..=1 =>
                reply.body(&describe_client_quotas::handle(&shard, &client, request));
            AlterClientQuotas(AlterClientQuotasRequest) 0..=1 =>
                reply.body(&alter_client_quotas::handle(&shard, &client, request).await);
        }
    };
}
pub(crate) use api_table;

/// Builds `SUPPORTED_APIS` from the table.
macro_rules! supported_apis {
    (
        |$($binding:ident),*|
        $( $api:ident($type:ty) $min:literal ..= $max:literal => $answer:expr; )*
    ) => {
        pub const SUPPORTED_APIS: &[SupportedApi] = &[$( SupportedApi { key: ApiKey::$api, min: $min, max: $max }, )*];
    };
}
api_table!(supported_apis);

/// The version range of `key`, if it is implemented.
pub fn supported_range(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED_APIS.iter().find(|a| a.key == key).map(|a| (a.min, a.max))
}

/// The lowest Produce version that carries RecordBatch v2.
pub const PRODUCE_RECORD_BATCH_MIN_VERSION: i16 = 3;
