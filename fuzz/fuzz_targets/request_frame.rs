//! A client's byte stream, read as the connection loop reads it
//! (`net/src/server.rs`): frames until the first error, each frame's header
//! decoded, then its request body. Nothing may panic or abort.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_net::codec::{decode_header, read_frame_length, read_frame_payload};
use weir_net::handlers;

// As in the broker binary: huge array counts in requests must not abort.
#[global_allocator]
static ALLOCATOR: weir_net::huge_alloc::LazyHugeAlloc = weir_net::huge_alloc::LazyHugeAlloc;

/// The broker's default `socket_request_max_bytes`.
const MAX_FRAME_BYTES: usize = 104_857_600;

fuzz_target!(|data: &[u8]| {
    let mut stream = futures::io::Cursor::new(data);
    futures::executor::block_on(async {
        loop {
            let len = match read_frame_length(&mut stream, MAX_FRAME_BYTES).await {
                Ok(Some(len)) => len,
                Ok(None) => return,
                Err(e) => return drop(e.to_string()),
            };
            let frame = match read_frame_payload(&mut stream, len).await {
                Ok(frame) => frame,
                Err(e) => return drop(e.to_string()),
            };
            let mut frame = match decode_header(frame) {
                Ok(frame) => frame,
                Err(e) => return drop(e.to_string()),
            };
            if let Err(e) = handlers::decode(&mut frame) {
                return drop(e.to_string());
            }
        }
    });
});
