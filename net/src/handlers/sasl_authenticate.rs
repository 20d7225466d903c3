//! SaslAuthenticate. On a SASL listener the connection loop answers it with
//! the connection's [`Authenticator`](crate::sasl::Authenticator)
//! ([`response`]); reaching the table means a PLAINTEXT listener, where
//! Kafka answers ILLEGAL_SASL_STATE.

use super::message;
use crate::sasl::Answer;
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslAuthenticateResponse};

pub fn handle(_request: SaslAuthenticateRequest) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(ResponseError::IllegalSaslState.code())
        .with_error_message(message("SaslAuthenticate request received after successful authentication"))
}

/// The authenticator's answer as a SaslAuthenticate response (v1+ carries
/// the session lifetime).
pub fn response(answer: &Answer) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(answer.error_code)
        .with_error_message(answer.error_message.as_deref().and_then(message))
        .with_auth_bytes(Bytes::copy_from_slice(&answer.token))
        .with_session_lifetime_ms(answer.session_lifetime_ms)
}
