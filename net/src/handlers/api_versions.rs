//! ApiVersions: the table in `apis.rs`, verbatim.

use crate::apis::SUPPORTED_APIS;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

/// The same answer at every version: the client's name and version are not kept.
pub fn handle(_request: ApiVersionsRequest) -> ApiVersionsResponse {
    advertised()
}

fn advertised() -> ApiVersionsResponse {
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
    advertised().with_error_code(ResponseError::UnsupportedVersion.code())
}
