//! The authenticator against a client written here from the RFCs.

use super::scram::{ScramMechanism, MIN_ITERATIONS};
use super::*;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use std::collections::BTreeMap;

const AUTHENTICATION_FAILED: i16 = 58;
const UNSUPPORTED_MECHANISM: i16 = 33;
const ILLEGAL_STATE: i16 = 34;

fn all() -> Vec<String> {
    ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].map(String::from).to_vec()
}

/// A snapshot where each (user, password) has both SCRAM credentials.
fn users(users: &[(&str, &str)]) -> MetadataSnapshot {
    let mut snapshot = MetadataSnapshot::default();
    for (user, password) in users {
        let by_mechanism: BTreeMap<String, _> = ScramMechanism::ALL
            .into_iter()
            .map(|m| (m.name().to_string(), m.new_credential(password, MIN_ITERATIONS).unwrap()))
            .collect();
        snapshot.scram_credentials.insert(user.to_string(), by_mechanism);
    }
    snapshot
}

/// client-final-message for `server_first`, as RFC 5802 has the client make it.
fn client_final(mechanism: ScramMechanism, password: &str, client_first_bare: &str, server_first: &str) -> String {
    let field = |name: &str| {
        server_first.split(',').find_map(|f| f.strip_prefix(name)).expect("server-first field").to_string()
    };
    let (nonce, salt, iterations) = (field("r="), BASE64.decode(field("s=")).unwrap(), field("i=").parse().unwrap());
    let salted = mechanism.salted_password(password.as_bytes(), &salt, iterations);
    let client_key = mechanism.hmac(&salted, b"Client Key");
    let stored_key = mechanism.hash(&client_key);
    let without_proof = format!("c=biws,r={nonce}");
    let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
    let signature = mechanism.hmac(&stored_key, auth_message.as_bytes());
    let proof: Vec<u8> = client_key.iter().zip(signature).map(|(k, s)| k ^ s).collect();
    format!("{without_proof},p={}", BASE64.encode(proof))
}

/// Runs a whole SCRAM exchange at SaslAuthenticate v`version`; the last answer.
fn scram(
    auth: &mut Authenticator,
    mechanism: ScramMechanism,
    user: &str,
    password: &str,
    store: &MetadataSnapshot,
    version: i16,
    now: i64,
) -> Answer {
    assert_eq!(auth.handshake(1, mechanism.name()).error_code, 0);
    let bare = format!("n={user},r=clientnonce123");
    let first = auth.authenticate(version, format!("n,,{bare}").as_bytes(), store, now);
    if first.error_code != 0 {
        return first;
    }
    let server_first = String::from_utf8(first.token).unwrap();
    auth.authenticate(version, client_final(mechanism, password, &bare, &server_first).as_bytes(), store, now)
}

#[test]
fn scram_exchanges_authenticate_with_the_right_password_only() {
    let store = users(&[("alice", "alice-secret")]);
    for mechanism in ScramMechanism::ALL {
        let mut auth = Authenticator::new(all(), 0);
        assert_eq!(auth.may_serve(ApiKey::Metadata, 0), Err(Refusal::NotAuthenticated(ApiKey::Metadata)));
        assert_eq!(auth.may_serve(ApiKey::ApiVersions, 0), Ok(()));
        let done = scram(&mut auth, mechanism, "alice", "alice-secret", &store, 2, 0);
        assert_eq!((done.error_code, done.close, done.session_lifetime_ms), (0, false, 0), "{:?}", done.error_message);
        assert!(String::from_utf8(done.token).unwrap().starts_with("v="));
        assert_eq!(auth.session().map(|s| s.user.as_str()), Some("alice"));
        assert_eq!(auth.may_serve(ApiKey::Metadata, i64::MAX), Ok(()), "sessions never expire without reauth");

        let mut wrong = Authenticator::new(all(), 0);
        let failed = scram(&mut wrong, mechanism, "alice", "alice-secrets", &store, 2, 0);
        assert_eq!((failed.error_code, failed.close), (AUTHENTICATION_FAILED, true));
        assert!(!failed.error_message.unwrap().contains("secret"));
        assert!(wrong.session().is_none());

        let mut unknown = Authenticator::new(all(), 0);
        let failed = scram(&mut unknown, mechanism, "mallory", "x", &store, 2, 0);
        assert_eq!((failed.error_code, failed.close), (AUTHENTICATION_FAILED, true));
    }
}

#[test]
fn plain_checks_the_scram_credential() {
    let store = users(&[("bob", "bob-secret")]);
    let mut auth = Authenticator::new(all(), 0);
    assert_eq!(auth.handshake(1, "PLAIN").error_code, 0);
    let ok = auth.authenticate(1, b"\0bob\0bob-secret", &store, 0);
    assert_eq!((ok.error_code, ok.session_established), (0, true));
    assert_eq!(auth.session().unwrap().user, "bob");

    let mut wrong = Authenticator::new(all(), 0);
    wrong.handshake(1, "PLAIN");
    let failed = wrong.authenticate(1, b"\0bob\0bob-secreT", &store, 0);
    assert_eq!(failed.error_code, AUTHENTICATION_FAILED);
    assert_eq!(failed.error_message.as_deref(), Some("Authentication failed: Invalid username or password"));
}

