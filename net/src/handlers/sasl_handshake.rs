//! SaslHandshake. On a SASL listener the connection loop answers it with
//! the connection's [`Authenticator`](crate::sasl::Authenticator)
//! ([`response`]); reaching the table means a PLAINTEXT listener, where
//! Kafka answers ILLEGAL_SASL_STATE.

use super::str_bytes;
use crate::sasl::Answer;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SaslHandshakeRequest, SaslHandshakeResponse};

pub fn handle(_request: SaslHandshakeRequest) -> SaslHandshakeResponse {
    SaslHandshakeResponse::default().with_error_code(ResponseError::IllegalSaslState.code())
}

/// The authenticator's answer as a SaslHandshake response.
pub fn response(answer: &Answer) -> SaslHandshakeResponse {
    SaslHandshakeResponse::default()
        .with_error_code(answer.error_code)
        .with_mechanisms(answer.mechanisms.iter().map(|m| str_bytes(m.as_str())).collect())
}
