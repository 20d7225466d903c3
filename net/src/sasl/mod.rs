//! SASL authentication of a connection on a SASL listener, as Kafka does it:
//! SaslHandshake picks a mechanism, then SaslAuthenticate requests carry the
//! mechanism's tokens (after a v0 handshake, the tokens come as bare frames
//! without a Kafka header, KIP-152). Until the exchange succeeds only
//! ApiVersions and these two are served; anything else closes the
//! connection. A failed exchange is answered, then the connection closes.
//!
//! [`Authenticator`] is the connection's state, a plain state machine: the
//! connection loop gives it the requests in order with the metadata
//! snapshot (the credentials) and the time, and sends what it answers.
//! Mechanisms: PLAIN, checked against the users' SCRAM credentials (the
//! stored salt makes SaltedPassword again; no password is kept anywhere),
//! and SCRAM-SHA-256/512 ([`scram`]).
//!
//! Re-authentication (KIP-368): with `connections_max_reauth_ms` > 0,
//! SaslAuthenticate v1+ tells the client its session lifetime, and a request
//! other than the SASL ones (and ApiVersions) after the session expired
//! closes the connection. A SaslHandshake on an authenticated connection
//! starts a re-authentication, which must be as the same user with the same
//! mechanism; the old session serves requests until it expires.

pub mod plain;
pub mod scram;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ApiKey;
use scram::{ScramMechanism, ScramServer};
use weir_shards::MetadataSnapshot;

/// The largest frame a connection may send before it has authenticated
/// (Kafka's `sasl.server.max.receive.size`): an oversized token closes it.
pub const MAX_RECEIVE_BYTES: usize = 524_288;

/// What a SASL request is answered with.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    /// 0, or the Kafka error code.
    pub error_code: i16,
    pub error_message: Option<String>,
    /// SaslHandshake: the enabled mechanisms. SaslAuthenticate: the server's token.
    pub mechanisms: Vec<String>,
    pub token: Vec<u8>,
    /// SaslAuthenticate v1+: how long the session lasts (0: no limit).
    pub session_lifetime_ms: i64,
    /// Close the connection once the answer is sent.
    pub close: bool,
    /// This answer completed an authentication (or re-authentication).
    pub session_established: bool,
}

impl Answer {
    fn ok() -> Self {
        Answer {
            error_code: 0,
            error_message: None,
            mechanisms: Vec::new(),
            token: Vec::new(),
            session_lifetime_ms: 0,
            close: false,
            session_established: false,
        }
    }

    /// No answer (a request the authenticator does not answer).
    pub fn none() -> Self {
        Answer::ok()
    }

    fn failed(error: ResponseError, message: impl Into<String>) -> Self {
        Answer { error_code: error.code(), error_message: Some(message.into()), close: true, ..Answer::ok() }
    }
}

/// Why a request cannot be served on this connection (it is closed).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0:?} before SASL authentication")]
    NotAuthenticated(ApiKey),
    #[error("{0:?} after the SASL session expired")]
    SessionExpired(ApiKey),
}

enum Mechanism {
    Plain,
    Scram(Box<ScramServer>),
}

impl Mechanism {
    fn name(&self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Scram(server) => server.mechanism().name(),
        }
    }
}

enum State {
    /// Waiting for SaslHandshake.
    Handshake,
    /// A mechanism was chosen; its tokens come in SaslAuthenticate requests,
    /// or bare (`raw`) after a v0 handshake.
    Exchange { mechanism: Mechanism, raw: bool },
    /// Authenticated (or re-authenticated); a SaslHandshake starts again.
    Authenticated,
}

/// Who a connection authenticated as, and until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub user: String,
    pub mechanism: &'static str,
    /// Past this (`clock::now_ms`), only the SASL APIs are served; `None`: never.
    pub expires_at_ms: Option<i64>,
}

/// One connection's SASL state.
pub struct Authenticator {
    enabled: Vec<String>,
    reauth_ms: u64,
    state: State,
    session: Option<Session>,
}

impl Authenticator {
    /// `enabled`: the mechanisms offered (`sasl_enabled_mechanisms`);
    /// `reauth_ms`: `connections_max_reauth_ms` (0: sessions never expire).
    pub fn new(enabled: Vec<String>, reauth_ms: u64) -> Self {
        Authenticator { enabled, reauth_ms, state: State::Handshake, session: None }
    }

