//! Several listeners on one broker: each with its own security protocol,
//! and each client told the brokers' addresses of the listener it came in
//! on (Metadata, FindCoordinator, DescribeCluster), librdkafka included,
//! which follows those addresses. The cluster case (an internal
//! inter-broker listener beside a SASL one for clients) is in cluster.rs.

use crate::acls::{add_user, login};
use crate::common::*;
use kafka_protocol::messages::{DescribeClusterRequest, FindCoordinatorRequest, MetadataRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};
use weir_client::Client;

const ILLEGAL_SASL_STATE: i16 = 34;

/// The brokers Metadata names to `client`: (id, host, port).
pub(crate) fn metadata_brokers(client: &mut Client) -> Vec<(i32, String, i32)> {
    let response = client.send(&MetadataRequest::default().with_topics(None), 12).expect("Metadata");
    response.brokers.iter().map(|b| (b.node_id.0, b.host.to_string(), b.port)).collect()
}

/// The brokers DescribeCluster names to `client`: (id, host, port).
fn cluster_brokers(client: &mut Client) -> Vec<(i32, String, i32)> {
    let response = client.send(&DescribeClusterRequest::default().with_endpoint_type(1), 1).expect("DescribeCluster");
    assert_eq!(response.error_code, 0);
    response.brokers.iter().map(|b| (b.broker_id.0, b.host.to_string(), b.port)).collect()
}

/// Where FindCoordinator tells `client` group `group`'s coordinator is.
fn group_coordinator(client: &mut Client, group: &str) -> (i32, String, i32) {
    let request = FindCoordinatorRequest::default()
        .with_key_type(0)
        .with_coordinator_keys(vec![StrBytes::from(group.to_string())]);
    let coordinator = client.send(&request, 4).expect("FindCoordinator").coordinators.remove(0);
    assert_eq!(coordinator.error_code, 0, "{:?}", coordinator.error_message);
    (coordinator.node_id.0, coordinator.host.to_string(), coordinator.port)
}

/// A librdkafka producer that logs in as `user` (password `user`-pw) with
/// SASL PLAIN.
pub(crate) fn sasl_producer(bootstrap: &str, user: &str) -> BaseProducer<Acks> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanism", "PLAIN")
        .set("sasl.username", user)
        .set("sasl.password", format!("{user}-pw"))
        .set("acks", "all")
        .set("message.timeout.ms", "30000")
        .create_with_context(Acks::default())
        .expect("SASL producer")
}

#[test]
fn each_listener_has_its_own_security_protocol_and_names_its_own_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    add_user(&data_dir, "alice");
    // The SASL listener binds every interface and advertises loopback: the
    // address its clients are told is not the one it binds.
    let sasl_port = free_port();
    let listeners = format!("PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://0.0.0.0:{sasl_port}");
    let advertised = format!("SASL_PLAINTEXT://127.0.0.1:{sasl_port}");
    let broker = Broker::start_in(data_dir, &["--listeners", &listeners, "--advertised-listeners", &advertised]);
    let [plain, sasl] = broker.addresses[..] else { panic!("two listeners, not {:?}", broker.addresses) };
    assert_eq!((sasl.ip().to_string(), sasl.port()), ("0.0.0.0".to_string(), sasl_port));
    let here = (0, "127.0.0.1".to_string(), i32::from(plain.port()));
    let (plain, sasl) = (plain.to_string(), format!("127.0.0.1:{sasl_port}"));

    // PLAINTEXT: served without SASL, told its own address everywhere.
    let mut anonymous = client(&plain);
    assert_eq!(metadata_brokers(&mut anonymous), std::slice::from_ref(&here));
    assert_eq!(cluster_brokers(&mut anonymous), std::slice::from_ref(&here));
    assert_eq!(group_coordinator(&mut anonymous, "g"), here);
    let handshake = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN"));
    assert_eq!(anonymous.send(&handshake, 1).unwrap().error_code, ILLEGAL_SASL_STATE);

    // SASL_PLAINTEXT: nothing before authentication; then its advertised address.
    let mut unauthenticated = client(&sasl);
    assert!(unauthenticated.send(&MetadataRequest::default().with_topics(None), 12).is_err(), "served without SASL");
    let mut alice = login(&sasl, "alice");
    let advertised = (0, "127.0.0.1".to_string(), i32::from(sasl_port));
    assert_eq!(metadata_brokers(&mut alice), std::slice::from_ref(&advertised));
    assert_eq!(cluster_brokers(&mut alice), std::slice::from_ref(&advertised));
    assert_eq!(group_coordinator(&mut alice, "g"), advertised);

    // librdkafka bootstraps on the SASL listener and goes where Metadata
    // says, with SASL: a PLAINTEXT address there would fail its handshake.
    let producer = sasl_producer(&sasl, "alice");
    produce_range(&producer, "two-listeners", 0..200);
    let acks = producer.context();
    assert!(acks.failed.lock().unwrap().is_empty(), "{:?}", acks.failed.lock().unwrap());
    assert_eq!(acks.acked.lock().unwrap().len(), 200);
    check_consumed(&consume_all(&plain, "two-listeners", 1), 200, 1);
}

#[test]
fn a_bad_listener_combination_stops_the_broker_at_start_with_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(broker_binary())
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .args(["--listeners", "INTERNAL://127.0.0.1:0,EXTERNAL://127.0.0.1:0"])
        .args(["--listener-security-protocol-map", "INTERNAL:PLAINTEXT,EXTERNAL:SASL_PLAINTEXT"])
        .args(["--advertised-listeners", "OTHER://127.0.0.1:9092"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("advertised_listeners: OTHER is not one of the listeners"), "{stderr}");
}
