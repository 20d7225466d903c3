//! Shared by the engine examples.

use bytes::Bytes;
use weir_engine::batch::{BatchBuilder, HEADER_LEN};

/// A valid RecordBatch v2 of `len` bytes (opaque body, one record claimed).
pub fn batch(len: usize) -> Bytes {
    let body: Vec<u8> = (0..len - HEADER_LEN).map(|i| (i * 31) as u8).collect();
    Bytes::from(BatchBuilder::new(1).build(&body))
}
