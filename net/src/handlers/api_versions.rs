//! ApiVersions: the table in `apis.rs`, verbatim.

use crate::apis::SUPPORTED_APIS;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiVersionsResponse;

pub fn handle(_version: i16) -> ApiVersionsResponse {
    let api_keys = SUPPORTED_APIS
        .iter()
        .map(|api| {
            ApiVersion::default().with_api_key(api.key as i16).with_min_version(api.min).with_max_version(api.max)
        })
        .collect();
    ApiVersionsResponse::default().with_api_keys(api_keys)
}

/// The v0 answer to a version we do not speak: the error plus our ranges.
pub fn unsupported() -> ApiVersionsResponse {
    handle(0).with_error_code(ResponseError::UnsupportedVersion.code())
}