#[test]
fn mechanisms_and_order_are_checked() {
    let store = users(&[("bob", "pw")]);
    let mut auth = Authenticator::new(vec!["SCRAM-SHA-512".into()], 0);
    let refused = auth.handshake(1, "PLAIN");
    assert_eq!((refused.error_code, refused.close), (UNSUPPORTED_MECHANISM, true));
    assert_eq!(refused.mechanisms, vec!["SCRAM-SHA-512".to_string()]);
    let refused = Authenticator::new(all(), 0).handshake(1, "GSSAPI");
    assert_eq!(refused.error_code, UNSUPPORTED_MECHANISM);

    let mut early = Authenticator::new(all(), 0);
    let refused = early.authenticate(1, b"\0bob\0pw", &store, 0);
    assert_eq!((refused.error_code, refused.close), (ILLEGAL_STATE, true));

    let mut twice = Authenticator::new(all(), 0);
    twice.handshake(1, "PLAIN");
    assert_eq!(twice.handshake(1, "PLAIN").error_code, ILLEGAL_STATE);

    // After authentication without re-authentication: refused, not closed (as Kafka's handlers).
    let mut done = Authenticator::new(all(), 0);
    done.handshake(1, "PLAIN");
    done.authenticate(1, b"\0bob\0pw", &store, 0);
    let again = done.handshake(1, "PLAIN");
    assert_eq!((again.error_code, again.close), (ILLEGAL_STATE, false));
    let again = done.authenticate(1, b"\0bob\0pw", &store, 0);
    assert_eq!((again.error_code, again.close), (ILLEGAL_STATE, false));
}

#[test]
fn a_v0_handshake_takes_bare_tokens() {
    let store = users(&[("bob", "pw")]);
    let mut auth = Authenticator::new(all(), 0);
    auth.handshake(0, "PLAIN");
    assert!(auth.expects_raw_token());
    assert_eq!(auth.authenticate(1, b"\0bob\0pw", &store, 0).error_code, ILLEGAL_STATE);
    let mut auth = Authenticator::new(all(), 0);
    auth.handshake(0, "PLAIN");
    assert_eq!(auth.authenticate(-1, b"\0bob\0pw", &store, 0).error_code, 0);
    assert!(!auth.expects_raw_token());
}

#[test]
fn sessions_expire_and_re_authenticate_as_kip_368_says() {
    let store = users(&[("alice", "a"), ("bob", "b")]);
    let mut auth = Authenticator::new(all(), 1000);
    let done = scram(&mut auth, ScramMechanism::Sha256, "alice", "a", &store, 1, 5000);
    assert_eq!(done.session_lifetime_ms, 1000);
    assert_eq!(auth.may_serve(ApiKey::Produce, 5999), Ok(()));
    assert_eq!(auth.may_serve(ApiKey::Produce, 6000), Err(Refusal::SessionExpired(ApiKey::Produce)));
    // v0 of SaslAuthenticate has no lifetime field, but the session still ends.
    let mut v0 = Authenticator::new(all(), 1000);
    assert_eq!(scram(&mut v0, ScramMechanism::Sha256, "alice", "a", &store, 0, 0).session_lifetime_ms, 0);
    assert!(v0.may_serve(ApiKey::Produce, 1000).is_err());

    // Re-authentication: the same user and mechanism; the old session serves meanwhile.
    assert_eq!(auth.handshake(1, "SCRAM-SHA-512").error_code, ILLEGAL_STATE);
    let mut auth = Authenticator::new(all(), 1000);
    scram(&mut auth, ScramMechanism::Sha256, "alice", "a", &store, 1, 5000);
    assert_eq!(auth.handshake(1, "SCRAM-SHA-256").error_code, 0);
    assert_eq!(auth.may_serve(ApiKey::Produce, 5500), Ok(()));
    let bare = "n=alice,r=again";
    let first = auth.authenticate(1, format!("n,,{bare}").as_bytes(), &store, 5800);
    let last = client_final(ScramMechanism::Sha256, "a", bare, std::str::from_utf8(&first.token).unwrap());
    let again = auth.authenticate(1, last.as_bytes(), &store, 5800);
    assert_eq!((again.error_code, again.session_lifetime_ms), (0, 1000));
    assert_eq!(auth.may_serve(ApiKey::Produce, 6700), Ok(()));
    assert!(auth.may_serve(ApiKey::Produce, 6800).is_err());

    let mut auth = Authenticator::new(all(), 1000);
    scram(&mut auth, ScramMechanism::Sha256, "alice", "a", &store, 1, 0);
    let other = scram(&mut auth, ScramMechanism::Sha256, "bob", "b", &store, 1, 10);
    assert_eq!((other.error_code, other.close), (AUTHENTICATION_FAILED, true));
    assert!(other.error_message.unwrap().contains("Cannot change principals"));
}

#[test]
fn garbage_tokens_are_errors_never_panics() {
    let store = users(&[("bob", "pw")]);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut random = |len: usize| {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect::<Vec<u8>>()
    };
    let mut tokens: Vec<Vec<u8>> = vec![Vec::new(), vec![0], vec![0; 3], b"n,,".to_vec(), vec![b','; 100]];
    tokens.extend((0..200).map(|i| random(i % 64 + 1)));
    tokens.push(random(MAX_RECEIVE_BYTES));
    for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        for token in &tokens {
            let mut auth = Authenticator::new(all(), 0);
            auth.handshake(1, mechanism);
            let answer = auth.authenticate(1, token, &store, 0);
            assert_eq!((answer.error_code, answer.close), (AUTHENTICATION_FAILED, true), "{mechanism}");
            // The second message of SCRAM, garbage after a good first one.
            if mechanism != "PLAIN" {
                let mut auth = Authenticator::new(all(), 0);
                auth.handshake(1, mechanism);
                assert_eq!(auth.authenticate(1, b"n,,n=bob,r=abc", &store, 0).error_code, 0);
                assert_eq!(auth.authenticate(1, token, &store, 0).error_code, AUTHENTICATION_FAILED);
            }
        }
    }
}
