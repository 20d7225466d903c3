//! SSL listeners: TLS 1.2 and 1.3 with rustls on both sides, client
//! certificates and their principal, plaintext and untrusted peers refused,
//! and the certificate files reloaded without a restart. The certificates
//! are made for each test by tools/tests/tls_certs.sh (the openssl CLI).

use crate::common::*;
use crate::protocol_errors::{batch, fetch, produce};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned, SupportedProtocolVersion};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use weir_client::Client;

const BOTH_VERSIONS: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

/// A directory of fresh test certificates (see tls_certs.sh).
fn certificates() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tls_certs.sh");
    let made = std::process::Command::new("bash").arg(script).arg(dir.path()).status().expect("run tls_certs.sh");
    assert!(made.success(), "tls_certs.sh failed");
    dir
}

/// A broker with an SSL listener on the certificates in `dir` (server.pem),
/// plus `extra` flags; connections are logged at debug level.
fn ssl_broker(dir: &Path, extra: &[&str]) -> Broker {
    let file = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let (certificate, key) = (file("server.pem"), file("server.key"));
    let mut args = vec!["--listeners", "SSL://127.0.0.1:0", "--log", "info,weir_net=debug"];
    args.extend(["--ssl-certificate-location", &certificate, "--ssl-key-location", &key]);
    args.extend(extra);
    Broker::start(&args)
}

/// A Kafka client over TLS that trusts `ca`, with the client certificate
/// `identity` (certificate and key files) if given.
fn tls_client(
    bootstrap: &str,
    ca: &Path,
    identity: Option<(PathBuf, PathBuf)>,
    versions: &[&'static SupportedProtocolVersion],
) -> anyhow::Result<Client> {
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(ca)? {
        roots.add(certificate?)?;
    }
    #[allow(deprecated)] // ring's provider: see net/src/tls.rs
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder =
        ClientConfig::builder_with_provider(provider).with_protocol_versions(versions)?.with_root_certificates(roots);
    let config = match identity {
        Some((certificate, key)) => {
            let chain = CertificateDer::pem_file_iter(certificate)?.collect::<Result<Vec<_>, _>>()?;
            builder.with_client_auth_cert(chain, PrivateKeyDer::from_pem_file(key)?)?
        }
        None => builder.with_no_client_auth(),
    };
    let connection = ClientConnection::new(Arc::new(config), ServerName::try_from("localhost")?.to_owned())?;
    let socket = std::net::TcpStream::connect(bootstrap)?;
    socket.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut stream = StreamOwned::new(connection, socket);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Client::over(stream)
}

/// Creates `topic` (one partition), produces 300 records of 3 KiB (several
/// TLS records' worth) and reads them back.
fn round_trip(client: &mut Client, topic: &str) {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    use kafka_protocol::messages::{CreateTopicsRequest, TopicName};
    let name = TopicName(kafka_protocol::protocol::StrBytes::from_string(topic.into()));
    let create = CreatableTopic::default().with_name(name).with_num_partitions(1).with_replication_factor(1);
    let request = CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![create]);
    assert_eq!(client.send(&request, 7).expect("CreateTopics").topics[0].error_code, 0);
    let values: Vec<Vec<u8>> = (0..300u32).map(|i| format!("{i:05}").repeat(600).into_bytes()).collect();
    let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    let (error, offset) = produce(client, topic, -1, batch(&refs));
    assert_eq!(error, 0);
    let (error, records) = fetch(client, topic, offset);
    assert_eq!(error, 0);
    let records = records.expect("records");
    for value in [&values[0], &values[150], &values[299]] {
        assert!(records.windows(value.len()).any(|w| w == &value[..]), "a value did not come back");
    }
}

