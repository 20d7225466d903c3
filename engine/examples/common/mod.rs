//! Shared by the engine examples.

use bytes::Bytes;
use weir_engine::batch::{HEADER_LEN, LOG_OVERHEAD};

/// A valid RecordBatch v2 of `len` bytes (opaque body, one record claimed).
pub fn batch(len: usize) -> Bytes {
    let mut b = vec![0u8; len];
    for (i, x) in b[HEADER_LEN..].iter_mut().enumerate() {
        *x = (i * 31) as u8;
    }
    b[8..12].copy_from_slice(&((len - LOG_OVERHEAD) as i32).to_be_bytes());
    b[16] = 2;
    b[57..61].copy_from_slice(&1i32.to_be_bytes());
    weir_engine::batch::rewrite_crc(&mut b);
    Bytes::from(b)
}
