//! Request bodies of every API and version the broker implements
//! (`net/src/apis.rs`), decoded as the dispatcher decodes them. Input: one
//! byte picks the API, one its version (from one below the supported range to
//! one above it), the rest is the body.
#![no_main]

use bytes::Bytes;
use kafka_protocol::messages::RequestHeader;
use libfuzzer_sys::fuzz_target;
use weir_net::apis::SUPPORTED_APIS;
use weir_net::codec::RequestFrame;
use weir_net::handlers;

// As in the broker binary: huge array counts in requests must not abort.
#[global_allocator]
static ALLOCATOR: weir_net::huge_alloc::LazyHugeAlloc = weir_net::huge_alloc::LazyHugeAlloc;

fuzz_target!(|data: &[u8]| {
    let Some(([api, version], body)) = data.split_first_chunk::<2>() else { return };
    let api = &SUPPORTED_APIS[usize::from(*api) % SUPPORTED_APIS.len()];
    let version = api.min - 1 + i16::from(*version) % (api.max - api.min + 3);
    let header = RequestHeader::default().with_request_api_key(api.key as i16).with_request_api_version(version);
    let mut frame = RequestFrame { api_key: api.key, header, body: Bytes::copy_from_slice(body) };
    if let Err(e) = handlers::decode(&mut frame) {
        drop(e.to_string());
    }
});