#[test]
fn ssl_listener_serves_tls_1_2_and_1_3_and_refuses_plaintext_and_untrusted_peers() {
    let dir = certificates();
    let ca = dir.path().join("ca.pem");
    let client_identity = Some((dir.path().join("client.pem"), dir.path().join("client.key")));
    let broker = ssl_broker(dir.path(), &["--ssl-ca-location", ca.to_str().unwrap(), "--ssl-client-auth", "requested"]);
    let b = broker.bootstrap();
    for (version, name) in [(&rustls::version::TLS12, "TLSv1_2"), (&rustls::version::TLS13, "TLSv1_3")] {
        let mut client = tls_client(&b, &ca, None, &[version]).expect("TLS client");
        round_trip(&mut client, &format!("tls-{name}"));
        assert!(broker.log().contains(&format!("version=Some({name})")), "{}", broker.log());
    }
    // A client certificate (requested, not required) names the principal.
    let mut client = tls_client(&b, &ca, client_identity, BOTH_VERSIONS).expect("TLS client with a certificate");
    round_trip(&mut client, "tls-client-cert");
    assert!(broker.log().contains("principal=User:CN=client,O=Weir"), "{}", broker.log());
    assert!(broker.log().contains("principal=User:ANONYMOUS"), "{}", broker.log());

    // Plaintext to a TLS port: closed, logged with the peer, and the broker serves on.
    let plaintext = Client::connect(&b);
    assert!(plaintext.is_err(), "a plaintext client was served on an SSL listener");
    wait_until("the log line of the plaintext client", Duration::from_secs(10), || {
        broker.log().contains("closing connection: TLS handshake failed: received corrupt message")
    });
    let line = broker.log().lines().find(|l| l.contains("TLS handshake failed")).unwrap().to_string();
    assert!(line.contains("peer=127.0.0.1:"), "{line}");

    // A client that does not trust the broker's CA fails on its side.
    let untrusted = tls_client(&b, &dir.path().join("other-ca.pem"), None, BOTH_VERSIONS);
    let error = format!("{:#}", untrusted.err().expect("an untrusting client connected"));
    assert!(error.contains("UnknownIssuer"), "{error}");

    let mut client = tls_client(&b, &ca, None, BOTH_VERSIONS).expect("TLS client after the failures");
    round_trip(&mut client, "tls-after");
}

#[test]
fn required_client_auth_refuses_a_client_without_a_trusted_certificate() {
    let dir = certificates();
    let ca = dir.path().join("ca.pem");
    let broker = ssl_broker(dir.path(), &["--ssl-ca-location", ca.to_str().unwrap(), "--ssl-client-auth", "required"]);
    let b = broker.bootstrap();
    assert!(tls_client(&b, &ca, None, BOTH_VERSIONS).is_err(), "served without a client certificate");
    // A certificate from a CA the broker does not trust is refused too.
    let other = Some((dir.path().join("other-server.pem"), dir.path().join("other-server.key")));
    assert!(tls_client(&b, &ca, other, BOTH_VERSIONS).is_err(), "served with an untrusted client certificate");
    let identity = Some((dir.path().join("client.pem"), dir.path().join("client.key")));
    let mut client = tls_client(&b, &ca, identity, BOTH_VERSIONS).expect("TLS client with a certificate");
    round_trip(&mut client, "tls-required");
    wait_until("two failed handshakes logged", Duration::from_secs(10), || {
        broker.log().matches("TLS handshake failed").count() >= 2
    });
}

#[test]
fn certificate_files_are_reloaded_without_a_restart() {
    let dir = certificates();
    let (ca, other_ca) = (dir.path().join("ca.pem"), dir.path().join("other-ca.pem"));
    let broker = ssl_broker(dir.path(), &[]);
    let b = broker.bootstrap();
    let mut before = tls_client(&b, &ca, None, BOTH_VERSIONS).expect("TLS client");
    // Replace the certificate and key (each by a rename, as deployment tools do).
    for (from, to) in [("other-server.key", "server.key"), ("other-server.pem", "server.pem")] {
        std::fs::copy(dir.path().join(from), dir.path().join("next")).unwrap();
        std::fs::rename(dir.path().join("next"), dir.path().join(to)).unwrap();
    }
    wait_until("the new certificate served", Duration::from_secs(10), || {
        tls_client(&b, &other_ca, None, BOTH_VERSIONS).is_ok()
    });
    assert!(tls_client(&b, &ca, None, BOTH_VERSIONS).is_err(), "the old certificate is still served");
    assert!(broker.log().contains("TLS files reloaded"), "{}", broker.log());
    // The connection made before the reload goes on with its session.
    round_trip(&mut before, "tls-reloaded");
}
