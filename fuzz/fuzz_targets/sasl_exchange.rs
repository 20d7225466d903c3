//! A SASL exchange on a SASL listener's connection, as the connection loop
//! drives `sasl::Authenticator`: one byte picks the mechanism (PLAIN,
//! SCRAM-SHA-256, SCRAM-SHA-512 or one not offered) and the handshake
//! version (v0: bare tokens), the rest is a sequence of tokens, each a byte
//! of length and that many bytes, sent at SaslAuthenticate v0-v2 (or bare).
//! The store holds user `user` with password `pencil` (both mechanisms), so
//! inputs that find the user reach the key checks. Every answer must be an
//! answer: a failure closes the connection and nothing is served after it.
#![no_main]

use kafka_protocol::messages::ApiKey;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use weir_net::sasl::scram::ScramMechanism;
use weir_net::sasl::Authenticator;
use weir_shards::MetadataSnapshot;

fn store() -> &'static MetadataSnapshot {
    static STORE: OnceLock<MetadataSnapshot> = OnceLock::new();
    STORE.get_or_init(|| {
        let mut snapshot = MetadataSnapshot::default();
        let credentials = ScramMechanism::ALL
            .into_iter()
            .map(|m| (m.name().to_string(), m.credential(&m.salted_password(b"pencil", b"salt", 4096), b"salt", 4096)))
            .collect();
        snapshot.scram_credentials.insert("user".into(), credentials);
        snapshot
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, mut rest)) = data.split_first() else { return };
    let mechanism = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI"][usize::from(pick & 3)];
    let handshake_version = i16::from(pick >> 2 & 1);
    let enabled = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].map(String::from).to_vec();
    let mut auth = Authenticator::new(enabled, u64::from(pick >> 3) * 1000);
    let answer = auth.handshake(handshake_version, mechanism);
    if answer.close {
        assert!(auth.session().is_none());
        return;
    }
    let mut now = 0;
    while let Some((&len, tail)) = rest.split_first() {
        let (token, tail) = tail.split_at(usize::from(len).min(tail.len()));
        rest = tail;
        let version = if auth.expects_raw_token() { -1 } else { i16::from(len % 3) };
        let answer = auth.authenticate(version, token, store(), now);
        if answer.close {
            assert_ne!(answer.error_code, 0, "a close without an error");
            return;
        }
        if answer.session_established {
            assert!(auth.may_serve(ApiKey::Produce, now).is_ok());
        }
        now += 100;
    }
});