    /// The session, once authenticated.
    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref()
    }

    /// Whether the next frame is a bare token (after a v0 handshake).
    pub fn expects_raw_token(&self) -> bool {
        matches!(self.state, State::Exchange { raw: true, .. })
    }

    /// Whether a request of `key` may be served now; any refusal closes the connection.
    pub fn may_serve(&self, key: ApiKey, now_ms: i64) -> Result<(), Refusal> {
        if matches!(key, ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate) {
            return Ok(());
        }
        match &self.session {
            None => Err(Refusal::NotAuthenticated(key)),
            Some(Session { expires_at_ms: Some(at), .. }) if now_ms >= *at => Err(Refusal::SessionExpired(key)),
            Some(_) => Ok(()),
        }
    }

    /// Answers SaslHandshake v`version` for `mechanism`.
    pub fn handshake(&mut self, version: i16, mechanism: &str) -> Answer {
        let answer = self.choose(version, mechanism);
        Answer { mechanisms: self.enabled.clone(), ..answer }
    }

    fn choose(&mut self, version: i16, mechanism: &str) -> Answer {
        let unexpected = || Answer::failed(ResponseError::IllegalSaslState, "Unexpected SaslHandshake request");
        match self.state {
            State::Handshake => {}
            State::Authenticated if self.reauth_ms > 0 && version >= 1 => {
                // KIP-368: the same mechanism again.
                if self.session.as_ref().is_some_and(|s| s.mechanism != mechanism) {
                    return Answer::failed(
                        ResponseError::IllegalSaslState,
                        "SASL mechanism must be the same as the one the connection authenticated with",
                    );
                }
            }
            // Authenticated, no re-authentication: answered as on a PLAINTEXT listener.
            State::Authenticated => return Answer { close: false, ..unexpected() },
            State::Exchange { .. } => return unexpected(),
        }
        if !self.enabled.iter().any(|m| m == mechanism) {
            let why = format!("Unsupported SASL mechanism {mechanism}");
            return Answer::failed(ResponseError::UnsupportedSaslMechanism, why);
        }
        let chosen = match ScramMechanism::from_name(mechanism) {
            Some(scram) => Mechanism::Scram(Box::new(ScramServer::new(scram))),
            None => Mechanism::Plain, // the only other enabled one
        };
        self.state = State::Exchange { mechanism: chosen, raw: version == 0 };
        Answer::ok()
    }

    /// Answers a SaslAuthenticate v`version` (or, after a v0 handshake, a
    /// bare token: `version` -1) carrying `token`.
    pub fn authenticate(&mut self, version: i16, token: &[u8], metadata: &MetadataSnapshot, now_ms: i64) -> Answer {
        let raw_expected = self.expects_raw_token();
        let State::Exchange { mechanism, .. } = &mut self.state else {
            let why = match self.state {
                State::Handshake => "SaslAuthenticate before SaslHandshake",
                _ => "SaslAuthenticate request received after successful authentication",
            };
            let refused = Answer::failed(ResponseError::IllegalSaslState, why);
            // Kafka answers a SaslAuthenticate after authentication without closing.
            return Answer { close: matches!(self.state, State::Handshake), ..refused };
        };
        if raw_expected != (version < 0) {
            return Answer::failed(ResponseError::IllegalSaslState, "SaslAuthenticate after a v0 SaslHandshake");
        }
        let mechanism_name = mechanism.name();
        let step = match mechanism {
            Mechanism::Plain => plain::authenticate(token, metadata).map(|user| (Vec::new(), Some(user))),
            Mechanism::Scram(server) => scram_step(server, token, metadata),
        };
        let (server_token, user) = match step {
            Ok(step) => step,
            Err(why) => {
                self.state = State::Handshake;
                return Answer::failed(ResponseError::SaslAuthenticationFailed, why);
            }
        };
        let Some(user) = user else {
            return Answer { token: server_token, ..Answer::ok() }; // the exchange goes on
        };
        if let Some(previous) = &self.session {
            if previous.user != user {
                self.state = State::Handshake;
                let why = format!(
                    "Cannot change principals during re-authentication from User:{} to User:{user}",
                    previous.user
                );
                return Answer::failed(ResponseError::SaslAuthenticationFailed, why);
            }
        }
        let lifetime = if version >= 1 || raw_expected { self.reauth_ms } else { 0 };
        self.session = Some(Session {
            user,
            mechanism: mechanism_name,
            expires_at_ms: (self.reauth_ms > 0).then(|| now_ms.saturating_add(lifetime_ms(self.reauth_ms))),
        });
        self.state = State::Authenticated;
        Answer {
            token: server_token,
            session_lifetime_ms: lifetime_ms(lifetime),
            session_established: true,
            ..Answer::ok()
        }
    }
}

fn lifetime_ms(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// One SCRAM message: the server's answer, and the user once the exchange is done.
fn scram_step(
    server: &mut ScramServer,
    token: &[u8],
    metadata: &MetadataSnapshot,
) -> Result<(Vec<u8>, Option<String>), String> {
    let mechanism = server.mechanism();
    if server.awaits_client_first() {
        let nonce = scram::server_nonce().map_err(|e| format!("cannot make a nonce: {e}"))?;
        let lookup = |user: &str| metadata.scram_credential(user, mechanism.name()).cloned();
        let first = server.client_first(token, lookup, &nonce).map_err(|e| e.to_string())?;
        Ok((first.into_bytes(), None))
    } else {
        let (last, user) = server.client_final(token).map_err(|e| e.to_string())?;
        Ok((last.into_bytes(), Some(user)))
    }
}

#[cfg(test)]
mod tests;
